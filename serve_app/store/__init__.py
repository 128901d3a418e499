"""The smart store: kiosk camera frames in, detected products, carts, shopper log-in and orders out.

A kiosk frame arrives at `routes.kiosk_stream`, is checked by `protocol`, detected by `detection`
(in the ingress or on the YOLODetector pool) inside `connection`, which updates the cart (`cart`,
`sessions`, `session_shard`) from the `catalogue`; `database` keeps products, sessions and orders.
"""
