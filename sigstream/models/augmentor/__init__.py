"""sigstream.models.augmentor: the SensorAugmentor (model, data, training, evaluation, plots).

``ENTRIES``: what this family adds to the model registry.
"""

from sigstream.models.augmentor.model import AugmentorConfig, augmentor_stream
from sigstream.models.entry import ModelEntry

ENTRIES = (
    ModelEntry(
        "augmentor", "SensorAugmentor: 128-sample vibration windows, low- to high-quality "
        "(+ actuator commands with actuator=true), crossfaded (100 Hz)",
        AugmentorConfig, augmentor_stream, weights="augmentor.pt",
        stream_options=("hop", "actuator"),
        train="sigstream train enhancer --arch augmentor",
    ),
)
