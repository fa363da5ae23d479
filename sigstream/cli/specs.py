"""Source and sink spec strings: ``KIND[:TARGET][,key=value...]``.

Sources: ``npy:PATH[,rate=HZ]``, ``wav:PATH``,
``synth:NAME[,seconds=S,rate=HZ,channels=C,seed=N,snr=DB]``.
Sinks: ``npy:PATH`` (``.npy`` or ``.npz``), ``wav:PATH[,subtype=PCM_16|FLOAT]``, ``null``.
Live audio (built by ``sigstream.stream.audio``, see :func:`audio_target`): source
``mic[:DEVICE]``, sink ``speaker[:DEVICE]`` (DEVICE: index or name substring).
A bare file name takes its kind from its extension (:func:`with_kind`): ``in.wav`` is
``wav:in.wav``, ``x.npy,rate=100`` is ``npy:x.npy,rate=100``.
"""

from __future__ import annotations

import math
import os
import re

from sigstream.core.errors import ConfigError
from sigstream.models.registry import parse_options
from sigstream.models.synth import GENERATORS
from sigstream.stream.io.sinks import NpySink, NullSink, Sink, WavSink
from sigstream.stream.io.sources import GeneratorSource, NpySource, Source, WavSource

SOURCE_KINDS = ("npy", "wav", "synth", "zmq", "mic")
_BY_EXTENSION = {".npy": "npy", ".npz": "npy", ".wav": "wav", ".flac": "wav", ".ogg": "wav"}
SINK_KINDS = ("npy", "wav", "null", "zmq", "speaker")
AUDIO_KINDS = {"source": "mic", "sink": "speaker"}


def audio_target(spec: str, role: str) -> tuple[bool, int | str | None]:
    """(is this the live audio spec for ``role``, the device: index, name or None)."""
    kind, target, opts = split_spec(spec)
    if kind != AUDIO_KINDS[role]:
        return False, None
    _no_leftovers(spec, opts)
    if not target:
        return True, None
    return True, int(target) if target.strip().lstrip("-").isdigit() else target


def with_kind(spec: str) -> str:
    """``spec`` with ``KIND:`` put in front when it is a bare file name whose extension
    says the kind (``in.wav`` -> ``wav:in.wav``); any other spec unchanged."""
    head, colon, _ = spec.partition(":")
    if colon and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", head.strip()):
        return spec  # KIND:... (a known kind, or an unknown one that gets its error)
    path = spec.split(",", 1)[0]
    guessed = _BY_EXTENSION.get(os.path.splitext(path)[1].lower())
    return f"{guessed}:{spec}" if guessed else spec


def split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"wav:a.wav,subtype=PCM_16"`` -> ``("wav", "a.wav", {"subtype": "PCM_16"})``; a bare
    file name first gets its kind from its extension (:func:`with_kind`)."""
    spec = with_kind(spec)
    kind, _, rest = spec.partition(":")
    parts = rest.split(",") if rest else []
    n_target = 0
    while n_target < len(parts) and "=" not in parts[n_target]:
        n_target += 1  # the target is every leading part without "=" (paths may hold commas)
    target = ",".join(parts[:n_target])
    return kind.strip().lower(), target, parse_options(",".join(parts[n_target:]))


def _float(opts: dict[str, str], key: str, default: float | None) -> float | None:
    if key not in opts:
        return default
    try:
        return float(opts.pop(key))
    except ValueError:
        raise ConfigError(f"option {key}= needs a number") from None


def _no_leftovers(spec: str, opts: dict[str, str]) -> None:
    if opts:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(opts))} in {spec!r}")


def make_source(spec: str, *, default_rate: float | None = None,
                default_channels: int = 1, allow_nan: bool = False) -> Source:
    """Build the source a spec names; ``allow_nan``: a .npy/.npz may hold NaN (missing
    samples, for a model that reads them so)."""
    kind, target, opts = split_spec(spec)
    if kind == "npy":
        _need_target(spec, target)
        rate = _float(opts, "rate", None)
        _no_leftovers(spec, opts)
        return NpySource(target, sample_rate=rate, allow_nan=allow_nan)
    if kind == "wav":
        _need_target(spec, target)
        _no_leftovers(spec, opts)
        return WavSource(target)
    if kind == "zmq":
        from sigstream.stream.net.pipes import parse_zmq_spec

        return parse_zmq_spec(spec, role="source").make_source(
            default_channels=default_channels, default_rate=default_rate)
    if kind == "synth":
        name = target or "sines"
        if name not in GENERATORS:
            raise ConfigError(
                f"unknown synthetic source {name!r}; available: {', '.join(GENERATORS)}"
            )
        entry = GENERATORS[name]
        values = {k: _float(opts, k, d) for k, d in (
            ("seconds", 10.0), ("rate", default_rate or entry.sample_rate),
            ("channels", float(default_channels)), ("seed", 0.0), ("snr", 0.0))}
        _no_leftovers(spec, opts)
        for key, v in values.items():
            if v is not None and not math.isfinite(v):
                raise ConfigError(f"synthetic source: {key}={v} is not a finite number: {spec!r}")
        seconds, rate, snr = values["seconds"], values["rate"], values["snr"]
        channels, seed = int(values["channels"] or 0), int(values["seed"] or 0)
        if seconds is None or seconds <= 0 or rate is None or rate <= 0 or channels < 1:
            raise ConfigError(f"synthetic source needs seconds > 0, rate > 0, channels >= 1: "
                              f"{spec!r}")
        gen = entry.build(sample_rate=rate, channels=channels, seed=seed, snr_db=snr)
        return GeneratorSource(gen, total_frames=int(round(seconds * rate)))
    raise ConfigError(
        f"unknown source {spec!r}; use one of: npy:PATH, wav:PATH, synth:NAME, zmq:ENDPOINT, "
        "mic[:DEVICE]"
    )


def make_sink(spec: str) -> Sink:
    """Build the sink a spec names."""
    kind, target, opts = split_spec(spec)
    if kind == "null":
        _no_leftovers(spec, opts)
        return NullSink()
    if kind == "zmq":
        from sigstream.stream.net.pipes import parse_zmq_spec

        return parse_zmq_spec(spec, role="sink").make_sink()
    if kind == "npy":
        _need_target(spec, target)
        _no_leftovers(spec, opts)
        return NpySink(target)
    if kind == "wav":
        _need_target(spec, target)
        subtype = opts.pop("subtype", None)
        _no_leftovers(spec, opts)
        return WavSink(target, subtype=subtype)
    raise ConfigError(
        f"unknown sink {spec!r}; use one of: npy:PATH, wav:PATH, zmq:ENDPOINT, null, "
        "speaker[:DEVICE]"
    )


def _need_target(spec: str, target: str) -> None:
    if not target:
        raise ConfigError(f"{spec!r} needs a path, e.g. {spec.split(':')[0]}:out.file")
