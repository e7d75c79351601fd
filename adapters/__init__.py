"""Provider adapters (one module per API family), the data-plane proxy and the provider simulator."""
