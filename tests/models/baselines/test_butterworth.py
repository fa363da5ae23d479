"""Butterworth: streamed equals scipy's sosfilt over the whole signal; config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs
from scipy import signal

from sigstream.core.errors import ConfigError
from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.baselines.savgol import SavgolConfig, savgol_stream

CONFIGS = [
    ButterworthConfig(kind="lowpass", order=4, high=40.0),
    ButterworthConfig(kind="highpass", order=2, low=5.0, channels=2),
    ButterworthConfig(kind="bandpass", order=3, low=3.0, high=9.0, channels=3),
    ButterworthConfig(kind="bandstop", order=2, low=45.0, high=55.0),
    ButterworthConfig(kind="bandpass", order=6, low=0.5, high=1.5),  # narrow, slow poles
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}{c.order}")
@given(data=hs.data())
def test_streamed_equals_sosfilt(cfg: ButterworthConfig, data) -> None:
    model = Butterworth(cfg)
    b = data.draw(hs.integers(1, 3), label="batch")
    t = 500
    x = torch.from_numpy(np.random.default_rng(b).standard_normal((b, t, cfg.channels))
                         .astype(np.float32))
    sizes = data.draw(chunkings(t), label="sizes")
    assert_streams_like_offline(model, x, sizes)
    ref = signal.sosfilt(cfg.sos(), x.numpy().astype(np.float64), axis=1)
    np.testing.assert_allclose(model(x).numpy(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}{c.order}")
def test_step_is_sosfilt_bit_for_bit_and_writes_nothing_it_was_given(cfg: ButterworthConfig,
                                                                    monkeypatch) -> None:  # noqa: ANN001
    """The step runs scipy's compiled sosfilt loop directly (the public wrapper costs ~55 us
    a call): from a non-zero memory, over batched multi-channel chunks, it gives exactly
    what ``sosfilt`` gives (the fallback path, used if scipy's kernel moved), and leaves the
    chunk and the state it was given as they were."""
    from sigstream.models.baselines import butterworth as bw

    assert bw._kernel_ok()
    model = Butterworth(cfg)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((3, 37, cfg.channels)).astype(np.float32))
    state = bw.ButterworthState(torch.from_numpy(rng.standard_normal(
        tuple(model.init_state(3).zi.shape))))
    x0, z0 = x.clone(), state.zi.clone()
    y, new = model.step(x, state)
    assert torch.equal(x, x0) and torch.equal(state.zi, z0)
    assert y.dtype == torch.float32 and y.shape == x.shape and y.is_contiguous()
    assert new.zi.shape == z0.shape and new.zi.is_contiguous()
    ref, zf = signal.sosfilt(cfg.sos(), x0.numpy().astype(np.float64), axis=1,
                             zi=z0.numpy().transpose(1, 0, 2, 3))
    assert np.array_equal(y.numpy(), ref.astype(np.float32))
    assert np.array_equal(new.zi.numpy(), zf.transpose(1, 0, 2, 3))
    monkeypatch.setattr(bw, "_kernel_ok", lambda: False)  # the public sosfilt path
    y2, new2 = model.step(x, state)
    assert torch.equal(y2, y) and torch.equal(new2.zi, new.zi)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}{c.order}")
def test_causal(cfg: ButterworthConfig) -> None:
    x = torch.randn(2, 300, cfg.channels)
    assert_causal(Butterworth(cfg), x, 120)


def test_sos_matches_scipy_design() -> None:
    cfg = ButterworthConfig(kind="bandpass", order=4, low=3, high=30, sample_rate=500)
    np.testing.assert_array_equal(
        cfg.sos(), signal.butter(4, [3, 30], btype="bandpass", fs=500, output="sos"))


@pytest.mark.parametrize(("kw", "match"), [
    ({"kind": "notch"}, "unknown Butterworth kind"),
    ({"order": 0}, "order"),
    ({"high": 600.0}, "Nyquist"),
    ({"kind": "bandpass", "low": 50.0, "high": 10.0}, "low < high"),
    ({"channels": 0}, "channels"),
])
def test_bad_config(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Butterworth(ButterworthConfig(**kw))


@given(data=hs.data())
def test_savgol_stream_contract(data) -> None:
    cfg = SavgolConfig(window=32, hop=8, length=9, order=2)
    model = savgol_stream(cfg).eval()
    assert model.latency == 24 and model.hop == 8
    n = data.draw(hs.integers(0, 30)) * 8
    x = torch.randn(2, n, 1)
    assert_streams_like_offline(model, x, data.draw(chunkings(n, 8)))


def test_savgol_window_is_scipy() -> None:
    cfg = SavgolConfig(window=32, hop=8, length=9, order=2)
    win = savgol_stream(cfg).model
    x = np.random.default_rng(0).standard_normal((3, 32, 1)).astype(np.float32)
    ref = signal.savgol_filter(x, 9, 2, axis=1, mode="interp")
    np.testing.assert_allclose(win(torch.from_numpy(x)).numpy(), ref, atol=1e-5)


def test_savgol_is_causal_up_to_its_latency() -> None:
    model = savgol_stream(SavgolConfig(window=32, hop=8, length=9, order=2)).eval()
    x = torch.randn(2, 320, 1)
    for t in (60, 161, 250):
        assert_causal(model, x, t)


# -- SosBank: several cascades on one input as one state-space system -------------------------
BANK = [ButterworthConfig(kind="bandpass", order=2, low=max(f - w / 2, 0.05), high=f + w / 2)
        for f in (1.0, 3.0, 7.0) for w in (0.5, 2.0)]


@given(data=hs.data())
def test_sos_bank_streams_equal_sosfilt_of_each_cascade(data) -> None:
    """Any chunking (chunks longer than max_chunk included), from a non-zero memory: each
    output is sosfilt of its cascade, and the final memory is sosfilt's."""
    from sigstream.models.baselines.butterworth import SosBank

    soses = [c.sos() for c in BANK]
    bank = SosBank(soses, max_chunk=16)
    rng = np.random.default_rng(data.draw(hs.integers(0, 3), label="seed"))
    b, t = 2, 300
    x = rng.standard_normal((b, t)).astype(np.float32)
    zi0 = rng.standard_normal((b, len(soses), 2, 2, 1))
    zi, outs, at = torch.from_numpy(zi0), [], 0
    for n in data.draw(chunkings(t), label="sizes"):
        y, zi = bank.step(torch.from_numpy(x[:, at:at + n]), zi)
        outs.append(y.numpy())
        at += n
    got = np.concatenate(outs, axis=1)
    for j, sos in enumerate(soses):
        ref, zf = signal.sosfilt(sos, x.astype(np.float64), axis=1,
                                 zi=zi0[:, j, :, :, 0].transpose(1, 0, 2))
        np.testing.assert_allclose(got[..., j], ref, atol=1e-8, rtol=0)
        np.testing.assert_allclose(zi.numpy()[:, j, :, :, 0], zf.transpose(1, 0, 2), atol=1e-8)


def test_sos_bank_refuses_cascades_of_different_lengths() -> None:
    from sigstream.models.baselines.butterworth import SosBank

    with pytest.raises(ValueError, match="same number of sections"):
        SosBank([BANK[0].sos(), ButterworthConfig(kind="lowpass", order=6, high=40.0).sos()])
