"""The running control plane's parts in one place, handed to API handlers and the data plane.

Owned by the foundation work (store, scheduler, lifecycle); other parts read from it:
- `table_source.current()` — the published Table (lock-free read), `await table_source.wait_newer(v, timeout)`;
- `sink.submit(obs)` — the one observation pipe (probes and live traffic);
- `store`, `bus`, `config`, `clock`.
"""
