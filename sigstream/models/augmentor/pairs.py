"""The user's own sensor pairs: aligned low-/high-quality recordings for the SensorAugmentor.

T: time (samples), C: channels, N: windows, W: window length.

A pair is given as

* one ``.npz`` with arrays ``low`` and ``high`` (shape ``(T,)`` or ``(T, C)``, the same for
  both) and optionally ``rate`` (a scalar, Hz), as ``sigstream data sensors`` writes it; or
* two files ``LOW,HIGH``: ``.npy`` arrays (as above) or WAV (any format ``soundfile``
  reads; frames x channels, the rate from the files, which must agree).

Split in time, never shuffled across it: the first 70 % is for training, its last 15 %
held back for validation (early stopping, the baselines' parameters, the uncertainty
calibration); the last 30 % is held out for evaluation. Windows never straddle two parts.
Channels are pooled: every channel's windows are examples of one window model (the model
is channel-agnostic; its normaliser is one scalar mean/std fitted on the training part).

Bad input is one :class:`~sigstream.core.errors.InputError` line: a missing file or array,
lengths, channel counts or rates that differ, non-finite values, more than two dimensions,
a recording too short to hold one window in the validation and the evaluation parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from sigstream.core.errors import InputError
from sigstream.core.files import sha256_file
from sigstream.models.augmentor.data import (
    VibrationSet,
    VibrationSplits,
    actuator_targets,
    frame,
)

__all__ = ["SensorPairs", "load_pairs", "check_pairs", "split_bounds", "min_samples",
           "pair_windows", "pair_splits", "describe", "TRAIN_FRACTION", "VAL_FRACTION"]

TRAIN_FRACTION = 0.7  # the first 70 % (training + validation); the rest is held out
VAL_FRACTION = 0.15  # the last 15 % of the first 70 % is validation


@dataclass(frozen=True)
class SensorPairs:
    """low, high: (T, C) float32; rate: Hz when the files say it (None for NPY arrays
    without one); source: what was read."""

    low: np.ndarray
    high: np.ndarray
    rate: float | None
    source: str

    @property
    def length(self) -> int:
        return int(self.low.shape[0])

    @property
    def channels(self) -> int:
        return int(self.low.shape[1])


def _exists(path: str, option: str) -> None:
    if not os.path.isfile(path):
        raise InputError(f"{option}: no such file {path!r}")


def _read_one(path: str, option: str) -> tuple[np.ndarray, float | None]:
    _exists(path, option)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{option}: cannot read {path!r} as NPY: {exc}") from None
        return arr, None
    if ext == ".npz":
        raise InputError(f"{option}: {path!r} is an .npz: give it alone (arrays 'low' and "
                         f"'high'), not as one of LOW,HIGH")
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError) as exc:  # soundfile's LibsndfileError too
        raise InputError(f"{option}: cannot read {path!r} as NPY or audio: "
                         f"{str(exc).splitlines()[0]}") from None
    return data, float(rate)


def load_pairs(spec: str, option: str = "--data") -> SensorPairs:
    """Read ``spec``: ``pairs.npz`` or ``LOW,HIGH`` (NPY or WAV); checked (:func:`check_pairs`)."""
    spec = str(spec).strip()
    if "," in spec:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InputError(f"{option}: expected PAIRS.npz or LOW,HIGH (two files), got "
                             f"{spec!r}")
        (low, rate_l), (high, rate_h) = (_read_one(p, option) for p in parts)
        if rate_l is not None and rate_h is not None and rate_l != rate_h:
            raise InputError(f"{option}: the rates differ: {parts[0]!r} is {rate_l:g} Hz, "
                             f"{parts[1]!r} is {rate_h:g} Hz; resample one to the other")
        if (rate_l is None) != (rate_h is None):
            raise InputError(f"{option}: give two NPY files or two audio files, not one of "
                             f"each")
        return check_pairs(low, high, rate_l, spec, option)
    _exists(spec, option)
    try:
        with np.load(spec, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise InputError(f"{option}: {spec!r} is one array: give an .npz with "
                                 f"arrays 'low' and 'high', or LOW,HIGH")
            missing = [k for k in ("low", "high") if k not in z.files]
            if missing:
                raise InputError(f"{option}: {spec!r} has no array "
                                 f"{' or '.join(repr(k) for k in missing)} (it has: "
                                 f"{', '.join(z.files) or 'nothing'}); expected 'low' and "
                                 f"'high' (and optionally 'rate')")
            low, high = z["low"], z["high"]
            rate = None
            if "rate" in z.files:
                r = np.asarray(z["rate"])
                if r.size != 1 or not np.isfinite(r).all() or float(r.reshape(-1)[0]) <= 0:
                    raise InputError(f"{option}: 'rate' in {spec!r} must be one positive "
                                     f"number of Hz, got {r.reshape(-1)[:3].tolist()}")
                rate = float(r.reshape(-1)[0])
    except (OSError, ValueError) as exc:
        raise InputError(f"{option}: cannot read {spec!r} as NPZ: {exc}") from None
    return check_pairs(low, high, rate, spec, option)


def check_pairs(low: Any, high: Any, rate: float | None, source: str = "pairs",
                option: str = "--data") -> SensorPairs:
    """Arrays -> :class:`SensorPairs` ((T, C) float32), or one InputError line."""
    out = []
    for name, a in (("low", low), ("high", high)):
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiu":
            raise InputError(f"{option}: '{name}' must be numbers, got dtype {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise InputError(f"{option}: '{name}' must be (T,) or (T, C), got shape "
                             f"{arr.shape}")
        arr = arr.astype(np.float32)
        arr = arr[:, None] if arr.ndim == 1 else arr
        bad = ~np.isfinite(arr)
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise InputError(f"{option}: '{name}' has {int(bad.sum())} NaN/inf values (first "
                             f"at sample {t}, channel {c}); fill or cut them out first")
        out.append(arr)
    lo, hi = out
    if lo.shape[0] != hi.shape[0]:
        raise InputError(f"{option}: lengths differ: low has {lo.shape[0]} samples, high "
                         f"{hi.shape[0]}; the pair must be aligned sample by sample")
    if lo.shape[1] != hi.shape[1]:
        raise InputError(f"{option}: channel counts differ: low has {lo.shape[1]}, high "
                         f"{hi.shape[1]}")
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise InputError(f"{option}: the rate must be a positive number of Hz, got {rate}")
    return SensorPairs(lo, hi, None if rate is None else float(rate), source)


def split_bounds(length: int) -> dict[str, tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of ``train``, ``val`` and ``test`` (module docstring)."""
    dev = int(TRAIN_FRACTION * length)
    n_val = int(round(VAL_FRACTION * dev))
    return {"train": (0, dev - n_val), "val": (dev - n_val, dev), "test": (dev, length)}


def min_samples(window: int) -> int:
    """The shortest recording whose train, validation and test parts each hold a window."""
    n = window
    while any(b - a < window for a, b in split_bounds(n).values()):
        n += 1
    return n


def _check_length(pairs: SensorPairs, window: int, option: str) -> None:
    need = min_samples(window)
    if pairs.length < need:
        raise InputError(f"{option}: the pair is too short: {pairs.length} samples; need at "
                         f"least {need} so that the validation part (the last 15 % of the "
                         f"first 70 %) and the held-out last 30 % each hold one "
                         f"{window}-sample window")


def pair_windows(low: np.ndarray, high: np.ndarray, window: int, hop: int,
                 flip: bool = False) -> VibrationSet:
    """(T, C) pair -> every channel's complete windows every ``hop`` samples, pooled
    (channel-major); ``flip`` adds each window negated (low and high together)."""
    lq = frame(np.ascontiguousarray(low.T), window, hop).reshape(-1, window)
    hq = frame(np.ascontiguousarray(high.T), window, hop).reshape(-1, window)
    if flip:
        lq, hq = np.concatenate([lq, -lq]), np.concatenate([hq, -hq])
    lq, hq = lq.astype(np.float32), hq.astype(np.float32)
    return VibrationSet(lq, hq, hq, actuator_targets(hq), lq)


def pair_splits(pairs: SensorPairs, window: int, train_hop: int, flip: bool = False,
                option: str = "--data") -> VibrationSplits:
    """Training windows every ``train_hop`` samples (``flip``: and negated), validation
    windows every ``window // 2`` and test windows back to back (``window``)."""
    _check_length(pairs, window, option)
    b = split_bounds(pairs.length)

    def part(name: str) -> tuple[np.ndarray, np.ndarray]:
        a, z = b[name]
        return pairs.low[a:z], pairs.high[a:z]

    return VibrationSplits(pair_windows(*part("train"), window, train_hop, flip),
                           pair_windows(*part("val"), window, max(window // 2, 1)),
                           pair_windows(*part("test"), window, window))


def describe(pairs: SensorPairs, spec: str) -> dict:
    """What a checkpoint records about the pair it was trained on (JSON-ready)."""
    files = [p.strip() for p in str(spec).split(",")]
    return {"source": str(spec), "samples": pairs.length, "channels": pairs.channels,
            "rate": pairs.rate, "split": {k: list(v) for k, v in
                                          split_bounds(pairs.length).items()},
            "sha256": {os.path.basename(f): sha256_file(f) for f in files if os.path.isfile(f)}}
