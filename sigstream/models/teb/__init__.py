"""sigstream.models.teb: the TEB-VAE for CTG signals.

Model, front-end, data, training, evaluation and plots.
"""
