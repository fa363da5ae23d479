"""The 48 kHz speech enhancer: exact reconstruction, latency, streaming, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sigstream.core.errors import ConfigError
from sigstream.models.enhancer.speech import (
    SpeechConfig,
    SpeechEnhancer,
    erb_bands,
    low_delay_windows,
)

SMALL = SpeechConfig(hop=48, window=192, bands=12, df_bins=16, hidden=24)


def _perturbed(cfg: SpeechConfig = SMALL, seed: int = 0) -> SpeechEnhancer:
    torch.manual_seed(seed)
    m = SpeechEnhancer(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _identity(cfg: SpeechConfig) -> SpeechEnhancer:
    m = SpeechEnhancer(cfg).eval()
    with torch.no_grad():
        m.gain_head.weight.zero_()
        m.gain_head.bias.fill_(60.0)  # sigmoid = 1
        m.df_head.weight.zero_()
        m.df_head.bias.zero_()
    return m


@pytest.mark.parametrize(("window", "hop"), [(960, 240), (480, 240), (200, 40)])
def test_windows_reconstruct_exactly(window: int, hop: int) -> None:
    ana, syn = low_delay_windows(window, hop)
    prod = ana * syn
    assert np.all(prod[: window - 2 * hop] == 0)
    tail = prod[window - 2 * hop:]
    assert np.allclose(tail[:hop] + tail[hop:], 1.0)


def test_erb_bands_cover_every_bin_once() -> None:
    w = erb_bands(481, 48000, 32)
    assert w.shape == (32, 481)
    assert np.allclose(w.sum(0), 1.0)
    assert (w >= 0).all()
    assert (w.sum(1) > 0).all()  # no empty band


@pytest.mark.parametrize("cfg", [SpeechConfig(), SMALL,
                                 SpeechConfig(hop=40, window=80, bands=8, df_bins=8,
                                              hidden=16, layers=1, df_order=1)])
def test_unit_gains_delay_the_input_by_the_stated_latency(cfg: SpeechConfig) -> None:
    m = _identity(cfg)
    assert m.latency == 2 * cfg.hop - 1
    x = torch.randn(2, 8 * cfg.window, 1)
    y = m(x)
    d = m.latency
    torch.testing.assert_close(y[:, d:], x[:, :-d], atol=1e-5, rtol=0)
    assert y[:, :d].abs().max() < 1e-5


def test_latency_is_within_10_ms_at_48_khz() -> None:
    m = SpeechEnhancer()
    assert m.sample_rate == 48000
    assert m.latency / m.sample_rate <= 0.010


def test_output_is_causal() -> None:
    m = _perturbed()
    x = torch.randn(1, 2000, 1)
    y = m(x)
    x2 = x.clone()
    x2[:, 1200:] = torch.randn(1, 800, 1)
    y2 = m(x2)
    torch.testing.assert_close(y[:, :1200], y2[:, :1200], atol=1e-6, rtol=0)
    assert (y[:, 1200:] - y2[:, 1200:]).abs().max() > 1e-3


@pytest.mark.parametrize("chunks", [[1], [7, 48, 47, 200], [48], [500], [1, 0, 95]])
def test_streamed_equals_offline_for_any_chunking(chunks: list[int]) -> None:
    m = _perturbed()
    x = torch.randn(2, 1500, 1)
    with torch.no_grad():
        ref = m(x)
        state, outs, pos, i = m.init_state(2), [], 0, 0
        while pos < x.shape[1]:
            c = chunks[i % len(chunks)]
            y, state = m.step(x[:, pos:pos + c], state)
            outs.append(y)
            pos, i = pos + c, i + 1
    torch.testing.assert_close(torch.cat(outs, 1), ref, atol=1e-5, rtol=0)


def test_streams_at_different_phases_batch_together() -> None:
    m = _perturbed()
    x = torch.randn(3, 1200, 1)
    with torch.no_grad():
        ref = m(x)
        states = []
        for b, lead in enumerate((0, 5, 47)):
            _, s = m.step(x[b:b + 1, :lead], m.init_state(1))
            states.append(s)
        state = type(states[0])(*[torch.cat(parts) for parts in zip(*states, strict=True)])
        # each stream continues from its own position: feed aligned windows
        xs = torch.cat([x[b:b + 1, lead:lead + 600] for b, lead in enumerate((0, 5, 47))])
        y, _ = m.step(xs, state)
    for b, lead in enumerate((0, 5, 47)):
        torch.testing.assert_close(y[b], ref[b, lead:lead + 600], atol=1e-5, rtol=0)


def test_short_input_offline_is_silence_before_the_first_frame() -> None:
    m = _perturbed()
    x = torch.randn(1, SMALL.hop - 1, 1)
    assert torch.equal(m(x), torch.zeros_like(x))
    state = m.init_state(1)
    y, _ = m.step(x, state)
    assert torch.equal(y, torch.zeros_like(x))


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_exported_step_matches_eager(backend: str) -> None:
    from sigstream.export.backends import on_backend

    m = _perturbed()
    x = torch.randn(2, 900, 1)
    with torch.no_grad():
        ref = m(x).numpy()
    r = on_backend(m, backend, name="speech")
    state, outs, pos = r.init_state(2), [], 0
    for c in (5, 300, 1, 48, 546):
        y, state = r.step(x[:, pos:pos + c].numpy(), state)
        outs.append(np.asarray(y))
        pos += c
    np.testing.assert_allclose(np.concatenate(outs, 1), ref, atol=2e-5)


@pytest.mark.parametrize(("field", "value"), [("hop", 0), ("window", 90), ("window", 97),
                                              ("df_bins", 10_000), ("bands", 500),
                                              ("sample_rate", 0.0), ("atten_lim", -3.0),
                                              ("atten_lim", float("nan")),
                                              ("atten_lim", "12")])
def test_bad_config_is_refused(field: str, value: object) -> None:
    import dataclasses

    with pytest.raises(ConfigError):
        SpeechEnhancer(dataclasses.replace(SMALL, **{field: value}))


@pytest.mark.parametrize("db", [6.0, 20.0])
def test_attenuation_limit_keeps_the_delayed_input_at_that_level(db: float) -> None:
    import dataclasses

    m = _perturbed()
    lim = SpeechEnhancer(dataclasses.replace(SMALL, atten_lim=db)).eval()
    lim.load_state_dict(m.state_dict())
    x = torch.randn(2, 1000, 1)
    with torch.no_grad():
        y, y_lim = m(x), lim(x)
    d = m.latency
    delayed = torch.cat([torch.zeros(2, d, 1), x[:, :-d]], 1)
    g = 10 ** (-db / 20)
    torch.testing.assert_close(y_lim, (1 - g) * y + g * delayed, atol=1e-5, rtol=0)
    with torch.no_grad():  # and it streams like offline
        state, outs = lim.init_state(2), []
        for pos in range(0, 1000, 333):
            out, state = lim.step(x[:, pos:pos + 333], state)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), y_lim, atol=1e-5, rtol=0)


def test_attenuation_limit_is_a_stream_option_of_the_shipped_weights() -> None:
    from sigstream.models.registry import build_model

    m = build_model("enhancer:atten_lim=18")
    assert m.config.atten_lim == 18.0 and m.lim == pytest.approx(10 ** (-0.9))
