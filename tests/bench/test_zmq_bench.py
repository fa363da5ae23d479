"""The ZeroMQ benchmarks run in a tiny configuration and return their documented keys.

Figures are not asserted (the machine may be busy), only their sanity.
"""

from __future__ import annotations

import json
import sys

import pytest

from sigstream.bench.zmq.bench import (
    markdown_zmq,
    serve_capacity,
    served_extractor,
    transport_hop,
)

SUMMARY = {"p50_us", "p99_us", "iqr_us", "n"}


def _sane(s: dict, n: int) -> None:
    assert SUMMARY <= set(s)
    assert s["p99_us"] >= s["p50_us"] > 0 and s["iqr_us"] >= 0 and s["n"] == n


@pytest.fixture(scope="module")
def results() -> dict:
    log: list[str] = []
    return {
        "transport_hop": transport_hop(quick=True, round_trips=40, warmup=5),
        "served_extractor": served_extractor(quick=True, round_trips=20, warmup=3),
        "serve_capacity": serve_capacity(quick=True, streams=16, seconds=1.0, log=log.append),
        "log": log,
    }


def test_results_are_strict_json(results: dict) -> None:
    json.dumps(results, allow_nan=False)


def test_transport_hop(results: dict) -> None:
    r = results["transport_hop"]
    assert r["frame"] == 256 and r["round_trips"] == 40 and r["host"] == "127.0.0.1"
    _sane(r["sigstream"], 40)
    _sane(r["pyzmq"], 40)
    assert r["sigstream"]["mismatched_replies"] == 0
    assert r["ratio_p50_sigstream_vs_pyzmq"] > 0 and r["ratio_p99_sigstream_vs_pyzmq"] > 0
    lsl = r["lsl"]
    if "skipped" not in lsl:  # pylsl and its liblsl are here
        _sane(lsl, 40)
        assert lsl["ratio_p99_lsl_vs_sigstream"] > 0 and not lsl.get("echo_mismatch")


def test_transport_hop_without_pylsl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl -> ImportError
    r = transport_hop(round_trips=10, warmup=2)
    assert r["lsl"] == {"skipped": "pylsl not installed"}
    _sane(r["sigstream"], 10)
    assert "skipped: pylsl not installed" in markdown_zmq({"transport_hop": r})


def test_served_extractor(results: dict) -> None:
    r = results["served_extractor"]
    assert r["backend"] in ("onnx", "torch") and r["server"] == "process"
    _sane(r["round_trip"], 20)
    assert r["mismatched_replies"] == 0
    assert r["frame"] == 256 and r["frame_duration_us"] == pytest.approx(256_000)
    assert r["server_compute_us"]["p50"] > 0


def test_served_extractor_on_torch() -> None:
    r = served_extractor(backend="torch", round_trips=5, warmup=1)
    assert r["backend"] == "torch" and "export_error" not in r
    _sane(r["round_trip"], 5)
    assert r["mismatched_replies"] == 0


def test_serve_capacity(results: dict) -> None:
    r = results["serve_capacity"]
    assert r["chunk"] == 16 and r["seconds"] == 1.0
    assert [lv["streams"] for lv in r["levels"]] == [16]
    lv = r["levels"][0]
    assert lv["sent"] == 16 * lv["chunks_per_stream"] > 0
    assert lv["lost"] == 0 and lv["received"] == lv["sent"] == lv["ok"]
    assert lv["mismatched"] == 0 and lv["errors"] == 0 and lv["send_failed"] == 0
    lat = lv["latency_ms"]
    assert lat["p99"] >= lat["p50"] > 0
    assert {"mean", "p99", "first_s", "last_s", "growth"} <= set(lv["lag_ms"])
    assert isinstance(lv["kept_up"], bool) and isinstance(lv["client_limited"], bool)
    assert lv["server_stats"]["chunks"] == lv["sent"]
    assert r["max_streams_kept_up"] in (None, 16)
    assert len(results["log"]) == 1 and results["log"][0].startswith("capacity N=   16:")


def test_markdown(results: dict) -> None:
    md = markdown_zmq(results)
    assert "| sigstream Client ↔ Server (identity model) |" in md
    assert "| bare pyzmq DEALER ↔ ROUTER echo |" in md
    assert f"| {results['served_extractor']['backend']} |" in md
    assert "| 16 | " in md and "Largest N that kept up" in md
    assert markdown_zmq({}) == ""
