"""Turnout's control plane: config, domain, breaker, ranker, table, events, store, APIs, scheduler, CLI."""
