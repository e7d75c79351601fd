"""The data plane: what every client request passes through.

Client API handlers, client keys and their limits, candidate selection, preferences, hedging, upstream attempts, the failover loop, the
panel, the data replica, and `dataplane/http/` (the listener and the upstream connection pool).
"""
