"""``sigstream eval enhancer``: the 48 kHz speech enhancer against RNNoise and classical
baselines on the corpus's held-out test mixtures, scored with the field's metrics.

B: mixtures in a batch, T: samples (48 kHz).

Data: :func:`sigstream.models.enhancer.noises.test_mixtures` on the corpus
(:func:`~sigstream.models.enhancer.corpus.load_corpus`), split ``test`` (talkers and
noise recordings never used in training): ``per_condition`` mixtures of ``seconds`` for
every input SNR x noise kind. A few mixtures of the ``val`` split (another seed) tune the
classical baselines, never the test ones.

Your own data (``--clean DIR --noise DIR``, :mod:`.user_data`): the same mixing code on
the held-out test split of your folders (the split ``sigstream train enhancer --clean DIR
--noise DIR`` left out, recomputed deterministically from the file names), noise kind
``real`` (your noise) only; the validation split's files tune the baselines. Every
method and metric below runs on them in the same way; ``--checkpoint shipped`` names the
shipped weights, so a fine-tune and the weights it started from are scored side by side.

Methods, all on the same mixtures in the same run, each aligned with the clean signal
by its own delay before scoring (a method is not charged for the latency it declares;
the latency is reported instead):

* ``noisy``: the input itself (the reference for the improvements).
* ``model``: the enhancer (``--checkpoint`` files, or the registry's ``enhancer``),
  offline: ``model.forward`` over the whole mixture (padded with ``latency`` zeros),
  output advanced by ``model.latency``. A model at another rate than 48 kHz gets its
  input resampled to its rate and its output back to 48 kHz (``resample_poly``, zero
  phase), and the report says so. Several checkpoints are ``model:<file name>``.
* ``rnnoise``: RNNoise at 48 kHz, advanced by its measured delay (960 samples;
  :mod:`.quality`).
* ``butterworth``: the causal baseline of :mod:`sigstream.models.baselines.enhance`
  (Butterworth low-pass with drift high-pass), cut-offs tuned on the tuning mixtures,
  advanced by its group delay at 1 kHz.
* ``wiener``: ``scipy.signal.wiener`` from the same module (a centred window: not
  causal), window tuned likewise.
* ``spectral_offline``: :func:`.quality.spectral_offline`, an MMSE-LSA spectral gain
  that sees the whole file (not causal).

Metrics per mixture and method: SI-SDR, its improvement over the noisy input (SI-SDRi),
PESQ-WB, STOI and ESTOI (:mod:`.quality`); means per input SNR, per noise kind and over
all; and how often the model's SI-SDR beats RNNoise's (per SNR x kind condition and per
mixture). A metric whose package is missing is left out and named, with the command
that installs it. Real-time factors, one thread, 10 ms chunks at 48 kHz, in the same
run: the model in torch (eager), stepped chunk by chunk, and RNNoise (``sigstream bench``
measures the model on ONNX Runtime against RNNoise: the export layer sits above this one).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.models.enhancer import quality as q
from sigstream.models.training.config import check, opt
from sigstream.models.training.family import Evaluation

__all__ = ["CausalEvalConfig", "run", "evaluate", "table", "Method", "model_method",
           "tune_baselines", "measure_rtf", "RATE", "METRICS", "METRIC_LABELS", "KINDS"]

RATE = 48000
KINDS = ("white", "pink", "babble", "real")
METRICS = ("si_sdr", "si_sdri", "pesq_wb", "stoi", "estoi")
METRIC_LABELS = {"si_sdr": "SI-SDR (dB)", "si_sdri": "SI-SDR improvement over the noisy "
                 "input (dB)", "pesq_wb": "PESQ-WB (MOS-LQO, 1.04-4.64)",
                 "stoi": "STOI (0-1)", "estoi": "ESTOI (0-1)"}
_BATCH = 8
_BUTTER_CUTOFFS = (3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0)
_BUTTER_DRIFTS = (0.0, 50.0, 100.0, 200.0)
_WIENER_WINDOWS = (0.0002, 0.0005, 0.001, 0.003)


def _log(message: str) -> None:
    print(f"eval enhancer: {message}", file=sys.stderr, flush=True)


# -- methods --------------------------------------------------------------------------------
@dataclass
class Method:
    """One enhancement method: ``fn`` maps noisy (B, T) at 48 kHz to estimates (B, T)
    aligned with the clean signal; ``delay`` is what alignment removed (samples at 48 kHz,
    for the model its latency at its own rate)."""

    key: str
    label: str
    short: str
    causal: bool
    fn: Callable[[np.ndarray], np.ndarray]
    delay: int = 0
    setting: dict = field(default_factory=dict)
    note: str = ""

    def describe(self) -> dict:
        out = {"label": self.label, "short": self.short, "causal": self.causal,
               "delay_samples": int(self.delay), "setting": self.setting}
        if self.note:
            out["note"] = self.note
        return out


def _advanced(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, delay: int) -> np.ndarray:
    """``fn`` over ``x`` (B, T) padded with ``delay`` zeros, its output advanced by
    ``delay``: (B, T)."""
    if delay <= 0:
        return np.asarray(fn(x), np.float64)
    pad = np.concatenate([x, np.zeros((x.shape[0], delay), x.dtype)], axis=1)
    return np.asarray(fn(pad), np.float64)[:, delay:delay + x.shape[1]]


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.shape[1] >= n:
        return y[:, :n]
    return np.concatenate([y, np.zeros((y.shape[0], n - y.shape[1]))], axis=1)


def model_method(model: Any, key: str = "model", label: str = "sigstream enhancer") -> Method:
    """The model as a :class:`Method`: offline ``forward``, output advanced by its
    latency; resampled to and from its rate when that is not 48 kHz."""
    import torch

    rate = float(model.sample_rate or RATE)
    if int(getattr(model, "decimation", 1) or 1) != 1 or int(model.in_channels or 1) != 1 \
            or int(model.out_channels or 1) != 1:
        raise InputError(f"{label} is not a one-channel enhancer (decimation "
                         f"{getattr(model, 'decimation', 1)}, channels {model.in_channels} -> "
                         f"{model.out_channels})")
    latency, hop = int(model.latency), max(int(model.hop or 1), 1)

    def fn(x: np.ndarray) -> np.ndarray:
        xin = q.resample(np.asarray(x, np.float64), RATE, rate, axis=-1)
        n = xin.shape[1]
        total = -(-(n + latency) // hop) * hop
        buf = np.zeros((xin.shape[0], total, 1), np.float32)
        buf[:, :n, 0] = xin
        with torch.no_grad():
            y = model.forward(torch.from_numpy(buf))[..., 0].double().numpy()
        y = y[:, latency:latency + n]
        return _fit_length(q.resample(y, rate, RATE, axis=-1), x.shape[1])

    note = ""
    if rate != RATE:
        note = (f"runs at {rate / 1000:g} kHz: its input is resampled from 48 kHz and its "
                f"output back to 48 kHz (scipy resample_poly, zero phase)"
                + (f"; nothing above {rate / 2000:g} kHz survives" if rate < RATE else ""))
    return Method(key, label, key.removeprefix("model:")[:14], True, fn,
                  delay=latency, note=note,
                  setting={"sample_rate": rate, "latency_samples": latency,
                           "latency_ms": 1000.0 * latency / rate})


def _rnnoise_method() -> Method:
    return Method("rnnoise", "RNNoise", "RNNoise", True,
                  lambda x: np.stack([q.rnnoise(row, RATE) for row in x]),
                  delay=q.rnnoise_delay(),
                  setting={"frame_samples": q.RNNOISE_FRAME, "input_scale": "int16 units"})


def _spectral_method() -> Method:
    return Method("spectral_offline", "offline spectral (non-causal)", "spectral*", False,
                  lambda x: np.stack([q.spectral_offline(row, RATE) for row in x]),
                  setting={"frame_s": 0.032, "percentile": 10.0, "smooth_s": 0.125,
                           "gain": "MMSE-LSA", "floor_db": -20.0})


def _group_delay(sos: np.ndarray, rate: float, at_hz: float = 1000.0) -> int:
    """Group delay of a filter at ``at_hz`` in whole samples (>= 0)."""
    from scipy import signal

    _, h = signal.sosfreqz(sos, worN=[at_hz - 1.0, at_hz + 1.0], fs=rate)
    phase = float(np.angle(h[1] / h[0]))
    return max(int(round(-phase / (2 * np.pi * 2.0) * rate)), 0)


def _score(clean: np.ndarray, noisy: np.ndarray, est: np.ndarray) -> float:
    """Mean SI-SDR improvement over rows."""
    return float(np.mean([q.si_sdr(c, e) - q.si_sdr(c, n)
                          for c, n, e in zip(clean, noisy, est, strict=True)]))


def tune_baselines(tuning: Sequence[Any] = (), rate: float = RATE) -> list[Method]:
    """The classical baselines of :mod:`sigstream.models.baselines.enhance` as methods:
    its causal ones (the Butterworth low-pass with drift removal: cut-off and drift
    high-pass tuned on a grid, aligned by the group delay at 1 kHz) and the (non-causal)
    Wiener filter (window tuned); tuned for the best mean SI-SDR improvement on
    ``tuning`` mixtures, left at their defaults when there are none."""
    import dataclasses

    from sigstream.models.baselines import enhance as eb

    clean = np.stack([np.asarray(m.clean, np.float64) for m in tuning]) if tuning else None
    noisy = np.stack([np.asarray(m.noisy, np.float64) for m in tuning]) if tuning else None
    out: list[Method] = []

    def bound(c: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: c(x, rate)

    def best(candidates: list[Any], delay: Callable[[Any], int]) -> tuple[Any, float | None]:
        if clean is None or noisy is None:
            return candidates[0], None
        scored = []
        for cand in candidates:
            try:
                est = _advanced(bound(cand), noisy, delay(cand))
            except ConfigError:
                continue
            scored.append((_score(clean, noisy, est), cand))
        s, cand = max(scored, key=lambda t: t[0])
        return cand, s

    baselines = eb.default_baselines(rate)
    for b in eb.causal_baselines(baselines):
        grid: list[Any]
        if isinstance(b, eb.ButterworthBaseline):
            grid = [dataclasses.replace(b, cutoff_hz=c, drift_hz=d)
                    for c in _BUTTER_CUTOFFS for d in _BUTTER_DRIFTS if c < rate / 2]
            if clean is None:
                grid = [dataclasses.replace(b, cutoff_hz=8000.0, drift_hz=50.0)]

            def delay(c: Any) -> int:
                return _group_delay(c.sos(rate), rate)
            label, short = "Butterworth low-pass (causal)", "Butterworth"
        else:
            grid = [b]

            def delay(c: Any) -> int:
                return 0
            label = short = str(getattr(b, "name", type(b).__name__))
        chosen, s = best(grid, delay)
        d = delay(chosen)
        out.append(Method(str(chosen.name), label, short, True, bound(chosen), delay=d,
                          setting={**_setting(chosen), "tuning_si_sdri_db": s},
                          note="" if s is not None else "not tuned (no tuning mixtures)"))
    for b in baselines:
        if isinstance(b, eb.WienerBaseline):
            grid = [dataclasses.replace(b, window_s=w) for w in _WIENER_WINDOWS] \
                if clean is not None else [dataclasses.replace(b, window_s=0.0005)]
            chosen, s = best(grid, lambda c: 0)
            out.append(Method("wiener", "scipy Wiener filter (non-causal)", "Wiener*", False,
                              bound(chosen),
                              setting={**_setting(chosen), "tuning_si_sdri_db": s},
                              note="" if s is not None else "not tuned (no tuning mixtures)"))
    return out


def _setting(b: Any) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(b).items() if k != "name"}


# -- real-time factors ----------------------------------------------------------------------
class _Eager:
    """The model itself as a runner (``init_state`` / ``step`` on numpy chunks)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def init_state(self, batch: int) -> Any:
        return self.model.init_state(batch)

    def step(self, x: np.ndarray, state: Any) -> tuple[Any, Any]:
        import torch

        with torch.no_grad():
            return self.model.step(torch.from_numpy(x), state)


def measure_rtf(model: Any, runner: Any = None, *, seconds: float = 2.0,
                chunk_ms: float = 10.0, warmup: int = 20,
                label: str = "torch (eager)") -> dict:
    """The real-time factor of stepping ``model`` on chunks of ``chunk_ms`` at its rate
    (whole hops), state carried, one stream, one thread: through ``runner`` (anything with
    ``init_state`` / ``step`` on numpy chunks, e.g. an ONNX Runtime runner from the export
    layer above this one, which ``sigstream bench`` passes; ``label`` names it) or, without
    one, the model itself in torch."""
    import torch

    rate = float(model.sample_rate or RATE)
    hop = max(int(model.hop or 1), 1)
    chunk = max(hop, -(-int(round(chunk_ms * rate / 1000)) // hop) * hop)
    runner = runner if runner is not None else _Eager(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n = max(int(seconds * rate) // chunk, 1)
        x = (0.05 * np.random.default_rng(0).standard_normal((n + warmup, 1, chunk, 1))
             ).astype(np.float32)
        state = runner.init_state(1)
        for i in range(warmup):
            _, state = runner.step(x[i], state)
        times = np.empty(n)
        clock = time.perf_counter
        for i in range(n):
            t0 = clock()
            _, state = runner.step(x[warmup + i], state)
            times[i] = clock() - t0
    finally:
        torch.set_num_threads(threads)
    return {"backend": label, **q.rtf_summary(times, chunk, rate)}


# -- the evaluation -------------------------------------------------------------------------
def _metric_fns(available: dict[str, bool]) -> dict[str, Callable[[np.ndarray, np.ndarray],
                                                                   float]]:
    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"si_sdr": q.si_sdr}
    if available.get("pesq_wb"):
        fns["pesq_wb"] = lambda c, e: q.pesq_wb(c, e, RATE)
    if available.get("stoi"):
        fns["stoi"] = lambda c, e: q.stoi(c, e, RATE)
    if available.get("estoi"):
        fns["estoi"] = lambda c, e: q.stoi(c, e, RATE, extended=True)
    return fns


def _example_index(mixtures: Sequence[Any], snr: float = 5.0) -> int:
    """The mixture for the spectrogram figure: real noise if any, input SNR nearest 5 dB."""
    def rank(i: int) -> tuple[bool, float, int]:
        m = mixtures[i]
        return (str(m.kind) != "real", abs(float(m.snr_db) - snr), i)
    return min(range(len(mixtures)), key=rank)


def _nanmean(values: list[float]) -> float | None:
    a = np.asarray([v for v in values if v is not None], np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def _means(records: list[dict], keys: list[str], metrics: list[str]) -> dict:
    return {"mixtures": len(records), "methods": {
        k: {m: _nanmean([r["metrics"][k].get(m) for r in records]) for m in metrics}
        for k in keys}}


def _beats(records: list[dict], model: str, other: str = "rnnoise") -> dict:
    """How often ``model``'s SI-SDR beats ``other``'s: per (SNR, kind) condition (means)
    and per mixture."""
    cells: dict[tuple[float, str], list[dict]] = {}
    for r in records:
        cells.setdefault((r["snr_db"], r["kind"]), []).append(r)
    won = sum(1 for rs in cells.values()
              if np.mean([r["metrics"][model]["si_sdr"] for r in rs])
              > np.mean([r["metrics"][other]["si_sdr"] for r in rs]))
    per_mix = sum(1 for r in records
                  if r["metrics"][model]["si_sdr"] > r["metrics"][other]["si_sdr"])
    return {"conditions_won": won, "conditions": len(cells),
            "conditions_percent": 100.0 * won / max(len(cells), 1),
            "mixtures_won": per_mix, "mixtures": len(records),
            "mixtures_percent": 100.0 * per_mix / max(len(records), 1)}


def evaluate(mixtures: Sequence[Any], models: Sequence[Method], *,
             tuning: Sequence[Any] = (), rtf: bool = True, rtf_models: Sequence[Any] = (),
             rtf_seconds: float = 2.0,
             log: Callable[[str], None] = _log) -> tuple[dict, dict]:
    """Score ``models`` (methods from :func:`model_method`), RNNoise and the baselines on
    ``mixtures`` (objects with ``clean``, ``noisy`` (48 kHz), ``snr_db``, ``kind``,
    ``talker``, ``noise_source``). ``rtf_models``: the models behind ``models``, in the
    same order, for the real-time factors (in torch; ``sigstream bench`` times them on
    ONNX Runtime). Returns the JSON-ready result and the spectrogram example (clean,
    noisy and every method's output for one mixture)."""
    if not mixtures:
        raise InputError("no test mixtures: the corpus's test split gave none for these "
                         "SNRs and kinds")
    t_start = time.perf_counter()
    available = q.available_metrics()
    fns = _metric_fns(available)
    missing = {m: f"{q.METRIC_PACKAGES[m][1]} needs the {q.METRIC_PACKAGES[m][0]} package: "
                  f"{q.INSTALL}" for m, ok in available.items() if not ok}
    metrics = [m for m in METRICS if m not in missing]
    notes: list[str] = []

    methods = [Method("noisy", "noisy input", "noisy", True, lambda x: x), *models]
    if q.rnnoise_available():
        methods.append(_rnnoise_method())
    else:
        missing["rnnoise"] = f"RNNoise needs the pyrnnoise package: {q.INSTALL}"
        notes.append(f"RNNoise not run: the pyrnnoise package is missing ({q.INSTALL})")
    log(f"tuning the classical baselines on {len(tuning)} validation mixtures")
    methods += tune_baselines(tuning)
    methods.append(_spectral_method())
    notes += [f"{m.label}: {m.note}" for m in methods if m.note]
    keys = [m.key for m in methods]

    example_at = _example_index(mixtures)
    example: dict = {}
    records: list[dict] = []
    undefined: dict[str, int] = {}
    log(f"{len(mixtures)} mixtures x {len(methods)} methods; metrics "
        f"{', '.join(metrics)}")
    for start in range(0, len(mixtures), _BATCH):
        batch = mixtures[start:start + _BATCH]
        lengths = {np.asarray(m.clean).size for m in batch}
        groups = [[m for m in batch if np.asarray(m.clean).size == n] for n in sorted(lengths)]
        for group in groups:
            clean = np.stack([np.asarray(m.clean, np.float64).reshape(-1) for m in group])
            noisy = np.stack([np.asarray(m.noisy, np.float64).reshape(-1) for m in group])
            outs = {m.key: np.asarray(m.fn(noisy), np.float64) for m in methods}
            for i, mix in enumerate(group):
                per: dict[str, dict[str, float]] = {}
                for key in keys:
                    scores = {name: fn(clean[i], outs[key][i]) for name, fn in fns.items()}
                    for name, v in scores.items():
                        if not np.isfinite(v):
                            undefined[name] = undefined.get(name, 0) + 1
                    per[key] = scores
                for key in keys:
                    per[key]["si_sdri"] = per[key]["si_sdr"] - per["noisy"]["si_sdr"]
                records.append({"snr_db": float(mix.snr_db), "kind": str(mix.kind),
                                "talker": str(mix.talker),
                                "noise_source": str(mix.noise_source), "metrics": per})
                if mix is mixtures[example_at]:
                    example = {"clean": clean[i], "noisy": noisy[i], "rate": RATE,
                               "snr_db": float(mix.snr_db), "kind": str(mix.kind),
                               "talker": str(mix.talker),
                               "noise_source": str(mix.noise_source),
                               "outputs": {k: outs[k][i] for k in keys if k != "noisy"},
                               "labels": {m.key: m.label for m in methods}}
        done = min(start + _BATCH, len(mixtures))
        log(f"{done}/{len(mixtures)} mixtures ({time.perf_counter() - t_start:.0f} s)")
    for name, count in undefined.items():
        notes.append(f"{name}: undefined for {count} method outputs (left out of the means)")

    snrs = sorted({r["snr_db"] for r in records})
    kinds = list(dict.fromkeys(r["kind"] for r in records))
    result: dict = {
        "data": {"split": "test", "mixtures": len(records), "sample_rate": RATE,
                 "seconds": float(np.mean([np.asarray(m.clean).size for m in mixtures])
                                  / RATE),
                 "snrs": snrs, "kinds": kinds,
                 "talkers": sorted({r["talker"] for r in records}),
                 "noise_sources": sorted({r["noise_source"] for r in records}),
                 "tuning_mixtures": len(tuning)},
        "methods": {m.key: m.describe() for m in methods},
        "metrics": metrics,
        "metric_labels": {m: METRIC_LABELS[m] for m in metrics},
        "missing": missing,
        "overall": _means(records, keys, metrics),
        "per_snr": {f"{s:g}": _means([r for r in records if r["snr_db"] == s], keys, metrics)
                    for s in snrs},
        "per_kind": {k: _means([r for r in records if r["kind"] == k], keys, metrics)
                     for k in kinds},
    }
    if "rnnoise" in keys:
        result["model_vs_rnnoise"] = {m.key: _beats(records, m.key) for m in models}
    if rtf:
        log("real-time factors (one thread, 10 ms chunks)")
        result["rtf"] = _rtfs(models, rtf_models, rtf_seconds, notes)
    result["notes"] = notes
    result["per_mixture"] = records
    result["elapsed_s"] = time.perf_counter() - t_start
    return _jsonable(result), example


def _rtfs(models: Sequence[Method], rtf_models: Sequence[Any], seconds: float,
          notes: list[str]) -> dict:
    out: dict = {"chunk_ms": 10.0, "threads": 1}
    for method, model in zip(models, rtf_models, strict=False):
        try:
            out[method.key] = measure_rtf(model, seconds=seconds)
        except Exception as exc:  # noqa: BLE001 - reported, the scores still stand
            out[method.key] = {"error": str(exc).splitlines()[0][:200] if str(exc) else
                               type(exc).__name__}
            notes.append(f"{method.label}: timing failed: "
                         f"{out[method.key]['error']}")
    if q.rnnoise_available():
        out["rnnoise"] = q.rnnoise_rtf(seconds)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# -- the table ------------------------------------------------------------------------------
def _cell(v: Any, metric: str) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if metric in ("si_sdr", "si_sdri", "pesq_wb") else f"{v:.3f}"


def table(res: dict) -> str:
    """What :func:`evaluate`'s result says, as text: one table per metric (input SNR rows
    x method columns), SI-SDRi per noise kind, model vs RNNoise, real-time factors,
    missing metrics and notes."""
    keys = list(res["methods"])
    heads = [res["methods"][k].get("short", k) for k in keys]
    width = max(10, *(len(h) + 1 for h in heads))
    d = res["data"]
    lines = [f"sigstream eval enhancer: {d['mixtures']} held-out test mixtures (48 kHz, "
             f"{d['seconds']:.1f} s; {len(d['talkers'])} talkers, "
             f"{len(d['noise_sources'])} noise sources), means per input SNR"]
    if d.get("user"):
        u = d["user"]
        lines[0] = (f"sigstream eval enhancer: {d['mixtures']} mixtures of your held-out test "
                    f"files (48 kHz, {d['seconds']:.1f} s; {len(u['test_files']['clean'])} "
                    f"clean, {len(u['test_files']['noise'])} noise), means per input SNR")
        lines.append(f"data: --clean {u['clean']} and --noise {u['noise']}: WAVs downmixed "
                     f"({u['downmix']}), resampled with {u['resampler']}, DC removed; split "
                     f"clean {u['split']['speech'].split(':')[0]}, noise "
                     f"{u['split']['noise'].split(':')[0]}; baselines tuned on the "
                     f"validation files")
    for k in keys:
        s = res["methods"][k]["setting"]
        if "latency_samples" in s:
            lines.append(f"{res['methods'][k]['label']}: latency {s['latency_samples']} "
                         f"samples ({s['latency_ms']:.2f} ms) at {s['sample_rate'] / 1000:g} "
                         f"kHz")
    lines.append(f"* not causal (sees the future); RNNoise delay "
                 f"{res['methods'].get('rnnoise', {}).get('delay_samples', '-')} samples, "
                 f"removed before scoring like every method's")

    def block(title: str, rows: dict, metric: str, label: str) -> None:
        lines.append("")
        lines.append(title)
        lines.append(f"{label:<9}" + "".join(f"{h:>{width}}" for h in heads))
        for name, agg in rows.items():
            lines.append(f"{name:<9}" + "".join(
                f"{_cell(agg['methods'][k].get(metric), metric):>{width}}" for k in keys))

    for metric in res["metrics"]:
        rows = {f"{s} dB": v for s, v in res["per_snr"].items()} | {"all": res["overall"]}
        block(METRIC_LABELS[metric], rows, metric, "SNR in")
    if "si_sdri" in res["metrics"]:
        block("SI-SDR improvement by noise kind (dB)", {**res["per_kind"], "all":
                                                        res["overall"]}, "si_sdri", "noise")
    lines.append("")
    for k, b in res.get("model_vs_rnnoise", {}).items():
        lines.append(f"{res['methods'][k]['label']} beats RNNoise in SI-SDR in "
                     f"{b['conditions_won']}/{b['conditions']} SNR x noise conditions "
                     f"({b['conditions_percent']:.0f} %) and {b['mixtures_won']}/"
                     f"{b['mixtures']} mixtures ({b['mixtures_percent']:.0f} %)")
    if "rtf" in res:
        parts = []
        for k, v in res["rtf"].items():
            if not isinstance(v, dict):
                continue
            name = res["methods"].get(k, {}).get("label", k)
            if "error" in v:
                parts.append(f"{name}: failed")
                continue
            where = f" ({v['backend']})" if v.get("backend") else ""
            parts.append(f"{name}{where} {v['rtf']:.3f} (p99 {v['p99_chunk_ms']:.2f} ms per "
                         f"{1000 * v['chunk_samples'] / v['sample_rate']:.0f} ms chunk)")
        lines.append("real-time factor, one thread, 10 ms chunks: " + "; ".join(parts))
    if res["missing"]:
        lines.append("missing: " + "; ".join(res["missing"].values()))
    lines += [f"note: {n}" for n in res.get("notes", [])]
    return "\n".join(lines)


# -- sigstream eval enhancer ----------------------------------------------------------------
@dataclass(frozen=True)
class CausalEvalConfig:
    """What ``sigstream eval enhancer`` takes besides ``--checkpoint``/``--json``/
    ``--figures``/``--threads``."""

    data: str | None = opt(None, "corpus folder (default: $SIGSTREAM_DATA or "
                           "~/.cache/sigstream/speech; build it with `sigstream data speech`)",
                           metavar="DIR")
    per_condition: int = opt(8, "test mixtures per input SNR x noise kind", low=1,
                             metavar="N")
    seconds: float = opt(4.0, "length of each test mixture (s)", above=0, metavar="S",
                         option="--clip-seconds", renamed=("--seconds",))
    seed: int = opt(0, "seed of the test mixtures drawn from the corpus's test split")
    snrs: tuple[float, ...] = opt((-5.0, 0.0, 5.0, 10.0, 15.0),
                                  "input SNRs in dB, comma-separated (write --snrs=-5,0 when "
                                  "the first is negative)", metavar="DB,...")
    kinds: tuple[str, ...] = opt(KINDS, "noise kinds, comma-separated (white, pink, brown, "
                                 "babble, hum, clicks, bursts, real: those of the corpus's "
                                 "noises module)", metavar="KIND,...")
    rtf: bool = opt(True, "measure real-time factors (the model in torch and RNNoise, one "
                    "thread, 10 ms chunks; ONNX Runtime: sigstream bench)")
    atten_lims: tuple[float, ...] = opt((), "also score each enhancer with these attenuation "
                                        "limits (dB, comma-separated; the atten_lim stream "
                                        "option)", metavar="DB,...")
    clean: str | None = opt(None, "evaluate on your own data: the folder of clean speech WAVs "
                            "given to `sigstream train enhancer --clean`; its held-out test "
                            "files (the same deterministic split) are mixed with the test "
                            "files of --noise (noise kind 'real'), its validation files "
                            "tune the baselines. `--checkpoint shipped --checkpoint "
                            "RUN/enhancer.pt` scores the shipped weights and your fine-tune "
                            "side by side", metavar="DIR")
    noise: str | None = opt(None, "with --clean: the folder of noise WAVs", metavar="DIR")

    def validate(self) -> None:
        from sigstream.models.enhancer.user_data import check_pair

        check(self)
        check_pair(self.clean, self.noise)
        if self.clean and self.data:
            raise ConfigError("--data (the corpus) and --clean/--noise are two data sources: "
                              "give one")
        if self.clean and self.kinds not in (KINDS, ("real",)):
            raise ConfigError("--kinds does not apply with --clean/--noise: the noise is your "
                              "--noise folder's (kind 'real')")
        if not self.snrs:
            raise ConfigError("--snrs needs at least one input SNR")
        if not self.kinds:
            raise ConfigError("--kinds needs at least one noise kind")
        bad = [d for d in self.atten_lims if not 0 < d < 200]
        if bad:
            raise ConfigError(f"--atten-lims takes dB values in (0, 200), got {bad[0]:g}")


def _models(checkpoints: tuple[str, ...]) -> list[tuple[Method, Any]]:
    """(method, model) for every ``--checkpoint`` (an ``enhancer`` or ``audio-enhancer``
    checkpoint, or ``shipped``: the shipped weights), or the registry's ``enhancer`` with
    its shipped weights."""
    from sigstream.models.checkpoint import read_checkpoint
    from sigstream.models.registry import build_model, load_checkpoint

    if not checkpoints:
        model = build_model("enhancer")
        return [(model_method(model), model)]
    out = []
    for path in checkpoints:
        if path == "shipped":  # the shipped weights beside checkpoints, e.g. a fine-tune
            model = build_model("enhancer")
            key = "model:shipped" if len(checkpoints) > 1 else "model"
            out.append((model_method(model, key, "sigstream enhancer (shipped)"), model))
            continue
        name = read_checkpoint(path)["model"]
        if name not in ("enhancer", "audio-enhancer"):
            raise InputError(f"{path!r} is a {name} checkpoint, not an enhancer")
        model = load_checkpoint(path)
        label = "sigstream enhancer"
        model_rate = float(model.sample_rate or RATE)
        if model_rate != RATE:
            label += f" ({model_rate / 1000:g} kHz)"
        key = "model"
        if len(checkpoints) > 1:
            stem = os.path.splitext(os.path.basename(path))[0]
            key, label = f"model:{stem}", f"{label} ({stem})"
        out.append((model_method(model, key, label), model))
    if len({m.key for m, _ in out}) < len(out):
        raise ConfigError("two --checkpoint files have the same name; rename one")
    return out


def _limited(models: list[tuple[Method, Any]],
             lims: tuple[float, ...]) -> list[tuple[Method, Any]]:
    """``models`` and, for every 48 kHz speech enhancer among them, a copy per attenuation
    limit in ``lims`` (same weights, ``atten_lim`` set)."""
    import dataclasses

    from sigstream.models.enhancer.speech import SpeechEnhancer

    out = list(models)
    for method, model in models:
        if not isinstance(model, SpeechEnhancer):
            continue
        for db in lims:
            lim = SpeechEnhancer(dataclasses.replace(model.config, atten_lim=float(db))).eval()
            lim.load_state_dict(model.state_dict())
            out.append((model_method(lim, f"{method.key}@{db:g}dB",
                                     f"{method.label}, atten. limit {db:g} dB"), lim))
    return out


def run(cfg: CausalEvalConfig, checkpoints: tuple[str, ...],
        figures: str | None) -> Evaluation:
    """The model(s), RNNoise and the baselines on the corpus's test mixtures; figures
    into ``figures`` when given."""
    from sigstream.models.enhancer.corpus import load_corpus
    from sigstream.models.enhancer.noises import test_mixtures

    kinds: tuple[str, ...] = cfg.kinds
    corpus: Any
    if cfg.clean and cfg.noise:  # your folders: checked before any model is loaded
        from sigstream.models.enhancer.user_data import describe, load_user_data

        corpus = load_user_data(cfg.clean, cfg.noise, {"test": cfg.seconds, "val": cfg.seconds})
        _log(describe(corpus))
        kinds = ("real",)
    models = _limited(_models(checkpoints), cfg.atten_lims)
    if not (cfg.clean and cfg.noise):
        corpus = load_corpus(cfg.data)
    _log(f"drawing {len(cfg.snrs) * len(kinds) * cfg.per_condition} test mixtures")
    mixtures = test_mixtures(corpus, snrs=cfg.snrs, kinds=kinds,
                             per_condition=cfg.per_condition, seconds=cfg.seconds,
                             seed=cfg.seed, split="test")
    tuning = test_mixtures(corpus, snrs=cfg.snrs, kinds=kinds, per_condition=1,
                           seconds=cfg.seconds, seed=cfg.seed + 7919, split="val")
    res, example = evaluate(mixtures, [m for m, _ in models], tuning=tuning, rtf=cfg.rtf,
                            rtf_models=[model for _, model in models])
    res["data"].update({"corpus": str(getattr(corpus, "root", cfg.data)),
                        "per_condition": cfg.per_condition, "seed": cfg.seed})
    if cfg.clean and cfg.noise:
        man = corpus.manifest
        res["data"]["user"] = {
            "clean": cfg.clean, "noise": cfg.noise, "resampler": man["resampler"],
            "downmix": man["downmix"], "dc": man["dc"], "split": man["split"],
            "test_files": {"clean": man["files"]["speech"]["test"],
                           "noise": man["files"]["noise"]["test"]},
            "tuning_files": {"clean": man["files"]["speech"]["val"],
                             "noise": man["files"]["noise"]["val"]}}
    files: list[str] = []
    if figures:
        from sigstream.models.enhancer.plots import write_figures

        files = write_figures(res, example, figures)
    return Evaluation(res, table(res), files)
