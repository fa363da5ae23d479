#!/usr/bin/env python3
"""Streams kept in real time at chunk 256 (1 kHz extractor streams, 8 client sockets, the
client on the same machine) by `serve` and by `serve --engine ray` with 1 and 2 shards,
in one run, with the gateway's CPU per chunk. Levels rise until one falls behind.
Run it inside a loopback-only namespace (Ray listens everywhere):

    unshare -n sh -c 'ip link set lo up && python scripts/ray_capacity.py [--backend onnx]'

Prints one line per level and a JSON summary last.
"""
import argparse, json, os, signal, socket, subprocess, sys

import numpy as np

from sigstream.bench.zmq.bench import _capacity_level, _proc_cpu_s
from sigstream.stream.net.client import Client

ap = argparse.ArgumentParser()
ap.add_argument("--backend", default="onnx")
ap.add_argument("--chunk", type=int, default=256)
ap.add_argument("--seconds", type=float, default=6.0)
ap.add_argument("--levels", default="250,500,1000,1500,2000,3000,4000")
ap.add_argument("--engines", default="serve,ray1,ray2")
a = ap.parse_args()


def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(engine, ep):
    extra = [] if engine == "serve" else ["--engine", "ray", "--shards", engine[3:]]
    p = subprocess.Popen([sys.executable, "-m", "sigstream", "serve", "--model", "extractor",
                          "--backend", a.backend, "--bind", ep, "--stats-every", "0",
                          "--idle-timeout", "0", "--max-streams", "8192",
                          "--max-streams-per-client", "8192", "--new-stream-rate", "0",
                          "--max-batch", "8192", *extra],
                         stderr=subprocess.DEVNULL, start_new_session=True)
    with Client(ep) as c:  # wait until it answers (the model loaded, the actors up)
        for _ in range(600):
            c.send(np.zeros(a.chunk, np.float32), start=True, end=True)
            try:
                h, _ = c.recv(timeout=0.5)
            except TimeoutError:
                continue
            if not h.is_error:
                break
    return p


def stop(p):
    os.killpg(p.pid, signal.SIGINT)
    try: p.wait(60)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()


summary = {}
for engine in a.engines.split(","):
    best = 0
    for n in [int(v) for v in a.levels.split(",")]:
        ep = f"tcp://127.0.0.1:{port()}"
        p = start(engine, ep)
        try:
            cpu0 = _proc_cpu_s(p.pid)
            row = _capacity_level(ep, n, a.chunk, a.seconds, 8, a.chunk * 4 * 4, 5.0)
            cpu1 = _proc_cpu_s(p.pid)
        finally:
            stop(p)
        us = (cpu1 - cpu0) / row["ok"] * 1e6 if row["ok"] else None
        print(f"{engine:5s} N={n:5d} sent {row['sent']} lost {row['lost']} errors "
              f"{row['errors']} latency p50 {row['latency_ms']['p50']} ms p99 "
              f"{row['latency_ms']['p99']} ms lag growth {row['lag_ms']['growth']} ms "
              f"gateway CPU {us and round(us, 1)} us/chunk client_limited "
              f"{row['client_limited']} {'kept up' if row['kept_up'] else 'fell behind'}",
              flush=True)
        summary.setdefault(engine, []).append({"streams": n, "kept_up": row["kept_up"],
                                               "gateway_cpu_us_per_chunk": us,
                                               "latency_ms": row["latency_ms"],
                                               "lost": row["lost"]})
        if not row["kept_up"]:
            break
        best = n
    summary[engine + "_max_kept_up"] = best
print(json.dumps(summary))
