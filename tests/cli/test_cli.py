"""The sigstream command: success paths and every bad-input case.

In this process (``_support.cli.sigstream``, which captures what the command writes as a
subprocess would and checks it leaves no state behind); in a subprocess only where the
process boundary is what is tested: the console script (``--version``) and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _support.cli import CMD, sigstream_process
from _support.cli import sigstream as sig
from scipy import signal as sps


def assert_one_line_error(p: subprocess.CompletedProcess, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], p.stderr  # one clear line, last
    assert fragment in errors[0], errors[0]
    # anything before it is the run's own start line, never a traceback
    assert all(ln.startswith("running ") for ln in lines[:-1]), p.stderr
    assert "Traceback" not in p.stderr


def test_version() -> None:
    """The installed console script itself, once, in its own process."""
    p = sigstream_process("--version")
    assert p.returncode == 0 and p.stdout.startswith("sigstream ")
    assert sig("--version").stdout == p.stdout


@pytest.mark.parametrize("command", [[], ["models"], ["demo"], ["run"], ["bench"]])
def test_help(command: list[str]) -> None:
    p = sig(*command, "--help")
    assert p.returncode == 0 and "usage: sigstream" in p.stdout


def test_models_lists_builtins() -> None:
    p = sig("models")
    assert p.returncode == 0
    for name in ("butterworth", "savgol", "identity"):
        assert name in p.stdout
    assert "hop" in p.stdout and "latency" in p.stdout


def test_demo_enhancer_writes_npz_and_png(tmp_path: Path) -> None:
    """The first release's causal enhancer at 16 kHz, zero lookahead."""
    out = tmp_path / "x.npz"
    p = sig("demo", "--model", "audio-enhancer", "--seconds", "2", "--no-realtime",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    d = np.load(out)
    assert d["input"].shape == d["output"].shape == d["clean"].shape == (32000, 1)
    assert float(d["sample_rate"]) == 16000.0
    assert "SNR in" in p.stderr and "lookahead 0.0 ms" in p.stderr
    # it really cleans, with no delay compensation: a smaller error than the input's
    err_out = np.mean((d["output"] - d["clean"]) ** 2)
    assert err_out < 0.7 * np.mean((d["input"] - d["clean"]) ** 2)
    png = tmp_path / "x.png"
    p = sig("demo", "--model", "audio-enhancer", "--seconds", "1", "--no-realtime",
            "--out", str(png))
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_writes_npz(tmp_path: Path) -> None:
    out = tmp_path / "x.npz"
    p = sig("demo", "--model", "butterworth", "--seconds", "3", "--no-realtime", "--out",
            str(out))
    assert p.returncode == 0, p.stderr
    d = np.load(out)
    assert d["input"].shape == d["output"].shape == d["clean"].shape == (3000, 1)
    assert float(d["sample_rate"]) == 1000.0
    assert "SNR in" in p.stderr
    # the filter really cleans: output is closer to the clean signal than the input is
    lag = 11
    err_out = np.mean((d["output"][lag:] - d["clean"][:-lag]) ** 2)
    assert err_out < 0.5 * np.mean((d["input"] - d["clean"]) ** 2)


def test_demo_quiet_prints_only_the_result(tmp_path: Path) -> None:
    """--quiet: no start line, status or timing lines; the SNR line and the written file
    remain, and the file is the same as without it."""
    loud = sig("demo", "--model", "butterworth", "--seconds", "1", "--no-realtime", "--out",
               str(tmp_path / "a.npz"))
    quiet = sig("demo", "--model", "butterworth", "--seconds", "1", "--no-realtime", "--out",
                str(tmp_path / "b.npz"), "--quiet")
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert any(ln.startswith("demo: ") for ln in loud.stderr.splitlines())
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("SNR in ") and lines[1].startswith("wrote ")
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(a["output"], b["output"])


@pytest.mark.parametrize("block", [1, 37, 1024])
def test_run_butterworth_equals_sosfilt(tmp_path: Path, block: int) -> None:
    x = np.random.default_rng(0).standard_normal((4000, 1)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    stats = tmp_path / "stats.json"
    p = sig("run", "--model", "butterworth", "--source", f"npy:{tmp_path / 'in.npy'}",
            "--sink", f"npy:{tmp_path / 'out.npy'}", "--block", str(block),
            "--stats-json", str(stats))
    assert p.returncode == 0, p.stderr
    y = np.load(tmp_path / "out.npy")
    sos = sps.butter(4, 40.0, fs=1000.0, output="sos")
    np.testing.assert_allclose(y, sps.sosfilt(sos, x.astype(np.float64), axis=0), atol=1e-5)
    s = json.loads(stats.read_text())
    assert s["samples_in"] == s["samples_out"] == 4000
    assert s["chunks"] == -(-4000 // block)


def test_run_wav_to_wav_multichannel(tmp_path: Path) -> None:
    x = (np.random.default_rng(1).standard_normal((2000, 2)) * 0.2).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="PCM_16")
    p = sig("run", "--model", "butterworth:high=4000,sample_rate=16000,channels=2",
            "--source", f"wav:{tmp_path / 'in.wav'}", "--sink",
            f"wav:{tmp_path / 'out.wav'},subtype=FLOAT", "--block", "128")
    assert p.returncode == 0, p.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 16000 and y.shape == (2000, 2)


def test_run_synth_seconds(tmp_path: Path) -> None:
    p = sig("run", "--model", "savgol", "--source", "synth:sines,seconds=2", "--sink",
            f"npy:{tmp_path / 'o.npy'}", "--block", "64")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "o.npy").shape == (2000, 1)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    np.save(tmp_path / "ok.npy", np.zeros((100, 1), dtype=np.float32))
    np.save(tmp_path / "two.npy", np.zeros((100, 2), dtype=np.float32))
    bad = np.zeros((100, 1), dtype=np.float32)
    bad[50] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    sf.write(tmp_path / "rate.wav", np.zeros((100, 1), dtype=np.float32), 16000)
    late = np.zeros((50000, 1), dtype=np.float32)
    late[40000] = np.inf  # found only after many blocks were written
    sf.write(tmp_path / "late.wav", late, 1000, subtype="FLOAT")
    (tmp_path / "garbage.npy").write_bytes(b"not an npy file")
    return tmp_path


@pytest.mark.parametrize(("args", "fragment"), [
    (["--model", "nope", "--source", "npy:{d}/ok.npy"], "unknown model 'nope'"),
    (["--model", "butterworth", "--source", "npy:{d}/missing.npy"], "file not found"),
    (["--model", "butterworth", "--source", "npy:{d}/garbage.npy"], "garbage.npy"),
    (["--model", "butterworth", "--source", "foo:{d}/ok.npy"], "unknown source"),
    (["--model", "butterworth", "--source", "npy:{d}/ok.npy", "--sink", "tape:x"],
     "unknown sink"),
    (["--model", "savgol", "--source", "npy:{d}/ok.npy", "--block", "10"],
     "not a multiple of the model's hop 16"),
    (["--model", "butterworth", "--source", "wav:{d}/rate.wav"],
     "16000 Hz but the model expects 1000 Hz"),
    (["--model", "butterworth", "--source", "npy:{d}/two.npy"], "2 channel(s)"),
    (["--model", "butterworth", "--source", "npy:{d}/nan.npy"], "NaN"),
    (["--model", "butterworth", "--source", "wav:{d}/late.wav"], "inf"),
    (["--model", "butterworth:order=x", "--source", "npy:{d}/ok.npy"], "bad value 'x'"),
    (["--model", "butterworth:colour=red", "--source", "npy:{d}/ok.npy"], "unknown option"),
    (["--model", "butterworth:high=900", "--source", "npy:{d}/ok.npy"], "Nyquist"),
    (["--model", "{d}/garbage.npy", "--source", "npy:{d}/ok.npy"], "not a sigstream checkpoint"),
    (["--model", "butterworth", "--source", "npy:{d}/ok.npy", "--sink", "npy:{d}/no/o.npy"],
     "no"),
])
def test_run_bad_input(inputs: Path, args: list[str], fragment: str) -> None:
    args = [a.format(d=inputs) for a in args]
    if "--sink" not in args:
        args += ["--sink", f"npy:{inputs / 'out.npy'}"]
    p = sig("run", *args)
    assert_one_line_error(p, fragment)
    assert not (inputs / "out.npy").exists()  # no partial output left looking complete
    assert not [f for f in os.listdir(inputs) if "part" in f]


def test_argparse_errors_are_one_line() -> None:
    p = sig("run", "--model", "butterworth", "--source", "npy:x", "--sink", "null",
            "--block", "0")
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--block" in p.stderr


def test_demo_bad_out(tmp_path: Path) -> None:
    assert_one_line_error(sig("demo", "--out", str(tmp_path / "x.txt")), ".npz")
    assert_one_line_error(sig("demo", "--out", str(tmp_path / "nodir" / "x.npz")),
                          "does not exist")


def test_ctrl_c_drains_every_sample(tmp_path: Path) -> None:
    out, stats = tmp_path / "o.npy", tmp_path / "s.json"
    proc = subprocess.Popen(
        [*CMD, "run", "--model", "identity", "--source", "synth:sines,seconds=60", "--sink",
         f"npy:{out}", "--realtime", "--block", "16", "--stats-json", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = proc.stderr.readline().decode()  # printed once Ctrl-C is handled
        assert line.startswith("running identity"), line
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # every sample that entered is written, and the run says it was cut short (exit 130)
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1].startswith("stopped by Ctrl-C")
    s = json.loads(stats.read_text())
    y = np.load(out)
    assert 0 < s["samples_in"] < 60000 and s["interrupted"] is True
    assert y.shape == (s["samples_in"], 1) == (s["samples_out"], 1)


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_run_backends_match_torch(tmp_path: Path, backend: str) -> None:
    x = np.random.default_rng(5).standard_normal((3000, 1)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    outs = {}
    for b in ("torch", backend):
        p = sig("run", "--model", "savgol", "--backend", b, "--source",
                f"npy:{tmp_path / 'in.npy'}", "--sink", f"npy:{tmp_path / b}.npy",
                "--block", "48", "--quiet")
        assert p.returncode == 0, p.stderr
        outs[b] = np.load(tmp_path / f"{b}.npy")
    assert outs[backend].shape == (3000, 1)
    np.testing.assert_allclose(outs[backend], outs["torch"], atol=1e-5)


def test_run_an_exported_file(tmp_path: Path) -> None:
    p = sig("export", "butterworth:kind=highpass,low=10", "--out", str(tmp_path / "hp.onnx"))
    assert p.returncode == 0, p.stderr
    x = np.random.default_rng(6).standard_normal((1000, 1)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    p = sig("run", "--model", str(tmp_path / "hp.onnx"), "--source", f"npy:{tmp_path / 'in.npy'}",
            "--sink", f"npy:{tmp_path / 'out.npy'}", "--quiet")
    assert p.returncode == 0, p.stderr
    sos = sps.butter(4, 10.0, btype="highpass", fs=1000.0, output="sos")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"),
                               sps.sosfilt(sos, x.astype(np.float64), axis=0), atol=1e-5)


@pytest.mark.parametrize("args,says", [
    (["--source", "synth:sines,seconds=nan"], "seconds=nan is not a finite number"),
    (["--source", "synth:sines,seconds=inf"], "seconds=inf is not a finite number"),
    (["--source", "synth:sines,channels=inf"], "channels=inf is not a finite number"),
    (["--source", "synth:sines,seconds=1", "--block", "1000000000"], "1 .. 16,777,216"),
    (["--source", "synth:sines,seconds=1", "--block", "100000000000000000000"],
     "1 .. 16,777,216"),
])
def test_run_refuses_non_finite_specs_and_huge_blocks_in_one_line(args, says) -> None:
    r = sig("run", "--model", "butterworth", "--sink", "null", *args)
    # one error line (argparse's own errors print the usage above it, as for every option)
    assert r.returncode == 2 and says in r.stderr.strip().splitlines()[-1], r.stderr
    assert "Traceback" not in r.stderr


def test_an_exported_file_runs_on_its_own_runtime_and_says_so(tmp_path: Path) -> None:
    onnx = tmp_path / "bw.onnx"
    assert sig("export", "butterworth", "--format", "onnx", "--out", str(onnx)).returncode == 0
    r = sig("run", "--model", str(onnx), "--source", "synth:sines,seconds=1", "--sink", "null")
    assert r.returncode == 0 and f"running {onnx} (onnx)" in r.stderr, r.stderr
    r = sig("run", "--model", str(onnx), "--backend", "torchscript", "--source",
            "synth:sines,seconds=1", "--sink", "null")
    assert r.returncode == 2 and "runs on onnx; drop --backend torchscript" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_seconds_without_any_sample_rate_is_one_error_line(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros(300, np.float32))
    r = sig("run", "--model", "forecaster:preset=fast", "--source", f"npy:{tmp_path / 'x.npy'}",
            "--sink", "null", "--seconds", "1")
    assert r.returncode == 2 and "--seconds needs a sample rate" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_models_json_lists_every_model() -> None:
    from sigstream.models.registry import MODELS

    r = sig("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [m["name"] for m in rows] == list(MODELS)
    fc = next(m for m in rows if m["name"] == "forecaster")
    assert fc["out_channels"] == 10 and fc["needs_weights"] and fc["weights"]


@pytest.mark.parametrize("command", ["run", "batch", "serve", "route", "export", "bench", "demo",
                                     "http", "models", "devices"])
def test_every_help_has_an_example_that_parses(command: str) -> None:
    """`sigstream CMD --help` ends with `example: sigstream CMD ...`, and that command line
    parses with the real parser (it is not run)."""
    import argparse
    import re
    import shlex

    from sigstream.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helptext = sub.choices[command].format_help()
    m = re.search(r"example: (sigstream .*)", " ".join(helptext.split()))
    assert m, helptext
    example = m.group(1).split(" | ")[0]  # a pipe into another tool is not ours
    args = parser.parse_args(shlex.split(example)[1:])
    assert args.func.__module__ == f"sigstream.cli.commands.{command}"  # that command's


def test_export_takes_the_model_as_run_and_serve_do(tmp_path) -> None:  # noqa: ANN001
    """`export --model NAME` as in run/serve, or positional; two different models or none
    are one error line each."""
    out = tmp_path / "b.onnx"
    p = sig("export", "--model", "butterworth", "--out", str(out), "--quiet")
    assert p.returncode == 0 and out.is_file(), p.stderr
    for args, fragment in ((["butterworth", "--model", "savgol"], "two models given"),
                           ([], "export needs a model")):
        p = sig("export", *args, "--out", str(tmp_path / "x.onnx"))
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and fragment in lines[0], p.stderr
    p = sig("export", "butterworth", "--model", "butterworth", "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr  # the same model twice is fine


def test_bare_file_names_take_their_kind_from_the_extension(tmp_path) -> None:  # noqa: ANN001
    from sigstream.cli.specs import with_kind

    assert with_kind("in.wav") == "wav:in.wav"
    assert with_kind("x.NPZ,rate=4") == "npy:x.NPZ,rate=4"
    assert with_kind("npy:x.npy") == "npy:x.npy" and with_kind("synth:ctg") == "synth:ctg"
    assert with_kind("notes.txt") == "notes.txt"  # not a known kind: left for the error
    assert with_kind("foo:x.npy") == "foo:x.npy"  # an unknown kind stays one (its error)
    assert with_kind("./a:b.wav") == "wav:./a:b.wav"  # a path with a colon
    x = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = sig("run", "--model", "identity:sample_rate=100", "--source",
            f"{tmp_path / 'x.npy'},rate=100", "--sink", str(tmp_path / "y.wav"), "--quiet")
    assert p.returncode == 0, p.stderr
    p = sig("run", "--model", "identity:sample_rate=100", "--source", str(tmp_path / "y.wav"),
            "--sink", str(tmp_path / "z.npy"), "--quiet")
    assert p.returncode == 0, p.stderr
    np.testing.assert_allclose(np.load(tmp_path / "z.npy")[:, 0], x, atol=1e-7)


def test_run_resample_runs_a_model_at_its_own_rate(tmp_path: Path) -> None:
    """--resample: a 48 kHz file through a filter that runs at 8 kHz. The output is at
    48 kHz, as long as the input; a 200 Hz tone passes at full level, a 10 kHz one (above
    the model's Nyquist frequency) is gone. Without --resample it is one error line naming
    the option; with a model that takes any rate, too."""
    rate = 48000
    t = np.arange(rate) / rate
    low, high = 0.5 * np.sin(2 * np.pi * 200 * t), 0.3 * np.sin(2 * np.pi * 10000 * t)
    sf.write(tmp_path / "in.wav", (low + high).astype(np.float32), rate, subtype="FLOAT")
    model = "butterworth:sample_rate=8000,high=3000"
    r = sig("run", "--source", str(tmp_path / "in.wav"), "--sink", str(tmp_path / "out.wav"),
            "--model", model, "--resample", "--quiet")
    assert r.returncode == 0, r.stderr
    y, got_rate = sf.read(tmp_path / "out.wav")
    assert got_rate == rate and y.shape == (rate,)
    steady = y[rate // 4:]

    def level(f: float) -> float:
        n = steady.size
        basis = np.exp(-2j * np.pi * f * np.arange(n) / rate)
        return 2 * abs(steady @ basis) / n

    assert level(200) == pytest.approx(0.5, rel=0.02)
    assert level(10000) < 0.3 * 1e-3
    r = sig("run", "--source", str(tmp_path / "in.wav"), "--sink", str(tmp_path / "o2.wav"),
            "--model", model)
    assert r.returncode == 2 and "--resample" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = sig("run", "--source", str(tmp_path / "in.wav"), "--sink", str(tmp_path / "o3.wav"),
            "--model", "forecaster", "--resample")
    assert r.returncode == 2 and "takes any sample rate" in r.stderr


def test_run_pick_and_mix_feed_a_mono_model_from_a_stereo_file(tmp_path: Path) -> None:
    """--pick N takes channel N (1-based) of a stereo WAV, --mix their mean, each through a
    mono model exactly as that channel alone would go; both together, a channel the file
    lacks, a count the model does not take, or channel 0 are one error line each; without
    either, the error names both options. With --resample the choice is made first."""
    rate = 1000
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2 * rate, 2))).astype(np.float32)
    sf.write(tmp_path / "st.wav", x, rate, subtype="FLOAT")
    for i, col in enumerate((x[:, 0], x[:, 1])):
        sf.write(tmp_path / f"c{i}.wav", col, rate, subtype="FLOAT")
    sf.write(tmp_path / "mix.wav", x.mean(axis=1, dtype=np.float32), rate, subtype="FLOAT")

    def run(src: str, out: str, *extra: str, model: str = "butterworth") -> np.ndarray:
        p = sig("run", "--model", model, "--source", str(tmp_path / src), "--sink",
                str(tmp_path / out), "--quiet", *extra)
        assert p.returncode == 0, p.stderr
        return sf.read(tmp_path / out, dtype="float32")[0]

    np.testing.assert_array_equal(run("st.wav", "p2.wav", "--pick", "2"), run("c1.wav", "r1.wav"))
    np.testing.assert_array_equal(run("st.wav", "p1.wav", "--pick", "1"), run("c0.wav", "r0.wav"))
    np.testing.assert_array_equal(run("st.wav", "m.wav", "--mix"), run("mix.wav", "rm.wav"))
    resampled = "butterworth:sample_rate=500,high=100"  # 1 kHz -> 500 Hz -> 1 kHz around it
    np.testing.assert_array_equal(
        run("st.wav", "pr.wav", "--pick", "2", "--resample", model=resampled),
        run("c1.wav", "rr.wav", "--resample", model=resampled))
    base = ("run", "--model", "butterworth", "--source", str(tmp_path / "st.wav"), "--sink",
            str(tmp_path / "bad.wav"), "--quiet")
    assert_one_line_error(sig(*base), "--mix averages the channels into one, --pick 1 takes")
    assert_one_line_error(sig(*base, "--pick", "3"), "the input has 2 channel(s), so there is "
                                                     "no channel 3")
    assert_one_line_error(sig(*base, "--pick", "1,2"), "--pick gives 2 channel(s) but the "
                                                       "model expects 1")
    assert_one_line_error(sig(*base, "--pick", "1", "--mix"), "--pick and --mix both")
    p = sig(*base, "--pick", "0")
    assert p.returncode == 2 and "channels count from 1" in p.stderr
    assert not (tmp_path / "bad.wav").exists()
