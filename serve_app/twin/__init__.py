"""The digital-twin stream: sensor readings in, predicted sensor values (and early-warning alerts) out.

A twin message arrives at `routes.twin_stream`, is parsed by `protocol`, served by `connection`
(predictions through `coalescer` to `ensembles`), and recorded in the session shards (`sessions`,
`session_shard`); `history` exports it and `alert_log` keeps alerts. `client` is the Python client.
"""
