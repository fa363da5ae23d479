"""sigstream train / eval: the one driver every family plugs into, and the extractor's train,
eval and run, in-process (a subprocess only where the process boundary is the point:
Ctrl-C, a fresh interpreter)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _support.cli import CMD, sigstream

from sigstream.cli.commands.train import configs
from sigstream.cli.main import build_parser
from sigstream.core.errors import ConfigError
from sigstream.models.training.config import resolve
from sigstream.models.training.family import discover
from sigstream.models.training.family import resolve as ref


def one_line_error(p: subprocess.CompletedProcess, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr


def config_of(*argv: str) -> dict:
    """What ``sigstream ARGV`` would train or evaluate, without running it."""
    return configs(build_parser().parse_args(list(argv)))


FAMILIES = [(command, t) for command, group in discover().items() for t in group]


# -- the extractor through the command line ----------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train")
    p = sigstream("train", "extractor", "--preset", "realistic", "--epochs", "2", "--hidden",
                  "8", "--tbptt", "2500", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "best validation MSE" in p.stderr
    assert "epoch 0: train_loss" in p.stderr  # plain progress lines when not a terminal
    return out


def test_train_writes_checkpoint_and_history(trained: Path) -> None:
    hist = json.loads((trained / "history.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["config"]["data"]["mixture"]["preset"] == "realistic"
    payload = torch.load(trained / "extractor.pt", weights_only=True)
    assert payload["model"] == "extractor" and payload["meta"]["hop"] == 1
    assert len(payload["meta"]["history"]) == 2  # the whole history travels in the checkpoint


def test_eval_json_and_figures(trained: Path, tmp_path: Path) -> None:
    p = sigstream("eval", "extractor", "--checkpoint", str(trained / "extractor.pt"),
                  "--json", str(tmp_path / "r.json"), "--figures", str(tmp_path / "figs"))
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["preset"] == "realistic" and len(r["model"]["per_freq"]) == 4
    assert "band-pass" in p.stdout
    pngs = sorted(f.name for f in (tmp_path / "figs").iterdir())
    assert pngs == ["extractor_all_frequencies.png", "extractor_errors.png", "extractor_fft.png",
                    "extractor_one_frequency.png", "extractor_training_curves.png"]
    assert all((tmp_path / "figs" / f).stat().st_size > 5000 for f in pngs)
    assert sorted(os.path.basename(f) for f in r["figures"]) == pngs


def test_eval_quiet_writes_only_the_results(trained: Path, tmp_path: Path) -> None:
    """eval --quiet: the table on stdout and the files, nothing on stderr; the results are
    those of a run without it."""
    args = ("eval", "extractor", "--checkpoint", str(trained / "extractor.pt"), "--figures",
            str(tmp_path / "figs"))
    loud = sigstream(*args, "--json", str(tmp_path / "a.json"))
    quiet = sigstream(*args, "--json", str(tmp_path / "b.json"), "--quiet")
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert "wrote 5 figures" in loud.stderr and quiet.stderr == ""
    lines = loud.stderr.splitlines()  # how long it took
    assert re.fullmatch(r"eval extractor: done in \d+\.\d s", lines[-2]), lines
    assert quiet.stdout == loud.stdout and "band-pass" in quiet.stdout
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a == b


def test_run_with_checkpoint_streams(trained: Path, tmp_path: Path) -> None:
    p = sigstream("run", "--model", str(trained / "extractor.pt"), "--source",
                  "synth:mixture,seconds=2", "--sink", f"npy:{tmp_path / 'y.npy'}", "--block",
                  "37")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "y.npy").shape == (2000, 4)


@pytest.mark.parametrize(("args", "fragment"), [
    (["train", "extractor", "--preset", "fancy"], "unknown preset 'fancy'"),
    (["train", "extractor", "--variant", "bidirectional"], "unknown variant"),
    (["train", "extractor", "--epochs", "0"], "--epochs must be >= 1"),
    (["eval", "extractor", "--preset", "fancy"], "fancy"),
    (["eval", "extractor", "--checkpoint", "/nonexistent/x.pt"], "file not found"),
    (["eval", "extractor", "--checkpoint", "a.pt", "--checkpoint", "b.pt"], "one --checkpoint"),
])
def test_bad_input(args: list[str], fragment: str, tmp_path: Path) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "o")]
    one_line_error(sigstream(*args), fragment)
    assert not (tmp_path / "o").exists()  # nothing created before the error


def test_checkpoint_from_another_model(tmp_path: Path) -> None:
    from sigstream.models.baselines.butterworth import Butterworth
    from sigstream.models.checkpoint import save_checkpoint

    bw = Butterworth()
    save_checkpoint(str(tmp_path / "bw.pt"), "butterworth", bw.config, bw)
    one_line_error(sigstream("eval", "extractor", "--checkpoint", str(tmp_path / "bw.pt")),
                   "not an extractor checkpoint")


def test_checkpoint_with_incompatible_shape(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained / "extractor.pt", weights_only=True)
    payload["config"]["hidden"] = 32  # the weights are hidden 8
    torch.save(payload, tmp_path / "bad.pt")
    one_line_error(sigstream("eval", "extractor", "--checkpoint", str(tmp_path / "bad.pt")),
                   "does not fit model 'extractor'")


def test_source_rate_must_match(trained: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((100, 1), np.float32), sample_rate=8000.0)
    one_line_error(sigstream("run", "--model", str(trained / "extractor.pt"), "--source",
                             f"npy:{tmp_path / 'x.npz'}", "--sink", "null"),
                   "8000 Hz but the model expects 1000 Hz")


# -- the driver: options generated from the configurations ------------------------------------
def test_every_model_is_listed_with_an_example() -> None:
    for kind in ("train", "eval"):
        p = sigstream(kind, "--help")
        assert p.returncode == 0
        text = " ".join(p.stdout.split())
        for command, t in FAMILIES:
            assert f" {command} " in text
            assert (t.example if kind == "train" else t.eval_example) in text


@pytest.mark.parametrize("kind", ["train", "eval"])
@pytest.mark.parametrize("command", list(discover()))
def test_model_help_shows_each_default_once_and_an_example(kind: str, command: str) -> None:
    p = sigstream(kind, command, "--help")
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    for t in discover()[command]:
        assert (t.example if kind == "train" else t.eval_example) in text
    entries = re.split(r"\n  (?=-)", p.stdout)  # one entry per option
    for entry in entries:
        assert " ".join(entry.split()).count("(default:") <= 1, entry
        assert not re.search(r"\(\d[\d.e-]*\)\s*\(default", " ".join(entry.split())), entry
    group = discover()[command]
    for t in group:  # every option of the configuration is on the command line, with help
        config = ref(t.config if kind == "train" else t.eval_config)()
        from sigstream.models.training.config import leaves, option_name

        for leaf in leaves(config):
            assert option_name(leaf.name, leaf.meta) in p.stdout, leaf.path
            assert leaf.meta.get("help"), leaf.path


@pytest.mark.parametrize(("command", "t"), FAMILIES, ids=[t.key for _, t in FAMILIES])
def test_defaults_are_the_configuration_defaults(command: str, t, tmp_path: Path) -> None:
    arch = ["--arch", t.arch] if t.arch else []
    got = config_of("train", command, *arch, "--out", str(tmp_path))
    assert got == {t.key: resolve(ref(t.config)())}
    got = config_of("eval", command, *arch)
    assert got == {t.key: ref(t.eval_config)()}


# Every option spelling `sigstream train|eval` had before its options were generated, with a
# value and where it must land (path in the family's configuration, expected value).
OLD_SPELLINGS = [
    ("train extractor", "--preset realistic", "data.mixture.preset", "realistic"),
    ("train extractor", "--variant stateful", "model.variant", "stateful"),
    ("train extractor", "--epochs 7", "fit.epochs", 7),
    ("train extractor", "--seed 3", "fit.seed", 3),
    ("train extractor", "--hidden 9", "model.hidden", 9),
    ("train extractor", "--layers 2", "model.layers", 2),
    ("train extractor", "--dropout 0.25", "model.dropout", 0.25),
    ("train extractor", "--frontend bandpass", "model.frontend", "bandpass"),
    ("train extractor", "--lr 0.01", "fit.lr", 0.01),
    ("train extractor", "--tbptt 250", "tbptt", 250),
    ("train extractor", "--batch 4", "data.batch", 4),
    ("train extractor", "--snr 5", "data.mixture.snr_db", 5.0),
    ("train extractor", "--init x.pt", "init", "x.pt"),
    ("train extractor", "--patience 3", "fit.patience", 3),
    ("train extractor", "--quiet", "fit.progress", False),
    ("train forecaster", "--variant ar_lstm", "model.variant", "ar_lstm"),
    ("train forecaster", "--lookback 90", "model.lookback", 90),
    ("train forecaster", "--horizon 5", "model.horizon", 5),
    ("train forecaster", "--hidden 9", "model.hidden", 9),
    ("train forecaster", "--embed 17", "model.embed", 17),
    ("train forecaster", "--no-analytic", "model.analytic", False),
    ("train forecaster", "--burg-orders 4,8", "model.burg_orders", (4, 8)),
    ("train forecaster", "--ls-orders 60,70", "model.ls_orders", (60, 70)),
    ("train forecaster", "--ls-orders none", "model.ls_orders", ()),
    ("train forecaster", "--clean-weight 30", "clean_weight", 30.0),
    ("train forecaster", "--variant seq2seq_gru --teacher-forcing 0.5",
     "model.teacher_forcing", 0.5),
    ("train forecaster", "--stages 2,4", "curriculum.stages", (2, 4)),
    ("train forecaster", "--steps-per-stage 5", "curriculum.steps_per_stage", 5),
    ("train forecaster", "--final-steps 10", "curriculum.final_steps", 10),
    ("train forecaster", "--batch 16", "data.batch", 16),
    ("train forecaster", "--lr 0.01", "fit.lr", 0.01),
    ("train forecaster", "--val-every 5", "curriculum.val_every", 5),
    ("train forecaster", "--patience 3", "fit.patience", 3),
    ("train forecaster", "--minutes 2.5", "fit.max_minutes", 2.5),
    ("train forecaster", "--seed 3", "fit.seed", 3),
    ("train forecaster", "--quiet", "fit.progress", False),
    ("train teb", "--preset seed", "model.preset", "seed"),
    ("train teb", "--epochs 7", "fit.epochs", 7),
    ("train teb", "--seed 3", "fit.seed", 3),
    ("train teb", "--train-records 4", "data.train_records", 4),
    ("train teb", "--val-records 2", "data.val_records", 2),
    ("train teb", "--minutes 5", "data.ctg.minutes", 5.0),
    ("train teb", "--batch 2", "data.batch", 2),
    ("train teb", "--decode-steps 4", "decode_steps", 4),
    ("train teb", "--lr 0.01", "fit.lr", 0.01),
    ("train teb", "--kld-beta 0.5", "model.kld_beta", 0.5),
    ("train teb", "--patience 3", "fit.patience", 3),
    ("train teb", "--max-minutes 1.5", "fit.max_minutes", 1.5),
    ("train teb", "--plot-every 2", "plot_every", 2),
    ("train teb", "--quiet", "fit.progress", False),
    ("train enhancer", "--arch causal", "model.taps", 128),
    ("train enhancer", "--arch augmentor --seed 3", "fit.seed", 3),
    ("train enhancer", "--arch augmentor --epochs 7", "fit.epochs", 7),
    ("train enhancer", "--arch augmentor --lr 0.01", "fit.lr", 0.01),
    ("train enhancer", "--arch augmentor --batch 16", "data.batch", 16),
    ("train enhancer", "--arch augmentor --hidden 9", "model.hidden", 9),
    ("train enhancer", "--arch augmentor --dropout 0.2", "model.dropout", 0.2),
    ("train enhancer", "--arch augmentor --patience 3", "fit.patience", 3),
    ("train enhancer", "--arch augmentor --init x.pt", "init", "x.pt"),
    ("train enhancer", "--arch augmentor --quiet", "fit.progress", False),
    ("train enhancer", "--arch augmentor --init x.pt --freeze encoder", "freeze", "encoder"),
    ("train enhancer", "--arch augmentor --finetune-lr-factor 0.2", "finetune_lr_factor", 0.2),
    ("train enhancer", "--arch augmentor --window 64", "data.sensor.window", 64),
    ("train enhancer", "--arch augmentor --hop 16", "model.hop", 16),
    ("train enhancer", "--arch augmentor --resblocks 0", "model.resblocks", 0),
    ("train enhancer", "--arch augmentor --bank 0", "model.bank", 0),
    ("train enhancer", "--arch augmentor --windows 300", "data.windows", 300),
    ("train enhancer", "--arch augmentor --data-seed 5", "data.data_seed", 5),
    ("train enhancer", "--arch augmentor --data lq_noise=0.3,lowpass_k=0.2",
     "data.sensor.lq_noise", 0.3),
    ("train enhancer", "--arch augmentor --max-minutes 1.5", "fit.max_minutes", 1.5),
    ("train enhancer", "--arch causal --rate 8000", "data.audio.sample_rate", 8000.0),
    ("train enhancer", "--arch causal --rate 8000", "model.sample_rate", 8000.0),
    ("train enhancer", "--arch causal --seconds 0.5", "data.audio.seconds", 0.5),
    ("train enhancer", "--arch causal --clips 16", "data.clips", 16),
    ("train enhancer", "--arch causal --snr-low 0", "data.audio.snr_range", (0.0, 20.0)),
    ("train enhancer", "--arch causal --snr-high 10", "data.audio.snr_range", (-5.0, 10.0)),
    ("train enhancer", "--arch causal --no-speech", "data.audio.speech", False),
    ("train enhancer", "--arch causal --ema 0.99", "fit.ema", 0.99),
    ("train enhancer", "--arch causal --taps 256", "model.taps", 256),
    ("eval extractor", "--preset seed", "preset", "seed"),
    ("eval extractor", "--snr 5", "snr_db", 5.0),
    ("eval forecaster", "--windows 16", "windows", 16),
    ("eval teb", "--records 2", "records", 2),
    ("eval teb", "--minutes 5", "minutes", 5.0),
    ("eval enhancer", "--arch augmentor --uncertainty 3", "uncertainty", 3),
    ("eval enhancer", "--arch causal --seed 4", "seed", 4),
    ("eval enhancer", "--arch augmentor --stream-seconds 20", "stream_seconds", 20.0),
]


@pytest.mark.parametrize(("command", "options", "path", "value"), OLD_SPELLINGS,
                         ids=[f"{c} {o}" for c, o, _, _ in OLD_SPELLINGS])
def test_old_option_spellings_keep_working(command: str, options: str, path: str,
                                           value: object) -> None:
    argv = [*command.split(), *options.split()] + (["--out", "o"] if "train" in command else [])
    got = config_of(*argv)
    for config in got.values():
        for name in path.split("."):
            config = getattr(config, name)
        assert config == value


def test_common_spellings_parse() -> None:
    """--out, --threads, --resume, --json, --figures, --checkpoint (repeatable where the
    family evaluates several) and --arch stay as they were."""
    ns = build_parser().parse_args(["train", "forecaster", "--out", "d", "--threads", "2",
                                    "--resume"])
    assert (ns.out, ns.threads, ns.resume) == ("d", 2, True)
    ns = build_parser().parse_args(["eval", "forecaster", "--checkpoint", "a.pt",
                                    "--checkpoint", "b.pt", "--json", "r.json", "--figures",
                                    "f", "--threads", "2"])
    assert (ns.checkpoint, ns.json, ns.figures, ns.threads) == (["a.pt", "b.pt"], "r.json",
                                                                "f", 2)
    assert build_parser().parse_args(["eval", "enhancer", "--arch", "all"]).arch == "all"


@pytest.mark.parametrize(("args", "fragment"), [
    (["train", "enhancer", "--arch", "augmentor", "--data", "lq_nois=0.3"],
     "unknown key 'lq_nois' in --data"),
    (["train", "enhancer", "--arch", "augmentor", "--data", "lq_noise"], "expected KEY=VALUE"),
    (["train", "enhancer", "--arch", "augmentor", "--data", "f1=3"],
     "expected 2 values separated by '/'"),
    (["train", "teb", "--resume"], None),  # no such option: teb does not resume
    (["eval", "enhancer", "--stream-seconds", "3"],
     "--stream-seconds is an option of --arch augmentor"),
    (["eval", "enhancer", "--arch", "speech", "--uncertainty", "3"],
     "--uncertainty is an option of --arch augmentor"),
    (["eval", "enhancer", "--arch", "causal", "--stream-seconds", "3"],
     "--stream-seconds is an option of --arch augmentor"),
])
def test_option_errors(args: list[str], fragment: str | None, tmp_path: Path) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "o")]
    p = sigstream(*args)
    if fragment is None:
        assert p.returncode == 2 and "unrecognized arguments: --resume" in p.stderr
    else:
        one_line_error(p, fragment)
    assert not (tmp_path / "o").exists()


def test_command_line_builds_without_torch() -> None:
    """`sigstream --help` and `sigstream train --help` import no torch (a fresh interpreter)."""
    code = ("import contextlib, io, sys\n"
            "from sigstream.cli.main import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        build_parser().parse_args(['train', '--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert 'extractor' in out.getvalue()\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_ctrl_c_keeps_the_best_checkpoint_and_writes_the_history(tmp_path: Path) -> None:
    """A real SIGINT in the middle of a long run: exit 130, the best checkpoint and a valid
    history.json, and the summary says where they are."""
    out = tmp_path / "aug"
    proc = subprocess.Popen(
        [*CMD, "train", "enhancer", "--arch", "augmentor", "--windows", "300", "--window", "32",
         "--hop", "8",
         "--hidden", "16", "--resblocks", "1", "--batch", "32", "--epochs", "100000",
         "--patience", "100000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "augmentor.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # a few more epochs
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "(interrupted)" in err and f"wrote {out / 'augmentor.pt'}" in err
    hist = json.loads((out / "history.json").read_text())
    assert hist["stopped_by"] == "interrupt" and len(hist["epochs"]) >= 1
    assert hist["best_epoch"] == min(range(len(hist["epochs"])),
                                     key=lambda i: hist["epochs"][i]["val_loss"])
    from sigstream.models.registry import load_checkpoint

    model = load_checkpoint(str(out / "augmentor.pt"))
    assert model.meta["best_epoch"] == hist["best_epoch"]
    assert len(model.meta["history"]) == len(hist["epochs"])


def test_value_types_follow_the_annotations() -> None:
    import argparse

    from sigstream.cli.args import format_default, value_type

    assert value_type(tuple[int, ...])("3,7,15") == (3, 7, 15)
    assert value_type(tuple[int, ...] | None)("none") == ()  # the empty tuple, not unset
    assert value_type(int | None)("none") is None and value_type(int | None)("4") == 4
    assert value_type(tuple[float, float], sep="/")("1/2.5") == (1.0, 2.5)
    assert value_type(bool)("off") is False
    for tp, text in ((tuple[float, float], "1,2,3"), (int, "1.5"), (float, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            value_type(tp)(text)
    assert [format_default(v) for v in (True, (), (1, 2), 0.001, None)] == [
        "on", "none", "1,2", "0.001", "None"]


def test_one_spelling_for_two_options_is_refused() -> None:
    from sigstream.cli.args import ConfigOption, merge_options

    def option(first: str, *more: str, key: str = "a", metavar: str = "N") -> ConfigOption:
        return ConfigOption(dest=first, strings=[first, *more], kind="value", type=int,
                            help="h", metavar=metavar, targets={key: "x"}, defaults={key: 1})

    with pytest.raises(TypeError, match="spelled twice"):
        merge_options({"a": [option("--alpha", "--al"), option("--beta", "--al")]})
    with pytest.raises(TypeError, match="means different things"):
        merge_options({"a": [option("--alpha")], "b": [option("--alpha", key="b",
                                                               metavar="X")]})
    # an alias only one family has stays that family's
    merged = merge_options({"a": [option("--alpha", "--al")],
                            "b": [option("--alpha", key="b")]})
    assert [o.strings for o in merged] == [["--alpha"], ["--al"]]
    assert merged[1].targets == {"a": "x"}


# -- one vocabulary: renamed options ------------------------------------------------------------
RENAMED = [
    ("train teb", "--minutes 5", "--record-minutes 5", "data.ctg.minutes", 5.0),
    ("eval teb", "--minutes 5", "--record-minutes 5", "minutes", 5.0),
    ("train forecaster", "--minutes 2.5", "--max-minutes 2.5", "fit.max_minutes", 2.5),
    ("train forecaster", "--noise 0.2", "--noise-std 0.2", "data.signals.noise", 0.2),
    ("eval forecaster", "--windows 16", "--per-condition 16", "windows", 16),
    ("train extractor", "--seconds 3", "--clip-seconds 3", "data.mixture.seconds", 3.0),
    ("train enhancer", "--seconds 1.5", "--clip-seconds 1.5", "data.seconds", 1.5),
    ("train enhancer", "--arch causal --seconds 0.5", "--arch causal --clip-seconds 0.5",
     "data.audio.seconds", 0.5),
    ("eval enhancer", "--seconds 0.75", "--clip-seconds 0.75", "seconds", 0.75),
]


def _leaf(config: object, path: str) -> object:
    for name in path.split("."):
        config = getattr(config, name)
    return config


@pytest.mark.parametrize(("command", "old", "new", "path", "value"), RENAMED,
                         ids=[f"{c} {o.split()[-2]}" for c, o, _, _, _ in RENAMED])
def test_renamed_option_new_name_sets_it_and_old_name_warns(
        command: str, old: str, new: str, path: str, value: object, capsys) -> None:
    """The new name sets the option silently; the former one sets the same option and says
    once on stderr what it is called now; help lists only the new name."""
    out = ["--out", "o"] if command.startswith("train") else []
    got_new = config_of(*command.split(), *new.split(), *out)
    assert capsys.readouterr().err == ""
    got_old = config_of(*command.split(), *old.split(), *out)
    err = capsys.readouterr().err
    old_name, new_name = old.split()[-2], new.split()[-2]
    assert f"{old_name} is now called {new_name}" in err and err.count("\n") == 1, err
    for got in (got_new, got_old):
        assert [_leaf(c, path) for c in got.values()] == [value]
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([*command.split(), "--help"])
    shown = capsys.readouterr().out
    assert new_name in shown and f"{old_name} " not in shown.replace(f"{old_name}-", "")


def test_batch_jobs_and_its_former_name(capsys) -> None:
    ns = build_parser().parse_args(["batch", "--model", "m", "--inputs", "x", "--out", "o",
                                    "-j", "3"])
    assert ns.workers == 3 and capsys.readouterr().err == ""
    ns = build_parser().parse_args(["batch", "--model", "m", "--inputs", "x", "--out", "o",
                                    "--workers", "2"])
    assert ns.workers == 2
    assert "--workers is now called --jobs" in capsys.readouterr().err


def test_an_error_about_a_renamed_option_names_the_new_name(capsys) -> None:
    """A bound violated through the former spelling is reported under the new name."""
    with pytest.raises(ConfigError, match="--record-minutes"):
        config_of("eval", "teb", "--minutes", "-1")
