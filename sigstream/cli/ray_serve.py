"""``sigstream serve --engine ray``: the same ZeroMQ server (wire v1, sessions, limits,
the fast path) whose model state lives in N Ray actors instead of this process.

The gateway is :class:`~sigstream.stream.net.server.Server` with a :class:`ShardedRunner`
in place of its local :class:`~sigstream.stream.runner.StreamRunner`. Each new stream is
placed on the shard holding the fewest streams and stays there (sticky) until it ends;
every model call of the server (one per chunk length and loop iteration) becomes one
call per shard that holds any of its streams, in parallel, each carrying all of that
shard's chunks. Each actor owns a StreamRunner of its streams.

**Ray is the control plane, ZeroMQ the data plane.** Ray places the actors, starts them
and restarts them; the chunks do not travel as Ray tasks. Each actor binds one ZeroMQ
socket (CURVE-encrypted with a key pair made for it by the gateway and handed over through
Ray) on its node's address and answers the gateway's calls there in a loop that is one
long-running Ray task. A Ray actor call costs about 1.7 ms p50 / 4-5 ms p99 on an idle
2-core machine, the ZeroMQ round trip a tenth of that; Ray's compiled graphs (about 0.5 ms)
keep every actor spinning on a core while idle (measured: 2.9 CPU-seconds in 3 s).

An actor that dies is restarted by Ray (``max_restarts=-1``) with no state: its serving
task fails, which the gateway sees while it waits for replies. The gateway then learns the
new incarnation (a new socket), re-creates that shard's streams on it (fresh state), marks
them lost, and runs the call again: those streams' replies carry RESET and equal a fresh
start (the state rule of the wire spec), the other shards' streams continue exactly.

Shards can be added while serving (``--max-shards``): a new actor starts in the
background when every shard holds ``--streams-per-shard`` streams, and takes new streams
once it answers. Existing streams stay where they are.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import numpy as np

from sigstream.core.errors import ConfigError

__all__ = ["ShardedRunner", "ShardActor", "check_growth"]

STALE = "stale"  # an actor's answer to a call for an incarnation it is not
POLL_S = 0.05  # the gateway checks its actors' liveness this often while it waits


def check_growth(shards: int, max_shards: int | None, streams_per_shard: int) -> int:
    """The largest number of shards, or one error line for options that do not fit."""
    if shards < 1:
        raise ConfigError(f"--shards must be >= 1, got {shards}")
    top = shards if max_shards is None else max_shards
    if top < shards:
        raise ConfigError(f"--max-shards ({top}) is below --shards ({shards})")
    if top > shards and streams_per_shard < 1:
        raise ConfigError("--max-shards needs --streams-per-shard: how many streams a shard "
                          "holds before another one starts")
    if streams_per_shard and top == shards:
        raise ConfigError("--streams-per-shard needs --max-shards above --shards")
    return top


def _node_host() -> str:
    """The address this actor's node is reached at (127.0.0.1 for a private local Ray)."""
    import ray

    return str(ray.util.get_node_ip_address())


class ShardActor:
    """A Ray actor: the model loaded once, a StreamRunner of this shard's streams, and a
    ZeroMQ ROUTER socket (CURVE server) that :meth:`serve` answers the gateway on."""

    def __init__(self, model: str, backend: str, threads: int, secret: bytes | None) -> None:
        import torch
        import zmq

        from sigstream.export.backends import load_model
        from sigstream.stream.runner import StreamRunner

        torch.set_num_threads(threads)
        self.runner = StreamRunner(load_model(model, backend, threads=threads), batch=0)
        self.runner.validate = False  # the gateway validated every message
        self.incarnation = uuid.uuid4().hex
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        if secret is not None:
            self.sock.curve_server = True
            self.sock.curve_secretkey = secret
        port = self.sock.bind_to_random_port(f"tcp://{_node_host()}")
        self.endpoint = f"tcp://{_node_host()}:{port}"

    def hello(self) -> tuple[str, int, str]:
        return self.incarnation, os.getpid(), self.endpoint

    def serve(self) -> None:
        """Answer the gateway's calls until the actor is killed: frames ``[json, data]``
        in, ``[json, y, counts]`` out."""
        sock = self.sock
        while True:
            ident, head, data = sock.recv_multipart(copy=False)
            h = json.loads(head.bytes)
            try:
                reply = self._call(h, data)
            except Exception as e:  # noqa: BLE001 - the gateway raises it as its own error
                reply = ({"id": h.get("id"), "error": f"{type(e).__name__}: {e}"},)
            sock.send_multipart([ident, json.dumps(reply[0]).encode(), *reply[1:]], copy=False)

    def _call(self, h: dict, data: Any) -> tuple:
        base = {"id": h["id"]}
        if h["inc"] != self.incarnation:
            return ({**base, "stale": True},)
        op = h["op"]
        r = self.runner
        if op == "step":
            x = np.frombuffer(data, dtype=np.float32).reshape(h["shape"])
            y = np.ascontiguousarray(r.step(x, rows=h["rows"]))
            counts = r.counts
            out = {**base, "dtype": y.dtype.str, "shape": list(y.shape),
                   "counts": counts is not None}
            c = b"" if counts is None else np.ascontiguousarray(counts, dtype=np.int64)
            return out, y, c
        if op == "add":
            r.add_streams(h["n"])
        elif op == "remove":
            r.remove_streams(h["rows"])
        elif op == "reset":
            r.reset(h["rows"])
        else:
            return ({**base, "error": f"unknown op {op!r}"},)
        return (base,)


class _Shard:
    """The gateway's side of one actor: its Ray handle, incarnation, process id, the
    running serve task and a DEALER socket (CURVE client) to its endpoint."""

    def __init__(self, ctx: Any, actor: Any, public: bytes | None) -> None:
        self.ctx, self.actor, self.public = ctx, actor, public
        self.sock: Any = None
        self.inc = ""
        self.pid = 0
        self.serving: Any = None  # the ObjectRef of the actor's serve() task
        self.size = 0  # streams on this shard

    def open(self, hello: tuple[str, int, str]) -> None:
        """Connect to the incarnation that answered ``hello`` and start its serve loop."""
        import zmq

        self.inc, self.pid, endpoint = hello
        if self.sock is not None:
            self.sock.close(linger=0)
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        if self.public is not None:
            sock.curve_serverkey = self.public
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.connect(endpoint)
        self.sock = sock
        self.serving = self.actor.serve.remote()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


class ShardedRunner:
    """The StreamRunner surface the server uses (``add_streams``, ``remove_streams``,
    ``reset``, ``step(x, rows)``, ``split``, ``counts``, ``hop``, ``in_channels``,
    ``model``), over Ray actors. ``take_lost(rows)``: which of the rows just stepped lost
    their state to an actor restart (their replies must carry RESET)."""

    def __init__(self, model: str, backend: str, shards: int, threads: int = 1,
                 address: str | None = None, max_shards: int | None = None,
                 streams_per_shard: int = 0, start_timeout: float = 120.0) -> None:
        import zmq

        from sigstream.export.backends import load_model

        self.max_shards = check_growth(shards, max_shards, streams_per_shard)
        self.streams_per_shard = streams_per_shard
        self.start_timeout = start_timeout
        self.failed_starts = 0  # shards added while serving that did not come up
        self.model_spec, self.backend, self.threads = model, backend, threads
        self.model = load_model(model, backend, threads=threads)  # metadata: hop, rate, ...
        self.hop = int(getattr(self.model, "hop", 1))
        self.in_channels = int(getattr(self.model, "in_channels", 0))
        self.decimation = int(getattr(self.model, "decimation", 1) or 1)
        self.validate = False
        self.counts: np.ndarray | None = None
        from sigstream.cli.ray_engine import start_ray

        self.ray, self.started = start_ray(address, shards)
        self.curve = bool(zmq.has("curve"))
        self.ctx = zmq.Context()
        self._actor_cls = self.ray.remote(num_cpus=1, max_restarts=-1,
                                          max_task_retries=0)(ShardActor)
        self.shards: list[_Shard] = []
        self.pending: list[tuple[_Shard, Any, float]] = []  # started, not yet answering
        self.owner: list[tuple[int, int]] = []  # global row -> (shard, local row)
        self._lost: set[int] = set()
        self._ids = 0
        self.restarts = 0
        self.added = 0  # shards added while serving
        first = [self._start_actor() for _ in range(shards)]
        try:
            for sh, ref, _ in first:
                sh.open(self._started(ref, deadline=time.monotonic() + start_timeout))
                self.shards.append(sh)
        except BaseException:  # nothing half-started is left running
            for sh, _, _ in first:
                sh.close()
                self.ray.kill(sh.actor)
            self.ctx.term()
            if self.started:
                self.ray.shutdown()
            raise

    def _started(self, ref: Any, deadline: float) -> tuple[str, int, str]:
        """An actor's first hello, or one error line: it failed to start (e.g. the model
        does not load on its node), or no node had room for it before the deadline."""
        ray = self.ray
        ready, _ = ray.wait([ref], timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise ConfigError(f"a Ray actor did not start within {self.start_timeout:g} s: "
                              "no node has a free CPU for it (each shard takes one), or its "
                              "model takes longer to load (--start-timeout)")
        try:
            return tuple(ray.get(ref))  # type: ignore[return-value]
        except ray.exceptions.RayError as e:
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            cause = next((ln.strip() for ln in reversed(lines) if "Error" in ln), lines[-1]
                         if lines else type(e).__name__)
            raise ConfigError(f"a Ray actor failed to start: {cause}") from None

    def _start_actor(self) -> tuple[_Shard, Any, float]:
        import zmq

        public, secret = zmq.curve_keypair() if self.curve else (None, None)
        actor = self._actor_cls.remote(self.model_spec, self.backend, self.threads, secret)
        return _Shard(self.ctx, actor, public), actor.hello.remote(), time.monotonic()

    @property
    def batch(self) -> int:
        return len(self.owner)

    @property
    def sizes(self) -> list[int]:
        return [sh.size for sh in self.shards]

    def pids(self) -> list[int]:
        return [sh.pid for sh in self.shards]

    # -- growing -------------------------------------------------------------------------
    def _take_ready(self) -> None:
        """Take in the shards started earlier that answer now (never waits); give up on one
        that failed or did not start within --start-timeout (a later one may be tried)."""
        ray = self.ray
        for item in list(self.pending):
            sh, ref, since = item
            ready, _ = ray.wait([ref], timeout=0)
            late = time.monotonic() - since > self.start_timeout
            if not ready and not late:
                continue
            self.pending.remove(item)
            try:
                if not ready:
                    raise ConfigError("did not start in time")
                sh.open(ray.get(ref))
            except (ray.exceptions.RayError, ConfigError):
                ray.kill(sh.actor)
                self.failed_starts += 1
                continue
            self.shards.append(sh)
            self.added += 1

    def _grow(self) -> None:
        """Start a shard when every shard is full and --max-shards allows; take in those
        started earlier that answer now."""
        if self.pending:
            self._take_ready()
        if (self.streams_per_shard and not self.pending
                and len(self.shards) < self.max_shards
                and min(self.sizes) >= self.streams_per_shard):
            self.pending.append(self._start_actor())

    # -- calls with recovery ----------------------------------------------------------------
    def _gather(self, calls: dict[int, tuple[dict, Any]]) -> dict[int, tuple]:
        """Calls on several shards at once (header fields, data); a shard whose actor died
        is recovered and its call run again."""
        import zmq

        out: dict[int, tuple] = {}
        waiting: dict[int, int] = {}  # shard -> call id
        for s in calls:
            waiting[s] = self._send(s, *calls[s])
        poller = zmq.Poller()
        for s in waiting:
            poller.register(self.shards[s].sock, zmq.POLLIN)
        while waiting:
            ready = dict(poller.poll(int(POLL_S * 1000)))
            for s in list(waiting):
                sh = self.shards[s]
                if sh.sock in ready:
                    frames = sh.sock.recv_multipart()
                    head = json.loads(frames[0])
                    if head.get("id") != waiting[s]:
                        continue  # a late answer to a call given up on
                    if head.get("stale"):
                        raise RuntimeError(f"shard {s}: answered for another incarnation")
                    if "error" in head:
                        raise RuntimeError(f"shard {s}: {head['error']}")
                    out[s] = (head, *frames[1:])
                    del waiting[s]
            if not ready and waiting:  # nothing came: are the actors still serving?
                done, _ = self.ray.wait([self.shards[s].serving for s in waiting],
                                        num_returns=len(waiting), timeout=0)
                for s in [s for s in waiting if self.shards[s].serving in done]:
                    poller.unregister(self.shards[s].sock)
                    head, data = calls[s]
                    if self._recover(s) and head["op"] in ("remove", "reset"):
                        # fresh state already is what they ask; rows removed go below
                        if head["op"] == "remove":
                            self._gather({s: (head, data)})
                        out[s] = ({},)
                        del waiting[s]
                        continue
                    waiting[s] = self._send(s, head, data)
                    poller.register(self.shards[s].sock, zmq.POLLIN)
        return out

    def _send(self, s: int, head: dict, data: Any) -> int:
        self._ids += 1
        sh = self.shards[s]
        sh.sock.send_multipart([json.dumps({**head, "id": self._ids, "inc": sh.inc}).encode(),
                                data], copy=False)
        return self._ids

    def _recover(self, shard: int) -> bool:
        """The shard's serving task ended (its actor died, or Ray lost it for a moment):
        make sure it runs a fresh incarnation, re-create its streams there (fresh state),
        mark them lost. True when the streams were re-created."""
        ray = self.ray
        sh = self.shards[shard]
        before = sh.inc
        for _ in range(1200):
            try:
                hello = ray.get(sh.actor.hello.remote(), timeout=30)
                break
            except ray.exceptions.GetTimeoutError:
                # the old incarnation is alive but its serve task was lost: restart it, so
                # that no stream's state is left in doubt
                ray.kill(sh.actor, no_restart=False)
            except ray.exceptions.RayActorError:  # incl. ActorUnavailableError: restarting
                time.sleep(0.05)
        else:
            raise RuntimeError(f"shard {shard}: its actor does not come back")
        if hello[0] == before:  # cannot answer for its streams' state: start it again
            ray.kill(sh.actor, no_restart=False)
            return self._recover(shard)
        self.restarts += 1
        sh.open(hello)
        if sh.size:
            self._gather({shard: ({"op": "add", "n": sh.size}, b"")})
        self._lost |= {g for g, (s, _) in enumerate(self.owner) if s == shard}
        return True

    def take_lost(self, rows: Any) -> set[int]:
        """Which of ``rows`` (just stepped) lost their state to a restart since they were
        last stepped; each is reported once, with the step that first follows its loss (a
        lost stream not stepped in this call stays pending until it is)."""
        taken = self._lost & set(int(r) for r in rows)
        self._lost -= taken
        return taken

    # -- the runner surface ---------------------------------------------------------------
    def add_streams(self, n: int = 1) -> list[int]:
        self._grow()
        first = len(self.owner)
        per: dict[int, int] = {}
        sizes = self.sizes
        for _ in range(n):  # fewest streams first; ties to the lowest shard
            s = min(range(len(sizes)), key=lambda k: (sizes[k] + per.get(k, 0), k))
            per[s] = per.get(s, 0) + 1
            self.owner.append((s, sizes[s] + per[s] - 1))
        self._gather({s: ({"op": "add", "n": k}, b"") for s, k in per.items()})
        for s, k in per.items():
            self.shards[s].size += k
        return list(range(first, first + n))

    def remove_streams(self, indices: list[int]) -> None:
        gone = set(int(i) for i in indices)
        per: dict[int, list[int]] = {}
        for g in sorted(gone):
            s, local = self.owner[g]
            per.setdefault(s, []).append(local)
        if per:
            self._gather({s: ({"op": "remove", "rows": rows}, b"") for s, rows in per.items()})
        kept = [g for g in range(len(self.owner)) if g not in gone]
        new_index = {g: i for i, g in enumerate(kept)}
        owners = [self.owner[g] for g in kept]
        for sh in self.shards:
            sh.size = 0
        self.owner = []
        for s, _ in owners:  # local rows shift down within each shard, in order
            self.owner.append((s, self.shards[s].size))
            self.shards[s].size += 1
        self._lost = {new_index[g] for g in self._lost if g in new_index}

    def reset(self, rows: Any) -> None:
        per: dict[int, list[int]] = {}
        for g in np.asarray(rows, dtype=int).tolist():
            s, local = self.owner[g]
            per.setdefault(s, []).append(local)
        if per:
            self._gather({s: ({"op": "reset", "rows": r}, b"") for s, r in per.items()})

    def step(self, x: np.ndarray, rows: Any = None) -> np.ndarray:
        rows = list(range(len(self.owner))) if rows is None else [int(r) for r in rows]
        per: dict[int, list[int]] = {}  # shard -> positions in rows
        for i, g in enumerate(rows):
            per.setdefault(self.owner[g][0], []).append(i)
        x = np.asarray(x, dtype=np.float32)
        calls = {}
        for s, pos in per.items():
            xs = np.ascontiguousarray(x[pos])
            calls[s] = ({"op": "step", "rows": [self.owner[rows[i]][1] for i in pos],
                         "shape": list(xs.shape)}, xs)
        results = self._gather(calls)
        ys = {s: np.frombuffer(r[1], dtype=r[0]["dtype"]).reshape(r[0]["shape"])
              for s, r in results.items()}
        t_out = max(int(y.shape[1]) for y in ys.values())
        c_out = int(next(iter(ys.values())).shape[2])
        y = np.full((len(rows), t_out, c_out), np.nan, dtype=np.float32)
        counts = np.full(len(rows), t_out, dtype=np.int64)
        ragged = False
        for s, pos in per.items():
            y[pos, :ys[s].shape[1]] = ys[s]
            if results[s][0]["counts"]:
                counts[pos] = np.frombuffer(results[s][2], dtype=np.int64)
                ragged = True
        self.counts = counts if ragged else None
        return y

    def split(self, y: np.ndarray) -> list[np.ndarray]:
        counts = self.counts if self.counts is not None else [y.shape[1]] * y.shape[0]
        return [y[b, :int(n)] for b, n in enumerate(counts)]

    def describe(self) -> dict:
        """For STATS: the engine, each shard's streams and actor process id, restarts,
        shards added while serving and shards starting."""
        if self.pending:
            self._take_ready()
        return {"name": "ray", "shards": len(self.shards), "streams_per_shard": self.sizes,
                "actor_pids": self.pids(), "restarts": self.restarts, "added": self.added,
                "starting": len(self.pending), "failed_starts": self.failed_starts,
                "max_shards": self.max_shards,
                "transport": "zmq+curve" if self.curve else "zmq"}

    def close(self) -> None:
        for sh in self.shards + [sh for sh, _, _ in self.pending]:
            sh.close()
            self.ray.kill(sh.actor)
        self.shards, self.pending = [], []
        self.ctx.term()
