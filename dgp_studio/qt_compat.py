"""A guard against a reference-count bug in PySide6 6.12.0 on Python 3.11.

Measured in this project (PySide6-Essentials 6.12.0, CPython 3.11.7): every
call of a Qt method that returns nothing (``QLabel.setText``,
``QWidget.setEnabled``, ``QListWidgetItem.setData`` …) takes one reference
from ``None`` without giving it back. 6.11.3 does not. On Python 3.12+
``None`` is immortal and the bug is harmless; on 3.11 the interpreter aborts
("Fatal Python error: none_dealloc: deallocating None") once the calls add up
to None's reference count — seconds into a restoration that updates the window.

The real fix is a PySide6 release without the bug (``!=6.12.0`` on 3.11).
Until then :func:`install_none_refcount_guard` detects the leak with a short
probe and, only when it is present, keeps None's reference count topped up
from a timer. It changes nothing on unaffected versions.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

from PySide6.QtCore import QCoreApplication, QObject, QTimer

LOG = logging.getLogger(__name__)

PROBE_CALLS = 200
HEADROOM = 5_000_000            # references kept in hand: far more void calls than fit between two ticks
TOP_UP_INTERVAL_MS = 200

_guard: _NoneRefcountGuard | None = None


def none_references_lost_per_call() -> float:
    """How many references ``None`` loses per call of a void Qt method (0.0 on a sound binding)."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("probe")           # returns void
    lost = before - sys.getrefcount(None)
    _add_none_references(max(lost, 0))         # give back what the probe took
    return max(lost, 0) / PROBE_CALLS


def _add_none_references(count: int) -> None:
    if count > 0:
        # CPython < 3.12: ob_refcnt is the object's first field (a Py_ssize_t).
        ctypes.c_ssize_t.from_address(id(None)).value += count


class _NoneRefcountGuard(QObject):
    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.floor = sys.getrefcount(None) + HEADROOM
        _add_none_references(HEADROOM)
        self._timer = QTimer(self)
        self._timer.setInterval(TOP_UP_INTERVAL_MS)
        self._timer.timeout.connect(self.top_up)
        self._timer.start()

    def top_up(self) -> None:
        _add_none_references(self.floor - sys.getrefcount(None))


def install_none_refcount_guard() -> bool:
    """Start the guard if this interpreter and PySide6 need it (idempotent); True when active.

    Needs a ``QCoreApplication`` (the guard's timer lives on it).
    """
    global _guard
    if _guard is not None:
        return True
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("install_none_refcount_guard() needs a QApplication")
    if none_references_lost_per_call() < 0.5:
        return False
    import PySide6

    LOG.warning("PySide6 %s leaks references to None on Python %s; compensating. Use a PySide6 release "
                "other than 6.12.0 to remove this workaround.", PySide6.__version__, platform.python_version())
    _guard = _NoneRefcountGuard(app)
    _guard.top_up()
    return True


def top_up_now() -> None:
    """Restore the headroom at once (before a long stretch without event processing)."""
    if _guard is not None:
        _guard.top_up()
