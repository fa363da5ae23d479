"""Tests for sigstream.stream.net.pipes: specs, ZmqSource / ZmqSink over real sockets, CURVE.

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
from sigstream.stream.net.pipes import ZmqSink, ZmqSource, parse_zmq_spec
from sigstream.stream.net.sockets import check_bind_allowed
from sigstream.stream.net.wire import Header
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


# -- specs -----------------------------------------------------------------------------------------


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


def test_non_loopback_bind_is_refused_before_a_socket_exists() -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        # the remedy names the spec's keys (run has no --curve-secret or --insecure flags)
        with pytest.raises(ConfigError, match="not a loopback.*curve_secret=FILE.*insecure=1"):
            ZmqSource("tcp://0.0.0.0:5555", mode="bind")
        with pytest.raises(ConfigError, match="not a loopback.*insecure=1 to the spec"):
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


def test_block_sink_closes_quietly_when_nobody_takes_its_end(ctx: zmq.Context) -> None:
    """No send_timeout, no consumer: close() gives up on its END after linger (here 0)."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        sink = ZmqSink(f"tcp://127.0.0.1:{port}", hwm=1, linger=0.0, context=ctx)
        sink.open(1000.0, 1)
        t0 = time.monotonic()
        sink.close()  # the END has no receiver: given up, not an error
    assert time.monotonic() - t0 < 3 and sink.messages == 0


def test_block_sink_waits_for_a_late_receiver_and_loses_nothing(
        ctx: zmq.Context, capsys: pytest.CaptureFixture) -> None:
    """A connecting PUSH sink queues nothing for a receiver that is not there (it counted
    such messages as sent before): it waits, says so once, and a receiver that binds
    late gets every message."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    sink = ZmqSink(endpoint, hwm=4, context=ctx)
    sink.open(1000.0, 1)
    done = threading.Event()

    def write() -> None:
        for k in range(20):
            sink.write(np.full((8, 1), float(k), np.float32))
        sink.close()
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(2.5)
    assert not done.is_set()  # no receiver: it waits
    pull = ctx.socket(zmq.PULL)
    pull.bind(endpoint)
    got = []
    while True:
        assert pull.poll(10_000)
        h, y = wire.decode(pull.recv_multipart())
        if h.end:
            break
        got.append(float(y[0, 0]))
    pull.close(0)
    writer.join(10)
    assert got == [float(k) for k in range(20)] and sink.messages == 21
    assert "waiting for a receiver" in capsys.readouterr().err


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


# -- CURVE ----------------------------------------------------------------------------------------

curve = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


@pytest.fixture
def certs(tmp_path):
    """Server, client and stranger certificates; ``allowed`` holds the client's only."""
    import zmq.auth

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    out = {}
    for name in ("server", "client", "stranger"):
        out[name], out[name + "_secret"] = zmq.auth.create_certificates(str(keys), name)
    (allowed / "client.key").write_bytes(open(out["client"], "rb").read())
    out["allowed"] = str(allowed)
    return out


def test_parse_zmq_spec_curve_keys() -> None:
    s = parse_zmq_spec("zmq:tcp://0.0.0.0:5555,curve_secret=/k/server.key_secret,"
                       "curve_clients=/k/allowed", role="source")
    assert (s.curve_secret, s.curve_clients, s.curve_server) == (
        "/k/server.key_secret", "/k/allowed", None)
    z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # Z85 may hold '=' and ':'
    s = parse_zmq_spec(f"zmq:tcp://10.0.0.1:5555,curve_server={z85}=", role="sink")
    assert s.curve_server == z85 + "=" and s.mode == "connect"


@curve
def test_curve_bind_is_allowed_off_loopback_before_a_socket_exists(certs) -> None:
    with mock.patch.object(zmq.Context, "socket") as socket:
        with pytest.raises(ConfigError, match="not a loopback"):
            ZmqSink("tcp://0.0.0.0:5555", pattern="pub", curve_clients=None)
        ZmqSink("tcp://0.0.0.0:5555", pattern="pub", curve_secret=certs["server_secret"])
        with pytest.raises(ConfigError, match="curve_server= is for a connecting socket"):
            ZmqSource("tcp://0.0.0.0:5555", curve_server=certs["server"])
        with pytest.raises(ConfigError, match="not found"):
            parse_zmq_spec("zmq:tcp://0.0.0.0:5555,curve_secret=/nope", role="source").make_source()
        socket.assert_not_called()


def _push(ctx: zmq.Context, endpoint: str, x: np.ndarray, **curve_keys) -> ZmqSink:
    sink = ZmqSink(endpoint, hwm=100, linger=0.5, context=ctx, send_timeout=3.0, **curve_keys)
    sink.open(1000.0, 1)
    try:
        for start in range(0, len(x), 50):
            sink.write(x[start:start + 50])
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return sink


@curve
def test_curve_source_and_sink_deliver_only_with_the_right_keys(ctx: zmq.Context,
                                                                certs) -> None:
    x = np.random.default_rng(4).standard_normal((200, 1)).astype(np.float32)
    server_side = dict(curve_secret=certs["server_secret"], curve_clients=certs["allowed"])
    wrong = [
        dict(curve_server=certs["stranger"], curve_secret=certs["client_secret"]),  # wrong key
        dict(curve_server=certs["server"], curve_secret=certs["stranger_secret"]),  # not admitted
        dict(curve_server=certs["server"]),  # a fresh key pair: not admitted either
        dict(),  # no encryption at all
    ]
    for keys in wrong:
        with ZmqSource(LOCAL, timeout=0.7, **server_side) as source:  # a context of its own
            try:
                _push(ctx, source.endpoint, x, **keys)
            except InputError as err:  # the sink may learn of the refusal as it writes
                # (a plain sink to a CURVE source never completes a connection: it waits
                # for a receiver, up to its send timeout)
                assert ("CURVE handshake" in str(err) and keys) or (
                    "no receiver took a message" in str(err) and not keys)
            assert source.read(1000) is None, keys  # nothing delivered
            assert source.messages == 0 and source.frames_read == 0 and source.rejected == 0
    with ZmqSource(LOCAL, timeout=10.0, **server_side) as source:
        sink = _push(ctx, source.endpoint, x, curve_server=certs["server"],
                     curve_secret=certs["client_secret"])
        got = []
        while (block := source.read(1000)) is not None:
            got.append(block)
    np.testing.assert_array_equal(np.concatenate(got), x)
    assert source.messages == sink.messages == 5  # 4 blocks + END


@curve
def test_curve_specs_with_the_sink_binding(ctx: zmq.Context, certs) -> None:
    """The other way round, through spec strings: a PUB binds as the CURVE server."""
    sink = parse_zmq_spec(f"zmq:tcp://127.0.0.1:*,pattern=pub,curve_secret="
                          f"{certs['server_secret']}", role="sink").make_sink()
    sink.open(1000.0, 1)
    spec = f"zmq:{sink.endpoint},pattern=sub,timeout=5,curve_server={certs['server']}"
    source = parse_zmq_spec(spec, role="source").make_source()
    block = np.full((16, 1), 0.25, np.float32)
    stop = threading.Event()

    def publish() -> None:  # a SUB joins late: publish until it has heard something
        while not stop.is_set():
            sink.write(block)
            time.sleep(0.005)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        got = source.read(1000)
    finally:
        stop.set()
        publisher.join(5)
        sink.close()
        source.close()
    assert got is not None
    np.testing.assert_array_equal(got, block)


@curve
def test_a_refused_curve_handshake_is_a_clear_error_not_a_hang(ctx: zmq.Context,
                                                                 certs) -> None:
    """ZeroMQ never delivers after a refused handshake (and stops retrying): a blocking
    sink without a send timeout, or a source without a timeout, would wait forever."""
    with ZmqSource(LOCAL, timeout=30.0, curve_secret=certs["server_secret"],
                   curve_clients=certs["allowed"]) as source:
        sink = ZmqSink(source.endpoint, hwm=1, linger=0.0, context=ctx,
                       curve_server=certs["server"], curve_secret=certs["stranger_secret"])
        sink.open(1000.0, 1)
        t0 = time.monotonic()
        with pytest.raises(InputError, match="CURVE handshake with tcp://127.0.0.1:.* failed"):
            for _ in range(10_000):  # the first may be queued before the refusal
                sink.write(np.ones((8, 1), np.float32))
                time.sleep(0.001)
        assert time.monotonic() - t0 < 10
        sink.abort()
        assert source.messages == 0
    pub = ZmqSink(LOCAL, mode="bind", linger=0.0, context=ctx,
                  curve_secret=certs["server_secret"])
    pub.open(1000.0, 1)
    with ZmqSource(pub.endpoint, mode="connect", curve_server=certs["stranger"],
                   context=ctx) as source:  # no timeout: only the failure can end read()
        t0 = time.monotonic()
        with pytest.raises(InputError, match="CURVE handshake"):
            source.read(100)
        assert time.monotonic() - t0 < 10
    pub.abort()
