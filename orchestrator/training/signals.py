"""SIGINT/SIGTERM become a request to stop at the next step boundary (checkpoint, then exit)."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StopRequest:
    requested: bool = False
    signum: int | None = None
    _previous: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def install(cls) -> "StopRequest":
        """Handlers only in the main thread (Ray Train runs the loop in another thread: Ray handles signals there)."""
        req = cls()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                req._previous[sig] = signal.signal(sig, req._handle)
        return req

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
