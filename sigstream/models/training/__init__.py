"""sigstream.models.training: what every family's trainer stands on.

* :mod:`.config` (torch-free): configuration conventions (fields with their help, parts,
  ``DERIVED``), :func:`~.config.build` / :func:`~.config.with_options`, and
  :class:`~.config.FitConfig`.
* :mod:`.loop`: :func:`~.loop.fit`, the one training loop (resume, Ctrl-C, history).
* :mod:`.base`: what fit() and the families share: the :class:`~.base.Task` a family
  implements, :class:`~.base.Callback`, :class:`~.base.Loop` and the one result type
  :class:`~.base.TrainResult`.
* :mod:`.callbacks`: progress, plateaus, early stopping, moving average, budget, plots,
  and the :class:`~.callbacks.Curriculum` base.
* :mod:`.family` (torch-free): :class:`~.family.Trainable`, what a family declares for
  ``sigstream train`` / ``sigstream eval``.
* :mod:`.bptt`: truncated backpropagation through time with carried state.

Nothing is imported here, so the torch-free modules stay torch-free.
"""
