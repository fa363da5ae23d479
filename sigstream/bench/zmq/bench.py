"""ZeroMQ benchmarks: one transport hop, a served model, and how many streams ``serve`` holds.

N: streams, T: chunk length (frames), C: channels.

Three measurements, each returning a JSON-ready dict, all on 127.0.0.1 only and
bounded in count and time:

- :func:`transport_hop`: round trip of one 256-sample float32 frame through a
  :class:`~sigstream.stream.net.server.Server` (identity model, served from a thread of
  this process) and a :class:`~sigstream.stream.net.client.Client`, next to the bare
  pyzmq floor (a DEALER <-> ROUTER echo of the same two frames, no sigstream code)
  and, when ``pylsl`` imports, Lab Streaming Layer (an outlet -> inlet each way,
  echoed by a thread). The three are measured in the same run, interleaved in
  blocks so drift on a shared machine hits them alike, and compared by ratios.
- :func:`served_extractor`: the extractor (ONNX Runtime if the export works, else
  torch) served by a ``Server`` in its own process; one client sends 256-sample
  frames of a 1 kHz stream one at a time and waits for each reply.
- :func:`serve_capacity`: a ``Server`` process (extractor) and, in this process,
  several DEALER sockets carrying N concurrent 1 kHz streams, each sending a chunk
  of T samples every T / 1000 s, paced by the wall clock. Counts chunks sent,
  replies received, lost and mismatched (wrong stream or sequence number), reply
  latency, and whether the server kept up (mean lag within one chunk period, no lag
  growth from the first to the last second).

:func:`markdown_zmq` renders the three as markdown tables. ``python -m
sigstream.bench.zmq.bench [--quick]`` runs everything and prints the tables (and
``--serve SPEC`` is the server process the last two start).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from sigstream.bench.timing import default_model, summarise_us
from sigstream.core.files import write_atomic
from sigstream.stream.net import wire

__all__ = ["SCHEMA", "transport_hop", "served_extractor", "serve_capacity", "run_zmq",
           "markdown_zmq"]

SCHEMA = "sigstream-bench/zmq/1"
HOST = "127.0.0.1"
FRAME = 256
RATE = 1000.0
_LOCAL = f"tcp://{HOST}:*"
_TIMEOUT_S = 5.0  # longest wait for any single reply before a measurement gives up


def _signal(frames: int, rate: float = RATE, seed: int = 0) -> np.ndarray:
    """A (frames,) float32 1 kHz test signal: 1, 3, 5 and 7 Hz sines plus a little noise."""
    t = np.arange(frames) / rate
    x = sum(np.sin(2 * np.pi * f * t + f) / f for f in (1.0, 3.0, 5.0, 7.0))
    x = x + 0.05 * np.random.default_rng(seed).standard_normal(frames)
    return x.astype(np.float32)


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _finite(x: float) -> float | None:
    """``x`` as a float, or None for NaN / inf (JSON has neither)."""
    return float(x) if np.isfinite(x) else None


def _proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) used so far by process ``pid`` (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# -- 1. one transport hop ---------------------------------------------------------------------


class _EchoRouter:
    """The pyzmq floor: a ROUTER in a thread that sends every message straight back."""

    def __init__(self, ctx: zmq.Context) -> None:
        self._sock = ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(_LOCAL)
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zmq-echo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        try:
            while not self._stop.is_set():
                if sock.poll(50, zmq.POLLIN):  # the same idle poll interval as Server
                    sock.send_multipart(sock.recv_multipart())
        finally:
            sock.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


_LSL_CONFIG = """\
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
ListenAddress = 127.0.0.1
MachineAddresses = {127.0.0.1}
[lab]
KnownPeers = {127.0.0.1}
SessionID = sigstream-bench-%d
[log]
level = -2
"""
_lsl_state: dict[str, Any] = {}
_LSL_NOTE = ("discovery and traffic stay on 127.0.0.1, but liblsl listens for its outlets on "
             "all interfaces (its TCP/UDP service ports; no liblsl setting confines them to "
             "loopback) while the LSL measurement runs")


def _pylsl() -> tuple[Any, str | None]:
    """``(pylsl, None)``, or ``(None, reason)`` when it is missing or its liblsl is unusable.

    The first call confines liblsl to this machine (loopback discovery and data
    sockets, IPv4 only, a session id of its own) before any stream exists.
    """
    try:
        import pylsl
    except ImportError:
        return None, "pylsl not installed"
    except Exception as err:  # noqa: BLE001 - pylsl raises RuntimeError without liblsl
        return None, f"pylsl unusable: {str(err)[:120]}"
    if "configured" not in _lsl_state:
        content = _LSL_CONFIG % os.getpid()
        try:
            pylsl.set_config_content(content)
        except Exception:  # noqa: BLE001 - an older liblsl: the environment variable works
            fd, path = tempfile.mkstemp(prefix="sigstream-lsl-", suffix=".cfg")
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
            os.environ["LSLAPICFG"] = path
        _lsl_state["configured"] = True
    return pylsl, None


class _LslEcho:
    """Two LSL streams on this machine: request outlet -> inlet, echoed by a thread into a
    reply outlet -> inlet. ``round_trip(x)`` pushes one (frame, 1) chunk and waits for it."""

    def __init__(self, pylsl: Any, frame: int) -> None:
        self.frame = frame
        tag = f"{os.getpid()}-{id(self):x}"
        self._outlets, self._inlets = [], []
        req_out = self._outlet(pylsl, f"sigstream-bench-req-{tag}")
        rep_out = self._outlet(pylsl, f"sigstream-bench-rep-{tag}")
        self._req_in = self._inlet(pylsl, f"sigstream-bench-req-{tag}")
        self._rep_in = self._inlet(pylsl, f"sigstream-bench-rep-{tag}")
        self._req_out, self._rep_out = req_out, rep_out
        self._buf = np.empty((frame, 1), dtype=np.float32)
        self.reply = np.empty((frame, 1), dtype=np.float32)
        self._stop = threading.Event()
        self.echo_errors = 0
        self._thread = threading.Thread(target=self._echo, name="lsl-echo", daemon=True)
        self._thread.start()

    def _outlet(self, pylsl: Any, source_id: str) -> Any:
        info = pylsl.StreamInfo(source_id, "sigstream-bench", 1, RATE, pylsl.cf_float32,
                                source_id)
        outlet = pylsl.StreamOutlet(info, chunk_size=self.frame, max_buffered=10)
        self._outlets.append(outlet)
        return outlet

    def _inlet(self, pylsl: Any, source_id: str) -> Any:
        found = pylsl.resolve_byprop("source_id", source_id, 1, _TIMEOUT_S)
        if not found:
            raise TimeoutError(f"LSL stream {source_id} not resolved on this machine")
        inlet = pylsl.StreamInlet(found[0], max_buflen=1, max_chunklen=self.frame)
        inlet.open_stream(_TIMEOUT_S)
        self._inlets.append(inlet)
        return inlet

    def _echo(self) -> None:
        buf, n = self._buf, self.frame
        while not self._stop.is_set():
            _, stamps = self._req_in.pull_chunk(timeout=0.05, max_samples=n, dest_obj=buf)
            if len(stamps) == n:
                self._rep_out.push_chunk(buf)
            elif len(stamps):
                self.echo_errors += 1  # a partial frame: the round trip will time out

    def round_trip(self, x: np.ndarray) -> None:
        self._req_out.push_chunk(x)
        _, stamps = self._rep_in.pull_chunk(timeout=_TIMEOUT_S, max_samples=self.frame,
                                            dest_obj=self.reply)
        if len(stamps) != self.frame:
            raise TimeoutError(f"LSL echo returned {len(stamps)} of {self.frame} samples")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for inlet in self._inlets:  # inlets first, so no receiver sees its outlet vanish
            inlet.close_stream()
        self._inlets.clear()
        self._req_in = self._rep_in = None
        self._outlets.clear()
        self._req_out = self._rep_out = None


def _interleaved(methods: dict[str, Callable[[], None]], round_trips: int, warmup: int,
                 blocks: int = 10) -> dict[str, np.ndarray]:
    """Per-round-trip wall times (s) of each method: warm-up, then ``blocks`` rounds in which
    every method does ``round_trips / blocks`` round trips, the order rotating per round."""
    clock = time.perf_counter
    for fn in methods.values():
        for _ in range(warmup):
            fn()
    blocks = max(1, min(blocks, round_trips))
    per = -(-round_trips // blocks)
    out = {name: np.empty(per * blocks) for name in methods}
    filled = dict.fromkeys(methods, 0)
    names = list(methods)
    for b in range(blocks):
        for name in names[b % len(names):] + names[:b % len(names)]:
            fn, arr, i = methods[name], out[name], filled[name]
            for _ in range(per):
                t0 = clock()
                fn()
                arr[i] = clock() - t0
                i += 1
            filled[name] = i
    return {name: arr[:round_trips] for name, arr in out.items()}


def transport_hop(quick: bool = False, *, round_trips: int | None = None,
                  warmup: int | None = None, frame: int = FRAME, lsl: bool = True) -> dict:
    """Round trip of one (frame, 1) float32 chunk through a Server (identity model) and Client.

    The server runs in a thread of this process (as the pyzmq echo and the LSL echo
    do), bound to a free port on 127.0.0.1. Returns p50 / p99 / IQR in µs for
    ``sigstream``, ``pyzmq`` (DEALER <-> ROUTER echo of the same header and payload
    frames) and ``lsl`` (or ``{"skipped": reason}``), and their ratios.
    """
    from sigstream.core.contract import Identity
    from sigstream.stream.net.client import Client
    from sigstream.stream.net.server import Server, ServerConfig

    n = round_trips or (500 if quick else 2000)
    w = warmup if warmup is not None else (50 if quick else 200)
    x = _signal(frame).reshape(frame, 1)
    frames = wire.encode(wire.Header(stream_id=1, seq=0, channels=1, sample_rate=RATE), x)
    header, payload = bytes(frames[0]), x.tobytes()

    ctx = zmq.Context()
    server = echo = client = lsl_echo = None
    floor = None
    try:
        server = Server(Identity(1), _LOCAL, ServerConfig(idle_timeout=0)).start()
        client = Client(server.endpoint, stream_id=1, sample_rate=RATE, channels=1,
                        context=ctx)
        echo = _EchoRouter(ctx)
        floor = ctx.socket(zmq.DEALER)
        floor.setsockopt(zmq.LINGER, 0)
        floor.setsockopt(zmq.RCVTIMEO, int(_TIMEOUT_S * 1000))
        floor.connect(echo.endpoint)
        bad = [0]

        def sigstream_rt() -> None:
            sent = client.send(x)
            got, y = client.recv(timeout=_TIMEOUT_S)
            if (got.seq != sent.seq or got.stream_id != sent.stream_id
                    or getattr(y, "shape", None) != x.shape):
                bad[0] += 1

        def pyzmq_rt() -> None:
            floor.send_multipart([header, payload])
            floor.recv_multipart()

        methods: dict[str, Callable[[], None]] = {"sigstream": sigstream_rt, "pyzmq": pyzmq_rt}
        lsl_info: dict[str, Any] = {}
        lsl_failed: list[str] = []

        def lsl_rt() -> None:
            if lsl_failed:
                return  # it failed once: the rest of the run goes on without it
            try:
                lsl_echo.round_trip(x)
            except Exception as err:  # noqa: BLE001 - optional comparison, reported
                lsl_failed.append(f"{type(err).__name__}: {str(err)[:160]}")

        if lsl:
            pylsl, reason = _pylsl()
            if pylsl is None:
                lsl_info = {"skipped": reason}
            else:
                try:
                    lsl_echo = _LslEcho(pylsl, frame)
                    methods["lsl"] = lsl_rt
                    lsl_info = {"pylsl": getattr(pylsl, "__version__", None),
                                "liblsl": pylsl.library_version(),
                                "binds_all_interfaces": True, "note": _LSL_NOTE}
                except Exception as err:  # noqa: BLE001 - optional comparison, reported
                    lsl_info = {"skipped": f"LSL setup failed: {str(err)[:160]}"}
        else:
            lsl_info = {"skipped": "not requested"}

        t0 = time.perf_counter()
        times = _interleaved(methods, n, w)
        seconds = time.perf_counter() - t0
        if lsl_failed:
            times.pop("lsl", None)
            lsl_info = {"skipped": f"LSL failed during the run: {lsl_failed[0]}"}
        elif lsl_echo is not None and not np.array_equal(lsl_echo.reply, x):
            lsl_info["echo_mismatch"] = True
    finally:
        if lsl_echo is not None:
            lsl_echo.close()
        if floor is not None:
            floor.close(0)
        if echo is not None:
            echo.close()
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
        ctx.term()

    sig, bare = summarise_us(times["sigstream"]), summarise_us(times["pyzmq"])
    result = {
        "frame": frame, "channels": 1, "dtype": "float32", "host": HOST,
        "server": "thread", "round_trips": n, "warmup": w, "seconds": seconds,
        "sigstream": {**sig, "mismatched_replies": bad[0]},
        "pyzmq": bare,
        "ratio_p50_sigstream_vs_pyzmq": _ratio(sig["p50_us"], bare["p50_us"]),
        "ratio_p99_sigstream_vs_pyzmq": _ratio(sig["p99_us"], bare["p99_us"]),
        "overhead_p50_us": sig["p50_us"] - bare["p50_us"],
    }
    if "lsl" in times:
        s = summarise_us(times["lsl"])
        lsl_info = {**lsl_info, **s,
                    "ratio_p99_lsl_vs_sigstream": _ratio(s["p99_us"], sig["p99_us"]),
                    "ratio_p50_lsl_vs_sigstream": _ratio(s["p50_us"], sig["p50_us"])}
    result["lsl"] = lsl_info
    return result


# -- the server process -----------------------------------------------------------------------


def _export_extractor(folder: str, backend: str) -> tuple[str, str | None, str | None]:
    """``(backend used, model path or None, export error or None)``: ONNX when asked and it
    exports and loads, else torch (the server process builds the model itself)."""
    if backend != "onnx":
        return "torch", None, None
    try:
        from sigstream.bench.timing import exported_bytes
        from sigstream.export.runtime import load_runner

        path = os.path.join(folder, "extractor.onnx")
        with open(path, "wb") as fh:
            fh.write(exported_bytes("extractor", "onnx"))  # made once per process
        load_runner(path, threads=1)
        return "onnx", path, None
    except Exception as err:  # noqa: BLE001 - fall back to torch, reported
        return "torch", None, f"{type(err).__name__}: {str(err)[:200]}"


def _serve_main(spec: dict) -> None:
    """The server process: build the model, warm it up, serve on 127.0.0.1 until stdin says
    stop (or closes), then print the server's stats. First stdout line: where it listens."""
    from sigstream.stream.net.server import Server, ServerConfig
    from sigstream.stream.runner import StreamRunner

    threads = int(spec.get("threads", 1))
    if spec.get("path"):
        from sigstream.export.runtime import load_runner

        model = load_runner(spec["path"], threads=threads)
    else:
        import torch

        torch.set_num_threads(threads)
        model = default_model("extractor")
    for batch, frames in spec.get("warmup", []):  # the first calls of a session are slow
        runner = StreamRunner(model, batch=int(batch), validate=False)
        for _ in range(3):
            runner.step(np.zeros((int(batch), int(frames), model.in_channels), np.float32))
    server = Server(model, _LOCAL, ServerConfig(**spec.get("config", {})))
    server.start()
    print(json.dumps({"endpoint": server.endpoint, "pid": os.getpid(), "hop": model.hop,
                      "in_channels": model.in_channels, "out_channels": model.out_channels,
                      "sample_rate": getattr(model, "sample_rate", None)}), flush=True)
    try:
        sys.stdin.readline()  # "stop", or EOF when the parent is gone
    finally:
        server.stop()
        print(json.dumps({"stats": server.stats()}), flush=True)


class _ServerProcess:
    """``python -m sigstream.bench.zmq.bench --serve SPEC`` as a context manager, so the
    server does not share this process's GIL. ``.info`` holds its first stdout line."""

    def __init__(self, spec: dict, start_timeout: float = 60.0) -> None:
        self.spec, self.start_timeout = spec, start_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.stats: dict | None = None
        self._stopped = False

    def __enter__(self) -> _ServerProcess:
        self._err = tempfile.TemporaryFile()
        threads = str(self.spec.get("threads", 1))
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sigstream.bench.zmq.bench", "--serve",
             json.dumps(self.spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
            env=env)
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], self.start_timeout)
            line = self.proc.stdout.readline() if ready else ""
            if not line:
                raise RuntimeError(f"the server process did not start: {self._stderr()}")
            self.info = json.loads(line)
        except BaseException:
            self._kill()
            self._err.close()
            raise
        return self

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    def _stderr(self) -> str:
        self._err.seek(0)
        text = self._err.read().decode(errors="replace").strip()
        return text[-600:] or "(no output)"

    def stop(self, timeout: float = 30.0) -> dict | None:
        """Stop gracefully; returns the server's final stats (None if it did not say)."""
        if self.proc is None or self._stopped:
            return self.stats
        self._stopped = True
        try:
            out, _ = self.proc.communicate("stop\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            return None
        for line in reversed(out.splitlines()):
            if line.startswith('{"stats"'):
                self.stats = json.loads(line)["stats"]
                break
        return self.stats

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._kill()
            self._err.close()


# -- 2. the served extractor ------------------------------------------------------------------


def served_extractor(quick: bool = False, backend: str = "onnx", *,
                     round_trips: int | None = None, warmup: int | None = None,
                     frame: int = FRAME, threads: int = 1) -> dict:
    """Round trip of (frame, 1) chunks of one 1 kHz stream through the served extractor.

    The Server runs in its own process (ONNX Runtime when ``backend="onnx"`` and the
    export works, else torch); the client sends one chunk, waits for its (frame, 4)
    reply, and repeats, consecutive chunks of one continuous signal. Also reports
    the server's own compute time per model call (from its STATS reply).
    """
    from sigstream.stream.net.client import Client

    n = round_trips or (500 if quick else 2000)
    w = warmup if warmup is not None else (20 if quick else 100)
    x = _signal((n + w) * frame).reshape(-1, frame, 1)
    with tempfile.TemporaryDirectory() as folder:
        used, path, error = _export_extractor(folder, backend)
        spec = {"path": path, "threads": threads, "warmup": [[1, frame]],
                "config": {"idle_timeout": 0}}
        with _ServerProcess(spec) as proc:
            out_channels = proc.info["out_channels"]
            times = np.empty(n)
            bad = 0
            clock = time.perf_counter
            ctx = zmq.Context()
            with Client(proc.endpoint, stream_id=7, sample_rate=RATE, channels=1,
                        context=ctx) as client:
                for i in range(n + w):
                    t0 = clock()
                    sent = client.send(x[i], start=i == 0)
                    got, y = client.recv(timeout=_TIMEOUT_S)
                    t1 = clock()
                    if i >= w:
                        times[i - w] = t1 - t0
                    if (got.seq != sent.seq or got.is_error
                            or getattr(y, "shape", None) != (frame, out_channels)):
                        bad += 1
                server_stats = client.request_stats()
            ctx.term()
    s = summarise_us(times)
    budget_us = frame / RATE * 1e6
    result = {
        "backend": used, "requested_backend": backend, "frame": frame, "sample_rate": RATE,
        "server": "process", "threads": threads, "round_trips": n, "warmup": w,
        "round_trip": s, "mismatched_replies": bad, "frame_duration_us": budget_us,
        "rtf_p99": s["p99_us"] / budget_us,
        "server_compute_us": server_stats.get("compute_us"),
    }
    if error:
        result["export_error"] = error
    return result


# -- 3. serve capacity ------------------------------------------------------------------------


def _capacity_level(endpoint: str, streams: int, chunk: int, seconds: float, sockets: int,
                    reply_bytes: int, drain_timeout: float) -> dict:
    """N paced streams over ``sockets`` DEALER sockets for ``seconds``; see serve_capacity."""
    period = chunk / RATE
    n_chunks = max(2, int(round(seconds / period)))
    nsock = max(1, min(sockets, streams))
    ctx = zmq.Context()
    socks = []
    for _ in range(nsock):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.SNDHWM, 0)  # unlimited: nothing is dropped on this side
        s.setsockopt(zmq.RCVHWM, 0)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    index = {s: i for i, s in enumerate(socks)}

    # every stream plays the same 1 kHz signal from its own offset, pre-encoded per chunk
    bank_len = 1024
    bank = [c.tobytes() for c in _signal(bank_len * chunk, seed=1).reshape(bank_len, chunk)]
    pack, unpack = wire.pack_header, wire.unpack_fields
    f32 = wire.DTYPE_FLOAT32
    start_flag, end_flag, error_flag = wire.START, wire.END, wire.ERROR
    sndmore, noblock = zmq.SNDMORE, zmq.NOBLOCK

    t_send = np.full((n_chunks, streams), np.nan)
    t_recv = np.full((n_chunks, streams), np.nan)
    expected = [0] * streams
    counts = {"sent": 0, "replies": 0, "ok": 0, "errors": 0, "mismatched": 0, "send_failed": 0}
    error_codes: dict[str, int] = {}
    clock = time.perf_counter

    def drain(timeout_ms: int) -> None:
        for sock, _ in poller.poll(timeout_ms):
            i = index[sock]
            while True:
                try:
                    parts = sock.recv_multipart(noblock)
                except zmq.Again:
                    break
                t = clock()
                counts["replies"] += 1
                if len(parts) != 2 or len(parts[0]) != wire.HEADER_SIZE:
                    counts["mismatched"] += 1
                    continue
                _, _, flags, _, _, _, sid, seq, _, _ = unpack(parts[0])
                if flags & error_flag:
                    counts["errors"] += 1
                    try:
                        code = str(json.loads(parts[1]).get("code"))
                    except (ValueError, AttributeError):
                        code = "?"
                    error_codes[code] = error_codes.get(code, 0) + 1
                    if sid < streams and seq == expected[sid]:
                        expected[sid] += 1
                    continue
                if (sid >= streams or sid % nsock != i or seq != expected[sid]
                        or seq >= n_chunks or len(parts[1]) != reply_bytes):
                    counts["mismatched"] += 1
                    if sid < streams and seq >= expected[sid]:
                        expected[sid] = seq + 1
                    continue
                expected[sid] += 1
                t_recv[seq, sid] = t
                counts["ok"] += 1

    cpu0 = time.process_time()
    t0 = clock() + 0.05
    k = 0
    order = list(range(streams))
    while k < n_chunks:
        now = clock()
        due = t0 + k * period
        if now < due:
            left = due - now
            if left > 0.001:
                drain(int(left * 1000))
            else:
                drain(0)
                left = due - clock()
                if left > 0:
                    time.sleep(left)
            continue
        flags = start_flag if k == 0 else (end_flag if k == n_chunks - 1 else 0)
        stamp = time.time_ns()
        row = t_send[k]
        for sid in order:  # the burst: every stream's chunk k
            sock = socks[sid % nsock]
            try:
                sock.send(pack(flags, f32, 1, chunk, sid, k, RATE, stamp), sndmore | noblock)
                sock.send(bank[(k + sid) % bank_len], noblock)
            except zmq.Again:
                counts["send_failed"] += 1
                continue
            row[sid] = clock()
            counts["sent"] += 1
        k += 1
        drain(0)
    end = t0 + n_chunks * period
    deadline = clock() + drain_timeout
    while counts["replies"] < counts["sent"] and clock() < deadline:
        drain(max(1, int(min(0.05, deadline - clock()) * 1000)))
    for s in socks:
        s.close(0)
    ctx.term()

    due_t = t0 + np.arange(n_chunks)[:, None] * period
    got = ~np.isnan(t_recv)
    latency = (t_recv - t_send)[got]
    lag = (t_recv - due_t)[got]
    send_lag = (t_send - due_t)[~np.isnan(t_send)]
    window = min(1.0, seconds / 3)
    due_of = np.broadcast_to(due_t, t_recv.shape)[got] - t0
    first = lag[due_of < window]
    last = lag[due_of >= (end - t0) - window]
    lag_first = float(first.mean()) if first.size else float("nan")
    lag_last = float(last.mean()) if last.size else float("nan")
    mean_lag = float(lag.mean()) if lag.size else float("nan")
    lost = counts["sent"] - counts["replies"]
    kept_up = bool(lost == 0 and counts["errors"] == 0 and counts["mismatched"] == 0
                   and counts["send_failed"] == 0 and lag.size > 0 and mean_lag <= period
                   and lag_last - lag_first <= period)

    def ms(a: np.ndarray, q: float) -> float | None:
        return float(np.percentile(a, q) * 1e3) if a.size else None

    lag_ms = {"mean": mean_lag * 1e3, "p99": ms(lag, 99), "first_s": lag_first * 1e3,
              "last_s": lag_last * 1e3, "growth": (lag_last - lag_first) * 1e3}
    return {
        "streams": streams, "chunk": chunk, "period_ms": period * 1e3, "seconds": seconds,
        "sockets": nsock, "chunks_per_stream": n_chunks,
        "sent": counts["sent"], "received": counts["replies"], "ok": counts["ok"],
        "lost": lost, "errors": counts["errors"], "error_codes": error_codes,
        "mismatched": counts["mismatched"], "send_failed": counts["send_failed"],
        "latency_ms": {"p50": ms(latency, 50), "p99": ms(latency, 99),
                       "max": float(latency.max() * 1e3) if latency.size else None},
        "lag_ms": {**{k: _finite(v) if v is not None else None for k, v in lag_ms.items()},
                   "window_s": window},
        "client_cpu_s": time.process_time() - cpu0,
        "client_send_lag_ms": {"p50": ms(send_lag, 50), "p99": ms(send_lag, 99)},
        "client_limited": bool(send_lag.size and np.percentile(send_lag, 99) > period),
        "kept_up": kept_up,
    }


def serve_capacity(quick: bool = False, streams: int = 1000, chunk: int = 16,
                   seconds: float | None = None, *, levels: tuple[int, ...] | None = None,
                   sockets: int = 8, backend: str = "onnx", threads: int = 1,
                   drain_timeout: float = 5.0,
                   log: Callable[[str], None] | None = None) -> dict:
    """Can ``serve`` hold N concurrent 1 kHz extractor streams in real time here?

    For each N in ``levels`` (default: N/4, N/2, N for N = ``streams``, i.e. 250, 500,
    1000; quick: N only) a fresh Server process (ONNX-backed extractor, or torch if
    the export fails) is started; this process spreads the N streams over
    ``sockets`` DEALER sockets, and every ``chunk`` / 1000 s sends the due chunk of
    every stream in one burst, for ``seconds`` (default 10, quick 2), then waits up
    to ``drain_timeout`` s (quick: at most 2 s) for the last replies. Every reply must
    carry the stream id and sequence number expected next on its socket (else it counts as
    mismatched).

    A level kept up when nothing was lost, rejected or mismatched, replies arrived on
    average within one chunk period of the chunk's due time, and the mean lag of the
    last second exceeds that of the first by at most one period (no backlog growth).
    ``client_limited`` flags a run in which this process itself sent late (p99 of
    send lag over one period): then the figures bound the machine, not the server.
    """
    secs = float(seconds if seconds is not None else (2.0 if quick else 10.0))
    if quick:  # a level that fell behind is not drained for long
        drain_timeout = min(drain_timeout, 2.0)
    if levels is None:
        levels = (streams,) if quick else tuple(sorted({max(1, streams // 4),
                                                        max(1, streams // 2), streams}))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        used, path, error = _export_extractor(folder, backend)
        for n in levels:
            spec = {"path": path, "threads": threads, "warmup": [[1, chunk], [n, chunk]],
                    "config": {"idle_timeout": 0, "max_batch": max(1024, n),
                               "max_streams": max(4096, n), "hwm": 100000}}
            with _ServerProcess(spec) as proc:
                reply_bytes = chunk * proc.info["out_channels"] * 4
                cpu0 = _proc_cpu_s(proc.info["pid"])
                row = _capacity_level(proc.endpoint, n, chunk, secs, sockets, reply_bytes,
                                      drain_timeout)
                cpu1 = _proc_cpu_s(proc.info["pid"])
                stats = proc.stop()
            if cpu0 is not None and cpu1 is not None:
                # the server's CPU time over the level (incl. its drain); near 1 s per second
                # means it used a whole core, much less that the machine starved it
                row["server_cpu_s"] = cpu1 - cpu0
                row["server_cpu_us_per_chunk"] = ((cpu1 - cpu0) / row["ok"] * 1e6
                                                  if row["ok"] else None)
            if stats:
                row["server_stats"] = {k: stats.get(k) for k in
                                 ("chunks", "batches", "batch_size", "compute_us",
                                  "replies_dropped", "rejected_total", "gaps")}
            rows.append(row)
            if log:
                lat = row["latency_ms"]
                log(f"capacity N={n:5d}: sent {row['sent']} lost {row['lost']} mismatched "
                    f"{row['mismatched']}  latency p50 {_f(lat['p50'], '.2f')} ms p99 "
                    f"{_f(lat['p99'], '.2f')} ms  lag {_f(row['lag_ms']['first_s'], '.2f')} -> "
                    f"{_f(row['lag_ms']['last_s'], '.2f')} ms  server CPU "
                    f"{_f(row.get('server_cpu_s'), '.1f')} s  "
                    f"{'kept up' if row['kept_up'] else 'fell behind'}")
    ok = [r["streams"] for r in rows if r["kept_up"]]
    result = {
        "backend": used, "requested_backend": backend, "chunk": chunk, "sample_rate": RATE,
        "seconds": secs, "sockets": sockets, "threads": threads, "server": "process",
        "levels": rows, "max_streams_kept_up": max(ok) if ok else None,
    }
    if error:
        result["export_error"] = error
    return result


# -- all three, and markdown ------------------------------------------------------------------


def run_zmq(quick: bool = False, progress: bool = False, lsl: bool = False) -> dict:
    """All three measurements, JSON-ready (``markdown_zmq`` renders the result).

    ``lsl``: also measure Lab Streaming Layer (needs pylsl). Off by default: liblsl
    listens on all interfaces while it runs, and nothing here should without asking.
    """
    def log(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    hop = transport_hop(quick, lsl=lsl)
    if not lsl:
        hop["lsl"] = {"skipped": "not requested (sigstream bench --lsl; needs pylsl)"}
    log(f"transport hop: sigstream p50 {hop['sigstream']['p50_us']:.1f} us, pyzmq p50 "
        f"{hop['pyzmq']['p50_us']:.1f} us, lsl {hop['lsl'].get('p50_us', 'skipped')}")
    served = served_extractor(quick)
    log(f"served extractor ({served['backend']}): p50 {served['round_trip']['p50_us']:.1f} us "
        f"p99 {served['round_trip']['p99_us']:.1f} us")
    capacity = serve_capacity(quick, log=log)
    # the same with the 256-sample frames of the other two measurements (one level: N)
    frames = serve_capacity(quick, chunk=FRAME, levels=(1000,), log=log)
    return {"schema": SCHEMA, "quick": quick, "transport_hop": hop,
            "served_extractor": served, "serve_capacity": capacity,
            "serve_capacity_frames": frames,
            "seconds": time.perf_counter() - t0}


def _f(value: Any, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def markdown_zmq(result: dict) -> str:
    """Markdown tables for the keys ``transport_hop``, ``served_extractor`` and
    ``serve_capacity`` of ``result`` (the output of :func:`run_zmq`; missing keys are
    left out)."""
    out: list[str] = []
    hop = result.get("transport_hop")
    if hop:
        out += [f"### One ZeroMQ hop: round trip of a {hop['frame']}-sample float32 frame "
                "(127.0.0.1, echo in a thread)", "",
                "| path | p50 (µs) | p99 (µs) | IQR (µs) | p50 / pyzmq | p99 / sigstream |",
                "|---|---:|---:|---:|---:|---:|"]
        sig, bare, lsl = hop["sigstream"], hop["pyzmq"], hop["lsl"]
        rows = [("bare pyzmq DEALER ↔ ROUTER echo", bare),
                ("sigstream Client ↔ Server (identity model)", sig)]
        if "p50_us" in lsl:
            rows.append((f"Lab Streaming Layer (pylsl {lsl.get('pylsl')}, liblsl "
                         f"{lsl.get('liblsl')})", lsl))
        for name, r in rows:
            out.append(f"| {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['iqr_us']:.1f} "
                       f"| {r['p50_us'] / bare['p50_us']:.2f}x | "
                       f"{r['p99_us'] / sig['p99_us']:.2f}x |")
        if "skipped" in lsl:
            out.append(f"| Lab Streaming Layer | skipped: {lsl['skipped']} | | | | |")
        elif lsl.get("note"):
            out += ["", f"LSL: {lsl['note']}."]
        out += ["", f"{hop['round_trips']} round trips each, interleaved; sigstream adds "
                    f"{hop['overhead_p50_us']:.1f} µs (p50) to the bare hop."]
    served = result.get("served_extractor")
    if served:
        rt, comp = served["round_trip"], served.get("server_compute_us") or {}
        out += ["", f"### Served extractor: {served['frame']}-sample frames of a 1 kHz stream, "
                    "one at a time (server in its own process)", "",
                "| backend | p50 (µs) | p99 (µs) | IQR (µs) | server compute p50 (µs) | "
                "frame duration (µs) | p99 / frame duration |",
                "|---|---:|---:|---:|---:|---:|---:|",
                f"| {served['backend']} | {rt['p50_us']:.1f} | {rt['p99_us']:.1f} | "
                f"{rt['iqr_us']:.1f} | {_f(comp.get('p50'))} | "
                f"{served['frame_duration_us']:.0f} | {served['rtf_p99']:.4f} |"]
        if served.get("export_error"):
            out.append(f"\nONNX export failed ({served['export_error'][:80]}); torch served.")
    for key in ("serve_capacity", "serve_capacity_frames"):
        cap = result.get(key)
        if not cap:
            continue
        out += ["", f"### Serve capacity: concurrent 1 kHz extractor streams, chunk "
                    f"{cap['chunk']} ({cap['backend']}, server in its own process, "
                    f"{cap['sockets']} client sockets, {cap['seconds']:g} s per level)", "",
                "| streams | chunks sent | replies | lost | mismatched | errors | "
                "latency p50 (ms) | latency p99 (ms) | mean lag (ms) | lag first → last s (ms) "
                "| server batch mean | server CPU per chunk (µs) | kept up |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in cap["levels"]:
            lat, lag = r["latency_ms"], r["lag_ms"]
            batch = (r.get("server_stats") or {}).get("batch_size") or {}
            kept = "yes" if r["kept_up"] else "no"
            if r.get("client_limited"):
                kept += " (client sent late)"
            out.append(f"| {r['streams']} | {r['sent']} | {r['received']} | {r['lost']} | "
                       f"{r['mismatched']} | {r['errors']} | {_f(lat['p50'], '.2f')} | "
                       f"{_f(lat['p99'], '.2f')} | {_f(lag['mean'], '.2f')} | "
                       f"{_f(lag['first_s'], '.2f')} → {_f(lag['last_s'], '.2f')} | "
                       f"{_f(batch.get('mean'))} | {_f(r.get('server_cpu_us_per_chunk'))} | "
                       f"{kept} |")
        best = cap["max_streams_kept_up"]
        out += ["", f"Largest N that kept up: {best if best is not None else 'none'} "
                    f"(budget {cap['chunk'] / cap['sample_rate'] * 1e3:g} ms per chunk)."]
    return "\n".join(out)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        _serve_main(json.loads(argv[1]))
        return 0
    quick = "--quick" in argv
    result = run_zmq(quick=quick, progress=True)
    if "--json" in argv:
        write_atomic(argv[argv.index("--json") + 1], json.dumps(result, indent=1).encode())
    print(markdown_zmq(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
