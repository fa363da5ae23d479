"""``sigstream data speech``: build the real speech and noise corpus of the speech enhancer.

The recipe (sources, licences, splits) is :mod:`sigstream.models.enhancer.corpus` and
docs/data.md. Without ``--from-dir`` the Debian packages are fetched with
``apt-get download`` into ``OUT/cache`` and extracted there (nothing is installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build data sets (the speech enhancer's corpus)",
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
