"""``sigstream data sensors``: a real low-/high-quality sensor pair for the SensorAugmentor.

T: time (samples), C: channels.

Source (the ``sensors`` extra; nothing is downloaded: the files are read from the installed
package): **BasicMotions**, as bundled in ``sktime`` (``sktime/datasets/data/BasicMotions/``,
the UEA multivariate time-series classification archive's copy): a smart watch's 3-D
accelerometer and 3-D gyroscope (6 channels) worn by four students standing, walking,
running and playing badminton; 80 recordings of 10 s sampled at 10 Hz (40 in each of the
archive's TRAIN and TEST files, 10 per activity).

Recipe (deterministic):

1. read the 80 recordings; order them round-robin over the activities (Standing, Running,
   Walking, Badminton), TRAIN file first, so that every part of the time split holds every
   activity (the held-out last 30 % is the TEST file's last 6 recordings of each);
2. resample each recording from 10 Hz to 100 Hz (``scipy.signal.resample_poly``, 10/1,
   ``padtype="line"``) and join them into one (T, 6) recording of 800 s;
3. z-score each channel with the mean and standard deviation of the first 70 % (the training
   part), so that the degradation's fixed noise and drift levels mean the same on every
   channel;
4. degrade it as the augmentor's synthetic sensor model degrades its signal
   (:func:`sigstream.models.augmentor.data.degrade` with the default
   :class:`~sigstream.models.augmentor.data.VibrationConfig`: low-pass ``1/(1 + 0.1 f)``,
   ``N(0, 0.2)`` noise, a 0.1 Hz drift of amplitude 0.2), seeded;
5. write ``OUT/pairs.npz`` (``low``, ``high``: (T, 6) float32, ``rate`` = 100) and
   ``OUT/manifest.json`` (package, version, licence, the source files' SHA-256, the recipe,
   the order of the recordings, the normalisation, the pair's SHA-256).

Held out for the project's independent evaluation, and refused here by name: the examples
bundled with ``aeon``, ``seglearn``, ``obspy``, ``heartpy`` and ``statsmodels``, and
scipy's ECG (``scipy.datasets.electrocardiogram``).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import sha256_file
from sigstream.models.augmentor.data import VibrationConfig, degrade
from sigstream.models.augmentor.pairs import TRAIN_FRACTION, split_bounds

__all__ = ["HELD_OUT", "SOURCES", "SensorSource", "check_source", "read_ts", "default_root",
           "build_sensor_pairs", "summary_lines"]

HELD_OUT: dict[str, str] = {
    "aeon": "aeon's bundled data sets",
    "seglearn": "seglearn's bundled watch-IMU data",
    "obspy": "obspy's bundled seismograms",
    "heartpy": "heartpy's bundled ECG/PPG examples",
    "statsmodels": "statsmodels' bundled data sets",
    "scipy": "scipy's ECG (scipy.datasets.electrocardiogram)",
}


@dataclass(frozen=True)
class SensorSource:
    """A real multi-channel recording shipped inside a PyPI package."""

    package: str
    dataset: str
    files: tuple[str, ...]  # relative to the package folder
    native_rate: float
    description: str
    data_licence: str
    citation: str
    activities: tuple[str, ...]


SOURCES: dict[str, SensorSource] = {
    "sktime:BasicMotions": SensorSource(
        package="sktime", dataset="BasicMotions",
        files=("datasets/data/BasicMotions/BasicMotions_TRAIN.ts",
               "datasets/data/BasicMotions/BasicMotions_TEST.ts"),
        native_rate=10.0,
        description="smart watch 3-D accelerometer + 3-D gyroscope (6 channels), four "
                    "students standing, walking, running and playing badminton; 80 "
                    "recordings of 10 s at 10 Hz",
        data_licence="no licence stated by the UEA archive (distributed openly for "
                     "research); redistributed in sktime under sktime's BSD-3-Clause",
        citation="Bagnall et al., The UEA multivariate time series classification archive, "
                 "2018 (arXiv:1811.00075); BasicMotions: "
                 "timeseriesclassification.com/description.php?Dataset=BasicMotions",
        activities=("Standing", "Running", "Walking", "Badminton"),
    ),
}


def check_source(name: str) -> SensorSource:
    """The source called ``name`` (``PACKAGE:DATASET``); ConfigError for a held-out package
    (see the module docstring) or an unknown source."""
    text = str(name).strip()
    package = text.split(":")[0].split(".")[0].strip().lower()
    if package in HELD_OUT or "electrocardiogram" in text.lower():
        what = HELD_OUT.get(package, HELD_OUT["scipy"])
        raise ConfigError(f"--source {text}: {what} are held out for the project's "
                          f"independent evaluation and are never used to build training "
                          f"data; choose one of: {', '.join(SOURCES)}")
    if text not in SOURCES:
        raise ConfigError(f"--source: unknown source {text!r}; choose one of: "
                          f"{', '.join(SOURCES)}")
    return SOURCES[text]


def _package_dir(package: str) -> Path:
    """The installed package's folder, found without importing it."""
    if package.lower() in HELD_OUT:
        raise ConfigError(f"{package} is held out for the project's independent evaluation")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the package {package!r} is not installed: pip install "
                         f"'sigstream[sensors]' (or pip install {package})")
    return Path(list(spec.submodule_search_locations)[0])


def _licence(package: str) -> str:
    meta = importlib.metadata.metadata(package)
    text = str(meta["License-Expression"] or meta["License"] or "").strip()
    first = text.splitlines()[0].strip() if text else ""
    if not first:
        found = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                 if c.startswith("License ::")]
        first = ", ".join(found) or "unknown"
    return first


def read_ts(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A ``.ts`` file of equal-length multivariate series -> (N, C, L) float64, labels."""
    cases, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *dims, label = line.split(":")
            cases.append([[float(v) for v in d.split(",")] for d in dims])
            labels.append(label.strip())
    if not cases:
        raise InputError(f"{path}: no @data rows")
    try:
        arr = np.asarray(cases, dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: the series are not of equal length") from None
    return arr, labels


def default_root() -> Path:
    """``$SIGSTREAM_DATA/sensors`` if ``SIGSTREAM_DATA`` is set, else
    ``~/.cache/sigstream/sensors``."""
    env = os.environ.get("SIGSTREAM_DATA")
    return (Path(env).expanduser() / "sensors" if env
            else Path.home() / ".cache" / "sigstream" / "sensors")


def _round_robin(labels: list[str], order: tuple[str, ...]) -> list[int]:
    by_label = {lab: [i for i, x in enumerate(labels) if x == lab] for lab in order}
    unknown = sorted(set(labels) - set(order))
    if unknown:
        raise InputError(f"unexpected activity labels {unknown}")
    out = []
    for k in range(max(len(v) for v in by_label.values())):
        out += [v[k] for v in by_label.values() if k < len(v)]
    return out


def build_sensor_pairs(out: str | Path, source: str = "sktime:BasicMotions",
                       rate: float = 100.0, seed: int = 0,
                       progress: Callable[[str], None] | None = None) -> Path:
    """Build ``out/pairs.npz`` and ``out/manifest.json`` (module docstring); returns the
    manifest's path."""
    from scipy.signal import resample_poly

    src = check_source(source)
    say = progress or (lambda _msg: None)
    root = _package_dir(src.package)
    version = importlib.metadata.version(src.package)
    files = [root / f for f in src.files]
    for f in files:
        if not f.is_file():
            raise InputError(f"{src.package} {version} has no {f.relative_to(root)}: "
                             f"this sktime does not bundle {src.dataset}")
    cases, labels, origin = [], [], []
    for f in files:
        arr, labs = read_ts(f)
        say(f"read {f.name}: {arr.shape[0]} recordings x {arr.shape[1]} channels x "
            f"{arr.shape[2]} samples")
        cases.append(arr)
        labels += labs
        origin += [f"{f.stem}[{i}]" for i in range(arr.shape[0])]
    data = np.concatenate(cases)  # (N, C, L)
    order = _round_robin(labels, src.activities)
    up = rate / src.native_rate
    if abs(up - round(up)) > 1e-9 or round(up) < 1:
        raise ConfigError(f"--rate must be a whole multiple of {src.native_rate:g} Hz, "
                          f"got {rate:g}")
    pieces = [resample_poly(data[i].T, int(round(up)), 1, axis=0, padtype="line")
              for i in order]  # (L * up, C) each
    high = np.concatenate(pieces).astype(np.float64)
    dev = int(TRAIN_FRACTION * len(high))
    mean, std = high[:dev].mean(axis=0), high[:dev].std(axis=0)
    high = (high - mean) / np.where(std > 0, std, 1.0)
    vib = VibrationConfig(sample_rate=rate)
    low = degrade(high, vib, seed=seed)
    high32 = high.astype(np.float32)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = out / "pairs.npz"
    tmp = out / "pairs.tmp.npz"
    np.savez(tmp, low=low, high=high32, rate=np.float64(rate))
    os.replace(tmp, pairs)
    say(f"wrote {pairs}: {len(high)} samples x {high.shape[1]} channels at {rate:g} Hz")
    manifest = {
        "what": "a real low-/high-quality sensor pair for the SensorAugmentor "
                "(sigstream data sensors)",
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {
            "id": source, "package": src.package, "package_version": version,
            "package_licence": _licence(src.package), "dataset": src.dataset,
            "description": src.description, "data_licence": src.data_licence,
            "citation": src.citation, "native_rate_hz": src.native_rate,
            "files": [{"path": f"{src.package}/{f.relative_to(root)}",
                       "sha256": sha256_file(f), "bytes": f.stat().st_size} for f in files],
        },
        "recipe": {
            "order": "round-robin over the activities " + ", ".join(src.activities)
                     + "; TRAIN file first",
            "recordings": [{"id": origin[i], "activity": labels[i]} for i in order],
            "resample": f"scipy.signal.resample_poly up={int(round(up))} down=1 "
                        f"padtype=line, per recording, then joined",
            "normalise": "per channel, mean and std of the first 70 %",
            "channel_mean": mean.tolist(), "channel_std": std.tolist(),
            "degradation": "sigstream.models.augmentor.data.degrade",
            "degradation_config": dataclasses.asdict(vib), "seed": seed,
        },
        "pairs": {"file": "pairs.npz", "sha256": sha256_file(pairs), "samples": len(high),
                  "channels": int(high.shape[1]), "rate_hz": rate,
                  "seconds": len(high) / rate,
                  "split": {k: list(v) for k, v in split_bounds(len(high)).items()}},
        "held_out_never_used": sorted(HELD_OUT.values()),
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def summary_lines(manifest: dict) -> list[str]:
    s, p = manifest["source"], manifest["pairs"]
    return [f"source: {s['dataset']} from {s['package']} {s['package_version']} "
            f"({s['package_licence']}); {s['description']}",
            f"pair: {p['samples']} samples x {p['channels']} channels at {p['rate_hz']:g} Hz "
            f"({p['seconds']:g} s); split (samples) " + ", ".join(
                f"{k} {a}-{b}" for k, (a, b) in p["split"].items()),
            f"sha256 {p['sha256']}"]
