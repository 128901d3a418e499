"""StreamForge's Ray Serve application: the only package that knows the wire formats.

    app.py        the deployment graph (`serve run configs/serve.yaml` imports `build_app`)
    ingress.py    the StreamIngress deployment: FastAPI app, middleware, services per replica
    settings.py   AppSettings: the `args` of configs/serve.yaml
    twin/         the digital-twin stream: protocol, connection, routes, sessions, history, alerts, client
    store/        the smart store: protocol, kiosk connection, routes, cart, catalogue, database, sessions
    web/          the shared edge: access control, auth, limits, admission, codecs, metrics, error frames
    shards.py     named session-shard actors, shared by both products
    embedded_mongo.py   the MongoDB to use (the embedded server when none is configured)

Imports run one way: serve_app -> deployments -> models.
"""
