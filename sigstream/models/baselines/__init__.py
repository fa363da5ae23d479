"""sigstream.models.baselines: classical filters and baselines the models are measured against.

``ENTRIES``: the built-in classical models (and ``identity``) of the model registry.
"""

from dataclasses import dataclass

from sigstream.core.contract import Identity
from sigstream.models.baselines.butterworth import Butterworth, ButterworthConfig
from sigstream.models.baselines.savgol import SavgolConfig, savgol_stream
from sigstream.models.entry import ModelEntry


@dataclass(frozen=True)
class IdentityConfig:
    channels: int = 1
    sample_rate: float = 1000.0


def identity(config: IdentityConfig) -> Identity:
    return Identity(config.channels, config.sample_rate)


ENTRIES = (
    ModelEntry(
        "butterworth", "causal Butterworth IIR filter (scipy sos), the classical baseline",
        ButterworthConfig, Butterworth,
    ),
    ModelEntry(
        "savgol", "Savitzky-Golay smoothing per window, crossfaded (a window-model baseline)",
        SavgolConfig, savgol_stream,
    ),
    ModelEntry(
        "identity", "passes samples through unchanged (measures runtime overhead)",
        IdentityConfig, identity,
    ),
)
