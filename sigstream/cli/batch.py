"""``sigstream batch``: stream many files through one model, each exactly as ``sigstream run``
would, on this machine (``--engine local``, worker processes) or on a Ray cluster
(``--engine ray``, one actor per worker, each holding the model once).

A job is one input file and its output path (``OUT/<name>``, the input's name and
format). Every job runs the same pipeline as ``run`` (source, optional ``--resample``,
model stage, sink; the same block), so its output equals ``run``'s on that file bit for
bit on the same backend. The output is written under a temporary name and renamed when
complete, so a failed or interrupted job leaves no partial file; a failed job is one line
and the others go on.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sigstream.core.errors import ConfigError, InputError, SigstreamError

__all__ = ["Settings", "Job", "plan", "process", "run_local", "run_ray"]

SUFFIXES = (".wav", ".npy", ".npz", ".flac")


@dataclass(frozen=True)
class Settings:
    """What every job shares (picklable: it travels to worker processes and actors)."""

    model: str
    backend: str
    threads: int = 1
    block: int = 256
    resample: bool = False
    pick: tuple[int, ...] | None = None  # run's --pick / --mix (0-based)
    mix: bool = False


@dataclass(frozen=True)
class Job:
    source: str
    output: str


def plan(patterns: Iterable[str], out_dir: str, overwrite: bool = False) -> list[Job]:
    """The jobs for every file the glob ``patterns`` match (sorted, each once): one error
    line for a pattern that matches nothing, an unsupported suffix, two inputs with the
    same name, an output that exists (without ``overwrite``) or an output folder that is
    a file."""
    files: list[str] = []
    for pattern in patterns:
        hits = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
        if not hits:
            raise InputError(f"--inputs {pattern!r} matches no file")
        files += [h for h in hits if h not in files]
    bad = [f for f in files if Path(f).suffix.lower() not in SUFFIXES]
    if bad:
        raise InputError(f"{bad[0]!r}: batch reads {', '.join(SUFFIXES)} files")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_dir!r} is a file, not a folder")
    seen: dict[str, str] = {}
    jobs = []
    for f in files:
        name = Path(f).name
        if name in seen:
            raise InputError(f"{seen[name]!r} and {f!r} would both write {out / name}: "
                             f"rename one or run them in two batches")
        seen[name] = f
        target = out / name
        if target.exists() and not overwrite:
            raise InputError(f"{target} exists: remove it or add --overwrite")
        jobs.append(Job(f, str(target)))
    return jobs


_MODELS: dict[tuple[str, str, int], Any] = {}  # one loaded model per worker and settings


def _model(s: Settings) -> Any:
    key = (s.model, s.backend, s.threads)
    if key not in _MODELS:
        from sigstream.export.backends import load_model

        _MODELS[key] = load_model(s.model, s.backend, threads=s.threads)
    return _MODELS[key]


def process(job: Job, s: Settings) -> dict:
    """Run one job; returns its summary (``ok``, samples in and out, seconds) or, for an
    error a user can cause, ``ok`` False and the error's line. The output appears only
    when complete."""
    from sigstream.cli.commands.run import model_source, model_stages
    from sigstream.cli.specs import make_sink
    from sigstream.core.files import temp_name
    from sigstream.stream.pipeline import Pipeline, PipelineConfig
    from sigstream.stream.stage import ModelStage

    t0 = time.perf_counter()
    tmp = temp_name(job.output) + Path(job.output).suffix  # the sink sees the real suffix
    try:
        model = _model(s)
        stage = ModelStage(model)
        source = model_source(job.source, model)
        try:
            stages = model_stages(stage, source, s.model, job.source, s.resample, quiet=True,
                                  pick=list(s.pick) if s.pick else None, mix=s.mix)
            kind = Path(job.output).suffix.lower().lstrip(".")
            sink = make_sink(f"{'npy' if kind in ('npy', 'npz') else 'wav'}:{tmp}")
            pipe = Pipeline(source, stages, sink, PipelineConfig(block=s.block))
        except BaseException:
            source.close()
            raise
        stats = pipe.run()
        os.replace(tmp, job.output)
        return {"source": job.source, "output": job.output, "ok": True,
                "samples_in": stats.samples_in, "samples_out": stats.samples_out,
                "seconds": time.perf_counter() - t0}
    except SigstreamError as err:
        return {"source": job.source, "output": job.output, "ok": False, "error": str(err),
                "seconds": time.perf_counter() - t0}
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_local(jobs: list[Job], s: Settings, workers: int = 1) -> Iterator[dict]:
    """The jobs' summaries as they finish: in this process with one worker, else in a
    pool of ``workers`` processes (each loads the model once)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield process(job, s)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no forked torch/zmq threads
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                             initializer=_worker_init, initargs=(s.threads,)) as pool:
        futures = [pool.submit(process, job, s) for job in jobs]
        for f in as_completed(futures):
            yield f.result()


def run_ray(jobs: list[Job], s: Settings, workers: int = 1, address: str | None = None
            ) -> Iterator[dict]:
    """The jobs' summaries as they finish, computed by ``workers`` Ray actors (each holds
    the model once). ``address``: an existing cluster (``auto``, ``ray://host:port``;
    its workers must see the input and output paths); None starts a private local one,
    bound to 127.0.0.1 with no dashboard, stopped at the end."""
    from sigstream.cli.ray_engine import start_ray

    ray, started = start_ray(address, workers)
    try:
        actor = ray.remote(num_cpus=1)(_RayWorker)
        pool = [actor.remote(asdict(s)) for _ in range(max(1, min(workers, len(jobs))))]
        pending: dict[Any, Any] = {}  # a job's result ref -> the actor computing it
        queue = list(jobs)
        free = list(pool)
        while queue or pending:
            while queue and free:
                w, job = free.pop(), queue.pop(0)
                pending[w.process.remote(job.source, job.output)] = w
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            free.append(pending.pop(ref))
            yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


class _RayWorker:
    """A Ray actor: the model loaded once, then one job per call."""

    def __init__(self, settings: dict) -> None:
        _worker_init(settings["threads"])
        self.settings = Settings(**settings)

    def process(self, source: str, output: str) -> dict:
        return process(Job(source, output), self.settings)


def report(results: Iterable[dict], total: int, quiet: bool,
           out: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
           ) -> list[dict]:
    """Print a line per finished job (``[k/N] src -> dst``, or the error) and return them."""
    done: list[dict] = []
    for r in results:
        done.append(r)
        if r["ok"] and not quiet:
            out(f"[{len(done)}/{total}] {r['source']} -> {r['output']}: {r['samples_in']} "
                f"samples in, {r['samples_out']} out, {r['seconds']:.2f} s")
        elif not r["ok"]:
            out(f"[{len(done)}/{total}] error: {r['source']}: {r['error']}")
    return done
