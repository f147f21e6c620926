"""The rotating log file, crash reports, Help > Open Log Folder, and ``--version``/``--help``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from dgp_studio.app_logging import (
    LOG_DIR_VARIABLE,
    LOG_FILE_NAME,
    CrashReporter,
    install_logging,
    log_dir,
    log_startup,
)
from engine import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_folder(tmp_path, monkeypatch):
    """The log folder, redirected into tmp_path."""
    folder = tmp_path / "logs"
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(folder))
    return folder


@pytest.fixture
def file_logging(log_folder):
    """Logging into ``log_folder`` (no terminal output) for one test."""
    installed = install_logging(console_level=None)
    yield installed
    installed.uninstall()


@pytest.fixture
def reporter(file_logging, qapp):
    """An installed crash reporter; its dialog is closed and the hooks restored afterwards."""
    crash_reporter = CrashReporter(file_logging.log_file)
    crash_reporter.install()
    yield crash_reporter
    crash_reporter.uninstall()
    if crash_reporter.dialog is not None:
        crash_reporter.dialog.close()


def raise_and_report(hook, error: BaseException) -> None:
    try:
        raise error
    except type(error):
        hook(*sys.exc_info())


def test_the_log_folder_honours_its_environment_override(log_folder):
    assert log_dir() == log_folder
    assert log_folder.is_dir()


def test_the_log_rotates_past_its_size_cap_and_keeps_a_bounded_number_of_files(tmp_path):
    cap, kept = 2_000, 2
    installed = install_logging(tmp_path, max_bytes=cap, backup_count=kept, console_level=None)
    try:
        logger = logging.getLogger("dgp_studio.rotation_test")
        for number in range(200):
            logger.info("line %03d of a session long enough to rotate the log several times", number)
    finally:
        installed.uninstall()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    for name in names:
        assert (tmp_path / name).stat().st_size <= cap
    current = (tmp_path / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert "line 199" in current
    assert "line 000" not in "".join((tmp_path / name).read_text(encoding="utf-8") for name in names)


def test_uninstalling_takes_the_handlers_away_again(tmp_path):
    root = logging.getLogger()
    handlers_before, level_before = list(root.handlers), root.level
    installed = install_logging(tmp_path, console_level=logging.WARNING)
    assert len(root.handlers) == len(handlers_before) + 2
    installed.uninstall()
    assert root.handlers == handlers_before and root.level == level_before


def test_the_start_line_names_the_version(file_logging):
    log_startup(file_logging.log_file)
    text = file_logging.log_file.read_text(encoding="utf-8")
    assert f"DGP Studio {__version__} starting" in text and "Python" in text


def test_an_unwritable_log_folder_still_lets_the_app_run(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    installed = install_logging(blocker / "logs", console_level=None)
    try:
        assert installed.log_file is None
    finally:
        installed.uninstall()


@pytest.mark.qt_no_exception_capture
def test_a_crash_is_logged_with_its_traceback_and_shown_once(reporter, file_logging, qtbot):
    assert sys.excepthook == reporter.excepthook
    raise_and_report(sys.excepthook, ZeroDivisionError("division by zero"))  # returns: nothing blocks
    qtbot.waitUntil(lambda: reporter.dialog is not None, timeout=5000)
    dialog = reporter.dialog
    assert dialog.isVisible()
    assert dialog.text() == "DGP Studio hit an unexpected error (ZeroDivisionError: division by zero)."
    assert str(file_logging.log_file) in dialog.informativeText()
    assert "Traceback (most recent call last)" in dialog.detailedText()
    # A second crash is only logged.
    raise_and_report(sys.excepthook, KeyError("second"))
    qtbot.wait(50)
    assert reporter.crashes_logged == 2 and reporter.dialogs_shown == 1
    text = file_logging.log_file.read_text(encoding="utf-8")
    assert "ZeroDivisionError: division by zero" in text and "KeyError: 'second'" in text
    assert text.count("Traceback (most recent call last)") == 2


def test_a_crash_in_an_event_loop_callback_is_logged_and_shown(reporter, file_logging, qtbot):
    import asyncio

    def broken_callback() -> None:
        raise LookupError("callback broke")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(reporter.asyncio_exception_handler)
        asyncio.get_running_loop().call_soon(broken_callback)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    qtbot.waitUntil(lambda: reporter.dialog is not None, timeout=5000)
    assert "LookupError: callback broke" in reporter.dialog.text()
    reporter.asyncio_exception_handler(None, {"message": "Future exception was never retrieved"})
    text = file_logging.log_file.read_text(encoding="utf-8")
    assert "uncaught exception in an event-loop callback" in text and "broken_callback" in text
    assert "event loop: Future exception was never retrieved" in text
    assert reporter.crashes_logged == 1


@pytest.mark.qt_no_exception_capture
def test_a_crash_on_another_thread_is_logged_and_shown_on_the_gui_thread(reporter, file_logging, qtbot):
    def crash() -> None:
        raise RuntimeError("worker broke")

    worker = threading.Thread(target=crash, name="sample-worker")
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: reporter.dialog is not None, timeout=5000)
    assert reporter.dialog.thread() is reporter.thread()
    assert "RuntimeError: worker broke" in reporter.dialog.text()
    text = file_logging.log_file.read_text(encoding="utf-8")
    assert "uncaught exception in the thread sample-worker" in text and "worker broke" in text


@pytest.mark.qt_no_exception_capture
def test_an_error_while_reporting_goes_to_stderr_and_never_recurses(reporter, monkeypatch, capsys):
    def broken_dialog(*args, **kwargs):
        raise RuntimeError("the dialog itself failed")

    monkeypatch.setattr(reporter, "build_dialog", broken_dialog)
    raise_and_report(sys.excepthook, ValueError("first"))
    assert reporter.crashes_logged == 1
    assert "the dialog itself failed" in capsys.readouterr().err


def test_uninstall_puts_the_previous_hooks_back(file_logging, qapp):
    before, threading_before = sys.excepthook, threading.excepthook
    crash_reporter = CrashReporter(file_logging.log_file)
    crash_reporter.install()
    assert sys.excepthook != before and threading.excepthook != threading_before
    crash_reporter.uninstall()
    assert sys.excepthook == before and threading.excepthook == threading_before


def test_open_log_folder_opens_the_log_folder(make_window, log_folder, monkeypatch):
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    window = make_window(wait_for_model=False)
    help_menu = next(
        action.menu() for action in window.menuBar().actions() if action.text().replace("&", "") == "Help"
    )
    assert window.open_log_folder_action in help_menu.actions()
    window.open_log_folder_action.trigger()
    assert opened == [QUrl.fromLocalFile(str(log_folder))]


def run_entry_point(arguments: list[str]) -> subprocess.CompletedProcess:
    """``dgp_studio.__main__.main(arguments)`` in a fresh interpreter; reports whether Qt was imported."""
    script = textwrap.dedent(f"""
        import sys
        from dgp_studio.__main__ import main
        try:
            code = main({arguments!r})
        except SystemExit as exit_:
            code = exit_.code
        print("exit", code, "qt", "PySide6" in sys.modules, "torch", "torch" in sys.modules)
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("arguments", [["--version"], ["holiday.jpg", "--version"]])
def test_version_prints_and_exits_without_a_window(arguments):
    completed = run_entry_point(arguments)
    assert completed.returncode == 0, completed.stderr
    assert f"dgp-studio {__version__}" in completed.stdout
    assert "exit 0 qt False torch False" in completed.stdout


def test_help_describes_the_app_and_exits_without_a_window():
    completed = run_entry_point(["--help"])
    assert completed.returncode == 0, completed.stderr
    assert "usage: dgp-studio" in completed.stdout and "--version" in completed.stdout
    assert "exit 0 qt False torch False" in completed.stdout


def test_python_dash_m_answers_version_and_help():
    for flag, expected in (("--version", f"dgp-studio {__version__}"), ("--help", "usage: dgp-studio")):
        completed = subprocess.run(
            [sys.executable, "-m", "dgp_studio", flag],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert expected in completed.stdout
