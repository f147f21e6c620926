"""Export the morph timeline as GIF, MP4, animated WebP or a folder of PNG frames.

The export runs on the engine thread (:class:`dgp_studio.studio_jobs.StudioWorker`):
frames are rendered one by one with the preallocated morph generator and
streamed into ``engine.export.export_animation``, which writes to a hidden
temporary name and moves the file into place only when complete. Cancel stops
within one frame and leaves nothing behind. Progress arrives as signals; the
dialog never blocks the event loop.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.studio_jobs import AnimationSettings, StudioController
from dgp_studio.timeline import AnimationPlan

FORMATS: dict[str, str] = {  # label -> suffix ("" = a folder of PNG frames)
    "GIF": ".gif",
    "MP4 video (H.264)": ".mp4",
    "Animated WebP": ".webp",
    "PNG frames (a folder)": "",
}
UPSCALE_FACTORS = (1, 2, 4, 8)
DEFAULT_CRF = 18


class ExportDialog(QDialog):
    """Choose format, size and timing, then export with progress and cancel.

    Parameters
    ----------
    studio : StudioController
        Runs the export on the engine thread.
    plan : AnimationPlan
        The timeline to export (two or more keyframes).
    resolution : int
        The model's output side in pixels (the 1× size).
    suggested_path : Path
        Where to write, without or with a suffix (the format's suffix replaces it).

    Signals
    -------
    exportEnded(object)
        The written path as str, or None when the export was cancelled or failed.
    """

    exportEnded = Signal(object)

    def __init__(
        self,
        studio: StudioController,
        plan: AnimationPlan,
        *,
        resolution: int,
        suggested_path: Path,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export animation")
        self._studio = studio
        self._plan = plan
        self._resolution = resolution
        self._request_id = 0
        self._confirmed_overwrite: Path | None = None
        self._last_written: str | None = None
        self._failed = False

        self.format_combo = QComboBox()
        for label, suffix in FORMATS.items():
            self.format_combo.addItem(label, suffix)
        self.format_combo.currentIndexChanged.connect(self._on_format_changed)
        self.path_edit = QLineEdit(str(suggested_path.with_suffix(".gif")))
        self.browse_button = QPushButton("Browse\u2026")
        self.browse_button.clicked.connect(self.browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        self.size_combo = QComboBox()
        for factor in UPSCALE_FACTORS:
            side = resolution * factor
            label = f"Model resolution ({side} px)" if factor == 1 else f"{factor}\u00d7 upscaled ({side} px)"
            self.size_combo.addItem(label, factor)
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(round(plan.fps))
        self.fps_spin.setSuffix(" fps")
        self.loop_check = QCheckBox("Loop forever (GIF, WebP)")
        self.loop_check.setChecked(plan.loop)
        self.ping_pong_check = QCheckBox("Ping-pong (A\u2192B\u2192A)")
        self.ping_pong_check.setChecked(plan.ping_pong)
        self.crf_spin = QSpinBox()
        self.crf_spin.setRange(0, 51)
        self.crf_spin.setValue(DEFAULT_CRF)
        self.crf_spin.setToolTip("MP4 quality: 0 is lossless, 18 visually lossless, higher is smaller")
        self.fps_spin.valueChanged.connect(lambda _value: self._describe())
        self.ping_pong_check.toggled.connect(lambda _checked: self._describe())

        form = QFormLayout()
        form.addRow("Format", self.format_combo)
        form.addRow("Save as", path_row)
        form.addRow("Size", self.size_combo)
        form.addRow("Frame rate", self.fps_spin)
        form.addRow("", self.loop_check)
        form.addRow("", self.ping_pong_check)
        form.addRow("MP4 quality (CRF)", self.crf_spin)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.export_button.setDefault(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)

        worker = studio.worker
        worker.exportProgress.connect(self._on_progress)
        worker.exportEnded.connect(self._on_ended)
        worker.failed.connect(self._on_failed)
        self._on_format_changed()

    # ------------------------------------------------------------ choices

    def set_format(self, suffix: str) -> None:
        """Choose the format by suffix: ``.gif``, ``.mp4``, ``.webp`` or ``""`` (PNG frames)."""
        index = self.format_combo.findData(suffix)
        if index < 0:
            raise ValueError(f"unknown export format {suffix!r}")
        self.format_combo.setCurrentIndex(index)

    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))

    def set_upscale(self, factor: int) -> None:
        self.size_combo.setCurrentIndex(UPSCALE_FACTORS.index(factor))

    def path(self) -> Path:
        """The destination, with the chosen format's suffix."""
        typed = self.path_edit.text().strip()
        if not typed:
            return Path()
        text = Path(typed)
        suffix = self.format_combo.currentData()
        if suffix:
            return text if text.suffix.lower() == suffix else text.with_suffix(suffix)
        return text.with_suffix("") if text.suffix else text

    def settings(self) -> AnimationSettings:
        factor = self.size_combo.currentData()
        return AnimationSettings(
            fps=float(self.fps_spin.value()),
            loop=self.loop_check.isChecked(),
            ping_pong=self.ping_pong_check.isChecked(),
            size=None if factor == 1 else self._resolution * factor,
            crf=self.crf_spin.value(),
        )

    def _on_format_changed(self) -> None:
        suffix = self.format_combo.currentData()
        self.crf_spin.setEnabled(suffix == ".mp4")
        self.loop_check.setEnabled(suffix in (".gif", ".webp"))
        if self.path_edit.text().strip():
            self.path_edit.setText(str(self.path()))
        self._describe()

    def _describe(self) -> None:
        frames = self._plan.frames
        total = 2 * frames - 2 if self.ping_pong_check.isChecked() and frames > 2 else frames
        seconds = total / self.fps_spin.value()
        keyframes = len(self._plan.keyframes)
        reuse = " The preview frames are reused." if self._plan.rendered is not None else ""
        self.summary_label.setText(
            f"{keyframes} keyframes, {total} frames, {seconds:.1f} s.{reuse}"
        )

    def browse(self) -> None:
        suffix = self.format_combo.currentData()
        if suffix:
            name_filter = f"{self.format_combo.currentText()} (*{suffix})"
            path, _ = QFileDialog.getSaveFileName(self, "Export animation", str(self.path()), name_filter)
        else:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export frames into a new folder", str(self.path()), "Folder (*)"
            )
        if path:
            self.set_path(path)
            # The file dialog already asked before replacing an existing file.
            self._confirmed_overwrite = self.path()

    # ------------------------------------------------------------ export

    def is_exporting(self) -> bool:
        return bool(self._request_id)

    def last_written(self) -> str | None:
        return self._last_written

    def start(self) -> bool:
        """Start the export; False when it cannot start (the status line says why)."""
        if self.is_exporting():
            return False
        path = self.path()
        if path == Path():
            self.status_label.setText("Choose where to save the animation.")
            return False
        overwrite = False
        if path.exists():
            if path != self._confirmed_overwrite:
                answer = QMessageBox.question(
                    self,
                    "Export animation",
                    f"{path.name} already exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No,
                )
                if answer != QMessageBox.StandardButton.Yes:
                    return False
            overwrite = True
        plan = self._plan
        self._request_id = self._studio.export(
            plan.keyframes,
            frames=plan.frames,
            easing=plan.easing,
            path=path,
            settings=self.settings(),
            overwrite=overwrite,
            rendered=plan.rendered,
        )
        self._last_written = None
        self._failed = False
        self.status_label.setStyleSheet("")
        self.progress_bar.setRange(0, 0)  # busy until the first frame arrives
        self.status_label.setText("Starting\u2026")
        self._set_running(True)
        return True

    def cancel(self) -> None:
        """Stop the export within one frame; nothing is left at the destination."""
        if self.is_exporting():
            self._studio.cancel_export()
            self.status_label.setText("Cancelling\u2026")

    def _on_cancel_clicked(self) -> None:
        if self.is_exporting():
            self.cancel()
        else:
            self.reject()

    def reject(self) -> None:
        # Closing the dialog (Esc, the window's close button) cancels a running export.
        self.cancel()
        super().reject()

    def _set_running(self, running: bool) -> None:
        for widget in (
            self.format_combo,
            self.path_edit,
            self.browse_button,
            self.size_combo,
            self.fps_spin,
            self.loop_check,
            self.ping_pong_check,
            self.crf_spin,
            self.export_button,
        ):
            widget.setEnabled(not running)
        if not running:
            self._on_format_changed()
        self.cancel_button.setText("Cancel export" if running else "Close")

    def _on_progress(self, request_id: int, done: int, total: int, detail: str) -> None:
        if request_id != self._request_id:
            return
        if total:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
        self.status_label.setText(detail[:1].upper() + detail[1:] if detail else "")

    def _on_ended(self, request_id: int, written: object) -> None:
        if request_id != self._request_id:
            return
        self._request_id = 0
        self._set_running(False)
        self.progress_bar.setRange(0, 1)
        if written is None:
            self.progress_bar.setValue(0)
            if not self._failed:
                self.status_label.setText("Cancelled: nothing was written.")
        else:
            self.progress_bar.setValue(1)
            self._last_written = str(written)
            self.status_label.setText(f"Saved {written}.")
        self.exportEnded.emit(written)

    def _on_failed(self, request_id: int, sentence: str, details: str) -> None:
        if request_id != self._request_id:
            return
        self._failed = True
        self.status_label.setStyleSheet("color: #c0392b;")
        self.status_label.setText(sentence)
        self.status_label.setToolTip(details[-2000:])
