"""The 48 kHz speech enhancer on bad input, on every backend (torch, TorchScript, ONNX).

Fed as the product feeds it: chunks through a :class:`StreamRunner` (what a pipeline
stage holds), numpy float32 in and out. The model is ``SpeechEnhancer()`` with its
seeded random initial weights (gains near 1, little deep filtering) until trained
weights ship; what is tested does not depend on training, except the DC level, which is
measured against the model's own gain for the lowest band.

Measured behaviour (the same on all three backends):

* silence in -> exactly 0.0 out (every path multiplies the input spectrum);
* full-scale square waves (clipped input) -> finite, no louder than the input (peak
  0.98 for 440 Hz);
* DC offset: passes, it is not removed (no DC blocker in the model): a constant ``c``
  comes out, after the latency, as ``c`` times the gain of the lowest (0-50 Hz) band,
  0.982 with the initial weights; with unit gains exactly ``c``;
* 1-sample chunks equal the offline forward;
* NaN / +-Inf samples are taken as 0: every output stays finite and equals, sample for
  sample, a run where those samples were zeros, so the state is clean after the chunk;
* a 44.1 kHz WAV through ``sigstream run``: one error line (exit 2) naming both rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _support.cli import sigstream as sig

from sigstream.export.backends import on_backend
from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer
from sigstream.stream.runner import StreamRunner

RATE = 48000
BACKENDS = ("torch", "torchscript", "onnx")


def _model() -> SpeechEnhancer:
    torch.manual_seed(0)
    return SpeechEnhancer(SpeechConfig()).eval()


@pytest.fixture(scope="module")
def model() -> SpeechEnhancer:
    return _model()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, model: SpeechEnhancer):
    """(name, runnable): the model itself, or its export loaded back (exported once)."""
    return request.param, on_backend(model, request.param, name="enhancer", threads=1)


def stream(runnable, x: np.ndarray, chunks: list[int] | int = 256,
           runner: StreamRunner | None = None) -> np.ndarray:
    """(T,) -> (T,): ``x`` in chunks (a list cycles) through one stream of a runner."""
    runner = runner or StreamRunner(runnable, batch=1, validate=False)
    sizes = chunks if isinstance(chunks, list) else [chunks]
    out, pos, i = [], 0, 0
    while pos < x.size:
        c = sizes[i % len(sizes)]
        y = runner.step(np.ascontiguousarray(x[None, pos:pos + c, None], dtype=np.float32))
        out.append(y[0, :, 0])
        pos, i = pos + c, i + 1
    return np.concatenate(out)


def offline(model: SpeechEnhancer, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x.astype(np.float32))[None, :, None])[0, :, 0].numpy()


def noise(n: int, seed: int = 1, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_silence_in_is_exact_silence_out(backend) -> None:
    name, runnable = backend
    y = stream(runnable, np.zeros(RATE // 2, np.float32), [256, 1, 479, 7])
    assert y.shape == (RATE // 2,)
    assert np.isfinite(y).all(), name
    assert np.abs(y).max() == 0.0, (name, np.abs(y).max())


@pytest.mark.parametrize("freq", [50.0, 440.0, 7000.0, RATE / 2])
def test_full_scale_square_waves_give_finite_bounded_output(backend, freq: float) -> None:
    """Clipped input: +-1 square waves (at Nyquist: +1, -1, +1, ...). The output is
    finite and no louder than the input (unit RMS, peak 1), with a little room for the
    window edges."""
    name, runnable = backend
    n = RATE // 2
    x = np.where(np.sin(2 * np.pi * freq * (np.arange(n) + 0.25) / RATE) >= 0, 1.0, -1.0)
    y = stream(runnable, x.astype(np.float32))
    assert np.isfinite(y).all(), name
    steady = y[RATE // 10:]
    assert np.abs(y).max() <= 1.1, (name, freq, np.abs(y).max())
    assert np.sqrt(np.mean(steady**2)) <= 1.0, (name, freq)
    assert np.sqrt(np.mean(steady**2)) > 0.1  # not muted either (gains near 1 untrained)


def _lowest_band_gain(model: SpeechEnhancer, x: np.ndarray) -> float:
    """The model's gain for bin 0 on the last frame of ``x`` plus its deep-filter
    coefficients' real parts for bin 0 (a constant input has the same spectrum every
    frame, so bin 0 is scaled by G_0 + sum_o C_{o,0})."""
    with torch.inference_mode():
        m = model.m
        s = x.size // m
        xp = torch.nn.functional.pad(torch.from_numpy(x)[None], (model.n - 1, 0))
        frames = xp[:, m - 1:].unfold(1, model.n, m)[:, :s]
        spec = model._spectra(frames)
        hs, _ = model._network(spec, spec.new_zeros(1, model.config.layers,
                                                    model.config.hidden))
        gain = (torch.sigmoid(model.gain_head(hs[:, -1])) @ model.band_w)[0, 0]
        coef = model.df_head(hs[:, -1]).reshape(model.order, 2, model.k)
        return float(gain + coef[:, 0, 0].sum())


@pytest.mark.parametrize("level", [0.5, -1.0])
def test_dc_offset_passes_scaled_by_the_lowest_band_gain(backend, model, level: float) -> None:
    name, runnable = backend
    x = np.full(RATE, level, np.float32)
    y = stream(runnable, x)
    assert np.isfinite(y).all(), name
    steady = y[RATE // 2:]
    # constant out: DC passes, it is not removed, not even slowly (no DC blocker)
    assert np.ptp(steady) < 1e-3 * abs(level), (name, np.ptp(steady))
    g = _lowest_band_gain(model, x)
    assert 0.9 < g <= 1.0  # the untrained gains: sigmoid(4) = 0.982
    np.testing.assert_allclose(steady.mean(), level * g, rtol=2e-3)
    # nothing comes out before the first frame's synthesis window
    assert np.abs(y[: model.m - 1]).max() == 0.0


def test_dc_passes_exactly_with_unit_gains() -> None:
    """The STFT path itself keeps DC: with unit gains and no deep filtering the output is
    the input delayed by the latency, DC included."""
    m = _model()
    with torch.no_grad():
        m.gain_head.weight.zero_()
        m.gain_head.bias.fill_(60.0)
        m.df_head.weight.zero_()
        m.df_head.bias.zero_()
    x = np.full(RATE // 4, 0.7, np.float32) + noise(RATE // 4, scale=0.01)
    for name in BACKENDS:
        y = stream(on_backend(m, name, name="enhancer"), x, 300)
        d = m.latency
        np.testing.assert_allclose(y[d:], x[:-d], atol=1e-5, err_msg=name)


def test_one_sample_chunks_equal_offline(backend, model) -> None:
    name, runnable = backend
    x = noise(3 * model.m + 17, seed=3)  # several frames, ends mid-hop
    ref = offline(model, x)
    y = stream(runnable, x, 1)
    np.testing.assert_allclose(y, ref, atol=1e-5, err_msg=name)
    # and a mix of odd chunk sizes, including 1 and sizes across frame ends
    y = stream(runnable, x, [1, 239, 1, 2, 481])
    np.testing.assert_allclose(y, ref, atol=1e-5, err_msg=name)


def _corrupt(x: np.ndarray, start: int, length: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(bad, zeroed): ``x`` with non-finite samples in [start, start + length), and ``x``
    with those same samples set to 0."""
    bad = x.copy()
    if kind == "all-nan":
        bad[start:start + length] = np.nan
    else:  # a few of each kind, scattered
        idx = start + np.arange(0, length, 37)
        bad[idx[0::3]] = np.nan
        bad[idx[1::3]] = np.inf
        bad[idx[2::3]] = -np.inf
    zeroed = np.where(np.isfinite(bad), bad, 0.0).astype(np.float32)
    return bad, zeroed


@pytest.mark.parametrize("kind", ["mixed", "all-nan"])
def test_non_finite_chunk_is_taken_as_zeros_and_the_state_recovers(backend, model,
                                                                   kind: str) -> None:
    name, runnable = backend
    chunk = 256
    x = noise(RATE // 2, seed=4)
    bad, zeroed = _corrupt(x, 20 * chunk, chunk, kind)  # exactly one bad chunk
    runner = StreamRunner(runnable, batch=1, validate=False)
    y_bad = stream(runnable, bad, chunk, runner)
    assert np.isfinite(y_bad).all(), name  # that chunk and every later one
    for leaf in runner.state:  # nothing non-finite was kept
        leaf = leaf.numpy() if isinstance(leaf, torch.Tensor) else np.asarray(leaf)
        assert np.isfinite(leaf).all(), name
    y_zero = stream(runnable, zeroed, chunk)
    # the same output as if those samples had been zeros, before, during and after the
    # bad chunk (and so also once the model's window has moved past it)
    np.testing.assert_allclose(y_bad, y_zero, atol=1e-6, err_msg=name)
    after = 21 * chunk + model.n + model.latency
    assert np.abs(y_bad[after:]).max() > 0.01  # the stream goes on: not muted after it
    # the zeros really change the output (the comparison has teeth)
    assert np.abs(y_zero - stream(runnable, x, chunk)).max() > 1e-3


def test_non_finite_one_sample_chunks(backend) -> None:
    """A single bad sample as its own 1-sample chunk, mid-frame."""
    name, runnable = backend
    x = noise(2000, seed=5)
    bad, zeroed = x.copy(), x.copy()
    bad[700], bad[701], zeroed[700], zeroed[701] = np.nan, np.inf, 0.0, 0.0
    chunks = [699, 1, 1, 1299]
    y_bad = stream(runnable, bad, chunks)
    assert np.isfinite(y_bad).all(), name
    np.testing.assert_allclose(y_bad, stream(runnable, zeroed, chunks), atol=1e-6,
                               err_msg=name)


# -- a sample rate the model cannot take ------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, model: SpeechEnhancer) -> Path:
    from sigstream.models.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "speech.pt"
    save_checkpoint(str(path), "enhancer", model.config, model)
    return path


def test_44k1_wav_is_one_error_line(checkpoint: Path, tmp_path: Path) -> None:
    """``sigstream run --model enhancer --source wav:44k.wav``: the pipeline refuses a
    source whose rate differs from the model's, before any sample is processed (the
    runner does not resample files); exit 2, one line naming both rates, no output file.
    The checkpoint stands for ``enhancer`` until its weights ship."""
    wav = tmp_path / "speech44k.wav"
    sf.write(wav, noise(44100), 44100, subtype="PCM_16")
    out = tmp_path / "y.npy"
    p = sig("run", "--model", str(checkpoint), "--source", f"wav:{wav}", "--sink",
            f"npy:{out}")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], p.stderr
    assert "Traceback" not in p.stderr and len(lines) == 1, p.stderr
    assert "44100 Hz" in errors[0] and "48000 Hz" in errors[0], errors[0]
    assert not out.exists()
    # the same file at 48 kHz runs
    sf.write(wav, noise(48000), 48000, subtype="PCM_16")
    p = sig("run", "--model", str(checkpoint), "--source", f"wav:{wav}", "--sink",
            f"npy:{out}", "--quiet")
    assert p.returncode == 0, p.stderr
    assert np.load(out).shape == (48000, 1)
