"""sigstream.models.forecaster: the harmonic forecaster (model, data, training, evaluation, plots).

``ENTRIES``: what this family adds to the model registry (built on first access, so
importing the package stays free of torch); ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval``.
"""

from sigstream.models.training.family import Trainable

TRAINING = Trainable(
    command="forecaster",
    summary="the harmonic forecaster (curriculum up to 45 components)",
    description="Curriculum training of a harmonic forecaster: the number of components "
                "grows stage by stage; an epoch is --val-every updates and a validation. "
                "Deterministic for a given --seed; --resume continues an interrupted or "
                "budget-stopped run exactly.",
    config="sigstream.models.forecaster.train:ForecasterTrainConfig",
    train="sigstream.models.forecaster.train:train",
    eval_config="sigstream.models.forecaster.evaluate:ForecasterEvalConfig",
    evaluate="sigstream.models.forecaster.evaluate:run",
    eval_description="MSE per horizon step for 3-7, 10, 20, 30 and 45 components, with and "
                     "without noise: every --checkpoint given (repeat it; default: both "
                     "shipped presets) and the DFT and linear-prediction baselines, measured "
                     "in the same run on the same windows. --real (or --series DIR): the real "
                     "test series of `sigstream data series` instead, with persistence, "
                     "seasonal naive and a global AR fit as further baselines; --data "
                     "FILE.npy: a series of your own (last 30 percent held out).",
    example="sigstream train forecaster --variant mlp_gru --seed 1 --steps-per-stage 250 "
            "--final-steps 6000 --max-minutes 30 --ls-orders 52,56,60,64,68,72,76 "
            "--clean-weight 30 --out runs/mlp",
    eval_example="sigstream eval forecaster --json fc.json --figures figs/",
    renamed={"fit.max_minutes": ("--minutes",)},
    resumable=True,
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.entry import ModelEntry
        from sigstream.models.forecaster.model import ForecasterConfig, HarmonicForecaster

        return (
            ModelEntry(
                "forecaster", "harmonic forecaster: the next `horizon` samples at every "
                "sample (or every forecast_every=N), (B, T / N, H)", ForecasterConfig,
                HarmonicForecaster, weights="forecaster-{preset}.pt",
                stream_options=("forecast_every", "memory"),
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
