"""The Qt binding must not leak references to None (PySide6-Essentials 6.12.0 on Python 3.11 does).

Each leaked reference brings CPython closer to "Fatal Python error: none_dealloc";
with 6.12.0 the app aborted seconds into a restore. constraints.txt pins a
sound release and pyproject.toml excludes 6.12.0; this test catches a bad pin.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject


def test_void_qt_calls_keep_none_references():
    probe = QObject()
    for _ in range(100):
        probe.setObjectName("warm-up")
    before = sys.getrefcount(None)
    for _ in range(20_000):
        probe.setObjectName("probe")  # returns void
    assert before - sys.getrefcount(None) < 100
