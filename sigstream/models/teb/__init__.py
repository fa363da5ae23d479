"""sigstream.models.teb: the TEB-VAE for CTG signals.

Model, front-end, data, training, evaluation and plots. ``ENTRIES``: ``teb`` in the
model registry (raw CTG in bpm / mmHg, forecasts in bpm; :mod:`sigstream.models.teb.stream`),
built on first access so importing the package stays free of torch; ``TRAINING``: what
it adds to ``sigstream train`` and ``sigstream eval``.
"""

from sigstream.models.training.family import Trainable

TRAINING = Trainable(
    command="teb",
    summary="the TEB-VAE forecasting FHR from synthetic CTG",
    description="Train the TEB-VAE on synthetic cardiotocography records. Deterministic for "
                "a given --seed.",
    config="sigstream.models.teb.train:TebTrainConfig",
    train="sigstream.models.teb.train:train",
    eval_config="sigstream.models.teb.evaluate:TebEvalConfig",
    evaluate="sigstream.models.teb.evaluate:run",
    eval_description="Evaluate the TEB-VAE on held-out records (default: the shipped "
                     "weights); persistence and a linear AR baseline are measured in the "
                     "same run. --figures writes teb_forecast.pdf (4 panels) and "
                     "teb_nll_by_horizon.png.",
    example="sigstream train teb --out runs/teb --epochs 17 --seed 0",
    eval_example="sigstream eval teb --json teb.json --figures figs",
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.entry import ModelEntry
        from sigstream.models.teb.stream import TebForecaster, TebModelConfig

        return (
            ModelEntry(
                "teb", "TEB-VAE on CTG at 4 Hz: [FHR bpm, UP mmHg] in, every 16 samples the "
                "next 2 minutes' FHR mean (bpm) and log-variance out, (B, T / 16, 960)",
                TebModelConfig, TebForecaster, synth="ctg", weights="teb-{preset}.pt",
                stream_options=("every",), train="sigstream train teb",
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
