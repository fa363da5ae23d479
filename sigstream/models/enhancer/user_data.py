"""Your own speech and noise for the 48 kHz speech enhancer: ``--clean DIR --noise DIR``.

``sigstream train enhancer --clean DIR --noise DIR`` and ``sigstream eval enhancer --clean
DIR --noise DIR`` read two folders of WAV files instead of the corpus built by ``sigstream
data speech``; :func:`load_user_data` turns them into a :class:`UserCorpus`, which the
corpus's mixing code (:func:`.noises.training_batch`, :func:`.noises.test_mixtures`, noise
kind ``real``) reads like the built corpus.

* **Files**: every ``*.wav`` (any case) under the folder, subfolders included, named by
  their path relative to it. Any sample rate, mono or multi-channel.
* **Conditioning**: multi-channel files are downmixed to mono (mean of the channels),
  resampled to 48 kHz with ``scipy.signal.resample_poly`` (polyphase, its default Kaiser
  window, beta 5), the mean (DC) removed. Nothing else: no trimming, no normalisation (the
  mixing code sets the levels).
* **Splits**, per folder, deterministic: with 3 files or more, by file: the files ranked
  by the SHA-256 of their relative path, the first ``max(1, round(10 %))`` are test, the
  next ``max(1, round(10 %))`` validation, the rest (about 80 %) training. With fewer
  than 3 files, every file is split by time: its first 80 % for training, the next 10 %
  for validation, the last 10 % for test.
* **Mixtures**: one mixture's speech is one excerpt of one clean file (of the split),
  after a random lead of silence of up to 0.3 s; its noise one excerpt of one noise file
  of the same split (:func:`.noises.loop_to`), at an SNR over the whole mixture
  (:func:`.noises.mix` / :func:`.noises.training_batch`).

Refused, each with one error line (:class:`~sigstream.core.errors.InputError`, or
:class:`~sigstream.core.errors.ConfigError` for options): a folder that is missing, empty
or holds no WAV file; a file that is not a readable WAV, or holds NaN/Inf samples; a silent
file (peak below -100 dBFS); a file (or, split by time, a file's part) shorter than one
mixture (the training ``--clip-seconds``, the validation ``--val-seconds``, the evaluation
``--clip-seconds``); ``--clean`` without ``--noise`` or the reverse.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigstream.core.errors import ConfigError, InputError

__all__ = ["RATE", "RESAMPLER", "DOWNMIX", "SPLIT_FRACTIONS", "PIECE_HOP_S", "UserCorpus",
           "UserClip", "describe", "wav_files", "split_files", "read_wav", "to_mono_48k",
           "load_user_data", "check_pair"]

RATE = 48000
RESAMPLER = "scipy.signal.resample_poly to 48 kHz (polyphase FIR, Kaiser window beta 5)"
DOWNMIX = "mean of the channels"
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
PIECE_HOP_S = 0.05
"""Excerpts of a clean file start on this grid (plus the random lead)."""
SILENT_PEAK = 1e-5  # -100 dBFS
_SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class UserClip:
    """What :class:`.corpus.Clip` holds: one excerpt (speech) or file (noise)."""

    audio: np.ndarray  # float32, mono, 48 kHz, read-only
    kind: str          # "speech" | "noise"
    split: str
    source: str        # the file's path relative to its folder
    group: str         # speech: the file (one talker group per file); noise: "user"


def check_pair(clean: str | None, noise: str | None) -> None:
    """ConfigError unless both or neither of ``--clean`` and ``--noise`` are given."""
    if clean and not noise:
        raise ConfigError("--clean needs --noise: a folder of noise WAVs to mix with your "
                          "speech")
    if noise and not clean:
        raise ConfigError("--noise needs --clean: a folder of clean speech WAVs")


def wav_files(folder: str | Path, option: str) -> list[str]:
    """The WAV files under ``folder`` as sorted relative paths (``/``-separated);
    InputError when the folder is missing, not a folder, empty or without WAV files."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputError(f"{option} {folder}: no such folder")
    if not root.is_dir():
        raise InputError(f"{option} {folder}: not a folder (give a folder of WAV files)")
    every = [p for p in root.rglob("*") if p.is_file()]
    if not every:
        raise InputError(f"{option} {folder}: the folder is empty (put WAV files in it)")
    wavs = sorted(p.relative_to(root).as_posix() for p in every
                  if p.suffix.lower() == ".wav")
    if not wavs:
        raise InputError(f"{option} {folder}: no WAV files among its {len(every)} files "
                         f"(only *.wav is read; convert others, e.g. with ffmpeg -i IN OUT.wav)")
    return wavs


def _rank(rel: str) -> str:
    return hashlib.sha256(rel.encode("utf-8")).hexdigest()


def split_files(files: list[str]) -> dict[str, list[str]] | None:
    """train / val / test lists of ``files`` (3 or more) by the SHA-256 rank of their
    names (each list sorted); None for fewer than 3 files (they are split by time)."""
    if len(files) < 3:
        return None
    ranked = sorted(files, key=lambda f: (_rank(f), f))
    n = len(ranked)
    n_test = max(1, round(SPLIT_FRACTIONS["test"] * n))
    n_val = max(1, round(SPLIT_FRACTIONS["val"] * n))
    return {"test": sorted(ranked[:n_test]), "val": sorted(ranked[n_test:n_test + n_val]),
            "train": sorted(ranked[n_test + n_val:])}


def to_mono_48k(x: np.ndarray, rate: int) -> np.ndarray:
    """(T,) or (T, C) samples at ``rate`` -> (T',) float64 at 48 kHz: channels averaged,
    :data:`RESAMPLER`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    rate = int(rate)
    if rate != RATE and len(x):
        from scipy.signal import resample_poly

        g = math.gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g)
    return np.asarray(x, dtype=np.float64)


def read_wav(path: str | Path, option: str = "") -> tuple[np.ndarray, dict]:
    """A WAV file as (T,) float32 mono at 48 kHz, DC removed, and what it was (rate,
    channels, seconds); InputError when it cannot be read or holds NaN/Inf."""
    import soundfile as sf

    where = f"{option} file {path}" if option else f"{path}"
    try:
        with sf.SoundFile(str(path)) as f:
            if f.format != "WAV" and f.format not in ("WAVEX", "RF64", "W64"):
                raise InputError(f"{where} is a {f.format} file, not a WAV")
            rate, channels = int(f.samplerate), int(f.channels)
            data = f.read(dtype="float64", always_2d=True)
    except InputError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:  # soundfile's LibsndfileError too
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{where} is not a readable WAV file ({first[:120]})") from None
    if not np.all(np.isfinite(data)):
        raise InputError(f"{where} holds NaN or infinite samples")
    x = to_mono_48k(data, rate)
    if len(x):
        x = x - x.mean()
    return x.astype(np.float32), {"rate": rate, "channels": channels,
                                  "seconds": data.shape[0] / rate if rate else 0.0}


class UserCorpus:
    """Your folders as the corpus interface :mod:`.noises` reads: ``root``, ``manifest``,
    ``speech(split)`` and ``noise(split)``. Built by :func:`load_user_data`; only the
    splits it was asked for are loaded (the others are empty)."""

    def __init__(self, root: str, manifest: dict, speech: dict[str, list[UserClip]],
                 noise: dict[str, list[UserClip]]) -> None:
        self.root = root
        self.manifest = manifest
        self._speech, self._noise = speech, noise

    def __repr__(self) -> str:
        return f"UserCorpus({self.root!r})"

    def speech(self, split: str) -> list[UserClip]:
        return list(self._speech.get(split, []))

    def noise(self, split: str) -> list[UserClip]:
        return list(self._noise.get(split, []))


def _pieces(x: np.ndarray, n: int) -> list[np.ndarray]:
    """Read-only views of length ``n`` starting every :data:`PIECE_HOP_S` (the last one
    ending at the end of ``x``)."""
    hop = int(PIECE_HOP_S * RATE)
    starts = list(range(0, len(x) - n + 1, hop))
    if starts[-1] != len(x) - n:
        starts.append(len(x) - n)
    return [x[s:s + n] for s in starts]


def load_user_data(clean: str, noise: str, seconds: Mapping[str, float],
                   options: Mapping[str, str] | None = None) -> UserCorpus:
    """The splits named in ``seconds`` (split -> mixture length in s, e.g. ``{"train": 2,
    "val": 3}``) of the ``clean`` and ``noise`` folders, checked and conditioned (see the
    module docstring); ``options`` names the option that sets each length (for the error
    that a file is shorter). Mixtures of a split are excerpts of that length."""
    check_pair(clean, noise)
    for split in seconds:
        if split not in _SPLITS:
            raise ConfigError(f"unknown split {split!r}: use one of {', '.join(_SPLITS)}")
    options = {**{s: "--clip-seconds" for s in _SPLITS}, **(options or {})}
    manifest: dict = {"sample_rate": RATE, "version": "user", "resampler": RESAMPLER,
                      "downmix": DOWNMIX, "dc": "removed per file",
                      "clean": str(clean), "noise": str(noise), "split": {}, "files": {}}
    speech: dict[str, list[UserClip]] = {s: [] for s in seconds}
    noises: dict[str, list[UserClip]] = {s: [] for s in seconds}
    for kind, folder, option in (("speech", clean, "--clean"), ("noise", noise, "--noise")):
        files = wav_files(folder, option)
        by_file = split_files(files)
        if by_file is None:
            manifest["split"][kind] = ("by time within each file (fewer than 3 files): first "
                                       "80 % train, next 10 % validation, last 10 % test")
            manifest["files"][kind] = {s: list(files) for s in _SPLITS}
        else:
            manifest["split"][kind] = ("by file: ranked by the SHA-256 of the relative path, "
                                       "10 % test, 10 % validation (at least one file each), "
                                       "the rest training")
            manifest["files"][kind] = by_file
        for rel in files:
            splits = [s for s in seconds if by_file is None or rel in by_file[s]]
            if not splits:
                continue
            path = Path(folder).expanduser() / rel
            x, _ = read_wav(path, option)
            if len(x) == 0:
                raise InputError(f"{option} file {path} holds no samples")
            peak = float(np.max(np.abs(x)))
            if peak < SILENT_PEAK:
                raise InputError(f"{option} file {path} is silent (peak {_dbfs(peak)}): "
                                 f"remove it")
            for split in splits:
                part = x if by_file is not None else _time_part(x, split)
                n = int(round(float(seconds[split]) * RATE))
                if len(part) < max(n, 1):
                    raise InputError(_short(option, path, len(part), n, split,
                                            options[split], by_file is None))
                if by_file is None and float(np.max(np.abs(part))) < SILENT_PEAK:
                    raise InputError(f"{option} file {path}: its {_NAMES[split]} part (the "
                                     f"file is split by time) is silent")
                part = np.array(part, dtype=np.float32)
                part.flags.writeable = False
                if kind == "speech":
                    speech[split] += [UserClip(p, "speech", split, rel, rel)
                                      for p in _pieces(part, n)]
                else:
                    noises[split].append(UserClip(part, "noise", split, rel, "user"))
    return UserCorpus(f"--clean {clean} --noise {noise}", manifest, speech, noises)


def describe(corpus: UserCorpus) -> str:
    """One line: how many files of each folder went to each split, and how."""
    parts = []
    for kind, option in (("speech", "--clean"), ("noise", "--noise")):
        files = corpus.manifest["files"][kind]
        how = corpus.manifest["split"][kind].split(":")[0].split(" (")[0]
        counts = ", ".join(f"{len(files[s])} {s}" for s in _SPLITS)
        parts.append(f"{option} {corpus.manifest['clean' if kind == 'speech' else 'noise']}: "
                     f"{how} ({counts})")
    return "; ".join(parts) + f"; mono ({DOWNMIX}), {RESAMPLER}"


_NAMES = {"train": "training", "val": "validation", "test": "test"}


def _time_part(x: np.ndarray, split: str) -> np.ndarray:
    a = int(len(x) * SPLIT_FRACTIONS["train"])
    b = int(len(x) * (SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"]))
    return {"train": x[:a], "val": x[a:b], "test": x[b:]}[split]


def _dbfs(peak: float) -> str:
    return f"{20 * math.log10(peak):.0f} dBFS" if peak > 0 else "0"


def _short(option: str, path: Path, have: int, need: int, split: str, length: str,
           by_time: bool) -> str:
    what = f"one {_NAMES[split]} mixture ({length} {need / RATE:g})"
    if by_time:
        return (f"{option} file {path}: its {_NAMES[split]} part is {have / RATE:.2f} s, "
                f"shorter than {what} (with fewer than 3 files each file is split by time, "
                f"80/10/10 %): add files, use longer ones or a smaller {length}")
    return (f"{option} file {path} is {have / RATE:.2f} s long, shorter than {what}: use "
            f"longer files or a smaller {length}")
