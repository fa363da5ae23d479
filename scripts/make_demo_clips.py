"""Make the clips `sigstream demo` ships for 48 kHz models, from two Debian packages.

Writes, into ``sigstream/models/enhancer/demo/`` (or ``--out``):

* ``speech.wav``: Galician words spoken by one talker (the ``gl`` voice of KDE's
  KTuberling, Debian package ``ktuberling-data``, ``usr/share/ktuberling/sounds/gl/``),
  :data:`WORDS` in that order, each with 5 ms fades, joined by :data:`PAUSE_S` of
  silence, with :data:`EDGE_S` of silence at both ends; peak :data:`PEAK`. About 7.5 s.
* ``noise.wav``: real noise, the sliding sounds of Extreme Tux Racer (Debian package
  ``extremetuxracer-data``, ``usr/share/games/etr/sounds/``): :data:`NOISES` in that
  order, stereo averaged to mono, each brought to the same RMS, joined with a
  :data:`XFADE_S` linear cross-fade and cut to :data:`NOISE_S`; peak :data:`PEAK`.

Both are 48 kHz mono 16-bit PCM WAV, resampled from the packages' 44.1 kHz with
``scipy.signal.resample_poly(x, 160, 147)`` (the default Kaiser design). The packages
are read as they are (a .deb is an ``ar`` archive holding ``data.tar.xz``), so no
Debian tools are needed; run::

    apt-get download ktuberling-data extremetuxracer-data   # any folder
    python scripts/make_demo_clips.py --debs .

The result is reproducible from the same two .deb files (the versions used are in
``sigstream/models/enhancer/demo/CREDITS.md``; this script prints the versions and
SHA-256 of the files it read). Both the Galician talker and the Extreme Tux Racer
noise are in the test split of the speech enhancer's corpus
(``sigstream/models/enhancer/corpus.py``: ``SPEECH_TEST``, ``noise_split``), so the model
never trained on them.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import tarfile

import numpy as np
import soundfile as sf
from scipy import signal

RATE = 48000
SOURCE_RATE = 44100
WORDS = ("nose", "mouth", "eye", "ear", "hair", "moustache", "hat", "umbrella")
SPEECH_DIR = "usr/share/ktuberling/sounds/gl/"
NOISES = ("mud_slide", "grass_slide")
NOISE_DIR = "usr/share/games/etr/sounds/"
PAUSE_S, EDGE_S, FADE_S = 0.2, 0.3, 0.005
XFADE_S, NOISE_S = 0.05, 8.0
PEAK = 0.5  # -6 dBFS: room for the noise in the mixture

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "sigstream", "models", "enhancer", "demo"))


def deb_members(path: str, prefix: str) -> tuple[dict[str, bytes], str]:
    """Files under ``prefix`` in the data archive of a .deb (name -> bytes) and the
    package version from its control file."""
    with open(path, "rb") as fh:
        blob = fh.read()
    if blob[:8] != b"!<arch>\n":
        raise SystemExit(f"{path} is not a .deb (ar archive)")
    parts, pos = {}, 8
    while pos < len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        parts[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    data = next(v for k, v in parts.items() if k.startswith("data.tar"))
    control = next(v for k, v in parts.items() if k.startswith("control.tar"))
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for m in tar.getmembers():
            name = m.name.lstrip("./")
            if m.isfile() and name.startswith(prefix):
                files[name[len(prefix):]] = tar.extractfile(m).read()
    with tarfile.open(fileobj=io.BytesIO(control), mode="r:*") as tar:
        text = tar.extractfile(next(m for m in tar.getmembers()
                                    if m.name.lstrip("./") == "control")).read().decode()
    version = next(ln.split(":", 1)[1].strip() for ln in text.splitlines()
                   if ln.startswith("Version:"))
    return files, version


def read_mono(data: bytes) -> np.ndarray:
    """Audio file bytes -> (T,) float64 at 48 kHz, channels averaged."""
    x, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    if rate != SOURCE_RATE:
        raise SystemExit(f"expected {SOURCE_RATE} Hz, got {rate}")
    return signal.resample_poly(x.mean(1), RATE // 300, SOURCE_RATE // 300)  # 160 / 147


def make_speech(files: dict[str, bytes]) -> np.ndarray:
    fade = int(FADE_S * RATE)
    ramp = np.linspace(0, 1, fade)
    pause, edge = np.zeros(int(PAUSE_S * RATE)), np.zeros(int(EDGE_S * RATE))
    parts = [edge]
    for i, word in enumerate(WORDS):
        w = read_mono(files[f"{word}.ogg"])
        w[:fade] *= ramp
        w[-fade:] *= ramp[::-1]
        parts += [pause] if i else []
        parts.append(w)
    parts.append(edge)
    x = np.concatenate(parts)
    # the corpus's conditioning of recorded speech: rumble below 70 Hz is not speech
    x = signal.sosfiltfilt(signal.butter(4, 70.0, "highpass", fs=RATE, output="sos"), x)
    return x * (PEAK / np.abs(x).max())


def make_noise(files: dict[str, bytes]) -> np.ndarray:
    xf = int(XFADE_S * RATE)
    ramp = np.linspace(0, 1, xf)
    out = np.zeros(0)
    for name in NOISES:
        n = read_mono(files[f"{name}.wav"])
        n = n / np.sqrt(np.mean(n**2))
        if out.size:
            n[:xf] = n[:xf] * ramp + out[-xf:] * ramp[::-1]
            out = out[:-xf]
        out = np.concatenate([out, n])
    total = int(NOISE_S * RATE)
    if out.size < total:
        raise SystemExit(f"the noise sources give {out.size / RATE:.2f} s, need {NOISE_S} s")
    out = out[:total]
    return out * (PEAK / np.abs(out).max())


def find_deb(folder: str, package: str) -> str:
    found = sorted(glob.glob(os.path.join(folder, f"{package}_*.deb")))
    if not found:
        raise SystemExit(f"no {package}_*.deb in {folder} (apt-get download {package})")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--debs", default="/tmp/deb", help="folder holding the two .deb files")
    p.add_argument("--out", default=OUT, help="where to write speech.wav and noise.wav")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for package, prefix, make, name in (
            ("ktuberling-data", SPEECH_DIR, make_speech, "speech.wav"),
            ("extremetuxracer-data", NOISE_DIR, make_noise, "noise.wav")):
        deb = find_deb(args.debs, package)
        files, version = deb_members(deb, prefix)
        x = make(files)
        path = os.path.join(args.out, name)
        sf.write(path, x.astype(np.float32), RATE, subtype="PCM_16")
        with open(deb, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        print(f"{path}: {x.size / RATE:.2f} s from {package} {version} "
              f"({os.path.basename(deb)}, sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
