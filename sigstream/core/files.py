"""Writing files so that a reader never sees a half-written one.

:func:`write_atomic` writes to a fresh hidden temporary file in the target's folder
and renames it into place (``os.replace``, atomic on POSIX and Windows); a failure
or an interruption removes the temporary file and leaves any old file untouched.
Every file sigstream writes whole (checkpoints, exports, JSON, figures, npz) goes
through it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import IO

__all__ = ["write_atomic", "temp_name"]


def temp_name(path: str | os.PathLike) -> str:
    """A fresh hidden name in ``path``'s folder for a file that is renamed to ``path`` later.

    The name (``.<name>.<pid>-<random>.part``) is unique per process and call, so
    concurrent writers of the same target never share a temporary file. Writers open it
    exclusively (``"xb"`` / ``O_EXCL``) and hand libraries the open file, never the name,
    so no library picks a format from its ending.
    """
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.part")


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[IO[bytes]], object]) -> None:
    """Write ``data`` (bytes, or a function that writes into a binary file object) to
    ``path`` atomically.

    The file gets the usual permissions (0666 minus the umask), like ``open(path, "wb")``.
    """
    path = os.fspath(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_data_folder(out: str | os.PathLike, ours: set[str] | frozenset[str], what: str) -> None:
    """Refuse ``out`` as the output folder of a data recipe unless it is new, empty, or
    already holds such a data set (a ``manifest.json``): ConfigError if it is a file, or a
    folder holding anything but ``ours`` (the recipe's own names) that has no manifest."""
    from pathlib import Path

    from sigstream.core.errors import ConfigError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a folder")
    if path.is_dir() and not (path / "manifest.json").exists():
        other = sorted(p.name for p in path.iterdir()
                       if p.name not in ours and not p.name.startswith(".manifest.json."))
        if other:
            raise ConfigError(f"--out {path} is not empty and holds no {what} "
                              f"({other[0]!r}, ...): choose an empty or new folder")


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
