"""The history strip: one thumbnail per finished (or stopped) restoration.

Each entry keeps the full-resolution composite, which is what "Save" writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from dgp_studio.class_picker import class_label
from dgp_studio.imaging import rgb_to_qimage

if TYPE_CHECKING:  # the engine's types import torch, which the GUI thread must not load
    from dgp_studio.worker import RestoreJob
    from engine.state import GeneratorState, RestoreResult

THUMBNAIL_SIZE = 64
_ENTRY_ROLE = Qt.ItemDataRole.UserRole


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

    @property
    def state(self) -> GeneratorState | None:
        """The result's ``GeneratorState`` (None for an entry made without the engine)."""
        return None if self.result is None else self.result.state

    def caption(self) -> str:
        """``"inpaint · goldfish · 12 s"`` (``(stopped)`` for a cancelled run; the edit for an edit)."""
        if self.edit:
            return f"{self.task} \u00b7 {self.class_name} \u00b7 {self.edit}"
        stopped = " (stopped)" if self.cancelled else ""
        return f"{self.task} \u00b7 {self.class_name} \u00b7 {_duration_text(self.seconds)}{stopped}"

    def tooltip(self) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(self.finished_at))
        shown = self.class_name
        if self.class_number is not None:
            shown = class_label(self.class_number, self.class_name)
        if self.edit:
            return f"Task: {self.task}\nClass: {shown}\nEdit: {self.edit}, made at {clock}"
        return (
            f"Task: {self.task}\nClass: {shown}\nTook {_duration_text(self.seconds)}, "
            f"finished at {clock}{' — stopped early' if self.cancelled else ''}"
        )


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class HistoryStrip(QListWidget):
    """A horizontal strip of result thumbnails, newest at the right.

    Signals
    -------
    entrySelected(object)
        The :class:`HistoryEntry` the user clicked (or that was just added).
    """

    entrySelected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.setGridSize(QSize(THUMBNAIL_SIZE + 96, THUMBNAIL_SIZE + 36))
        self.setWordWrap(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMBNAIL_SIZE + 44)
        self.currentItemChanged.connect(self._on_current_changed)

    def add_entry(self, entry: HistoryEntry) -> None:
        """Append a thumbnail for ``entry`` and select it."""
        thumbnail = QPixmap.fromImage(rgb_to_qimage(entry.composite)).scaled(
            THUMBNAIL_SIZE,
            THUMBNAIL_SIZE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        item = QListWidgetItem(QIcon(thumbnail), entry.caption())
        item.setData(_ENTRY_ROLE, entry)
        item.setToolTip(entry.tooltip())
        self.addItem(item)
        self.setCurrentItem(item)
        self.scrollToItem(item)

    def entries(self) -> list[HistoryEntry]:
        return [self.item(row).data(_ENTRY_ROLE) for row in range(self.count())]

    def current_entry(self) -> HistoryEntry | None:
        item = self.currentItem()
        return None if item is None else item.data(_ENTRY_ROLE)

    def _on_current_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if current is not None:
            self.entrySelected.emit(current.data(_ENTRY_ROLE))
