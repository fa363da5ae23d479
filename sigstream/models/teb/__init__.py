"""sigstream.models.teb: the TEB-VAE for CTG signals.

Model, front-end, data, training, evaluation and plots. ``TRAINING``: what it adds to
``sigstream train`` and ``sigstream eval`` (it is not in the model registry: no
ONNX/TorchScript export; load it with :func:`sigstream.models.teb.train.load_teb`).
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
