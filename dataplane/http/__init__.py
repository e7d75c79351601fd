"""The data plane's HTTP layer: the HTTP/1.1 listener clients talk to and the upstream connection pool."""
