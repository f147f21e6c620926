"""Choose the task, its preset and the advanced knobs; preview what the model must match.

Task ids are the engine's: ``colorize``, ``inpaint``, ``sr``, ``hybrid``
(grayscale, super-resolution and mask composed by checkboxes),
``reconstruct`` and ``defend`` (remove adversarial perturbations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QRadioButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.imaging import rgb_to_qimage
from engine.tasks import DETAIL_TASKS

TASK_LABELS: dict[str, str] = {
    "colorize": "Colorize",
    "inpaint": "Inpaint (fill the painted area)",
    "sr": "Super-resolve",
    "hybrid": "Hybrid",
    "reconstruct": "Reconstruct",
    "defend": "Remove perturbations",
}
TASK_HINTS: dict[str, str] = {
    "colorize": "Treats the photo as grayscale and invents plausible colours.",
    "inpaint": "Fills the pixels you painted; the rest of the photo guides it.",
    "sr": "Treats the region as a low-resolution photo and adds detail.",
    "hybrid": "Combine grayscale, low resolution and missing pixels in one run.",
    "reconstruct": "Finds the closest image the model can make, without a degradation.",
    "defend": "Re-creates the photo from the prior, dropping adversarial noise.",
}
SR_FACTORS = (2, 4, 8)
DEFAULT_PRESET_LABEL = "Default for this model"


@dataclass(frozen=True)
class TaskOptions:
    """What the task panel contributes to a restoration request.

    ``sr_factor`` is set for ``sr`` and for ``hybrid`` with super-resolution
    checked; ``grayscale`` only for ``hybrid``; ``use_mask`` for ``inpaint``
    and for ``hybrid`` with the mask checked. ``preset`` None = the engine's
    default for the task and model.
    """

    task: str
    sr_factor: int | None
    grayscale: bool
    use_mask: bool
    preset: str | None
    quick: bool
    seed: int
    iteration_scale: float
    detail_strength: float | None = None   # sr only: 0 = classical upscaling … 1 = all the prior's detail


class CollapsibleSection(QWidget):
    """A header button that shows or hides its content (collapsed by default)."""

    def __init__(self, title: str, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle_button = QToolButton()
        self.toggle_button.setText(title)
        self.toggle_button.setCheckable(True)
        self.toggle_button.setChecked(False)
        self.toggle_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle_button.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle_button.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.toggle_button.toggled.connect(self.set_expanded)
        self.content = content
        content.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle_button)
        layout.addWidget(content)

    def is_expanded(self) -> bool:
        return self.toggle_button.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        if self.toggle_button.isChecked() != expanded:
            self.toggle_button.setChecked(expanded)  # re-enters through toggled
            return
        self.toggle_button.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.content.setVisible(expanded)


class TaskPanel(QWidget):
    """Task radio buttons, SR factor, hybrid parts, preset and quick mode, advanced knobs, preview.

    Signals
    -------
    optionsChanged()
        Anything that changes the request (and so the preview and stage table).
    """

    optionsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._presets_by_task: dict[str, list[str]] = {}
        self._preset_titles: dict[str, str] = {}

        self.task_buttons: dict[str, QRadioButton] = {}
        self._task_group = QButtonGroup(self)
        tasks_grid = QGridLayout()
        tasks_grid.setVerticalSpacing(2)
        for row, (task, label) in enumerate(TASK_LABELS.items()):
            button = QRadioButton(label)
            button.setToolTip(TASK_HINTS[task])
            self._task_group.addButton(button)
            self.task_buttons[task] = button
            tasks_grid.addWidget(button, row, 0)
        self.task_buttons["inpaint"].setChecked(True)
        self._task_group.buttonToggled.connect(self._on_task_toggled)

        self.sr_factor_combo = QComboBox()
        for factor in SR_FACTORS:
            self.sr_factor_combo.addItem(f"\u00d7{factor}", factor)
        self.sr_factor_combo.setCurrentIndex(SR_FACTORS.index(4))
        self.sr_factor_combo.currentIndexChanged.connect(self.optionsChanged)
        tasks_grid.addWidget(self.sr_factor_combo, list(TASK_LABELS).index("sr"), 1)

        self.hybrid_grayscale = QCheckBox("Grayscale")
        self.hybrid_grayscale.setChecked(True)
        self.hybrid_sr = QCheckBox("Low resolution (uses the factor above)")
        self.hybrid_mask = QCheckBox("Missing pixels (the painted mask)")
        self.hybrid_mask.setChecked(True)
        self._hybrid_box = QWidget()
        hybrid_layout = QVBoxLayout(self._hybrid_box)
        hybrid_layout.setContentsMargins(22, 0, 0, 0)
        hybrid_layout.setSpacing(0)
        for box in (self.hybrid_grayscale, self.hybrid_sr, self.hybrid_mask):
            box.toggled.connect(self.optionsChanged)
            hybrid_layout.addWidget(box)
        tasks_grid.addWidget(self._hybrid_box, len(TASK_LABELS), 0, 1, 2)

        # Super-resolution and inpainting: how much of the prior's detail goes beyond the classical answer.
        self.detail_slider = QSlider(Qt.Orientation.Horizontal)
        self.detail_slider.setRange(0, 100)
        self.detail_slider.setValue(round(DETAIL_TASKS["sr"] * 100))
        self.detail_slider.setToolTip(
            "Super-resolution: 0 is classical upscaling, exactly (nothing invented); 100 is all of the "
            "detail the model adds above the photo's own resolution, and the result always shrinks back "
            "to your photo. Inpainting: 0 is the smoothest fill of the hole; 100 is the model's whole fill."
        )
        self._detail_values = dict(DETAIL_TASKS)   # each task keeps its own setting
        self.detail_label = QLabel()
        self.detail_slider.valueChanged.connect(self._on_detail_changed)
        self._detail_box = QWidget()
        detail_layout = QHBoxLayout(self._detail_box)
        detail_layout.setContentsMargins(22, 0, 0, 0)
        detail_layout.addWidget(QLabel("Detail"))
        detail_layout.addWidget(self.detail_slider, 1)
        detail_layout.addWidget(self.detail_label)
        self.detail_label.setText(f"{self.detail_slider.value()} %")
        tasks_grid.addWidget(self._detail_box, len(TASK_LABELS) + 1, 0, 1, 2)

        self.task_hint = QLabel()
        self.task_hint.setWordWrap(True)
        self.task_hint.setStyleSheet("color: palette(mid);")

        self.preset_combo = QComboBox()
        self.preset_combo.currentIndexChanged.connect(self.optionsChanged)
        self.quick_check = QCheckBox("Quick mode (far fewer iterations: a fast draft)")
        self.quick_check.setChecked(True)
        self.quick_check.toggled.connect(self.optionsChanged)

        # Advanced: seed, iteration scale and the read-only stage table.
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.valueChanged.connect(self.optionsChanged)
        self.iteration_scale_spin = QDoubleSpinBox()
        self.iteration_scale_spin.setRange(0.05, 10.0)
        self.iteration_scale_spin.setSingleStep(0.25)
        self.iteration_scale_spin.setDecimals(2)
        self.iteration_scale_spin.setValue(1.0)
        self.iteration_scale_spin.setSuffix(" \u00d7")
        self.iteration_scale_spin.setToolTip("Multiplies every stage's iteration count.")
        self.iteration_scale_spin.valueChanged.connect(self.optionsChanged)
        self.stage_table = QTableWidget(0, 4)
        self.stage_table.setHorizontalHeaderLabels(["Stage", "Iterations", "G groups", "D features"])
        self.stage_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.stage_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.stage_table.verticalHeader().setVisible(False)
        self.stage_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.stage_table.setMaximumHeight(140)
        self.stage_summary = QLabel()
        self.stage_summary.setWordWrap(True)
        advanced_content = QWidget()
        advanced_form = QFormLayout(advanced_content)
        advanced_form.setContentsMargins(12, 0, 0, 0)
        advanced_form.addRow("Seed", self.seed_spin)
        advanced_form.addRow("Iteration scale", self.iteration_scale_spin)
        advanced_form.addRow(self.stage_table)
        advanced_form.addRow(self.stage_summary)
        self.advanced = CollapsibleSection("Advanced", advanced_content)

        self.preview_label = QLabel("Open a photo to see what the model will be asked to match.")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumSize(QSize(128, 128))
        self.preview_label.setFixedHeight(136)
        self.preview_label.setWordWrap(True)
        self.preview_label.setStyleSheet("background: #26262a; color: #aaa; border-radius: 4px;")
        self._preview_image: np.ndarray | None = None

        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset"))
        preset_row.addWidget(self.preset_combo, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tasks_grid)
        layout.addWidget(self.task_hint)
        layout.addLayout(preset_row)
        layout.addWidget(self.quick_check)
        layout.addWidget(self.advanced)
        layout.addWidget(QLabel("The model will be asked to match:"))
        layout.addWidget(self.preview_label)
        self._sync_task_widgets()

    # -------------------------------------------------------------- options

    def task(self) -> str:
        for task, button in self.task_buttons.items():
            if button.isChecked():
                return task
        return "inpaint"

    def set_task(self, task: str) -> None:
        if task not in self.task_buttons:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(self.task_buttons)}")
        self.task_buttons[task].setChecked(True)

    def sr_factor(self) -> int:
        return int(self.sr_factor_combo.currentData())

    def set_sr_factor(self, factor: int) -> None:
        self.sr_factor_combo.setCurrentIndex(SR_FACTORS.index(factor))

    def detail_strength(self) -> float:
        return self.detail_slider.value() / 100.0

    def _on_detail_changed(self, value: int) -> None:
        self.detail_label.setText(f"{value} %")
        if hasattr(self, "_detail_values") and self.task() in DETAIL_TASKS:
            self._detail_values[self.task()] = value / 100.0
        self.optionsChanged.emit()

    def options(self) -> TaskOptions:
        """The panel's current settings as a :class:`TaskOptions`."""
        task = self.task()
        hybrid = task == "hybrid"
        wants_sr = task == "sr" or (hybrid and self.hybrid_sr.isChecked())
        return TaskOptions(
            task=task,
            sr_factor=self.sr_factor() if wants_sr else None,
            grayscale=hybrid and self.hybrid_grayscale.isChecked(),
            use_mask=task == "inpaint" or (hybrid and self.hybrid_mask.isChecked()),
            preset=self.preset_combo.currentData(),
            quick=self.quick_check.isChecked(),
            seed=self.seed_spin.value(),
            iteration_scale=float(self.iteration_scale_spin.value()),
            detail_strength=self.detail_strength() if task in DETAIL_TASKS else None,
        )

    def problem(self) -> str | None:
        """Why the current options cannot run (one sentence), or None."""
        if self.task() == "hybrid" and not (
            self.hybrid_grayscale.isChecked() or self.hybrid_sr.isChecked() or self.hybrid_mask.isChecked()
        ):
            return "Hybrid needs at least one of grayscale, low resolution or missing pixels."
        return None

    # -------------------------------------------------------------- presets

    def set_presets(
        self, presets_by_task: Mapping[str, Sequence[str]], *, titles: Mapping[str, str] | None = None
    ) -> None:
        """The preset names available per task, the default first (from the loaded model's engine).

        ``titles`` maps names to the readable titles the list shows; the name
        stays the item's data and tooltip.
        """
        self._presets_by_task = {task: list(names) for task, names in presets_by_task.items()}
        self._preset_titles = dict(titles or {})
        self._fill_presets()

    def _fill_presets(self) -> None:
        previous = self.preset_combo.currentData()
        names = self._presets_by_task.get(self.task(), [])
        titles = self._preset_titles
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        default_label = DEFAULT_PRESET_LABEL
        if names and titles.get(names[0]):
            default_label = f"{DEFAULT_PRESET_LABEL}: {titles[names[0]]}"
        self.preset_combo.addItem(default_label, None)
        if names:
            self.preset_combo.setItemData(0, names[0], Qt.ItemDataRole.ToolTipRole)
        for name in names:
            self.preset_combo.addItem(titles.get(name) or name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, name, Qt.ItemDataRole.ToolTipRole)
        found = self.preset_combo.findData(previous)
        self.preset_combo.setCurrentIndex(max(found, 0))
        self.preset_combo.blockSignals(False)

    def set_stage_table(self, stages: Sequence, *, note: str = "") -> None:
        """Show the stages that will run (``engine.events.StagePlan`` objects) in the read-only table."""
        self.stage_table.setRowCount(len(stages))
        total = 0
        for row, stage in enumerate(stages):
            total += stage.iterations
            cells = (
                str(stage.index + 1),
                str(stage.iterations),
                f"{stage.unlocked_groups} of {stage.total_groups}",
                str(stage.feature_layers),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.stage_table.setItem(row, column, item)
        summary = f"{len(stages)} stages, {total} iterations in all." if stages else "No stage table yet."
        self.stage_summary.setText(f"{summary} {note}".strip())

    # -------------------------------------------------------------- preview

    def set_preview(self, rgb: np.ndarray | None, *, message: str = "") -> None:
        """Show the degraded input ``(h, w, 3)`` ``uint8`` (None shows ``message`` instead)."""
        self._preview_image = None if rgb is None else rgb
        if rgb is None:
            self.preview_label.setPixmap(QPixmap())
            self.preview_label.setText(message)
            return
        side = max(min(self.preview_label.width(), self.preview_label.height()) - 8, 64)
        pixmap = QPixmap.fromImage(rgb_to_qimage(rgb)).scaled(
            side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
        self.preview_label.setPixmap(pixmap)
        self.preview_label.setToolTip(f"{rgb.shape[1]} \u00d7 {rgb.shape[0]} pixels at model resolution")

    def preview_image(self) -> np.ndarray | None:
        return self._preview_image

    # ------------------------------------------------------------- internal

    def _on_task_toggled(self, button: QRadioButton, checked: bool) -> None:
        if not checked:
            return
        self._sync_task_widgets()
        self._fill_presets()
        self.optionsChanged.emit()

    def _sync_task_widgets(self) -> None:
        task = self.task()
        self.sr_factor_combo.setEnabled(task in ("sr", "hybrid"))
        self._hybrid_box.setVisible(task == "hybrid")
        self._detail_box.setVisible(task in DETAIL_TASKS)
        if task in DETAIL_TASKS:
            self.detail_slider.blockSignals(True)
            self.detail_slider.setValue(round(self._detail_values[task] * 100))
            self.detail_slider.blockSignals(False)
            self.detail_label.setText(f"{self.detail_slider.value()} %")
        self.task_hint.setText(TASK_HINTS[task])
