"""Hypothesis fuzzing of the wire decoder and of a live server.

The decoder either returns a message or raises WireError, nothing else, for any frames.
The server answers every message with exactly one reply (an ERROR naming a reason for
anything malformed), stays up, and a neighbouring stream stays exact."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from sigstream.stream.net import wire
from sigstream.stream.net.client import Client
from sigstream.stream.net.server import SERVER_REASONS, Server
from sigstream.stream.net.wire import Header, WireError

VALID = Header(stream_id=3, seq=0, channels=1, frames=4).pack()
PAYLOAD = np.ones(4, "<f4").tobytes()


@hs.composite
def mutated(draw) -> list[bytes]:  # noqa: ANN001
    """A valid message with random bytes of its header overwritten, a random payload
    length, and sometimes a frame too many or too few."""
    header = bytearray(VALID)
    for _ in range(draw(hs.integers(0, 4))):
        at = draw(hs.integers(0, 63))
        header[at] = draw(hs.integers(0, 255))
    if draw(hs.booleans()):  # a plausible field value rather than a random byte
        field = draw(hs.sampled_from([(5, "B"), (6, "B"), (8, "H"), (12, "I"), (32, "d")]))
        value = draw(hs.floats(allow_nan=True, allow_infinity=True) if field[1] == "d"
                     else hs.integers(0, 2 ** (8 * struct.calcsize(field[1])) - 1))
        struct.pack_into("<" + field[1], header, field[0], value)
    payload = draw(hs.binary(max_size=64)) if draw(hs.booleans()) else PAYLOAD
    frames = [bytes(header), payload]
    extra = draw(hs.integers(-1, 1))
    return frames[:1] if extra < 0 else frames + [b""] * extra


@given(frames=hs.one_of(mutated(), hs.lists(hs.binary(max_size=80), max_size=3)))
def test_decoder_returns_or_raises_wire_error(frames: list[bytes]) -> None:
    try:
        h, data = wire.decode(frames)
    except WireError as err:
        assert err.reason in wire.REASONS
    else:
        assert h.version == wire.VERSION


@pytest.fixture(scope="module")
def served():  # noqa: ANN201
    from sigstream.models.registry import build_model

    with Server(build_model("identity"), "tcp://127.0.0.1:*") as srv, \
            Client(srv.endpoint) as fuzz, Client(srv.endpoint) as good:
        yield srv, fuzz, good, [0]


@settings(max_examples=150)
@given(frames=mutated())
def test_server_answers_every_fuzzed_message_and_a_neighbour_stays_exact(served,
                                                                         frames) -> None:
    srv, fuzz, good, seq = served
    fuzz.send_raw(frames)
    h, y = fuzz.recv(timeout=5)  # exactly one reply, whatever was sent
    if h.is_error:
        assert y["code"] in wire.REASONS or y["code"] in SERVER_REASONS, y
    x = np.arange(3, dtype=np.float32) + seq[0]
    good.send(x, stream_id=1, seq=seq[0])
    seq[0] += 1
    h, y = good.recv(timeout=5)
    assert not h.is_error and not h.reset and h.seq == seq[0] - 1
    np.testing.assert_array_equal(y[:, 0], x)
    assert not fuzz.poll(0)  # nothing more than one reply per message
