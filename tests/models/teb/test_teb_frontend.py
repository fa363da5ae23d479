"""TEB front-end: streamed equals offline, causality, missing samples, band selectivity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from sigstream.core.errors import ConfigError
from sigstream.core.testing import assert_causal, assert_streams_like_offline, chunkings
from sigstream.models.teb.frontend import FrontEndConfig, TebFrontEnd, wavelet_bank

SMALL = FrontEndConfig(n_filters=4, max_taps=96, f_max=1.0)


def signal(batch: int = 2, t: int = 320, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, t, 2, generator=g).cumsum(1) * 0.1
    x[0, 40:75, 0] = float("nan")  # a dropout run in the FHR of stream 0
    x[1, 0:20, 1] = float("nan")  # UP missing from the start in stream 1
    return x


def test_shapes_and_split() -> None:
    fe = TebFrontEnd()
    cfg = fe.config
    assert (cfg.st_channels, cfg.ph_channels, cfg.per_signal) == (9, 10, 19)
    y = fe(signal(t=4800))
    assert y.shape == (2, 300, 38) and fe.decimation == 16 and fe.latency == 0
    y_st, y_ph, x_ph = fe.split(y)
    assert y_st.shape == (2, 300, 9) and y_ph.shape == (2, 300, 10) and x_ph.shape == (2, 300, 19)
    assert torch.isfinite(y).all()
    assert fe(signal(t=15)).shape == (2, 0, 38)  # no complete group of 16 yet


@settings(max_examples=20)
@given(sizes=chunkings(320))
def test_streams_like_offline(sizes: list[int]) -> None:
    fe = TebFrontEnd(SMALL)
    assert_streams_like_offline(fe, signal(), sizes)


@pytest.mark.parametrize("sizes", [[1] * 320, [7] * 45 + [5], [0, 16, 0, 304], [17, 303]])
def test_streams_like_offline_fixed_chunkings(sizes: list[int]) -> None:
    assert_streams_like_offline(TebFrontEnd(), signal(), sizes)


def test_causal() -> None:
    fe = TebFrontEnd(SMALL)
    for t in (50, 161, 200):
        assert_causal(fe, torch.nan_to_num(signal()), t)


def test_missing_samples_are_held() -> None:
    fe = TebFrontEnd(SMALL)
    x = signal()
    held = x.clone()
    held[0, 40:75, 0] = x[0, 39, 0]  # hold-last imputation by hand
    held[1, 0:20, 1] = 0.0  # before the first observation: the normalised centre
    a, b = fe(x), fe(held)
    cfg = fe.config

    # identical everywhere but in the missing-fraction channels
    keep = [c for c in range(a.shape[-1]) if c % cfg.per_signal != 2]
    torch.testing.assert_close(a[..., keep], b[..., keep])
    assert a[0, 2:5, 2].max() > 0.5 and float(b[..., 2].abs().sum()) == 0  # missing fraction


def test_band_selectivity() -> None:
    cfg = FrontEndConfig()
    fe = TebFrontEnd(cfg)
    t = torch.arange(4800) / cfg.sample_rate
    for j, f in enumerate(cfg.centres()):
        x = torch.zeros(1, 4800, 2)
        x[0, :, 0] = torch.sin(2 * torch.pi * f * t) * 0.5
        mod = fe(x)[0, 150:, 3:3 + cfg.n_filters].mean(0)  # steady-state moduli of the FHR
        assert int(mod.argmax()) == j
        assert abs(float(mod[j]) - 0.5 / 2) < 0.06  # unit gain at the centre (|z| = A / 2)


def test_wavelets_have_no_dc_and_unit_gain() -> None:
    cfg = FrontEndConfig()
    h = wavelet_bank(cfg)
    n = np.arange(cfg.max_taps)
    assert np.abs(h.sum(axis=1)).max() < 1e-9
    for j, f in enumerate(cfg.centres()):
        gain = abs((h[j] * np.exp(-2j * np.pi * f * n / cfg.sample_rate)).sum())
        assert abs(gain - 1) < 1e-9


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        TebFrontEnd(FrontEndConfig(n_filters=1))
    with pytest.raises(ConfigError):
        TebFrontEnd(FrontEndConfig(f_max=3.0))
