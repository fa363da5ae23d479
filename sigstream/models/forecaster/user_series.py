"""Training windows from the user's own series (``sigstream train forecaster --data``).

``--data PATH``: a ``.npy`` file holding one series (shape (T,), (T, 1) or (1, T)) or
several (2-D (T, C): each column a series), or a folder of such files (every ``*.npy``
under it, e.g. ``sigstream data series``'s ``series/train``). Non-finite values are gaps:
a window holding one is never drawn.

Each series is split by time, the same way ``sigstream eval forecaster --data`` splits
it: windows whose targets lie in its first 60 % train, those whose targets lie in
60-70 % validate, and its last 30 % (:data:`EVAL_FRACTION`, held out for evaluation) is
never read. The lookback of a window may reach back into an earlier part; its targets
never reach forward into a later one. The model is level- and scale-equivariant, so the
series need no normalising.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from sigstream.core.errors import InputError
from sigstream.models.forecaster.data import WindowBatch

__all__ = ["TRAIN_END", "VAL_END", "EVAL_FRACTION", "read_npy", "load_arrays", "SeriesPool", "pool"]

TRAIN_END = 0.6  # targets of training windows end before this fraction of each series
VAL_END = 0.7  # validation targets: [TRAIN_END, VAL_END); evaluation: the rest
EVAL_FRACTION = 1.0 - VAL_END


def read_npy(path: Path) -> list[np.ndarray]:
    """The float64 series of one ``.npy`` file: 1-D (or (1, T)) one, 2-D one per column;
    InputError naming ``--data`` for anything else."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"--data {str(path)!r} is not a readable .npy array "
                         f"({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(arr, np.ndarray) or not (np.issubdtype(arr.dtype, np.integer)
                                               or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"--data {str(path)!r} must hold real numbers, got dtype "
                         f"{getattr(arr, 'dtype', type(arr).__name__)}")
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr.reshape(-1)
    if arr.ndim == 1:
        return [arr.astype(np.float64)]
    if arr.ndim == 2:
        return [np.ascontiguousarray(arr[:, c], dtype=np.float64) for c in range(arr.shape[1])]
    raise InputError(f"--data {str(path)!r} must be 1-D (one series) or 2-D (time x series), "
                     f"got shape {arr.shape}")


def load_arrays(path: str) -> list[tuple[str, np.ndarray]]:
    """``(name, float64 series)`` for every series at ``path`` (a .npy file or a folder)."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(p.rglob("*.npy"))
        if not files:
            raise InputError(f"--data {path!r}: the folder holds no .npy file")
    elif p.is_file():
        files = [p]
    else:
        raise InputError(f"--data {path!r}: no such file or folder")
    out = []
    for f in files:
        parts = read_npy(f)
        for c, x in enumerate(parts):
            out.append((f.stem if len(parts) == 1 else f"{f.stem}[{c}]", x))
    return out


def _origins(n: int, lookback: int, horizon: int, lo: float, hi: float) -> np.ndarray:
    """Origins t (last lookback index) whose targets t+1 .. t+H lie in [lo n, hi n)."""
    first = max(lookback - 1, int(np.ceil(lo * n - 1e-9)) - 1)
    last = int(np.ceil(hi * n - 1e-9)) - 1 - horizon  # t + H <= ceil(hi n) - 1
    return np.arange(first, last + 1) if last >= first else np.zeros(0, dtype=np.int64)


class SeriesPool:
    """Every gap-free window of the training and validation parts of some series."""

    def __init__(self, series: list[tuple[str, np.ndarray]], lookback: int, horizon: int,
                 where: str = "--data") -> None:
        self.series = [x for _, x in series]
        self.lookback, self.horizon = lookback, horizon
        pools: dict[str, list[np.ndarray]] = {"train": [], "val": []}
        for i, x in enumerate(self.series):
            ok = np.isfinite(x)
            bad = np.concatenate([[0], np.cumsum(~ok)])  # gaps before each index
            for part, (lo, hi) in (("train", (0.0, TRAIN_END)), ("val", (TRAIN_END, VAL_END))):
                t = _origins(x.size, lookback, horizon, lo, hi)
                if t.size:  # no gap in t-L+1 .. t+H
                    t = t[bad[t + horizon + 1] - bad[t - lookback + 1] == 0]
                pools[part].append(np.stack([np.full(t.size, i), t], axis=1))
        self.train = np.concatenate(pools["train"])
        self.val = np.concatenate(pools["val"])
        need = int(np.ceil((lookback + horizon) / TRAIN_END))
        longest = max((x.size for x in self.series), default=0)
        if not self.train.size:
            raise InputError(
                f"{where}: no gap-free window of lookback + horizon = {lookback + horizon} "
                f"samples fits the first {TRAIN_END:.0%} of any series (longest: {longest} "
                f"samples; a series needs about {need} or more)")
        if not self.val.size:
            raise InputError(
                f"{where}: no gap-free validation window (targets in {TRAIN_END:.0%}-"
                f"{VAL_END:.0%} of a series): give a longer series (longest: {longest} "
                f"samples)")

    def _batch(self, idx: np.ndarray) -> WindowBatch:
        span = np.arange(-self.lookback + 1, self.horizon + 1)
        rows = np.stack([self.series[int(s)][int(t) + span] for s, t in idx]) if idx.size \
            else np.zeros((0, self.lookback + self.horizon))
        x = torch.from_numpy(rows.astype(np.float32))
        n = x.shape[0]
        look, tgt = x[:, :self.lookback].contiguous(), x[:, self.lookback:].contiguous()
        return WindowBatch(look, tgt, tgt.clone(), torch.zeros(n, dtype=torch.long),
                           torch.ones(n, dtype=torch.bool), torch.zeros((n, 1), dtype=torch.long))

    def train_windows(self, n: int, seed: np.random.SeedSequence) -> WindowBatch:
        """``n`` training windows drawn uniformly over every training origin."""
        pick = np.random.default_rng(seed).integers(0, len(self.train), size=n)
        return self._batch(self.train[pick])

    def val_windows(self, n: int) -> WindowBatch:
        """At most ``n`` validation windows, evenly strided (the same every time)."""
        stride = max(1, int(np.ceil(len(self.val) / n)))
        return self._batch(self.val[::stride])


@functools.lru_cache(maxsize=4)
def _cached(path: str, mtime: float, lookback: int, horizon: int) -> SeriesPool:
    return SeriesPool(load_arrays(path), lookback, horizon, where=f"--data {path!r}")


def pool(path: str, lookback: int, horizon: int) -> SeriesPool:
    """The :class:`SeriesPool` of ``path`` (cached while the file or folder is unchanged)."""
    p = Path(path).expanduser()
    mtime = os.stat(p).st_mtime if p.exists() else -1.0
    return _cached(str(p), mtime, lookback, horizon)
