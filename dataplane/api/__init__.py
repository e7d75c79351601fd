"""The data plane's client APIs: each a thin handler over the one failover loop (dataplane/failover.py)."""
