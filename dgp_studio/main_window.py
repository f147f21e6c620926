"""The main window: open a photo, paint what is missing, pick a class, restore, compare, save.

Heavy work is never done here: the model and torch live on the engine thread
(:class:`dgp_studio.worker.EngineController`), file decoding/encoding on a
small background pool (:class:`dgp_studio.background.BackgroundJobs`). This
module imports neither torch nor ``engine.api``, so the window appears
before any of that is loaded.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QUndoGroup,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTextEdit,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dgp_studio import APP_DISPLAY_NAME, app_logging
from dgp_studio.background import BackgroundJobs
from dgp_studio.canvas import ImageCanvas, Tool
from dgp_studio.class_picker import ClassPicker
from dgp_studio.export_dialog import ExportDialog
from dgp_studio.help_dialogs import AboutDialog, ShortcutsDialog, open_guide
from dgp_studio.history import HistoryEntry, HistoryStrip
from dgp_studio.imaging import image_size_text, qimage_alpha, qimage_to_rgb
from dgp_studio.mask import MaskLayer
from dgp_studio.progress import RunProgressPanel
from dgp_studio.session_io import SessionController
from dgp_studio.settings import (
    AppSettings,
    SettingsDialog,
    cache_dir,
    config_dir,
    load_settings,
    models_dir,
    save_settings,
    window_state,
)
from dgp_studio.studio_jobs import StudioController
from dgp_studio.studio_panel import StudioPanel
from dgp_studio.task_panel import TASK_LABELS, TaskPanel
from dgp_studio.timeline import TimelineWidget
from dgp_studio.welcome import Sample, WelcomePanel, class_index_for, read_sample
from dgp_studio.wheel_guard import WheelGuard, guard_wheel
from dgp_studio.worker import (
    EngineController,
    EngineFactory,
    JobDescription,
    ModelInfo,
    RestoredFromCache,
    RestoreJob,
    error_sentence,
    large_result_size,
)
from engine.errors import BadInputError
from engine.events import (
    Cancelled,
    Finished,
    Notice,
    SearchFinished,
    SearchProgress,
    StageBegan,
    Started,
    Step,
)
from engine.session import SESSION_SUFFIX

LOG = logging.getLogger(__name__)

FRAME_DISPLAY_INTERVAL_S = 1 / 15  # at most ~15 canvas updates per second during a run
CACHE_HIT_MESSAGE = "Restored from the cache \u2014 Run again to recompute"
DESCRIBE_DELAY_MS = 250  # wait for the user to stop dragging before re-describing
MAX_RECENT_FILES = 10
SIDE_PANEL_WIDTH = 460  # the Restore and Studio panel at first: three gallery thumbnails a row
OPEN_FILTER = (
    "Images and sessions (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif *.dgps);;"
    "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;"
    "DGP Studio sessions (*.dgps);;All files (*)"
)
SAVE_FILTERS = {
    "PNG image (*.png)": ".png",
    "JPEG image (*.jpg *.jpeg)": ".jpg",
    "WebP image (*.webp)": ".webp",
}
# A stopped run's result joins the history only when this share of its iterations ran: earlier
# than that the generator has barely moved from its starting point and the image shows nothing.
KEEP_STOPPED_FRACTION = 0.05
CLOSE_SAVE, CLOSE_DISCARD, CLOSE_CANCEL = "save", "discard", "cancel"
MASK_FILTER = "PNG mask (*.png);;Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)"


class ErrorDialog(QMessageBox):
    """One clear sentence, with the technical details folded away under "Show Details…"."""

    def __init__(self, sentence: str, details: str = "", *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle(APP_DISPLAY_NAME)
        self.setText(sentence)
        if details.strip():
            self.setDetailedText(details)
        self.setStandardButtons(QMessageBox.StandardButton.Ok)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)


def ask_before_closing(parent: QWidget, sentence: str, *, can_save: bool) -> str:
    """Ask Save / Discard / Cancel before the window closes; returns ``CLOSE_SAVE``, ``CLOSE_DISCARD``
    or ``CLOSE_CANCEL`` (Escape and closing the box are Cancel)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(APP_DISPLAY_NAME)
    box.setText(sentence)
    box.setInformativeText(
        "Save keeps the photo and every result in a session file (.dgps); Discard closes without it."
        if can_save
        else "Discard closes anyway."
    )
    buttons = QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    if can_save:
        buttons |= QMessageBox.StandardButton.Save
    box.setStandardButtons(buttons)
    box.setDefaultButton(QMessageBox.StandardButton.Save if can_save else QMessageBox.StandardButton.Cancel)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return CLOSE_SAVE
    if answer == QMessageBox.StandardButton.Discard:
        return CLOSE_DISCARD
    return CLOSE_CANCEL


def _is_text_input(widget: QWidget | None) -> bool:
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit))


class MainWindow(QMainWindow):
    """The dgp-studio window.

    Parameters
    ----------
    app_settings : AppSettings, optional
        Preferences to use instead of reading the settings file.
    engine_factory : callable, optional
        ``settings -> engine`` for the engine thread (tests pass a tiny model).

    Signals
    -------
    photoOpened(str)
        A photo is shown (its name).
    resultAdded(object)
        A :class:`HistoryEntry` joined the history.
    resultSaved(str)
        A result was written to this path.
    modelReady(object)
        The engine loaded a model (a :class:`ModelInfo`).
    runEnded()
        A restoration ended (finished, stopped or failed) and the window is idle again.
    errorShown(str)
        An error dialog opened with this sentence.
    """

    photoOpened = Signal(str)
    resultAdded = Signal(object)
    resultSaved = Signal(str)
    errorShown = Signal(str)
    modelReady = Signal(object)
    runEnded = Signal()

    def __init__(
        self,
        *,
        app_settings: AppSettings | None = None,
        engine_factory: EngineFactory | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_DISPLAY_NAME)
        self.setAcceptDrops(True)
        self._settings_problem: str | None = None
        if app_settings is None:
            try:
                app_settings = load_settings()
            except BadInputError as error:
                self._settings_problem = str(error)
                app_settings = AppSettings()
        self._app_settings = app_settings

        self._photo: np.ndarray | None = None
        self._photo_path: Path | None = None
        self._photo_name = ""
        self._photo_sha256: str | None = None  # of the file the photo was read from
        self._photo_serial = 0
        # Every opened photo by serial: (rgb, path, name, sha256), so a result shows the photo it belongs to.
        self._photos: dict[int, tuple[np.ndarray, Path | None, str, str | None]] = {}
        self._model_info: ModelInfo | None = None
        self._current_job: RestoreJob | None = None
        self._current_job_photo = 0
        self._live_alpha: np.ndarray | None = None
        self._run_started_at = 0.0
        self._last_frame_shown_at = 0.0
        self._engine_loaded_once = False
        self._closing = False
        self.frames_shown = 0  # canvas updates from live frames (tests read it)
        self.error_dialogs: list[ErrorDialog] = []
        self._last_description: JobDescription | None = None
        self.last_result_from_cache = False  # whether the latest run was answered by the result cache

        self._controller = EngineController(
            engine_factory=engine_factory,
            user_preset_folders=(config_dir() / "presets",),
            cache_folder=cache_dir(),
        )
        self._controller.set_settings(app_settings)
        # Jitter, class transfer, morphs and exports share the engine thread (and its engine).
        self.studio = StudioController(self._controller, parent=self)
        # Save/Open Session read and write .dgps files on the engine thread too.
        self.sessions = SessionController(self)
        self.sessions.sessionOpened.connect(lambda path: self._add_recent_file(Path(path)))
        self.sessions.sessionSaved.connect(lambda path: self._add_recent_file(Path(path)))
        self._adding_edit = False
        self.export_dialog: ExportDialog | None = None
        self._background = BackgroundJobs(self)
        self._undo_group = QUndoGroup(self)

        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.timeout.connect(self._show_latest_frame)
        self._describe_timer = QTimer(self)
        self._describe_timer.setSingleShot(True)
        self._describe_timer.setInterval(DESCRIBE_DELAY_MS)
        self._describe_timer.timeout.connect(self._describe_now)

        self._build_widgets()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._connect_engine()
        self._restore_window_state()
        self._update_run_state()
        QApplication.instance().installEventFilter(self)

    # ================================================================ layout

    def _build_widgets(self) -> None:
        self.canvas = ImageCanvas()
        self.canvas.filesDropped.connect(lambda paths: self.open_path(paths[0]))
        self.canvas.roiChanged.connect(lambda *_: self._schedule_describe())
        self.canvas.zoomChanged.connect(self._on_zoom_changed)
        self.canvas.pointerMoved.connect(self._on_pointer_moved)
        self.canvas.brushSizeChanged.connect(self._on_brush_size_changed)

        self.split_slider = QSlider(Qt.Orientation.Horizontal)
        self.split_slider.setRange(0, 1000)
        self.split_slider.setValue(0)
        self.split_slider.setToolTip("Drag right to reveal the original on the left (hold Tab to see it all)")
        self.split_slider.valueChanged.connect(lambda value: self.canvas.set_split_fraction(value / 1000))
        compare_row = QHBoxLayout()
        compare_row.addWidget(QLabel("Compare: original"))
        compare_row.addWidget(self.split_slider, 1)
        compare_row.addWidget(QLabel("result  (hold Tab for the original)"))

        self.history = HistoryStrip()
        self.history.entrySelected.connect(self._on_history_selected)
        self.history.entryRemoved.connect(self._on_history_removed)

        # The comparison slider and the results strip mean nothing before a photo is open.
        self.photo_controls = QWidget()
        photo_controls_layout = QVBoxLayout(self.photo_controls)
        photo_controls_layout.setContentsMargins(0, 0, 0, 0)
        photo_controls_layout.addLayout(compare_row)
        photo_controls_layout.addWidget(self.history)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        # Where the photo goes, the welcome panel stands in while none is open.
        self.welcome_panel = WelcomePanel()
        self.welcome_panel.openRequested.connect(self.open_dialog)
        self.welcome_panel.sampleChosen.connect(self.open_sample)
        self.canvas_stack = QStackedWidget()
        self.canvas_stack.addWidget(self.canvas)
        self.canvas_stack.addWidget(self.welcome_panel)
        self._sync_welcome_panel()
        left_layout.addWidget(self.canvas_stack, 1)
        left_layout.addWidget(self.photo_controls)

        self.model_label = QLabel("Model: not loaded yet")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet("color: palette(mid);")
        self.task_panel = TaskPanel()
        self.task_panel.optionsChanged.connect(self._schedule_describe)
        self.class_picker = ClassPicker(for_restore=True)
        self.class_picker.rerunRequested.connect(self.rerun_with_class)
        self.class_picker.setMinimumHeight(200)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Run the restoration (Ctrl+Enter)")
        self.restore_button.setMinimumHeight(34)
        self.restore_button.setStyleSheet("font-weight: bold;")
        self.restore_button.clicked.connect(self.start_restore)
        self.progress_panel = RunProgressPanel()
        self.progress_panel.cancelRequested.connect(self.cancel_restore)

        # The options scroll; Restore and the run's progress stay in view below them.
        options = QWidget()
        options_layout = QVBoxLayout(options)
        options_layout.setContentsMargins(0, 0, 6, 0)
        options_layout.addWidget(self.task_panel)
        options_layout.addWidget(_separator())
        options_layout.addWidget(self.class_picker, 1)
        scroll = QScrollArea()
        scroll.setWidget(options)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side = QWidget()
        side.setMinimumWidth(360)
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.model_label)
        side_layout.addWidget(scroll, 1)
        side_layout.addWidget(self.restore_button)
        side_layout.addWidget(self.progress_panel)

        self.studio_panel = StudioPanel(self.studio)
        self.studio_panel.editKept.connect(self.add_edited_result)
        self.studio_panel.timelineRequested.connect(self.add_to_timeline)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(side, "Restore")
        self.side_tabs.addTab(self.studio_panel, "Studio")
        self.side_tabs.setTabToolTip(1, "Instant edits of the selected result: jitter and class transfer")

        self.timeline = TimelineWidget(self.studio)
        self.timeline.addRequested.connect(lambda: self.add_to_timeline(self.history.current_entry()))
        self.timeline.exportRequested.connect(self.export_animation_dialog)
        self.timeline_dock = QDockWidget("Morph timeline", self)
        self.timeline_dock.setObjectName("morph-timeline-dock")
        self.timeline_dock.setWidget(self.timeline)
        self.timeline_dock.setAllowedAreas(
            Qt.DockWidgetArea.BottomDockWidgetArea | Qt.DockWidgetArea.TopDockWidgetArea
        )
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.timeline_dock)
        self.timeline_dock.hide()

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.side_tabs)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([900, SIDE_PANEL_WIDTH])
        self.setCentralWidget(splitter)

        self.zoom_label = QLabel()
        self.pixel_label = QLabel()
        self.size_label = QLabel()
        # The model in use, as a link that opens the model manager.
        self.status_model_label = QLabel()
        self.status_model_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_model_label.setToolTip("The model in use: click to open the model manager")
        self.status_model_label.linkActivated.connect(lambda _link: self.open_model_manager())
        self._set_status_model("not loaded yet")
        for label in (self.pixel_label, self.size_label, self.zoom_label, self.status_model_label):
            self.statusBar().addPermanentWidget(label)
        self.statusBar().showMessage("Open a photo (Ctrl+O), drop one here, or paste one (Ctrl+V).")
        # The wheel scrolls the side panels; a combo box or spin box takes it only once clicked.
        self._wheel_guard = WheelGuard(self)
        guard_wheel(self.side_tabs, self._wheel_guard)

    def _build_actions(self) -> None:
        def action(
            text: str, slot, shortcut: str | QKeySequence | list | None = None, *, tip: str = ""
        ) -> QAction:
            created = QAction(text, self)
            if shortcut is not None:
                shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
                created.setShortcuts([QKeySequence(item) for item in shortcuts])
            if tip:
                created.setToolTip(tip)
                created.setStatusTip(tip)
            created.triggered.connect(slot)
            self.addAction(created)
            return created

        self.new_action = action(
            "&New", self.new_session, QKeySequence.StandardKey.New,
            tip="Close the photo and empty the history: back to the welcome panel and its samples",
        )
        self.open_action = action(
            "&Open\u2026", self.open_dialog, QKeySequence.StandardKey.Open, tip="Open a photo"
        )
        self.close_photo_action = action(
            "&Close Photo", self.close_photo, QKeySequence.StandardKey.Close,
            tip="Close the photo (its results stay in the history) and show the welcome panel",
        )
        self.paste_action = action("&Paste image", self.paste_from_clipboard, QKeySequence.StandardKey.Paste)
        self.save_action = action(
            "&Save result as\u2026",
            self.save_result_dialog,
            "Ctrl+Shift+E",
            tip="Save the selected result at full resolution",
        )
        self.save_session_action = action(
            "Save Sessio&n\u2026",
            self.sessions.save,
            QKeySequence.StandardKey.Save,
            tip="Save the photo, mask, settings, results and morph timeline as a session (.dgps)",
        )
        self.save_session_as_action = action(
            "Save Session &As\u2026", self.sessions.save_as_dialog, "Ctrl+Shift+S",
            tip="Save the session under another name, with the choice to embed the photo and the result states",
        )
        self.open_session_action = action(
            "Open Sess&ion\u2026", self.sessions.open_dialog, "Ctrl+Shift+O", tip="Reopen a saved session (.dgps)"
        )
        self.import_mask_action = action("Import mask\u2026", self.import_mask_dialog)
        self.export_mask_action = action("Export mask\u2026", self.export_mask_dialog)
        self.settings_action = action(
            "Se&ttings\u2026", self.open_settings, QKeySequence.StandardKey.Preferences
        )
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.open_log_folder_action = action(
            "Open &Log Folder", self.open_log_folder, tip="Show the folder of the app's log files"
        )
        self.guide_action = action(
            "User &Guide", self.open_guide, QKeySequence.StandardKey.HelpContents,
            tip="Open the guide to the app (the README)",
        )
        self.shortcuts_action = action(
            "&Keyboard Shortcuts", self.show_shortcuts, "Ctrl+/", tip="List every keyboard shortcut"
        )
        self.about_action = action("&About DGP Studio", self.show_about, tip="Version, model and licences")

        self.undo_action = self._undo_group.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = self._undo_group.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addAction(self.undo_action)
        self.addAction(self.redo_action)
        self.clear_mask_action = action("Clear mask", self.clear_mask, "Ctrl+Shift+Backspace")
        self.invert_mask_action = action("Invert mask", self.invert_mask, "Ctrl+I")
        self.toggle_mask_action = action(
            "Show mask", lambda checked: self.canvas.set_mask_visible(checked), "Ctrl+M"
        )
        self.toggle_mask_action.setCheckable(True)
        self.toggle_mask_action.setChecked(True)
        self.canvas.maskVisibilityChanged.connect(self.toggle_mask_action.setChecked)

        self.fit_action = action("&Fit to window", self.canvas.fit_to_window, "Ctrl+0")
        self.actual_size_action = action("&100 %", self.canvas.zoom_actual_size, "Ctrl+1")
        self.zoom_in_action = action(
            "Zoom &in", self.canvas.zoom_in, [QKeySequence.StandardKey.ZoomIn, "Ctrl+="]
        )
        self.zoom_out_action = action("Zoom &out", self.canvas.zoom_out, QKeySequence.StandardKey.ZoomOut)
        self.reset_roi_action = action("Reset region to the centre square", self.canvas.reset_roi)

        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        for tool, text, key, tip in (
            (Tool.BRUSH, "Brush", "B", "Paint what is missing"),
            (Tool.ERASER, "Eraser", "E", "Erase the mask"),
            (Tool.RECTANGLE, "Rectangle", "M", "Fill a rectangle (Shift: erase it)"),
            (Tool.REGION, "Region", "R", "Move and resize the square sent to the model"),
            (Tool.HAND, "Hand", "H", "Pan (or hold Space, or drag with the middle button)"),
        ):
            tool_action = action(
                text,
                lambda _checked=False, chosen=tool: self.canvas.set_tool(chosen),
                key,
                tip=f"{tip} ({key})",
            )
            tool_action.setCheckable(True)
            self.tool_group.addAction(tool_action)
            self.tool_actions[tool] = tool_action
        self.tool_actions[Tool.BRUSH].setChecked(True)
        self.shrink_brush_action = action("Smaller brush", self.canvas.shrink_brush, "[")
        self.grow_brush_action = action("Larger brush", self.canvas.grow_brush, "]")

        self.restore_action = action(
            "&Restore",
            self.start_restore,
            ["Ctrl+Return", "Ctrl+Enter"],
            tip="Run the restoration (Ctrl+Enter)",
        )
        self.cancel_action = action(
            "&Cancel",
            self.cancel_restore,
            "Esc",
            tip="Stop after the current iteration, keeping the best result (Esc)",
        )
        self.run_again_action = action(
            "Run &again (recompute)",
            lambda: self.start_restore(recompute=True),
            tip="Run the restoration even when the cache holds its result (the new result replaces it)",
        )
        self.region_action = action(
            "Restrict to a &region",
            self._on_region_toggled,
            tip="Restore only the square region drawn on the photo instead of the whole photo",
        )
        self.region_action.setCheckable(True)

    def _build_menus_and_toolbar(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.new_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.paste_action)
        file_menu.addSeparator()
        file_menu.addAction(self.open_session_action)
        file_menu.addAction(self.save_session_action)
        file_menu.addAction(self.save_session_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addSeparator()
        file_menu.addAction(self.import_mask_action)
        file_menu.addAction(self.export_mask_action)
        file_menu.addSeparator()
        file_menu.addAction(self.close_photo_action)

        def show_batch_dialog() -> None:
            from dgp_studio.batch_dialog import open_batch_dialog

            open_batch_dialog(self)

        self.batch_action = file_menu.addAction("&Batch restore\u2026", show_batch_dialog)
        self.batch_action.setStatusTip("Restore a whole folder of photos in a background process, resumably")
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = self.menuBar().addMenu("&Edit")
        for item in (
            self.undo_action,
            self.redo_action,
            None,
            self.clear_mask_action,
            self.invert_mask_action,
            None,
            self.settings_action,
        ):
            if item is None:
                edit_menu.addSeparator()
            else:
                edit_menu.addAction(item)
        view_menu = self.menuBar().addMenu("&View")
        for item in (
            self.fit_action,
            self.actual_size_action,
            self.zoom_in_action,
            self.zoom_out_action,
            None,
            self.toggle_mask_action,
            self.reset_roi_action,
        ):
            if item is None:
                view_menu.addSeparator()
            else:
                view_menu.addAction(item)
        tools_menu = self.menuBar().addMenu("&Tools")
        for tool_action in self.tool_actions.values():
            tools_menu.addAction(tool_action)
        tools_menu.addSeparator()
        tools_menu.addAction(self.shrink_brush_action)
        tools_menu.addAction(self.grow_brush_action)
        tools_menu.addSeparator()
        self.model_manager_action = tools_menu.addAction("&Model manager\u2026")
        self.model_manager_action.triggered.connect(self.open_model_manager)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(self.restore_action)
        run_menu.addAction(self.run_again_action)
        run_menu.addAction(self.cancel_action)
        run_menu.addSeparator()
        run_menu.addAction(self.region_action)
        studio_menu = self.menuBar().addMenu("&Studio")
        self.show_studio_action = studio_menu.addAction("Edit the selected result")
        self.show_studio_action.triggered.connect(lambda: self.side_tabs.setCurrentWidget(self.studio_panel))
        timeline_action = self.timeline_dock.toggleViewAction()
        timeline_action.setText("Morph &timeline")
        studio_menu.addAction(timeline_action)
        self.add_keyframe_action = studio_menu.addAction("Add the selected result to the timeline")
        self.add_keyframe_action.triggered.connect(lambda: self.add_to_timeline(self.history.current_entry()))
        self.export_animation_action = studio_menu.addAction("&Export animation\u2026")
        self.export_animation_action.triggered.connect(self.export_animation_dialog)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.guide_action)
        help_menu.addAction(self.shortcuts_action)
        help_menu.addSeparator()
        help_menu.addAction(self.open_log_folder_action)
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setMovable(False)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.save_action)
        toolbar.addSeparator()
        for tool_action in self.tool_actions.values():
            toolbar.addAction(tool_action)
        self.brush_size_spin = QSpinBox()
        self.brush_size_spin.setRange(1, 1000)
        self.brush_size_spin.setSuffix(" px")
        self.brush_size_spin.setToolTip("Brush size in image pixels ([ and ], or Alt+wheel)")
        self.brush_size_spin.setValue(round(self.canvas.brush_size()))
        self.brush_size_spin.valueChanged.connect(lambda value: self.canvas.set_brush_size(value))
        # Only a click gives it the keyboard: focus passed on by Qt must not land here (Ctrl+V would paste into it).
        self.brush_size_spin.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        toolbar.addWidget(QLabel(" Size "))
        toolbar.addWidget(self.brush_size_spin)
        toolbar.addSeparator()
        # Fixed-text buttons: the undo actions' own text names the command and would make the toolbar jump.
        for group_action, text in ((self.undo_action, "Undo"), (self.redo_action, "Redo")):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(f"{text} ({group_action.shortcut().toString()})")
            button.setEnabled(group_action.isEnabled())
            button.clicked.connect(group_action.trigger)
            group_action.changed.connect(
                lambda source=group_action, target=button: target.setEnabled(source.isEnabled())
            )
            toolbar.addWidget(button)
        toolbar.addAction(self.clear_mask_action)
        toolbar.addAction(self.invert_mask_action)
        toolbar.addSeparator()
        toolbar.addAction(self.fit_action)
        toolbar.addAction(self.actual_size_action)
        self.addToolBar(toolbar)

    def _connect_engine(self) -> None:
        worker = self._controller.worker
        worker.modelLoading.connect(self._on_model_loading)
        worker.modelLoaded.connect(self._on_model_loaded)
        worker.eventsAvailable.connect(self._drain_events)
        worker.frameAvailable.connect(self._on_frame_available)
        worker.described.connect(self._on_described)
        worker.failed.connect(self._on_engine_failed)
        self._controller.runEnded.connect(self._on_run_ended)
        self.studio.worker.failed.connect(self._on_studio_failed)

    # ============================================================ accessors

    @property
    def engine_controller(self) -> EngineController:
        return self._controller

    def photo(self) -> np.ndarray | None:
        """The open photo, ``(H, W, 3)`` ``uint8`` (read-only), or None."""
        return self._photo

    def mask_layer(self) -> MaskLayer | None:
        return self.canvas.mask_layer()

    def model_info(self) -> ModelInfo | None:
        return self._model_info

    def photo_name(self) -> str:
        """What the open photo is called (its file name, "pasted image"); empty without a photo."""
        return self._photo_name

    def photo_path(self) -> Path | None:
        """The file the open photo was read from, or None (pasted, a sample, made in memory)."""
        return self._photo_path

    def photo_sha256(self) -> str | None:
        """SHA-256 of that file's bytes when it was read, or None."""
        return self._photo_sha256

    def photo_serial(self) -> int:
        """Which opened photo is shown (counts up with every photo; history entries record it)."""
        return self._photo_serial

    def is_running(self) -> bool:
        return self._controller.is_running()

    def app_settings(self) -> AppSettings:
        return self._app_settings

    # ======================================================== show & close

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._engine_loaded_once:
            self._engine_loaded_once = True
            # The model (and torch) load on the engine thread once the window is up.
            QTimer.singleShot(0, self._controller.load)
            QTimer.singleShot(0, self._schedule_describe)
            if self._settings_problem:
                QTimer.singleShot(
                    0,
                    lambda: self.show_error(
                        f"{self._settings_problem} The default settings are used instead."
                    ),
                )

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing and not self.confirm_discard(closing=True):
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

    def has_unsaved_work(self) -> bool:
        """Whether the history differs from the session last saved or opened (results would be lost)."""
        return self.sessions.has_unsaved_changes()

    def confirm_discard(self, *, closing: bool = False) -> bool:
        """Ask Save / Discard / Cancel when results are unsaved or a restoration runs; True to go on.

        Save writes the session (asking for a name first when it has none) and goes on
        once it is on its way; Discard cancels a running restoration; Cancel stays.
        """
        running = self._controller.is_running()
        unsaved = self.has_unsaved_work()
        if not running and not unsaved:
            return True
        count = len(self.history.entries())
        what = "Close the window" if closing else "Start anew"
        if running and unsaved:
            sentence = f"A restoration is running and {count} result(s) are not saved in a session. {what}?"
        elif running:
            sentence = f"A restoration is running. {what} and stop it?"
        else:
            sentence = f"{count} result(s) in the history are not saved in a session. {what}?"
        answer = ask_before_closing(self, sentence, can_save=self._photo is not None)
        if answer == CLOSE_CANCEL:
            return False
        if answer == CLOSE_SAVE and self.sessions.save() is None:
            return False  # the user backed out of naming the file
        if running:
            self.cancel_restore()
        return True

    def shutdown(self, *, timeout_ms: int = 10_000) -> bool:
        """Cancel any run, stop the engine thread and background jobs, save window state.

        Returns True when the engine thread ended within ``timeout_ms``.
        """
        if self._closing:
            return True
        self._closing = True
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self._describe_timer.stop()
        self._frame_timer.stop()
        # Frames and exports stop within a frame, so the engine thread can end.
        self.timeline.shutdown()
        self.studio.shutdown()
        if self.export_dialog is not None:
            self.export_dialog.close()
        self._save_window_state()
        for dialog in list(self.error_dialogs):
            dialog.close()
        self.sessions.finish_saving(timeout_ms=timeout_ms)  # a session saved just before closing is kept
        stopped = self._controller.shutdown(timeout_ms=timeout_ms)
        self._background.wait(timeout_ms)
        return stopped

    def _restore_window_state(self) -> None:
        state = window_state()
        geometry = state.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)
        window_layout = state.value("window/state")
        if window_layout is not None:
            self.restoreState(window_layout)

    def _save_window_state(self) -> None:
        state = window_state()
        state.setValue("window/geometry", self.saveGeometry())
        state.setValue("window/state", self.saveState())
        state.sync()

    # ================================================================ files

    def open_dialog(self) -> None:
        start = str(self._photo_path.parent) if self._photo_path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", start, OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Decode ``path`` in the background and show it (``photoOpened`` follows, or an error dialog)."""
        source = Path(path)
        if source.suffix.lower() == SESSION_SUFFIX:
            self.sessions.open(source)
            return
        if self._controller.is_running():
            self.cancel_restore()
            self.statusBar().showMessage(f"Stopped the running restoration to open {source.name}.")
        else:
            self.statusBar().showMessage(f"Opening {source.name}\u2026")

        def load():
            from engine.imageio import load_image

            return load_image(source)

        def loaded(image) -> None:
            self._add_recent_file(source)
            self._set_photo(
                image.rgb, source_name=source.name, path=source, alpha=image.alpha, sha256=image.sha256
            )
            for note in image.notes:
                self.statusBar().showMessage(f"{source.name}: {note}", 8000)

        self._background.submit(
            load,
            on_success=loaded,
            on_error=lambda error, details: self.show_error(error_sentence(error), details),
        )

    def paste_from_clipboard(self) -> None:
        """Open the clipboard's image (or the first image file it names)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                self._set_photo(
                    qimage_to_rgb(image), source_name="pasted image", path=None, alpha=qimage_alpha(image)
                )
                return
        if mime is not None and mime.hasUrls():
            files = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
            if files:
                self.open_path(files[0])
                return
        self.statusBar().showMessage("The clipboard holds no image.", 5000)

    def open_sample(self, sample: Sample) -> None:
        """Open a bundled sample photo (and its mask) and start its suggested restoration in quick mode.

        The photo is opened without a path: it is not added to the recent files and
        results are not suggested to be saved next to the app's own files.
        """
        if self._controller.is_running():
            self.statusBar().showMessage("Wait for the running restoration to end (or cancel it).", 4000)
            return
        self.statusBar().showMessage(f"Opening the sample {sample.title}\u2026")

        def loaded(files) -> None:
            rgb, mask = files
            self._set_photo(rgb, source_name=sample.path.name, path=None, alpha=None)
            layer = self.canvas.mask_layer()
            if mask is not None and layer is not None:
                layer.replace(mask, text="Sample mask")
            self.task_panel.set_task(sample.task)
            if sample.sr_factor is not None:
                self.task_panel.set_sr_factor(sample.sr_factor)
            self.task_panel.quick_check.setChecked(True)
            self._start_sample_restore(sample, self._photo_serial)

        self._background.submit(
            lambda: read_sample(sample),
            on_success=loaded,
            on_error=lambda error, details: self.show_error(error_sentence(error), details),
        )

    def _start_sample_restore(self, sample: Sample, photo_serial: int) -> None:
        """Pick the sample's class (the model's class names are needed, so after it loads) and restore."""
        if photo_serial != self._photo_serial or self._closing:
            return  # another photo was opened in the meantime
        if self._model_info is None:
            def when_ready(_info: ModelInfo) -> None:
                self.modelReady.disconnect(when_ready)
                self._start_sample_restore(sample, photo_serial)

            self.modelReady.connect(when_ready)
            return
        self.class_picker.set_selected_class(class_index_for(self.class_picker.class_names(), sample.class_name))
        self.start_restore()

    def _sync_welcome_panel(self) -> None:
        """Show the welcome panel where the photo goes while no photo is open (without the compare
        slider and the results strip, which need a photo), the canvas and those controls otherwise."""
        self.canvas_stack.setCurrentWidget(self.welcome_panel if self._photo is None else self.canvas)
        self.photo_controls.setVisible(self._photo is not None)

    def set_photo(
        self, rgb: np.ndarray, *, source_name: str = "image", path: Path | None = None, sha256: str | None = None
    ) -> None:
        """Show an in-memory photo (``(H, W, 3)`` ``uint8``) as if it had been opened.

        ``sha256`` is the digest of ``path``'s bytes as they were decoded, when known.
        """
        self._set_photo(rgb, source_name=source_name, path=path, alpha=None, sha256=sha256)

    def _set_photo(
        self,
        rgb: np.ndarray,
        *,
        source_name: str,
        path: Path | None,
        alpha: np.ndarray | None,
        sha256: str | None = None,
        serial: int | None = None,
    ) -> None:
        """Show a photo; ``serial`` shows an earlier photo again (its results stay its own)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            self.show_error(f"{source_name} is not an RGB image with 8 bits per channel.")
            return
        photo = np.ascontiguousarray(rgb) if serial is None else rgb
        photo.flags.writeable = False  # jobs share it with the engine thread without copying
        old_layer = self.canvas.mask_layer()
        self._photo, self._photo_path, self._photo_name = photo, path, source_name
        self._photo_sha256 = sha256 if path is not None else None
        if serial is None:
            self._photo_serial = max(self._photos, default=self._photo_serial) + 1
            self._photos[self._photo_serial] = (photo, path, source_name, self._photo_sha256)
            # A new photo starts clean: nothing of the previous run stays on screen, nor its class.
            self.class_picker.reset_for_new_photo()
        else:
            self._photo_serial = serial
        self._clear_run_display()
        self.sessions.forget_file()
        self._sync_welcome_panel()
        layer = self.canvas.set_photo(photo)
        self.canvas.set_roi_visible(self.region_action.isChecked())
        if old_layer is not None:
            self._undo_group.removeStack(old_layer.undo_stack)
        self._undo_group.addStack(layer.undo_stack)
        self._undo_group.setActiveStack(layer.undo_stack)
        layer.undo_stack.indexChanged.connect(lambda _index: self._schedule_describe())
        size = image_size_text(photo.shape[1], photo.shape[0])
        self.statusBar().showMessage(f"Opened {source_name} ({size}).", 8000)  # replaces "Opening …"
        if alpha is not None and int(alpha.min()) < 128:
            # Transparent pixels are missing pixels: start the mask from them (undoable).
            layer.replace((alpha < 128).astype(np.uint8), text="Mask from transparency")
            self.statusBar().showMessage(
                f"{source_name}: its transparent pixels were marked as missing.", 8000
            )
        self.canvas.set_split_fraction(self.split_slider.value() / 1000)
        self.size_label.setText(size)
        self.setWindowTitle(f"{source_name} \u2014 {APP_DISPLAY_NAME}")
        self._update_run_state()
        self._schedule_describe()
        self.photoOpened.emit(source_name)

    def _clear_run_display(self) -> None:
        """Forget the previous run's status, loss curve, model view and compare position."""
        panel = self.progress_panel
        panel.status_label.setText("Idle.")
        panel.progress_bar.setRange(0, 1)
        panel.progress_bar.setValue(0)
        panel.progress_bar.set_stage_starts([])
        panel.eta_label.setText("")
        panel.sparkline.clear()
        panel.model_output_tile.set_image(None)
        panel.model_target_tile.set_image(None)
        panel.details.setVisible(False)
        self.split_slider.setValue(0)

    def close_photo(self) -> None:
        """Close the photo (its results stay in the history) and show the welcome panel."""
        if self._photo is None:
            return
        if self._controller.is_running():
            self.cancel_restore()
        layer = self.canvas.mask_layer()
        if layer is not None:
            self._undo_group.removeStack(layer.undo_stack)
        self._photo, self._photo_path, self._photo_name, self._photo_sha256 = None, None, "", None
        # Past every serial so far: results of the closed photo are another photo's from now on.
        self._photo_serial = max(self._photos, default=self._photo_serial) + 1
        self._clear_run_display()
        self.canvas.clear_result()
        self.sessions.forget_file()
        self.studio_panel.set_entry(None)
        self.size_label.setText("")
        self.pixel_label.setText("")
        self.setWindowTitle(APP_DISPLAY_NAME)
        self._sync_welcome_panel()
        self._update_run_state()
        self.statusBar().showMessage("Open a photo (Ctrl+O), drop one here, or paste one (Ctrl+V).")

    def new_session(self) -> bool:
        """File › New: close the photo and empty the history and the timeline (asking first when
        results are unsaved); the welcome panel and its samples show. False when the user cancelled."""
        if not self.confirm_discard():
            return False
        self.close_photo()
        while self.timeline.keyframe_entries():
            self.timeline.remove_keyframe(0)
        self.timeline_dock.hide()
        self.history.clear()
        self.sessions.forget_history()
        self.class_picker.reset_for_new_photo()
        self._update_run_state()
        return True

    def _recent_files(self) -> list[str]:
        value = window_state().value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(item) for item in (value or [])]

    def _add_recent_file(self, path: Path) -> None:
        resolved = str(path.resolve())
        recent = [item for item in self._recent_files() if item != resolved]
        state = window_state()
        state.setValue("recent_files", [resolved, *recent][:MAX_RECENT_FILES])
        state.sync()

    def recent_files(self) -> list[str]:
        """Recently opened files, newest first."""
        return self._recent_files()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self._recent_files()
        for path in recent:
            entry = self.recent_menu.addAction(path)
            entry.triggered.connect(lambda _checked=False, chosen=path: self.open_path(chosen))
        if not recent:
            empty = self.recent_menu.addAction("No recent files")
            empty.setEnabled(False)

    # ---------------------------------------------------------------- drops

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # ================================================================= mask

    def clear_mask(self) -> None:
        layer = self.canvas.mask_layer()
        if layer is not None:
            layer.clear()

    def invert_mask(self) -> None:
        layer = self.canvas.mask_layer()
        if layer is not None:
            layer.invert()

    def import_mask_dialog(self) -> None:
        if self._photo is None:
            self.statusBar().showMessage("Open a photo before importing its mask.", 5000)
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import a mask", "", MASK_FILTER)
        if path:
            self.import_mask(path)

    def import_mask(self, path: str | Path) -> None:
        """Read a mask file in the background (white or opaque paint = missing) and apply it, undoably."""
        layer = self.canvas.mask_layer()
        if layer is None:
            return
        source = Path(path)
        size = (layer.width, layer.height)

        def load():
            from engine.imageio import load_mask

            return load_mask(source, size=size)

        def loaded(mask: np.ndarray) -> None:
            if self.canvas.mask_layer() is layer:
                layer.replace((mask >= 0.5).astype(np.uint8), text="Import mask")
                self.statusBar().showMessage(f"Imported the mask {source.name}.", 5000)

        self._background.submit(
            load,
            on_success=loaded,
            on_error=lambda error, details: self.show_error(error_sentence(error), details),
        )

    def export_mask_dialog(self) -> None:
        layer = self.canvas.mask_layer()
        if layer is None:
            self.statusBar().showMessage("There is no mask to export yet.", 5000)
            return
        suggested = self._suggested_path("mask", ".png")
        path, _ = QFileDialog.getSaveFileName(self, "Export the mask", suggested, "PNG mask (*.png)")
        if not path:
            return
        target = Path(path) if Path(path).suffix else Path(path).with_suffix(".png")
        try:
            layer.export_png(target)
        except BadInputError as error:
            self.show_error(str(error))
            return
        self.statusBar().showMessage(f"Saved the mask to {target}.", 5000)

    # ============================================================== restore

    def build_job(self, *, class_index: int | None | str = "picker") -> RestoreJob | None:
        """The job the Restore button would run now, or None (with a message) when it cannot run."""
        if self._photo is None:
            self.show_error("Open a photo first: there is nothing to restore yet.")
            return None
        problem = self.task_panel.problem()
        if problem:
            self.show_error(problem)
            return None
        options = self.task_panel.options()
        layer = self.canvas.mask_layer()
        mask = None
        if options.use_mask and layer is not None:
            if layer.is_empty():
                self.show_error("Paint the missing region first: inpainting fills the pixels you paint.")
                return None
            mask = layer.array.copy()
        chosen = self.class_picker.selected_class() if class_index == "picker" else class_index
        return self._job_from(options, mask, chosen)

    def _job_from(self, options, mask, class_index: int | None) -> RestoreJob:
        return RestoreJob(
            image=self._photo,
            task=options.task,
            roi=self.canvas.roi() if self.region_action.isChecked() else None,
            mask=mask,
            sr_factor=options.sr_factor,
            grayscale=options.grayscale,
            class_index=class_index,
            preset=options.preset,
            quick=options.quick,
            seed=options.seed,
            iteration_scale=options.iteration_scale,
            source_name=self._photo_name or "the photo",
            detail_strength=options.detail_strength,
        )

    def start_restore(self, *, recompute: bool = False) -> bool:
        """Send the current job to the engine thread; False when it cannot start now.

        A job whose result is in the cache is answered from it at once, unless
        ``recompute`` (Run again) asks to run it anyway.
        """
        if self._controller.is_running():
            self.statusBar().showMessage("A restoration is already running.", 4000)
            return False
        job = self.build_job()
        if job is None:
            return False
        if recompute:
            job = replace(job, use_cache=False)
        large = large_result_size(job)
        if large is not None:
            width, height = large
            answer = self.ask_large_result(
                f"The result will be {width} \u00d7 {height} pixels ({width * height / 1e6:.0f} MP). "
                "Making and saving it needs a lot of memory and time. Make it anyway?"
            )
            if not answer:
                return False
            job = replace(job, allow_large=True)
        if not self._controller.restore(job):
            return False
        self._current_job = job
        self._current_job_photo = self._photo_serial
        self._live_alpha = self._live_frame_alpha(job)
        # Live frames go where the mask is; the overlay would hide them (painting shows it again).
        self.canvas.set_mask_visible(False)
        self._run_started_at = time.perf_counter()
        self._last_frame_shown_at = 0.0
        self.last_result_from_cache = False
        LOG.info(
            "restore started: %s of %s (%d \u00d7 %d), quick=%s, class=%s",
            job.task, job.source_name, job.image.shape[1], job.image.shape[0], job.quick,
            "auto" if job.class_index is None else job.class_index,
        )
        self.progress_panel.begin()
        self.class_picker.clear_suggestions()
        self.statusBar().showMessage(f"Restoring: {TASK_LABELS[job.task].lower()}\u2026")
        self._update_run_state()
        return True

    def ask_large_result(self, text: str) -> bool:
        """Ask before making a result above the size limit (tests replace this)."""
        answer = QMessageBox.question(self, "Large result", text)
        return answer == QMessageBox.StandardButton.Yes

    def _on_region_toggled(self, checked: bool | None = None) -> None:
        """Whole photo (default) or only the drawn square: the region frame shows only when it counts."""
        self.canvas.set_roi_visible(self.region_action.isChecked())

    def _result_rect(self, entry: HistoryEntry) -> tuple[int, int, int, int] | None:
        """Where a result goes on the photo: the region it restores (a restricted super-resolution), else all of it."""
        return self._result_rect_for_job(entry.job) if entry.job is not None else None

    def _result_rect_for_job(self, job: RestoreJob) -> tuple[int, int, int, int] | None:
        if job.roi is not None and job.task in ("sr", "hybrid") and job.sr_factor:
            left, top, size = job.roi
            return (left, top, size, size)
        return None

    def _live_frame_alpha(self, job: RestoreJob) -> np.ndarray | None:
        """For tasks with a mask: where live frames are shown, ``(R, R)`` ``uint8`` (255 = painted)."""
        if job.mask is None or self._model_info is None or job.roi is None:
            return None
        from PIL import Image

        left, top, size = job.roi
        resolution = self._model_info.resolution
        crop = job.mask[top : top + size, left : left + size].astype(np.uint8) * 255
        # BOX keeps every model pixel that a painted pixel touches.
        reduced = np.asarray(Image.fromarray(crop).resize((resolution, resolution), Image.Resampling.BOX))
        return np.where(reduced > 0, 255, 0).astype(np.uint8)

    def rerun_with_class(self, class_index: int) -> None:
        """Select ``class_index`` and restore again with it."""
        if self._controller.is_running():
            self.statusBar().showMessage("Wait for the running restoration to end (or cancel it).", 4000)
            return
        if self.class_picker.selected_class() != class_index:
            self.class_picker.set_selected_class(class_index)
        self.start_restore()

    def cancel_restore(self) -> None:
        """Stop the running restoration after its current iteration; the best result is kept."""
        if self._controller.is_running():
            self._controller.cancel()
            self.progress_panel.status_label.setText("Stopping after this iteration\u2026")

    def _update_run_state(self) -> None:
        running = self._controller.is_running()
        can_run = self._photo is not None and not running
        if not can_run and self.restore_button.hasFocus():
            # A disabled button passes the keyboard on to the next control (the brush size box);
            # the canvas keeps it instead, so that shortcuts and Ctrl+V still reach the window.
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
        self.restore_button.setEnabled(can_run)
        self.restore_action.setEnabled(can_run)
        self.run_again_action.setEnabled(can_run)
        self.cancel_action.setEnabled(running)
        self.progress_panel.cancel_button.setEnabled(running)
        self.save_action.setEnabled(bool(self.history.count()))
        self.close_photo_action.setEnabled(self._photo is not None)
        self.restore_button.setText("Restoring\u2026" if running else "Restore")

    # ---------------------------------------------------------- engine events

    def _set_status_model(self, text: str) -> None:
        self.status_model_label.setText(f'<a href="model-manager">Model: {html.escape(text)}</a>')

    def _on_model_loading(self, what: str) -> None:
        self._set_status_model(f"loading {what}\u2026")
        self.model_label.setText(f"Model: loading {what}\u2026")
        self.statusBar().showMessage(f"Loading {what}\u2026")

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self._model_info = info
        LOG.info(
            "model ready: %s, %d px, %d classes, on %s in %s",
            info.display_name, info.resolution, len(info.class_names), info.device, info.precision,
        )
        self._set_status_model(info.display_name)
        self.model_label.setText(
            f"Model: {info.display_name} \u00b7 {info.resolution} px \u00b7 {len(info.class_names)} classes "
            f"\u00b7 {info.device}, {info.precision}"
        )
        previous_class = self.class_picker.selected_class()
        self.class_picker.set_class_names(info.class_names, info.class_numbers)
        self.studio_panel.set_class_names(info.class_names, info.class_numbers)
        if previous_class is not None and previous_class < len(info.class_names):
            self.class_picker.set_selected_class(previous_class)
        self.task_panel.set_presets(info.presets, titles=info.preset_titles)
        self.statusBar().showMessage(f"{info.display_name} is ready.", 4000)
        self._schedule_describe()
        self.modelReady.emit(info)

    def _schedule_describe(self) -> None:
        if not self._closing:
            self._describe_timer.start()

    def _describe_now(self) -> None:
        if self._closing or not self._engine_loaded_once:
            return
        options = self.task_panel.options()
        layer = self.canvas.mask_layer()
        mask = (
            layer.array.copy() if (options.use_mask and layer is not None and not layer.is_empty()) else None
        )
        self._controller.describe(self._job_from(options, mask, None))

    def _on_described(self, description: JobDescription) -> None:
        self._last_description = description
        self.task_panel.set_stage_table(description.stages, note=f"Preset: {description.preset}.")
        if description.preview is not None:
            self.task_panel.set_preview(description.preview)
        else:
            self.task_panel.set_preview(None, message=description.problem or "")

    def _drain_events(self) -> None:
        for event in self._controller.worker.take_events():
            self._handle_event(event)

    def _handle_event(self, event: object) -> None:
        if isinstance(event, Step):
            self.progress_panel.on_step(event)
        elif isinstance(event, Started):
            self.progress_panel.on_started(event.plan)
        elif isinstance(event, SearchProgress):
            self.progress_panel.on_search_progress(event)
        elif isinstance(event, SearchFinished):
            # The search also runs for a class picked by hand (to find z); only Auto lets the prior choose.
            if self._current_job is not None and self._current_job.class_index is None:
                self.statusBar().showMessage(
                    f"The prior chose {self.class_picker.class_text(event.class_index)}.", 6000
                )
        elif isinstance(event, StageBegan):
            self.progress_panel.on_stage_began(event)
        elif isinstance(event, Notice):
            self.statusBar().showMessage(event.text, 10_000)
        elif isinstance(event, RestoredFromCache):
            self.last_result_from_cache = True
            self._accept_result(event.result, cancelled=event.result.cancelled, from_cache=True)
        elif isinstance(event, Finished):
            self._accept_result(event.result, cancelled=False)
        elif isinstance(event, Cancelled):
            if event.result is not None:
                self._accept_result(event.result, cancelled=True)
            else:
                self.progress_panel.finish("Stopped before the first result.")

    def _on_frame_available(self) -> None:
        # Throttle: show at most ~15 frames a second, always the newest one.
        wait_s = FRAME_DISPLAY_INTERVAL_S - (time.perf_counter() - self._last_frame_shown_at)
        if wait_s <= 0:
            self._show_latest_frame()
        elif not self._frame_timer.isActive():
            self._frame_timer.start(max(int(wait_s * 1000), 1))

    def _show_latest_frame(self) -> None:
        frame = self._controller.worker.take_frame()
        if frame is None or self._current_job is None:
            return
        self._last_frame_shown_at = time.perf_counter()
        if self._current_job_photo == self._photo_serial:
            alpha = (
                self._live_alpha
                if (self._live_alpha is not None and self._live_alpha.shape == frame.image.shape[:2])
                else None
            )
            if frame.preview is not None:
                self.canvas.show_preview(frame.preview, rect=self._result_rect_for_job(self._current_job))
            else:
                self.canvas.show_live_frame(frame.image, roi=self._current_job.roi, alpha=alpha)
        self.progress_panel.on_frame(frame)
        self.frames_shown += 1

    def _accept_result(self, result, *, cancelled: bool, from_cache: bool = False) -> None:
        job = self._current_job
        if job is None:
            return
        if cancelled and not stopped_result_worth_keeping(result):
            LOG.info("restore stopped after %d of %d iterations: too early to keep", result.steps_done,
                     result.total_steps)
            self.progress_panel.finish(
                f"Stopped after {result.steps_done} of {result.total_steps} iterations: too early for a "
                f"result worth keeping (one is kept from {KEEP_STOPPED_FRACTION:.0%} of the iterations on)."
            )
            return
        if from_cache:
            existing = self._same_result_in_history(job)
            if existing is not None:
                # The cache answered a run already in the history: show that entry, add no copy.
                self.history.select_entry(existing)
                self.canvas.set_mask_visible(False)
                self.progress_panel.finish("From the cache: this result is already in the history (selected).")
                return
        composite = result.composite if result.composite is not None else result.image
        entry = HistoryEntry(
            composite=composite,
            image=result.image,
            task=job.task,
            class_index=result.class_index,
            class_name=self.class_picker.class_name(result.class_index),
            class_number=self.class_picker.known_class_number(result.class_index),
            seconds=float(result.seconds),
            cancelled=cancelled,
            source_path=str(self._photo_path) if self._photo_path else None,
            photo_serial=self._current_job_photo,
            result=result,
            job=job,
            photo_name=self._photos.get(self._current_job_photo, (None, None, job.source_name))[2],
            model_identity=self._model_key(),
        )
        self.history.add_entry(entry)
        # The painted overlay would hide exactly the pixels that were restored.
        self.canvas.set_mask_visible(False)
        if job.class_index is None and result.top_classes:
            self.class_picker.show_suggestions(result.top_classes)
        verb = "Stopped early" if cancelled else "Done"
        if from_cache:
            verb = f"From the cache: {verb.lower()}"
        LOG.info(
            "restore %s: %d of %d iterations in %.1f s, class %s",
            verb.lower(), result.steps_done, result.total_steps, entry.seconds, entry.class_name,
        )
        self.progress_panel.finish(
            f"{verb} after {result.steps_done} of {result.total_steps} iterations ({entry.seconds:.1f} s); "
            f"class: {entry.class_name}."
        )
        self.resultAdded.emit(entry)

    def _model_key(self) -> str:
        info = self._model_info
        return "" if info is None else info.identity or info.display_name

    def _same_result_in_history(self, job: RestoreJob) -> HistoryEntry | None:
        """The newest restoration in the history made by the same request (photo, settings, mask,
        class) with the same model, or None."""
        wanted = _job_signature(job)
        for entry in reversed(self.history.entries()):
            if (
                not entry.edit
                and entry.job is not None
                and entry.photo_serial == self._current_job_photo
                and entry.model_identity == self._model_key()
                and _job_signature(entry.job) == wanted
            ):
                return entry
        return None

    def _on_engine_failed(self, sentence: str, details: str) -> None:
        if self._controller.is_running():
            self.progress_panel.finish("Stopped by an error.")
        elif self._model_info is None:
            self.model_label.setText("Model: not loaded (see Settings)")
            self._set_status_model("not loaded")
        self.show_error(sentence, details)

    def _on_run_ended(self) -> None:
        self._frame_timer.stop()
        self._drain_events()
        self._controller.worker.take_frame()  # a stale frame must not cover the result
        entry = self.history.current_entry()
        if entry is not None and entry.photo_serial == self._photo_serial:
            self.canvas.set_result_image(entry.composite, rect=self._result_rect(entry))
        elif self.progress_panel.cancel_button.isEnabled():
            self.progress_panel.finish("Stopped.")
        self._current_job = None
        self._update_run_state()
        if self.last_result_from_cache:
            self.statusBar().showMessage(CACHE_HIT_MESSAGE, 15_000)
        else:
            self.statusBar().showMessage("Ready.", 3000)
        self.runEnded.emit()

    # ============================================================== results

    def _on_history_selected(self, entry: HistoryEntry) -> None:
        if not self._adding_edit:  # a kept edit leaves the studio on the result it came from
            self.studio_panel.set_entry(entry)
        if entry.photo_serial != self._photo_serial and not self._show_photo_of(entry):
            self.statusBar().showMessage(
                "That result belongs to another photo; Save still writes it at full resolution.", 6000
            )
        if entry.photo_serial == self._photo_serial:
            self.canvas.set_result_image(entry.composite, rect=self._result_rect(entry))
        self._update_run_state()

    def _show_photo_of(self, entry: HistoryEntry) -> bool:
        """Show the photo ``entry`` was made from, with its region and mask; False when it cannot be."""
        record = self._photos.get(entry.photo_serial)
        if record is None or self._controller.is_running() or self._closing:
            return False
        rgb, path, name, sha256 = record
        self._set_photo(rgb, source_name=name, path=path, alpha=None, sha256=sha256, serial=entry.photo_serial)
        job = entry.job
        if job is not None:
            if job.roi is not None:
                self.canvas.set_roi(*job.roi)
            self.region_action.setChecked(job.roi is not None)
            layer = self.canvas.mask_layer()
            if job.mask is not None and layer is not None and job.mask.shape == (layer.height, layer.width):
                layer.replace(job.mask.astype(np.uint8), text="Mask of this result")
        self.canvas.set_mask_visible(False)
        self.statusBar().showMessage(f"Showing {name}, the photo this result belongs to.", 6000)
        return True

    def _on_history_removed(self, entry: HistoryEntry) -> None:
        if self.studio_panel.entry() is entry:
            self.studio_panel.set_entry(None)
        if not self.history.count():
            self.canvas.clear_result()
            self.canvas.set_mask_visible(True)
        self.statusBar().showMessage("Removed the result from the history.", 4000)
        self._update_run_state()

    # ================================================================ studio

    def add_edited_result(self, parent: HistoryEntry, result, edit: str) -> HistoryEntry:
        """Add an edit of ``parent`` (a ``RestoreResult`` from the studio) to the history and show it."""
        composite = result.composite if result.composite is not None else result.image
        entry = HistoryEntry(
            composite=composite,
            image=result.image,
            task=parent.task,
            class_index=result.class_index,
            class_name=self.class_picker.class_name(result.class_index),
            class_number=self.class_picker.known_class_number(result.class_index),
            seconds=float(result.seconds),
            source_path=parent.source_path,
            photo_serial=parent.photo_serial,
            result=result,
            job=parent.job,
            edit=edit,
            photo_name=parent.photo_name,
            model_identity=parent.model_identity,
        )
        self._adding_edit = True
        try:
            self.history.add_entry(entry)
        finally:
            self._adding_edit = False
        self.statusBar().showMessage(f"Kept {edit} as a new result.", 5000)
        self.resultAdded.emit(entry)
        return entry

    def add_to_timeline(self, entry: HistoryEntry | None) -> None:
        """Append a result to the morph timeline as its next keyframe, and show the timeline."""
        if entry is None:
            self.statusBar().showMessage("Select a result in the history first.", 5000)
            return
        if not self.timeline.add_keyframe(entry):
            self.statusBar().showMessage("That result has no model state to morph.", 5000)
            return
        self.timeline_dock.show()
        count = len(self.timeline.keyframe_entries())
        hint = "" if count >= 2 else " Add another result to morph to."
        self.statusBar().showMessage(f"Keyframe {count} added to the morph timeline.{hint}", 5000)

    def export_animation_dialog(self) -> ExportDialog | None:
        """Open the export dialog for the timeline (window-modal, non-blocking)."""
        if len(self.timeline.keyframe_entries()) < 2:
            self.statusBar().showMessage("The morph timeline needs two or more keyframes to export.", 5000)
            return None
        if self.export_dialog is not None:
            if self.export_dialog.is_exporting():
                self.export_dialog.show()
                return self.export_dialog
            self.export_dialog.deleteLater()
        resolution = self._model_info.resolution if self._model_info else self.timeline.resolution_hint()
        folder = self._photo_path.parent if self._photo_path else Path.home()
        stem = f"{self._photo_path.stem}-morph" if self._photo_path else "morph"
        dialog = ExportDialog(
            self.studio,
            self.timeline.plan(),
            resolution=resolution,
            suggested_path=folder / stem,
            parent=self,
        )
        dialog.exportEnded.connect(
            lambda written: written and self.statusBar().showMessage(f"Saved {written}.", 6000)
        )
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _on_studio_failed(self, request_id: int, sentence: str, details: str) -> None:
        if self.studio.is_export(request_id):
            return  # the export dialog shows its own failure
        if any(dialog.text() == sentence and dialog.isVisible() for dialog in self.error_dialogs):
            return  # dragging a slider over a broken state would open one dialog per render
        self.show_error(sentence, details)

    def _suggested_path(self, label: str, suffix: str, *, entry: HistoryEntry | None = None) -> str:
        """Where to save: beside the photo, named after it; ``entry``'s own photo when given."""
        if entry is not None:
            if entry.source_path:
                source = Path(entry.source_path)
                return str(source.with_name(f"{source.stem}-{label}{suffix}"))
            if entry.photo_name:
                return str(Path.home() / f"{Path(entry.photo_name).stem}-{label}{suffix}")
            return str(Path.home() / f"{label}{suffix}")
        if self._photo_path is not None:
            return str(self._photo_path.with_name(f"{self._photo_path.stem}-{label}{suffix}"))
        return str(Path.home() / f"{label}{suffix}")

    def save_result_dialog(self) -> None:
        entry = self.history.current_entry()
        if entry is None:
            self.statusBar().showMessage("There is no result to save yet.", 5000)
            return
        dialog = QFileDialog(self, "Save the result", self.suggested_result_path(entry))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(list(SAVE_FILTERS))
        dialog.setDefaultSuffix("png")
        dialog.filterSelected.connect(lambda name: dialog.setDefaultSuffix(SAVE_FILTERS[name].lstrip(".")))
        if not dialog.exec() or not dialog.selectedFiles():
            return
        target = Path(dialog.selectedFiles()[0])
        allow_original = False
        if self._is_original(target, entry):
            answer = QMessageBox.question(
                self,
                APP_DISPLAY_NAME,
                f"{target.name} is the original photo. Replace it with the result? The original is lost.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
            allow_original = True
        # The file dialog already asked before replacing any other existing file.
        self.save_result_to(target, entry=entry, overwrite=True, allow_original=allow_original)

    def suggested_result_path(self, entry: HistoryEntry) -> str:
        """The name "Save result as" proposes for ``entry``: from the photo the result belongs to."""
        return self._suggested_path(entry.task, ".png", entry=entry)

    @staticmethod
    def _is_original(target: Path, entry: HistoryEntry) -> bool:
        if entry.source_path is None:
            return False
        try:
            return target.resolve() == Path(entry.source_path).resolve()
        except OSError:
            return False

    def save_result_to(
        self,
        path: str | Path,
        *,
        entry: HistoryEntry | None = None,
        overwrite: bool = False,
        allow_original: bool = False,
    ) -> None:
        """Write a result's full-resolution composite in the background (``resultSaved`` follows).

        The original photo is protected unless ``allow_original`` (the user said yes).
        """
        entry = entry or self.history.current_entry()
        if entry is None:
            self.statusBar().showMessage("There is no result to save yet.", 5000)
            return
        target = Path(path)
        protect = None if allow_original else entry.source_path
        metadata = {
            "Software": APP_DISPLAY_NAME,
            "dgp-studio:task": entry.task,
            "dgp-studio:class": (
                entry.class_name if entry.class_number is None else f"{entry.class_number} {entry.class_name}"
            ),
        }

        def save():
            from engine.imageio import save_image

            return save_image(
                entry.composite, target, overwrite=overwrite, protect=protect, metadata=metadata
            )

        def saved(written) -> None:
            self.statusBar().showMessage(f"Saved {written}.", 6000)
            self.resultSaved.emit(str(written))

        self._background.submit(
            save,
            on_success=saved,
            on_error=lambda error, details: self.show_error(error_sentence(error), details),
        )

    # ============================================================= settings

    def open_settings(self) -> None:
        dialog = SettingsDialog(
            self._app_settings, clear_cache=self._controller.worker.clear_cache, parent=self
        )
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def model_manager(self):
        """A :class:`~dgp_studio.model_manager.ModelManagerDialog` over the user's model store."""
        from dgp_studio.model_manager import ModelManagerDialog  # imports torch: only when asked for
        from engine.model_store import ModelStore

        try:
            store = ModelStore(models_dir())
        except BadInputError as error:
            self.show_error(str(error))
            return None
        dialog = ModelManagerDialog(store, current_model=self._app_settings.model, parent=self)
        dialog.modelChosen.connect(
            lambda model_id: self.apply_settings(replace(self._app_settings, model=model_id))
        )
        return dialog

    def open_model_manager(self) -> None:
        dialog = self.model_manager()
        if dialog is not None:
            dialog.exec()

    def open_guide(self) -> None:
        """Help › User Guide: the README in the desktop's viewer."""
        if not open_guide():
            self.statusBar().showMessage("The guide is the README of DGP Studio (not found beside the app).", 8000)

    def shortcuts_dialog(self) -> ShortcutsDialog:
        """The shortcut sheet, built from the window's actions (so it lists what the keys really do)."""
        extra = [
            ("Remove the selected result (in the history)", "Del"),
            ("Show the original while held", "Tab"),
            ("Brush size", "Alt+Wheel"),
            ("Pan", "Space+Drag"),
        ]
        return ShortcutsDialog(self.actions(), extra=extra, parent=self)

    def show_shortcuts(self) -> None:
        dialog = self.shortcuts_dialog()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    def about_dialog(self) -> AboutDialog:
        from engine import __version__

        info = self._model_info
        return AboutDialog(
            version=__version__,
            model_name="" if info is None else info.display_name,
            model_identity="" if info is None else info.identity,
            parent=self,
        )

    def show_about(self) -> None:
        dialog = self.about_dialog()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    def open_log_folder(self) -> None:
        """Show the folder of the log files in the desktop's file manager."""
        if not app_logging.open_log_folder():
            self.statusBar().showMessage(f"The log files are in {app_logging.log_dir()}.", 10_000)

    def apply_settings(self, settings: AppSettings) -> None:
        """Save and use new preferences; the engine reloads (after the current run, if any)."""
        try:
            save_settings(settings.validated())
        except BadInputError as error:
            self.show_error(str(error))
            return
        changed = settings != self._app_settings
        reload = settings.without_cache_settings() != self._app_settings.without_cache_settings()
        self._app_settings = settings
        if changed:
            self._controller.set_settings(settings)
        if reload:
            self._model_info = None
            self._controller.load()

    # =============================================================== errors

    def show_error(self, sentence: str, details: str = "") -> ErrorDialog:
        """Show an error as one sentence with expandable details (non-blocking, window-modal)."""
        LOG.warning("error shown: %s", sentence)
        dialog = ErrorDialog(sentence, details, parent=self)
        self.error_dialogs.append(dialog)
        dialog.finished.connect(lambda _result, shown=dialog: self._forget_dialog(shown))
        dialog.open()
        self.errorShown.emit(sentence)
        return dialog

    def _forget_dialog(self, dialog: ErrorDialog) -> None:
        if dialog in self.error_dialogs:
            self.error_dialogs.remove(dialog)

    # ========================================================= status & keys

    def _on_zoom_changed(self, factor: float) -> None:
        self.zoom_label.setText(f"{factor * 100:.0f} %")

    def _on_pointer_moved(self, column: int, row: int) -> None:
        width, height = self.canvas.photo_size()
        inside = 0 <= column < width and 0 <= row < height
        self.pixel_label.setText(f"x {column}, y {row}" if inside else "")

    def _on_brush_size_changed(self, size: float) -> None:
        self.brush_size_spin.blockSignals(True)
        self.brush_size_spin.setValue(round(size))
        self.brush_size_spin.blockSignals(False)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Hold Tab to see the original: Tab normally moves focus, so it is caught
        # application-wide while this window is active and no text field has focus.
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and isinstance(event, QKeyEvent):
            if (
                event.key() == Qt.Key.Key_Tab
                and event.modifiers() == Qt.KeyboardModifier.NoModifier
                and self.isActiveWindow()
                and not _is_text_input(QApplication.focusWidget())
            ):
                if not event.isAutoRepeat():
                    self.canvas.set_show_original(kind == QEvent.Type.KeyPress)
                return True
        elif kind == QEvent.Type.WindowDeactivate and watched is self:
            self.canvas.set_show_original(False)
        return super().eventFilter(watched, event)


def stopped_result_worth_keeping(result) -> bool:
    """Whether a stopped run's result joins the history: at least ``KEEP_STOPPED_FRACTION`` of its
    iterations ran (and at least one)."""
    done, total = int(result.steps_done), int(result.total_steps)
    return done >= 1 and (total <= 0 or done >= KEEP_STOPPED_FRACTION * total)


def _job_signature(job: RestoreJob) -> tuple:
    """What makes two restore requests the same (the photo by identity, the mask by content)."""
    mask = None if job.mask is None else (job.mask.shape, job.mask.tobytes())
    region = None if job.roi is None else tuple(int(value) for value in job.roi)  # None: the whole photo
    return (
        id(job.image), job.task, region, mask, job.sr_factor, job.grayscale,
        job.class_index, job.preset, job.quick, job.seed, job.iteration_scale,
        job.detail_strength, job.allow_large,
    )


def _separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
