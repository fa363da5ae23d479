"""sigstream.models.augmentor: the SensorAugmentor (model, data, training, evaluation, plots).

``ENTRIES``: what this family adds to the model registry (built on first access, so
importing the package stays free of torch); ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval`` (``enhancer --arch augmentor``).
"""

from sigstream.models.training.family import Trainable

TRAINING = Trainable(
    command="enhancer",
    arch="augmentor",
    summary="the SensorAugmentor window model (vibration)",
    description="the SensorAugmentor window model on the vibration task (128-sample "
                "windows, 100 Hz); --init with --freeze encoder fine-tunes, --init of "
                "another --window transfers the encoder. --data PAIRS.npz (or LOW,HIGH) "
                "trains on your own aligned recordings: the first 70 % (its last 15 % "
                "validates), the last 30 % held out (docs/sensors.md). Deterministic for a "
                "given --seed and thread count.",
    config="sigstream.models.augmentor.train:AugmentorTrainConfig",
    train="sigstream.models.augmentor.train:train",
    eval_config="sigstream.models.augmentor.evaluate:AugmentorEvalConfig",
    evaluate="sigstream.models.augmentor.evaluate:run",
    eval_description="held-out windows and a long stream with MSE, MAE, RMSE, PSNR, SSIM, "
                     "SNR and SNR improvement; the classical baselines (Wiener, causal "
                     "Butterworth with drift removal, Savitzky-Golay, spectral gating) run "
                     "on the same data in the same run. --data PAIRS scores your own pair's "
                     "held-out last 30 % instead (plus a zero-phase Butterworth); "
                     "--uncertainty reports calibrated 95 % interval coverage.",
    example="sigstream train enhancer --arch augmentor --seed 0 --epochs 90 --out runs/aug",
    eval_example="sigstream eval enhancer --arch augmentor --uncertainty 20 --json r.json "
                 "--figures figs/",
    aliases={"data.sensor": ("--sensor",)},
)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: ENTRIES imports torch on first use
    if name == "ENTRIES":
        from sigstream.models.augmentor.model import AugmentorConfig, augmentor_stream
        from sigstream.models.entry import ModelEntry

        return (
            ModelEntry(
                "augmentor", "SensorAugmentor: 128-sample vibration windows, low- to "
                "high-quality (+ actuator commands with actuator=true), crossfaded (100 Hz)",
                AugmentorConfig, augmentor_stream, weights="augmentor.pt",
                stream_options=("hop", "actuator"),
                train="sigstream train enhancer --arch augmentor",
            ),
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
