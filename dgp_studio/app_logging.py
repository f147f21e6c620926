"""The app's log file (rotated, in the platform's per-user log folder) and its crash reports.

:func:`install_logging` sends the ``logging`` records of the app and the engine
to ``dgp-studio.log`` in :func:`log_dir` (1 MB per file, the current one and 5
older ones are kept) and warnings to the terminal. :class:`CrashReporter`
replaces ``sys.excepthook`` and ``threading.excepthook``: an uncaught exception
is written to the log with its traceback, and the first one of a session is
also shown in a dialog that says where the log is; later ones are only logged.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import platform
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import platformdirs
from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from dgp_studio import APP_DISPLAY_NAME, APP_NAME

LOG = logging.getLogger(__name__)

LOG_DIR_VARIABLE = "DGP_STUDIO_LOG_DIR"
LOG_FILE_NAME = "dgp-studio.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUP_COUNT = 5
FILE_FORMAT = "%(asctime)s %(levelname)s [%(process)d %(threadName)s] %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"


def log_dir() -> Path:
    """The folder of the log files (created on demand).

    ``platformdirs.user_log_dir("dgp-studio")``, unless the environment
    variable ``DGP_STUDIO_LOG_DIR`` names another folder (portable installs,
    tests).
    """
    override = os.environ.get(LOG_DIR_VARIABLE)
    folder = Path(override) if override else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class InstalledLogging:
    """What :func:`install_logging` added to the root logger; :meth:`uninstall` takes it away again."""

    log_file: Path | None
    handlers: list[logging.Handler] = field(default_factory=list)
    previous_level: int = logging.WARNING

    def uninstall(self) -> None:
        """Remove and close the handlers (flushing the log file) and restore the root logger's level."""
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        root.setLevel(self.previous_level)


def install_logging(
    folder: Path | None = None,
    *,
    max_bytes: int = LOG_MAX_BYTES,
    backup_count: int = LOG_BACKUP_COUNT,
    file_level: int = logging.INFO,
    console_level: int | None = logging.WARNING,
) -> InstalledLogging:
    """Log to a rotating ``dgp-studio.log`` in ``folder`` (default :func:`log_dir`) and to stderr.

    The file gets ``file_level`` and above; once it reaches ``max_bytes`` it
    becomes ``dgp-studio.log.1`` (and so on, ``backup_count`` old files kept).
    ``console_level`` None = no terminal output. A log folder that cannot be
    written is reported on the terminal and the app runs without a log file.
    """
    root = logging.getLogger()
    installed = InstalledLogging(log_file=None, previous_level=root.level)
    levels = [file_level]
    if console_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(console_level)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        root.addHandler(console)
        installed.handlers.append(console)
        levels.append(console_level)
    try:
        directory = log_dir() if folder is None else Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / LOG_FILE_NAME
        file_handler = logging.handlers.RotatingFileHandler(
            target, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    except OSError as error:
        LOG.warning("The log file could not be opened (%s); this session is not logged to a file.", error)
    else:
        file_handler.setLevel(file_level)
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        root.addHandler(file_handler)
        installed.handlers.append(file_handler)
        installed.log_file = target
    root.setLevel(min(levels))
    return installed


def log_startup(log_file: Path | None) -> None:
    """One line naming the app's version and what it runs on (the model's device is logged when it loads)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from engine import __version__

    LOG.info(
        "%s %s starting: Python %s, PySide6 %s (Qt %s), %s; log file %s",
        APP_DISPLAY_NAME,
        __version__,
        platform.python_version(),
        pyside_version,
        qVersion(),
        platform.platform(),
        log_file if log_file is not None else "none",
    )


def open_log_folder() -> bool:
    """Show the log folder in the desktop's file manager; False when the desktop could not open it."""
    folder = log_dir()
    opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
    if not opened:
        LOG.warning("the desktop could not open the log folder %s", folder)
    return bool(opened)


def crash_sentence(exc_type: type[BaseException], exc: BaseException | None) -> str:
    """``"DGP Studio hit an unexpected error (ZeroDivisionError: division by zero)."``"""
    message = str(exc).strip() if exc is not None else ""
    what = f"{exc_type.__name__}: {message}" if message else exc_type.__name__
    return f"{APP_DISPLAY_NAME} hit an unexpected error ({what})."


class CrashReporter(QObject):
    """Writes uncaught exceptions (any thread) to the log; shows the first one of the session in a dialog.

    Create it on the GUI thread after the ``QApplication``; :meth:`install`
    replaces ``sys.excepthook`` and ``threading.excepthook``, :meth:`uninstall`
    puts the previous hooks back; the event loop takes
    :meth:`asyncio_exception_handler` as its exception handler. An exception raised while a crash is being
    reported is printed to stderr only, so reporting never recurses.

    Signals
    -------
    crashReported(str, str)
        The first crash of the session: its sentence and traceback. Delivered
        on the GUI thread, where it opens the dialog.
    """

    crashReported = Signal(str, str)

    def __init__(self, log_file: Path | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_file = log_file
        self.crashes_logged = 0
        self.dialogs_shown = 0
        self.dialog: QMessageBox | None = None  # the crash dialog while it is open
        self._reported = False
        self._lock = threading.Lock()
        self._reporting = threading.local()
        self._previous_excepthook: Callable | None = None
        self._previous_threading_excepthook: Callable | None = None
        # Queued when a worker thread crashes: the dialog is always built on the GUI thread.
        self.crashReported.connect(self._show_dialog)

    def install(self) -> None:
        """Become ``sys.excepthook`` and ``threading.excepthook``."""
        if self._previous_excepthook is not None:
            return
        self._previous_excepthook = sys.excepthook
        self._previous_threading_excepthook = threading.excepthook
        sys.excepthook = self.excepthook
        threading.excepthook = self.threading_excepthook

    def uninstall(self) -> None:
        """Put back the hooks that were there before :meth:`install` (if nothing replaced ours since)."""
        if self._previous_excepthook is None:
            return
        if sys.excepthook == self.excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.excepthook == self.threading_excepthook:
            threading.excepthook = self._previous_threading_excepthook
        self._previous_excepthook = None
        self._previous_threading_excepthook = None

    def excepthook(
        self,
        exc_type: type[BaseException],
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``sys.excepthook``: log the traceback; the session's first crash also opens the dialog."""
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        self.report(exc_type, exc, tb, where="")

    def threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """``threading.excepthook``: like :meth:`excepthook`, naming the thread."""
        if issubclass(args.exc_type, SystemExit):
            return  # threading's own hook ignores it too
        name = args.thread.name if args.thread is not None else "an unknown thread"
        self.report(args.exc_type, args.exc_value, args.exc_traceback, where=f" in the thread {name}")

    def report(
        self,
        exc_type: type[BaseException],
        exc: BaseException | None,
        tb: TracebackType | None,
        *,
        where: str,
    ) -> None:
        """Log one uncaught exception and, for the session's first, ask for the dialog."""
        if getattr(self._reporting, "active", False):
            sys.__excepthook__(exc_type, exc, tb)
            return
        self._reporting.active = True
        try:
            details = "".join(traceback.format_exception(exc_type, exc, tb))
            LOG.critical("uncaught exception%s\n%s", where, details.rstrip())
            with self._lock:
                self.crashes_logged += 1
                first = not self._reported
                self._reported = True
            if first:
                self.crashReported.emit(crash_sentence(exc_type, exc), details)
        except Exception:  # noqa: BLE001 - the report itself failed: keep both tracebacks on stderr
            sys.__excepthook__(exc_type, exc, tb)
            traceback.print_exc()
        finally:
            self._reporting.active = False

    def asyncio_exception_handler(self, loop: object, context: dict) -> None:
        """``loop.set_exception_handler``: an exception in an event-loop callback or task is a crash too.

        asyncio's default handler only logs it; a context without an exception
        (e.g. a never-retrieved future's message) is logged as an error.
        """
        error = context.get("exception")
        if not isinstance(error, BaseException):
            LOG.error("event loop: %s", context.get("message", "an error without a message"))
            return
        self.report(type(error), error, error.__traceback__, where=" in an event-loop callback")

    @Slot(str, str)
    def _show_dialog(self, sentence: str, details: str) -> None:
        if QApplication.instance() is None:
            return
        parent = QApplication.activeWindow()
        self.dialog = self.build_dialog(sentence, details, parent=parent)
        self.dialogs_shown += 1
        self.dialog.finished.connect(self._forget_dialog)
        self.dialog.show()

    def _forget_dialog(self) -> None:
        self.dialog = None  # closing deletes it

    def build_dialog(self, sentence: str, details: str, *, parent: QWidget | None = None) -> QMessageBox:
        """The crash dialog (not shown): the sentence, where the log is, the traceback under Details."""
        dialog = QMessageBox(parent)
        dialog.setIcon(QMessageBox.Icon.Critical)
        dialog.setWindowTitle(f"{APP_DISPLAY_NAME} \u2014 unexpected error")
        dialog.setText(sentence)
        where = (
            f"The details were written to the log file {self.log_file}."
            if self.log_file is not None
            else "The details are below (this session has no log file)."
        )
        dialog.setInformativeText(
            f"{where} Saving your work and restarting {APP_DISPLAY_NAME} is safest. "
            "Further errors in this session are only written to the log."
        )
        dialog.setDetailedText(details)
        open_folder = dialog.addButton("Open Log Folder", QMessageBox.ButtonRole.ActionRole)
        open_folder.clicked.connect(open_log_folder)
        dialog.addButton(QMessageBox.StandardButton.Close)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        return dialog
