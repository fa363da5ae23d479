"""Training of the 48 kHz speech enhancer on the real speech and noise corpus.

N: clips, T: samples.

Data: the corpus built by ``sigstream data speech`` (:mod:`.corpus`): every update draws
``batch`` fresh mixtures of ``seconds`` from the training split (real talkers and
synthetic speech; real noise recordings plus synthetic white/pink/brown noise, babble of
other training talkers, hum, clicks and band-limited bursts; SNR uniform over
``snr_range``; random level) with :func:`.noises.training_batch`. An epoch is
``steps`` updates. Validation: a fixed set of mixtures of the validation split's talkers
and noises at -5..15 dB (:func:`.noises.test_mixtures` with ``split="val"``); the test
split is never touched here.

Your own data (``--clean DIR --noise DIR``, :mod:`.user_data`): the same, with the
corpus replaced by your folders' training and validation splits and the noise kind
``real`` only (your noise recordings, nothing synthetic); validation mixtures at
-5..15 dB of the validation split. The model starts from the shipped weights unless
``--init`` says otherwise (``scratch``, or a checkpoint of the same configuration), so
a short fine-tune (a lower ``--lr``, e.g. 2e-4) is useful; the checkpoint's meta records
the files of every split, the resampler and the downmix (``user_data``).

Loss, on the output aligned for the model's latency: a multi-resolution STFT loss on
compressed magnitudes and compressed complex spectra (power 0.3, FFT sizes 256, 512 and
1024) plus ``si_sdr_weight`` times the negative SI-SDR in dB. Trained by
:func:`~sigstream.models.training.loop.fit`; the checkpoint with the best validation
SI-SDR is saved as ``enhancer.pt``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.checkpoint import save_checkpoint
from sigstream.models.enhancer.speech import SpeechConfig, SpeechEnhancer
from sigstream.models.training.config import FitConfig, check, opt, part, resolve
from sigstream.models.training.loop import Callback, Loop, Task, TrainResult, fit

__all__ = ["SpeechData", "SpeechTrainConfig", "SpeechTask", "train", "speech_loss", "si_sdr"]

CHECKPOINT = "enhancer.pt"
NAME = "enhancer"


@dataclass(frozen=True)
class SpeechData:
    """Mixtures drawn afresh every update from the corpus's training split."""

    corpus: str | None = opt(None, "corpus folder (default: $SIGSTREAM_DATA or "
                             "~/.cache/sigstream/speech; build it with `sigstream data speech`)",
                             metavar="DIR")
    seconds: float = opt(2.0, "length of each training mixture (s)", above=0,
                         option="--clip-seconds", renamed=("--seconds",))
    batch: int = opt(16, "mixtures per update", low=1)
    steps: int = opt(100, "updates per epoch", low=1)
    snr_min: float = opt(-5.0, "lowest training SNR (dB)")
    snr_max: float = opt(20.0, "highest training SNR (dB)")
    val_per_condition: int = opt(2, "validation mixtures per SNR and noise kind", low=1)
    val_seconds: float = opt(3.0, "seconds per validation mixture", above=0)
    clean: str | None = opt(None, "train on your own data: a folder of clean speech WAVs (any "
                            "rate, mono or multi-channel; downmixed, resampled to 48 kHz), "
                            "mixed with --noise instead of the corpus; split 80/10/10 by file "
                            "(by time with fewer than 3 files), the test part left for "
                            "`sigstream eval enhancer --clean DIR --noise DIR`", metavar="DIR")
    noise: str | None = opt(None, "with --clean: a folder of noise WAVs (split likewise)",
                            metavar="DIR")

    def validate(self) -> None:
        from sigstream.models.enhancer.user_data import check_pair

        if self.snr_min > self.snr_max:
            raise ConfigError(f"--snr-min {self.snr_min} is above --snr-max {self.snr_max}")
        check(self)
        check_pair(self.clean, self.noise)
        if self.clean and self.corpus:
            raise ConfigError("--corpus and --clean/--noise are two data sources: give one")


@dataclass(frozen=True)
class SpeechTrainConfig:
    """Everything ``sigstream train enhancer --arch speech`` takes."""

    DERIVED: ClassVar[tuple[str, ...]] = ()
    model: SpeechConfig = part(SpeechConfig, "the speech enhancer")
    data: SpeechData = part(SpeechData, "training data")
    fit: FitConfig = part(lambda: FitConfig(epochs=60, lr=1e-3, patience=12, lr_patience=4),
                          "optimisation")
    spec_weight: float = opt(10.0, "weight of the multi-resolution STFT loss", low=0)
    si_sdr_weight: float = opt(0.05, "weight of the negative SI-SDR (dB) in the loss", low=0)
    select: str = opt("si_sdr", "the validation score that picks the best checkpoint: si_sdr "
                      "(mean SI-SDR), pesq (mean PESQ-WB) or pesq+stoi (mean PESQ-WB + mean "
                      "STOI); pesq needs the eval extra (pesq, pystoi)",
                      choices=("si_sdr", "pesq", "pesq+stoi"))
    init: str | None = opt(None, "start from this checkpoint; 'shipped': the shipped weights, "
                           "'scratch': random weights (default: the shipped weights with "
                           "--clean/--noise, else random)", metavar="CHECKPOINT")

    def validate(self) -> None:
        check(self)
        if self.select != "si_sdr":
            from sigstream.models.enhancer.quality import METRIC_PACKAGES, available_metrics

            have = available_metrics()
            for metric in ("pesq_wb",) if self.select == "pesq" else ("pesq_wb", "stoi"):
                if not have[metric]:
                    package, what = METRIC_PACKAGES[metric]
                    raise ConfigError(f"--select {self.select} scores {what}, which needs the "
                                      f"{package} package: pip install 'sigstream[eval]'")
        if self.model.sample_rate != 48000:
            raise ConfigError("the corpus is at 48 kHz: --sample-rate must be 48000")


def si_sdr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-clip SI-SDR in dB of est against ref, both (N, T)."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + 1e-8)
    target = a * ref
    return 10 * torch.log10((target.pow(2).sum(-1) + 1e-8) / ((est - target).pow(2).sum(-1) + 1e-8))


def _stft(x: torch.Tensor, n: int) -> torch.Tensor:
    win = torch.hann_window(n, device=x.device)
    return torch.stft(x, n, n // 4, window=win, return_complex=True)


def speech_loss(est: torch.Tensor, clean: torch.Tensor, si_sdr_weight: float,
                spec_weight: float = 10.0) -> tuple[torch.Tensor, dict]:
    """est, clean: (N, T) aligned. Returns (loss, parts)."""
    spec = est.new_zeros(())
    for n in (256, 512, 1024):
        se, sc = _stft(est, n), _stft(clean, n)
        me, mc = se.abs().clamp_min(1e-7), sc.abs().clamp_min(1e-7)
        ce, cc = me.pow(0.3), mc.pow(0.3)
        spec = spec + F.mse_loss(ce, cc) + 0.3 * (
            F.mse_loss(ce * se.real / me, cc * sc.real / mc)
            + F.mse_loss(ce * se.imag / me, cc * sc.imag / mc))
    sdr = si_sdr(est, clean).mean()
    parts = {"spec": float(spec.detach()), "si_sdr": float(sdr.detach())}
    return spec_weight * spec - si_sdr_weight * sdr, parts


def align(model: Any, clean: torch.Tensor) -> torch.Tensor:
    """The clean clip delayed by the model's (a :class:`SpeechEnhancer`'s) latency: what
    its output estimates."""
    return F.pad(clean, (int(model.latency), 0))[:, :clean.shape[1]]


def perceptual_scores(ref: np.ndarray, est: np.ndarray, rate: float,
                      with_stoi: bool) -> dict[str, float]:
    """Mean PESQ-WB (and STOI) of each row of ``est`` against the same row of ``ref``;
    clips a metric cannot score (NaN) are left out of its mean."""
    from sigstream.models.enhancer.quality import pesq_wb, stoi

    pairs = list(zip(ref, est, strict=True))
    out = {"val_pesq_wb": float(np.nanmean([pesq_wb(r, e, rate) for r, e in pairs]))}
    if with_stoi:
        out["val_stoi"] = float(np.nanmean([stoi(r, e, rate) for r, e in pairs]))
    return out


class SpeechTask(Task):
    checkpoint_name = CHECKPOINT
    progress_keys = ("val_si_sdr_db", "val_si_sdri_db", "val_pesq_wb", "val_stoi")

    def __init__(self, cfg: SpeechTrainConfig) -> None:
        from sigstream.models.enhancer.noises import NOISE_KINDS, test_mixtures

        self.cfg = cfg
        d = cfg.data
        self.corpus: Any
        if d.clean and d.noise:
            from sigstream.models.enhancer.user_data import load_user_data

            self.corpus = load_user_data(d.clean, d.noise,
                                         {"train": d.seconds, "val": d.val_seconds},
                                         {"train": "--clip-seconds", "val": "--val-seconds"})
            self.kinds: tuple[str, ...] = ("real",)  # your noise, nothing else
            if cfg.fit.progress:
                import sys

                from sigstream.models.enhancer.user_data import describe

                print(f"train enhancer: {describe(self.corpus)}", file=sys.stderr, flush=True)
        else:
            from sigstream.models.enhancer.corpus import load_corpus

            self.corpus = load_corpus(d.corpus)
            self.kinds = NOISE_KINDS
        self.model = SpeechEnhancer(cfg.model)
        self.init = initial_weights(cfg, self.model)
        if not self.corpus.speech("train") or not self.corpus.speech("val"):
            raise InputError(f"the corpus at {self.corpus.root} has no training or validation "
                             "speech: rebuild it with `sigstream data speech`")
        mixes = test_mixtures(self.corpus, per_condition=d.val_per_condition,
                              seconds=d.val_seconds, seed=cfg.fit.seed, split="val",
                              **({"kinds": self.kinds} if d.clean else {}))
        self.val_noisy = torch.tensor(np.stack([m.noisy for m in mixes]), dtype=torch.float32)
        self.val_clean = torch.tensor(np.stack([m.clean for m in mixes]), dtype=torch.float32)
        self.val_in = float(si_sdr(self.val_noisy, self.val_clean).mean())
        self.rng = np.random.default_rng(cfg.fit.seed)

    def train_epoch(self, loop: Loop) -> dict:
        from sigstream.models.enhancer.noises import training_batch

        d = self.cfg.data
        self.model.train()
        losses, sdrs, specs = [], [], []
        for _ in range(d.steps):
            noisy, clean = training_batch(self.corpus, self.rng, d.batch, d.seconds,
                                          snr_range=(d.snr_min, d.snr_max), kinds=self.kinds)
            x = torch.from_numpy(noisy).unsqueeze(-1)
            y = torch.from_numpy(clean)
            est = self.model(x)[..., 0]
            loss, parts = speech_loss(est, align(self.model, y), self.cfg.si_sdr_weight,
                                      self.cfg.spec_weight)
            loop.update(loss)
            losses.append(float(loss.detach()))
            sdrs.append(parts["si_sdr"])
            specs.append(parts["spec"])
        return {"train_loss": float(np.mean(losses)), "train_si_sdr_db": float(np.mean(sdrs)),
                "train_spec": float(np.mean(specs))}

    def validate(self, loop: Loop) -> dict:
        m = loop.eval_model
        m.eval()
        with torch.no_grad():
            outs = [m(self.val_noisy[i:i + 16].unsqueeze(-1))[..., 0]
                    for i in range(0, len(self.val_noisy), 16)]
            est = torch.cat(outs)
            ref = align(m, self.val_clean)
            sdr = float(si_sdr(est, ref).mean())
        row = {"val_loss": -sdr, "val_si_sdr_db": sdr, "val_si_sdri_db": sdr - self.val_in}
        if self.cfg.select != "si_sdr":
            row.update(perceptual_scores(ref.numpy(), est.numpy(), self.cfg.model.sample_rate,
                                         with_stoi=self.cfg.select == "pesq+stoi"))
            row["val_loss"] = -row["val_pesq_wb"] - row.get("val_stoi", 0.0)
        return row

    def save(self, path: str, loop: Loop) -> None:
        m, row = cast(SpeechEnhancer, loop.eval_model), loop.epochs[-1]
        save_checkpoint(path, NAME, m.config, m, meta={
            "train": asdict(self.cfg), "best_epoch": loop.best_epoch,
            "corpus": {k: self.corpus.manifest.get(k) for k in ("version", "sample_rate")},
            **({"user_data": self.corpus.manifest} if self.cfg.data.clean else {}),
            "init": self.init,
            "val_si_sdr_in_db": self.val_in, "val_si_sdr_out_db": row["val_si_sdr_db"],
            "history": loop.epochs})

    def load(self, path: str) -> SpeechEnhancer:
        from sigstream.models.registry import load_checkpoint

        return cast(SpeechEnhancer, load_checkpoint(path))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def initial_weights(cfg: SpeechTrainConfig, model: SpeechEnhancer) -> str:
    """Load ``--init`` into ``model`` (see its help); returns what it started from. A
    checkpoint for another model configuration is a ConfigError naming the options."""
    init = cfg.init or ("shipped" if cfg.data.clean else "scratch")
    if init == "scratch":
        return init
    from sigstream.models.registry import build_model, load_checkpoint

    src = build_model("enhancer") if init == "shipped" else load_checkpoint(init)
    what = "the shipped weights" if init == "shipped" else f"checkpoint {init}"
    if not isinstance(src, SpeechEnhancer):
        raise ConfigError(f"--init: {what} is not a 48 kHz speech enhancer checkpoint")
    differ = [f"--{k.replace('_', '-')} {v}" for k, v in asdict(src.config).items()
              if k != "atten_lim" and getattr(cfg.model, k) != v]
    if differ:
        raise ConfigError(f"--init: {what} need {', '.join(differ)}: use those options, "
                          f"another --init, or --init scratch")
    model.load_state_dict(src.state_dict())
    return init


def train(cfg: SpeechTrainConfig, out_dir: str, *, resume: bool = False,
          callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train; writes ``enhancer.pt`` (best checkpoint) and ``history.json`` into ``out_dir``."""
    cfg = resolve(cfg)
    cfg.validate()
    torch.manual_seed(cfg.fit.seed)
    result = fit(SpeechTask(cfg), cfg.fit, out_dir, run_config=cfg, callbacks=callbacks,
                 resume=resume)
    if result.stopped_by != "interrupt" and not math.isfinite(result.best_val):
        raise InputError("training produced no finite validation loss")
    return result
