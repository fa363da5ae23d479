"""``sigstream batch``: many files, each exactly as ``sigstream run`` makes it, locally and
on a private Ray inside a network namespace that holds only loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _support.cli import CMD, sigstream_process
from _support.cli import sigstream as sig
from _support.netns import run_in_loopback_namespace

MODEL = "enhancer"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Three 48 kHz WAVs and one .npy, and what `sigstream run` writes for each."""
    root = tmp_path_factory.mktemp("batch")
    src = root / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 48000
    for i in range(3):
        x = 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(src / f"f{i}.wav", x.astype(np.float32), 48000, subtype="FLOAT")
    np.save(src / "g.npy", (0.2 * rng.standard_normal((10000, 1))).astype(np.float32))
    expected = {}
    for name in ("f0.wav", "f1.wav", "f2.wav", "g.npy"):
        out = root / f"run_{name}"
        source = str(src / name) if name.endswith(".wav") else f"npy:{src / name},rate=48000"
        r = sig("run", "--model", MODEL, "--source", source, "--sink", str(out), "--quiet")
        assert r.returncode == 0, r.stderr
        expected[name] = (sf.read(out, dtype="float32")[0] if name.endswith(".wav")
                          else np.load(out))
    return src, expected


def _read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32")[0] if path.suffix == ".wav" else np.load(path)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_local_batch_equals_run_on_every_file(files, tmp_path: Path, workers: str) -> None:
    src, expected = files
    out = tmp_path / "out"
    # two workers: in a subprocess (the pool's multiprocessing resource tracker lives as
    # long as the interpreter that made it)
    run = sig if workers == "1" else sigstream_process
    r = run("batch", "--model", MODEL, "--inputs", str(src / "f*.wav"), "--out", str(out),
            "--jobs", workers, "--json", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    for name in ("f0.wav", "f1.wav", "f2.wav"):
        np.testing.assert_array_equal(_read(out / name), expected[name])
    assert sorted(os.listdir(out)) == ["f0.wav", "f1.wav", "f2.wav"]  # no temporaries left
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["engine"] == "local" and len(res["files"]) == 3
    assert all(f["ok"] and f["samples_in"] == f["samples_out"] == 24000 for f in res["files"])
    assert r.stderr.count("/3] ") == 3 and "done: 3 of 3 file(s), 72000 samples in" in r.stderr


def test_a_bad_file_is_one_line_and_the_others_go_on(files, tmp_path: Path) -> None:
    src, expected = files
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(src / "f0.wav", mixed / "a.wav")
    sf.write(mixed / "b.wav", np.zeros(4410, np.float32), 44100)  # another rate
    out = tmp_path / "out"
    r = sig("batch", "--model", MODEL, "--inputs", str(mixed / "*.wav"), "--out", str(out))
    assert r.returncode == 1
    np.testing.assert_array_equal(_read(out / "a.wav"), expected["f0.wav"])
    assert not (out / "b.wav").exists() and os.listdir(out) == ["a.wav"]
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "b.wav" in errors[0] and "--resample" in errors[0]
    assert "1 failed" in r.stderr
    # with --resample the 44.1 kHz file goes through as `run --resample` does it
    r = sig("batch", "--model", MODEL, "--inputs", str(mixed / "b.wav"), "--out", str(out),
            "--resample", "--quiet")
    assert r.returncode == 0, r.stderr
    y, rate = sf.read(out / "b.wav")
    assert rate == 44100 and y.shape == (4410,) and np.all(y == 0)


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("none", ["--inputs", "{d}/nothing*.wav"], "matches no file"),
    ("dup", ["--inputs", "{d}/a/*.wav", "--inputs", "{d}/b/*.wav"], "would both write"),
    ("exists", ["--inputs", "{d}/a/*.wav"], "exists: remove it or add --overwrite"),
    ("txt", ["--inputs", "{d}/notes.txt"], "batch reads"),
    ("none", ["--inputs", "{d}/a/*.wav", "--address", "auto"], "needs --engine ray"),
])
def test_bad_batches_are_one_error_line(tmp_path: Path, setup: str, args: list[str],
                                        message: str) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "x.wav", np.zeros(480, np.float32), 48000)
    (tmp_path / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    out.mkdir()
    if setup == "exists":
        (out / "x.wav").write_bytes(b"keep")
    r = sig("batch", "--model", MODEL, "--out", str(out), *[a.format(d=tmp_path) for a in args])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    if setup == "exists":
        assert (out / "x.wav").read_bytes() == b"keep"


def test_ray_missing_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    sf.write(tmp_path / "x.wav", np.zeros(480, np.float32), 48000)
    r = sig("batch", "--model", MODEL, "--inputs", str(tmp_path / "x.wav"), "--out",
            str(tmp_path / "o"), "--engine", "ray")
    assert r.returncode == 2 and "pip install 'sigstream[ray]'" in r.stderr
    assert not (tmp_path / "o").exists()


def test_run_and_serve_do_not_import_ray(tmp_path: Path) -> None:
    code = ("import sys\nfrom sigstream.cli.main import main\n"
            "assert main(['run', '--model', 'savgol', '--source', 'synth:sines,seconds=0.1', "
            "'--sink', 'null', '--quiet']) == 0\n"
            "import sigstream.stream.net.server, sigstream.cli.commands.serve\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_ray_batch_in_a_loopback_only_namespace_equals_run(files, tmp_path: Path) -> None:
    """A private Ray (2 actors) started inside `unshare -n` with only loopback up: every
    output equals `sigstream run`'s; nothing of Ray outlives the command."""
    src, expected = files
    out = tmp_path / "out"
    # the .npy has no rate: batch gives the model's (as run does with a bare .npy)
    r = run_in_loopback_namespace([*CMD, "batch", "--engine", "ray", "--jobs", "2",
                                   "--model", MODEL, "--inputs", f"{src}/*", "--out",
                                   str(out), "--json", str(tmp_path / "b.json")], timeout=240)
    assert r.returncode == 0, r.stderr
    for name, want in expected.items():
        np.testing.assert_array_equal(_read(out / name), want)
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["engine"] == "ray" and res["workers"] == 2 and len(res["files"]) == 4


def test_batch_pick_and_mix_equal_run(tmp_path: Path) -> None:
    """batch --pick / --mix choose the channels of every file as run does (array-equal);
    a channel a file lacks fails that file with run's line."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(2):
        sf.write(src / f"s{i}.wav", (0.1 * rng.standard_normal((1500, 2))).astype(np.float32),
                 1000, subtype="FLOAT")
    for opt in (["--pick", "2"], ["--mix"]):
        out = tmp_path / f"out{opt[-1]}"
        r = sig("batch", "--model", "butterworth", "--inputs", str(src / "*.wav"), "--out",
                str(out), "--quiet", *opt)
        assert r.returncode == 0, r.stderr
        for i in range(2):
            want = tmp_path / f"run{i}{opt[-1]}.wav"
            r = sig("run", "--model", "butterworth", "--source", str(src / f"s{i}.wav"),
                    "--sink", str(want), "--quiet", *opt)
            assert r.returncode == 0, r.stderr
            np.testing.assert_array_equal(_read(out / f"s{i}.wav"), _read(want))
    r = sig("batch", "--model", "butterworth", "--inputs", str(src / "*.wav"), "--out",
            str(tmp_path / "bad"), "--quiet", "--pick", "3")
    assert r.returncode == 1 and "so there is no channel 3" in r.stderr, r.stderr
