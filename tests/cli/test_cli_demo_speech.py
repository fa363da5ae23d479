"""``sigstream demo`` with a 48 kHz speech enhancer: the shipped real speech in the shipped
real noise at 5 dB SNR, scored against the clean speech delayed by the model's latency.

The models are checkpoints of ``SpeechEnhancer()`` saved in tmp_path (``--model PATH``),
which stand for ``enhancer`` until its trained weights ship.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _support.cli import sigstream as sig

from sigstream.cli.commands.demo import demo_clips, si_sdr_db
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.enhancer.speech import SpeechEnhancer
from sigstream.models.metrics import snr_db

RATE = 48000
LATENCY = 479


def _save(model: SpeechEnhancer, path: Path) -> Path:
    save_checkpoint(str(path), "enhancer", model.config, model)
    return path


@pytest.fixture(scope="module")
def speech_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return _save(SpeechEnhancer().eval(), tmp_path_factory.mktemp("demo") / "speech.pt")


@pytest.fixture(scope="module")
def unit_gain_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A speech enhancer with unit gains and no deep filtering: its output is its input
    delayed by exactly the latency (479 samples)."""
    torch.manual_seed(0)
    m = SpeechEnhancer().eval()
    with torch.no_grad():
        m.gain_head.weight.zero_()
        m.gain_head.bias.fill_(60.0)
        m.df_head.weight.zero_()
        m.df_head.bias.zero_()
    return _save(m, tmp_path_factory.mktemp("demo") / "unit.pt")


def shipped() -> tuple[np.ndarray, np.ndarray]:
    speech_path, noise_path = demo_clips()
    speech, r1 = sf.read(speech_path, dtype="float32")
    noise, r2 = sf.read(noise_path, dtype="float32")
    assert r1 == r2 == RATE
    return speech, noise


def test_the_shipped_clips() -> None:
    """48 kHz mono 16-bit WAV, speech about 7.5 s and noise 8 s, each under 1 MB, and
    their credits beside them."""
    for path, seconds in zip(demo_clips(), (7.47, 8.0), strict=True):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16"), info
        assert info.duration == pytest.approx(seconds, abs=0.01)
        assert Path(path).stat().st_size < 1_000_000
    speech, noise = shipped()
    assert 0.4 < np.abs(speech).max() <= 0.5 and 0.4 < np.abs(noise).max() <= 0.5
    # speech with pauses: the quietest 10 ms frames are silent, the loudest are not
    frames = np.sqrt(np.mean(speech[: speech.size // 480 * 480].reshape(-1, 480) ** 2, 1))
    assert frames.min() == 0.0 and frames.max() > 0.05
    credits = (Path(demo_clips()[0]).parent / "CREDITS.md").read_text()
    for fragment in ("ktuberling-data", "4:22.12.3-1", "extremetuxracer-data", "0.8.2-1",
                     "GPL-2+", "mud_slide.wav", "grass_slide.wav"):
        assert fragment in credits


def test_demo_48k_uses_the_shipped_speech(tmp_path: Path, speech_ckpt: Path) -> None:
    """9 s (longer than the clip: it loops): the clean reference is the shipped clip,
    sample for sample; the input adds the shipped noise at 5 dB SNR; the output is the
    model's offline processing of the input; the printed SNR and SI-SDR compare output
    ``t`` with clean ``t - 479``."""
    out = tmp_path / "d.npz"
    p = sig("demo", "--model", str(speech_ckpt), "--seconds", "9", "--no-realtime", "--out",
            str(out))
    assert p.returncode == 0, p.stderr
    d = np.load(out)
    n = 9 * RATE
    assert d["input"].shape == d["output"].shape == d["clean"].shape == (n, 1)
    assert float(d["sample_rate"]) == RATE and int(d["latency"]) == LATENCY
    speech, noise = shipped()
    np.testing.assert_array_equal(d["clean"][:, 0], np.resize(speech, n))
    added = (d["input"][:, 0] - d["clean"][:, 0]).astype(np.float64)
    looped = np.resize(noise, n).astype(np.float64)
    gain = float(added @ looped / (looped @ looped))
    np.testing.assert_allclose(added, gain * looped, atol=1e-6)  # the shipped noise, scaled
    assert snr_db(d["clean"], d["input"]) == pytest.approx(5.0, abs=0.01)
    assert "real speech" in p.stderr and "block 240 " in p.stderr  # 5 ms blocks
    with torch.inference_mode():
        from sigstream.models.registry import build_model

        ref = build_model(str(speech_ckpt))(torch.from_numpy(d["input"])[None])[0].numpy()
    np.testing.assert_allclose(d["output"], ref, atol=1e-4)
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("SNR in"))
    m = re.match(r"SNR in (-?[\d.]+) dB -> out (-?[\d.]+) dB .*SI-SDR in (-?[\d.]+) dB -> out "
                 r"(-?[\d.]+) dB", line)
    assert m, line
    y, s = d["output"][LATENCY:], d["clean"][:-LATENCY]
    assert float(m.group(1)) == pytest.approx(5.0, abs=0.05)
    assert float(m.group(2)) == pytest.approx(snr_db(s, y), abs=0.05)
    assert float(m.group(3)) == pytest.approx(si_sdr_db(d["clean"], d["input"]), abs=0.05)
    assert float(m.group(4)) == pytest.approx(si_sdr_db(s, y), abs=0.05)
    assert f"{LATENCY} samples" in line


def test_demo_48k_scores_at_the_latency(tmp_path: Path, unit_gain_ckpt: Path) -> None:
    """A speech enhancer that only delays by its latency leaves the SNR where it was: the
    printed SNR out equals the SNR in (scored at any other delay it would be far lower)."""
    out = tmp_path / "u.npz"
    p = sig("demo", "--model", str(unit_gain_ckpt), "--seconds", "2", "--no-realtime",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("SNR in"))
    m = re.match(r"SNR in (-?[\d.]+) dB -> out (-?[\d.]+) dB .*SI-SDR in (-?[\d.]+) dB -> out "
                 r"(-?[\d.]+) dB", line)
    assert m, line
    s_in, s_out, sdr_in, sdr_out = map(float, m.groups())
    assert s_out == pytest.approx(s_in, abs=0.1) and sdr_out == pytest.approx(sdr_in, abs=0.1)
    d = np.load(out)
    np.testing.assert_allclose(d["output"][LATENCY:], d["input"][:-LATENCY], atol=1e-5)
    assert snr_db(d["clean"][: -LATENCY], d["output"][LATENCY:]) > s_out - 0.1
    assert snr_db(d["clean"], d["output"]) < s_in - 5  # unaligned it would look bad


def test_demo_keeps_the_sines_for_other_models(tmp_path: Path) -> None:
    out = tmp_path / "b.npz"
    p = sig("demo", "--model", "butterworth", "--seconds", "2", "--no-realtime", "--out",
            str(out))
    assert p.returncode == 0, p.stderr
    d = np.load(out)
    assert float(d["sample_rate"]) == 1000.0 and d["clean"].shape == (2000, 1)
    assert "group delay" in p.stderr and "block 32 " in p.stderr
