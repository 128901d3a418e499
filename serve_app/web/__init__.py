"""The edge both products share: access control and auth, limits and WebSocket admission, frame
codecs (JSON / msgpack), the `error` frame, WebSocket compression and Prometheus metrics."""
