"""Keep the mouse wheel from changing combo boxes and spin boxes it merely passes over.

Scrolling a panel moves the wheel over its controls; without this the first
combo box under the pointer takes the wheel and silently changes the preset,
the task or the factor. A guarded control takes the wheel only while it has
the keyboard focus (click it first); otherwise the wheel goes on to the panel.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QWidget


class WheelGuard(QObject):
    """Event filter: a wheel event over an unfocused control scrolls the area around it instead."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            parent = watched.parentWidget()
            while parent is not None and not isinstance(parent, QAbstractScrollArea):
                parent = parent.parentWidget()
            if parent is not None:
                QCoreApplication.sendEvent(parent.viewport(), event)
            return True
        return super().eventFilter(watched, event)


def guard_wheel(root: QWidget, guard: WheelGuard) -> int:
    """Guard every combo box and spin box inside ``root``; returns how many were guarded.

    Each gets ``Qt.StrongFocus`` (tab or click, not the wheel, gives it the focus).
    """
    controls = [*root.findChildren(QComboBox), *root.findChildren(QAbstractSpinBox)]
    for control in controls:
        control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        control.installEventFilter(guard)
    return len(controls)
