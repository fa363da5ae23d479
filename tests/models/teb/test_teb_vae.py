"""TEB-VAE: public-method shapes, loss dictionary and warmup, streaming of every encoder and
of the whole chain, the plot helpers, checkpoints and a tiny training run."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings
from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd
from sigstream.models.teb.model import (
    ConditionalEncoder,
    SeqVaeTeb,
    SourceEncoder,
    TargetEncoder,
    TebStreamer,
    future_targets,
    preset,
)
from sigstream.models.teb.plots import (
    PlotCallback,
    nan_aware_sum,
    nan_mean,
    place_on_timeline,
    plot_teb_forward,
)

LOSS_KEYS = {"total_loss", "reconstruction_loss", "kld_loss"}  # one name per tensor
B, L, H, Z = 2, 40, 48, 16


def tiny(**kw):  # noqa: ANN201
    base = {"lstm_hidden": 16, "lstm_layers": 2, "horizon": H, "decoder_width": 24,
            "warmup": 10}
    return preset("small", **{**base, **kw})


def make(**kw) -> SeqVaeTeb:
    """A tiny model; the decoder heads' last layers get small weights (random, std 0.1), which
    keeps the random model's variances near 1 as in a trained one."""
    torch.manual_seed(0)
    m = SeqVaeTeb(tiny(**kw))
    with torch.no_grad():
        for head in (m.decoder.head_mu, m.decoder.head_logvar):
            head[-1].weight.normal_(0, 0.1)
            head[-1].bias.normal_(0, 0.1)
    return m.eval()


def feats(b: int = B, n: int = L, seed: int = 0):  # noqa: ANN201
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, n, 9, generator=g), torch.randn(b, n, 10, generator=g),
            torch.randn(b, n, 19, generator=g))


# -- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["small", "seed"])
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    m = SeqVaeTeb(preset(name)).eval()
    y_st, y_ph, x_ph = feats(1, 8)
    out = m(y_st, y_ph, x_ph)
    for key, shape in (("mu_x", (1, 8, 16)), ("mu_y", (1, 8, 16)), ("logvar_y", (1, 8, 32)),
                       ("logvar_prior", (1, 8, 16)), ("mu_post", (1, 8, 16)),
                       ("logvar_post", (1, 8, 16)), ("z", (1, 8, 16)),
                       ("raw_signal_mu", (1, 8, 480)), ("raw_signal_logvar", (1, 8, 480))):
        assert out[key].shape == shape, key
    assert out["raw_signal_logvar"].abs().max() <= 10
    cfg = m.config
    assert (cfg.latent, cfg.lstm_hidden, cfg.lstm_layers) == ((16, 128, 3) if name == "seed"
                                                              else (16, 64, 2))
    assert not m.source_encoder.lstm.rnn.bidirectional


def test_public_methods_shapes() -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    p = m.predict_raw_signal(x_ph, y_st, y_ph)
    assert p["raw_signal_mu"].shape == (B, L, H) and p["z"].shape == (B, L, Z)
    one = m.predict_single_timestep(x_ph, y_st, y_ph, raw_timestep=16 * 12 + 5)
    assert one["decimated_timestep"] == 11 and one["forecast_start"] == 192
    assert one["raw_signal_mu"].shape == (B, H) and one["raw_signal_logvar"].shape == (B, H)
    assert one["z_single"].shape == (B, 1, Z)
    torch.testing.assert_close(one["raw_signal_mu"], p["raw_signal_mu"][:, 11], atol=1e-5,
                               rtol=1e-5)
    enc = m.source_encoder.get_sequence_encoding(x_ph, timestep=20)
    assert enc.shape == (B, 21, Z)
    torch.testing.assert_close(enc, m.source_encoder(x_ph)[:, :21], atol=1e-5, rtol=1e-5)
    mu, inter = m.source_encoder(x_ph, return_intermediate=True)
    assert inter["lstm_output"].shape == (B, L, 16) and mu.shape == (B, L, Z)
    assert m.target_encoder.get_encoder_features(y_st, y_ph).shape == (B, L, Z)
    mu_y, lv_y = m.target_encoder.encode(y_st, y_ph)
    assert mu_y.shape == (B, L, Z) and lv_y.shape == (B, L, 2 * Z)
    mu_d, lv_d = m.decoder(torch.randn(3, 5, Z))
    assert mu_d.shape == lv_d.shape == (3, 5, H)
    with pytest.raises(InputError):
        m.predict_single_timestep(x_ph, y_st, y_ph, raw_timestep=14)
    with pytest.raises(InputError):
        m.source_encoder.get_sequence_encoding(x_ph, timestep=L)
    with pytest.raises(InputError, match="y_ph"):
        m(y_st, y_ph[..., :5], x_ph)


def test_single_timestep_reads_no_future() -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    a = m.predict_single_timestep(x_ph, y_st, y_ph, raw_timestep=200)
    y_st2, y_ph2, x_ph2 = (t.clone() for t in (y_st, y_ph, x_ph))
    for t in (y_st2, y_ph2, x_ph2):
        t[:, 13:] = 99.0  # step 12 ends at raw sample 207
    b = m.predict_single_timestep(x_ph2, y_st2, y_ph2, raw_timestep=200)
    torch.testing.assert_close(a["raw_signal_mu"], b["raw_signal_mu"])


def test_sampling_only_in_training() -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    e1, e2 = m(y_st, y_ph, x_ph), m(y_st, y_ph, x_ph)
    torch.testing.assert_close(e1["z"], e1["mu_post"])
    torch.testing.assert_close(e1["raw_signal_mu"], e2["raw_signal_mu"])
    m.train()
    t1, t2 = m(y_st, y_ph, x_ph), m(y_st, y_ph, x_ph)
    assert not torch.allclose(t1["z"], t2["z"])


def test_anchor_adds_last_value() -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    a = m(y_st, y_ph, x_ph)
    mu_dec, _ = m.decoder(a["z"])
    torch.testing.assert_close(a["raw_signal_mu"], mu_dec + y_st[..., :1])
    n = make(anchor_channel=-1)
    b = n(y_st, y_ph, x_ph)
    torch.testing.assert_close(b["raw_signal_mu"], n.decoder(b["z"])[0])


# -- loss ------------------------------------------------------------------------------------
def test_loss_keys_and_total() -> None:
    m = make(kld_beta=0.5)
    y_st, y_ph, x_ph = feats()
    y_raw = torch.randn(B, 16 * L)
    out = m(y_st, y_ph, x_ph, y_raw=y_raw)
    losses = out["losses"]
    assert set(losses) == LOSS_KEYS
    torch.testing.assert_close(losses["total_loss"],
                               losses["reconstruction_loss"] + 0.5 * losses["kld_loss"])
    assert float(losses["kld_loss"].detach()) > 0
    same = m.compute_loss(out, y_raw.unsqueeze(-1))  # (B, T, 1) is accepted too
    torch.testing.assert_close(same["total_loss"], losses["total_loss"])


def test_nll_by_hand() -> None:
    m = make()
    steps = 12
    pred = {"raw_signal_mu": torch.zeros(1, steps, H),
            "raw_signal_logvar": torch.zeros(1, steps, H)}
    y_raw = torch.ones(1, 16 * steps)
    y_raw[0, 200:] = float("nan")  # missing samples do not count
    got = m.decoder.compute_loss(pred, y_raw, warmup_period=10)
    assert got == pytest.approx(0.5 * (math.log(2 * math.pi) + 1.0), rel=1e-6)
    # log-variance 2 and error 2: 0.5 (log 2 pi + 2 + 4 / e^2)
    pred["raw_signal_logvar"] += 2.0
    got = m.decoder.compute_loss(pred, 2 * y_raw, warmup_period=10)
    assert got == pytest.approx(0.5 * (math.log(2 * math.pi) + 2 + 4 / math.e ** 2), rel=1e-6)


def test_future_targets_and_nan_mask() -> None:
    y = torch.arange(100.0).unsqueeze(0)
    y[0, 40] = float("nan")
    target, valid = future_targets(y, 6, 16, 10)
    assert target.shape == valid.shape == (1, 6, 10)
    assert target[0, 0, 0] == 16 and target[0, 1, 9] == 41
    assert not valid[0, 1, 8]  # sample 40 is NaN
    assert valid[0, 4].all() and valid[0, 5].sum() == 100 - 96  # cut at the end


def test_warmup_behaviour() -> None:
    """Steps before the warmup never count; with warmup >= L the losses are exactly 0."""
    m = make()
    y_st, y_ph, x_ph = feats()
    y_raw = torch.randn(B, 16 * L)
    out = m(y_st, y_ph, x_ph)
    base = m.compute_loss(out, y_raw)["reconstruction_loss"]
    changed = dict(out)
    changed["raw_signal_mu"] = out["raw_signal_mu"].clone()
    changed["raw_signal_mu"][:, :10] += 5.0  # steps < warmup (10)
    torch.testing.assert_close(m.compute_loss(changed, y_raw)["reconstruction_loss"], base)
    changed["raw_signal_mu"][:, 10] += 5.0
    worse = m.compute_loss(changed, y_raw)["reconstruction_loss"].detach()
    assert float(worse) > float(base.detach()) + 0.1
    long = make(warmup=L)
    m.train()
    long.train()
    y_st.requires_grad_(True)
    losses = long.compute_loss(long(y_st, y_ph, x_ph), y_raw)
    for key in LOSS_KEYS:
        assert float(losses[key].detach()) == 0.0
    losses["total_loss"].backward()  # still part of the graph


def test_steps_subset_equals_full_loss_rows() -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    y_raw = torch.randn(B, 16 * L)
    full = m(y_st, y_ph, x_ph)
    steps = torch.tensor([12, 20, 33])
    part = m(y_st, y_ph, x_ph, steps=steps)
    torch.testing.assert_close(part["raw_signal_mu"], full["raw_signal_mu"][:, steps],
                               atol=1e-5, rtol=1e-5)
    assert part["raw_signal_mu"].shape == (B, 3, H)
    assert torch.isfinite(m.compute_loss(part, y_raw)["total_loss"])


# -- streaming -------------------------------------------------------------------------------
@settings(max_examples=12)
@given(sizes=chunkings(L))
def test_encoders_stream_like_offline(sizes: list[int]) -> None:
    m = make()
    y_st, y_ph, x_ph = feats()
    assert_streams_like_offline(m.source_encoder, x_ph, sizes)
    assert_streams_like_offline(m.target_encoder, torch.cat([y_st, y_ph], -1), sizes)
    assert_streams_like_offline(m.conditional_encoder, torch.randn(B, L, 2 * Z), sizes)
    assert_streams_like_offline(TebStreamer(m), torch.cat([y_st, y_ph, x_ph], -1), sizes)


@pytest.mark.parametrize("cls", [SourceEncoder, TargetEncoder, ConditionalEncoder])
def test_encoders_causal_and_states(cls) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    enc = cls(tiny()).eval()
    x = torch.randn(B, L, enc.in_channels)
    assert_causal(enc, x, 17)
    state = enc.init_state(3)
    for leaf in _leaves(state):
        assert leaf.shape[0] == 3
    y, new = enc.step(x[:, :0], enc.init_state(B))
    assert y.shape == (B, 0, enc.out_channels)


def _leaves(state):  # noqa: ANN001, ANN202
    from sigstream.core.state import leaves

    return leaves(state)


def raw_stream(b: int = 2, t: int = 16 * 24 + 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, t, 2, generator=g).cumsum(1) * 0.05
    x[0, 30:60, 0] = float("nan")
    x[-1, 100:130, 1] = float("nan")
    return x


def streamer() -> TebStreamer:
    fe = TebFrontEnd(FrontEndConfig(max_taps=128))
    return TebStreamer(make(), fe).eval()


@pytest.mark.parametrize("sizes", [[1] * 389, [7] * 55 + [4], [16] * 24 + [5],
                                   [0, 100, 0, 289], [389]])
def test_whole_chain_streams_like_offline(sizes: list[int]) -> None:
    s = streamer()
    x = raw_stream()
    assert_streams_like_offline(s, x, sizes)
    y = s(x)
    assert y.shape == (2, 24, Z + 2 * H) and s.decimation == 16
    z, mean, var = s.split_rows(y)
    assert (var > 0).all() and torch.isfinite(mean).all()


def test_whole_chain_causal_and_batched_streams() -> None:
    s = streamer()
    x = torch.nan_to_num(raw_stream())
    assert_causal(s, x, 16 * 10 + 3)
    # one stream alone equals the same stream inside a batch
    torch.testing.assert_close(s(x[1:]), s(x)[1:], atol=1e-5, rtol=1e-5)


def test_seed_dims_stream_like_offline() -> None:
    """The seed-size config streams too; its deeper float32 GEMMs differ by a few 1e-5
    between batch shapes, so this check uses 1e-4 (the shipped small config meets 1e-5)."""
    torch.manual_seed(0)
    m = SeqVaeTeb(preset("seed", horizon=H)).eval()
    y_st, y_ph, x_ph = feats(1, 12)
    assert_streams_like_offline(TebStreamer(m), torch.cat([y_st, y_ph, x_ph], -1),
                                [1, 4, 0, 7], atol=1e-4, rtol=1e-4)


def test_bad_configs() -> None:
    with pytest.raises(ConfigError):
        preset("huge")
    with pytest.raises(ConfigError):
        preset("small", expand="attention")
    with pytest.raises(ConfigError):
        preset("small", anchor_channel=20)


# -- plots -----------------------------------------------------------------------------------
def test_nan_aware_sum_hand_made() -> None:
    nan = np.nan
    a = np.array([[1.0, nan, nan, 2.0],
                  [nan, nan, 3.0, 4.0],
                  [nan, nan, nan, -1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = nan_aware_sum(a, axis=0)
        np.testing.assert_array_equal(got, [1.0, nan, 3.0, 5.0])
        np.testing.assert_array_equal(nan_aware_sum(a, axis=1), [3.0, 7.0, -1.0])
        np.testing.assert_array_equal(nan_aware_sum(np.full((2, 3), nan), axis=0), [nan] * 3)
        np.testing.assert_array_equal(nan_mean(a, axis=0), [1.0, nan, 3.0, 5.0 / 3])


def test_place_on_timeline() -> None:
    v = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    t = place_on_timeline(v, 2, 9)
    assert t.shape == (2, 3, 9)
    np.testing.assert_array_equal(t[0, 0, 2:6], v[0, 0])
    assert np.isnan(t[0, 0, :2]).all() and np.isnan(t[0, 0, 6:]).all()
    np.testing.assert_array_equal(t[1, 2, 6:9], v[1, 2, :3])  # cut at the end


def test_plot_pdf_written(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    n, steps = 4800, 300
    y, up = rng.normal(size=(2, n)), rng.normal(size=(2, n))
    mu = place_on_timeline(rng.normal(size=(2, steps, 480)).astype(np.float32), 16, n)
    lv = place_on_timeline(np.zeros((2, steps, 480), np.float32), 16, n)
    path = plot_teb_forward(y, up, nan_mean(mu, 1), nan_mean(lv, 1), mu, lv,
                            rng.normal(size=(2, steps, 16)), str(tmp_path / "p.pdf"), sample=1)
    data = (tmp_path / "p.pdf").read_bytes()
    assert path.endswith("p.pdf") and data.startswith(b"%PDF") and len(data) > 10_000
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # closed


# -- checkpoint and training ----------------------------------------------------------------
def test_tiny_training_lowers_loss_and_checkpoint_round_trip(tmp_path) -> None:  # noqa: ANN001
    """20 Adam updates of a tiny model on synthetic CTG lower its (deterministic) loss."""
    from sigstream.models.teb.train import load_teb, make_data, save_teb

    fe = TebFrontEnd(FrontEndConfig(max_taps=128))
    data = make_data(fe, 6, 11, minutes=4)
    torch.manual_seed(0)
    model = SeqVaeTeb(tiny(horizon=480, warmup=30))
    model.set_normalisation(data.x_ph, data.y_st, data.y_ph)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            out = model(data.y_st, data.y_ph, data.x_ph)
            return float(model.compute_loss(out, data.y_raw)["total_loss"])

    before = loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        model.train()
        steps = torch.randperm(30, generator=g)[:8].sort().values + 30
        out = model(data.y_st, data.y_ph, data.x_ph, steps=steps)
        total = model.compute_loss(out, data.y_raw)["total_loss"]
        opt.zero_grad()
        total.backward()
        opt.step()
    after = loss()
    assert after < before - 0.05, (before, after)
    s = TebStreamer(model, fe).eval()
    save_teb(str(tmp_path / "teb.pt"), s, meta={"note": "test"})
    again = load_teb(str(tmp_path / "teb.pt"))
    x = raw_stream(1, 16 * 20)
    torch.testing.assert_close(again(x), s(x))
    assert again.meta["note"] == "test" and again.meta["hop"] == 1


def test_plot_callback_frequency(tmp_path) -> None:  # noqa: ANN001
    from sigstream.models.teb.train import make_data

    fe = TebFrontEnd(FrontEndConfig(max_taps=128))
    data = make_data(fe, 1, 5, minutes=3)
    m = SeqVaeTeb(tiny())
    cb = PlotCallback(3, str(tmp_path), data)
    for epoch in range(5):
        cb(epoch, m)
    assert [p.rsplit("/", 1)[-1] for p in cb.written] == ["teb_epoch000.pdf", "teb_epoch003.pdf"]
    assert all((tmp_path / p.rsplit("/", 1)[-1]).stat().st_size > 10_000 for p in cb.written)
    assert m.training  # the callback restores the mode


def test_load_rejects_other_checkpoints_and_bad_train_configs(tmp_path) -> None:  # noqa: ANN001
    from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
    from sigstream.models.checkpoint import save_checkpoint
    from sigstream.models.teb.train import TebTrainConfig, load_teb
    from sigstream.models.training.config import build

    cfg = ButterworthConfig()
    save_checkpoint(str(tmp_path / "b.pt"), "butterworth", cfg, Butterworth(cfg))
    with pytest.raises(InputError, match="not a TEB-VAE"):
        load_teb(str(tmp_path / "b.pt"))
    with pytest.raises(ConfigError, match="too short"):
        build(TebTrainConfig, minutes=1).validate()
    with pytest.raises(ConfigError, match="unknown TEB preset"):
        build(TebTrainConfig, preset="huge").validate()


# Recorded with the trainer before it moved onto fit() (commit 5ce96a2; torch 2.13 CPU, one
# thread): plateau halving every epoch without improvement, then early stopping.
RECORDED = dict(
    config=dict(epochs=5, train_records=4, val_records=2, minutes=5, batch=2, decode_steps=4,
                lr=0.05, lr_patience=0, patience=4),
    train=[19.548397660255432, 104734.84716796875, 87594.56042480469, 16.556846857070923,
           6.461105823516846],
    val=[3.8221490383148193, 5.9375691413879395, 6.05735969543457, 5.987079620361328,
         5.930896282196045],
    lr=[0.05, 0.05, 0.025, 0.0125, 0.00625])


def test_training_reproduces_the_recorded_run(tmp_path) -> None:  # noqa: ANN001
    from sigstream.models.teb.train import TebTrainConfig, train
    from sigstream.models.training.config import build

    result = train(build(TebTrainConfig, progress=False, **RECORDED["config"]), str(tmp_path))
    # lr 0.05 drives this run through a blow-up (train loss 1e5 in epoch 2): another CPU
    # model's float32 summation order (or thread count) changes epochs 3-5 by up to 70 %, so
    # those are held to the learning-rate schedule they produce; the first two epochs, before
    # the blow-up, to rel 1e-3 (a changed trainer moves them by far more)
    train_loss = [e["train_loss"] for e in result.epochs]
    val = [e["val_nll"] for e in result.epochs]
    assert train_loss[:1] == pytest.approx(RECORDED["train"][:1], rel=1e-3)
    assert val[:2] == pytest.approx(RECORDED["val"][:2], rel=1e-3)
    assert len(val) == len(RECORDED["val"])
    assert [e["lr"] for e in result.epochs] == pytest.approx(RECORDED["lr"], rel=1e-9)
    assert result.stopped_early and result.best_epoch == 0


def test_shipped_weights_stream_like_offline() -> None:
    """models/weights/teb.pt loads and streams a held-out-style record like offline."""
    from sigstream.models.teb.data import CtgConfig, generate
    from sigstream.models.teb.train import load_teb, shipped_weights

    teb = load_teb(shipped_weights())
    assert teb.model.config.latent == 16 and teb.model.config.horizon == 480
    f, u = generate(CtgConfig(records=1, minutes=4), 99).normalised()
    x = torch.from_numpy(np.stack([f, u], axis=-1))
    assert_streams_like_offline(teb, x, [1, 15, 7, 0, 200, 333, 404])
    z, mean, var = teb.split_rows(teb(x))
    assert z.shape == (1, 60, 16) and (var > 0).all() and torch.isfinite(mean).all()
