"""The history strip: one thumbnail per finished (or stopped) restoration.

Each entry keeps the full-resolution composite, which is what "Save" writes.
Results of one photo stay side by side (a new result joins its photo's
group), each caption names its photo, and an entry is removed with the
context menu's "Remove" or the Delete key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeyEvent, QKeySequence, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QMenu, QWidget

from dgp_studio.class_picker import class_label
from dgp_studio.imaging import rgb_to_qimage

if TYPE_CHECKING:  # the engine's types import torch, which the GUI thread must not load
    from dgp_studio.worker import RestoreJob
    from engine.state import GeneratorState, RestoreResult

THUMBNAIL_SIZE = 64
_ENTRY_ROLE = Qt.ItemDataRole.UserRole
# Short task names for captions ("Colorize · tabby · 12:03").
TASK_TITLES: dict[str, str] = {
    "colorize": "Colorize",
    "inpaint": "Inpaint",
    "sr": "Super-resolve",
    "hybrid": "Hybrid",
    "reconstruct": "Reconstruct",
    "defend": "Defend",
}
# Every other photo's group of results is shaded, so where one photo's results end is visible.
_GROUP_SHADE = QColor(128, 128, 128, 40)


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class HistoryEntry:
    """One restoration result.

    ``composite`` is the full-resolution photo with the restored region
    blended in (``(H, W, 3)`` ``uint8``); ``image`` is the model-resolution output.
    ``result`` is the engine's ``RestoreResult`` (its ``state`` is what the studio
    edits: jitter, category transfer, morphs); ``job`` the request that made it
    (an edit is put back into that photo). ``edit`` names an edit of another
    result ("jitter σ 0.5", "→ goldfish"); empty for a restoration.
    ``class_number`` is the number users see for the class (its ImageNet
    index, as the class lists show it); ``class_index`` is the model's own
    index, which is never shown.
    """

    composite: np.ndarray
    image: np.ndarray
    task: str
    class_index: int | None
    class_name: str
    seconds: float
    cancelled: bool = False
    source_path: str | None = None
    photo_serial: int = 0  # which opened photo it belongs to (the window counts them)
    finished_at: float = field(default_factory=time.time)
    result: RestoreResult | Any | None = None
    job: RestoreJob | None = None
    edit: str = ""
    class_number: int | None = None
    photo_name: str = ""  # what the photo it belongs to is called ("cat.jpg", "pasted image")
    model_identity: str = ""  # the model that made it (a cache hit of the same run is not added twice)

    @property
    def state(self) -> GeneratorState | None:
        """The result's ``GeneratorState`` (None for an entry made without the engine)."""
        return None if self.result is None else self.result.state

    def task_title(self) -> str:
        return TASK_TITLES.get(self.task, self.task)

    def stopped_text(self) -> str:
        """``"stopped at 40 %"`` for a cancelled run (empty otherwise)."""
        if not self.cancelled:
            return ""
        done, total = _steps(self.result)
        if total:
            return f"stopped at {round(100 * done / total)} %"
        return "stopped early"

    def caption(self) -> str:
        """``"cat.jpg"`` over ``"Colorize · tabby · 12:03"`` (the edit, or "stopped at 40 %", last)."""
        clock = time.strftime("%H:%M", time.localtime(self.finished_at))
        parts = [self.task_title(), self.class_name, self.edit or clock]
        if self.cancelled and not self.edit:
            parts.append(self.stopped_text())
        line = " \u00b7 ".join(parts)
        return f"{self.photo_name}\n{line}" if self.photo_name else line

    def tooltip(self) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(self.finished_at))
        shown = self.class_name
        if self.class_number is not None:
            shown = class_label(self.class_number, self.class_name)
        photo = f"Photo: {self.photo_name}\n" if self.photo_name else ""
        if self.edit:
            return f"{photo}Task: {self.task_title()}\nClass: {shown}\nEdit: {self.edit}, made at {clock}"
        stopped = ""
        if self.cancelled:
            done, total = _steps(self.result)
            stopped = (
                f"\nStopped by you after {done} of {total} iterations: not a finished result"
                if total
                else "\nStopped by you before the end: not a finished result"
            )
        return (
            f"{photo}Task: {self.task_title()}\nClass: {shown}\nTook {_duration_text(self.seconds)}, "
            f"finished at {clock}{stopped}"
        )


def _steps(result: Any) -> tuple[int, int]:
    """(iterations run, iterations planned) of a result; (0, 0) when unknown."""
    done = getattr(result, "steps_done", None)
    total = getattr(result, "total_steps", None)
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return done, total
    return 0, 0


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class HistoryStrip(QListWidget):
    """A horizontal strip of result thumbnails, grouped by photo, oldest at the left.

    Signals
    -------
    entrySelected(object)
        The :class:`HistoryEntry` the user clicked (or that was just added).
    entryRemoved(object)
        A :class:`HistoryEntry` was removed (context menu "Remove", Delete).
    """

    entrySelected = Signal(object)
    entryRemoved = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.setGridSize(QSize(THUMBNAIL_SIZE + 150, THUMBNAIL_SIZE + 44))
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMBNAIL_SIZE + 62)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_context_menu)
        self.remove_action = QAction("Remove", self)
        self.remove_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.remove_action.setToolTip("Remove the selected result from the history (Delete)")
        self.remove_action.triggered.connect(lambda: self.remove_entry(self.current_entry()))
        self.addAction(self.remove_action)
        self.currentItemChanged.connect(self._on_current_changed)

    def add_entry(self, entry: HistoryEntry) -> None:
        """Add a thumbnail for ``entry`` after the last result of its photo (at the end for a new
        photo) and select it."""
        thumbnail = QPixmap.fromImage(rgb_to_qimage(entry.composite)).scaled(
            THUMBNAIL_SIZE,
            THUMBNAIL_SIZE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        item = QListWidgetItem(QIcon(thumbnail), entry.caption())
        item.setData(_ENTRY_ROLE, entry)
        item.setToolTip(entry.tooltip())
        self.insertItem(self._insert_row(entry), item)
        self._shade_groups()
        self.setCurrentItem(item)
        self.scrollToItem(item)

    def _insert_row(self, entry: HistoryEntry) -> int:
        same_photo = [row for row, other in enumerate(self.entries()) if other.photo_serial == entry.photo_serial]
        return same_photo[-1] + 1 if same_photo and entry.photo_serial else self.count()

    def _shade_groups(self) -> None:
        group, previous = 0, None
        for row in range(self.count()):
            item = self.item(row)
            serial = item.data(_ENTRY_ROLE).photo_serial
            if row and serial != previous:
                group += 1
            previous = serial
            item.setBackground(_GROUP_SHADE if group % 2 else QColor(0, 0, 0, 0))

    def select_entry(self, entry: HistoryEntry) -> bool:
        """Select ``entry`` (``entrySelected`` follows); False when it is not in the strip."""
        row = self._row_of(entry)
        if row is None:
            return False
        if self.currentRow() == row:
            self.entrySelected.emit(entry)
        else:
            self.setCurrentRow(row)
        self.scrollToItem(self.item(row))
        return True

    def remove_entry(self, entry: HistoryEntry | None) -> bool:
        """Remove ``entry`` from the strip (``entryRemoved`` follows); False when it is not there."""
        row = None if entry is None else self._row_of(entry)
        if row is None:
            return False
        self.blockSignals(True)
        try:
            self.takeItem(row)
        finally:
            self.blockSignals(False)
        self._shade_groups()
        self.entryRemoved.emit(entry)
        if self.count():
            self.setCurrentRow(min(row, self.count() - 1))
            self.entrySelected.emit(self.current_entry())
        else:
            self.setCurrentRow(-1)
        return True

    def _row_of(self, entry: HistoryEntry) -> int | None:
        for row in range(self.count()):
            if self.item(row).data(_ENTRY_ROLE) is entry:
                return row
        return None

    def entries(self) -> list[HistoryEntry]:
        return [self.item(row).data(_ENTRY_ROLE) for row in range(self.count())]

    def current_entry(self) -> HistoryEntry | None:
        item = self.currentItem()
        return None if item is None else item.data(_ENTRY_ROLE)

    def _show_context_menu(self, position: QPoint) -> None:
        item = self.itemAt(position)
        if item is None:
            return
        self.setCurrentItem(item)
        menu = QMenu(self)
        menu.addAction(self.remove_action)
        menu.exec(self.viewport().mapToGlobal(position))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.currentItem() is not None:
            self.remove_entry(self.current_entry())
            event.accept()
            return
        super().keyPressEvent(event)

    def _on_current_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if current is not None:
            self.entrySelected.emit(current.data(_ENTRY_ROLE))
