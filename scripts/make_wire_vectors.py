#!/usr/bin/env python3
"""Writes docs/wire-vectors.json: requests as hex frames and the reply fields the spec
(docs/wire.md) requires of `sigstream serve --model identity`."""
import json
import os
import numpy as np
from sigstream.stream.net import wire
from sigstream.stream.net.wire import Header

S, E, R, ERR, ST = wire.START, wire.END, wire.RESET, wire.ERROR, wire.STATS

def msg(h, payload=None):
    parts = wire.encode(h, payload)
    return [bytes(p).hex() for p in parts]

def f32(*v):
    return np.asarray(v, np.float32)

vectors = []
def add(name, request, **expect):
    vectors.append({"name": name, "request": request, "expect": expect})

ts = 1_700_000_000_000_000_000
add("first chunk of a stream, seq 0: the identity's output, no flags",
    msg(Header(stream_id=1, seq=0, channels=1, sample_rate=1000.0, timestamp_ns=ts), f32(1, 2, 3)),
    flags=0, dtype=1, channels=1, frames=3, stream_id=1, seq=0, sample_rate=1000.0, timestamp_ns=ts,
    samples=[1.0, 2.0, 3.0])
add("the next sequence number continues",
    msg(Header(stream_id=1, seq=1, channels=1), f32(4)),
    flags=0, dtype=1, channels=1, frames=1, stream_id=1, seq=1, samples=[4.0])
add("the same number again: duplicate, nothing changes, no flags echoed",
    msg(Header(stream_id=1, seq=1, flags=E, channels=1), f32(4)),
    flags=ERR, dtype=0, frames=0, stream_id=1, seq=1, error="duplicate")
add("an older number: out_of_order",
    msg(Header(stream_id=1, seq=0, channels=1), f32(4)),
    flags=ERR, dtype=0, frames=0, stream_id=1, seq=0, error="out_of_order")
add("a control RESET is acknowledged with its flag and consumes a number",
    msg(Header(stream_id=1, seq=2, flags=R)),
    flags=R, dtype=0, frames=0, stream_id=1, seq=2)
add("a gap (seq 5 after 2) is accepted",
    msg(Header(stream_id=1, seq=5, channels=1), f32(7)),
    flags=0, dtype=1, channels=1, frames=1, stream_id=1, seq=5, samples=[7.0])
add("END with samples: processed, END echoed, the stream is freed",
    msg(Header(stream_id=1, seq=6, flags=E, channels=1), f32(8)),
    flags=E, dtype=1, channels=1, frames=1, stream_id=1, seq=6, samples=[8.0])
add("the freed stream continued at seq 7 without START: a fresh state, RESET says so",
    msg(Header(stream_id=1, seq=7, channels=1), f32(9)),
    flags=R, dtype=1, channels=1, frames=1, stream_id=1, seq=7, samples=[9.0])
add("START restarts at any number",
    msg(Header(stream_id=1, seq=100, flags=S, channels=1), f32(1)),
    flags=S, dtype=1, channels=1, frames=1, stream_id=1, seq=100, samples=[1.0])
add("a bare END closes the stream",
    msg(Header(stream_id=1, seq=101, flags=E)),
    flags=E, dtype=0, frames=0, stream_id=1, seq=101)
add("END on a stream nobody holds is acknowledged",
    msg(Header(stream_id=2, seq=0, flags=E)),
    flags=E, dtype=0, frames=0, stream_id=2, seq=0)
add("int16 samples decode to k / 32768",
    msg(Header(stream_id=3, seq=0, channels=1), np.asarray([16384, -32768], "<i2")),
    flags=0, dtype=1, channels=1, frames=2, stream_id=3, seq=0, samples=[0.5, -1.0])
add("a control message without START/END/RESET: unexpected_flags",
    msg(Header(stream_id=4, seq=0)),
    flags=ERR, dtype=0, frames=0, stream_id=4, seq=0, error="unexpected_flags")
add("two channels to a one-channel model: channels_mismatch",
    msg(Header(stream_id=5, seq=0, channels=2), f32(1, 2, 3, 4).reshape(2, 2)),
    flags=ERR, dtype=0, frames=0, stream_id=5, seq=0, error="channels_mismatch")
add("NaN: non_finite",
    msg(Header(stream_id=6, seq=0, channels=1), f32(1, float("nan"))),
    flags=ERR, dtype=0, frames=0, stream_id=6, seq=0, error="non_finite")
hdr = bytearray(bytes.fromhex(msg(Header(stream_id=7, seq=3, channels=1), f32(1))[0]))
hdr[5] = 0x20
add("an unknown flag bit: bad_flags, stream and number named",
    [bytes(hdr).hex(), f32(1).tobytes().hex()],
    flags=ERR, dtype=0, frames=0, stream_id=7, seq=3, error="bad_flags")
add("payload one byte short: size_mismatch",
    [msg(Header(stream_id=8, seq=0, channels=1), f32(1, 2))[0], f32(1, 2).tobytes()[:-1].hex()],
    flags=ERR, dtype=0, frames=0, stream_id=8, seq=0, error="size_mismatch")
add("one frame only: frame_count",
    msg(Header(stream_id=9, seq=0, channels=1), f32(1))[:1],
    flags=ERR, dtype=0, frames=0, stream_id=9, seq=0, error="frame_count")
add("a 10-byte header: header_size (nothing to echo)",
    ["00" * 10, ""],
    flags=ERR, dtype=0, frames=0, stream_id=0, seq=0, error="header_size")
add("version 2: bad_version",
    [("53494753" + "02" + bytes.fromhex(msg(Header(stream_id=10, seq=0, channels=1), f32(1))[0])[5:].hex()),
     f32(1).tobytes().hex()],
    flags=ERR, dtype=0, frames=0, error="bad_version")
add("a STATS request gets a JSON object",
    msg(Header(flags=ST)),
    flags=ST, dtype=0, frames=0, stats=True)
json.dump({"protocol": "sigstream wire v1", "spec": "docs/wire.md",
           "server": "sigstream serve --model identity (1 channel, hop 1, no sample rate)",
           "note": "requests are sent in this order on one DEALER connection; each gets "
                   "exactly one reply, compared field by field (fields not listed are free)",
           "vectors": vectors}, open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "wire-vectors.json"), "w"), indent=1)
print(len(vectors))
