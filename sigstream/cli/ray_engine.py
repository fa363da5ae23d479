"""Ray for ``batch --engine ray`` and ``serve --engine ray``: imported only there."""

from __future__ import annotations

from typing import Any

from sigstream.core.errors import ConfigError

__all__ = ["import_ray", "start_ray"]


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
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=max(1, num_cpus), _node_ip_address="127.0.0.1", **kw)
    return ray, True
