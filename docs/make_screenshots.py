"""Take the documentation screenshots (``docs/screenshots/*.png``) from the real window under an X server.

The window is built the way ``dgp-studio`` builds it (the built-in model, the
default settings) and driven through its public methods, like a user would
drive it: open a sample photo, import its mask, restore in quick mode, compare,
then the studio's jitter grid, category gallery and morph timeline. Each
screenshot is the top-level window as the X server shows it
(``QScreen.grabWindow``), so it needs a real X display; a virtual one is
enough::

    xvfb-run -a -s "-screen 0 1440x900x24" nice -n 5 python docs/make_screenshots.py --out docs/screenshots

The window is 1280 × 800; should a layout ever not let it shrink that far,
the screenshot is taken at the least size it allows, and the X screen must be
large enough to show it (the script stops and says so if not).

Settings, caches, the model store, logs and window state go to a temporary
folder, so the user's own folders are neither read nor changed. Every file is
written atomically; a step that fails (or an error dialog in the window) stops
the script with one sentence saying what did not happen, and nothing after it
is replaced.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

WINDOW_SIZE = (1280, 800)
SCREEN_HINT = "1440x900x24"  # an Xvfb screen that holds every screenshot's window
SAMPLE_PHOTO = "coffee-cup.jpg"
SAMPLE_MASK = "coffee-cup-mask.png"
FIRST_CLASS = "espresso"  # the inpainting restores the photo as this class
# The morph timeline's second keyframe: another sample, colorized as its own class, so the morph
# goes between two clearly different images.
SECOND_PHOTO = "chelsea-cat.jpg"
SECOND_TASK = "colorize"
SECOND_CLASS = "tabby"
GALLERY_CLASSES = "espresso, teapot, water jug, wok, frying pan, plate"  # two rows of three: no scrolling
TRANSFER_CLASS = "water jug"  # what the category tab's single transfer shows next to the gallery
JITTER_COUNT = 9
# Of 1000: the split line crosses the removed spoon, the original on its left, the result on its right.
COMPARE_AT = 600
LIVE_FRAMES_BEFORE_GRAB = 3
RESTORE_TIMEOUT_S = 900.0  # quick mode on a busy two-core CPU; seconds on an idle one
STUDIO_TIMEOUT_S = 300.0

SCREENSHOTS = {
    "welcome": "08-welcome.png",
    "photo": "01-empty-window.png",
    "mask": "02-painted-mask.png",
    "running": "03-run-in-progress.png",
    "compare": "04-result-compare.png",
    "jitter": "05-jitter.png",
    "gallery": "06-gallery.png",
    "timeline": "07-timeline.png",
}


class ScreenshotError(RuntimeError):
    """A step of the tour did not happen; the message says which."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Take the documentation screenshots from the real window "
        "(needs an X server, e.g. xvfb-run).",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "screenshots",
        help="folder for the PNG files (default: docs/screenshots)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(SCREENSHOTS), metavar="NAME",
        help=f"write only these screenshots ({', '.join(SCREENSHOTS)}); "
        "the tour still runs up to the last one",
    )
    return parser.parse_args(argv)


def check_display() -> None:
    """Refuse to run without a real X display: offscreen grabs are not what the window looks like."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and platform != "xcb":
        raise ScreenshotError(
            f"QT_QPA_PLATFORM is {platform!r}; unset it (or set it to xcb) "
            "so the window runs on the X server."
        )
    if not os.environ.get("DISPLAY"):
        raise ScreenshotError(
            f"No X display (DISPLAY is not set); run under xvfb-run -a -s \"-screen 0 {SCREEN_HINT}\"."
        )


def isolate_user_folders(root: Path) -> None:
    """Point settings, cache, model store, logs and Qt's window state at ``root``."""
    from dgp_studio.app_logging import LOG_DIR_VARIABLE
    from dgp_studio.settings import CACHE_DIR_VARIABLE, CONFIG_DIR_VARIABLE, DATA_DIR_VARIABLE

    for variable, name in (
        (CONFIG_DIR_VARIABLE, "config"),
        (CACHE_DIR_VARIABLE, "cache"),
        (DATA_DIR_VARIABLE, "data"),
        (LOG_DIR_VARIABLE, "logs"),
    ):
        os.environ[variable] = str(root / name)
    os.environ["XDG_CONFIG_HOME"] = str(root / "xdg-config")


class Tour:
    """Drives one :class:`MainWindow` through the screenshots, waiting on the event loop between steps."""

    def __init__(self, window, out: Path, wanted: set[str]) -> None:
        self.window = window
        self.out = out
        self.wanted = wanted
        self.written: list[Path] = []

    # ------------------------------------------------------------ waiting

    def wait(self, milliseconds: int) -> None:
        """Run the event loop for ``milliseconds``."""
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(milliseconds, loop.quit)
        loop.exec()

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float) -> None:
        """Run the event loop until ``condition()`` holds; stop the tour if an error dialog opens."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            self.check_no_errors(what)
            if time.monotonic() > deadline:
                raise ScreenshotError(f"Gave up after {timeout_s:.0f} s waiting for {what}.")
            self.wait(50)
        self.check_no_errors(what)

    def check_no_errors(self, what: str) -> None:
        if self.window.error_dialogs:
            dialog = self.window.error_dialogs[-1]
            raise ScreenshotError(f"The window showed an error while waiting for {what}: {dialog.text()}")

    def counter(self, signal) -> list:
        """A list that grows by one item (the signal's arguments) each time ``signal`` fires."""
        fired: list = []
        signal.connect(lambda *args: fired.append(args))
        return fired

    # ------------------------------------------------------------ grabbing

    def grab(self, key: str) -> None:
        """Save the window as the X server shows it, after letting pending repaints finish."""
        if key not in self.wanted:
            return
        expected = self.fit_window(SCREENSHOTS[key])
        self.wait(600)
        self.window.repaint()
        self.wait(200)
        pixmap = self.window.screen().grabWindow(self.window.winId())
        size = (pixmap.width(), pixmap.height())
        if size != expected:
            raise ScreenshotError(
                f"The grab for {SCREENSHOTS[key]} is {size[0]} \u00d7 {size[1]}, not {expected[0]} \u00d7 "
                f"{expected[1]}."
            )
        target = self.out / SCREENSHOTS[key]
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp.png")
        if not pixmap.save(str(temporary), "PNG"):
            raise ScreenshotError(f"Could not write {temporary}.")
        os.replace(temporary, target)
        self.written.append(target)
        print(f"wrote {target}", flush=True)

    def fit_window(self, name: str) -> tuple[int, int]:
        """Size the window to ``WINDOW_SIZE`` (or the least the window allows) at the screen's corner.

        Returns the size the grab will have; stops the tour when the screen cannot show all of it.
        """
        window = self.window
        minimum = window.minimumSizeHint().expandedTo(window.minimumSize())
        width, height = max(WINDOW_SIZE[0], minimum.width()), max(WINDOW_SIZE[1], minimum.height())
        if (width, height) != WINDOW_SIZE:
            print(
                f"note: for {name} the window cannot be smaller than {minimum.width()} \u00d7 "
                f"{minimum.height()}, so it is {width} \u00d7 {height}",
                flush=True,
            )
        screen = window.screen().geometry()
        if width > screen.width() or height > screen.height():
            raise ScreenshotError(
                f"{name} needs a {width} \u00d7 {height} window, larger than the "
                f"{screen.width()} \u00d7 {screen.height()} X screen; give xvfb-run a larger -screen."
            )
        window.move(0, 0)
        window.resize(width, height)
        self.wait_until(lambda: window.size().toTuple() == (width, height), f"the window size for {name}", 10)
        return width, height

    # ------------------------------------------------------------ the tour

    def run(self) -> None:
        from dgp_studio.welcome import SAMPLES_FOLDER

        window = self.window
        ready = self.counter(window.modelReady)
        window.show()
        self.wait_until(lambda: window.isVisible() and window.windowHandle().isExposed(), "the window", 30)
        self.wait_until(lambda: bool(ready), "the built-in model to load", 300)
        self.grab("welcome")

        # 01: a photo just opened.
        opened = self.counter(window.photoOpened)
        preview_before = self.preview_state()
        window.open_path(SAMPLES_FOLDER / SAMPLE_PHOTO)
        self.wait_until(lambda: bool(opened), f"{SAMPLE_PHOTO} to open", 60)
        window.task_panel.set_task("inpaint")
        window.task_panel.quick_check.setChecked(True)
        self.wait_for_new_preview(preview_before, "the preview of the opened photo")
        self.grab("photo")

        # 02: the mask over the spoon, imported as a user would from Edit > Import Mask, and the class.
        first_class = self.class_index(FIRST_CLASS)
        self.select_class(first_class)
        layer = window.mask_layer()
        preview_before = self.preview_state()
        window.import_mask(SAMPLES_FOLDER / SAMPLE_MASK)
        self.wait_until(lambda: not layer.is_empty(), f"the mask {SAMPLE_MASK} to load", 60)
        self.wait_for_new_preview(preview_before, "the preview with the mask")
        self.grab("mask")

        # 03: a run in progress, a few live frames in.
        ended = self.counter(window.runEnded)
        if not window.start_restore():
            raise ScreenshotError("The first restore did not start.")
        bar = window.progress_panel.progress_bar
        self.wait_until(
            lambda: window.frames_shown >= LIVE_FRAMES_BEFORE_GRAB and bar.value() >= bar.maximum() * 0.3
            or bool(ended),
            "live frames from the first restore",
            RESTORE_TIMEOUT_S,
        )
        if ended:
            raise ScreenshotError("The first restore ended before a live frame could be grabbed.")
        self.grab("running")

        # 04: the finished result, the compare slider across the removed spoon.
        self.wait_until(lambda: bool(ended), "the first restore to finish", RESTORE_TIMEOUT_S)
        first = window.history.current_entry()
        if first is None or first.cancelled:
            raise ScreenshotError("The first restore left no finished result.")
        window.split_slider.setValue(COMPARE_AT)
        self.grab("compare")

        # 05: the jitter grid of that result.
        panel = window.studio_panel
        jitter_shown = self.counter(panel.jitterShown)
        window.side_tabs.setCurrentWidget(panel)
        panel.tabs.setCurrentIndex(0)
        panel.count_spin.setValue(JITTER_COUNT)
        self.wait_until(
            lambda: panel.jitter_grid.count() == JITTER_COUNT and bool(jitter_shown),
            "the jitter grid",
            STUDIO_TIMEOUT_S,
        )
        self.grab("jitter")

        # 06: a class transfer and a gallery of related classes.
        transfer_class = self.class_index(TRANSFER_CLASS)
        transferred = self.counter(panel.transferShown)
        gallery_shown = self.counter(panel.galleryShown)
        panel.tabs.setCurrentIndex(1)
        panel.class_picker.set_selected_class(transfer_class)
        self.wait_until(lambda: bool(transferred), "the class transfer", STUDIO_TIMEOUT_S)
        panel.gallery_mode.setCurrentIndex(panel.gallery_mode.findData("names"))
        panel.name_filter.setText(GALLERY_CLASSES)
        panel.render_gallery()
        self.wait_until(lambda: bool(gallery_shown), "the category gallery", STUDIO_TIMEOUT_S)
        self.grab("gallery")

        # 07: a second photo restored, then a morph between the two results.
        window.side_tabs.setCurrentIndex(0)
        window.split_slider.setValue(0)
        opened.clear()
        window.open_path(SAMPLES_FOLDER / SECOND_PHOTO)
        self.wait_until(lambda: bool(opened), f"{SECOND_PHOTO} to open", 60)
        window.task_panel.set_task(SECOND_TASK)
        self.select_class(self.class_index(SECOND_CLASS))
        ended.clear()
        if not window.start_restore():
            raise ScreenshotError("The second restore did not start.")
        self.wait_until(lambda: bool(ended), "the second restore to finish", RESTORE_TIMEOUT_S)
        second = window.history.current_entry()
        if second is None or second is first or second.cancelled:
            raise ScreenshotError("The second restore left no finished result.")
        window.add_to_timeline(first)
        window.add_to_timeline(second)
        timeline = window.timeline
        self.wait_until(lambda: timeline.bar.width() > 100, "the morph timeline to show", 10)
        timeline.set_position(0.4)
        self.wait_until(
            lambda: timeline.preview_is_current() and abs((timeline.shown_position() or -1) - 0.4) < 1e-6,
            "the morph preview",
            STUDIO_TIMEOUT_S,
        )
        self.grab("timeline")

    def class_index(self, name: str) -> int:
        """The loaded model's index of the class called ``name``."""
        from dgp_studio.welcome import class_index_for

        index = class_index_for(self.window.class_picker.class_names(), name)
        if index is None:
            raise ScreenshotError(f"The built-in model has no class called {name!r}.")
        return index

    def select_class(self, index: int) -> None:
        """Pick a class in the restore panel's list and scroll it to the top, where it is in view."""
        from PySide6.QtWidgets import QAbstractItemView

        picker = self.window.class_picker
        picker.set_selected_class(index)
        picker.class_list.scrollToItem(
            picker.class_list.currentItem(), QAbstractItemView.ScrollHint.PositionAtTop
        )

    def preview_state(self) -> tuple:
        """What the task panel's preview shows now: the degraded input, or the message in its place."""
        panel = self.window.task_panel
        return panel.preview_image(), panel.preview_label.text()

    def wait_for_new_preview(self, before: tuple, what: str) -> None:
        """Wait until the preview (image or message) differs from ``before``."""
        import numpy as np

        def changed() -> bool:
            image, text = self.preview_state()
            old_image, old_text = before
            if image is None or old_image is None:
                return image is not old_image or text != old_text
            return not np.array_equal(image, old_image)

        self.wait_until(changed, what, 60)


def build_application():
    """Set up the ``QApplication`` as ``dgp_studio.__main__.run_gui`` does.

    Names, desktop file name, window icon and the rotating log file, as the app has them.

    Returns the installed logging, to uninstall at the end.
    """
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from dgp_studio import APP_DISPLAY_NAME, APP_NAME
    from dgp_studio.app_logging import install_logging
    from dgp_studio.desktop_entry import APP_ID, packaged_icon_path

    app = QApplication.instance() or QApplication([sys.argv[0]])
    if app.platformName() != "xcb":
        raise ScreenshotError(f"Qt runs on the {app.platformName()!r} platform, not on the X server (xcb).")
    installed_logging = install_logging()
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(QIcon(str(packaged_icon_path())))
    return installed_logging


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    try:
        check_display()
    except ScreenshotError as error:
        print(f"make_screenshots: {error}", file=sys.stderr)
        return 2
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(options.only or SCREENSHOTS)
    with tempfile.TemporaryDirectory(prefix="dgp-studio-screenshots-") as temporary:
        root = Path(temporary)
        isolate_user_folders(root)
        from PySide6.QtCore import QSettings

        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(root / "qsettings"))
        try:
            installed_logging = build_application()
        except ScreenshotError as error:
            print(f"make_screenshots: {error}", file=sys.stderr)
            return 2
        from dgp_studio.main_window import MainWindow

        window = MainWindow()
        tour = Tour(window, out, wanted)
        try:
            tour.run()
        except ScreenshotError as error:
            print(f"make_screenshots: {error}", file=sys.stderr)
            return 1
        finally:
            window.shutdown(timeout_ms=60_000)
            window.close()
            installed_logging.uninstall()
    print(f"{len(tour.written)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
