"""Run inside a loopback-only network namespace by tests/cli/test_cli_serve_ray.py. It hosts
one local Ray instance (127.0.0.1 only) and, for each scenario on the command line (``N``,
``N:kill`` or ``N:grow``), runs `sigstream serve --engine ray --shards N --address GCS`
against it as a child process: 8 streams against offline, then (with kill) one actor
SIGKILLed: its streams reply RESET and equal a fresh start, the others continue exactly;
or (with grow, ``--max-shards N+1 --streams-per-shard 4``) a shard added while serving
takes the streams that start after it answers, and every stream stays exact. Prints one JSON line of
findings per scenario; exit 0 when every scenario ran to the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import ray
import torch

from sigstream.models.registry import build_model
from sigstream.stream.net.client import Client


class Hog:
    def ping(self) -> None:
        return None


def starve(shards: int, address: str) -> bool:
    """An actor holds all but one of the instance's CPUs, so of ``shards`` (2) only one
    can start; --start-timeout 3: one error line, exit 2, and the actor that did start is
    gone again (its CPU free)."""
    hog = ray.remote(num_cpus=ray.cluster_resources()["CPU"] - 1)(Hog).remote()
    ray.get(hog.ping.remote())
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sigstream", "serve", "--engine", "ray",
                        "--shards", str(shards), "--address", address, "--model", "identity",
                        "--bind", "tcp://127.0.0.1:0", "--start-timeout", "3"],
                       capture_output=True, text=True, timeout=180)
    found = {"scenario": f"{shards}:starve", "exit": r.returncode,
             "seconds": round(time.monotonic() - t0, 1), "stderr": r.stderr[-600:]}
    for _ in range(100):  # the killed actor's CPU comes back
        if ray.available_resources().get("CPU", 0) >= 1:
            break
        time.sleep(0.1)
    found["cpus_free"] = ray.available_resources().get("CPU", 0)
    ray.kill(hog)
    print(json.dumps(found), flush=True)
    return True


def scenario(shards: int, mode: str, address: str) -> bool:
    """One `serve --engine ray` child process on the shared Ray instance; prints its JSON."""
    if mode == "starve":
        return starve(shards, address)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ep = f"tcp://127.0.0.1:{port}"
    srv = subprocess.Popen([sys.executable, "-m", "sigstream", "serve", "--engine", "ray",
                            "--shards", str(shards), "--address", address, "--model",
                            "extractor", "--bind", ep,
                            "--stats-every", "0",
                            *(["--max-shards", str(shards + 1), "--streams-per-shard", "4"]
                              if mode == "grow" else [])], stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    m = build_model("extractor")
    X = np.random.default_rng(0).standard_normal((8, 64, 1)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(X)).numpy()
        fresh = m(torch.from_numpy(X[:, 48:])).numpy()
    found: dict = {}
    ok = False
    try:
        with Client(ep) as c:
            outs: dict[int, list] = {k: [] for k in range(8)}
            for j in range(3):  # chunks of 16 at mixed timing: all streams each round
                for k in range(8):
                    c.send(X[k, 16 * j:16 * (j + 1)], stream_id=k, seq=j)
                for _ in range(8):
                    h, y = c.recv(timeout=180)
                    assert not h.is_error and not h.reset, y
                    outs[h.stream_id].append(y)
            got = np.stack([np.concatenate(outs[k]) for k in range(8)])
            found["max_diff"] = float(np.abs(got - ref[:, :48]).max())
            st = c.request_stats()
            found["engine"] = st["engine"]
            pids = st["engine"]["actor_pids"]
            victim = 1 % shards
            if mode == "grow":
                grow(c, X, ref, found)
            if mode == "kill":
                os.kill(pids[victim], signal.SIGKILL)
                time.sleep(0.5)
            last = {}
            for k in range(8):  # one at a time: the restart is noticed by the first of the
                # victim's streams, and the later ones (other loop iterations) must still say so
                c.send(X[k, 48:], stream_id=k, seq=3)
                h, y = c.recv(timeout=180)
                assert not h.is_error and h.stream_id == k, y
                last[k] = (bool(h.reset), y)
            found["reset_streams"] = sorted(k for k, (r, _) in last.items() if r)
            per = {k: [r, float(np.abs(y - fresh[k]).max()), float(np.abs(y - ref[k, 48:]).max())]
                   for k, (r, y) in sorted(last.items())}
            found["per_stream"] = per  # reset?, diff to a fresh start, diff to continuing
            found["after_diff"] = max(v[1] if v[0] else v[2] for v in per.values())
            st = c.request_stats()
            found["restarts"], found["resets"] = st["engine"]["restarts"], st["resets"]
            found["pids_after"] = st["engine"]["actor_pids"]
            found["streams_per_shard"] = st["engine"]["streams_per_shard"]
        ok = True
    finally:
        os.killpg(srv.pid, signal.SIGINT)
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL)
            srv.wait()
        found["server_exit"] = srv.returncode
        found["stderr_tail"] = srv.stderr.read()[-400:]
        found["scenario"] = f"{shards}{':' + mode if mode else ''}"
        print(json.dumps(found), flush=True)
    return ok


def grow(c: Client, X: np.ndarray, ref: np.ndarray, found: dict) -> None:
    """Every shard holds >= 4 streams: the next new stream (100) starts one more actor and
    goes where there is room now; once STATS shows the new shard, streams 101-104 start on
    it. Each new stream's first chunk must equal a fresh start."""
    new = {100: X[0, :16]}
    c.send(new[100], stream_id=100, seq=0)
    replies = {100: c.recv(timeout=180)}
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        st = c.request_stats()
        if st["engine"]["shards"] > found["engine"]["shards"]:
            break
        time.sleep(0.2)
    found["grown_after_s"] = round(time.monotonic() - t0, 1)
    for k in range(101, 105):
        new[k] = X[k - 100, :16]
        c.send(new[k], stream_id=k, seq=0)
        replies[k] = c.recv(timeout=180)
    found["new_diff"] = max(float(np.abs(y - ref[k - 100 if k > 100 else 0, :16]).max())
                            for k, (h, y) in replies.items())
    found["new_flags"] = [[h.stream_id, h.is_error, bool(h.reset)] for h, _ in replies.values()]
    found["grown"] = c.request_stats()["engine"]


ray.init(num_cpus=4, _node_ip_address="127.0.0.1", include_dashboard=False,
         log_to_driver=False, configure_logging=False)
gcs = ray.get_runtime_context().gcs_address
try:
    results = [scenario(int(a.split(":")[0]), a.partition(":")[2], gcs) for a in sys.argv[1:]]
finally:
    ray.shutdown()
sys.exit(0 if all(results) else 1)
