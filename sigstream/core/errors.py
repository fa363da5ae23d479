"""Errors a user can cause.

Every exception a user can trigger with bad input (a missing file, an unknown
model, a malformed spec, a wrong block size, ...) derives from
:class:`SigstreamError`. Its message is one line that says what went wrong and
what to do next; the CLI prints it as ``error: <message>`` and exits non-zero,
without a traceback.
"""

from __future__ import annotations


class SigstreamError(Exception):
    """A problem the user can fix; ``str(err)`` is a one-line explanation."""


class ConfigError(SigstreamError):
    """An invalid option, spec, model name or parameter combination."""


class InputError(SigstreamError):
    """Input data that cannot be used: unreadable file, wrong rate/channels, non-finite samples."""


class BufferOverflow(SigstreamError):
    """A ring buffer with the ``error`` policy was asked to hold more than its capacity."""
