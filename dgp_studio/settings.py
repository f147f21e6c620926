"""User preferences (TOML under the platform's config folder) and the Settings dialog.

Preferences live in ``settings.toml`` in
``platformdirs.user_config_dir("dgp-studio")``: read with :mod:`tomllib`,
written with ``tomli_w`` to a temporary file that is renamed into place.
Window geometry and recent files are ``QSettings`` (see :func:`window_state`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
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
# An imported model's id in the model store (engine.model_store uses the same rule for its folders).
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
DEFAULT_CACHE_MAX_MB = 2048
MAX_CACHE_MAX_MB = 1_048_576  # 1 TiB: anything larger is a typo


@dataclass(frozen=True)
class AppSettings:
    """Preferences that shape the engine.

    ``threads`` 0 = let torch decide. ``model`` is ``"builtin"``,
    ``"custom"`` or the id of a model imported in the model manager; a
    custom model is a generator and a discriminator checkpoint
    (``generator_path``, ``discriminator_path``).
    ``cache_max_mb`` limits the cache of finished restores (MiB; 0 = no cache).
    """

    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    model: str = BUILTIN_MODEL
    generator_path: str = ""
    discriminator_path: str = ""
    cache_max_mb: int = DEFAULT_CACHE_MAX_MB

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
        if (
            isinstance(self.cache_max_mb, bool)
            or not isinstance(self.cache_max_mb, int)
            or not 0 <= self.cache_max_mb <= MAX_CACHE_MAX_MB
        ):
            raise BadInputError(
                f"In {source}, cache_max_mb = {self.cache_max_mb!r} is not a whole number of MiB "
                f"from 0 to {MAX_CACHE_MAX_MB}."
            )
        if not isinstance(self.model, str) or not (
            self.model in (BUILTIN_MODEL, CUSTOM_MODEL) or MODEL_ID_PATTERN.match(self.model)
        ):
            raise BadInputError(
                f'In {source}, model = {self.model!r} is not "builtin", "custom" or an imported model\'s id.'
            )
        if self.model == CUSTOM_MODEL and not (self.generator_path and self.discriminator_path):
            raise BadInputError(
                f'In {source}, model = "custom" needs both generator_path and discriminator_path.'
            )
        return self

    def engine_threads(self) -> int | None:
        """``threads`` as the engine takes it (None = torch's default)."""
        return self.threads or None

    def cache_max_bytes(self) -> int:
        """``cache_max_mb`` in bytes (0 = the cache is off)."""
        return self.cache_max_mb * 1024 * 1024

    def without_cache_settings(self) -> AppSettings:
        """These settings with the cache knobs at their defaults: what decides whether the engine reloads."""
        return replace(self, cache_max_mb=DEFAULT_CACHE_MAX_MB)


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


CACHE_DIR_VARIABLE = "DGP_STUDIO_CACHE_DIR"
CACHE_SUBFOLDER = "states"


def cache_dir() -> Path:
    """The folder of the cache of finished restores (created on demand).

    ``platformdirs.user_cache_dir("dgp-studio") / "states"``, unless the
    environment variable ``DGP_STUDIO_CACHE_DIR`` names another folder
    (used as is: portable installs, tests).
    """
    override = os.environ.get(CACHE_DIR_VARIABLE)
    folder = (
        Path(override)
        if override
        else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / CACHE_SUBFOLDER
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clear_state_cache(folder: Path | None = None) -> int:
    """Delete every cached restore in ``folder`` (default :func:`cache_dir`); returns the bytes freed."""
    from engine.cache import StateCache  # imports torch: only when the user asks

    return StateCache(cache_dir() if folder is None else folder, max_bytes=0).clear()


def format_megabytes(size_bytes: int) -> str:
    """``"123 MB"`` (MiB, rounded; at least one decimal below 10 MB so small caches do not read 0)."""
    megabytes = size_bytes / (1024 * 1024)
    return f"{megabytes:.1f} MB" if megabytes < 10 else f"{megabytes:.0f} MB"


DATA_DIR_VARIABLE = "DGP_STUDIO_DATA_DIR"
MODELS_SUBFOLDER = "models"


def models_dir() -> Path:
    """The model store's folder of imported models (created on demand).

    ``platformdirs.user_data_dir("dgp-studio") / "models"``; the environment
    variable ``DGP_STUDIO_DATA_DIR`` replaces the data folder (portable
    installs, tests).
    """
    override = os.environ.get(DATA_DIR_VARIABLE)
    data = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    folder = data / MODELS_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
    """Edit :class:`AppSettings`: device, precision, threads, model and the cache size.

    ``clear_cache`` empties the cache of finished restores and returns the
    bytes freed (default: :func:`clear_state_cache` on :func:`cache_dir`).
    """

    def __init__(
        self,
        settings: AppSettings,
        *,
        clear_cache: Callable[[], int] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._clear_cache = clear_cache or clear_state_cache
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
        self.cache_spin = QSpinBox()
        self.cache_spin.setRange(0, MAX_CACHE_MAX_MB)
        self.cache_spin.setSingleStep(256)
        self.cache_spin.setSuffix(" MB")
        self.cache_spin.setSpecialValueText("Off (do not keep results)")
        self.cache_spin.setToolTip(
            "Finished restorations are kept on disk up to this size, so running the same one again "
            "opens it at once."
        )
        self.clear_cache_button = QPushButton("Clear cache")
        self.clear_cache_button.clicked.connect(self.clear_cache)
        self.cache_status_label = QLabel()
        cache_row = QWidget()
        cache_layout = QHBoxLayout(cache_row)
        cache_layout.setContentsMargins(0, 0, 0, 0)
        cache_layout.addWidget(self.cache_spin, 1)
        cache_layout.addWidget(self.clear_cache_button)
        self.problem_label = QLabel()
        self.problem_label.setStyleSheet("color: #d9534f;")
        self.problem_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("CPU threads", self.threads_spin)
        form.addRow("Model", self.model_combo)
        form.addRow(self._custom_box)
        form.addRow("Result cache", cache_row)
        form.addRow("", self.cache_status_label)
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

    def clear_cache(self) -> int:
        """Empty the result cache now and say how much it freed; returns the bytes freed."""
        try:
            freed = int(self._clear_cache())
        except (OSError, BadInputError) as error:
            self.cache_status_label.setText(f"The cache could not be cleared: {error}")
            return 0
        self.cache_status_label.setText(f"Freed {format_megabytes(freed)}.")
        return freed

    def _sync_custom_box(self) -> None:
        self._custom_box.setEnabled(self.model_combo.currentData() == CUSTOM_MODEL)

    def set_settings(self, settings: AppSettings) -> None:
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(settings.device), 0))
        self.precision_combo.setCurrentIndex(max(self.precision_combo.findData(settings.precision), 0))
        self.threads_spin.setValue(settings.threads)
        is_store_model = settings.model not in (BUILTIN_MODEL, CUSTOM_MODEL)
        if is_store_model and self.model_combo.findData(settings.model) < 0:
            self.model_combo.addItem(f"Imported model {settings.model}", settings.model)
        self.model_combo.setCurrentIndex(max(self.model_combo.findData(settings.model), 0))
        self.generator_edit.setText(settings.generator_path)
        self.discriminator_edit.setText(settings.discriminator_path)
        self.cache_spin.setValue(settings.cache_max_mb)
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
            cache_max_mb=self.cache_spin.value(),
        )

    def _accept_if_valid(self) -> None:
        try:
            self.settings().validated()
        except BadInputError as error:
            self.problem_label.setText(str(error))
            return
        self.accept()
