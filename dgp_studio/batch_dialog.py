"""File › Batch restore…: restore a whole folder with ``dgp-studio batch`` in a child process.

The batch runs as its own process (``python -m engine.cli batch … --json-progress``,
or the frozen app's own executable with ``batch …``), so the GUI thread
never runs torch and the app's engine thread stays free for the photo that is
open. The child prints one JSON object per line; the dialog reads them as
they arrive (:class:`QProcess` signals, no polling, no blocking) and shows the
progress over the whole batch, the photos done and failed, and the ETA. Stop
sends the child Ctrl+C (SIGINT): the photos in flight are cancelled, the
manifest stays consistent and a later run resumes where this one stopped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

TASKS: dict[str, str] = {  # label -> the command line's task
    "Colorize": "colorize",
    "Inpaint (masks folder)": "inpaint",
    "Super-resolution ×4": "sr",
    "Reconstruct": "reconstruct",
    "Remove adversarial noise": "defend",
}
PROGRESS_STEPS = 1000


def batch_command(arguments: list[str]) -> tuple[str, list[str]]:
    """The program and arguments that run ``dgp-studio batch`` in a child process."""
    if getattr(sys, "frozen", False):          # the bundled app: its own executable takes "batch"
        return sys.executable, ["batch", *arguments]
    return sys.executable, ["-m", "engine.cli", "batch", *arguments]


def _engine_root() -> str | None:
    """The folder that holds the ``engine`` package, for the child's PYTHONPATH (a source checkout)."""
    spec = importlib.util.find_spec("engine")
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).resolve().parent.parent)


def _format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _FolderField(QWidget):
    """A line edit with a Browse… button that picks a folder."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.edit = QLineEdit(self)
        self.browse = QPushButton("Browse\u2026", self)
        self.browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.caption, self.edit.text())
        if folder:
            self.edit.setText(folder)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text) if text else None


class BatchDialog(QDialog):
    """Pick a folder, a task, an output folder; run the batch with progress; open the results.

    Parameters
    ----------
    parent : QWidget, optional
    extra_arguments : list of str, optional
        Appended to the batch command (the model, threads, a test preset).
    """

    finished_batch = Signal(int)   # the child's exit code

    def __init__(self, parent: QWidget | None = None, *, extra_arguments: list[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch restore")
        self.extra_arguments = list(extra_arguments or [])
        self.process: QProcess | None = None
        self._buffer = b""
        self._started_at = 0.0
        self._first_photo_at: float | None = None
        self._plan: dict = {}
        self._done = self._failed = 0
        self._last_finished: dict = {}
        self.exit_code: int | None = None

        self.input_field = _FolderField("Folder of photos to restore", self)
        self.task_combo = QComboBox(self)
        self.task_combo.addItems(list(TASKS))
        self.masks_field = _FolderField("Folder of masks (photo.png or photo_mask.png, white = missing)", self)
        self.output_field = _FolderField("Folder for the results", self)
        self.quick_check = QCheckBox("Quick (the preset's preview variant)", self)
        self.task_combo.currentTextChanged.connect(self._task_changed)

        form = QFormLayout()
        form.addRow("Photos:", self.input_field)
        form.addRow("Task:", self.task_combo)
        form.addRow("Masks:", self.masks_field)
        form.addRow("Results:", self.output_field)
        form.addRow("", self.quick_check)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.status_label = QLabel("Choose a folder of photos and a folder for the results.", self)
        self.status_label.setWordWrap(True)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setPlaceholderText("Photos that could not be restored are listed here.")

        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setEnabled(False)
        self.open_button = QPushButton("Open output folder", self)
        self.open_button.setEnabled(False)
        self.close_button = QPushButton("Close", self)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.open_button.clicked.connect(self.open_output_folder)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)
        self._task_changed(self.task_combo.currentText())
        self.resize(620, 420)

    # -- settings ---------------------------------------------------------------------
    def task(self) -> str:
        return TASKS[self.task_combo.currentText()]

    def _task_changed(self, _label: str) -> None:
        self.masks_field.setEnabled(self.task() == "inpaint")

    def arguments(self) -> list[str]:
        """The batch command's arguments for the dialog's settings (raises ValueError with a sentence)."""
        source, out = self.input_field.path(), self.output_field.path()
        if source is None or not source.is_dir():
            raise ValueError("Choose the folder of photos to restore.")
        if out is None:
            raise ValueError("Choose a folder for the results.")
        arguments = [str(source), "-o", str(out), "--task", self.task(), "--json-progress"]
        if self.task() == "inpaint":
            masks = self.masks_field.path()
            if masks is None or not masks.is_dir():
                raise ValueError("Inpainting needs the folder of masks (photo.png or photo_mask.png beside each name).")
            arguments += ["--masks", str(masks)]
        if self.quick_check.isChecked():
            arguments.append("--quick")
        return arguments + self.extra_arguments

    # -- running ----------------------------------------------------------------------
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        if self.running():
            return
        try:
            arguments = self.arguments()
        except ValueError as error:
            QMessageBox.warning(self, "Batch restore", str(error))
            return
        program, full_arguments = batch_command(arguments)
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        root = _engine_root()
        if root is not None:
            existing = environment.value("PYTHONPATH", "")
            environment.insert("PYTHONPATH", root + (os.pathsep + existing if existing else ""))
        environment.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        self._buffer = b""
        self._plan, self._done, self._failed, self._last_finished = {}, 0, 0, {}
        self.exit_code = None
        self.log.clear()
        self.progress.setValue(0)
        self.status_label.setText("Starting the workers and loading the model\u2026")
        self._started_at = time.monotonic()
        self._first_photo_at = None
        self._set_running(True)
        process.start(program, full_arguments)

    def stop(self) -> None:
        """Ask the batch to stop: SIGINT cancels the photos in flight and keeps the manifest whole."""
        if not self.running():
            return
        self.status_label.setText("Stopping: cancelling the photos in flight\u2026")
        pid = int(self.process.processId())
        if pid > 0 and hasattr(signal, "SIGINT") and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            self.process.kill()

    def _set_running(self, running: bool) -> None:
        for widget in (self.input_field, self.task_combo, self.masks_field, self.output_field, self.quick_check,
                       self.start_button):
            widget.setEnabled(not running)
        if not running:
            self._task_changed(self.task_combo.currentText())
        self.stop_button.setEnabled(running)
        self.open_button.setEnabled(not running and self.output_field.path() is not None
                                    and self.output_field.path().is_dir())

    def _read_output(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.handle_event(event)

    def handle_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "plan":
            self._plan = event
            self.status_label.setText(
                f"{event['total']} photos: {event['to_run']} to restore, {event['skipped']} already done."
            )
        elif kind == "progress":
            total = max(1, int(event["total"]))
            fraction = min(1.0, float(event["done"]) / total)
            self.progress.setValue(int(round(fraction * PROGRESS_STEPS)))
            # From the first photo handed out: starting the workers is paid once, not per photo.
            elapsed = time.monotonic() - (self._first_photo_at or self._started_at)
            eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
            self.status_label.setText(
                f"{self._done} of {total} restored" + (f", {self._failed} failed" if self._failed else "")
                + (f"; about {_format_eta(eta)} left" if eta is not None else "")
            )
        elif kind == "started":
            if self._first_photo_at is None:
                self._first_photo_at = time.monotonic()
        elif kind == "record":
            if event.get("status") == "done":
                self._done += 1
            elif event.get("status") == "failed":
                self._failed += 1
                self.log.appendPlainText(event.get("error") or event.get("output", ""))
        elif kind == "finished":
            self._last_finished = event
        elif kind == "error":
            self.log.appendPlainText(event.get("error", ""))

    def _process_finished(self, exit_code: int, _status) -> None:
        self.exit_code = int(exit_code)
        self._read_output()
        summary = self._last_finished
        if summary:
            text = (f"Done: {summary['done']} restored, {summary['skipped']} already done, "
                    f"{summary['failed']} failed.")
            if summary.get("interrupted"):
                text = (f"Stopped: {summary['done']} restored, {summary['cancelled']} cancelled; "
                        f"start again to continue.")
            elif summary["failed"] == 0:
                self.progress.setValue(PROGRESS_STEPS)
        else:
            errors = bytes(self.process.readAllStandardError()).decode(errors="replace").strip().splitlines()
            text = errors[-1] if errors else f"The batch stopped (exit code {exit_code})."
        self.status_label.setText(text)
        self._set_running(False)
        self.finished_batch.emit(self.exit_code)

    def _process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.status_label.setText(f"The batch could not be started ({self.process.errorString()}).")
            self._set_running(False)
            self.exit_code = -1
            self.finished_batch.emit(-1)

    def open_output_folder(self) -> None:
        folder = self.output_field.path()
        if folder is not None and folder.is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def closeEvent(self, event) -> None:
        if self.running():
            answer = QMessageBox.question(
                self, "Batch restore", "The batch is still running. Stop it? (A later run resumes it.)"
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.stop()
            if not self.process.waitForFinished(15000):
                self.process.kill()
        super().closeEvent(event)


def open_batch_dialog(parent: QWidget) -> BatchDialog:
    """Show the window's batch dialog, creating it once (it keeps running while hidden)."""
    dialog = getattr(parent, "_batch_dialog", None)
    if dialog is None:
        dialog = BatchDialog(parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        parent._batch_dialog = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
