"""A consistent-hash ring: where a stream lives among the router's workers.

:class:`HashRing` puts ``vnodes`` points per node on a 64-bit ring (BLAKE2b
hashes), and maps a key to the node owning the first point at or after the key's
hash. Positions depend only on node names and keys, so the placement is the same in
every process and run (unlike Python's ``hash()``); removing a node moves only that
node's keys, adding one takes only ~1/N of the key space. :func:`stream_key` is the
key of a stream: the client identity followed by its u64 stream id.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from sigstream.core.errors import ConfigError

__all__ = ["HashRing", "stream_key"]


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def stream_key(identity: bytes, stream_id: int) -> bytes:
    """The ring key of a stream: the client identity followed by the u64 stream id."""
    return bytes(identity) + int(stream_id).to_bytes(8, "little")


class HashRing:
    """A consistent-hash ring: ``vnodes`` points per node, 64-bit BLAKE2b positions.

    :meth:`lookup` maps a key to the node owning the first point at or after the
    key's hash (clockwise). Positions depend only on the node names and keys, so
    the mapping is identical across processes (unlike Python's ``hash()``).
    """

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = 64) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise ConfigError(f"vnodes must be a positive integer, got {vnodes!r}")
        self.vnodes = vnodes
        self._points: list[tuple[int, str]] = []
        self._hashes: list[int] = []
        self._nodes: set[str] = set()
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> list[str]:
        """The nodes on the ring, sorted."""
        return sorted(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def add(self, node: str) -> None:
        """Put ``node`` on the ring (no-op if it is there)."""
        if node in self._nodes:
            return
        self._nodes.add(node)
        for i in range(self.vnodes):
            bisect.insort(self._points, (_hash64(f"{node}#{i}".encode()), node))
        self._hashes = [h for h, _ in self._points]

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring (no-op if it is not there)."""
        if node not in self._nodes:
            return
        self._nodes.discard(node)
        self._points = [p for p in self._points if p[1] != node]
        self._hashes = [h for h, _ in self._points]

    def lookup(self, key: bytes) -> str | None:
        """The node owning ``key``; None when the ring is empty."""
        if not self._points:
            return None
        i = bisect.bisect_right(self._hashes, _hash64(key))
        return self._points[i % len(self._points)][1]
