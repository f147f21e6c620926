"""Run progress: a progress bar with stage ticks and the engine's ETA, a loss sparkline,
the "what the model sees" pair and the Cancel button.

Consumes the engine's events (``engine.events``) by duck typing: it reads
their fields and imports nothing of the engine but ``engine.eta``'s
formatting (standard library only).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.imaging import rgb_to_qimage
from engine.eta import format_remaining

SPARKLINE_POINTS = 400


def format_eta(seconds: float | None) -> str:
    """``"1 min 05 s left"``; ``"—"`` when unknown (:func:`engine.eta.format_remaining`)."""
    return format_remaining(seconds)


class StageProgressBar(QProgressBar):
    """A progress bar over all optimisation steps with a tick at each stage boundary."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._stage_starts: list[int] = []
        self.setTextVisible(True)

    def set_stage_starts(self, stage_starts: Sequence[int]) -> None:
        """Global step counts (0-based) where stages after the first begin."""
        self._stage_starts = [int(start) for start in stage_starts]
        self.update()

    def stage_starts(self) -> list[int]:
        return list(self._stage_starts)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.maximum() <= 0 or not self._stage_starts:
            return
        painter = QPainter(self)
        painter.setPen(QPen(QColor(0, 0, 0, 150), 1))
        span = self.maximum() - self.minimum()
        for start in self._stage_starts:
            x = round((start - self.minimum()) / span * (self.width() - 1))
            painter.drawLine(x, 0, x, 4)
            painter.drawLine(x, self.height() - 5, x, self.height() - 1)
        painter.end()


class LossSparkline(QWidget):
    """The recent total loss as a line, each stage scaled to its own range.

    Stages use different loss terms (more of D's feature layers, other
    weights), so a later stage's loss is not comparable with an earlier one's:
    drawn on one scale, the start of a stage would look like the run getting
    worse. Each stage's stretch of the line spans the full height instead
    (log scale when it spans more than a decade), and a faint vertical line
    marks where a stage begins.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: deque[tuple[int, float]] = deque(maxlen=SPARKLINE_POINTS)  # (stage, loss)
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "Loss per stage over the last iterations: stages use different loss terms, so each "
            "stage is scaled to its own range; a faint line marks where a stage begins"
        )

    def sizeHint(self) -> QSize:
        return QSize(200, 40)

    def add(self, value: float, stage: int = 0) -> None:
        """Append the total loss of one iteration of ``stage`` (0-based)."""
        if math.isfinite(value):
            self._points.append((int(stage), float(value)))
            self.update()

    def clear(self) -> None:
        self._points.clear()
        self.update()

    def values(self) -> list[float]:
        return [value for _stage, value in self._points]

    def segments(self) -> list[tuple[int, int, np.ndarray]]:
        """``(stage, first point, heights)`` per stage shown, oldest first.

        ``heights`` are the stage's losses scaled to 0 (its lowest) … 1 (its
        highest), on a log scale when they span more than a decade.
        """
        result = []
        start = 0
        points = list(self._points)
        while start < len(points):
            stage = points[start][0]
            end = start
            while end < len(points) and points[end][0] == stage:
                end += 1
            values = np.asarray([value for _stage, value in points[start:end]])
            if (values > 0).all() and values.max() / max(values.min(), 1e-12) > 10:
                values = np.log10(values)
            low, spread = float(values.min()), float(values.max() - values.min())
            heights = (values - low) / spread if spread > 0 else np.full(len(values), 0.5)
            result.append((stage, start, heights))
            start = end
        return result

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(30, 30, 34))
        count = len(self._points)
        if count >= 2:
            width, height = self.width() - 4, self.height() - 6

            def x_of(position: float) -> float:
                return 2 + position / (count - 1) * width

            path = QPainterPath()
            boundaries = []
            for _stage, first, heights in self.segments():
                if first > 0:
                    boundaries.append(x_of(first - 0.5))
                for offset, level in enumerate(heights):
                    point = QPointF(x_of(first + offset), 3 + (1 - float(level)) * height)
                    if offset == 0:
                        path.moveTo(point)
                    else:
                        path.lineTo(point)
            painter.setPen(QPen(QColor(255, 255, 255, 60), 1))
            for x in boundaries:
                painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            painter.setPen(QPen(QColor(110, 200, 255), 1.5))
            painter.drawPath(path)
            stage, value = self._points[-1]
            text = f"stage {stage + 1}: {value:.4g}"
            area = QRectF(4, 2, self.width() - 8, 14)
            # A new stage's line starts at the top right, under the text: the text keeps a backing.
            backing = painter.boundingRect(area, Qt.AlignmentFlag.AlignRight, text).adjusted(-3, 0, 2, 0)
            painter.fillRect(backing, QColor(30, 30, 34, 210))
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(area, Qt.AlignmentFlag.AlignRight, text)
        painter.end()


class ImageTile(QLabel):
    """A small square picture with a caption underneath (nearest-neighbour scaling: pixels stay honest)."""

    def __init__(self, caption: str, *, side: int = 96, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._side = side
        self._image: np.ndarray | None = None
        self.setFixedSize(side, side)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background: #26262a; border-radius: 3px;")
        self.setToolTip(caption)

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._image = rgb
        if rgb is None:
            self.setPixmap(QPixmap())
            return
        self.setPixmap(
            QPixmap.fromImage(rgb_to_qimage(rgb)).scaled(
                self._side,
                self._side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        )

    def image(self) -> np.ndarray | None:
        return self._image


class RunProgressPanel(QWidget):
    """Everything shown while a restoration runs.

    Signals
    -------
    cancelRequested()
        The Cancel button was pressed.
    """

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status_label = QLabel("Idle.")
        self.status_label.setWordWrap(True)
        self.progress_bar = StageProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.eta_label = QLabel("")
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.sparkline = LossSparkline()
        self.model_output_tile = ImageTile("The current output, degraded the same way as your photo")
        self.model_target_tile = ImageTile("Your photo as the model is asked to match it")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current iteration and keep the best result (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)

        bar_row = QHBoxLayout()
        bar_row.addWidget(self.progress_bar, 1)
        bar_row.addWidget(self.cancel_button)
        tiles = QGridLayout()
        tiles.setHorizontalSpacing(6)
        tiles.addWidget(self.model_output_tile, 0, 0)
        tiles.addWidget(self.model_target_tile, 0, 1)
        output_caption = QLabel("Output, degraded")
        target_caption = QLabel("Your input, degraded")
        for column, caption in enumerate((output_caption, target_caption)):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setStyleSheet("font-size: 9pt; color: palette(mid);")
            tiles.addWidget(caption, 1, column)
        self._tiles_box = QWidget()
        tiles_outer = QVBoxLayout(self._tiles_box)
        tiles_outer.setContentsMargins(0, 0, 0, 0)
        tiles_outer.addWidget(QLabel("What the model sees"))
        tiles_outer.addLayout(tiles)

        # ETA, sparkline and the model's view appear with the first run (idle, they would be empty).
        self.details = QWidget()
        details_layout = QVBoxLayout(self.details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.eta_label)
        details_layout.addWidget(self.sparkline)
        details_layout.addWidget(self._tiles_box)
        self.details.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status_label)
        layout.addLayout(bar_row)
        layout.addWidget(self.details)
        self._stage_count = 0
        self._current_stage = 0
        self._planned_iterations: list[int] = []
        self._first_steps: dict[int, int] = {}  # stage index -> its first global step (1-based)

    # ------------------------------------------------------------- events

    def begin(self) -> None:
        """A run was requested: reset, show that the model is being prepared."""
        self.details.setVisible(True)
        self.status_label.setText("Preparing the model\u2026")
        self.progress_bar.setRange(0, 0)  # busy indicator until the plan arrives
        self.progress_bar.set_stage_starts([])
        self.eta_label.setText("")
        self.sparkline.clear()
        self.model_output_tile.set_image(None)
        self.model_target_tile.set_image(None)
        self.cancel_button.setEnabled(True)

    def on_started(self, plan) -> None:
        """``Started.plan``: a ``RunPlan`` with stages and total steps."""
        self._stage_count = len(plan.stages)
        self._planned_iterations = [stage.iterations for stage in plan.stages]
        self._first_steps = {}
        self.progress_bar.setRange(0, max(plan.total_steps, 1))
        self.progress_bar.setValue(0)
        self._place_stage_ticks()
        self.progress_bar.setFormat("%v / %m")
        where = f"{plan.device}, {plan.precision}"
        if plan.search_candidates:
            self.status_label.setText(f"Searching {plan.search_candidates} latent candidates ({where})\u2026")
        else:
            self.status_label.setText(f"Starting {plan.task} with {plan.preset} ({where})\u2026")

    def on_search_progress(self, event) -> None:
        """``SearchProgress``: candidates scored so far."""
        remaining = (event.total - event.done) * event.seconds_per_candidate
        self.status_label.setText(f"Searching the latent space: {event.done} of {event.total} candidates")
        self.eta_label.setText(f"search: {format_eta(remaining)}")

    def _place_stage_ticks(self) -> None:
        """Ticks where stages begin: where they did begin, then as planned from there."""
        starts, position = [], 0
        for index, iterations in enumerate(self._planned_iterations):
            position = self._first_steps.get(index, position + 1) - 1
            if index > 0:
                starts.append(position)
            position += iterations
        self.progress_bar.set_stage_starts(starts)

    def on_stage_began(self, event) -> None:
        """``StageBegan``: a new stage (more generator blocks fine-tuned).

        After a stage that stopped early it begins sooner than planned: the
        ticks from here on move with it (the steps' totals shrink to match).
        """
        self._current_stage = event.stage.index + 1
        self._first_steps[event.stage.index] = event.first_step
        self._place_stage_ticks()
        self.status_label.setText(
            f"Stage {self._current_stage} of {self._stage_count}: fine-tuning "
            f"{event.stage.unlocked_groups} of {event.stage.total_groups} generator groups"
        )

    def on_step(self, event) -> None:
        """``Step``: exact progress and the engine's schedule-aware ETA."""
        if self.progress_bar.maximum() != event.total_steps:
            self.progress_bar.setRange(0, max(event.total_steps, 1))
        self.progress_bar.setValue(event.step)
        self.eta_label.setText(
            f"{format_eta(event.eta_seconds)}  \u00b7  {event.seconds_per_step * 1000:.0f} ms/step"
        )
        total = event.losses.get("total")
        if total is None and event.losses:
            total = sum(event.losses.values())
        if total is not None:
            self.sparkline.add(total, event.stage)

    def on_frame(self, event) -> None:
        """``Frame``: the newest degraded output and target."""
        self.model_output_tile.set_image(event.degraded)
        self.model_target_tile.set_image(event.target)

    def finish(self, text: str) -> None:
        """The run ended (finished, stopped or failed): ``text`` says how; no time is left to show."""
        self.status_label.setText(text)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        self.cancel_button.setEnabled(False)
        self.eta_label.setText("")
