"""sigstream.models.enhancer: the causal GRU+FIR enhancer (model, data, training, evaluation).

``ENTRIES``: what this family adds to the model registry (built on first access, so
importing the package stays free of torch); ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval`` (``enhancer --arch causal``).
"""

from sigstream.models.training.family import Trainable

TRAINING = Trainable(
    command="enhancer",
    arch="causal",
    summary="the zero-lookahead causal enhancer (audio-like data)",
    description="the zero-lookahead causal enhancer on audio-like data (16 kHz). "
                "Deterministic for a given --seed and thread count.",
    config="sigstream.models.enhancer.train:CausalTrainConfig",
    train="sigstream.models.enhancer.train:train",
    eval_config="sigstream.models.enhancer.evaluate:CausalEvalConfig",
    evaluate="sigstream.models.enhancer.evaluate:run",
    eval_description="held-out audio-like clips: SNR improvement against the causal "
                     "baselines (Butterworth with drift removal, ...).",
    example="sigstream train enhancer --arch causal --out runs/a",
    eval_example="sigstream eval enhancer --arch causal --json r.json --figures figs/",
    aliases={"data.audio.sample_rate": ("--rate",),
             "data.audio.snr_range[0]": ("--snr-low",),
             "data.audio.snr_range[1]": ("--snr-high",)},
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig
        from sigstream.models.entry import ModelEntry

        return (
            ModelEntry(
                "enhancer", "causal enhancer, zero lookahead: frame-rate GRU steering a "
                "per-sample FIR (16 kHz audio-like signals)", EnhancerConfig, CausalEnhancer,
                weights="enhancer.pt", train="sigstream train enhancer --arch causal",
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
