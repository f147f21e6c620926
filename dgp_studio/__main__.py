"""``dgp-studio`` / ``python -m dgp_studio``: the desktop app, or the command line.

``dgp-studio restore …`` (and ``jitter``, ``transfer``, ``morph``, ``train``,
``models``, ``evaluate``, ``--version``) runs the engine's command line and
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
import sys
from collections.abc import Sequence

CLI_COMMANDS = frozenset({"restore", "jitter", "transfer", "morph", "train", "models", "evaluate"})


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
        epilog=f"Command line: dgp-studio {{{','.join(sorted(CLI_COMMANDS))}}} --help",
    )
    parser.add_argument("image", nargs="?", help="a photo to open at start")
    parser.add_argument(
        "--install-desktop-entry", action="store_true",
        help="add DGP Studio to this user's application menu (.desktop entry, AppStream metainfo and "
             "icons under $XDG_DATA_HOME, default ~/.local/share) and exit",
    )
    return parser


def run_gui(args: Sequence[str]) -> int:
    """Start the window on a qasync event loop and run until it is closed."""
    options, qt_arguments = _gui_parser().parse_known_args(list(args))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if options.install_desktop_entry:
        from dgp_studio.desktop_entry import install_desktop_entry

        try:
            written = install_desktop_entry()
        except OSError as error:
            print(f"dgp-studio: {error}", file=sys.stderr)
            return 1
        print("\n".join(str(path) for path in written))
        return 0

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from dgp_studio import APP_DISPLAY_NAME, APP_NAME

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
        closed = asyncio.get_running_loop().create_future()
        window = MainWindow()
        window.show()
        app.lastWindowClosed.connect(lambda: closed.done() or closed.set_result(0))
        if options.image:
            QTimer.singleShot(0, lambda: window.open_path(options.image))
        return await closed

    return int(qasync.run(run_window()) or 0)


if __name__ == "__main__":
    sys.exit(main())
