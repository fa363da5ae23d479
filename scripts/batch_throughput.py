#!/usr/bin/env python3
"""Throughput of `sigstream batch` over many files against a shell loop of `sigstream run`
on the same files, in one run (issue: batch >= 1.5x a loop of run on 2 cores).

    python scripts/batch_throughput.py [--files 64] [--seconds 2] [--model enhancer]
    unshare -n sh -c 'ip link set lo up && python scripts/batch_throughput.py --ray'

The inputs are synthetic 48 kHz WAVs (tones, chirps and noise; nothing recorded), written
to a temporary folder. Every batch output is compared with the loop's, array-equal.
"""
import argparse, glob, os, subprocess, sys, tempfile, time

import numpy as np
import soundfile as sf

ap = argparse.ArgumentParser()
ap.add_argument("--files", type=int, default=64)
ap.add_argument("--seconds", type=float, default=2.0)
ap.add_argument("--model", default="enhancer")
ap.add_argument("--rate", type=int, default=48000)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--ray", action="store_true", help="also --engine ray (needs unshare -n)")
a = ap.parse_args()
CMD = [sys.executable, "-m", "sigstream"]

with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "in"); os.makedirs(src)
    rng = np.random.default_rng(0)
    n = int(a.seconds * a.rate)
    t = np.arange(n) / a.rate
    for i in range(a.files):
        f0 = 100 + 40 * i
        x = 0.3 * np.sin(2 * np.pi * (f0 + 200 * t) * t) + 0.05 * rng.standard_normal(n)
        sf.write(os.path.join(src, f"f{i:03d}.wav"), x.astype(np.float32), a.rate,
                 subtype="FLOAT")
    files = sorted(glob.glob(os.path.join(src, "*.wav")))
    audio_s = a.files * a.seconds

    def timed(argv_list, label):
        t0 = time.perf_counter()
        for argv in argv_list:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        print(f"{label:28s} {dt:7.1f} s  {a.files / dt:6.2f} files/s  "
              f"{audio_s / dt:6.1f}x real time", flush=True)
        return dt

    loop_out = os.path.join(d, "loop"); os.makedirs(loop_out)
    results = {"loop of run": timed(
        [[*CMD, "run", "--model", a.model, "--source", f, "--sink",
          os.path.join(loop_out, os.path.basename(f)), "--quiet"] for f in files],
        f"loop of {a.files} x run")}
    engines = [("local", [])] + ([("ray", ["--engine", "ray"])] if a.ray else [])
    for name, extra in engines:
        out = os.path.join(d, f"batch-{name}")
        results[f"batch {name}"] = timed(
            [[*CMD, "batch", "--model", a.model, "--inputs", os.path.join(src, "*.wav"),
              "--out", out, "--jobs", str(a.workers), *extra]],
            f"batch --engine {name} --jobs {a.workers}")
        for f in files:
            y1, _ = sf.read(os.path.join(loop_out, os.path.basename(f)), dtype="float32")
            y2, _ = sf.read(os.path.join(out, os.path.basename(f)), dtype="float32")
            assert np.array_equal(y1, y2), f"{name}: {f} differs from run's output"
    for k, v in results.items():
        if k != "loop of run":
            print(f"{k}: {results['loop of run'] / v:.2f}x the loop's throughput "
                  f"(outputs equal to run's)")
