"""``sigstream serve --engine ray``: the same ZeroMQ server (wire v1, sessions, limits,
the fast path) whose model state lives in N Ray actors instead of this process.

The gateway is :class:`~sigstream.stream.net.server.Server` with a :class:`ShardedRunner`
in place of its local :class:`~sigstream.stream.runner.StreamRunner`. Each new stream is
placed on the shard holding the fewest streams and stays there (sticky) until it ends;
every model call of the server (one per chunk length and loop iteration) becomes one
call per shard that holds any of its streams, in parallel, each carrying all of that
shard's chunks. Each actor owns a StreamRunner of its streams.

An actor that dies is restarted by Ray (``max_restarts=-1``) with no state. Every call
carries the actor incarnation the gateway knows; the restarted actor refuses a call for
an older one, and a call on an actor that dies fails. Either way the gateway re-creates
that shard's streams on the new incarnation (fresh state), marks them lost, and runs the
call again: those streams' replies carry RESET and equal a fresh start (the state rule of
the wire spec), the other shards' streams continue exactly.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import numpy as np

from sigstream.core.errors import ConfigError

__all__ = ["ShardedRunner", "ShardActor"]

STALE = "stale"  # an actor's answer to a call for an incarnation it is not


class ShardActor:
    """A Ray actor: the model loaded once and a StreamRunner of this shard's streams."""

    def __init__(self, model: str, backend: str, threads: int) -> None:
        import torch

        from sigstream.export.backends import load_model
        from sigstream.stream.runner import StreamRunner

        torch.set_num_threads(threads)
        self.runner = StreamRunner(load_model(model, backend, threads=threads), batch=0)
        self.runner.validate = False  # the gateway validated every message
        self.incarnation = uuid.uuid4().hex

    def hello(self) -> tuple[str, int]:
        return self.incarnation, os.getpid()

    def add(self, inc: str, n: int) -> Any:
        if inc != self.incarnation:
            return STALE
        return self.runner.add_streams(n)

    def remove(self, inc: str, rows: list[int]) -> Any:
        if inc != self.incarnation:
            return STALE
        self.runner.remove_streams(rows)
        return None

    def reset(self, inc: str, rows: list[int]) -> Any:
        if inc != self.incarnation:
            return STALE
        self.runner.reset(rows)
        return None

    def step(self, inc: str, x: np.ndarray, rows: list[int]) -> Any:
        if inc != self.incarnation:
            return STALE
        y = self.runner.step(x, rows=rows)
        counts = self.runner.counts
        return np.asarray(y), (None if counts is None else np.asarray(counts))


class ShardedRunner:
    """The StreamRunner surface the server uses (``add_streams``, ``remove_streams``,
    ``reset``, ``step(x, rows)``, ``split``, ``counts``, ``hop``, ``in_channels``,
    ``model``), over ``shards`` Ray actors. ``take_lost(rows)``: which of the rows just
    stepped lost their state to an actor restart (their replies must carry RESET)."""

    def __init__(self, model: str, backend: str, shards: int, threads: int = 1,
                 address: str | None = None) -> None:
        from sigstream.export.backends import load_model

        if shards < 1:
            raise ConfigError(f"--shards must be >= 1, got {shards}")
        self.model = load_model(model, backend, threads=threads)  # metadata: hop, rate, ...
        self.hop = int(getattr(self.model, "hop", 1))
        self.in_channels = int(getattr(self.model, "in_channels", 0))
        self.decimation = int(getattr(self.model, "decimation", 1) or 1)
        self.validate = False
        self.counts: np.ndarray | None = None
        from sigstream.cli.ray_engine import start_ray

        self.ray, self.started = start_ray(address, shards)
        ray = self.ray
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(ShardActor)
        self.actors = [actor.remote(model, backend, threads) for _ in range(shards)]
        self.incarnations = [ray.get(a.hello.remote())[0] for a in self.actors]
        self.owner: list[tuple[int, int]] = []  # global row -> (shard, local row)
        self.sizes = [0] * shards  # streams per shard
        self._lost: set[int] = set()
        self.restarts = 0

    @property
    def batch(self) -> int:
        return len(self.owner)

    def pids(self) -> list[int]:
        return [self.ray.get(a.hello.remote())[1] for a in self.actors]

    # -- calls with recovery ----------------------------------------------------------------
    def _gather(self, calls: dict[int, tuple[str, tuple]]) -> dict[int, Any]:
        """Calls on several shards at once; a shard whose actor restarted (or died during
        the call) is recovered and its call run again."""
        ray = self.ray
        refs = {s: getattr(self.actors[s], m).remote(self.incarnations[s], *a)
                for s, (m, a) in calls.items()}
        out: dict[int, Any] = {}
        for s, ref in refs.items():
            for _attempt in range(3):
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError:  # incl. ActorUnavailableError
                    result = STALE  # died during the call, or restarting: recover and retry
                if not (isinstance(result, str) and result == STALE):
                    break
                self._recover(s)
                m, a = calls[s]
                if m in ("remove", "reset"):  # the fresh state already is what they ask
                    result = None if m == "reset" else self._recovered_remove(s, a[0])
                    break
                ref = getattr(self.actors[s], m).remote(self.incarnations[s], *a)
            else:
                raise RuntimeError(f"shard {s}: its actor keeps restarting")
            out[s] = result
        return out

    def _recover(self, shard: int) -> None:
        """The shard's actor restarted: learn its incarnation, re-create its streams (fresh
        state), mark them lost."""
        ray = self.ray
        before = self.incarnations[shard]
        for _ in range(600):
            try:
                self.incarnations[shard] = ray.get(self.actors[shard].hello.remote())[0]
                break
            except ray.exceptions.RayActorError:  # incl. ActorUnavailableError: restarting
                time.sleep(0.05)
        inc, n = self.incarnations[shard], self.sizes[shard]
        if inc == before:
            # the same actor, unreachable for a moment: the call may or may not have run,
            # so its streams' state is unknown. Start them afresh, as after a restart
            if n:
                ray.get(self.actors[shard].reset.remote(inc, list(range(n))))
        else:
            self.restarts += 1
            if n:
                ray.get(self.actors[shard].add.remote(inc, n))
        self._lost |= {g for g, (s, _) in enumerate(self.owner) if s == shard}

    def _recovered_remove(self, shard: int, rows: list[int]) -> None:
        self.ray.get(self.actors[shard].remove.remote(self.incarnations[shard], rows))

    def take_lost(self, rows: Any) -> set[int]:
        """Which of ``rows`` (just stepped) lost their state to a restart since they were
        last stepped; each is reported once, with the step that first follows its loss (a
        lost stream not stepped in this call stays pending until it is)."""
        taken = self._lost & set(int(r) for r in rows)
        self._lost -= taken
        return taken

    # -- the runner surface ---------------------------------------------------------------
    def add_streams(self, n: int = 1) -> list[int]:
        first = len(self.owner)
        per: dict[int, int] = {}
        for _ in range(n):  # fewest streams first; ties to the lowest shard
            s = min(range(len(self.sizes)), key=lambda k: (self.sizes[k] + per.get(k, 0), k))
            per[s] = per.get(s, 0) + 1
            self.owner.append((s, self.sizes[s] + per[s] - 1))
        self._gather({s: ("add", (k,)) for s, k in per.items()})
        for s, k in per.items():
            self.sizes[s] += k
        return list(range(first, first + n))

    def remove_streams(self, indices: list[int]) -> None:
        gone = set(int(i) for i in indices)
        per: dict[int, list[int]] = {}
        for g in sorted(gone):
            s, local = self.owner[g]
            per.setdefault(s, []).append(local)
        if per:
            self._gather({s: ("remove", (rows,)) for s, rows in per.items()})
        kept = [g for g in range(len(self.owner)) if g not in gone]
        new_index = {g: i for i, g in enumerate(kept)}
        owners = [self.owner[g] for g in kept]
        self.sizes = [0] * len(self.sizes)
        self.owner = []
        for s, _ in owners:  # local rows shift down within each shard, in order
            self.owner.append((s, self.sizes[s]))
            self.sizes[s] += 1
        self._lost = {new_index[g] for g in self._lost if g in new_index}

    def reset(self, rows: Any) -> None:
        per: dict[int, list[int]] = {}
        for g in np.asarray(rows, dtype=int).tolist():
            s, local = self.owner[g]
            per.setdefault(s, []).append(local)
        if per:
            self._gather({s: ("reset", (r,)) for s, r in per.items()})

    def step(self, x: np.ndarray, rows: Any = None) -> np.ndarray:
        rows = list(range(len(self.owner))) if rows is None else [int(r) for r in rows]
        per: dict[int, list[int]] = {}  # shard -> positions in rows
        for i, g in enumerate(rows):
            per.setdefault(self.owner[g][0], []).append(i)
        x = np.asarray(x, dtype=np.float32)
        results = self._gather({s: ("step", (np.ascontiguousarray(x[pos]),
                                             [self.owner[rows[i]][1] for i in pos]))
                                for s, pos in per.items()})
        t_out = max(int(results[s][0].shape[1]) for s in per)
        c_out = int(next(iter(results.values()))[0].shape[2])
        y = np.full((len(rows), t_out, c_out), np.nan, dtype=np.float32)
        counts = np.full(len(rows), t_out, dtype=np.int64)
        ragged = False
        for s, pos in per.items():
            ys, cs = results[s]
            y[pos, :ys.shape[1]] = ys
            if cs is not None:
                counts[pos] = cs
                ragged = True
        self.counts = counts if ragged else None
        return y

    def split(self, y: np.ndarray) -> list[np.ndarray]:
        counts = self.counts if self.counts is not None else [y.shape[1]] * y.shape[0]
        return [y[b, :int(n)] for b, n in enumerate(counts)]

    def describe(self) -> dict:
        """For STATS: the engine, each shard's streams and actor process id, restarts."""
        return {"name": "ray", "shards": len(self.actors), "streams_per_shard": self.sizes,
                "actor_pids": self.pids(), "restarts": self.restarts}

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
