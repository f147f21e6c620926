"""``dgp-studio`` / ``python -m dgp_studio``: the desktop app, or the command line.

``dgp-studio restore …`` (and ``jitter``, ``transfer``, ``morph``, ``train``,
``models``, ``evaluate``, ``batch``, ``--version``) runs the engine's command line and
returns its exit code. Anything else starts the window; an optional image
path opens that photo once the window is up::

    dgp-studio                      # the window
    dgp-studio holiday.jpg          # the window, with a photo open
    dgp-studio restore in.jpg --task colorize -o out.png
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence

CLI_COMMANDS = frozenset({"restore", "jitter", "transfer", "morph", "train", "models", "evaluate", "batch"})
# Opt-in startup probe (benchmarks/bench_gui_responsiveness.py): a file to receive the first paint's time.
SHOWN_REPORT_VARIABLE = "DGP_STUDIO_REPORT_SHOWN"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and (args[0] in CLI_COMMANDS or args[0] == "--version"):
        # The command line never loads Qt.
        from engine.cli import main as cli_main

        return int(cli_main(args, models_root=_models_root()) or 0)
    return run_gui(args)


def _models_root():
    """Where ``dgp-studio models`` keeps imported models: the platform's per-user data folder."""
    from pathlib import Path

    import platformdirs

    return Path(platformdirs.user_data_dir("dgp-studio")) / "models"


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgp-studio",
        description="Restore photos with a Deep Generative Prior: paint what is missing, pick what the photo "
        "shows, click Restore.",
        epilog=f"Command line: dgp-studio {{{','.join(sorted(CLI_COMMANDS))}}} --help. "
        "Logs: Help > Open Log Folder in the window, or the folder named by DGP_STUDIO_LOG_DIR.",
    )
    parser.add_argument("image", nargs="?", help="a photo to open at start")
    parser.add_argument("--version", action="version", version=f"dgp-studio {_version()}")
    parser.add_argument(
        "--install-desktop-entry", action="store_true",
        help="add DGP Studio to this user's application menu (.desktop entry, AppStream metainfo, "
             "icons and the .dgps session file type under $XDG_DATA_HOME, default ~/.local/share) "
             "and exit",
    )
    return parser


def _version() -> str:
    from engine import __version__

    return __version__


def run_gui(args: Sequence[str]) -> int:
    """Start the window on a qasync event loop and run until it is closed.

    Logging goes to the rotating log file (:mod:`dgp_studio.app_logging`) while
    the window runs; uncaught exceptions are logged and the first one is shown.
    """
    options, qt_arguments = _gui_parser().parse_known_args(list(args))
    if options.install_desktop_entry:
        from dgp_studio.desktop_entry import install_desktop_entry

        notes: list[str] = []
        try:
            written = install_desktop_entry(notes=notes)
        except OSError as error:
            print(f"dgp-studio: {error}", file=sys.stderr)
            return 1
        print("\n".join(str(path) for path in written))
        for note in notes:
            print(f"note: {note}")
        return 0

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from dgp_studio import APP_DISPLAY_NAME, APP_NAME
    from dgp_studio.app_logging import CrashReporter, install_logging, log_startup

    installed_logging = install_logging()
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_arguments])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_NAME)
    from PySide6.QtGui import QIcon

    from dgp_studio.desktop_entry import APP_ID, packaged_icon_path

    app.setDesktopFileName(APP_ID)  # Wayland app_id: links the window to the .desktop entry
    app.setWindowIcon(QIcon(str(packaged_icon_path())))
    # The coroutine below ends the loop when the window closes; Qt must not quit first.
    app.setQuitOnLastWindowClosed(False)

    from dgp_studio.main_window import MainWindow

    async def run_window() -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(crash_reporter.asyncio_exception_handler)
        closed = loop.create_future()
        window = MainWindow()
        if os.environ.get(SHOWN_REPORT_VARIABLE):
            _report_first_paint(window, os.environ[SHOWN_REPORT_VARIABLE])
        window.show()
        app.lastWindowClosed.connect(lambda: closed.done() or closed.set_result(0))
        if options.image:
            QTimer.singleShot(0, lambda: window.open_path(options.image))
        return await closed

    log_startup(installed_logging.log_file)
    crash_reporter = CrashReporter(installed_logging.log_file)
    crash_reporter.install()
    try:
        return int(qasync.run(run_window()) or 0)
    finally:
        crash_reporter.uninstall()
        logging.getLogger(__name__).info("%s closed", APP_DISPLAY_NAME)
        installed_logging.uninstall()


def _report_first_paint(window, report_path: str) -> None:
    """Write when ``window`` first paints and whether torch was imported before it was shown.

    The file (written atomically) holds one JSON object: ``shown_at`` (``time.time()``)
    and ``torch_imported_before_show``. Call just before ``window.show()``.
    """
    import json
    from pathlib import Path

    from PySide6.QtCore import QEvent, QObject

    torch_imported_before_show = "torch" in sys.modules
    target = Path(report_path)

    class FirstPaintReporter(QObject):
        def eventFilter(self, watched, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                window.removeEventFilter(self)
                report = {"shown_at": time.time(), "torch_imported_before_show": torch_imported_before_show}
                temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                temporary.write_text(json.dumps(report), encoding="utf-8")
                os.replace(temporary, target)
            return False

    window.installEventFilter(FirstPaintReporter(window))


if __name__ == "__main__":
    sys.exit(main())
