"""docs/wire-vectors.json against a real server: every request's reply has the fields the
normative spec (docs/wire.md) requires."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sigstream.models.registry import build_model
from sigstream.stream.net import wire
from sigstream.stream.net.client import Client
from sigstream.stream.net.server import Server

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "wire-vectors.json").read_text())
FIELDS = ("flags", "dtype", "channels", "frames", "stream_id", "seq", "sample_rate",
          "timestamp_ns")


@pytest.fixture(scope="module")
def replies() -> list:
    """Send every vector in order on one connection; the replies, in order."""
    out = []
    with Server(build_model("identity"), "tcp://127.0.0.1:*") as srv, \
            Client(srv.endpoint) as c:
        for v in VECTORS["vectors"]:
            c.send_raw([bytes.fromhex(f) for f in v["request"]])
            parts = c.socket.recv_multipart() if c.socket.poll(5000) else None
            assert parts is not None, f"no reply to {v['name']!r}"
            out.append(parts)
    return out


@pytest.mark.parametrize("index", range(len(VECTORS["vectors"])),
                         ids=[v["name"][:60] for v in VECTORS["vectors"]])
def test_vector(replies: list, index: int) -> None:
    v = VECTORS["vectors"][index]
    want = v["expect"]
    h, payload = wire.decode(replies[index], allow_non_finite=True)
    for field in FIELDS:
        if field in want:
            assert getattr(h, field) == want[field], (v["name"], field, h)
    if "error" in want:
        assert h.is_error and wire.parse_json(payload)["code"] == want["error"], v["name"]
    else:
        assert not h.is_error, (v["name"], payload)
    if "samples" in want:
        np.testing.assert_array_equal(np.asarray(payload).reshape(-1), want["samples"])
    if want.get("stats"):
        assert isinstance(wire.parse_json(payload), dict)
