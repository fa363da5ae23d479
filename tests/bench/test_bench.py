"""The benchmark runs end to end and writes valid JSON (its figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sigstream.bench.overhead import measure_bare_loop, measure_pipeline
from sigstream.bench.timing import default_model, summarise_us, time_calls
from sigstream.models.registry import MODELS

EXE = Path(sys.executable).with_name("sigstream")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "sigstream.cli.main"]


def test_quick_bench_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    p = subprocess.run(
        [*CMD, "bench", "--quick", "--quiet", "--json", str(tmp_path / "b.json"),
         "--markdown", str(tmp_path / "b.md"), "--plot", str(tmp_path / "b.png")],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["schema"] == "sigstream-bench/2" and r["quick"] is True
    models = {row["model"] for row in r["latency"]}
    assert models == set(MODELS)  # every built-in model
    for row in r["latency"]:
        assert "error" not in row, row
        assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"] and row["rtf"] > 0
        assert row["chunk"] % (16 if row["model"] == "savgol" else 1) == 0
    backends = {(row["model"], row["backend"]) for row in r["latency"]}
    assert len(backends) == 3 * len(MODELS)  # every model on torch, torchscript and onnx
    keys = [(row["model"], row["backend"], row["chunk"]) for row in r["latency"]]
    assert len(keys) == len(set(keys))
    per_model = {m: sum(1 for k in keys if k[0] == m and k[1] == "onnx") for m in MODELS}
    assert per_model["extractor"] == 5 and per_model["savgol"] == 4  # savgol: 1 and 16 are one
    assert {s["backend"] for s in r["speedups"]} == {"torchscript", "onnx"}
    assert {(s["backend"], s["chunk"]) for s in r["streams"]} == {
        ("onnx", 1), ("onnx", 16), ("torch", 1), ("torch", 16)}
    assert [o["block"] for o in r["pipeline_overhead"]] == [1, 256]
    z = r["zmq"]
    assert set(z) >= {"transport_hop", "served_extractor", "serve_capacity",
                      "serve_capacity_frames"}
    assert z["serve_capacity_frames"]["chunk"] == 256
    assert [lv["streams"] for lv in z["serve_capacity_frames"]["levels"]] == [1000]
    assert "chunk 256" in (tmp_path / "b.md").read_text()
    assert z["transport_hop"]["sigstream"]["p50_us"] > 0
    assert "skipped" in z["transport_hop"]["lsl"]  # only with --lsl
    assert "| extractor | onnx |" in (tmp_path / "b.md").read_text()
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


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
    s = summarise_us(np.array([1e-6, 2e-6, 3e-6, 4e-6]))
    assert s["p50_us"] == 2.5 and s["n"] == 4


def test_overhead_measurements_cover_every_chunk() -> None:
    assert measure_pipeline(16, 300, warmup=10).size == 299 - 10
    assert measure_bare_loop(16, 300, warmup=10).size == 299 - 10
