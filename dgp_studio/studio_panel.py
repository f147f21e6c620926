"""The Studio panel: instant edits of the selected result (DGP section 10), no optimisation.

* **Jitter**: G*(z* + σ·ε, e*) for a grid of random ε; clicking a variation
  keeps it as a new result (same fine-tuned weights, the jittered z).
* **Category**: the same fine-tuned generator and z* with another class's
  embedding. Picking a class re-renders at once (requests coalesce on the
  engine thread: only the latest pick is rendered); a gallery renders a set of
  classes (the automatic run's top five, a range of class numbers, or every class
  whose name contains some words) and saves it as a contact sheet.

Everything is rendered by :class:`dgp_studio.studio_jobs.StudioWorker` on the
engine thread; this module imports neither torch nor the engine.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.class_picker import ClassPicker, class_label, search_classes
from dgp_studio.history import HistoryEntry
from dgp_studio.imaging import rgb_to_qimage
from dgp_studio.studio_jobs import StudioController

SIGMA_STEPS_PER_UNIT = 100  # the σ slider moves in steps of 0.01
SIGMA_MAX = 1.5
DEFAULT_SIGMA = 0.5
DEFAULT_JITTER_COUNT = 12
MAX_JITTER_COUNT = 64
MAX_GALLERY_CLASSES = 64
GALLERY_MODES = {
    "top5": "Top 5 of the automatic run",
    "range": "A range of class numbers",
    "names": "Classes whose name contains (a, b, …)",
}
SHEET_FILTERS = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
_ROW_ROLE = Qt.ItemDataRole.UserRole


class PageScrollArea(QScrollArea):
    """A tab page that scrolls vertically when the panel is shorter than the page.

    A tab widget is as tall as its tallest page; in here a page sets the
    panel's minimum width (its own, plus room for the scroll bar, so nothing
    is cut off or scrolls sideways) but not its minimum height.
    """

    def __init__(self, page: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(page)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def viewportEvent(self, event: QEvent) -> bool:
        # The page's least width can change (texts, options); its layout then asks the viewport
        # (its parent) for a new layout, and the panel around the scroll area must follow.
        if event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().viewportEvent(event)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        page = self.widget()
        if page is None:
            return hint
        scroll_bar = self.verticalScrollBar().sizeHint().width()
        width = page.minimumSizeHint().width() + scroll_bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())


class ThumbnailGrid(QListWidget):
    """A wrapping grid of model-resolution images with captions.

    Signals
    -------
    thumbnailClicked(int)
        The row of the clicked thumbnail.
    """

    thumbnailClicked = Signal(int)

    def __init__(self, *, side: int = 96, caption_width: int = 0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._side = side
        self._images: list[np.ndarray] = []
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(side, side))
        # Room for two caption lines ("26 · golden" / "retriever"); longer names end in "…".
        line = self.fontMetrics().lineSpacing()
        self.setGridSize(QSize(max(side, caption_width) + 12, side + 2 * line + 10))
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setWordWrap(True)
        self.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.itemClicked.connect(lambda item: self.thumbnailClicked.emit(int(item.data(_ROW_ROLE))))

    def clear_images(self) -> None:
        self.clear()
        self._images = []

    def add_images(self, images: Sequence[np.ndarray], captions: Sequence[str]) -> None:
        """Append thumbnails of ``(R, R, 3)`` uint8 images, one caption each."""
        for image, caption in zip(images, captions):
            pixmap = QPixmap.fromImage(rgb_to_qimage(image)).scaled(
                self._side,
                self._side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            item = QListWidgetItem(QIcon(pixmap), caption)
            item.setData(_ROW_ROLE, len(self._images))
            item.setToolTip(caption)
            self.addItem(item)
            self._images.append(image)

    def images(self) -> list[np.ndarray]:
        return list(self._images)

    def captions(self) -> list[str]:
        return [self.item(row).text() for row in range(self.count())]

    def item_rect(self, row: int):
        """The thumbnail's rectangle in viewport coordinates (tests click it)."""
        return self.visualItemRect(self.item(row))


class ImagePreview(QLabel):
    """One model-resolution image shown larger (smooth scaling), or a message."""

    def __init__(self, *, side: int = 192, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._side = side
        self._image: np.ndarray | None = None
        self.setFixedSize(side, side)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet("background: palette(dark); color: palette(bright-text);")

    def set_image(self, image: np.ndarray | None, *, message: str = "") -> None:
        self._image = image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText(message)
            return
        self.setText("")
        self.setPixmap(
            QPixmap.fromImage(rgb_to_qimage(image)).scaled(
                self._side,
                self._side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    def image(self) -> np.ndarray | None:
        """The image shown, ``(R, R, 3)`` uint8, or None."""
        return self._image


class StudioPanel(QWidget):
    """Jitter and category transfer for the selected history entry.

    Parameters
    ----------
    studio : StudioController
        Renders on the engine thread.

    Signals
    -------
    editKept(object, object, str)
        The parent :class:`HistoryEntry`, the new ``RestoreResult`` and a short
        description of the edit ("jitter σ 0.50 #3", "→ goldfish").
    jitterShown(int)
        A jitter grid of this many variations is on screen.
    transferShown(object)
        A category transfer preview is on screen (its class index, None = the result itself).
    galleryShown(int)
        A gallery is complete with this many classes.
    sheetSaved(str)
        The gallery's contact sheet was written here.
    timelineRequested(object)
        "Add to the morph timeline" was clicked for this :class:`HistoryEntry`.
    """

    editKept = Signal(object, object, str)
    jitterShown = Signal(int)
    transferShown = Signal(object)
    galleryShown = Signal(int)
    sheetSaved = Signal(str)
    timelineRequested = Signal(object)

    def __init__(self, studio: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._studio = studio
        self._entry: HistoryEntry | None = None
        self._class_names: list[str] = []
        self._class_numbers: list[int] = []
        self._seed = 0
        self._jitter_id = 0
        self._jitter_states: list[object] = []
        self._jitter_sigma = DEFAULT_SIGMA
        self._transfer_id = 0
        self._transfer_class: int | None = None
        self._gallery_id = 0
        self._gallery_classes: list[int] = []
        self._gallery_complete = False
        self._gallery_note = ""
        self._keeps: dict[int, tuple[HistoryEntry, str, int | None]] = {}  # request -> parent, edit, grid row
        self._sheet_ids: set[int] = set()

        self.entry_label = QLabel("Select a result in the history to edit it.")
        self.entry_label.setWordWrap(True)
        self.timeline_button = QPushButton("Add to the morph timeline")
        self.timeline_button.setToolTip("Use this result as the next keyframe of the morph timeline")
        self.timeline_button.clicked.connect(
            lambda: self._entry is not None and self.timelineRequested.emit(self._entry)
        )

        # Each page scrolls: a tab widget is as tall as its tallest page, and the category page
        # alone would keep the window from fitting a 900-pixel screen with the morph timeline docked.
        self.tabs = QTabWidget()
        self.tabs.addTab(PageScrollArea(self._build_jitter_tab()), "Jitter")
        self.tabs.addTab(PageScrollArea(self._build_category_tab()), "Category")
        self.tabs.currentChanged.connect(lambda _index: self._render_visible_tab())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.entry_label)
        layout.addWidget(self.timeline_button)
        layout.addWidget(self.tabs, 1)

        worker = studio.worker
        worker.jitterReady.connect(self._on_jitter_ready)
        worker.transferReady.connect(self._on_transfer_ready)
        worker.galleryBatch.connect(self._on_gallery_batch)
        worker.galleryDone.connect(self._on_gallery_done)
        worker.kept.connect(self._on_kept)
        worker.sheetSaved.connect(self._on_sheet_saved)
        worker.failed.connect(self._on_failed)
        self._update_enabled()

    # ------------------------------------------------------------ layout

    def _build_jitter_tab(self) -> QWidget:
        self.sigma_slider = QSlider(Qt.Orientation.Horizontal)
        self.sigma_slider.setRange(0, round(SIGMA_MAX * SIGMA_STEPS_PER_UNIT))
        self.sigma_slider.setValue(round(DEFAULT_SIGMA * SIGMA_STEPS_PER_UNIT))
        self.sigma_slider.setToolTip("How far the latent code moves: 0 = the result itself")
        self.sigma_label = QLabel()
        self.sigma_label.setMinimumWidth(44)
        self.sigma_slider.valueChanged.connect(self._on_sigma_changed)
        self.count_spin = QSpinBox()
        self.count_spin.setRange(1, MAX_JITTER_COUNT)
        self.count_spin.setValue(DEFAULT_JITTER_COUNT)
        self.count_spin.valueChanged.connect(lambda _value: self.render_jitter())
        self.reseed_button = QPushButton("Reseed")
        self.reseed_button.setToolTip("Draw other random directions")
        self.reseed_button.clicked.connect(self.reseed)
        self.seed_label = QLabel()

        sigma_row = QHBoxLayout()
        sigma_row.addWidget(self.sigma_slider, 1)
        sigma_row.addWidget(self.sigma_label)
        count_row = QHBoxLayout()
        count_row.addWidget(self.count_spin)
        count_row.addStretch(1)
        count_row.addWidget(self.seed_label)
        count_row.addWidget(self.reseed_button)
        form = QFormLayout()
        form.addRow("Strength σ", sigma_row)
        form.addRow("Variations", count_row)

        self.jitter_grid = ThumbnailGrid(side=96)
        self.jitter_grid.setToolTip("Click a variation to keep it as a new result")
        self.jitter_grid.thumbnailClicked.connect(self.keep_variation)
        self.jitter_status = QLabel("Click a variation to keep it as a new result.")
        self.jitter_status.setWordWrap(True)

        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(form)
        layout.addWidget(self.jitter_grid, 1)
        layout.addWidget(self.jitter_status)
        self._on_sigma_changed(self.sigma_slider.value(), render=False)
        self._show_seed()
        return tab

    def _build_category_tab(self) -> QWidget:
        self.class_picker = ClassPicker(
            title="Render the result as another class:", auto_label="The result's own class"
        )
        self.class_picker.setMinimumHeight(160)
        self.class_picker.classChanged.connect(self.show_transfer)
        self.transfer_preview = ImagePreview(side=160)
        self.keep_transfer_button = QPushButton("Keep as a result")
        self.keep_transfer_button.setToolTip("Add this class transfer to the history")
        self.keep_transfer_button.clicked.connect(self.keep_transfer)
        preview_column = QVBoxLayout()
        preview_column.addWidget(self.transfer_preview)
        preview_column.addWidget(self.keep_transfer_button)
        preview_column.addStretch(1)
        single = QHBoxLayout()
        single.addWidget(self.class_picker, 1)
        single.addLayout(preview_column)

        self.gallery_mode = QComboBox()
        for key, text in GALLERY_MODES.items():
            self.gallery_mode.addItem(text, key)
        self.range_from = QSpinBox()
        self.range_to = QSpinBox()
        for spin in (self.range_from, self.range_to):
            spin.setRange(0, 0)
        range_row = QWidget()
        range_layout = QHBoxLayout(range_row)
        range_layout.setContentsMargins(0, 0, 0, 0)
        range_layout.addWidget(QLabel("from"))
        range_layout.addWidget(self.range_from)
        range_layout.addWidget(QLabel("to"))
        range_layout.addWidget(self.range_to)
        range_layout.addStretch(1)
        self.name_filter = QLineEdit()
        self.name_filter.setPlaceholderText("e.g. dog, terrier")
        self.name_filter.returnPressed.connect(self.render_gallery)
        self.mode_options = QStackedWidget()
        self.mode_options.addWidget(QLabel(""))  # top 5: nothing to choose
        self.mode_options.addWidget(range_row)
        self.mode_options.addWidget(self.name_filter)
        self.gallery_mode.currentIndexChanged.connect(self._show_mode_options)
        self.gallery_button = QPushButton("Render gallery")
        self.gallery_button.clicked.connect(self.render_gallery)
        self.save_sheet_button = QPushButton("Save sheet\u2026")
        self.save_sheet_button.setToolTip("Save the gallery as one image with the class names")
        self.save_sheet_button.clicked.connect(self.save_sheet_dialog)
        self.gallery_grid = ThumbnailGrid(side=80, caption_width=112)
        self.gallery_grid.setMinimumHeight(140)
        self.gallery_grid.thumbnailClicked.connect(
            lambda row: self.class_picker.set_selected_class(self._gallery_classes[row])
        )
        self.gallery_status = QLabel("")
        self.gallery_status.setWordWrap(True)

        # The mode's options go under the mode, beside the buttons: next to the mode's long names,
        # the range's spin boxes would widen the panel once the model's class numbers fill them.
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.gallery_mode)
        mode_row.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.mode_options, 1)
        buttons.addStretch(0)  # takes the room of the top five's hidden options
        buttons.addWidget(self.gallery_button)
        buttons.addWidget(self.save_sheet_button)
        gallery_box = QGroupBox("Gallery")
        gallery_layout = QVBoxLayout(gallery_box)
        gallery_layout.addLayout(mode_row)
        gallery_layout.addLayout(buttons)
        gallery_layout.addWidget(self.gallery_grid, 1)
        gallery_layout.addWidget(self.gallery_status)

        self._show_mode_options(self.gallery_mode.currentIndex())

        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(single)
        layout.addWidget(gallery_box, 1)
        return tab

    def _show_mode_options(self, index: int) -> None:
        """The chosen gallery mode's settings (none for the top five: the row is hidden)."""
        self.mode_options.setCurrentIndex(index)
        self.mode_options.setVisible(self.gallery_mode.itemData(index) != "top5")

    # ------------------------------------------------------------ inputs

    def set_class_names(self, class_names: Sequence[str], numbers: Sequence[int] | None = None) -> None:
        """The loaded model's class names (one per index) and the numbers users see for them."""
        self._class_names = list(class_names)
        self.class_picker.set_class_names(self._class_names, numbers)
        self._class_numbers = self.class_picker.class_numbers()
        first, last = (min(self._class_numbers), max(self._class_numbers)) if self._class_numbers else (0, 0)
        for spin in (self.range_from, self.range_to):
            spin.setRange(first, last)
        self.range_from.setValue(first)
        self.range_to.setValue(sorted(self._class_numbers)[min(15, len(self._class_numbers) - 1)]
                               if self._class_numbers else 0)

    def set_entry(self, entry: HistoryEntry | None) -> None:
        """Edit this result from now on (None: nothing selected)."""
        if entry is self._entry:
            return
        self._entry = entry
        self._jitter_id = self._transfer_id = self._gallery_id = 0  # answers still on their way are stale
        self._jitter_states = []
        self.jitter_grid.clear_images()
        self.gallery_grid.clear_images()
        self._gallery_classes = []
        self.gallery_status.setText("")
        if entry is None:
            self.entry_label.setText("Select a result in the history to edit it.")
        elif entry.state is None:
            self.entry_label.setText(
                f"{entry.caption()}: this result cannot be edited (it has no model state)."
            )
        else:
            self.entry_label.setText(f"Editing: {entry.caption()}")
        self.class_picker.blockSignals(True)
        self.class_picker.set_selected_class(None)
        self.class_picker.blockSignals(False)
        self._transfer_class = None
        self._show_own_image()
        self._update_enabled()
        self._render_visible_tab()

    def entry(self) -> HistoryEntry | None:
        return self._entry

    def _editable(self) -> bool:
        return self._entry is not None and self._entry.state is not None

    def _update_enabled(self) -> None:
        editable = self._editable()
        for widget in (
            self.timeline_button,
            self.reseed_button,
            self.keep_transfer_button,
            self.gallery_button,
        ):
            widget.setEnabled(editable)
        self.save_sheet_button.setEnabled(self._gallery_complete and bool(self.gallery_grid.count()))

    def _render_visible_tab(self) -> None:
        # Only what the user is looking at is rendered: the engine thread is shared with restores.
        if not self.isVisible() or not self._editable():
            return
        if self.tabs.currentIndex() == 0 and not self._jitter_id and not self.jitter_grid.count():
            self.render_jitter()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._render_visible_tab()

    # ------------------------------------------------------------ jitter

    def sigma(self) -> float:
        return self.sigma_slider.value() / SIGMA_STEPS_PER_UNIT

    def seed(self) -> int:
        return self._seed

    def _on_sigma_changed(self, value: int, *, render: bool = True) -> None:
        self.sigma_label.setText(f"{value / SIGMA_STEPS_PER_UNIT:.2f}")
        if render:
            self.render_jitter()

    def _show_seed(self) -> None:
        self.seed_label.setText(f"seed {self._seed}")

    def reseed(self) -> None:
        """New random directions for the variations."""
        self._seed = secrets.randbelow(1 << 31)
        self._show_seed()
        self.render_jitter()

    def render_jitter(self) -> None:
        """Ask for the variations of the current settings (only the latest request is rendered)."""
        if not self._editable():
            return
        self._jitter_sigma = self.sigma()
        self._jitter_id = self._studio.jitter(
            self._entry.state, sigma=self._jitter_sigma, count=self.count_spin.value(), seed=self._seed
        )
        self.jitter_status.setText("Rendering variations\u2026")

    def _on_jitter_ready(self, request_id: int, images: list, states: list) -> None:
        if request_id != self._jitter_id:
            return
        self._jitter_states = list(states)
        self.jitter_grid.clear_images()
        self.jitter_grid.add_images(images, [f"#{index}" for index in range(1, len(images) + 1)])
        self.jitter_status.setText(
            f"{len(images)} variations at σ {self._jitter_sigma:.2f}. Click one to keep it as a new result."
        )
        self.jitterShown.emit(len(images))

    def keep_variation(self, row: int) -> None:
        """Keep variation ``row`` of the grid as a new history entry (``editKept`` follows)."""
        if not self._editable() or not 0 <= row < len(self._jitter_states):
            return
        entry = self._entry
        request_id = self._studio.keep(entry.result, self._jitter_states[row], entry.job)
        self._keeps[request_id] = (entry, f"jitter \u03c3 {self._jitter_sigma:.2f} #{row + 1}", row)
        self.jitter_status.setText(f"Keeping variation #{row + 1}\u2026")

    def _on_kept(self, request_id: int, result: object) -> None:
        kept = self._keeps.pop(request_id, None)
        if kept is None:
            return
        parent, edit, row = kept
        if row is not None and parent is self._entry and row < self.jitter_grid.count():
            self.jitter_grid.item(row).setText(f"#{row + 1} \u2713 kept")
            self.jitter_status.setText(f"Kept: {edit}.")
        self.editKept.emit(parent, result, edit)

    # ---------------------------------------------------------- transfer

    def _class_name(self, index: int) -> str:
        return self.class_picker.class_name(index)

    def _class_number(self, index: int) -> int:
        return self.class_picker.class_number(index)

    def _show_own_image(self) -> None:
        if self._entry is None:
            self.transfer_preview.set_image(None, message="No result selected")
        else:
            self.transfer_preview.set_image(self._entry.image)

    def show_transfer(self, class_index: int | None) -> None:
        """Render the result as class ``class_index`` (None: show the result itself).

        The result's own class is rendered too (with its exact embedding), which
        reproduces the result: a check that the edit starts from the right state.
        """
        self._transfer_class = class_index
        if not self._editable():
            return
        if class_index is None:
            self._transfer_id = 0
            self._show_own_image()
            self.transferShown.emit(class_index)
            return
        self._transfer_id = self._studio.transfer(self._entry.state, class_index)

    def _on_transfer_ready(self, request_id: int, class_index: int, image: np.ndarray) -> None:
        if request_id != self._transfer_id:
            return
        self.transfer_preview.set_image(image)
        self.transfer_preview.setToolTip(class_label(self._class_number(class_index), self._class_name(class_index)))
        self.transferShown.emit(class_index)

    def keep_transfer(self) -> None:
        """Keep the shown class transfer as a new history entry (``editKept`` follows)."""
        if not self._editable() or self._transfer_class is None:
            return
        entry, index = self._entry, self._transfer_class
        request_id = self._studio.keep(entry.result, entry.state, entry.job, class_index=index)
        self._keeps[request_id] = (entry, f"\u2192 {self._class_name(index)}", None)

    # ----------------------------------------------------------- gallery

    def gallery_classes(self) -> tuple[list[int], str]:
        """The classes the gallery settings choose, and a note when there is a problem or a cut."""
        mode = self.gallery_mode.currentData()
        if mode == "top5":
            top = [] if self._entry is None or self._entry.result is None else self._entry.result.top_classes
            classes = [int(index) for index, _loss in top[:5]]
            if not classes:
                return [], (
                    "This result's class was chosen by hand, so there is no top five; pick another mode."
                )
            return classes, ""
        if mode == "range":
            low, high = sorted((self.range_from.value(), self.range_to.value()))
            classes = [index for index, number in enumerate(self._class_numbers) if low <= number <= high]
        else:
            text = self.name_filter.text().strip()
            parts = [part.strip() for part in text.split(",") if part.strip()]
            if not parts:
                return [], "Type part of a class name, e.g. \u201cterrier\u201d."
            # Commas separate alternatives ("dog, terrier"): every class matching any of them.
            matches = (
                index for part in parts for index in search_classes(self._class_names, part, self._class_numbers)
            )
            classes = list(dict.fromkeys(matches))
            if not classes:
                return [], f"No class name contains \u201c{text}\u201d."
        if len(classes) > MAX_GALLERY_CLASSES:
            note = f"Showing the first {MAX_GALLERY_CLASSES} of {len(classes)} classes."
            return classes[:MAX_GALLERY_CLASSES], note
        return classes, ""

    def render_gallery(self) -> None:
        """Render the chosen classes as a gallery (``galleryShown`` follows)."""
        if not self._editable():
            return
        classes, note = self.gallery_classes()
        self.gallery_grid.clear_images()
        self._gallery_classes = classes
        self._gallery_complete = False
        self._update_enabled()
        if not classes:
            self._gallery_id = 0
            self.gallery_status.setText(note)
            return
        self._gallery_note = note
        self._gallery_id = self._studio.gallery(self._entry.state, classes)
        self.gallery_status.setText(f"Rendering {len(classes)} classes\u2026 {note}".strip())

    def _on_gallery_batch(self, request_id: int, start: int, images: list) -> None:
        if request_id != self._gallery_id:
            return
        classes = self._gallery_classes[start : start + len(images)]
        captions = [class_label(self._class_number(index), self._class_name(index)) for index in classes]
        self.gallery_grid.add_images(images, captions)

    def _on_gallery_done(self, request_id: int) -> None:
        if request_id != self._gallery_id:
            return
        self._gallery_complete = True
        count = self.gallery_grid.count()
        self.gallery_status.setText(f"{count} classes. {self._gallery_note}".strip())
        self._update_enabled()
        self.galleryShown.emit(count)

    def gallery_labels(self) -> list[str]:
        return self.gallery_grid.captions()

    def save_sheet_dialog(self) -> None:
        if not self._gallery_complete:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the gallery as a sheet", str(Path.home() / "gallery.png"), SHEET_FILTERS
        )
        if path:
            self.save_sheet(Path(path) if Path(path).suffix else Path(path).with_suffix(".png"))

    def save_sheet(self, path: str | Path) -> None:
        """Write the gallery as one contact sheet with class names (``sheetSaved`` follows)."""
        images = self.gallery_grid.images()
        if not images:
            return
        columns = max(1, math.ceil(math.sqrt(len(images))))
        request_id = self._studio.save_sheet(images, self.gallery_labels(), Path(path), columns=columns)
        self._sheet_ids.add(request_id)
        self.gallery_status.setText(f"Saving {Path(path).name}\u2026")

    def _on_sheet_saved(self, request_id: int, path: str) -> None:
        if request_id in self._sheet_ids:
            self._sheet_ids.discard(request_id)
            self.gallery_status.setText(f"Saved {path}.")
            self.sheetSaved.emit(path)

    def _on_failed(self, request_id: int, sentence: str, details: str) -> None:
        # The window shows the dialog; here the status lines stop saying "Rendering…".
        if request_id == self._jitter_id:
            self.jitter_status.setText(sentence)
        elif request_id == self._gallery_id or request_id in self._sheet_ids:
            self._sheet_ids.discard(request_id)
            self.gallery_status.setText(sentence)
        elif request_id in self._keeps:
            self._keeps.pop(request_id)
            self.jitter_status.setText(sentence)
