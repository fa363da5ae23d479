"""Per-client token buckets for the messages that cost a server work without holding
stream state: new streams, malformed messages, STATS requests.

A stream's steady chunks never pass here. Everything else from one client identity spends
one token; a bucket holds ``burst`` tokens and refills at ``rate`` per second. A message
without a token is dropped before it is decoded (a few microseconds instead of a full
validation and an ERROR reply), so a client that floods the server cannot buy its CPU;
the first drop per client per second is answered with one ``rate_limited`` ERROR (stream
id 0), the others only counted. A polite client never sees it: ``burst`` defaults to the
per-client stream quota, so a client may open every stream it is allowed at once.
"""

from __future__ import annotations

__all__ = ["Throttle"]

NOTICE_INTERVAL = 1.0  # s between rate_limited ERROR replies to one client


class Throttle:
    """``allow(identity, now)``: whether a stateless message from ``identity`` may go on;
    ``notice(identity, now)``: whether a dropped one gets the ERROR reply. At most
    ``max_clients`` buckets are kept; beyond that the table starts afresh (every client
    gets a full bucket again), so its memory is bounded whatever the identities."""

    __slots__ = ("rate", "burst", "max_clients", "_buckets", "_told")

    def __init__(self, rate: float, burst: float, max_clients: int = 65536) -> None:
        self.rate, self.burst, self.max_clients = float(rate), float(burst), max_clients
        self._buckets: dict[bytes, list[float]] = {}  # identity -> [tokens, last refill]
        self._told: dict[bytes, float] = {}  # identity -> when it last got the ERROR

    def allow(self, identity: bytes, now: float) -> bool:
        b = self._buckets.get(identity)
        if b is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.clear()
                self._told.clear()
            self._buckets[identity] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return True
        b[0] = tokens
        return False

    def notice(self, identity: bytes, now: float) -> bool:
        last = self._told.get(identity)
        if last is not None and now - last < NOTICE_INTERVAL:
            return False
        self._told[identity] = now
        return True

    def __len__(self) -> int:
        return len(self._buckets)
