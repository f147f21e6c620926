"""The morph timeline: keyframes from the history, a scrubbable playhead, easing, preview playback.

Keyframes are results (two or more: A → B → C …); for K keyframes, segment i
morphs keyframe i into keyframe i + 1, interpolating z, the class embedding
and every weight and buffer of the fine-tuned generators (the engine's
:class:`engine.api.MorphRenderer`). Segments take equal time and each has its
own easing.

* Dragging the playhead renders that position live: requests coalesce on the
  engine thread, which renders only the latest position asked for.
* Play steps a ``QTimer`` through pre-rendered frames (rendered on the engine
  thread in batches, with the same frame times as the export), looping or
  ping-ponging as set.
* Keyframe thumbnails show each state rendered by the engine, the very pixels
  the morph starts and ends with (a result's own image can differ: a
  super-resolution result is projected onto its input after rendering).

This module imports neither torch nor the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QIcon,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.history import HistoryEntry
from dgp_studio.imaging import rgb_to_qimage
from dgp_studio.studio_jobs import EASINGS, StudioController, timeline_position
from dgp_studio.studio_panel import ImagePreview

DEFAULT_FRAMES = 48
MAX_FRAMES = 2000
DEFAULT_FPS = 24
KEYFRAME_THUMBNAIL = 56
_MARGIN = 14  # pixels left and right of the bar, so the end keyframes' markers fit


def keyframe_letter(index: int) -> str:
    """A, B, … Z, then K27, K28, …"""
    return chr(ord("A") + index) if index < 26 else f"K{index + 1}"


@dataclass(frozen=True, eq=False)
class AnimationPlan:
    """What an export of the timeline needs (Qt-free).

    ``keyframes`` are ``GeneratorState`` objects; ``rendered`` holds the
    ``frames`` preview frames (``(R, R, 3)`` uint8) when all are rendered for
    exactly these settings, so that an export need not render them again.
    """

    keyframes: tuple[Any, ...]
    frames: int
    easing: tuple[str, ...]
    fps: float
    loop: bool
    ping_pong: bool
    rendered: tuple[np.ndarray, ...] | None = None


def playback_order(frames: int, *, ping_pong: bool) -> list[int]:
    """Frame indices for one pass: 0 … N−1, then N−2 … 1 when ping-ponging (as exported)."""
    forward = list(range(frames))
    return forward + forward[-2:0:-1] if ping_pong else forward


class TimelineBar(QWidget):
    """Segments between keyframe markers, and a playhead to drag.

    Signals
    -------
    scrubbed(float)
        The user moved the playhead (mouse press or drag, arrow keys) to this
        position in [0, 1].
    """

    scrubbed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._keyframes = 0
        self._easing: list[str] = []
        self._position = 0.0
        self._frames = DEFAULT_FRAMES
        self._rendered: list[bool] = []
        self.setMinimumHeight(54)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("Drag to scrub through the morph (←/→ step one frame, Home/End jump to the ends)")

    def sizeHint(self) -> QSize:
        return QSize(480, 58)

    def set_layout(self, keyframes: int, easing: list[str], frames: int) -> None:
        self._keyframes, self._easing, self._frames = keyframes, list(easing), frames
        self.update()

    def set_rendered(self, rendered: list[bool]) -> None:
        """Which preview frames are rendered (a thin strip under the bar)."""
        self._rendered = list(rendered)
        self.update()

    def position(self) -> float:
        return self._position

    def set_position(self, position: float) -> None:
        """Move the playhead without emitting ``scrubbed``."""
        self._position = min(max(float(position), 0.0), 1.0)
        self.update()

    def x_of(self, position: float) -> float:
        return _MARGIN + position * max(self.width() - 2 * _MARGIN, 1)

    def position_at(self, x: float) -> float:
        return min(max((x - _MARGIN) / max(self.width() - 2 * _MARGIN, 1), 0.0), 1.0)

    def _scrub_to(self, position: float) -> None:
        self.set_position(position)
        self.scrubbed.emit(self._position)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._keyframes >= 2:
            self._scrub_to(self.position_at(event.position().x()))
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton and self._keyframes >= 2:
            self._scrub_to(self.position_at(event.position().x()))
            event.accept()
        else:
            super().mouseMoveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = 1.0 / max(self._frames - 1, 1)
        moves = {
            Qt.Key.Key_Left: self._position - step,
            Qt.Key.Key_Right: self._position + step,
            Qt.Key.Key_Home: 0.0,
            Qt.Key.Key_End: 1.0,
        }
        if event.key() in moves and self._keyframes >= 2:
            # Snap to the frame grid, so arrow keys land on exactly the exported frames.
            frame = round(min(max(moves[event.key()], 0.0), 1.0) / step)
            self._scrub_to(frame * step)
            return
        super().keyPressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.window())
        top, bar_height = 16, 18
        left, right = self.x_of(0.0), self.x_of(1.0)
        if self._keyframes < 2:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, "Add two or more results as keyframes to morph"
            )
            painter.end()
            return
        segments = self._keyframes - 1
        for segment in range(segments):
            x0 = self.x_of(segment / segments)
            x1 = self.x_of((segment + 1) / segments)
            colour = QColor(70, 110, 160) if segment % 2 == 0 else QColor(90, 130, 180)
            painter.fillRect(QRectF(x0, top, x1 - x0, bar_height), colour)
            painter.setPen(QColor(235, 240, 250))
            easing = self._easing[segment] if segment < len(self._easing) else ""
            painter.drawText(QRectF(x0, top, x1 - x0, bar_height), Qt.AlignmentFlag.AlignCenter, easing)
        if self._rendered:
            count = len(self._rendered)
            for index, done in enumerate(self._rendered):
                if done:
                    x0 = self.x_of(index / count)
                    strip = QRectF(x0, top + bar_height + 2, max((right - left) / count, 1.0), 3)
                    painter.fillRect(strip, QColor(90, 190, 110))
        painter.setPen(QPen(palette.text().color(), 1))
        for index in range(self._keyframes):
            x = self.x_of(index / segments)
            diamond = QPolygonF(
                [QPointF(x, top - 2), QPointF(x + 5, top + 4), QPointF(x, top + 10), QPointF(x - 5, top + 4)]
            )
            painter.setBrush(QColor(250, 200, 60))
            painter.drawPolygon(diamond)
            painter.drawText(QRectF(x - 12, 0, 24, 12), Qt.AlignmentFlag.AlignCenter, keyframe_letter(index))
        x = self.x_of(self._position)
        painter.setPen(QPen(QColor(220, 50, 50), 2))
        painter.drawLine(QPointF(x, top - 4), QPointF(x, top + bar_height + 8))
        painter.setBrush(QColor(220, 50, 50))
        bottom = top + bar_height
        painter.drawPolygon(
            QPolygonF([QPointF(x - 5, bottom + 14), QPointF(x + 5, bottom + 14), QPointF(x, bottom + 7)])
        )
        painter.end()


class TimelineWidget(QWidget):
    """Keyframes, the scrub bar, easing per segment, frames/fps/loop, live preview and playback.

    Parameters
    ----------
    studio : StudioController
        Renders positions and frames on the engine thread.

    Signals
    -------
    previewShown(float)
        A rendered image for this playhead position is on screen.
    framesReady()
        Every preview frame for the current settings is rendered.
    keyframesChanged()
        Keyframes were added, removed or reordered.
    exportRequested()
        The Export button was clicked.
    addRequested()
        "Add selected result" was clicked (the window supplies the entry).
    """

    previewShown = Signal(float)
    framesReady = Signal()
    keyframesChanged = Signal()
    exportRequested = Signal()
    addRequested = Signal()

    def __init__(self, studio: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._studio = studio
        self._entries: list[HistoryEntry] = []
        self._keyframe_images: list[np.ndarray | None] = []  # engine renders of the keyframe states
        self._keyframes_id = 0
        self._easing: list[str] = []
        self._scrub_ids: list[int] = []  # requests in flight, oldest first
        self._scrub_positions: dict[int, float] = {}
        self._shown_position: float | None = None
        self._frames: list[np.ndarray | None] = []
        self._frames_id = 0
        self._play_order: list[int] = []
        self._play_cursor = 0

        self.keyframe_list = QListWidget()
        self.keyframe_list.setViewMode(QListView.ViewMode.IconMode)
        self.keyframe_list.setFlow(QListView.Flow.LeftToRight)
        self.keyframe_list.setWrapping(False)
        # Icon mode would let a drag place an icon anywhere without reordering the rows:
        # the order changes through Earlier/Later only, so the strip always shows the real order.
        self.keyframe_list.setMovement(QListView.Movement.Static)
        self.keyframe_list.setIconSize(QSize(KEYFRAME_THUMBNAIL, KEYFRAME_THUMBNAIL))
        self.keyframe_list.setGridSize(QSize(KEYFRAME_THUMBNAIL + 60, KEYFRAME_THUMBNAIL + 30))
        self.keyframe_list.setFixedHeight(KEYFRAME_THUMBNAIL + 40)
        self.keyframe_list.setToolTip("Keyframes in order (A, B, C, …); reorder with Earlier and Later")

        self.add_button = QPushButton("Add selected result")
        self.add_button.clicked.connect(self.addRequested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(lambda: self.remove_keyframe(self.keyframe_list.currentRow()))
        self.earlier_button = QPushButton("\u25c0 Earlier")
        self.earlier_button.clicked.connect(lambda: self.move_keyframe(self.keyframe_list.currentRow(), -1))
        self.later_button = QPushButton("Later \u25b6")
        self.later_button.clicked.connect(lambda: self.move_keyframe(self.keyframe_list.currentRow(), +1))
        key_buttons = QVBoxLayout()
        for button in (self.add_button, self.remove_button, self.earlier_button, self.later_button):
            key_buttons.addWidget(button)
        key_buttons.addStretch(1)

        self.bar = TimelineBar()
        self.bar.scrubbed.connect(self._on_scrubbed)
        self.easing_row = QHBoxLayout()
        self.easing_row.setContentsMargins(0, 0, 0, 0)
        self.easing_combos: list[QComboBox] = []
        easing_holder = QWidget()
        easing_layout = QHBoxLayout(easing_holder)
        easing_layout.setContentsMargins(0, 0, 0, 0)
        easing_layout.addWidget(QLabel("Easing:"))
        easing_layout.addLayout(self.easing_row)
        easing_layout.addStretch(1)

        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(2, MAX_FRAMES)
        self.frames_spin.setValue(DEFAULT_FRAMES)
        self.frames_spin.setToolTip("Frames from the first keyframe to the last")
        self.frames_spin.valueChanged.connect(lambda _value: self._settings_changed())
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(DEFAULT_FPS)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.valueChanged.connect(self._on_fps_changed)
        self.loop_check = QCheckBox("Loop")
        self.loop_check.setChecked(True)
        self.ping_pong_check = QCheckBox("Ping-pong")
        self.ping_pong_check.setToolTip("Play forwards, then backwards (A→B→A)")
        self.ping_pong_check.toggled.connect(lambda _checked: self._rebuild_play_order())
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Preview the animation (frames are rendered first)")
        self.play_button.toggled.connect(self._on_play_toggled)
        self.export_button = QPushButton("Export\u2026")
        self.export_button.clicked.connect(self.exportRequested)
        settings_row = QHBoxLayout()
        settings_row.addWidget(QLabel("Frames"))
        settings_row.addWidget(self.frames_spin)
        settings_row.addWidget(self.fps_spin)
        settings_row.addWidget(self.loop_check)
        settings_row.addWidget(self.ping_pong_check)
        settings_row.addStretch(1)
        settings_row.addWidget(self.play_button)
        settings_row.addWidget(self.export_button)

        self.preview = ImagePreview(side=128)
        self.position_label = QLabel("")
        self.position_label.setWordWrap(True)
        self.position_label.setMinimumWidth(150)
        preview_column = QVBoxLayout()
        preview_column.addWidget(self.preview)
        preview_column.addWidget(self.position_label)
        preview_column.addStretch(1)

        centre = QVBoxLayout()
        keyframe_row = QHBoxLayout()
        keyframe_row.addWidget(self.keyframe_list, 1)
        keyframe_row.addLayout(key_buttons)
        centre.addLayout(keyframe_row)
        centre.addWidget(self.bar)
        centre.addWidget(easing_holder)
        centre.addLayout(settings_row)
        layout = QHBoxLayout(self)
        layout.addLayout(centre, 1)
        layout.addLayout(preview_column)

        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._advance_playback)
        self._on_fps_changed(self.fps_spin.value())

        worker = studio.worker
        worker.scrubReady.connect(self._on_scrub_ready)
        worker.keyframesReady.connect(self._on_keyframes_ready)
        worker.framesBatch.connect(self._on_frames_batch)
        worker.framesDone.connect(self._on_frames_done)
        worker.failed.connect(self._on_failed)
        self._keyframes_changed()

    # --------------------------------------------------------- keyframes

    def add_keyframe(self, entry: HistoryEntry) -> bool:
        """Append a result as the last keyframe; False (and nothing changes) when it has no state."""
        if entry.state is None:
            return False
        self._entries.append(entry)
        self._easing.append(self._easing[-1] if self._easing else "linear")
        self._keyframes_changed()
        return True

    def remove_keyframe(self, row: int) -> None:
        if 0 <= row < len(self._entries):
            del self._entries[row]
            if self._easing:
                del self._easing[min(row, len(self._easing) - 1)]
            self._keyframes_changed()

    def move_keyframe(self, row: int, offset: int) -> None:
        """Move keyframe ``row`` by ``offset`` places (−1 earlier, +1 later)."""
        target = row + offset
        if 0 <= row < len(self._entries) and 0 <= target < len(self._entries):
            self._entries.insert(target, self._entries.pop(row))
            self._keyframes_changed(select=target)

    def keyframe_entries(self) -> list[HistoryEntry]:
        return list(self._entries)

    def keyframe_images(self) -> list[np.ndarray | None]:
        """The image each keyframe's thumbnail shows: its state as the engine renders it (None until rendered)."""
        return list(self._keyframe_images)

    def _keyframe_image(self, index: int) -> np.ndarray:
        image = self._keyframe_images[index] if index < len(self._keyframe_images) else None
        return self._entries[index].image if image is None else image

    def _on_keyframes_ready(self, request_id: int, images: list) -> None:
        if request_id != self._keyframes_id:
            return
        self._keyframes_id = 0
        self._keyframe_images = list(images)
        for index in range(min(len(images), self.keyframe_list.count())):
            self.keyframe_list.item(index).setIcon(QIcon(self._thumbnail(images[index])))
        if len(self._entries) == 1 and self._shown_position is None:
            self.preview.set_image(images[0])

    @staticmethod
    def _thumbnail(image: np.ndarray) -> QPixmap:
        return QPixmap.fromImage(rgb_to_qimage(image)).scaled(
            KEYFRAME_THUMBNAIL,
            KEYFRAME_THUMBNAIL,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )

    def _keyframes_changed(self, *, select: int | None = None) -> None:
        segments = max(len(self._entries) - 1, 0)
        self._easing = (self._easing + ["linear"] * segments)[:segments]
        # Until the engine has rendered the states, the results' own images stand in.
        self._keyframe_images = [None] * len(self._entries)
        self._keyframes_id = self._studio.render_keyframes(self._states()) if self._entries else 0
        self.keyframe_list.blockSignals(True)
        self.keyframe_list.clear()
        for index, entry in enumerate(self._entries):
            thumbnail = self._thumbnail(entry.image)
            item = QListWidgetItem(QIcon(thumbnail), f"{keyframe_letter(index)} \u00b7 {entry.class_name}")
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(entry.caption())
            self.keyframe_list.addItem(item)
        if select is not None:
            self.keyframe_list.setCurrentRow(select)
        self.keyframe_list.blockSignals(False)
        self._rebuild_easing_combos()
        self._settings_changed()
        for button in (self.remove_button, self.earlier_button, self.later_button):
            button.setEnabled(bool(self._entries))
        ready = len(self._entries) >= 2
        self.play_button.setEnabled(ready)
        self.export_button.setEnabled(ready)
        if ready:
            self._request_position(self.bar.position())
        elif self._entries:
            self._shown_position = None
            self.preview.set_image(self._keyframe_image(0))
            self.position_label.setText("Add another result to morph to.")
        else:
            self._shown_position = None
            self.preview.set_image(None, message="No keyframes")
            self.position_label.setText("")
        self.keyframesChanged.emit()

    def _rebuild_easing_combos(self) -> None:
        for combo in self.easing_combos:
            self.easing_row.removeWidget(combo)
            combo.hide()  # deleted later; until then it must not show at its old place
            combo.deleteLater()
        self.easing_combos = []
        for segment, kind in enumerate(self._easing):
            combo = QComboBox()
            combo.addItems(EASINGS)
            combo.setCurrentText(kind)
            combo.setToolTip(f"Easing from {keyframe_letter(segment)} to {keyframe_letter(segment + 1)}")
            combo.currentTextChanged.connect(lambda text, chosen=segment: self.set_easing(chosen, text))
            self.easing_row.addWidget(combo)
            self.easing_combos.append(combo)

    def easing(self) -> list[str]:
        return list(self._easing)

    def set_easing(self, segment: int, kind: str) -> None:
        """Easing of segment ``segment`` (keyframe i → i+1): one of ``EASINGS``."""
        if kind not in EASINGS:
            raise ValueError(f"unknown easing {kind!r}; use one of {', '.join(EASINGS)}")
        if self._easing[segment] == kind:
            return
        self._easing[segment] = kind
        combo = self.easing_combos[segment]
        if combo.currentText() != kind:
            combo.blockSignals(True)
            combo.setCurrentText(kind)
            combo.blockSignals(False)
        self._settings_changed()
        self._request_position(self.bar.position())

    # ---------------------------------------------------------- settings

    def frame_count(self) -> int:
        return self.frames_spin.value()

    def _states(self) -> tuple[Any, ...]:
        return tuple(entry.state for entry in self._entries)

    def _settings_changed(self) -> None:
        """Keyframes, easing or frame count changed: the preview frames are stale."""
        self._studio.cancel_frames()
        self._frames_id = 0
        self._frames = [None] * self.frame_count()
        self.bar.set_layout(len(self._entries), self._easing, self.frame_count())
        self.bar.set_rendered([])
        self._rebuild_play_order()
        if self.is_playing() and len(self._entries) >= 2:
            self._ensure_frames()

    def _on_fps_changed(self, fps: int) -> None:
        self._play_timer.setInterval(max(1, round(1000 / fps)))

    def plan(self) -> AnimationPlan:
        """The export's view of the timeline (needs two or more keyframes)."""
        rendered = None
        if self.frames_ready():
            rendered = tuple(self._frames)
        return AnimationPlan(
            keyframes=self._states(),
            frames=self.frame_count(),
            easing=tuple(self._easing),
            fps=float(self.fps_spin.value()),
            loop=self.loop_check.isChecked(),
            ping_pong=self.ping_pong_check.isChecked(),
            rendered=rendered,
        )

    def resolution_hint(self) -> int | None:
        """The keyframes' image side in pixels (the model's resolution), or None without keyframes."""
        return int(self._entries[0].image.shape[0]) if self._entries else None

    # ---------------------------------------------------------- scrubbing

    def position(self) -> float:
        return self.bar.position()

    def set_position(self, position: float) -> None:
        """Move the playhead to ``position`` in [0, 1] and render it (as a drag would)."""
        self.bar.set_position(position)
        self._on_scrubbed(self.bar.position())

    def _on_scrubbed(self, position: float) -> None:
        if self.is_playing():
            self.play_button.setChecked(False)
        self._request_position(position)

    def segment_and_lambda(self, position: float) -> tuple[int, float]:
        return timeline_position(position, len(self._entries), self._easing)

    def _request_position(self, position: float) -> None:
        if len(self._entries) < 2:
            return
        segment, lam = self.segment_and_lambda(position)
        request_id = self._studio.scrub(self._states(), segment, lam)
        self._scrub_ids.append(request_id)
        self._scrub_positions[request_id] = position
        self._describe_position(position, segment, lam)

    def _describe_position(self, position: float, segment: int, lam: float) -> None:
        frame = round(position * (self.frame_count() - 1)) + 1
        self.position_label.setText(
            f"{keyframe_letter(segment)}\u2192{keyframe_letter(segment + 1)}, \u03bb = {lam:.2f}\n"
            f"frame {frame} of {self.frame_count()}"
        )

    def _on_scrub_ready(self, request_id: int, image: np.ndarray) -> None:
        position = self._scrub_positions.get(request_id)
        if position is None:
            return
        # Requests are served in order: older ones not served were replaced by this one.
        while self._scrub_ids and self._scrub_ids[0] <= request_id:
            self._scrub_positions.pop(self._scrub_ids.pop(0), None)
        if self.is_playing():
            return
        self._shown_position = position
        self.preview.set_image(image)
        self.previewShown.emit(position)

    def preview_image(self) -> np.ndarray | None:
        """The image in the preview, ``(R, R, 3)`` uint8, or None."""
        return self.preview.image()

    def preview_is_current(self) -> bool:
        """Whether the preview shows the latest requested position (no render is in flight)."""
        return not self._scrub_ids and self._shown_position is not None

    def shown_position(self) -> float | None:
        """Position of the rendered image in the preview (None: no morph shown)."""
        return self._shown_position

    # ----------------------------------------------------------- playback

    def is_playing(self) -> bool:
        return self.play_button.isChecked()

    def play(self) -> None:
        if len(self._entries) >= 2:
            self.play_button.setChecked(True)

    def pause(self) -> None:
        self.play_button.setChecked(False)

    def _on_play_toggled(self, playing: bool) -> None:
        self.play_button.setText("Pause" if playing else "Play")
        if not playing:
            self._play_timer.stop()
            return
        self._ensure_frames()
        self._rebuild_play_order()
        current = round(self.bar.position() * (self.frame_count() - 1))
        self._play_cursor = self._play_order.index(current) if current in self._play_order else 0
        self._play_timer.start()

    def _rebuild_play_order(self) -> None:
        self._play_order = playback_order(self.frame_count(), ping_pong=self.ping_pong_check.isChecked())
        self._play_cursor = min(self._play_cursor, len(self._play_order) - 1)

    def _ensure_frames(self) -> None:
        if self._frames_id or self.frames_ready():
            return
        self._frames_id = self._studio.render_frames(
            self._states(), frames=self.frame_count(), easing=self._easing
        )

    def _on_frames_batch(self, request_id: int, start: int, frames: list) -> None:
        if request_id != self._frames_id:
            return
        self._frames[start : start + len(frames)] = frames
        self.bar.set_rendered([frame is not None for frame in self._frames])

    def _on_frames_done(self, request_id: int, complete: bool) -> None:
        if request_id != self._frames_id:
            return
        self._frames_id = 0
        if complete and self.frames_ready():
            self.framesReady.emit()

    def frames_ready(self) -> bool:
        return bool(self._frames) and all(frame is not None for frame in self._frames)

    def rendered_frames(self) -> list[np.ndarray | None]:
        return list(self._frames)

    def _advance_playback(self) -> None:
        if not self._play_order:
            return
        index = self._play_order[self._play_cursor]
        frame = self._frames[index] if index < len(self._frames) else None
        if frame is None:
            return  # still rendering: wait for it rather than skip
        self.preview.set_image(frame)
        position = index / max(self.frame_count() - 1, 1)
        self.bar.set_position(position)
        self._shown_position = position
        segment, lam = self.segment_and_lambda(position)
        self._describe_position(position, segment, lam)
        self._play_cursor += 1
        if self._play_cursor >= len(self._play_order):
            self._play_cursor = 0
            if not self.loop_check.isChecked():
                self.pause()

    def _on_failed(self, request_id: int, sentence: str, details: str) -> None:
        if request_id in self._scrub_positions:
            self._scrub_ids = [pending for pending in self._scrub_ids if pending != request_id]
            self._scrub_positions.pop(request_id, None)
            self.position_label.setText(sentence)
        elif request_id == self._frames_id:
            self._frames_id = 0
            self.pause()
        elif request_id == self._keyframes_id:
            self._keyframes_id = 0  # the results' own images stay as thumbnails

    def shutdown(self) -> None:
        """Stop playback and any frame rendering (the window is closing)."""
        self._play_timer.stop()
        self._studio.cancel_frames()
