"""Rate and connection limits: token buckets per key and connection counts per client address."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict


class TokenBucket:
    """`rate` events a second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def take(self, count: float = 1.0) -> bool:
        """Spend `count` tokens if there are enough; False means the caller is over its limit."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True


class KeyedRateLimiter:
    """One token bucket per key (e.g. client address), the least recently used dropped beyond `max_keys`."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000):
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str) -> bool:
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return bucket.take()


class ConnectionLimiter:
    """Open WebSocket connections of one ingress replica, in all and per client address."""

    def __init__(self, max_total: int, max_per_address: int):
        self.max_total, self.max_per_address = max_total, max_per_address
        self._open: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self._open.values())

    def acquire(self, address: str) -> str | None:
        """Count a new connection; the reason it is refused, or None when it may proceed."""
        if self.total >= self.max_total:
            return f"the server has reached its limit of {self.max_total} connections"
        if self._open[address] >= self.max_per_address:
            return f"limit of {self.max_per_address} connections per client address reached"
        self._open[address] += 1
        return None

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
