"""Ray for ``batch --engine ray`` and ``serve --engine ray``: imported only there."""

from __future__ import annotations

import socket
from typing import Any

from sigstream.core.errors import ConfigError

__all__ = ["import_ray", "start_ray", "check_address"]


def import_ray() -> Any:
    """The ``ray`` module, or one error line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray, which is not installed: pip install "
                          "'sigstream[ray]'") from None
    return ray


def start_ray(address: str | None, num_cpus: int) -> tuple[Any, bool]:
    """``(ray, started)``: Ray initialised on ``address`` (auto, ray://HOST:PORT) or, with
    None, a private local instance bound to 127.0.0.1 without dashboard; ``started`` when
    this call initialised it (the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "configure_logging": False}
    if address:
        check_address(address)
        try:
            ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--address {address}: cannot join that Ray cluster: "
                              f"{first}") from None
    else:
        ray.init(num_cpus=max(1, num_cpus), _node_ip_address="127.0.0.1", **kw)
    return ray, True


def check_address(address: str, timeout: float = 5.0) -> None:
    """One error line, within ``timeout`` s, when nothing listens at a ``HOST:PORT`` or
    ``ray://HOST:PORT`` address (Ray itself would retry for minutes); ``auto`` is left to
    Ray, which fails at once when no cluster runs on this machine."""
    hostport = address.split("://", 1)[1] if "://" in address else address
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConfigError(f"--address {address}: no Ray cluster reachable there "
                          f"({reason.lower()})") from None
