"""sigstream.models.extractor: the LSTM frequency extractor.

Model, data, training, evaluation and plots.

``ENTRIES``: what this family adds to the model registry.
"""

from sigstream.models.entry import ModelEntry
from sigstream.models.extractor.model import ExtractorConfig, FrequencyExtractor

ENTRIES = (
    ModelEntry(
        "extractor", "LSTM frequency extractor: 1, 3, 5, 7 Hz components of a 1 kHz mixture",
        ExtractorConfig, FrequencyExtractor, synth="mixture", weights="extractor-{preset}.pt",
    ),
)
