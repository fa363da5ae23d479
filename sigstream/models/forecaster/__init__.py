"""sigstream.models.forecaster: the harmonic forecaster (model, data, training, evaluation, plots).

``ENTRIES``: what this family adds to the model registry.
"""

from sigstream.models.entry import ModelEntry
from sigstream.models.forecaster.model import ForecasterConfig, HarmonicForecaster

ENTRIES = (
    ModelEntry(
        "forecaster", "harmonic forecaster: the next `horizon` samples at every sample, (B, T, H)",
        ForecasterConfig, HarmonicForecaster, weights="forecaster-{preset}.pt",
    ),
)
