"""User preferences (TOML under the platform's config folder) and the Settings dialog.

Preferences live in ``settings.toml`` in
``platformdirs.user_config_dir("dgp-studio")``: read with :mod:`tomllib`,
written with ``tomli_w`` to a temporary file that is renamed into place.
Window geometry and recent files are ``QSettings`` (see :func:`window_state`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import platformdirs
import tomli_w
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dgp_studio import APP_NAME
from engine.errors import BadInputError

SETTINGS_FILE_NAME = "settings.toml"
SETTINGS_SCHEMA = 1
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32")
BUILTIN_MODEL = "builtin"
CUSTOM_MODEL = "custom"


@dataclass(frozen=True)
class AppSettings:
    """Preferences that shape the engine.

    ``threads`` 0 = let torch decide. ``model`` is ``"builtin"`` or
    ``"custom"``; a custom model is a generator and a discriminator
    checkpoint (``generator_path``, ``discriminator_path``).
    """

    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    model: str = BUILTIN_MODEL
    generator_path: str = ""
    discriminator_path: str = ""

    def validated(self, *, source: str = "the settings") -> AppSettings:
        """Return self, or raise BadInputError naming ``source``, the key and the bad value."""
        if self.device not in DEVICES:
            raise BadInputError(f"In {source}, device = {self.device!r} is not one of {', '.join(DEVICES)}.")
        if self.precision not in PRECISIONS:
            raise BadInputError(
                f"In {source}, precision = {self.precision!r} is not one of {', '.join(PRECISIONS)}."
            )
        if (
            isinstance(self.threads, bool)
            or not isinstance(self.threads, int)
            or not 0 <= self.threads <= 1024
        ):
            raise BadInputError(
                f"In {source}, threads = {self.threads!r} is not a whole number from 0 to 1024."
            )
        if self.model not in (BUILTIN_MODEL, CUSTOM_MODEL):
            raise BadInputError(f'In {source}, model = {self.model!r} is not "builtin" or "custom".')
        if self.model == CUSTOM_MODEL and not (self.generator_path and self.discriminator_path):
            raise BadInputError(
                f'In {source}, model = "custom" needs both generator_path and discriminator_path.'
            )
        return self

    def engine_threads(self) -> int | None:
        """``threads`` as the engine takes it (None = torch's default)."""
        return self.threads or None


CONFIG_DIR_VARIABLE = "DGP_STUDIO_CONFIG_DIR"


def config_dir() -> Path:
    """The per-user folder for settings and user presets (created on demand).

    ``platformdirs.user_config_dir("dgp-studio")``, unless the environment
    variable ``DGP_STUDIO_CONFIG_DIR`` names another folder (portable
    installs, tests).
    """
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    if override:
        folder = Path(override)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, ensure_exists=True))


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def load_settings(path: Path | None = None) -> AppSettings:
    """Read preferences; a missing file gives the defaults.

    Raises
    ------
    BadInputError
        When the file is not valid TOML or holds an unknown key or a bad value
        (the message names the file, the key and the value).
    """
    target = settings_path() if path is None else Path(path)
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"The settings file {target} could not be read: {error}.") from error
    except tomllib.TOMLDecodeError as error:
        raise BadInputError(f"The settings file {target} is not valid TOML ({error}).") from error
    data.pop("schema", None)
    known = set(AppSettings.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(f"The settings file {target} has an unknown key {unknown[0]!r}.")
    return AppSettings(**data).validated(source=str(target))


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write preferences atomically (temporary file + rename); returns the path written."""
    target = settings_path() if path is None else Path(path)
    settings.validated()
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"schema": SETTINGS_SCHEMA, **asdict(settings)}
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(tomli_w.dumps(payload), encoding="utf-8")
        temporary.replace(target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BadInputError(
            f"The settings could not be saved to {target}: {error.strerror or error}."
        ) from error
    return target


def window_state() -> QSettings:
    """``QSettings`` for window geometry and recent files (INI format, per user)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, APP_NAME)


class SettingsDialog(QDialog):
    """Edit :class:`AppSettings`: device, precision, threads and model."""

    def __init__(self, settings: AppSettings, *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.device_combo = QComboBox()
        for device, label in zip(
            DEVICES, ("Automatic (best available)", "CPU", "CUDA GPU", "Apple MPS"), strict=True
        ):
            self.device_combo.addItem(label, device)
        self.precision_combo = QComboBox()
        for precision, label in zip(
            PRECISIONS, ("Automatic", "bfloat16 (faster where supported)", "float32 (exact)"), strict=True
        ):
            self.precision_combo.addItem(label, precision)
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 1024)
        self.threads_spin.setSpecialValueText("Automatic")
        self.model_combo = QComboBox()
        self.model_combo.addItem("Built-in model", BUILTIN_MODEL)
        self.model_combo.addItem("My own BigGAN checkpoints", CUSTOM_MODEL)
        self.generator_edit = QLineEdit()
        self.discriminator_edit = QLineEdit()
        self._custom_box = QWidget()
        custom_form = QFormLayout(self._custom_box)
        custom_form.setContentsMargins(0, 0, 0, 0)
        custom_form.addRow(
            "Generator (G)", self._path_row(self.generator_edit, "Choose the generator checkpoint")
        )
        custom_form.addRow(
            "Discriminator (D)",
            self._path_row(self.discriminator_edit, "Choose the discriminator checkpoint"),
        )
        self.model_combo.currentIndexChanged.connect(self._sync_custom_box)
        self.problem_label = QLabel()
        self.problem_label.setStyleSheet("color: #d9534f;")
        self.problem_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("CPU threads", self.threads_spin)
        form.addRow("Model", self.model_combo)
        form.addRow(self._custom_box)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Changes take effect for the next restoration."))
        layout.addWidget(self.problem_label)
        layout.addWidget(self.buttons)
        self.set_settings(settings)

    def _path_row(self, edit: QLineEdit, caption: str) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(lambda: self._browse(edit, caption))
        layout.addWidget(edit, 1)
        layout.addWidget(browse)
        return row

    def _browse(self, edit: QLineEdit, caption: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, caption, edit.text(), "Checkpoints (*.safetensors *.pth *.pt);;All files (*)"
        )
        if path:
            edit.setText(path)

    def _sync_custom_box(self) -> None:
        self._custom_box.setEnabled(self.model_combo.currentData() == CUSTOM_MODEL)

    def set_settings(self, settings: AppSettings) -> None:
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(settings.device), 0))
        self.precision_combo.setCurrentIndex(max(self.precision_combo.findData(settings.precision), 0))
        self.threads_spin.setValue(settings.threads)
        self.model_combo.setCurrentIndex(max(self.model_combo.findData(settings.model), 0))
        self.generator_edit.setText(settings.generator_path)
        self.discriminator_edit.setText(settings.discriminator_path)
        self._sync_custom_box()

    def settings(self) -> AppSettings:
        """The dialog's values (not validated)."""
        return replace(
            AppSettings(),
            device=self.device_combo.currentData(),
            precision=self.precision_combo.currentData(),
            threads=self.threads_spin.value(),
            model=self.model_combo.currentData(),
            generator_path=self.generator_edit.text().strip(),
            discriminator_path=self.discriminator_edit.text().strip(),
        )

    def _accept_if_valid(self) -> None:
        try:
            self.settings().validated()
        except BadInputError as error:
            self.problem_label.setText(str(error))
            return
        self.accept()
