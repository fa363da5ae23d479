"""A newcomer adds a model family by adding one folder: the registry, ``sigstream models``,
``sigstream train`` (options generated from its config, the one fit() loop, a checkpoint)
and ``sigstream run`` pick it up with no edit anywhere else."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import sigstream.models

FAMILY = {
    "__init__.py": '''
        """toygain: y = gain * x, a family written by a newcomer."""
        from sigstream.models.training.family import Trainable

        TRAINING = Trainable(
            command="toygain", summary="a learned gain",
            config="sigstream.models.toygain.train:ToyTrainConfig",
            train="sigstream.models.toygain.train:train",
            eval_config="sigstream.models.toygain.train:ToyEvalConfig",
            evaluate="sigstream.models.toygain.train:evaluate",
            example="sigstream train toygain --target 3 --out runs/toy",
            eval_example="sigstream eval toygain --checkpoint runs/toy/toygain.pt")


        def __getattr__(name):
            if name == "ENTRIES":
                from sigstream.models.entry import ModelEntry
                from sigstream.models.toygain.model import Gain, GainConfig

                return (ModelEntry("toygain", "y = gain * x (a test family)", GainConfig,
                                   Gain),)
            raise AttributeError(name)
    ''',
    "model.py": '''
        from dataclasses import dataclass

        import torch

        from sigstream.core.contract import NoState, StreamingModule
        from sigstream.models.training.config import opt


        @dataclass(frozen=True)
        class GainConfig:
            gain: float = opt(1.0, "initial gain")


        class Gain(StreamingModule):
            in_channels = out_channels = 1
            sample_rate = 100.0

            def __init__(self, config: GainConfig = GainConfig()) -> None:
                super().__init__()
                self.config = config
                self.g = torch.nn.Parameter(torch.tensor(float(config.gain)))

            def init_state(self, batch):
                return NoState()

            def step(self, x, state):
                return x * self.g, state
    ''',
    "train.py": '''
        import os
        from dataclasses import dataclass

        import torch

        from sigstream.models.checkpoint import save_checkpoint
        from sigstream.models.registry import load_checkpoint
        from sigstream.models.toygain.model import Gain, GainConfig
        from sigstream.models.training.base import Task
        from sigstream.models.training.config import FitConfig, opt, part
        from sigstream.models.training.family import Evaluation
        from sigstream.models.training.loop import fit


        @dataclass(frozen=True)
        class ToyTrainConfig:
            model: GainConfig = part(GainConfig, "the model")
            target: float = opt(3.0, "the gain to learn")
            fit: FitConfig = part(lambda: FitConfig(epochs=80, lr=0.2), "training")


        @dataclass(frozen=True)
        class ToyEvalConfig:
            target: float = opt(3.0, "the gain the data has")


        class ToyTask(Task):
            checkpoint_name = "toygain.pt"

            def __init__(self, cfg):
                self.cfg, self.model = cfg, Gain(cfg.model)
                self.x = torch.randn(4, 50, 1, generator=torch.Generator().manual_seed(0))

            def train_epoch(self, loop):
                loss = ((self.model(self.x) - self.cfg.target * self.x) ** 2).mean()
                loop.update(loss)
                return {"train_loss": float(loss)}

            def validate(self, loop):
                with torch.no_grad():
                    y = loop.eval_model(self.x)
                return {"val_loss": float(((y - self.cfg.target * self.x) ** 2).mean())}

            def save(self, path, loop):
                save_checkpoint(path, "toygain", loop.eval_model.config, loop.eval_model)

            def load(self, path):
                return load_checkpoint(path)


        def train(cfg, out_dir):
            return fit(ToyTask(cfg), cfg.fit, out_dir, run_config=cfg)


        def evaluate(cfg, checkpoints, figures):
            gain = float(load_checkpoint(checkpoints[0]).g)
            return Evaluation({"gain": gain}, f"gain {gain:.3f} (data {cfg.target:g})")
    ''',
}


@pytest.fixture()
def toygain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The family as a folder on the models package's path (as if added to sigstream/models/),
    and a registry that has looked again."""
    folder = tmp_path / "toygain"
    folder.mkdir()
    for name, text in FAMILY.items():
        (folder / name).write_text(textwrap.dedent(text))
    monkeypatch.setattr(sigstream.models, "__path__", [*sigstream.models.__path__,
                                                       str(tmp_path)])
    from sigstream.models import registry

    monkeypatch.setattr(registry, "MODELS", registry.MappingProxyType(registry._discover()))
    yield folder
    for mod in [m for m in sys.modules if m.startswith("sigstream.models.toygain")]:
        del sys.modules[mod]


def test_a_new_family_folder_is_all_it_takes(toygain: Path, tmp_path: Path) -> None:
    from _support.cli import sigstream

    p = sigstream("models")
    assert p.returncode == 0 and "toygain" in p.stdout and "y = gain * x" in p.stdout
    p = sigstream("train", "toygain", "--help")
    assert p.returncode == 0
    assert "--target" in p.stdout and "--gain" in p.stdout and "--lr" in p.stdout
    out = tmp_path / "run"
    p = sigstream("train", "toygain", "--target", "2.5", "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    history = json.loads((out / "history.json").read_text())
    assert min(row["val_loss"] for row in history["epochs"]) < 0.05  # it learned
    p = sigstream("eval", "toygain", "--checkpoint", str(out / "toygain.pt"), "--target", "2.5",
                  "--json", str(tmp_path / "e.json"))
    assert p.returncode == 0 and "(data 2.5)" in p.stdout, p.stdout + p.stderr
    gain = json.loads((tmp_path / "e.json").read_text())["gain"]
    assert gain == pytest.approx(2.5, abs=0.15)  # the best checkpoint was kept
    x = np.arange(10, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    p = sigstream("run", "--model", str(out / "toygain.pt"), "--source",
                  f"npy:{tmp_path / 'x.npy'},rate=100", "--sink", f"npy:{tmp_path / 'y.npy'}",
                  "--quiet")
    assert p.returncode == 0, p.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy")[:, 0], gain * x, rtol=1e-6)
