"""Provider adapters (one module per API family) and the provider simulator that speaks their APIs."""
