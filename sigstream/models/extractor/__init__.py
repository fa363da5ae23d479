"""sigstream.models.extractor: the LSTM frequency extractor.

Model, data, training, evaluation and plots.

``ENTRIES``: what this family adds to the model registry (built on first access, so
importing the package stays free of torch); ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval``.
"""

from sigstream.models.training.family import Trainable

TRAINING = Trainable(
    command="extractor",
    summary="the LSTM frequency extractor",
    description="Train the frequency extractor (1, 3, 5, 7 Hz components of a 1 kHz "
                "mixture). --epochs defaults to 150 for the realistic preset and to 400 "
                "epochs of the growing-prefix curriculum for seed. Deterministic for a given "
                "--seed.",
    config="sigstream.models.extractor.train:ExtractorTrainConfig",
    train="sigstream.models.extractor.train:train",
    eval_config="sigstream.models.extractor.evaluate:ExtractorEvalConfig",
    evaluate="sigstream.models.extractor.evaluate:run",
    eval_description="Evaluate the extractor on held-out data; the band-pass baseline is "
                     "measured on the same data in the same run.",
    example="sigstream train extractor --epochs 500 --patience 40 --out runs/real",
    eval_example="sigstream eval extractor --json r.json --figures figs/",
    aliases={"data.mixture.snr_db": ("--snr",)},
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.entry import ModelEntry
        from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor

        return (
            ModelEntry(
                "extractor", "LSTM frequency extractor: 1, 3, 5, 7 Hz components of a 1 kHz "
                "mixture", ExtractorConfig, FrequencyExtractor, synth="mixture",
                weights="extractor-{preset}.pt",
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
