"""Tools > Model manager: the built-in model and imported BigGAN pairs (``engine.model_store``).

Lists the store's models with their kind, classes, files and warnings;
imports a generator (and discriminator) file pair or a folder of released
files, by copy or by link; verifies and removes imported models; and picks
the model the app restores with. Imports load the checkpoints to validate
them, so they run on a ``QThreadPool`` (:class:`~dgp_studio.background.BackgroundJobs`),
never on the GUI thread.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from dgp_studio.background import BackgroundJobs
from engine.errors import BadInputError
from engine.model_store import ModelStore, StoredModel

LOG = logging.getLogger(__name__)
IMPORT_MODES = (("copy", "Copy the files into the model store"), ("link", "Link to the files where they are"))


def describe_model(model: StoredModel) -> str:
    """A short rich-text description: kind, classes, resolution, files and warnings (escaped)."""
    architecture = model.card.get("architecture", {})
    suffix = " (built-in)" if model.builtin else f" &mdash; id {model.id}"
    lines = [f"<b>{html.escape(model.name)}</b>{suffix}"]
    lines.append(f"Kind: {html.escape(model.kind)}")
    if architecture:
        classes, resolution = architecture.get("n_classes", "?"), architecture.get("resolution", "?")
        lines.append(f"Classes: {classes}; resolution: {resolution} px")
    for role, record in sorted(model.card.get("files", {}).items()):
        path = model.file_path(role)
        how = "linked" if record.get("mode") == "link" else "copied"
        lines.append(f"{html.escape(role)} file: {html.escape(str(path))} ({how})")
    if not model.builtin and not model.has_discriminator:
        lines.append("D file: none")
    if model.warning:
        lines.append(f'<span style="color:#d9534f;">Warning: {html.escape(model.warning)}</span>')
    return "<br>".join(lines)


class ModelManagerDialog(QDialog):
    """List, import, verify, remove and choose models.

    Parameters
    ----------
    store : ModelStore
        The app's store (``ModelStore(models_dir())``).
    current_model : str
        The settings' ``model`` value (``"builtin"`` or a store id), marked "in use".

    Signals
    -------
    modelChosen(str)
        "Use this model": the chosen model's id.
    importFinished(object)
        An import ended: the new :class:`StoredModel`, or None when it failed
        (the reason is in :attr:`status_label`).
    """

    modelChosen = Signal(str)
    importFinished = Signal(object)

    def __init__(
        self, store: ModelStore, *, current_model: str = "builtin", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model manager")
        self.resize(720, 520)
        self._store = store
        self._current_model = current_model
        self._jobs = BackgroundJobs(self)

        self.model_list = QListWidget()
        self.model_list.currentItemChanged.connect(self._show_selected)
        self.details_label = QLabel()
        self.details_label.setWordWrap(True)
        self.details_label.setTextFormat(Qt.TextFormat.RichText)
        self.details_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self.use_selected)
        self.verify_button = QPushButton("Verify")
        self.verify_button.clicked.connect(self.verify_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        actions = QHBoxLayout()
        for button in (self.use_button, self.verify_button, self.remove_button):
            actions.addWidget(button)
        actions.addStretch(1)

        # Import form: G (file or folder of released files), optional D, copy or link.
        self.generator_edit = QLineEdit()
        self.generator_edit.setPlaceholderText("G file, or a folder with G_ema*.pth and D*.pth")
        self.discriminator_edit = QLineEdit()
        self.discriminator_edit.setPlaceholderText("D file (optional, but DGP needs it)")
        self.mode_combo = QComboBox()
        for mode, label in IMPORT_MODES:
            self.mode_combo.addItem(label, mode)
        self.import_button = QPushButton("Import\u2026")
        self.import_button.clicked.connect(self._import_clicked)
        import_form = QFormLayout()
        import_form.addRow("Generator (G)", self._browse_row(self.generator_edit, folder=True))
        import_form.addRow("Discriminator (D)", self._browse_row(self.discriminator_edit, folder=False))
        import_form.addRow("Files", self.mode_combo)
        import_form.addRow("", self.import_button)

        columns = QHBoxLayout()
        columns.addWidget(self.model_list, 1)
        columns.addWidget(self.details_label, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(columns, 1)
        layout.addLayout(actions)
        layout.addWidget(QLabel("<b>Import a BigGAN model</b>"))
        layout.addLayout(import_form)
        layout.addWidget(self.status_label)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        self.refresh()

    # ------------------------------------------------------------------ list

    def refresh(self, *, select: str | None = None) -> None:
        """Re-read the store and select ``select`` (default: the model in use)."""
        wanted = select or self._current_model
        listing = self._store.list()
        self.model_list.clear()
        for model in listing:
            text = model.name + (" (built-in)" if model.builtin else "")
            if model.id == self._current_model:
                text += " \u2014 in use"
            if not model.builtin and not model.has_discriminator:
                text += " \u26a0 no D"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, model)
            self.model_list.addItem(item)
            if model.id == wanted:
                self.model_list.setCurrentItem(item)
        if self.model_list.currentItem() is None and self.model_list.count():
            self.model_list.setCurrentRow(0)
        problems = list(listing.problems)
        if listing.builtin_missing:
            problems.insert(0, listing.builtin_missing)
        if problems:
            self.status_label.setText(" ".join(problems))
        self._show_selected()

    def model_ids(self) -> list[str]:
        """The listed models' ids, in list order."""
        items = (self.model_list.item(row) for row in range(self.model_list.count()))
        return [item.data(Qt.ItemDataRole.UserRole).id for item in items]

    def selected_model(self) -> StoredModel | None:
        item = self.model_list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, model_id: str) -> None:
        for row in range(self.model_list.count()):
            if self.model_list.item(row).data(Qt.ItemDataRole.UserRole).id == model_id:
                self.model_list.setCurrentRow(row)
                return

    def _show_selected(self, *_args) -> None:
        model = self.selected_model()
        self.details_label.setText("" if model is None else describe_model(model))
        self.use_button.setEnabled(model is not None and model.id != self._current_model)
        self.verify_button.setEnabled(model is not None and not model.builtin)
        self.remove_button.setEnabled(model is not None and not model.builtin)

    # --------------------------------------------------------------- actions

    def use_selected(self) -> None:
        """Make the selected model the one the app restores with (emits ``modelChosen``)."""
        model = self.selected_model()
        if model is None:
            return
        if not model.builtin and not model.has_discriminator:
            self.status_label.setText(
                f"{model.name} has no discriminator, and restoring needs one: "
                "import it again with its D file."
            )
            return
        self._current_model = model.id
        self.refresh(select=model.id)
        self.status_label.setText(f"The app now uses {model.name}; it loads for the next restoration.")
        self.modelChosen.emit(model.id)

    def verify_selected(self) -> list[str]:
        """Re-hash the selected model's files; shows and returns the problems (empty: all good)."""
        model = self.selected_model()
        if model is None or model.builtin:
            return []
        try:
            problems = self._store.verify(model.id)
        except BadInputError as error:
            problems = [str(error)]
        self.status_label.setText(" ".join(problems) if problems else f"{model.name}: every file matches.")
        return problems

    def remove_selected(self) -> bool:
        """Delete the selected imported model (linked originals are kept); False for the built-in one."""
        model = self.selected_model()
        if model is None or model.builtin:
            return False
        if model.id == self._current_model:
            self.status_label.setText(f"{model.name} is in use: choose another model before removing it.")
            return False
        try:
            self._store.remove(model.id)
        except (BadInputError, OSError) as error:
            self.status_label.setText(str(error))
            return False
        self.status_label.setText(f"Removed {model.name}.")
        self.refresh()
        return True

    # ---------------------------------------------------------------- import

    def _browse_row(self, edit: QLineEdit, *, folder: bool) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        pick_file = QPushButton("File\u2026")
        pick_file.clicked.connect(lambda: self._pick_file(edit))
        layout.addWidget(pick_file)
        if folder:
            pick_folder = QPushButton("Folder\u2026")
            pick_folder.clicked.connect(lambda: self._pick_folder(edit))
            layout.addWidget(pick_folder)
        return row

    def _pick_file(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a checkpoint", edit.text(), "Checkpoints (*.safetensors *.pth *.pt);;All files (*)"
        )
        if path:
            edit.setText(path)

    def _pick_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of released BigGAN files", edit.text())
        if path:
            edit.setText(path)

    def _import_clicked(self) -> None:
        generator = self.generator_edit.text().strip()
        if not generator:
            self.status_label.setText("Choose the generator (G) file or a folder first.")
            return
        discriminator = self.discriminator_edit.text().strip() or None
        self.start_import(generator, discriminator, mode=self.mode_combo.currentData())

    def start_import(
        self, g_path: str | Path, d_path: str | Path | None = None, *, mode: str = "copy"
    ) -> None:
        """Import in the background; ``importFinished`` reports the outcome on the GUI thread."""
        self.import_button.setEnabled(False)
        self.status_label.setText(f"Importing {Path(g_path).name}\u2026 (checking the checkpoints)")
        store = self._store

        def run() -> StoredModel:
            return store.import_pair(g_path, d_path, mode=mode)

        self._jobs.submit(run, on_success=self._import_succeeded, on_error=self._import_failed)

    def _import_succeeded(self, model: StoredModel) -> None:
        self.import_button.setEnabled(True)
        self.generator_edit.clear()
        self.discriminator_edit.clear()
        self.refresh(select=model.id)
        message = f"Imported {model.name}."
        if model.warning:
            message += f" Warning: {model.warning}"
        self.status_label.setText(message)
        self.importFinished.emit(model)

    def _import_failed(self, error: BaseException, details: str) -> None:
        self.import_button.setEnabled(True)
        if isinstance(error, BadInputError):
            self.status_label.setText(str(error))
        else:
            LOG.error("model import failed\n%s", details)
            self.status_label.setText(f"The import failed ({type(error).__name__}: {error}).")
        self.importFinished.emit(None)

    def wait_for_imports(self, timeout_ms: int = 30_000) -> bool:
        """Block until background imports are done (closing, tests)."""
        return self._jobs.wait(timeout_ms)

    def done(self, result: int) -> None:
        self._jobs.wait(30_000)  # an import must not outlive the dialog that reports it
        super().done(result)
