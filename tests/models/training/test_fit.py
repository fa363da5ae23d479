"""fit(): the one training loop, on a toy task (a linear map learned from noisy pairs).

N: examples, C: channels.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from sigstream.core.errors import ConfigError
from sigstream.models.checkpoint import read_checkpoint, save_checkpoint
from sigstream.models.training.callbacks import Curriculum, EveryEpoch
from sigstream.models.training.config import FitConfig
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit


@dataclass(frozen=True)
class ToyConfig:
    channels: int = 3


class Toy(nn.Linear):
    """A linear map with what a checkpoint records (hop, latency, ...)."""

    hop, latency, sample_rate = 1, 0, None

    def __init__(self) -> None:
        super().__init__(3, 1)
        self.in_channels, self.out_channels = 3, 1
        self.config = ToyConfig()


class ToyTask(Task):
    """x (N, 3) -> y (N, 1); ``vals`` replaces the validation value epoch by epoch (to script
    plateaus); four updates per epoch."""

    checkpoint_name = "toy.pt"

    def __init__(self, vals: list[float] | None = None, resumable: bool = False) -> None:
        torch.manual_seed(0)
        self.model = Toy()
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(
            64, 1, generator=g)
        self.vals, self.resumable = vals, resumable
        self.gen = torch.Generator().manual_seed(2)

    def train_epoch(self, loop: Loop) -> dict:
        order = torch.randperm(64, generator=self.gen)
        losses = []
        for i in range(0, 64, 16):
            idx = order[i:i + 16]
            loss = nn.functional.mse_loss(self.model(self.x[idx]), self.y[idx])
            loop.update(loss)
            losses.append(float(loss.detach()))
        return {"train_loss": sum(losses) / len(losses)}

    def validate(self, loop: Loop) -> dict:
        with torch.no_grad():
            val = float(nn.functional.mse_loss(loop.eval_model(self.x), self.y))
        if self.vals is not None:
            val = self.vals[min(loop.epoch, len(self.vals) - 1)]
        return {"val_loss": val}

    def save(self, path: str, loop: Loop) -> None:
        m = loop.eval_model
        save_checkpoint(path, "toy", m.config, m, meta={"epoch": loop.epoch})

    def load(self, path: str) -> nn.Module:
        model = Toy()
        payload = read_checkpoint(path)
        model.load_state_dict(payload["state_dict"])
        model.meta = payload["meta"]
        return model.eval()

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def quiet(**kw) -> FitConfig:
    return FitConfig(**{"progress": False, "lr": 0.05, "lr_patience": None, **kw})


def history(out) -> dict:  # noqa: ANN001
    return json.loads((out / "history.json").read_text())


def test_result_checkpoint_and_history(tmp_path) -> None:
    result = fit(ToyTask(), quiet(epochs=5), str(tmp_path), run_config=quiet(epochs=5))
    assert isinstance(result, TrainResult) and result.stopped_by == "epochs"
    assert len(result.epochs) == 5 and result.updates == 20
    vals = [e["val_loss"] for e in result.epochs]
    assert result.best_epoch == vals.index(min(vals)) and result.best_val == min(vals)
    assert vals[-1] < vals[0] and not result.stopped_early
    assert [e["epoch"] for e in result.epochs] == list(range(5))
    h = history(tmp_path)
    assert h["epochs"] == json.loads(json.dumps(result.epochs)) and h["monitor"] == "val_loss"
    assert h["best_epoch"] == result.best_epoch and h["config"]["epochs"] == 5
    saved = read_checkpoint(str(tmp_path / "toy.pt"))
    assert saved["meta"]["epoch"] == result.best_epoch  # the best, not the last, epoch
    assert len(saved["meta"]["history"]) == 5
    best = Toy()
    best.load_state_dict(saved["state_dict"])
    x = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), best(x))
    assert "best validation loss" in result.summary()


def test_ctrl_c_mid_epoch_keeps_the_best_checkpoint_and_writes_the_history(tmp_path) -> None:
    class CtrlC(Callback):
        def on_update(self, loop: Loop) -> None:
            if loop.updates == 14:  # the middle of epoch 3
                raise KeyboardInterrupt

    result = fit(ToyTask(), quiet(epochs=50), str(tmp_path), callbacks=[CtrlC()])
    assert result.stopped_by == "interrupt" and len(result.epochs) == 3
    h = history(tmp_path)
    assert h["stopped_by"] == "interrupt" and len(h["epochs"]) == 3
    assert h["best_epoch"] == result.best_epoch >= 0
    saved = read_checkpoint(str(tmp_path / "toy.pt"))
    assert saved["meta"]["epoch"] == result.best_epoch and saved["meta"]["stopped_by"] == \
        "interrupt"
    assert "(interrupted)" in result.summary()


def test_ctrl_c_before_any_epoch_still_leaves_a_checkpoint(tmp_path) -> None:
    def stop(loop: Loop) -> None:
        raise KeyboardInterrupt

    class Early(Callback):
        on_epoch_start = staticmethod(stop)  # type: ignore[assignment]

    result = fit(ToyTask(), quiet(epochs=5), str(tmp_path), callbacks=[Early()])
    assert result.stopped_by == "interrupt" and result.epochs == [] and result.best_epoch == -1
    assert os.path.isfile(tmp_path / "toy.pt") and history(tmp_path)["epochs"] == []


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path) -> None:
    vals = [1.0, 0.5, 0.6, 0.5, 0.7, 0.4]  # equal is not better
    result = fit(ToyTask(vals), quiet(epochs=10, patience=3), str(tmp_path))
    assert result.stopped_by == "patience" and result.stopped_early
    assert len(result.epochs) == 5 and result.best_epoch == 1


def test_plateaus_are_torch_reduce_lr_on_plateau(tmp_path) -> None:
    vals = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88]
    result = fit(ToyTask(vals), quiet(epochs=10, patience=20, lr_patience=1, lr_factor=0.5,
                                      min_lr=0.02), str(tmp_path))
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1,
                                                     min_lr=0.02)
    expected = []
    for v in vals:
        expected.append(opt.param_groups[0]["lr"])
        ref.step(v)
    assert [e["lr"] for e in result.epochs] == expected
    assert expected[-1] == 0.02 < expected[0]  # it did decay, down to min_lr


def test_budget_stops_after_the_epoch_that_exceeds_it(tmp_path) -> None:
    result = fit(ToyTask(), quiet(epochs=50, max_minutes=1e-9), str(tmp_path))
    assert result.stopped_by == "budget" and len(result.epochs) == 1
    assert "time budget" in result.summary()


class Stages(Curriculum):
    """Untracked for two epochs, then two tracked stages of three epochs each."""

    def __init__(self) -> None:
        self.stage = 0
        self.resets = 0

    tracking = property(lambda self: self.stage > 0)  # type: ignore[assignment]
    final = property(lambda self: self.stage == 2)  # type: ignore[assignment]

    def on_epoch_end(self, loop: Loop, row: dict) -> None:
        if loop.epoch in (1, 4):
            self.stage += 1
            if self.stage == 2:
                loop.reset_monitor()
        elif loop.epoch == 7:
            loop.stop("schedule")

    def on_monitor_reset(self, loop: Loop) -> None:
        self.resets += 1


def test_curriculum_gates_tracking_plateaus_and_restarts_the_monitor(tmp_path) -> None:
    vals = [0.1, 0.2, 5.0, 4.0, 4.5, 6.0, 6.5, 7.0]
    stages = Stages()
    result = fit(ToyTask(vals), quiet(epochs=20, patience=10, lr_patience=0),
                 str(tmp_path), callbacks=[stages])
    assert result.stopped_by == "schedule" and len(result.epochs) == 8
    # epochs 0-1 untracked (their small values never count); stage 2 starts afresh at 5
    assert result.best_epoch == 5 and result.best_val == 6.0 and stages.resets == 1
    lrs = [e["lr"] for e in result.epochs]
    assert lrs[:7] == [0.05] * 7  # no plateau decay before the final stage (epochs 1, 4)
    assert lrs[7] == 0.025  # final stage: a worse epoch halves it (patience 0)


def test_moving_average_is_what_is_validated_and_saved(tmp_path) -> None:
    decay = 0.7
    task = ToyTask()
    avg = {k: v.clone() for k, v in task.model.state_dict().items()}

    def track(loop: Loop) -> None:
        for k, v in loop.task.model.state_dict().items():
            avg[k] = avg[k] + (1 - decay) * (v - avg[k])

    class Shadow(Callback):
        on_update = staticmethod(track)  # type: ignore[assignment]

    result = fit(task, quiet(epochs=3, ema=decay), str(tmp_path), callbacks=[Shadow()])
    assert result.best_epoch == 2  # improving: the last epoch's average is saved
    saved = read_checkpoint(str(tmp_path / "toy.pt"))["state_dict"]
    for k, v in saved.items():
        torch.testing.assert_close(v, avg[k], atol=1e-6, rtol=1e-6)
        assert not torch.equal(v, task.model.state_dict()[k])


def test_resume_continues_exactly_where_it_stopped(tmp_path) -> None:
    vals = None
    cfg = quiet(epochs=6, lr_patience=0)
    whole = fit(ToyTask(vals, resumable=True), cfg, str(tmp_path / "a"), run_config=cfg)

    class CtrlC(Callback):
        def on_epoch_start(self, loop: Loop) -> None:
            if loop.epoch == 3:
                raise KeyboardInterrupt

    cut = fit(ToyTask(vals, resumable=True), cfg, str(tmp_path / "b"), run_config=cfg,
              callbacks=[CtrlC()])
    assert cut.stopped_by == "interrupt" and len(cut.epochs) == 3
    with pytest.raises(ConfigError, match="other training options"):
        fit(ToyTask(vals, resumable=True), quiet(epochs=6, lr=0.1), str(tmp_path / "b"),
            run_config=quiet(epochs=6, lr=0.1), resume=True)
    rest = fit(ToyTask(vals, resumable=True), cfg, str(tmp_path / "b"), run_config=cfg,
               resume=True)
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in whole.epochs]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in rest.epochs] == strip
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, rest.model.state_dict()[k])
    # a finished run resumes to itself without training
    again = fit(ToyTask(vals, resumable=True), cfg, str(tmp_path / "b"), run_config=cfg,
                resume=True)
    assert again.epochs == rest.epochs and again.updates == rest.updates


def test_progress_plain_lines_or_nothing(tmp_path, capsys) -> None:
    class Every2(ToyTask):
        log_every = 2

    fit(Every2(), quiet(epochs=5, progress=True), str(tmp_path / "a"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["epoch 0", "epoch 2", "epoch 4"]
    assert "train_loss" in lines[0] and "val_loss" in lines[0] and "lr 0.05" in lines[0]
    fit(ToyTask(), quiet(epochs=2), str(tmp_path / "b"))
    assert capsys.readouterr().err == ""


def test_training_plots_at_the_end(tmp_path) -> None:
    fit(ToyTask(), quiet(epochs=3, plots=True), str(tmp_path))
    png = (tmp_path / "training.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_every_epoch_callback_sees_each_row(tmp_path) -> None:
    seen = []
    fit(ToyTask(), quiet(epochs=3), str(tmp_path),
        callbacks=[EveryEpoch(lambda loop, row: seen.append((loop.epoch, row["val_loss"])))])
    assert [e for e, _ in seen] == [0, 1, 2] and all(math.isfinite(v) for _, v in seen)


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    fit(ToyTask(), quiet(epochs=3, progress=True), str(tmp_path))
    out = term.getvalue()
    assert "3/3" in out and "epoch" in out and "val_loss=" in out
    assert "epoch 0:" not in out  # no plain lines on a terminal
