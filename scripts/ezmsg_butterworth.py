"""The Butterworth step against ezmsg-sigproc's filter and a bare scipy ``sosfilt`` loop.

The same filter (low-pass, order 4, 40 Hz at 1 kHz: the registry's default
``butterworth``) on the same 256-sample float32 blocks, one channel: sigstream's
``StreamRunner.step``, ezmsg-sigproc's ``ButterworthFilterTransformer`` called on
``AxisArray`` messages (its step alone, no ezmsg graph), and ``sosfilt`` with ``zi``
carried. Repetitions are interleaved; the best median per method is printed.

    pip install ezmsg-sigproc      # the optional peer; not a sigstream dependency
    python scripts/ezmsg_butterworth.py [--block 256] [--chunks 20000] [--reps 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    try:
        from ezmsg.sigproc.butterworthfilter import (
            ButterworthFilterSettings,
            ButterworthFilterTransformer,
        )
        from ezmsg.util.messages.axisarray import AxisArray
    except ImportError:
        sys.exit("error: needs ezmsg-sigproc: pip install ezmsg-sigproc")
    import torch
    from scipy import signal

    from sigstream.models.baselines.butterworth import ButterworthConfig
    from sigstream.models.registry import build_model
    from sigstream.stream.runner import StreamRunner

    torch.set_num_threads(1)
    b, n = args.block, args.chunks
    x = np.random.default_rng(0).standard_normal((b * n, 1)).astype(np.float32)
    blocks = [x[i * b:(i + 1) * b] for i in range(n)]
    msgs = [AxisArray(blk, dims=["time", "ch"],
                      axes={"time": AxisArray.TimeAxis(fs=1000.0, offset=i * b / 1000.0)})
            for i, blk in enumerate(blocks)]
    sos = ButterworthConfig().sos()

    def timed(step, items) -> float:  # noqa: ANN001 - a callable on one item
        t = np.empty(len(items))
        clock = time.perf_counter
        for i, item in enumerate(items):
            t0 = clock()
            step(item)
            t[i] = clock() - t0
        return float(np.median(t[100:]) * 1e6)

    def ezmsg() -> float:
        tr = ButterworthFilterTransformer(ButterworthFilterSettings(
            axis="time", order=4, cutoff=40.0, coef_type="sos"))
        return timed(tr, msgs)

    def sigstream() -> float:
        runner = StreamRunner(build_model("butterworth"), batch=1, validate=False)
        return timed(lambda blk: runner.step(blk[None]), blocks)

    def bare() -> float:
        zi = [np.zeros((sos.shape[0], 2))]

        def step(blk: np.ndarray) -> None:
            _, zi[0] = signal.sosfilt(sos, blk[:, 0], zi=zi[0])
        return timed(step, blocks)

    best: dict[str, float] = {}
    for _ in range(args.reps):
        for name, fn in (("ezmsg-sigproc step", ezmsg), ("sigstream step", sigstream),
                         ("bare sosfilt loop", bare)):
            best[name] = min(best.get(name, np.inf), fn())
    ours = best["sigstream step"]
    print(f"block {b}, {n} chunks, best median of {args.reps} interleaved repetitions:")
    for name, us in best.items():
        print(f"  {name:20s} {us:7.1f} us per chunk  ({us / ours:.2f}x sigstream)")


if __name__ == "__main__":
    main()
