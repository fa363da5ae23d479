"""sigstream.models.training: the training loop."""
