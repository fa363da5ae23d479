"""``sigstream export``: parity-checked, atomic, one-line errors."""

from __future__ import annotations

import argparse
import os

import pytest
import torch

from sigstream.cli.commands.export import add_parser as add_export_parser
from sigstream.cli.commands.export import check_parity
from sigstream.cli.commands.export import run as cmd_export
from sigstream.core.errors import ConfigError, InputError, SigstreamError
from sigstream.export import runtime
from sigstream.export.runtime import load_runner

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:Exporting a model to ONNX with a batch_size:UserWarning"),
]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sigstream")
    sub = parser.add_subparsers(dest="command")
    add_export_parser(sub)
    return parser.parse_args(["export", *argv])


@pytest.mark.parametrize(("spec", "fmt", "out"), [
    ("butterworth:kind=bandpass,low=3,high=30,channels=2", "onnx", "bw.onnx"),
    ("savgol:window=32,hop=8,length=9,order=2", None, "sg.pt"),  # format from the suffix
    ("identity", "torchscript", "id.bin"),
])
def test_export_writes_a_checked_file(tmp_path, capsys, spec, fmt, out) -> None:
    argv = [spec, "--out", str(tmp_path / out)] + (["--format", fmt] if fmt else [])
    assert cmd_export(_parse(*argv)) == 0
    assert sorted(os.listdir(tmp_path)) == [out]  # no temporary file left behind
    runner = load_runner(tmp_path / out)
    assert runner.kind == (fmt or "torchscript")
    assert runner.name == spec.partition(":")[0]
    printed = capsys.readouterr().out
    assert "parity over 32 chunks" in printed and "max |error|" in printed


def test_export_from_checkpoint_carries_norm_and_meta(tmp_path, capsys) -> None:
    from sigstream.models.checkpoint import save_checkpoint
    from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor

    cfg = ExtractorConfig(variant="sequence", hidden=16)
    torch.manual_seed(0)
    model = FrequencyExtractor(cfg)
    ckpt = tmp_path / "ext.pt"
    save_checkpoint(str(ckpt), "extractor", cfg, model, norm={"mean": 0.1, "std": 2.0},
                    meta={"epoch": 3})
    out = tmp_path / "ext.onnx"
    assert cmd_export(_parse(str(ckpt), "--out", str(out), "--threads", "2")) == 0
    meta = load_runner(out).meta
    assert meta["name"] == "extractor" and meta["config"]["variant"] == "sequence"
    assert meta["norm"] == {"mean": 0.1, "std": 2.0} and meta["meta"]["epoch"] == 3
    assert "parity" in capsys.readouterr().out


def test_parity_failure_writes_nothing(tmp_path, monkeypatch) -> None:
    real = runtime.load_runner

    def broken(path, *, threads=1):
        runner = real(path, threads=threads)
        step = runner.step

        def off_by_a_bit(x, state):
            y, state = step(x, state)
            return y + 0.01, state

        runner.step = off_by_a_bit
        return runner

    monkeypatch.setattr(runtime, "load_runner", broken)
    out = tmp_path / "bw.onnx"
    out.write_bytes(b"previous")  # an existing file is left alone on failure
    with pytest.raises(SigstreamError, match=r"max \|error\| 0\.01 > 0\.0001") as err:
        cmd_export(_parse("butterworth", "--out", str(out)))
    assert "\n" not in str(err.value)
    assert out.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["bw.onnx"]


def test_check_parity_counts_chunks_and_state() -> None:
    from sigstream.models.baselines.butterworth import Butterworth

    model = Butterworth()

    class Eager:  # the eager model itself, seen through numpy: parity is exact
        hop, in_channels = 1, 1

        def init_state(self, b):
            return model.init_state(b)

        def step(self, x, s):
            y, s = model.step(torch.from_numpy(x), s)
            return y.numpy(), s

    err, samples = check_parity(model, Eager())
    assert err == 0.0 and samples > 64


@pytest.mark.parametrize(("argv", "error", "match"), [
    (["nosuchmodel", "--out", "{tmp}/x.onnx"], ConfigError, "unknown model"),
    (["butterworth:order=99", "--out", "{tmp}/x.onnx"], ConfigError, "order"),
    (["butterworth", "--out", "{tmp}/no/such/dir/x.onnx"], InputError, "does not exist"),
    (["{tmp}/missing.pt", "--out", "{tmp}/x.onnx"], InputError, "not found"),
    (["butterworth", "--out", "{tmp}"], InputError, "is a folder"),
])
def test_user_errors(tmp_path, argv, error, match) -> None:
    args = _parse(*(a.format(tmp=tmp_path) for a in argv))
    with pytest.raises(error, match=match):
        cmd_export(args)
    assert not (tmp_path / "x.onnx").exists()


def test_parser_rejects_bad_threads_and_format(capsys) -> None:
    for argv in (["identity", "--out", "x", "--threads", "0"],
                 ["identity", "--out", "x", "--format", "tflite"]):
        with pytest.raises(SystemExit):
            _parse(*argv)
    assert "error" in capsys.readouterr().err


def test_extractor_without_matching_weights_is_a_config_error(tmp_path) -> None:
    # the shipped weights are the multi variant: asking for another one cannot use them
    with pytest.raises(ConfigError, match="weights"):
        cmd_export(_parse("extractor:preset=realistic,variant=sequence", "--out",
                          str(tmp_path / "x.onnx")))
    assert os.listdir(tmp_path) == []


def test_export_shows_progress_unless_quiet(tmp_path) -> None:  # noqa: ANN001
    from _support.cli import sigstream as sig

    r = sig("export", "butterworth", "--format", "onnx", "--out", str(tmp_path / "a.onnx"))
    assert r.returncode == 0 and "exporting butterworth to onnx" in r.stderr
    assert "checking parity" in r.stderr and "exported butterworth" in r.stdout
    r = sig("export", "butterworth", "--format", "onnx", "--out", str(tmp_path / "b.onnx"),
            "--quiet")
    assert r.returncode == 0 and r.stderr == "" and "exported butterworth" in r.stdout
