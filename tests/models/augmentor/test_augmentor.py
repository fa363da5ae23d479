"""SensorAugmentor: streaming through OverlapCrossfade, MC dropout, checkpoints, freezing,
tiny training, encoder transfer, export parity, baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sigstream.core.testing import assert_causal, assert_streams_like_offline
from sigstream.models.augmentor.data import make_splits
from sigstream.models.augmentor.model import (
    AugmentorConfig,
    AugmentorStream,
    SensorAugmentor,
    augmentor_loss,
    augmentor_stream,
    transfer_encoder,
)
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.registry import load_checkpoint
from sigstream.models.uncertainty import mc_dropout

TINY = AugmentorConfig(window=32, hidden=24, resblocks=1, hop=8, dropout=0.2)


def _tiny(actuator: bool = False, seed: int = 0) -> AugmentorStream:
    torch.manual_seed(seed)
    m = augmentor_stream(dataclasses.replace(TINY, actuator=actuator))
    m.net.fit_normaliser(np.array([0.0, 1.0]), np.array([0.2, 3.2]),
                         np.array([[1.0, 0.5], [2.0, 0.7]]))  # means 0.5, 1.7; stds 0.5, 1.5
    return m.eval()


def test_forward_returns_reconstruction_commands_and_encodings() -> None:
    net = _tiny().net
    x, y = torch.randn(5, 32), torch.randn(5, 32)
    out = net(x, y)
    assert out.reconstruction.shape == (5, 32) and out.actuator.shape == (5, 2)
    assert out.encoded_lq.shape == out.encoded_hq.shape == (5, 24)
    assert net(x).encoded_hq is None
    loss, parts = augmentor_loss(out, y, torch.zeros(5, 2))
    want = parts["recon"] + 0.1 * parts["encoding"] + 0.5 * parts["actuator"]
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("actuator", [False, True])
def test_streams_like_offline_through_crossfade(actuator: bool) -> None:
    m = _tiny(actuator)
    assert m.latency == TINY.window - TINY.hop == 24 and m.hop == 8
    assert m.out_channels == (3 if actuator else 1)
    x = torch.randn(3, 8 * 23, 1)  # B > 1
    for sizes in ([8] * 23, [0, 16, 8, 0, 64, 96], [56, 128]):  # one hop, uneven, empty
        assert_streams_like_offline(m, x, sizes)
    assert_causal(m, x, 100)


def test_stated_latency_is_the_delay() -> None:
    """With the window model swapped for an identity, the augmentor's stream returns its
    input delayed by exactly the stated latency (window - hop)."""
    m = _tiny()

    class Ident(torch.nn.Module):
        def forward(self, x):  # (N, W, 1)
            return x

    m.model = Ident()
    x = torch.randn(2, 96, 1)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[:, m.latency:], x[:, :-m.latency])
    assert torch.count_nonzero(y[:, :m.latency]) == 0


def test_mc_dropout_spread_only_with_dropout() -> None:
    x = torch.randn(4, 32)
    net = _tiny().net

    def fn(v):
        return net(v).reconstruction

    _, std = mc_dropout(fn, x, 12, module=net, seed=0)
    assert float(std.mean()) > 0
    torch.manual_seed(0)
    plain = SensorAugmentor(dataclasses.replace(TINY, dropout=0.0)).eval()
    _, std0 = mc_dropout(lambda v: plain(v).reconstruction, x, 12, module=plain, seed=0)
    assert float(std0.abs().max()) == 0.0


def test_checkpoint_round_trip_keeps_normaliser(tmp_path) -> None:
    m = _tiny(actuator=True)
    path = str(tmp_path / "a.pt")
    save_checkpoint(path, "augmentor", m.config, m, norm=m.net.norm_dict())
    back = load_checkpoint(path)
    assert isinstance(back, AugmentorStream)
    assert back.norm == m.net.norm_dict()
    assert float(back.net.in_mean) == 0.5 and float(back.net.out_mean) == pytest.approx(1.7)
    x = torch.randn(2, 64, 1)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))
    assert back.meta["latency"] == 24 and back.meta["hop"] == 8


def _train_cfg(**kw):
    from sigstream.models.augmentor.train import AugmentorTrainConfig
    from sigstream.models.training.config import build

    base = dict(windows=300, window=32, hidden=24, resblocks=1, hop=8, epochs=6, batch=32,
                lr=3e-3, patience=50, progress=False, sample_rate=100.0)
    base.update(kw)
    return build(AugmentorTrainConfig, **base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from sigstream.models.augmentor.train import train

    out = tmp_path_factory.mktemp("aug")
    torch.set_num_threads(1)
    result = train(_train_cfg(), str(out))
    return result.model, result, result.checkpoint, out


def test_tiny_training_lowers_the_loss(trained) -> None:
    import json
    import os

    model, hist, path, out = trained
    first, best = hist.epochs[0]["val_loss"], hist.best_val
    assert best < first and hist.epochs[-1]["train_loss"] < hist.epochs[0]["train_loss"]
    assert os.path.isfile(path)
    saved = json.load(open(os.path.join(out, "history.json")))
    assert len(saved["epochs"]) == len(hist.epochs)
    assert len(model.meta["history"]) == len(hist.epochs)
    # the normaliser was fitted on training data and travels in the checkpoint
    assert model.norm["in_std"] > 0.3 and abs(model.norm["out_mean"]) < 0.2


def test_freeze_encoder_leaves_it_bit_identical(trained, tmp_path) -> None:
    from sigstream.models.augmentor.train import train

    src, _, path, _ = trained
    hist = train(_train_cfg(init=path, freeze="encoder", epochs=3, data_seed=5), str(tmp_path))
    tuned, frozen = hist.model, hist.extra["frozen"]
    assert frozen and all(n.split(".")[0] in ("encoder", "post_encoding_resblock",
                                              "resblocks") for n in frozen)
    a, b = src.net.state_dict(), tuned.net.state_dict()
    for name in a:
        if name.startswith(("encoder", "post_encoding_resblock", "resblocks")):
            assert torch.equal(a[name], b[name]), name
    changed = [n for n in a if n.startswith(("hq_reconstructor", "actuator_head"))
               and not torch.equal(a[n], b[n])]
    assert changed  # the heads did train
    assert b["in_mean"] == a["in_mean"]  # the encoder's normaliser is kept


def test_encoder_transfer_to_another_window_length(trained, tmp_path) -> None:
    from sigstream.models.augmentor.train import train

    src = trained[0].net
    dst = transfer_encoder(src, 64)
    assert dst.config.window == 64 and dst.encoder[0].weight.shape == (24, 64 + 101)
    for part in ("post_encoding_resblock", "resblocks"):
        for (n, p), (_, q) in zip(getattr(src, part).state_dict().items(),
                                  getattr(dst, part).state_dict().items(), strict=True):
            assert torch.equal(p, q), n
    same = transfer_encoder(src, 32)  # same length: an exact copy of the encoder
    assert torch.equal(same.encoder[0].weight, src.encoder[0].weight)
    assert torch.equal(dst.encoder[0].weight[:, 64:], src.encoder[0].weight[:, 32:])
    # the bank magnitudes the copied weights read are tone amplitudes at any window length:
    # a 12.5 Hz tone of amplitude 0.7 reads 0.7 at the 12.5 Hz bank entry for both
    k = 25  # bank entries every 0.5 Hz at 100 Hz
    for net, w in ((src, 32), (dst, 64)):
        t = torch.arange(w) / 100.0
        x = 0.7 * torch.sin(2 * np.pi * 12.5 * t)[None] * net.in_std + net.in_mean
        _, c, sn = net._analyse(x)
        amp = float(torch.sqrt(c[0, k] ** 2 + sn[0, k] ** 2))
        assert amp == pytest.approx(0.7, abs=1e-4)
    # the raw-sample templates are stretched (scaled so a constant input contributes alike)
    ones32, ones64 = torch.ones(32), torch.ones(64)
    torch.testing.assert_close(dst.encoder[0].weight[:, :64] @ ones64,
                               src.encoder[0].weight[:, :32] @ ones32, atol=0.05, rtol=0.05)
    # fine-tuning the transferred model with the encoder frozen (through the trainer)
    hist = train(_train_cfg(init=trained[2], freeze="encoder", window=64, hop=16, epochs=3),
                 str(tmp_path))
    model = hist.model
    assert hist.extra["transferred_from_window"] == 32 and model.net.config.window == 64
    assert hist.best_val < hist.epochs[0]["val_loss"] or hist.best_epoch == 0
    assert torch.equal(model.net.resblocks[0].fc1.weight, src.resblocks[0].fc1.weight)
    assert model.latency == 48


# Recorded with the trainer before it moved onto fit() (commit 5ce96a2; torch 2.13 CPU, one
# thread): plateau halving; data drawn with the default sensor model.
RECORDED = dict(
    config=dict(windows=300, window=32, hidden=24, resblocks=1, hop=8, epochs=6, batch=32,
                lr=0.05, lr_patience=0, patience=3),
    train=[0.32756285766760507, 0.15327508946259816, 0.14534294605255127, 0.140512678027153,
           0.14593820770581564, 0.14686864316463472],
    val=[0.14884378015995026, 0.15243349969387054, 0.14532248675823212, 0.1464202105998993,
         0.14521563053131104, 0.1446753740310669],
    lr=[0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])


def test_training_reproduces_the_recorded_run(tmp_path) -> None:
    from sigstream.models.augmentor.train import AugmentorTrainConfig, train
    from sigstream.models.training.config import build

    result = train(build(AugmentorTrainConfig, progress=False, **RECORDED["config"]),
                   str(tmp_path))
    assert [e["train_loss"] for e in result.epochs] == pytest.approx(RECORDED["train"],
                                                                      rel=1e-6)
    assert [e["val_loss"] for e in result.epochs] == pytest.approx(RECORDED["val"], rel=1e-6)
    assert [e["lr"] for e in result.epochs] == pytest.approx(RECORDED["lr"], rel=1e-9)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity(tmp_path, fmt: str) -> None:
    from sigstream.export.backends import export_file
    from sigstream.export.runtime import load_runner

    m = _tiny(actuator=True)
    path = str(tmp_path / f"aug.{fmt}")
    meta = export_file(m, path, fmt, name="augmentor")
    assert meta["latency"] == 24 and meta["hop"] == 8
    runner = load_runner(path)
    rng = np.random.default_rng(0)
    s_run, s_ref = runner.init_state(2), m.init_state(2)
    for u in [1, 0, 3, 7, 1, 2, 5, 1, 1, 4, 9, 2, 1, 3, 1, 6]:
        x = rng.standard_normal((2, u * 8, 1)).astype(np.float32)
        y, s_run = runner.step(x, s_run)
        with torch.inference_mode():
            y_ref, s_ref = m.step(torch.from_numpy(x), s_ref)
        np.testing.assert_allclose(y, y_ref.numpy(), atol=1e-4, rtol=0)


def test_registry_builds_shipped_weights() -> None:
    from sigstream.models.registry import MODELS, build_model

    m = build_model("augmentor")
    assert isinstance(m, AugmentorStream) and MODELS["augmentor"].weights == "augmentor.pt"
    assert m.latency == m.net.config.window - m.hop
    assert m.norm["in_std"] > 0 and "history" in m.meta


def test_shipped_weights_take_streaming_options_but_refuse_other_ones() -> None:
    from sigstream.core.errors import ConfigError
    from sigstream.models.registry import build_model

    base = build_model("augmentor")
    m = build_model("augmentor:actuator=true,hop=16")  # how it streams, same weights
    assert m.out_channels == 3 and m.hop == 16 and m.latency == 128 - 16
    assert m.norm == base.norm and m.meta == base.meta
    for k, v in base.state_dict().items():
        assert torch.equal(v, m.state_dict()[k])
    x = torch.randn(2, 128)
    with torch.inference_mode():
        torch.testing.assert_close(m.net(x).reconstruction, base.net(x).reconstruction)
    with pytest.raises(ConfigError, match="sigstream train enhancer --arch augmentor"):
        build_model("augmentor:hidden=64")  # changes the weights: refused, with the command


def test_baselines_signature_and_causality() -> None:
    from sigstream.models.baselines import enhance as eb

    d = make_splits(40, seed=1).test
    rate = 100.0
    bases = eb.default_baselines(rate, band_hz=40.0)
    assert {b.name for b in bases} >= {"wiener", "butterworth", "savgol"}
    for b in bases:
        y = b(d.lq, rate)
        assert y.shape == d.lq.shape and np.all(np.isfinite(y))
        assert b(d.lq[0], rate).shape == d.lq[0].shape
    assert [b.name for b in eb.causal_baselines(bases)] == ["butterworth"]
    # the causal one really is causal: changing the future changes no past sample
    bw = eb.ButterworthBaseline(cutoff_hz=30.0)
    x = np.random.default_rng(0).standard_normal((1, 200))
    x2 = x.copy()
    x2[:, 120:] += 5.0
    np.testing.assert_array_equal(bw(x, rate)[:, :120], bw(x2, rate)[:, :120])
    assert not np.array_equal(bw(x, rate)[:, 120:], bw(x2, rate)[:, 120:])
    # and the non-causal ones are not
    sg = eb.SavgolBaseline()
    assert not np.array_equal(sg(x, rate)[:, :120], sg(x2, rate)[:, :120])
    tuned, score = eb.tune(eb.SavgolBaseline(), "window_s", (0.05, 0.11), d.lq, d.hq, rate,
                           lambda t, y: -float(np.mean((t - y) ** 2)))
    assert tuned.window_s in (0.05, 0.11) and np.isfinite(score)
