"""The thread lifecycle shared by the ZeroMQ services (``Server``, ``Router``)."""

from __future__ import annotations

import threading
from typing import Any


class ThreadedService:
    """``start()`` binds in the caller's thread (so errors raise there) and runs
    ``serve_forever()`` in a daemon thread; ``stop()`` asks it to finish gracefully.

    Subclasses provide ``bind()`` and ``serve_forever()``, call
    ``_init_lifecycle()`` in ``__init__``, set ``self._serving`` once they serve,
    and honour ``self._stop``.
    """

    _thread_name = "sigstream-service"

    def _init_lifecycle(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

    def bind(self) -> Any:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def serve_forever(self) -> None:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def start(self, timeout: float = 10.0):
        """Bind here, then serve in a daemon thread; returns self once it serves."""
        self.bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve_forever, name=self._thread_name,
                                        daemon=True)
        self._thread.start()
        if not self._serving.wait(timeout):
            raise RuntimeError(f"the {self._thread_name} thread did not start")
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Graceful stop: finish what is in flight, reply, close. Callable from any thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
