"""sigstream.models.enhancer: the causal GRU+FIR enhancer (model, data, training, evaluation).

``ENTRIES``: what this family adds to the model registry.
"""

from sigstream.models.enhancer.model import CausalEnhancer, EnhancerConfig
from sigstream.models.entry import ModelEntry

ENTRIES = (
    ModelEntry(
        "enhancer", "causal enhancer, zero lookahead: frame-rate GRU steering a per-sample FIR "
        "(16 kHz audio-like signals)", EnhancerConfig, CausalEnhancer,
        weights="enhancer.pt", train="sigstream train enhancer --arch causal",
    ),
)
