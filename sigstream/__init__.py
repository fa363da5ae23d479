"""sigstream: real-time streaming signal processing with small neural models."""
