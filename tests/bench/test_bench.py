"""The benchmark runs end to end and writes valid JSON (its figures are not asserted).

The end-to-end ``sigstream bench --quick`` run covers two models (the extractor, whose five
chunk sizes stay five, and savgol, whose hop of 16 folds chunks 1 and 16 into one) with every
section of the report (the ZeroMQ ones at a small size); a separate, cheaper run of the
latency table benches every built-in model (the two slowest to export on torch only).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from _support.cli import sigstream

from sigstream.bench.overhead import measure_bare_loop, measure_pipeline
from sigstream.bench.suite import BenchConfig, bench_latency, markdown, speedups
from sigstream.bench.timing import default_model, summarise_us, time_calls
from sigstream.export.backends import BACKENDS
from sigstream.models.registry import MODELS

E2E_MODELS = ("extractor", "savgol")


def _check_latency_rows(rows: list[dict], models: set[str]) -> list[tuple[str, str, int]]:
    """Every row sane, every model on every backend, no (model, backend, chunk) twice."""
    assert {row["model"] for row in rows} == models
    for row in rows:
        assert "error" not in row, row
        assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"] and row["rtf"] > 0
        assert row["chunk"] % (16 if row["model"] == "savgol" else 1) == 0
    backends = {(row["model"], row["backend"]) for row in rows}
    assert backends == set(itertools.product(models, BACKENDS))
    assert len(backends) == 3 * len(models)  # torch, torchscript and onnx
    keys = [(row["model"], row["backend"], row["chunk"]) for row in rows]
    assert len(keys) == len(set(keys))
    return keys


def _onnx_chunks(keys: list[tuple[str, str, int]], model: str) -> int:
    return sum(1 for k in keys if k[0] == model and k[1] == "onnx")


def test_quick_bench_writes_json_markdown_and_plot(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The whole command in-process. The ZeroMQ measurements run for real but small (their
    sizes are tested in test_zmq_bench.py): what is checked here is that the command puts
    every section into the JSON and the Markdown."""
    import sigstream.bench.zmq.bench as zb

    small = {"transport_hop": {"round_trips": 40, "warmup": 5},
             "served_extractor": {"round_trips": 20, "warmup": 3},
             "serve_capacity": {"seconds": 1.0, "levels": (16,)}}
    for name, kw in small.items():
        real = getattr(zb, name)
        monkeypatch.setattr(zb, name, lambda *a, _real=real, _kw=kw, **k: _real(*a, **{**k, **_kw}))
    p = sigstream("bench", "--quick", "--quiet", "--models", ",".join(E2E_MODELS),
                  "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md"),
                  "--plot", str(tmp_path / "b.png"))
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["schema"] == "sigstream-bench/2" and r["quick"] is True
    keys = _check_latency_rows(r["latency"], set(E2E_MODELS))
    per_model = {m: _onnx_chunks(keys, m) for m in E2E_MODELS}
    assert per_model["extractor"] == 5 and per_model["savgol"] == 4  # savgol: 1 and 16 are one
    assert {s["backend"] for s in r["speedups"]} == {"torchscript", "onnx"}
    assert {(s["backend"], s["chunk"]) for s in r["streams"]} == {
        ("onnx", 1), ("onnx", 16), ("torch", 1), ("torch", 16)}
    assert [o["block"] for o in r["pipeline_overhead"]] == [1, 256]
    bw = r["butterworth"]
    assert [o["block"] for o in bw] == [1, 256]
    for o in bw:
        for k in ("pipeline", "step", "sosfilt_loop"):
            assert o[k]["p50_us"] > 0 and o[k]["n"] == 899  # 999 intervals, 100 warm-up
        assert o["pipeline_vs_sosfilt_p50"] == o["pipeline"]["p50_us"] / o["sosfilt_loop"][
            "p50_us"]
    z = r["zmq"]
    assert set(z) >= {"transport_hop", "served_extractor", "serve_capacity",
                      "serve_capacity_frames"}
    assert z["serve_capacity_frames"]["chunk"] == 256
    assert [lv["streams"] for lv in z["serve_capacity_frames"]["levels"]] == [16]
    md = (tmp_path / "b.md").read_text()
    assert "chunk 256" in md
    assert "against a bare `scipy.signal.sosfilt` loop" in md and "| 256 |" in md
    assert z["transport_hop"]["sigstream"]["p50_us"] > 0
    assert "skipped" in z["transport_hop"]["lsl"]  # only with --lsl
    assert "| extractor | onnx |" in md and "| savgol | torchscript |" in md
    assert p.stdout == md  # the table is printed too
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_every_builtin_model_benches_on_every_backend() -> None:
    """The latency table for every model in the registry: two chunk sizes and a short
    budget (the figures are not asserted). Every model on torch; on TorchScript and ONNX
    Runtime all but the forecaster and the TEB-VAE, whose exports take most of a minute
    here and are exported, run and compared with torch in their own tests
    (tests/models/forecaster, tests/models/teb); the bench treats every model alike."""
    lines: list[str] = []
    slow = {"forecaster", "teb"}
    rows = bench_latency(BenchConfig(quick=True, models=tuple(m for m in MODELS if m not in slow),
                                     chunks=(1, 16), budget=0.01), lines.append)
    keys = _check_latency_rows(rows, set(MODELS) - slow)
    torch_rows = bench_latency(BenchConfig(quick=False, models=tuple(sorted(slow)),
                                           backends=("torch",), chunks=(1, 16), budget=0.01),
                               lines.append)
    assert {(r["model"], r["chunk"]) for r in torch_rows} == {
        (m, c) for m in slow for c in (1, 16)} and all(r["p50_us"] > 0 for r in torch_rows)
    assert len(lines) == len(rows) + len(torch_rows)  # one progress line per measurement
    assert _onnx_chunks(keys, "extractor") == 2 and _onnx_chunks(keys, "savgol") == 1
    ups = speedups(rows)
    assert {(s["model"], s["backend"], s["chunk"]) for s in ups} == {
        k for k in keys if k[1] != "torch"}  # every other backend against torch, same chunk
    assert all(s["speedup_vs_torch_p50"] > 0 for s in ups)


def test_quick_skips_longer_chunks_once_a_call_is_slow(monkeypatch) -> None:  # noqa: ANN001
    """--quick measures chunk sizes in order and, once a call took longer than
    QUICK_MAX_CALL_S, reports the longer ones as skipped (with the reason); the full bench
    measures them all."""
    import sigstream.bench.suite as suite

    monkeypatch.setattr(suite, "QUICK_MAX_CALL_S", 0.0)
    lines: list[str] = []
    cfg = BenchConfig(quick=True, models=("identity",), backends=("torch",), chunks=(1, 16, 64),
                      budget=0.01)
    rows = bench_latency(cfg, lines.append)
    assert [r["chunk"] for r in rows] == [1, 16, 64]
    assert "p50_us" in rows[0] and all("p50_us" not in r for r in rows[1:])
    assert all(r["skipped"].startswith("--quick: a chunk of 1 took") for r in rows[1:])
    assert "skipped: --quick: a chunk of 1 took" in lines[1]
    md = markdown({"machine": {"cpu": "x", "cores": 2, "python": "3", "torch": "2",
                               "threads": 1}, "quick": True, "latency": rows,
                   "speedups": speedups(rows), "streams": [], "pipeline_overhead": []})
    assert "| identity | torch | 16 | skipped: --quick: a chunk of 1 took" in md
    full = bench_latency(BenchConfig(quick=False, models=("identity",), backends=("torch",),
                                     chunks=(1, 16), budget=0.01), lines.append)
    assert all("p50_us" in r for r in full)


def test_quick_skips_a_chunk_whose_call_would_be_slow(monkeypatch) -> None:  # noqa: ANN001
    """--quick also skips a chunk whose call the last chunk's per-sample time says would take
    over QUICK_MAX_CALL_S (a model at 0.2 ms a sample: 16 samples fit in 10 ms, 64 do not)."""
    import time

    import torch

    import sigstream.bench.suite as suite
    from sigstream.core.contract import StreamingModule

    class Slow(StreamingModule):
        in_channels = out_channels = 1
        sample_rate, hop, latency = 1000.0, 1, 0

        def init_state(self, batch: int) -> tuple:
            return ()

        def step(self, x: torch.Tensor, state: tuple) -> tuple:
            time.sleep(2e-4 * x.shape[1])
            return x, state

    monkeypatch.setattr(suite, "QUICK_MAX_CALL_S", 0.01)
    monkeypatch.setattr(suite, "default_model", lambda name: Slow())
    cfg = BenchConfig(quick=True, models=("slow",), backends=("torch",), chunks=(1, 16, 64, 256),
                      budget=0.01)
    rows = bench_latency(cfg, lambda line: None)
    assert [("p50_us" in r) for r in rows] == [True, True, False, False]
    assert rows[2]["skipped"].startswith("--quick: a chunk of 64 would take about")
    assert rows[3]["skipped"] == rows[2]["skipped"]


def test_bench_plot_is_a_grid_of_labelled_panels_that_fits_a_screen(tmp_path: Path,
                                                                   monkeypatch) -> None:  # noqa: ANN001
    """Nine models: a 3 x 4 grid (the empty cells hidden), each panel titled with its model
    and both axes labelled with units, the legend titled; the PNG at most 1600 x 1000 px
    (it was one row of panels, 3080 x 385 px for seven models)."""
    import matplotlib.figure
    import matplotlib.pyplot as plt

    from sigstream.bench.suite import plot

    seen = {}
    save = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["fig"] = self
        return save(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    rows = [{"model": f"m{i}", "backend": b, "chunk": c, "p50_us": 10.0 + c}
            for i in range(9) for b in ("torch", "onnx") for c in (1, 16)]
    rows.append({"model": "m0", "backend": "onnx", "chunk": 256, "skipped": "slow"})
    plot({"latency": rows}, str(tmp_path / "p.png"))
    axes = [ax for ax in seen["fig"].axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in axes) == [f"m{i}" for i in range(9)]
    assert all("(samples)" in ax.get_xlabel() and "(µs)" in ax.get_ylabel() for ax in axes)
    assert axes[0].get_legend().get_title().get_text() == "backend"
    h, w = plt.imread(tmp_path / "p.png").shape[:2]
    assert w <= 1600 and h <= 1000, (w, h)


def test_models_may_carry_options() -> None:
    assert default_model("forecaster:preset=fast").config.preset == "fast"
    assert default_model("forecaster").config.preset == "accurate"
    # no weights ship for this config: random weights, the options still apply
    assert default_model("extractor:hidden=8,preset=seed").config.hidden == 8


def test_timing_helpers() -> None:
    calls = []
    t = time_calls(lambda: calls.append(1), budget_s=0.01, min_reps=5, warmup=3)
    assert len(calls) == len(t) + 3 and len(t) >= 5 and np.all(t >= 0)
    # a call that takes a tenth of the budget: two warm-up calls and five timed ones
    slow = []
    t = time_calls(lambda: (slow.append(1), time.sleep(0.02)), budget_s=0.1, min_reps=30,
                   warmup=10)
    assert len(t) == 5 and len(slow) == 7 and np.all(t >= 0.015)
    # a call that takes the whole budget: the first call is the warm-up, three timed ones
    slower = []
    t = time_calls(lambda: (slower.append(1), time.sleep(0.02)), budget_s=0.02, min_reps=30,
                   warmup=10)
    assert len(t) == 3 and len(slower) == 4
    s = summarise_us(np.array([1e-6, 2e-6, 3e-6, 4e-6]))
    assert s["p50_us"] == 2.5 and s["n"] == 4


def test_overhead_measurements_cover_every_chunk() -> None:
    assert measure_pipeline(16, 300, warmup=10).size == 299 - 10
    assert measure_bare_loop(16, 300, warmup=10).size == 299 - 10


def test_models_option_keeps_a_models_options_together() -> None:
    from sigstream.cli.commands.bench import split_models

    assert split_models("extractor,forecaster:preset=fast,forecast_every=16,enhancer") == (
        "extractor", "forecaster:preset=fast,forecast_every=16", "enhancer")
    assert split_models("butterworth:order=4") == ("butterworth:order=4",)


def test_exports_ahead_run_in_a_background_process_that_is_stopped(monkeypatch) -> None:  # noqa: ANN001
    """exports_ahead exports in another process; exported_bytes waits for its file; the
    runner made from it gives the model's output; the process is gone after the block; a
    failed export raises with its reason; a job whose process died is exported here."""
    import torch

    import sigstream.bench.timing as timing
    from sigstream.export.runtime import load_runner
    from sigstream.models.registry import build_model

    monkeypatch.setattr(timing, "_EXPORTS", {})
    with timing.exports_ahead([("butterworth", "onnx"), ("nosuchmodel", "onnx")]):
        (ahead,) = {proc for _, proc in timing._AHEAD.values()}
        assert ahead.pid != os.getpid() and ahead.poll() is None
        data = timing.exported_bytes("butterworth", "onnx")
        with pytest.raises(RuntimeError, match="export of nosuchmodel to onnx failed"):
            timing.exported_bytes("nosuchmodel", "onnx")
    assert ahead.poll() is not None and not timing._AHEAD
    x = np.random.default_rng(0).standard_normal((1, 64, 1)).astype(np.float32)
    r = load_runner(data)
    m = build_model("butterworth")
    y, _ = r.step(x, r.init_state(1))
    np.testing.assert_allclose(y, m(torch.from_numpy(x)).numpy(), atol=1e-5)
    monkeypatch.setattr(timing, "_EXPORTS", {})
    with timing.exports_ahead([("identity", "onnx")]):
        (ahead,) = {proc for _, proc in timing._AHEAD.values()}
        ahead.kill()
        ahead.wait()
        assert timing.exported_bytes("identity", "onnx")  # made here instead
