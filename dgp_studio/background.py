"""Short background jobs for the GUI (decoding and encoding image files).

Loading a 12-megapixel photo or writing a PNG takes long enough to stutter
the window, and ``engine.imageio`` imports torch, which the GUI thread must
not pay for. These jobs run on a small private ``QThreadPool``; their result
or error comes back to the GUI thread through a signal. They never touch the
model or the device: that is the engine thread's job (:mod:`dgp_studio.worker`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

LOG = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries a job's outcome to the GUI thread (``QRunnable`` is not a ``QObject``)."""

    succeeded = Signal(object)
    failed = Signal(object, str)


class _Job(QRunnable):
    def __init__(self, function: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._function = function
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self._function()
        except Exception as error:  # noqa: BLE001 - reported to the GUI, which shows one sentence
            self._relay.failed.emit(error, "".join(traceback.format_exception(error)))
            return
        self._relay.succeeded.emit(value)


class BackgroundJobs(QObject):
    """Runs functions off the GUI thread, one at a time, in submission order.

    ``on_success(value)`` or ``on_error(error, details)`` is called on the GUI
    thread. :meth:`wait` blocks until every job is done and its thread gone.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        # One thread: jobs (open, then save) stay in order and never compete for the CPU.
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(2_000)
        self._relays: set[_Relay] = set()

    def submit(
        self,
        function: Callable[[], Any],
        *,
        on_success: Callable[[Any], None],
        on_error: Callable[[BaseException, str], None],
    ) -> None:
        relay = _Relay(self)
        self._relays.add(relay)

        def finish() -> None:
            self._relays.discard(relay)
            relay.deleteLater()

        relay.succeeded.connect(on_success)
        relay.succeeded.connect(finish)
        relay.failed.connect(on_error)
        relay.failed.connect(finish)
        self._pool.start(_Job(function, relay))

    def pending(self) -> int:
        """Jobs submitted whose outcome has not been delivered yet."""
        return len(self._relays)

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until all jobs finished and the pool's thread exited; True on success."""
        return self._pool.waitForDone(timeout_ms)
