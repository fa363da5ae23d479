"""``teb`` in the registry: raw CTG in, clinical forecasts out, any chunking, any reset point,
every backend, bad input.

B: batch (streams), T: raw samples (4 Hz), L: steps of 16 samples, H: horizon (480).

Parity is measured in the model's normalised units (FHR / 20 bpm): the raw rows of
:class:`TebStreamer` (z, mean, variance) and the registry model's bpm outputs divided by 20.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

from sigstream.core import state as st
from sigstream.export.backends import on_backend
from sigstream.models.registry import build_model
from sigstream.models.teb.data import FHR_SCALE, CtgStream
from sigstream.models.teb.stream import TebForecaster
from sigstream.models.teb.train import load_teb, shipped_weights
from sigstream.stream.runner import StreamRunner

T = 420  # 26 steps and a partial group


def ctg(seed: int, batch: int = 2, frames: int = T) -> np.ndarray:
    """(B, T, 2) synthetic CTG in bpm / mmHg with sensor loss (NaN or zeros)."""
    return np.stack([CtgStream(seed + b).read(frames)[0] for b in range(batch)])


@pytest.fixture(scope="module")
def teb() -> TebForecaster:
    return build_model("teb")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def backends(teb: TebForecaster) -> dict:
    """The registry model on every backend (exports traced once per module)."""
    return {"torch": teb, "torchscript": on_backend(teb, "torchscript", name="teb"),
            "onnx": on_backend(teb, "onnx", name="teb")}


def offline(model, x: np.ndarray) -> np.ndarray:  # noqa: ANN001
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def streamed(runner: StreamRunner, x: np.ndarray, cuts: list[int], reset: dict[int, int]
             ) -> list[np.ndarray]:
    """Step all streams of ``x`` (B, T, C) through ``runner`` cut at ``cuts``; before the
    chunk that starts at sample p, reset the streams ``reset`` maps p to. Returns each
    stream's rows (its own count, NaN padding dropped)."""
    outs: list[list[np.ndarray]] = [[] for _ in range(x.shape[0])]
    bounds = [0, *sorted(set(cuts) | set(reset)), x.shape[1]]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if a in reset:
            runner.reset([reset[a]])
        if b <= a:
            continue
        y = runner.step(np.ascontiguousarray(x[:, a:b]))
        for s, part in enumerate(runner.split(y)):
            outs[s].append(part)
    return [np.concatenate(o) for o in outs]


def expected(model, x: np.ndarray, reset_stream: int, at: int) -> list[np.ndarray]:  # noqa: ANN001
    """Offline rows of each stream; the reset stream restarts at sample ``at``."""
    out = []
    for s in range(x.shape[0]):
        if s == reset_stream:
            out.append(np.concatenate([offline(model, x[s:s + 1, :at])[0],
                                       offline(model, x[s:s + 1, at:])[0]]))
        else:
            out.append(offline(model, x[s:s + 1])[0])
    return out


def assert_rows_close(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(want), rtol=0, atol=atol)


# -- the registry entry ------------------------------------------------------------------------
def test_registry_entry_follows_the_contract(teb: TebForecaster) -> None:
    assert (teb.hop, teb.latency, teb.decimation, teb.sample_rate) == (1, 0, 16, 4.0)
    assert teb.in_channels == 2 and teb.out_channels == 960
    x = torch.from_numpy(ctg(0, 1, 160))
    with torch.inference_mode():
        y = teb(x)
    assert y.shape == (1, 10, 960)
    mean, logvar = y[0, :, :480], y[0, :, 480:]
    assert 80 < float(mean.median()) < 200  # bpm
    assert bool(torch.isfinite(logvar).all())
    small = build_model("teb:every=8")
    assert small.out_channels == 120
    with torch.inference_mode():
        torch.testing.assert_close(small(x), torch.cat([y[..., :480:8], y[..., 480::8]], -1))


def test_shipped_small_preset_is_the_trained_streamer(teb: TebForecaster) -> None:
    """The registry model is the shipped streamer with units: its bpm forecasts are the
    streamer's normalised ones times 20 plus 140."""
    from sigstream.models.teb.data import normalise

    ref = load_teb(shipped_weights("small"))
    x = ctg(3, 1, 320)
    xn = np.stack(normalise(x[..., 0], x[..., 1]), -1)  # NaN and zeros -> missing
    rows = offline(ref, xn.astype(np.float32))
    _, mean, var = ref.split_rows(torch.from_numpy(rows))
    y = offline(teb, x)
    np.testing.assert_allclose(y[..., :480], mean.numpy() * 20 + 140, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(y[..., 480:], np.log(var.numpy()) + 2 * np.log(20.0),
                               rtol=1e-5, atol=1e-5)


# -- streamed equals offline, any chunking, any reset point ------------------------------------
CUTS = hs.lists(hs.integers(1, T - 1), max_size=25)
# 15 examples (not the suite's 30): one example streams a sizeable VAE through up to 26
# chunks and costs ~0.3 s, and these four tests took 38 s of CI at 30
FEWER = settings(max_examples=15)


@functools.lru_cache(maxsize=1)
def _shipped_streamer() -> torch.nn.Module:
    """Loaded once for every hypothesis example (the model keeps no stream state)."""
    return load_teb(shipped_weights("small"))


@FEWER
@given(cuts=CUTS, at=hs.integers(1, T - 1), stream=hs.integers(0, 1))
def test_streamer_any_chunking_and_reset_torch(cuts: list[int], at: int, stream: int) -> None:
    """The raw rows (normalised units) of a batched runner over the TEB streamer, one
    stream reset at any sample: equal to offline to 1e-5."""
    m = _shipped_streamer()
    from sigstream.models.teb.data import normalise

    raw = ctg(1)
    x = np.stack(normalise(raw[..., 0], raw[..., 1]), -1)
    got = streamed(StreamRunner(m, 2), x, cuts, {at: stream})
    for g, w in zip(got, expected(m, x, stream, at), strict=True):
        assert_rows_close(g, w, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "torchscript", "onnx"])
@FEWER
@given(cuts=CUTS, at=hs.integers(1, T - 1), stream=hs.integers(0, 1))
def test_registry_model_any_chunking_and_reset_every_backend(
        backends: dict, backend: str, cuts: list[int], at: int, stream: int) -> None:
    """bpm outputs / 20: torch to 1e-5, TorchScript and ONNX Runtime to 1e-4 of offline
    eager, NaN (no forecast, padding dropped) exactly where offline has NaN."""
    x = ctg(2)
    x[0, 40:120, 0] = np.nan  # a long FHR dropout
    got = streamed(StreamRunner(backends[backend], 2), x, cuts, {at: stream})
    atol = 1e-5 if backend == "torch" else 1e-4
    for g, w in zip(got, expected(backends["torch"], x, stream, at), strict=True):
        assert_rows_close(g / FHR_SCALE, w / FHR_SCALE, atol=atol)


def test_streams_at_other_phases_get_padding_rows(backends: dict) -> None:
    """A stream reset 5 samples into a group completes one step fewer than the others
    in a 20-sample chunk: its last row is NaN padding and the runner says so."""
    for model in backends.values():
        r = StreamRunner(model, 2)
        x = ctg(4)
        r.step(x[:, :5])
        r.reset([1])
        assert r.phase.tolist() == [5, 0]
        y = r.step(x[:, 5:20])  # stream 0 completes a step at sample 16, stream 1 does not
        assert y.shape == (2, 1, 960) and r.counts.tolist() == [1, 0]
        assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()
        assert [p.shape[0] for p in r.split(y)] == [1, 0]


def test_empty_and_short_chunks(teb: TebForecaster) -> None:
    s = teb.init_state(2)
    with torch.inference_mode():
        y, s2 = teb.step(torch.zeros(2, 0, 2), s)
    assert y.shape == (2, 0, 960)
    for a, b in zip(st.leaves(s), st.leaves(s2), strict=True):
        torch.testing.assert_close(a, b)
    with torch.inference_mode():
        y = teb(torch.from_numpy(ctg(0, 1, 10)))  # shorter than one step
    assert y.shape == (1, 0, 960)


# -- bad input ------------------------------------------------------------------------------
def test_all_missing_record_gives_nan_rows_only(teb: TebForecaster) -> None:
    x = np.full((1, 200, 2), np.nan, np.float32)
    assert np.isnan(offline(teb, x)).all()
    x[0, :, 1] = 30.0  # UP alone: still nothing to forecast FHR from
    assert np.isnan(offline(teb, x)).all()


def test_rows_before_the_first_fhr_sample_are_nan(teb: TebForecaster) -> None:
    x = ctg(5, 1, 160)
    x[0, :50, 0] = np.nan  # FHR starts at sample 50, inside step 3 (samples 48-63)
    y = offline(teb, x)
    assert np.isnan(y[0, :3]).all() and np.isfinite(y[0, 3:]).all()
    r = StreamRunner(teb, 1)  # streamed the same, sample by sample around the start
    rows = [r.step(x[:, i:i + 1])[0] for i in range(160)]
    got = np.concatenate(rows)
    assert_rows_close(got, y[0], atol=1e-3)


def test_out_of_range_values_count_as_missing(teb: TebForecaster) -> None:
    x = ctg(6, 1, 320)
    x[..., 0][x[..., 0] == 0] = np.nan
    x[..., 1][x[..., 1] == 0] = np.nan
    bad = x.copy()
    bad[0, 100:110, 0] = [0, 20, 300, np.inf, -np.inf, 49.9, 240.1, 1e9, -5, 0]
    bad[0, 200:205, 1] = [0, -1, 250, np.inf, 1e6]
    ref = x.copy()
    ref[0, 100:110, 0] = np.nan
    ref[0, 200:205, 1] = np.nan
    assert_rows_close(offline(teb, bad), offline(teb, ref), atol=0)


def test_other_rates_are_refused() -> None:
    from sigstream.core.errors import ConfigError

    with pytest.raises(ConfigError, match="4 Hz"):
        build_model("teb:sample_rate=8")
    with pytest.raises(ConfigError, match="every must be"):
        build_model("teb:every=0")


# -- serve -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_serve_replies_each_stream_its_own_rows_after_a_reset_off_the_grid(
        backends: dict, backend: str) -> None:
    """Two streams over ZeroMQ in chunks of 10 samples, NaN dropouts passed through;
    stream 1 is reset after 37 samples, so from then on the two are batched in one model
    call at different phases of the 16-sample grid. Each reply holds that stream's own
    completed steps, equal to offline."""
    from sigstream.stream.net.client import Client
    from sigstream.stream.net.server import Server

    x = ctg(8, 2, 200)
    x[1, 60:90, 0] = np.nan
    sizes = {0: 10, 1: 10}
    with Server(backends[backend], "tcp://127.0.0.1:*") as srv, \
            Client(srv.endpoint, channels=2, sample_rate=4.0) as c:
        got: dict[int, list[np.ndarray]] = {0: [], 1: []}
        pos = {0: 0, 1: 0}
        first = {0: True, 1: True}
        while min(pos.values()) < 200:
            sent = 0
            for s in (0, 1):
                if pos[s] >= 200:
                    continue
                n = min(sizes[s], 200 - pos[s])
                if s == 1 and pos[s] < 37 < pos[s] + n:
                    n = 37 - pos[s]  # the chunk ends at 37; the next one resets
                c.send(x[s, pos[s]:pos[s] + n], start=first[s], reset=(s == 1 and pos[s] == 37),
                       stream_id=s)
                first[s] = False
                pos[s] += n
                sent += 1
            for _ in range(sent):  # both chunks in flight: the server may batch them
                assert c.poll(10_000), "no reply within 10 s"
                h, y = c.recv()
                assert not h.is_error, y
                got[h.stream_id].append(y.reshape(-1, 960))
        stats = c.request_stats()
    assert stats["batch_size"]["mean"] > 1  # the streams were stepped together
    want = expected(backends["torch"], x, 1, 37)
    for s in (0, 1):
        atol = 1e-5 if backend == "torch" else 1e-4
        assert_rows_close(np.concatenate(got[s]) / FHR_SCALE, want[s] / FHR_SCALE, atol=atol)


@pytest.mark.parametrize("t", [1, 16, 37, 200])
def test_causal(teb: TebForecaster, t: int) -> None:
    """Changing the input from sample t on changes no row that ends before t, for the
    registry model (raw units) and the streamer (normalised units)."""
    from sigstream.core.testing import assert_causal

    x = torch.from_numpy(ctg(9, 1, 320))
    x[0, :, 0] = torch.nan_to_num(x[0, :, 0], nan=140.0).clamp(min=100)  # no NaN rows
    assert_causal(teb, x, t)
    assert_causal(load_teb(shipped_weights("small")), torch.randn(2, 320, 2), t)
