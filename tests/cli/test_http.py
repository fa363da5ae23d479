"""``sigstream http``: a real uvicorn on 127.0.0.1 in a subprocess; success and every 4xx."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the http extra is part of the dev extra")
httpx = pytest.importorskip("httpx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(model: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    quiet = [] if "--log-level" in extra else ["--log-level", "warning"]  # nobody reads the
    # pipe until the end, so no access log here (the test below reads it)
    cmd = [sys.executable, "-m", "sigstream.cli.main", "http", "--model", model, "--port",
           str(port), *quiet, *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_up(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


def _stop(proc) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Both servers this module talks to, started at once (each pays its own start-up):
    the shipped augmentor with tight limits, and an enhancer checkpoint with random weights
    (the endpoint is tested, not the model)."""
    import torch

    from sigstream.models.checkpoint import save_checkpoint
    from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig

    torch.manual_seed(0)
    cfg = EnhancerConfig()
    path = str(tmp_path_factory.mktemp("http") / "enhancer.pt")
    save_checkpoint(path, "audio-enhancer", cfg, CausalEnhancer(cfg))
    started = {"augmentor": _spawn("augmentor", "--max-samples", "4096", "--max-body",
                                   "200000", "--max-passes", "16"),
               "enhancer": _spawn(path)}
    try:
        for proc, url in started.values():
            _wait_up(proc, url)
        yield {name: url for name, (_, url) in started.items()}
    finally:
        for proc, _ in started.values():
            _stop(proc)


@pytest.fixture(scope="module")
def augmentor_server(servers) -> str:
    return servers["augmentor"]


def _post(url: str, body) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(url + "/enhance", content=body,
                          headers={"content-type": "application/json"}, timeout=30)
    return httpx.post(url + "/enhance", json=body, timeout=30)


def test_success_one_window_with_uncertainty(augmentor_server) -> None:
    from sigstream.models.augmentor.data import generate_windows

    d = generate_windows(1, seed=3)
    r = _post(augmentor_server, {"signal": d.lq[0].tolist(), "uncertainty": 8})
    assert r.status_code == 200, r.text
    out = r.json()
    y = np.array(out["enhanced"])
    assert y.shape == (128,) and out["latency_samples"] == 0
    # the enhanced window is closer to the high-quality one than the input is
    assert np.mean((y - d.hq[0]) ** 2) < np.mean((d.lq[0] - d.hq[0]) ** 2)
    (cmd,) = out["actuator_commands"]
    assert set(cmd) == {"start", "damping", "stiffness"} and 1.0 < cmd["damping"] < 3.0
    u = out["uncertainty"]
    assert u["passes"] == 8 and len(u["mean"]) == len(u["std"]) == 128
    assert min(u["std"]) >= 0 and max(u["std"]) > 0


def test_success_long_signal_streamed(augmentor_server) -> None:
    from sigstream.models.augmentor.data import generate_stream

    s = generate_stream(5.0, seed=1)  # 500 samples
    r = _post(augmentor_server, {"signal": s.lq.tolist()})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["enhanced"]) == 500 and "uncertainty" not in out
    starts = [c["start"] for c in out["actuator_commands"]]
    assert starts[0] == 0 and starts[1] - starts[0] == 32 and starts[-1] + 128 <= 500
    y = np.array(out["enhanced"])  # aligned with the input (latency flushed)
    mid = slice(100, 400)
    assert np.mean((y[mid] - s.hq[mid]) ** 2) < np.mean((s.lq[mid] - s.hq[mid]) ** 2)


def test_health_and_openapi(augmentor_server) -> None:
    h = httpx.get(augmentor_server + "/health").json()
    assert h["window"] == 128 and h["min_samples"] == 128 and h["latency_samples"] == 96
    spec = httpx.get(augmentor_server + "/openapi.json").json()
    assert "/enhance" in spec["paths"]
    page = httpx.get(augmentor_server + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    # offline: no script and nothing fetched from another host (Swagger UI came from a CDN)
    assert "<script" not in html and "cdn" not in html.lower()
    assert "src=" not in html and "<link" not in html
    for words in ("POST /enhance", "GET /health", "<code>signal</code>",
                  "<code>uncertainty</code>", "Content-Type: application/json", "415",
                  "/openapi.json"):
        assert words in html, words
    assert httpx.get(augmentor_server + "/redoc").status_code == 404


def test_the_access_log_has_one_line_per_request_at_info() -> None:
    """The default --log-level info logs each request (method, path, status) on stderr;
    warning does not."""
    for level, logged in (("info", True), ("warning", False)):
        proc, url = _spawn("identity", "--log-level", level)
        try:
            _wait_up(proc, url)
            r = httpx.post(url + "/enhance", json={"signal": [0.1, 0.2]})
            assert r.status_code == 200
            assert httpx.post(url + "/enhance", json={}).status_code == 422
        finally:
            proc.terminate()
            err = proc.communicate(timeout=10)[1]  # read once it ended
        posts = [ln for ln in err.splitlines() if '"POST /enhance HTTP/1.1"' in ln]
        if logged:
            assert len(posts) == 2 and "200" in posts[0] and "422" in posts[1], err
        else:
            assert posts == [], err


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"", 400, "empty"),
    (b"   ", 400, "empty"),
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2, 3]", 400, "JSON object"),
    ({"values": [1.0]}, 422, "unknown field"),
    ({}, 422, "missing field"),
    ({"signal": "abc"}, 422, "list of numbers"),
    ({"signal": []}, 422, "empty"),
    ({"signal": [1.0] * 100}, 422, "at least 128"),
    ({"signal": [1.0] * 127 + ["x"]}, 422, "[127] is a string ('x'), expected a number"),
    ({"signal": [1.0] * 127 + [True]}, 422, "[127] is true, expected a number"),
    ({"signal": [1.0] * 127 + [None]}, 422, "[127] is null, expected a number"),  # JSON's
    ({"signal": [1.0] * 127 + [[1]]}, 422, "[127] is a list, expected a number"),  # words
    (b'{"signal": [' + b"0.1, " * 127 + b"NaN]}", 422, "non-finite"),
    (b'{"signal": [' + b"0.1, " * 127 + b"Infinity]}", 422, "non-finite"),
    (b'{"signal": [' + b"0.1, " * 127 + b"-Infinity]}", 422, "non-finite"),
    (b'{"signal": [' + b"0.1, " * 127 + b"1e999]}", 422, "not a finite"),
    (b'{"signal": [' + b"0.1, " * 127 + b"1e39]}", 422, "not a finite"),
    (b'{"signal": [' + b"0.1, " * 127 + b"1" + b"0" * 400 + b"]}", 422, "too large"),
    ({"signal": [0.1] * 128, "uncertainty": -1}, 422, "uncertainty"),
    ({"signal": [0.1] * 128, "uncertainty": 17}, 422, "uncertainty"),
    ({"signal": [0.1] * 128, "uncertainty": 2.5}, 422, "uncertainty"),
    ({"signal": [0.1] * 5000}, 413, "at most 4096"),
    (b'{"signal": [' + b"0.1, " * 40000 + b"0.1]}", 413, "at most 200000"),
])
def test_client_errors_are_4xx_with_a_reason(augmentor_server, body, status: int,
                                             words: str) -> None:
    r = _post(augmentor_server, body)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()


def test_huge_but_finite_values_give_a_4xx_not_a_500(augmentor_server) -> None:
    r = _post(augmentor_server, {"signal": [3.0e38] * 128})
    assert r.status_code == 422 and "not finite" in r.json()["detail"]
    assert _post(augmentor_server, {"signal": [0.0] * 128}).status_code == 200  # still serving


def test_causal_enhancer_any_length(servers) -> None:
    url = servers["enhancer"]
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 0.1
    r = _post(url, {"signal": x.tolist(), "uncertainty": 2})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["enhanced"]) == 1000 and "actuator_commands" not in out
    assert len(out["uncertainty"]["std"]) == 1000
    assert _post(url, {"signal": [0.5]}).status_code == 200  # one sample is fine
    assert _post(url, b'{"signal": [NaN]}').status_code == 422


@pytest.mark.filterwarnings("ignore:Using `httpx` with")
def test_internal_failure_is_a_json_500_and_the_app_survives() -> None:
    from fastapi.testclient import TestClient

    from sigstream.cli.commands.http import Enhancer, HttpConfig, create_app
    from sigstream.models.registry import build_model

    enh = Enhancer(build_model("augmentor"), "augmentor")
    client = TestClient(create_app(enh, HttpConfig()))
    good = {"signal": [0.1] * 128}
    assert client.post("/enhance", json=good).status_code == 200
    original = enh.enhance

    def broken(signal, passes):
        raise RuntimeError("weights went missing")

    enh.enhance = broken
    r = client.post("/enhance", json=good)
    assert r.status_code == 500
    assert r.json()["detail"] == ("internal error while enhancing: RuntimeError: weights went "
                                  "missing")
    assert client.post("/enhance", json={"signal": [1.0]}).status_code == 422  # still 4xx
    enh.enhance = original
    assert client.post("/enhance", json=good).status_code == 200


def test_cli_errors_are_one_line(capsys) -> None:
    from sigstream.cli.main import main

    port = _free_port()
    with socket.socket() as s:  # occupy the port: refused before uvicorn starts
        s.bind(("127.0.0.1", port))
        s.listen()
        assert main(["http", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen") and len(err.strip().splitlines()) == 1
    assert main(["http", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and len(err.strip().splitlines()) == 1
    assert main(["http", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_a_multi_channel_model_returns_every_channel() -> None:
    """The extractor has four output channels: `enhanced` is the first, `outputs` all four
    (it used to return channel 0 alone without saying so)."""
    from sigstream.cli.commands.http import Enhancer
    from sigstream.models.registry import build_model

    m = build_model("extractor")
    x = np.random.default_rng(1).standard_normal(300).astype(np.float32)
    out = Enhancer(m, "extractor").enhance(x, 0)
    assert out["out_channels"] == m.out_channels == 4 and len(out["outputs"]) == 4
    assert all(len(c) == 300 for c in out["outputs"])
    assert out["enhanced"] == out["outputs"][0]


def test_a_body_that_is_not_json_by_its_content_type_gets_415(augmentor_server) -> None:
    body = b'{"signal": [' + b"0.1, " * 127 + b"0.1]}"
    r = httpx.post(augmentor_server + "/enhance", content=body, timeout=30,
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"], r.text
    r = httpx.post(augmentor_server + "/enhance", content=body, timeout=30,
                   headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
