"""sigstream.export: a streamable model's ``step`` as an ONNX or TorchScript file, and runners.

* :func:`sigstream.export.onnx.export_onnx` and
  :func:`sigstream.export.torchscript.export_torchscript` write
  ``(x, *state_leaves) -> (y, *new_state_leaves)`` with dynamic batch and time axes and
  the model's metadata inside the file.
* :func:`sigstream.export.runtime.load_runner` opens either kind (recognised by content)
  and returns an object :class:`~sigstream.stream.runner.StreamRunner` drives on numpy
  arrays; the ONNX path never imports torch.
"""
