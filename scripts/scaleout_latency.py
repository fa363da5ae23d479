#!/usr/bin/env python3
"""Round-trip latency of one stream (256-sample chunks of the extractor) through the three
ways to serve: `serve` (local state), `serve --engine ray --shards 2`, and `route` in front
of two `serve` workers. Run it inside a loopback-only namespace (Ray listens everywhere):

    unshare -n sh -c 'ip link set lo up && python scripts/scaleout_latency.py [NAME ...]'

NAME is serve, ray or route (default: all three); BACKEND=onnx in the environment serves
the extractor on ONNX Runtime (as `sigstream bench`'s served extractor does) instead of torch.
"""
import os, signal, socket, subprocess, sys, time
import numpy as np
from sigstream.stream.net.client import Client

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

BACKEND = ["--backend", os.environ.get("BACKEND", "torch")]

def start(*args):
    extra = BACKEND if args[0] == "serve" else []
    return subprocess.Popen([sys.executable, "-m", "sigstream", *args, *extra, "--stats-every", "0"],
                            stderr=subprocess.DEVNULL, start_new_session=True)

def rtts(ep, n=1500, warm=200):
    x = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    out = []
    with Client(ep) as c:
        for probe in range(600):  # until the server (and a router's workers) answer
            c.send(x, stream_id=1000 + probe, seq=0)
            h, _ = c.recv(timeout=120)
            if not h.is_error:
                break
            time.sleep(0.1)
        for i in range(n + warm):
            t = time.perf_counter(); c.send(x, stream_id=1, seq=i); h, _ = c.recv(timeout=120)
            assert not h.is_error
            if i >= warm: out.append(time.perf_counter() - t)
    return np.array(out) * 1e6

def stop(procs):
    for p in procs:
        os.killpg(p.pid, signal.SIGINT)
    for p in procs:
        try: p.wait(60)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL)

rows = []
for name in sys.argv[1:] or ["serve", "ray", "route"]:
    ep = f"tcp://127.0.0.1:{port()}"
    if name == "serve":
        procs = [start("serve", "--model", "extractor", "--bind", ep)]
    elif name == "ray":
        procs = [start("serve", "--model", "extractor", "--bind", ep, "--engine", "ray", "--shards", "2")]
    else:
        w = [f"tcp://127.0.0.1:{port()}" for _ in range(2)]
        procs = [start("serve", "--model", "extractor", "--bind", e) for e in w]
        procs.append(start("route", "--bind", ep, "--workers", ",".join(w)))
    try:
        r = rtts(ep)
        rows.append((name, np.percentile(r, 50), np.percentile(r, 99)))
        print(f"{name:6s} {BACKEND[1]:5s} p50 {rows[-1][1]:8.0f} us  p99 {rows[-1][2]:8.0f} us", flush=True)
    finally:
        stop(procs)
