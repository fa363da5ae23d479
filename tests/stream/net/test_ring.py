"""Tests for sigstream.stream.net.ring: consistent hashing, stable across processes."""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys

import pytest

from sigstream.core.errors import ConfigError
from sigstream.stream.net.ring import HashRing, stream_key


def key_hash(keys: list[bytes], ring: HashRing) -> str:
    return hashlib.sha256("\n".join(str(ring.lookup(k)) for k in keys).encode()).hexdigest()


def test_hash_ring_is_stable_even_and_moves_only_what_it_must() -> None:
    workers = [f"tcp://127.0.0.1:{5601 + i}" for i in range(3)]
    keys = [stream_key(b"\x00" + i.to_bytes(4, "big"), i % 16) for i in range(3000)]
    ring = HashRing(workers, vnodes=64)
    before = {k: ring.lookup(k) for k in keys}
    # stable: the same in another order, in another instance, and in another process
    assert {k: HashRing(workers[::-1]).lookup(k) for k in keys} == before
    code = ("import hashlib; from sigstream.stream.net.ring import HashRing, stream_key; "
            f"r = HashRing({workers!r}); ks = [stream_key(b'\\x00' + i.to_bytes(4, 'big'), "
            "i % 16) for i in range(3000)]; print(hashlib.sha256('\\n'.join(str(r.lookup(k)) "
            "for k in ks).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert out.stdout.strip() == key_hash(keys, ring)
    # about even: 1000 keys each, give or take
    counts = collections.Counter(before.values())
    assert set(counts) == set(workers)
    assert all(700 <= n <= 1300 for n in counts.values()), counts
    # removing a worker moves exactly its keys, spread over the others
    ring.remove(workers[1])
    after = {k: ring.lookup(k) for k in keys}
    moved = {k for k in keys if after[k] != before[k]}
    assert moved == {k for k in keys if before[k] == workers[1]}
    assert all(after[k] in (workers[0], workers[2]) for k in moved)
    assert min(collections.Counter(after[k] for k in moved).values()) > 0.2 * len(moved)
    # adding one back restores the old placement; a new one takes only ~1/N of the keys
    ring.add(workers[1])
    assert {k: ring.lookup(k) for k in keys} == before
    ring.add("tcp://127.0.0.1:5604")
    grown = {k: ring.lookup(k) for k in keys}
    changed = [k for k in keys if grown[k] != before[k]]
    assert all(grown[k] == "tcp://127.0.0.1:5604" for k in changed)
    assert 0.1 * len(keys) < len(changed) < 0.4 * len(keys)
    assert HashRing().lookup(keys[0]) is None
    with pytest.raises(ConfigError):
        HashRing(workers, vnodes=0)
