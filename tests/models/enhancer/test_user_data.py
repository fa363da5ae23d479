"""Your own data for the 48 kHz speech enhancer (sigstream.models.enhancer.user_data):
``sigstream train enhancer --clean DIR --noise DIR`` and ``sigstream eval enhancer --clean
DIR --noise DIR`` on tiny synthetic WAV folders written in tmp_path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.enhancer import user_data as ud

RATE = 48000
TINY = ["--hidden", "16", "--layers", "1", "--bands", "8", "--df-bins", "16"]
SHORT = ["--epochs", "2", "--steps", "2", "--batch", "2", "--clip-seconds", "0.3",
         "--val-per-condition", "1", "--val-seconds", "0.3", "--quiet"]


def _voice(rng: np.random.Generator, seconds: float, rate: int) -> np.ndarray:
    """A speech-like clip: a gliding harmonic voice with syllable-rate envelopes."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2 + 0.01
    return 0.5 * x * env / np.abs(x).max()


def make_folders(root: Path, clean: int = 4, noise: int = 3, seconds: float = 1.0,
                 rate: int = 16000, channels: int = 2) -> tuple[Path, Path]:
    """``clean`` voice files (16 kHz stereo by default, one in a subfolder) and ``noise``
    white-noise files (44.1 kHz mono)."""
    rng = np.random.default_rng(0)
    c, n = root / "clean", root / "noise"
    (c / "sub").mkdir(parents=True)
    n.mkdir()
    for i in range(clean):
        x = _voice(rng, seconds, rate)
        x = np.stack([x * (1 - 0.2 * k) for k in range(channels)], 1) if channels > 1 else x
        sf.write(str(c / ("sub" if i == 0 else "") / f"talk{i}.wav"), x, rate)
    for i in range(noise):
        sf.write(str(n / f"noise{i}.WAV"), 0.1 * rng.standard_normal(int(seconds * 44100)),
                 44100)
    return c, n


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    return make_folders(tmp_path)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    from sigstream.models.checkpoint import save_checkpoint
    from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer

    cfg = dataclasses.replace(SpeechConfig(), hidden=16, layers=1, bands=8, df_bins=16)
    torch.manual_seed(1)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    save_checkpoint(path, "enhancer", cfg, SpeechEnhancer(cfg).eval())
    return path


def _cli(args: list[str], capsys) -> tuple[int, str]:
    from sigstream.cli.main import main

    code = main(args)
    return code, capsys.readouterr().err


# -- splits -----------------------------------------------------------------------------------
def test_split_by_file_is_deterministic_and_independent_of_listing_order() -> None:
    files = [f"dir{i % 3}/f{i}.wav" for i in range(20)]
    a = ud.split_files(files)
    b = ud.split_files(list(reversed(files)))
    assert a == b and a is not None
    assert [len(a[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(files)
    # by the hash of the name, not by the order: not simply the last files
    assert a["test"] != sorted(files)[-2:] or a["val"] != sorted(files)[-4:-2]
    # a file keeps its split when it is renamed back and forth (no hidden state)
    assert ud.split_files(files) == a


@pytest.mark.parametrize("count", [3, 4, 7])
def test_small_folders_have_a_file_in_every_split(count: int) -> None:
    s = ud.split_files([f"{i}.wav" for i in range(count)])
    assert s is not None and len(s["test"]) == 1 and len(s["val"]) == 1
    assert len(s["train"]) == count - 2


def test_fewer_than_three_files_are_split_by_time(tmp_path) -> None:
    c, n = make_folders(tmp_path, clean=2, noise=1, seconds=2.0, rate=RATE, channels=1)
    assert ud.split_files(["a.wav", "b.wav"]) is None
    corpus = ud.load_user_data(str(c), str(n), {"train": 1.0, "val": 0.2, "test": 0.2})
    assert "by time" in corpus.manifest["split"]["speech"]
    assert "by time" in corpus.manifest["split"]["noise"]
    x, _ = ud.read_wav(c / "talk1.wav")
    test = [clip for clip in corpus.speech("test") if clip.source == "talk1.wav"]
    # the last 10 % of the file, one 0.2 s excerpt of it
    assert len(test) == 1 and np.array_equal(test[0].audio, x[int(0.9 * len(x)):])
    train = [clip for clip in corpus.speech("train") if clip.source == "talk1.wav"]
    assert all(len(t.audio) == RATE for t in train)
    assert np.array_equal(train[0].audio, x[:RATE])
    assert np.array_equal(train[-1].audio, x[int(0.8 * len(x)) - RATE:int(0.8 * len(x))])
    (noise,) = corpus.noise("val")
    xn, _ = ud.read_wav(n / "noise0.WAV")
    assert np.array_equal(noise.audio, xn[int(0.8 * len(xn)):int(0.9 * len(xn))])


def test_load_keeps_splits_apart_and_records_them(folders) -> None:
    c, n = folders
    corpus = ud.load_user_data(str(c), str(n), {"train": 0.3, "val": 0.3, "test": 0.3})
    files = corpus.manifest["files"]["speech"]
    assert files == ud.split_files(["sub/talk0.wav", "talk1.wav", "talk2.wav", "talk3.wav"])
    for split in ("train", "val", "test"):
        assert {clip.source for clip in corpus.speech(split)} == set(files[split])
        assert {clip.source for clip in corpus.noise(split)} == \
            set(corpus.manifest["files"]["noise"][split])
        assert all(len(clip.audio) == int(0.3 * RATE) for clip in corpus.speech(split))
    assert corpus.manifest["resampler"] == ud.RESAMPLER
    # eval reads only what it asks for
    only = ud.load_user_data(str(c), str(n), {"test": 0.3})
    assert only.speech("train") == [] and only.speech("test")


# -- conditioning -----------------------------------------------------------------------------
def test_stereo_16k_is_downmixed_and_resampled_to_48k(tmp_path) -> None:
    t = np.arange(16000) / 16000
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(str(tmp_path / "a.wav"), np.stack([left, np.zeros_like(left)], 1), 16000,
             subtype="FLOAT")
    x, info = ud.read_wav(tmp_path / "a.wav")
    assert info == {"rate": 16000, "channels": 2, "seconds": 1.0}
    assert x.dtype == np.float32 and len(x) == RATE
    t48 = np.arange(RATE) / RATE
    want = 0.25 * np.sin(2 * np.pi * 1000 * t48)  # the mean of the channels, at 48 kHz
    mid = slice(2000, RATE - 2000)
    assert np.max(np.abs(x[mid] - want[mid])) < 2e-3


def test_44k1_mono_with_dc_is_resampled_and_dc_removed(tmp_path) -> None:
    rate = 44100
    t = np.arange(rate // 2) / rate
    sf.write(str(tmp_path / "b.wav"), 0.3 + 0.2 * np.sin(2 * np.pi * 440 * t), rate,
             subtype="FLOAT")
    x, info = ud.read_wav(tmp_path / "b.wav")
    assert info["channels"] == 1 and len(x) == RATE // 2
    assert abs(float(x.mean())) < 1e-4
    spec = np.abs(np.fft.rfft(x))
    assert np.argmax(spec) * RATE / len(x) == pytest.approx(440, abs=2)


# -- training and evaluation through the command line -----------------------------------------
def test_train_from_scratch_on_user_folders(folders, tmp_path, capsys) -> None:
    from sigstream.models.registry import load_checkpoint

    c, n = folders
    out = tmp_path / "run"
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(out), "--init", "scratch", *TINY, *SHORT], capsys)
    assert code == 0, err
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["epochs"]) == 2
    assert all(np.isfinite(e["val_si_sdr_db"]) for e in hist["epochs"])
    model: Any = load_checkpoint(str(out / "enhancer.pt"))
    assert model.config.hidden == 16
    meta = model.meta
    assert meta["init"] == "scratch"
    assert meta["user_data"]["files"]["speech"] == ud.split_files(
        ["sub/talk0.wav", "talk1.wav", "talk2.wav", "talk3.wav"])
    assert meta["user_data"]["resampler"] == ud.RESAMPLER


def test_train_warm_starts_from_init_checkpoint(folders, tmp_path, tiny_checkpoint,
                                                capsys) -> None:
    from sigstream.models.registry import load_checkpoint

    c, n = folders
    out = tmp_path / "run"
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(out), "--init", tiny_checkpoint, "--lr", "1e-9", *TINY, *SHORT],
                     capsys)
    assert code == 0, err
    start: Any = load_checkpoint(tiny_checkpoint)
    end: Any = load_checkpoint(str(out / "enhancer.pt"))
    assert end.meta["init"] == tiny_checkpoint
    for (k, a), b in zip(start.state_dict().items(), end.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=k)


def test_train_defaults_to_the_shipped_weights_with_user_folders(folders, tmp_path,
                                                                 capsys) -> None:
    from sigstream.models.registry import build_model, load_checkpoint

    c, n = folders
    out = tmp_path / "run"
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(out), "--epochs", "1", "--steps", "1", "--batch", "1", "--clip-seconds",
                      "0.2", "--val-per-condition", "1", "--val-seconds", "0.2", "--lr",
                      "1e-9", "--quiet"], capsys)
    assert code == 0, err
    shipped: Any = build_model("enhancer")
    end: Any = load_checkpoint(str(out / "enhancer.pt"))
    assert end.meta["init"] == "shipped"
    for (k, a), b in zip(shipped.state_dict().items(), end.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=k)


def test_eval_scores_the_held_out_files_with_every_method(folders, tiny_checkpoint, tmp_path,
                                                          capsys) -> None:
    from sigstream.models.enhancer import evaluate as ev
    from sigstream.models.enhancer import quality as q

    c, n = folders
    js = tmp_path / "r.json"
    code, err = _cli(["eval", "enhancer", "--clean", str(c), "--noise", str(n),
                      "--checkpoint", tiny_checkpoint, "--per-condition", "2", "--clip-seconds",
                      "0.8", "--snrs", "0,10", "--no-rtf", "--json", str(js)], capsys)
    assert code == 0, err
    res = json.loads(js.read_text())
    split = ud.split_files(["sub/talk0.wav", "talk1.wav", "talk2.wav", "talk3.wav"])
    nsplit = ud.split_files(["noise0.WAV", "noise1.WAV", "noise2.WAV"])
    assert split is not None and nsplit is not None
    d = res["data"]
    assert d["mixtures"] == 4 and d["kinds"] == ["real"] and d["snrs"] == [0.0, 10.0]
    assert d["talkers"] == split["test"] and d["noise_sources"] == nsplit["test"]
    assert d["user"]["test_files"] == {"clean": split["test"], "noise": nsplit["test"]}
    assert d["user"]["tuning_files"] == {"clean": split["val"], "noise": nsplit["val"]}
    want = {"noisy", "model", "butterworth", "wiener", "spectral_offline"}
    if q.rnnoise_available():
        want.add("rnnoise")
    assert want <= set(res["methods"])
    assert res["metrics"] == [m for m in ev.METRICS if m not in res["missing"]]
    assert res["overall"]["methods"]["noisy"]["si_sdri"] == 0.0
    # the noisy input is at the requested SNRs (clean and noise scaled together)
    per = res["per_snr"]
    assert per["0"]["methods"]["noisy"]["si_sdr"] == pytest.approx(0.0, abs=0.3)
    assert per["10"]["methods"]["noisy"]["si_sdr"] == pytest.approx(10.0, abs=0.3)


def test_eval_table_names_the_user_folders(folders, tiny_checkpoint, capsys) -> None:
    from sigstream.cli.main import main

    c, n = folders
    assert main(["eval", "enhancer", "--clean", str(c), "--noise", str(n), "--checkpoint",
                 tiny_checkpoint, "--per-condition", "1", "--clip-seconds", "0.3", "--snrs", "5",
                 "--no-rtf"]) == 0
    out = capsys.readouterr().out
    assert "2 mixtures of your held-out test files" not in out  # one SNR, one per condition
    assert "1 mixtures of your held-out test files" in out
    assert f"--clean {c} and --noise {n}" in out and "resample_poly" in out


def test_eval_scores_the_shipped_weights_beside_a_fine_tune(folders, tiny_checkpoint,
                                                             tmp_path, capsys) -> None:
    c, n = folders
    js = tmp_path / "r.json"
    code, err = _cli(["eval", "enhancer", "--clean", str(c), "--noise", str(n),
                      "--checkpoint", "shipped", "--checkpoint", tiny_checkpoint,
                      "--per-condition", "1", "--clip-seconds", "0.3", "--snrs", "5", "--no-rtf",
                      "--json", str(js)], capsys)
    assert code == 0, err
    res = json.loads(js.read_text())
    assert res["methods"]["model:shipped"]["label"] == "sigstream enhancer (shipped)"
    assert "model:tiny" in res["methods"]
    sdr = {k: res["overall"]["methods"][k]["si_sdr"] for k in ("model:shipped", "model:tiny")}
    assert sdr["model:shipped"] != sdr["model:tiny"]  # two different models were run


# -- bad input: one clear error line ----------------------------------------------------------
def _bad(tmp_path: Path, case: str) -> tuple[Path, Path]:
    c, n = make_folders(tmp_path, seconds=1.0)
    if case == "missing":
        return tmp_path / "nowhere", n
    if case == "empty":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", n
    if case == "no-wav":
        (tmp_path / "txt").mkdir()
        (tmp_path / "txt" / "notes.txt").write_text("hello")
        (tmp_path / "txt" / "song.mp3").write_bytes(b"ID3")
        return tmp_path / "txt", n
    if case == "corrupt":
        (c / "talk2.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
        return c, n
    if case == "corrupt-noise":
        (n / "noise1.WAV").write_bytes(np.random.default_rng(0).bytes(3000))
        return c, n
    if case == "silent":
        for p in c.rglob("*.wav"):
            sf.write(str(p), np.zeros((16000, 2)), 16000)
        return c, n
    if case == "short":
        return make_folders(tmp_path / "short", seconds=0.2)
    raise AssertionError(case)


BAD = {"missing": ("--clean", "no such folder"),
       "empty": ("--clean", "the folder is empty"),
       "no-wav": ("--clean", "no WAV files among its 2 files"),
       "corrupt": ("talk2.wav", "is not a readable WAV file"),
       "corrupt-noise": ("noise1.WAV", "is not a readable WAV file"),
       "silent": ("is silent", "remove it"),
       "short": ("shorter than one training mixture", "--clip-seconds 0.3")}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_folders_are_one_error_line_in_train(case: str, tmp_path, capsys) -> None:
    c, n = _bad(tmp_path, case)
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(tmp_path / "o"), "--init", "scratch", *TINY, *SHORT], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and all(part in err for part in BAD[case]), err
    assert not (tmp_path / "o" / "enhancer.pt").exists()


@pytest.mark.parametrize("case", ["missing", "corrupt", "silent", "short"])
def test_bad_folders_are_one_error_line_in_eval(case: str, tmp_path, capsys) -> None:
    c, n = _bad(tmp_path, case)
    if case == "corrupt":  # eval reads only the test and validation files
        s = ud.split_files(["sub/talk0.wav", "talk1.wav", "talk2.wav", "talk3.wav"])
        assert s is not None
        for rel in s["test"]:
            (c / rel).write_bytes(b"not a wav")
    code, err = _cli(["eval", "enhancer", "--clean", str(c), "--noise", str(n), "--clip-seconds",
                      "0.3", "--per-condition", "1", "--snrs", "5", "--no-rtf"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    want = {"missing": "no such folder", "corrupt": "is not a readable WAV file",
            "silent": "is silent", "short": "shorter than one test mixture (--clip-seconds 0.3)"}
    assert want[case] in err, err


def test_a_short_part_of_a_file_split_by_time_says_why(tmp_path, capsys) -> None:
    c, n = make_folders(tmp_path, clean=2, noise=2, seconds=2.0)
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(tmp_path / "o"), "--init", "scratch", *TINY, "--clip-seconds", "0.3",
                      "--val-seconds", "0.5", "--epochs", "1", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "validation part is 0.20 s" in err and "split by time" in err
    assert "--val-seconds" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--clean", "X"], "--clean needs --noise"),
    (["--noise", "X"], "--noise needs --clean"),
])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_one_folder_without_the_other_is_refused(command: str, args: list[str], message: str,
                                                 tmp_path, capsys) -> None:
    extra = ["--out", str(tmp_path / "o")] if command == "train" else []
    code, err = _cli([command, "enhancer", *args, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert message in err


def test_conflicting_options_are_refused(folders, tmp_path, capsys) -> None:
    c, n = folders
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--corpus",
                      str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "two data sources" in err
    code, err = _cli(["eval", "enhancer", "--clean", str(c), "--noise", str(n), "--kinds",
                      "white"], capsys)
    assert code == 2 and "--kinds does not apply" in err
    code, err = _cli(["train", "enhancer", "--clean", str(c), "--noise", str(n), "--out",
                      str(tmp_path / "o"), *TINY, *SHORT], capsys)  # shipped weights: 192
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--init: the shipped weights need --bands 32, --df-bins 96, --hidden 192, " \
        "--layers 2" in err and "--init scratch" in err


def test_the_library_raises_the_documented_errors(tmp_path) -> None:
    c, n = make_folders(tmp_path)
    with pytest.raises(ConfigError, match="--clean needs --noise"):
        ud.load_user_data(str(c), "", {"train": 0.3})
    with pytest.raises(InputError, match="not a folder"):
        ud.wav_files(c / "talk1.wav", "--clean")
    (c / "talk1.wav").write_bytes(b"fLaC\x00\x00\x00\x22" + bytes(40))
    with pytest.raises(InputError, match="talk1.wav is not a readable WAV"):
        ud.read_wav(c / "talk1.wav", "--clean")
