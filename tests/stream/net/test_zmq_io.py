"""Tests for sigstream.stream.net.zmq_io: specs, ZmqSource / ZmqSink over real sockets.

N: frames, C: channels. Everything runs on 127.0.0.1 with bounded waits.
"""

from __future__ import annotations

import threading
import time
from unittest import mock

import numpy as np
import pytest
import zmq

from sigstream.core.errors import ConfigError, InputError
from sigstream.stream.io.sinks import ArraySink
from sigstream.stream.net import wire
from sigstream.stream.net.wire import Header
from sigstream.stream.net.zmq_io import (
    ZmqSink,
    ZmqSource,
    check_bind_allowed,
    is_loopback_endpoint,
    parse_zmq_spec,
)
from sigstream.stream.pipeline import Pipeline, PipelineConfig

LOCAL = "tcp://127.0.0.1:*"


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def push_to(context: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    return sock


def chunk(seq: int, x: np.ndarray, flags: int = 0, stream_id: int = 1,
          rate: float = 1000.0) -> list:
    return wire.encode(Header(stream_id=stream_id, seq=seq, flags=flags, sample_rate=rate), x)


# -- specs and endpoints --------------------------------------------------------------------------


def test_parse_zmq_spec_defaults_and_options() -> None:
    s = parse_zmq_spec("zmq:tcp://127.0.0.1:5555,mode=bind,pattern=pull,hwm=1000")
    assert (s.endpoint, s.mode, s.pattern, s.hwm, s.is_source) == (
        "tcp://127.0.0.1:5555", "bind", "pull", 1000, True)
    s = parse_zmq_spec("zmq:tcp://127.0.0.1:5556", role="sink")
    assert (s.pattern, s.mode, s.policy) == ("push", "connect", "block")
    s = parse_zmq_spec("zmq:tcp://127.0.0.1:5557,pattern=sub,channels=2,rate=16000,timeout=1.5,"
                       "stream=4,nonfinite=pass")
    assert (s.mode, s.channels, s.sample_rate, s.timeout, s.stream_id, s.allow_non_finite) == (
        "connect", 2, 16000.0, 1.5, 4, True)
    s = parse_zmq_spec("tcp://127.0.0.1:5558,pattern=pub,policy=drop,dtype=int16")
    assert (s.mode, s.policy, s.dtype, s.is_source) == ("bind", "drop", "int16", False)


@pytest.mark.parametrize("spec", [
    "zmq:127.0.0.1:5555", "zmq:tcp://127.0.0.1:1,pattern=req", "zmq:tcp://127.0.0.1:1,mode=x",
    "zmq:tcp://127.0.0.1:1,hwm=-1", "zmq:tcp://127.0.0.1:1,hwm=many", "zmq:tcp://127.0.0.1:1,x=1",
    "zmq:tcp://127.0.0.1:1,policy=maybe", "zmq:tcp://127.0.0.1:1,noequals",
])
def test_parse_zmq_spec_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_zmq_spec(spec, role="source")


def test_spec_role_must_match_pattern() -> None:
    with pytest.raises(ConfigError):
        parse_zmq_spec("zmq:tcp://127.0.0.1:1,pattern=push", role="source")
    with pytest.raises(ConfigError):
        parse_zmq_spec("zmq:tcp://127.0.0.1:1,pattern=sub").make_sink()


@pytest.mark.parametrize("endpoint, loopback", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.8.9.10:1", True), ("tcp://[::1]:5555", True),
    ("tcp://localhost:5555", True), ("inproc://x", True), ("ipc:///tmp/x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://192.168.1.2:5555", False),
    ("tcp://[::]:5555", False), ("tcp://eth0:5555", False), ("tcp://example.com:1", False),
    ("udp://127.0.0.1:1", False), ("tcp://127.0.0.1", False),
])
def test_loopback_detection(endpoint: str, loopback: bool) -> None:
    assert is_loopback_endpoint(endpoint) is loopback


def test_non_loopback_bind_is_refused_before_a_socket_exists() -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        with pytest.raises(ConfigError, match="not a loopback"):
            ZmqSource("tcp://0.0.0.0:5555", mode="bind")
        with pytest.raises(ConfigError, match="not a loopback"):
            ZmqSink("tcp://*:5555", pattern="pub").open(1000.0, 1)
        socket.assert_not_called()
    check_bind_allowed("tcp://0.0.0.0:5555", insecure=True)  # allowed when asked for
    check_bind_allowed("tcp://0.0.0.0:5555", curve=True)


# -- source and sink over real sockets ------------------------------------------------------------


def test_push_pull_pipeline_moves_thousands_of_frames(ctx: zmq.Context) -> None:
    x = np.random.default_rng(0).standard_normal((20_000, 2)).astype(np.float32)
    source = ZmqSource(LOCAL, channels=2, sample_rate=8000.0, timeout=10.0, context=ctx)
    sink_out = ZmqSink(source.endpoint, hwm=50, context=ctx)

    def produce() -> None:
        sink_out.open(8000.0, 2)
        for start in range(0, len(x), 97):
            sink_out.write(x[start:start + 97])
        sink_out.close()

    producer = threading.Thread(target=produce)
    producer.start()
    collected = ArraySink()
    stats = Pipeline(source, [], collected, PipelineConfig(block=64)).run()
    producer.join(10)
    np.testing.assert_array_equal(collected.data, x)
    assert stats.samples_in == len(x) and stats.rejected == 0
    assert source.messages == sink_out.messages == -(-len(x) // 97) + 1  # + END
    assert source.gaps == 0 and source.dropped == 0 and sink_out.dropped == 0


def test_source_splits_messages_and_keeps_the_rest(ctx: zmq.Context) -> None:
    with ZmqSource(LOCAL, channels=1, timeout=5.0, context=ctx) as source:
        push = push_to(ctx, source.endpoint)
        push.send_multipart(chunk(0, np.arange(10, dtype=np.float32)))
        push.send_multipart(chunk(1, np.arange(10, 13, dtype=np.float32), wire.END))
        sizes = []
        while (block := source.read(4)) is not None:
            assert block.flags["C_CONTIGUOUS"] and block.flags["WRITEABLE"]
            sizes.append(len(block))
        assert sizes == [4, 4, 2, 3]
        assert source.frames_read == 13 and source.read(4) is None
        push.close()


def test_source_counts_rejects_gaps_and_drops(ctx: zmq.Context) -> None:
    one = np.ones((4, 1), np.float32)
    with ZmqSource(LOCAL, channels=1, sample_rate=1000.0, timeout=5.0, context=ctx) as source:
        push = push_to(ctx, source.endpoint)
        push.send_multipart(chunk(0, one, wire.START))
        push.send_multipart([b"garbage", b""])  # bad header
        push.send_multipart(chunk(1, np.full((4, 1), np.nan, np.float32)))  # non-finite
        push.send_multipart(chunk(1, np.ones((4, 2), np.float32)))  # wrong channels
        push.send_multipart(chunk(1, one, rate=44100.0))  # wrong rate
        push.send_multipart(chunk(1, one, stream_id=2))  # another stream
        push.send_multipart(chunk(3, one * 3))  # gap: 1 and 2 missing
        push.send_multipart(chunk(3, one))  # duplicate
        push.send_multipart(chunk(2, one))  # out of order
        push.send_multipart(chunk(4, one * 4, wire.END))
        out = []
        while (block := source.read(100)) is not None:
            out.append(block)
        np.testing.assert_array_equal(np.concatenate(out)[:, 0], [1] * 4 + [3] * 4 + [4] * 4)
        assert source.rejected == 7
        assert source.rejected_reasons == {
            "header_size": 1, "non_finite": 1, "channels_mismatch": 1, "rate_mismatch": 1,
            "other_stream": 1, "duplicate": 1, "out_of_order": 1,
        }
        assert (source.gaps, source.missing, source.dropped) == (1, 2, 24)
        push.close()


def test_source_ends_on_timeout_and_on_stop(ctx: zmq.Context) -> None:
    with ZmqSource(LOCAL, timeout=0.2, context=ctx) as source:
        t0 = time.monotonic()
        assert source.read(10) is None
        assert 0.15 < time.monotonic() - t0 < 3
    with ZmqSource(LOCAL, poll_interval=0.02, context=ctx) as source:
        threading.Timer(0.1, source.stop).start()
        t0 = time.monotonic()
        assert source.read(10) is None
        assert time.monotonic() - t0 < 3


def test_sink_drop_policy_counts_drops_and_never_blocks(ctx: zmq.Context) -> None:
    # nobody receives (the port is held, bound but not listening): the PUSH socket queues
    # `hwm` messages, then the rest are dropped
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", hwm=5, policy="drop", linger=0.0,
                       context=ctx)
        sink.open(1000.0, 1)
        t0 = time.monotonic()
        for _ in range(200):
            sink.write(np.ones((8, 1), np.float32))
        sink.close()
    assert time.monotonic() - t0 < 5
    assert sink.dropped_messages >= 150
    assert sink.messages + sink.dropped_messages == 201  # + the END attempt
    assert sink.dropped == 8 * sink.dropped_messages or sink.dropped == 8 * (
        sink.dropped_messages - 1)


def test_sink_block_policy_times_out_without_a_consumer(ctx: zmq.Context) -> None:
    import socket

    # hold the port (bound, never listening) so no other socket can take it and receive
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", hwm=2, send_timeout=0.1, linger=0.0,
                       context=ctx)
        sink.open(1000.0, 1)
        with pytest.raises(InputError, match="no receiver"):
            for _ in range(50):
                sink.write(np.ones((8, 1), np.float32))
        sink.abort()


def test_pub_sub_and_int16(ctx: zmq.Context) -> None:
    sink = ZmqSink("tcp://127.0.0.1:*", pattern="pub", dtype="int16", context=ctx)
    sink.open(1000.0, 1)
    source = ZmqSource(sink.endpoint, pattern="sub", timeout=5.0, context=ctx)
    block = np.full((16, 1), 0.5, np.float32)
    stop = threading.Event()

    def publish() -> None:  # a SUB joins late: publish until it has heard something
        while not stop.is_set():
            sink.write(block)
            time.sleep(0.005)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        got = source.read(1000)
        got2 = source.read(1000)
    finally:
        stop.set()
        publisher.join(5)
        sink.close()
        source.close()
    assert got is not None and got2 is not None
    np.testing.assert_array_equal(got, np.full_like(got, np.float32(16384 / 32768)))
    assert source.gaps == 0


def test_bind_in_use_is_a_config_error(ctx: zmq.Context) -> None:
    with ZmqSource(LOCAL, context=ctx) as first:
        with pytest.raises(ConfigError, match="is in use; pick another port"):
            ZmqSource(first.endpoint, context=ctx)
