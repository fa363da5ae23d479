"""``sigstream eval enhancer`` (sigstream.models.enhancer.evaluate and .plots) on a few tiny
synthetic mixtures: the corpus modules are replaced by fakes, so these tests need no corpus."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from sigstream.models.enhancer import evaluate as ev
from sigstream.models.enhancer import quality as q
from sigstream.models.enhancer.data import noise, tone_clip

RATE = 48000


@dataclass
class Mix:
    """What sigstream.models.enhancer.noises.Mixture holds."""

    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    kind: str
    talker: str
    noise_source: str


def mixtures(snrs=(0.0, 10.0), kinds=("white",), per_condition=1, seconds=1.0, seed=0,
             split="test") -> list[Mix]:
    """Speech-like clips (harmonic tones with formants and syllable envelopes) in white or
    pink noise at exactly ``snr_db``; ``real`` and ``babble`` are pink here."""
    rng = np.random.default_rng(seed + (0 if split == "test" else 1000))
    out = []
    for snr in snrs:
        for kind in kinds:
            for i in range(per_condition):
                x = tone_clip(rng, int(seconds * RATE), RATE)
                x = 0.05 * x / np.sqrt(np.mean(x**2))
                n = noise("white" if kind == "white" else "pink", rng, x.size, RATE)
                n *= np.sqrt(np.mean(x**2) / np.mean(n**2)) * 10 ** (-snr / 20)
                out.append(Mix(x.astype(np.float32), (x + n).astype(np.float32), float(snr),
                               kind, f"{split}-talker{i}", f"{kind}-{i}"))
    return out


@pytest.fixture
def fake_corpus(monkeypatch):
    """sigstream.models.enhancer.corpus / .noises replaced; returns the calls made."""
    calls: dict[str, list] = {"load_corpus": [], "test_mixtures": []}
    corpus = types.ModuleType("sigstream.models.enhancer.corpus")
    noises = types.ModuleType("sigstream.models.enhancer.noises")

    def load_corpus(root=None):
        calls["load_corpus"].append(root)
        return types.SimpleNamespace(root=root or "/fake/corpus")

    def test_mixtures(c, **kw):
        calls["test_mixtures"].append(kw)
        return mixtures(**kw)

    corpus.load_corpus, noises.test_mixtures, noises.Mixture = load_corpus, test_mixtures, Mix
    monkeypatch.setitem(sys.modules, "sigstream.models.enhancer.corpus", corpus)
    monkeypatch.setitem(sys.modules, "sigstream.models.enhancer.noises", noises)
    return calls


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A small, untrained 48 kHz speech enhancer saved as an ``enhancer`` checkpoint."""
    from sigstream.models.checkpoint import save_checkpoint
    from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer

    cfg = dataclasses.replace(SpeechConfig(), hidden=16, layers=1, bands=8, df_bins=16)
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    save_checkpoint(path, "enhancer", cfg, SpeechEnhancer(cfg).eval())
    return path


class Delay:
    """A duck-typed enhancer that only delays: y[t] = x[t - latency]."""

    hop, decimation, in_channels, out_channels = 1, 1, 1, 1

    def __init__(self, latency: int, rate: float = RATE) -> None:
        self.latency, self.sample_rate = latency, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, 0, self.latency, 0))[:, :x.shape[1]]


# -- the pieces -----------------------------------------------------------------------------
def test_model_output_is_advanced_by_its_latency() -> None:
    x = np.stack([m.noisy for m in mixtures()]).astype(np.float64)
    method = ev.model_method(Delay(479))
    assert np.allclose(method.fn(x), x, atol=1e-6)  # exact: the whole delay is removed
    assert method.delay == 479 and method.note == ""


def test_a_model_at_another_rate_is_resampled_and_says_so() -> None:
    m = mixtures(snrs=(20.0,))[0]
    method = ev.model_method(Delay(160, rate=16000.0))
    y = method.fn(m.clean[None].astype(np.float64))[0]
    assert y.shape == m.clean.shape
    assert q.si_sdr(m.clean, y) > 15  # band-limited to 8 kHz, but aligned
    assert "16 kHz" in method.note and "resampled" in method.note
    assert method.describe()["setting"]["latency_ms"] == pytest.approx(10.0)


def test_baselines_are_tuned_and_aligned() -> None:
    methods = {m.key: m for m in ev.tune_baselines(mixtures(seed=3))}
    assert set(methods) == {"butterworth", "wiener"}
    bw = methods["butterworth"]
    assert bw.causal and not methods["wiener"].causal
    assert bw.setting["cutoff_hz"] in ev._BUTTER_CUTOFFS
    assert bw.delay == ev._group_delay(
        __import__("sigstream.models.baselines.enhance", fromlist=["x"]).ButterworthBaseline(
            cutoff_hz=bw.setting["cutoff_hz"], drift_hz=bw.setting["drift_hz"]).sos(RATE),
        RATE) > 0
    untuned = {m.key: m for m in ev.tune_baselines(())}
    assert "not tuned" in untuned["butterworth"].note


def test_evaluate_scores_every_method_and_counts_wins() -> None:
    mixes = mixtures(snrs=(0.0, 10.0), kinds=("white", "real"))
    res, example = ev.evaluate(mixes, [ev.model_method(Delay(0))], rtf=False,
                               log=lambda s: None)
    keys = ["noisy", "model", "rnnoise", "butterworth", "wiener", "spectral_offline"]
    assert list(res["methods"]) == keys
    assert res["metrics"] == ["si_sdr", "si_sdri", "pesq_wb", "stoi", "estoi"]
    assert res["missing"] == {} and len(res["per_mixture"]) == 4
    over = res["overall"]["methods"]
    # the "model" here is the identity: it is the noisy input, so it never beats RNNoise
    assert over["model"] == pytest.approx(over["noisy"])
    assert over["noisy"]["si_sdri"] == 0.0
    at_0db = res["per_snr"]["0"]["methods"]  # synthetic voices: RNNoise judged at 0 dB only
    assert at_0db["rnnoise"]["si_sdri"] > 3 and at_0db["spectral_offline"]["si_sdri"] > 5
    first = res["per_mixture"][0]
    assert first["metrics"]["noisy"]["si_sdr"] == pytest.approx(first["snr_db"], abs=0.1)
    assert set(res["per_snr"]) == {"0", "10"} and set(res["per_kind"]) == {"white", "real"}
    assert res["per_snr"]["0"]["mixtures"] == 2
    # one mixture per condition: a condition is won when that mixture is
    won = [r["metrics"]["model"]["si_sdr"] > r["metrics"]["rnnoise"]["si_sdr"]
           for r in res["per_mixture"]]
    wins = res["model_vs_rnnoise"]["model"]
    assert wins["conditions"] == wins["mixtures"] == 4
    assert wins["conditions_won"] == wins["mixtures_won"] == sum(won)
    assert not any(w for w, r in zip(won, res["per_mixture"], strict=True)
                   if r["snr_db"] == 0)  # at 0 dB RNNoise beats doing nothing
    assert example["kind"] == "real" and example["snr_db"] == 0.0  # real noise, nearest 5 dB
    assert set(example["outputs"]) == set(keys) - {"noisy"}
    json.dumps(res, allow_nan=False)
    text = ev.table(res)
    for title in ("SI-SDR (dB)", "PESQ-WB", "STOI", "ESTOI", "by noise kind"):
        assert title in text
    assert f"beats RNNoise in SI-SDR in {sum(won)}/4 SNR x noise conditions" in text


def test_a_missing_metric_package_is_named_and_the_rest_still_runs(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pesq", None)
    res, _ = ev.evaluate(mixtures(snrs=(5.0,)), [ev.model_method(Delay(0))], rtf=False,
                         log=lambda s: None)
    assert "pesq_wb" not in res["metrics"] and {"stoi", "estoi", "si_sdr"} <= set(
        res["metrics"])
    assert res["missing"] == {"pesq_wb": "PESQ-WB needs the pesq package: pip install "
                                         "'sigstream[eval]'"}
    assert "pesq_wb" not in res["overall"]["methods"]["rnnoise"]
    text = ev.table(res)
    assert "PESQ-WB (MOS" not in text
    assert "missing: PESQ-WB needs the pesq package: pip install 'sigstream[eval]'" in text


@pytest.mark.parametrize("onnx", [False, True])
def test_measure_rtf(tiny_checkpoint, onnx: bool) -> None:
    from sigstream.export.backends import on_backend
    from sigstream.models.registry import load_checkpoint

    model = load_checkpoint(tiny_checkpoint)
    r = (ev.measure_rtf(model, on_backend(model, "onnx", name="tiny", threads=1),
                        seconds=0.2, label="onnxruntime") if onnx
         else ev.measure_rtf(model, seconds=0.2))
    assert r["backend"] == ("onnxruntime" if onnx else "torch (eager)")
    assert r["chunk_samples"] == 480
    assert r["chunks"] == 20 and r["threads"] == 1 and 0 < r["rtf"] < 1


def test_config_validation() -> None:
    from sigstream.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--per-condition must be >= 1"):
        ev.CausalEvalConfig(per_condition=0).validate()
    with pytest.raises(ConfigError, match="--snrs needs"):
        ev.CausalEvalConfig(snrs=()).validate()
    with pytest.raises(ConfigError, match="--atten-lims takes dB values"):
        ev.CausalEvalConfig(atten_lims=(12.0, 0.0)).validate()


# -- end to end, through the command line ---------------------------------------------------
def test_cli_eval_writes_json_table_and_figures(fake_corpus, tiny_checkpoint, tmp_path,
                                                capsys) -> None:
    from sigstream.cli.main import main

    js, figs = tmp_path / "r.json", tmp_path / "figs"
    code = main(["eval", "enhancer", "--arch", "speech", "--checkpoint", tiny_checkpoint,
                 "--data", "/my/corpus", "--per-condition", "1", "--clip-seconds", "0.75", "--seed",
                 "4", "--snrs", "0,10", "--kinds", "white", "--json", str(js), "--figures",
                 str(figs)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert fake_corpus["load_corpus"] == ["/my/corpus"]
    test_call, tuning_call = fake_corpus["test_mixtures"]
    assert test_call == {"snrs": (0.0, 10.0), "kinds": ("white",), "per_condition": 1,
                         "seconds": 0.75, "seed": 4, "split": "test"}
    assert tuning_call["split"] == "val" and tuning_call["seed"] != 4
    res = json.loads(js.read_text())
    assert res["data"]["mixtures"] == 2 and res["data"]["corpus"] == "/my/corpus"
    assert res["methods"]["model"]["setting"]["latency_samples"] == 479
    assert res["methods"]["rnnoise"]["delay_samples"] == 960
    for key in ("model", "rnnoise"):
        assert 0 < res["rtf"][key]["rtf"] < 1 and res["rtf"][key]["chunk_samples"] == 480
    assert res["rtf"]["model"]["backend"] == "torch (eager)"
    names = sorted(p.name for p in figs.iterdir())
    assert names == ["enhancer_estoi.png", "enhancer_pesq_wb.png", "enhancer_si_sdri.png",
                     "enhancer_spectrograms.png", "enhancer_stoi.png"]
    assert all((figs / n).stat().st_size > 10_000 for n in names)
    assert "SI-SDR improvement over the noisy input (dB)" in out.out
    assert "0 dB" in out.out and "10 dB" in out.out and "real-time factor" in out.out
    assert "2/2 mixtures" in out.err  # progress on stderr


def test_cli_no_rtf(fake_corpus, tiny_checkpoint, tmp_path) -> None:
    from sigstream.cli.main import main

    js = tmp_path / "r.json"
    assert main(["eval", "enhancer", "--arch", "speech", "--checkpoint", tiny_checkpoint,
                 "--per-condition", "1", "--clip-seconds", "0.75", "--snrs", "5", "--kinds", "pink",
                 "--no-rtf", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert "rtf" not in res and res["data"]["kinds"] == ["pink"]
    assert fake_corpus["load_corpus"] == [None]


def test_cli_atten_lims_score_the_same_weights_with_each_limit(fake_corpus, tiny_checkpoint,
                                                               tmp_path) -> None:
    from sigstream.cli.main import main

    js = tmp_path / "r.json"
    assert main(["eval", "enhancer", "--checkpoint", tiny_checkpoint, "--per-condition", "1",
                 "--clip-seconds", "0.75", "--snrs", "5", "--kinds", "white", "--no-rtf",
                 "--atten-lims", "6,20", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert {"model", "model@6dB", "model@20dB"} <= set(res["methods"])
    assert res["methods"]["model@6dB"]["label"].endswith("atten. limit 6 dB")
    sdr = {k: res["overall"]["methods"][k]["si_sdr"] for k in ("noisy", "model", "model@6dB")}
    # an untrained model near the identity: a 6 dB limit moves it toward the input
    assert abs(sdr["model@6dB"] - sdr["noisy"]) <= abs(sdr["model"] - sdr["noisy"]) + 1e-6
    assert set(res["model_vs_rnnoise"]) >= {"model", "model@6dB", "model@20dB"}
