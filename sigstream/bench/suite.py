"""``sigstream bench``: latency, throughput and capacity of every built-in model and backend.

B: streams, T: chunk length, C: channels.

Every timing goes through the same surface a pipeline uses —
``StreamRunner.step`` on a numpy (B, T, C) chunk with the state carried — so
the backends (eager torch, TorchScript, ONNX Runtime) are compared like for
like. Each measurement has a warm-up, many repetitions, and reports the median
with the inter-quartile range and the 99th percentile; every speed comparison
is a ratio of two figures measured in the same run. One thread by default.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sigstream.bench.timing import (
    bench_target,
    default_model,
    exports_ahead,
    peak_child_rss_mb,
    peak_rss_mb,
    rss_mb,
    summarise_us,
    time_calls,
)
from sigstream.export.backends import BACKENDS

SCHEMA = "sigstream-bench/2"
CHUNKS = (1, 16, 64, 256, 1024)


def _all_models() -> tuple[str, ...]:
    from sigstream.models.registry import MODELS

    return tuple(MODELS)


QUICK_MAX_CALL_S = 0.25  # --quick: a chunk whose call takes (or would take) longer is skipped
# --quick without --models: the cheaper setting of a slow model (the default forecaster
# preset refits least-squares candidates at every sample and its export alone takes 10 s)
QUICK_SETTINGS = {"forecaster": "forecaster:preset=fast"}


def default_models(quick: bool) -> tuple[str, ...]:
    """Every built-in model; with ``quick``, slow ones in their cheaper setting."""
    return tuple(QUICK_SETTINGS.get(m, m) if quick else m for m in _all_models())


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    threads: int = 1
    models: tuple[str, ...] = field(default_factory=_all_models)  # every built-in model
    backends: tuple[str, ...] = BACKENDS
    chunks: tuple[int, ...] = CHUNKS
    zmq: bool = True
    lsl: bool = False
    budget: float | None = None  # seconds per latency measurement; None: by ``quick``

    @property
    def budget_s(self) -> float:
        """Rough time budget per latency measurement (0.08 s quick, 1 s otherwise)."""
        if self.budget is not None:
            return self.budget
        return 0.08 if self.quick else 1.0


def bench_latency(cfg: BenchConfig, log: Callable[[str], None]) -> list[dict]:
    from sigstream.stream.runner import StreamRunner

    rows = []
    for name in cfg.models:
        model = default_model(name)
        rate = float(model.sample_rate or 1000.0)
        for backend in cfg.backends:
            rss0 = rss_mb()
            try:
                target = bench_target(name, backend, model, threads=cfg.threads)
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                rows.append({"model": name, "backend": backend, "error": str(exc)[:200]})
                log(f"{name:12s} {backend:12s} skipped: {str(exc)[:80]}")
                continue
            seen: set[int] = set()
            slow = ""  # --quick: why longer chunks of this model and backend are skipped
            last: tuple[int, float] | None = None  # the last chunk measured and its p50 (s)
            for chunk in cfg.chunks:
                t = -(-chunk // model.hop) * model.hop  # a whole number of hops
                if t in seen:  # e.g. chunks 1 and 16 for a hop-16 model
                    continue
                seen.add(t)
                if cfg.quick and not slow and last and last[1] * t / last[0] > QUICK_MAX_CALL_S:
                    slow = (f"--quick: a chunk of {t} would take about "
                            f"{last[1] * t / last[0]:.2f} s a call (the full bench measures it)")
                if slow:
                    rows.append({"model": name, "backend": backend, "chunk": t,
                                 "skipped": slow})
                    log(f"{name:12s} {backend:12s} T={t:5d}  skipped: {slow}")
                    continue
                runner = StreamRunner(target, batch=1, validate=False)
                x = np.random.default_rng(0).standard_normal(
                    (1, t, model.in_channels)).astype(np.float32)
                times = time_calls(lambda r=runner, x=x: r.step(x), cfg.budget_s)
                s = summarise_us(times)
                med = s["p50_us"] / 1e6
                last = (t, med)
                rows.append({
                    "model": name, "backend": backend, "chunk": t, **s,
                    "throughput_sps": t / med, "rtf": med / (t / rate),
                    "sample_rate": rate, "rss_mb": rss_mb(), "rss_delta_mb": rss_mb() - rss0,
                })
                log(f"{name:12s} {backend:12s} T={t:5d}  p50 {s['p50_us']:9.1f} us  "
                    f"p99 {s['p99_us']:9.1f} us  RTF {med / (t / rate):.4f}")
                if cfg.quick and med > QUICK_MAX_CALL_S:
                    slow = (f"--quick: a chunk of {t} took {med:.2f} s a call (the full bench "
                            "measures longer ones)")
    return rows


def speedups(rows: list[dict], base: str = "torch") -> list[dict]:
    """Per model and chunk: p50 of ``base`` divided by p50 of each other backend (same run)."""
    out = []
    index = {(r["model"], r["backend"], r.get("chunk")): r for r in rows if "p50_us" in r}
    for (model, backend, chunk), r in index.items():
        ref = index.get((model, base, chunk))
        if backend != base and ref:
            out.append({"model": model, "backend": backend, "chunk": chunk,
                        "speedup_vs_torch_p50": ref["p50_us"] / r["p50_us"],
                        "speedup_vs_torch_p99": ref["p99_us"] / r["p99_us"]})
    return out


def bench_streams(cfg: BenchConfig, log: Callable[[str], None], backend: str = "onnx",
                  chunks: tuple[int, ...] = (1, 16)) -> list[dict]:
    """How many 1 kHz extractor streams one process sustains, batched vs one by one.

    Real time means the p99 of one batched step of (N, T) is within T / 1000 s.
    One by one means N single-stream steps one after another: capacity is the
    budget divided by one single-stream step's p50 (an upper bound on that mode).
    """
    from sigstream.stream.runner import StreamRunner

    model = default_model("extractor")
    rate = 1000.0
    rows = []
    target = bench_target("extractor", backend, model, threads=cfg.threads)
    for chunk in chunks:
        budget = chunk / rate
        single = StreamRunner(target, batch=1, validate=False)
        x1 = np.zeros((1, chunk, 1), dtype=np.float32)
        t1 = summarise_us(time_calls(lambda r=single, x=x1: r.step(x), cfg.budget_s))
        one_by_one = int(budget / (t1["p50_us"] / 1e6))
        best, tried = None, []
        n = 16
        while n <= (8192 if not cfg.quick else 4096):
            runner = StreamRunner(target, batch=n, validate=False)
            xb = np.random.default_rng(1).standard_normal((n, chunk, 1)).astype(np.float32)
            s = summarise_us(time_calls(lambda r=runner, x=xb: r.step(x), cfg.budget_s,
                                        min_reps=20))
            ok = s["p99_us"] / 1e6 <= budget
            tried.append({"streams": n, **s, "real_time": ok})
            log(f"streams {backend} T={chunk:3d} N={n:5d}  p50 {s['p50_us']:9.1f} us  "
                f"p99 {s['p99_us']:9.1f} us  budget {budget * 1e6:.0f} us  "
                f"{'ok' if ok else 'too slow'}")
            if not ok:
                break
            best = {"streams": n, **s}
            n *= 2
        batched_sps = best["streams"] * chunk / (best["p50_us"] / 1e6) if best else 0.0
        single_sps = chunk / (t1["p50_us"] / 1e6)
        rows.append({
            "backend": backend, "chunk": chunk, "budget_us": budget * 1e6,
            "single_stream": t1, "one_by_one_streams": one_by_one,
            "batched_streams": best["streams"] if best else 0, "tried": tried,
            "throughput_ratio_batched_vs_one_by_one": batched_sps / single_sps,
        })
    return rows


def bench_speech(cfg: BenchConfig, log: Callable[[str], None]) -> dict | None:
    """The speech enhancer against RNNoise, both at 48 kHz on 10 ms chunks, one stream,
    one thread, in this run: the enhancer on every backend, RNNoise through its Python
    binding (``pyrnnoise``, the ``eval`` extra; left out when missing). None when the
    run does not include ``enhancer``."""
    if "enhancer" not in cfg.models:
        return None
    from sigstream.models.enhancer import quality
    from sigstream.models.enhancer.evaluate import measure_rtf

    model = default_model("enhancer")
    seconds = 1.0 if cfg.quick else 5.0
    out: dict = {"chunk_ms": 10.0, "threads": 1, "sample_rate": float(model.sample_rate)}
    for backend in cfg.backends:
        runner = None if backend == "torch" else bench_target("enhancer", backend, model)
        out[backend] = measure_rtf(model, runner, seconds=seconds, label=backend)
        log(f"enhancer {backend:12s} 10 ms chunks  RTF {out[backend]['rtf']:.4f}")
    if quality.rnnoise_available():
        out["rnnoise"] = quality.rnnoise_rtf(seconds)
        log(f"RNNoise  (pyrnnoise)   10 ms chunks  RTF {out['rnnoise']['rtf']:.4f}")
    return out


def run_suite(cfg: BenchConfig, progress: bool = True) -> dict:
    """Everything; returns the JSON-ready result."""
    import torch

    torch.set_num_threads(cfg.threads)

    def log(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    ahead = [(m, b) for m in cfg.models for b in cfg.backends if b != "torch"]
    if "onnx" in cfg.backends and ("extractor", "onnx") not in ahead:
        ahead.append(("extractor", "onnx"))  # the concurrent-streams and ZeroMQ sections
    # --quick: the exports run in a background process while torch is measured
    with exports_ahead(ahead if cfg.quick else []):
        result = _sections(cfg, log, t0, progress)
    result["peak_child_rss_mb"] = peak_child_rss_mb()  # the export process has ended now
    return result


def _sections(cfg: BenchConfig, log: Callable[[str], None], t0: float, progress: bool) -> dict:
    import platform

    from sigstream.bench.overhead import machine, run_butterworth, run_overhead

    latency = bench_latency(cfg, log)
    streams = []
    for backend in ("onnx", "torch"):
        if backend in cfg.backends:
            streams += bench_streams(cfg, log, backend)
    speech = bench_speech(cfg, log)
    overhead = run_overhead(quick=cfg.quick, progress=False)
    butterworth = run_butterworth(quick=cfg.quick)
    for r in butterworth:
        log(f"butterworth block {r['block']}: pipeline p50 {r['pipeline']['p50_us']:.1f} us, "
            f"step {r['step']['p50_us']:.1f} us, bare sosfilt loop "
            f"{r['sosfilt_loop']['p50_us']:.1f} us")
    zmq = None
    if cfg.zmq:
        from sigstream.bench.zmq.bench import run_zmq

        zmq = run_zmq(quick=cfg.quick, progress=progress, lsl=cfg.lsl)
    return {
        "schema": SCHEMA,
        "machine": {**machine(), "threads": cfg.threads, "python_impl":
                    platform.python_implementation()},
        "quick": cfg.quick,
        "latency": latency,
        "speedups": speedups(latency),
        "streams": streams,
        "speech": speech,
        "pipeline_overhead": overhead["pipeline_overhead"],
        "butterworth": butterworth,
        "zmq": zmq,
        "peak_rss_mb": peak_rss_mb(),
        "seconds": time.perf_counter() - t0,
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}, "
           f"{m['threads']} thread(s){' (quick run)' if result['quick'] else ''}.", "",
           "### Per-chunk latency (one stream)", "",
           "| model | backend | chunk | p50 (µs) | p99 (µs) | IQR (µs) | samples/s | RTF | "
           "speed-up vs torch (p50) | RSS (MB) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sp = {(s["model"], s["backend"], s["chunk"]): s["speedup_vs_torch_p50"]
          for s in result["speedups"]}
    for r in result["latency"]:
        if "p50_us" not in r:
            why = r.get("skipped") or r.get("error", "")
            out.append(f"| {r['model']} | {r['backend']} | {r.get('chunk', '–')} | skipped: "
                       f"{why[:60]} | | | | | | |")
            continue
        s = sp.get((r["model"], r["backend"], r["chunk"]))
        out.append(f"| {r['model']} | {r['backend']} | {r['chunk']} | {r['p50_us']:.1f} | "
                   f"{r['p99_us']:.1f} | {r['iqr_us']:.1f} | {r['throughput_sps']:.3g} | "
                   f"{r['rtf']:.4f} | {f'{s:.2f}x' if s else '–'} | {r['rss_mb']:.0f} |")
    out += ["", "### Concurrent 1 kHz extractor streams in one process", "",
            "| backend | chunk | budget (µs) | batched streams in real time | "
            "one-by-one streams | throughput batched / one-by-one |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in result["streams"]:
        out.append(f"| {r['backend']} | {r['chunk']} | {r['budget_us']:.0f} | "
                   f"{r['batched_streams']} | {r['one_by_one_streams']} | "
                   f"{r['throughput_ratio_batched_vs_one_by_one']:.1f}x |")
    if result.get("speech"):
        sp_ = result["speech"]
        out += ["", "### Speech enhancer against RNNoise (48 kHz, 10 ms chunks, one stream, "
                "one thread)", "", "| system | real-time factor (mean) | p50 per chunk (ms) | "
                "p99 per chunk (ms) |", "|---|---:|---:|---:|"]
        for k, v in sp_.items():
            if isinstance(v, dict):
                name = "RNNoise (pyrnnoise)" if k == "rnnoise" else f"enhancer ({k})"
                out.append(f"| {name} | {v['rtf']:.4f} | {v['p50_chunk_ms']:.3f} | "
                           f"{v['p99_chunk_ms']:.3f} |")
    out += ["", "### Pipeline overhead (identity model)", "",
            "| block | pipeline p50 (µs) | pipeline p99 (µs) | bare loop p50 (µs) | ratio |",
            "|---:|---:|---:|---:|---:|"]
    for r in result["pipeline_overhead"]:
        out.append(f"| {r['block']} | {r['pipeline']['p50_us']:.1f} | "
                   f"{r['pipeline']['p99_us']:.1f} | {r['bare_loop']['p50_us']:.1f} | "
                   f"{r['ratio_p50']:.2f}x |")
    if result.get("butterworth"):
        out += ["", "### Butterworth (default: low-pass, order 4, 40 Hz at 1 kHz) against a bare "
                "`scipy.signal.sosfilt` loop", "",
                "| block | pipeline p50 (µs) | step p50 (µs) | sosfilt loop p50 (µs) | "
                "pipeline / loop | step / loop |", "|---:|---:|---:|---:|---:|---:|"]
        for r in result["butterworth"]:
            out.append(f"| {r['block']} | {r['pipeline']['p50_us']:.1f} | "
                       f"{r['step']['p50_us']:.1f} | {r['sosfilt_loop']['p50_us']:.1f} | "
                       f"{r['pipeline_vs_sosfilt_p50']:.2f}x | {r['step_vs_sosfilt_p50']:.2f}x |")
    if result.get("zmq"):
        from sigstream.bench.zmq.bench import markdown_zmq

        out += ["", markdown_zmq(result["zmq"])]
    if "peak_rss_mb" in result:
        child = result.get("peak_child_rss_mb")
        out += ["", f"Peak resident memory of the benchmark process: "
                f"{result['peak_rss_mb']:.0f} MB (RSS above: after each measurement)"
                + (f"; of its largest child process (an export or a server): {child:.0f} MB"
                   if child else "") + f". The run took {result['seconds']:.0f} s."]
    return "\n".join(out)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in result["latency"] if "p50_us" in r})
    # a grid that fits a screen: at most 4 panels a row
    cols = max(1, min(4, len(models)))
    rows_ = max(1, -(-len(models) // cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(3.6 * cols, 3.0 * rows_), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[len(models):]:
        ax.set_visible(False)
    for ax, name in zip(flat, models, strict=False):
        for backend in BACKENDS:
            rows = [r for r in result["latency"]
                    if r["model"] == name and r["backend"] == backend and "p50_us" in r]
            if rows:
                ax.loglog([r["chunk"] for r in rows], [r["p50_us"] for r in rows], "o-",
                          label=backend)
        ax.set(title=name, xlabel="chunk (samples)", ylabel="p50 latency per chunk (µs)")
        ax.grid(True, which="both", alpha=0.3)
    flat[0].legend(fontsize=8, title="backend")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
