"""The main window end to end over the tiny model: open, paint, restore, cancel, compare, save, errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from dgp_studio.imaging import rgb_to_qimage
from dgp_studio.main_window import ErrorDialog
from engine.errors import BadInputError
from tests.conftest import make_tiny_biggan

REPO_ROOT = Path(__file__).resolve().parents[2]


def paint_blob(window, centre=(30, 22), diameter=10):
    layer = window.mask_layer()
    layer.begin_stroke(QPointF(*centre), diameter=diameter, erase=False)
    layer.end_stroke()


def focus_canvas(qtbot, window):
    """Make the window active (shortcuts need it) and give the canvas the keyboard."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    window.canvas.setFocus()


def run_and_wait(qtbot, window, *, timeout=180_000):
    with qtbot.waitSignal(window.runEnded, timeout=timeout):
        assert window.start_restore()


def test_quick_inpaint_streams_frames_updates_progress_and_lands_in_history(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    paint_blob(window)
    window.task_panel.set_task("inpaint")
    run_and_wait(qtbot, window)
    assert not window.error_dialogs
    assert window.frames_shown >= 1
    bar = window.progress_panel.progress_bar
    assert bar.maximum() > 1 and bar.value() == bar.maximum()
    assert len(bar.stage_starts()) >= 1  # stage ticks
    assert len(window.progress_panel.sparkline.values()) == bar.maximum()
    assert window.progress_panel.model_target_tile.image() is not None
    [entry] = window.history.entries()
    assert entry.task == "inpaint" and not entry.cancelled
    assert entry.composite.shape == photo.shape  # the full-resolution composite
    # Inpainting keeps every pixel far from the painted blob.
    np.testing.assert_array_equal(entry.composite[:, 50:], photo[:, 50:])
    assert window.canvas.has_result() and window.canvas.result_visible()
    assert window.restore_button.isEnabled() and not window.cancel_action.isEnabled()


def test_auto_class_shows_top_five_and_a_click_reruns_with_that_class(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("colorize")
    assert window.class_picker.selected_class() is None
    run_and_wait(qtbot, window)
    first = window.history.entries()[0]
    buttons = window.class_picker.suggestion_buttons
    assert len(buttons) == 5
    suggested = [button.property("class_index") for button in buttons]
    assert suggested[0] == first.class_index  # the prior's choice heads the list
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        qtbot.mouseClick(buttons[3], Qt.MouseButton.LeftButton)
    second = window.history.entries()[-1]
    assert window.history.count() == 2
    assert second.class_index == suggested[3] != first.class_index
    assert window.class_picker.selected_class() == suggested[3]


def test_cancel_ends_the_run_within_an_iteration_and_the_app_stays_usable(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(10.0)
    assert window.start_restore()
    bar = window.progress_panel.progress_bar
    # A stopped result is kept from 5 % of the iterations on.
    qtbot.waitUntil(lambda: bar.maximum() > 1 and bar.value() >= 0.06 * bar.maximum(), timeout=120_000)
    assert window.cancel_action.isEnabled()
    focus_canvas(qtbot, window)
    started = time.perf_counter()
    with qtbot.waitSignal(window.runEnded, timeout=60_000):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert time.perf_counter() - started < 30
    [entry] = window.history.entries()
    assert entry.cancelled and "stopped at" in entry.caption()
    assert bar.value() < bar.maximum()
    # Usable afterwards: a short run completes normally.
    window.task_panel.iteration_scale_spin.setValue(1.0)
    run_and_wait(qtbot, window)
    assert window.history.count() == 2 and not window.history.entries()[-1].cancelled


def test_ctrl_enter_starts_a_run(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("defend")
    focus_canvas(qtbot, window)
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.history.entries()[0].task == "defend"


def test_inpaint_without_a_mask_explains_instead_of_running(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("inpaint")
    with qtbot.waitSignal(window.errorShown, timeout=5000) as shown:
        assert not window.start_restore()
    assert "Paint the missing region" in shown.args[0]
    assert not window.is_running()
    assert isinstance(window.error_dialogs[-1], ErrorDialog)


def test_an_engine_error_shows_a_dialog_not_a_crash(make_window, qtbot, photo):
    def broken_factory(settings):
        raise BadInputError("mymodel.pth is not a BigGAN checkpoint.")

    window = make_window(engine_factory=broken_factory, wait_for_model=False)
    qtbot.waitUntil(lambda: bool(window.error_dialogs), timeout=30_000)
    dialog = window.error_dialogs[-1]
    assert dialog.text() == "mymodel.pth is not a BigGAN checkpoint."
    assert dialog.isVisible()
    dialog.done(0)
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    with qtbot.waitSignal(window.runEnded, timeout=30_000):
        assert window.start_restore()
    assert (
        window.error_dialogs and window.error_dialogs[-1].text() == "mymodel.pth is not a BigGAN checkpoint."
    )
    assert window.restore_button.isEnabled()


def test_unexpected_errors_keep_their_traceback_in_the_details(
    make_window, qtbot, photo, tiny_engine_factory
):
    def factory(settings):
        engine = tiny_engine_factory(settings)

        def restore(request, **kwargs):
            raise ZeroDivisionError("division by zero")
            yield  # pragma: no cover - makes this a generator

        engine.restore = restore
        return engine

    window = make_window(engine_factory=factory)
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    run_and_wait(qtbot, window)
    dialog = window.error_dialogs[-1]
    assert (
        dialog.text()
        == "The engine stopped because of an unexpected error (ZeroDivisionError: division by zero)."
    )
    assert "Traceback" in dialog.detailedText()


def test_opening_a_file_that_is_not_an_image_shows_one_sentence(make_window, qtbot, tmp_path):
    window = make_window(wait_for_model=False)
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture", encoding="utf-8")
    with qtbot.waitSignal(window.errorShown, timeout=60_000) as shown:
        window.open_path(bogus)
    assert "notes.png" in shown.args[0]
    assert window.photo() is None


def test_open_by_path_and_by_drop_loads_the_photo_and_remembers_it(make_window, qtbot, tmp_path, photo):
    window = make_window(wait_for_model=False)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    Image.fromarray(photo).save(first)
    Image.fromarray(photo[::-1].copy()).save(second)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        window.open_path(first)
    np.testing.assert_array_equal(window.photo(), photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(second))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the QPoint overload is the only one
        enter = QDragEnterEvent(
            QPoint(20, 20),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    QApplication.sendEvent(window.canvas.viewport(), enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.photoOpened, timeout=60_000) as opened:
        QApplication.sendEvent(window.canvas.viewport(), drop)
    assert opened.args == ["second.png"]
    np.testing.assert_array_equal(window.photo(), photo[::-1])
    assert window.recent_files()[:2] == [str(second.resolve()), str(first.resolve())]
    assert window.canvas.roi() == (8, 0, 48)  # the largest centred square of 64 × 48


def test_the_status_bar_says_when_a_photo_has_opened(make_window, qtbot, tmp_path, photo):
    window = make_window()
    path = tmp_path / "cup.png"
    Image.fromarray(photo).save(path)
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        window.open_path(path)
    assert messages[0] == "Opening cup.png\u2026"
    assert window.statusBar().currentMessage() == "Opened cup.png (64 \u00d7 48)."


def numbered_classes_factory(settings):
    """The tiny model with class names and ImageNet-style numbers that differ from its indices."""
    from engine.api import Engine, load_model

    generator, discriminator = make_tiny_biggan()
    numbered = dataclasses.replace(
        generator.config,
        class_names=tuple(f"kind {letter}" for letter in "abcdefghij"),
        class_imagenet_indices=tuple(range(500, 510)),
    )
    generator.config = discriminator.config = numbered
    return Engine(load_model((generator, discriminator)), device="cpu", precision="fp32", threads=1)


def test_classes_are_shown_by_their_numbers_and_only_auto_says_the_prior_chose(make_window, qtbot, photo):
    window = make_window(engine_factory=numbered_classes_factory)
    assert window.class_picker.class_text(2) == "502 \u00b7 kind c"
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(0.05)
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    window.class_picker.set_selected_class(2)
    run_and_wait(qtbot, window)
    picked = window.history.entries()[-1]
    assert not [message for message in messages if "prior" in message]  # the user chose it
    assert picked.class_number == 502 and "Class: 502 \u00b7 kind c" in picked.tooltip()

    window.class_picker.set_selected_class(None)
    run_and_wait(qtbot, window)
    chosen = window.history.entries()[-1]
    number, name = 500 + chosen.class_index, "kind " + "abcdefghij"[chosen.class_index]
    assert f"The prior chose {number} \u00b7 {name}." in messages
    assert chosen.class_number == number and f"Class: {number} \u00b7 {name}" in chosen.tooltip()
    assert not [message for message in messages if f"class {chosen.class_index}" in message]


def test_transparent_pixels_start_the_mask(make_window, qtbot, tmp_path, photo):
    window = make_window(wait_for_model=False)
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, dtype=np.uint8)])
    rgba[5:15, 10:20, 3] = 0
    path = tmp_path / "holes.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        window.open_path(path)
    expected = np.zeros(photo.shape[:2], dtype=np.uint8)
    expected[5:15, 10:20] = 1
    np.testing.assert_array_equal(window.mask_layer().array, expected)
    window.undo_action.trigger()  # undoable like any edit
    assert window.mask_layer().is_empty()


def test_exported_mask_imports_back_as_one_undo_step(make_window, qtbot, tmp_path, photo):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    paint_blob(window, diameter=14)
    painted = window.mask_layer().array.copy()
    target = tmp_path / "mask.png"
    window.mask_layer().export_png(target)
    window.clear_mask()
    assert window.mask_layer().is_empty()
    window.import_mask(target)
    qtbot.waitUntil(lambda: not window.mask_layer().is_empty(), timeout=60_000)
    np.testing.assert_array_equal(window.mask_layer().array, painted)
    window.undo_action.trigger()
    assert window.mask_layer().is_empty()
    small = tmp_path / "small.png"
    Image.fromarray(np.full((10, 10), 255, dtype=np.uint8)).save(small)
    with qtbot.waitSignal(window.errorShown, timeout=60_000) as shown:
        window.import_mask(small)
    assert "small.png" in shown.args[0]


def test_paste_from_the_clipboard_opens_the_image(make_window, qtbot, photo):
    window = make_window(wait_for_model=False)
    QGuiApplication.clipboard().setImage(rgb_to_qimage(photo))
    with qtbot.waitSignal(window.photoOpened, timeout=5000):
        window.paste_from_clipboard()
    np.testing.assert_array_equal(window.photo(), photo)


def test_undo_and_redo_shortcuts_act_on_strokes(make_window, qtbot, photo):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    paint_blob(window)
    painted = window.mask_layer().array.copy()
    focus_canvas(qtbot, window)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.mask_layer().is_empty()
    qtbot.keyClick(
        window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    np.testing.assert_array_equal(window.mask_layer().array, painted)


def test_brackets_change_the_brush_size(make_window, qtbot, photo):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    focus_canvas(qtbot, window)
    size = window.canvas.brush_size()
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert window.canvas.brush_size() > size
    assert window.brush_size_spin.value() == round(window.canvas.brush_size())
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    assert window.canvas.brush_size() == pytest.approx(size)


def test_hold_tab_shows_the_original_and_the_split_slider_compares(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("reconstruct")
    run_and_wait(qtbot, window)
    assert window.canvas.result_visible()
    focus_canvas(qtbot, window)
    qtbot.keyPress(window.canvas, Qt.Key.Key_Tab)
    assert not window.canvas.result_visible()
    qtbot.keyRelease(window.canvas, Qt.Key.Key_Tab)
    assert window.canvas.result_visible()
    window.split_slider.setValue(500)
    assert window.canvas.split_fraction() == pytest.approx(0.5)


def test_saving_writes_the_full_resolution_composite_and_protects_the_original(
    make_window, qtbot, tmp_path, photo
):
    window = make_window()
    original = tmp_path / "photo.png"
    Image.fromarray(photo).save(original)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        window.open_path(original)
    window.task_panel.set_task("reconstruct")
    run_and_wait(qtbot, window)
    entry = window.history.current_entry()
    for name in ("result.png", "result.webp"):
        target = tmp_path / name
        with qtbot.waitSignal(window.resultSaved, timeout=60_000):
            window.save_result_to(target)
        saved = np.asarray(Image.open(target).convert("RGB"))
        assert saved.shape == photo.shape
        if name.endswith(".png"):
            np.testing.assert_array_equal(saved, entry.composite)
    # Without the user's yes the original is never replaced ...
    with qtbot.waitSignal(window.errorShown, timeout=60_000) as shown:
        window.save_result_to(original, overwrite=True)
    assert "original" in shown.args[0]
    np.testing.assert_array_equal(np.asarray(Image.open(original).convert("RGB")), photo)
    # ... and with it, it is.
    with qtbot.waitSignal(window.resultSaved, timeout=60_000):
        window.save_result_to(original, overwrite=True, allow_original=True)
    np.testing.assert_array_equal(np.asarray(Image.open(original).convert("RGB")), entry.composite)


def test_save_dialog_asks_before_replacing_the_original(make_window, qtbot, tmp_path, photo, monkeypatch):
    window = make_window()
    original = tmp_path / "photo.png"
    Image.fromarray(photo).save(original)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        window.open_path(original)
    window.task_panel.set_task("reconstruct")
    run_and_wait(qtbot, window)
    asked = []
    monkeypatch.setattr("dgp_studio.main_window.QFileDialog.exec", lambda self: 1)
    monkeypatch.setattr("dgp_studio.main_window.QFileDialog.selectedFiles", lambda self: [str(original)])
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.StandardButton.No,
    )
    window.save_result_dialog()
    assert asked and "original photo" in asked[0]
    qtbot.wait(200)
    np.testing.assert_array_equal(np.asarray(Image.open(original).convert("RGB")), photo)


def test_closing_during_a_run_cancels_it_and_stops_the_thread(make_window, qtbot, photo, close_prompt_discards):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(10.0)
    assert window.start_restore()
    qtbot.waitUntil(lambda: window.progress_panel.progress_bar.value() >= 1, timeout=120_000)
    thread = window.engine_controller.thread
    started = time.perf_counter()
    window.close()  # the prompt is answered Discard
    assert time.perf_counter() - started < 30
    assert not thread.isRunning()
    assert close_prompt_discards and "A restoration is running" in close_prompt_discards[0]


def test_settings_changes_are_saved_and_reload_the_model(make_window, qtbot, isolated_user_folders):
    from dgp_studio.settings import AppSettings, load_settings

    window = make_window()
    new_settings = AppSettings(device="cpu", precision="fp32", threads=1)
    with qtbot.waitSignal(window.modelReady, timeout=60_000):
        window.apply_settings(new_settings)
    assert load_settings() == new_settings
    assert (isolated_user_folders / "settings.toml").exists()


def test_the_model_lists_its_classes_and_the_stage_table_follows_the_options(make_window, qtbot):
    window = make_window()
    assert window.class_picker.class_names() == [f"class {index}" for index in range(10)]
    window.task_panel.advanced.set_expanded(True)
    qtbot.waitUntil(lambda: window.task_panel.stage_table.rowCount() > 0, timeout=30_000)
    rows_before = [window.task_panel.stage_table.item(0, 1).text()]
    window.task_panel.iteration_scale_spin.setValue(3.0)
    qtbot.waitUntil(lambda: window.task_panel.stage_table.item(0, 1).text() != rows_before[0], timeout=30_000)
    assert int(window.task_panel.stage_table.item(0, 1).text()) > int(rows_before[0])


def test_the_preview_shows_the_degraded_input_at_model_resolution(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    qtbot.waitUntil(lambda: window.task_panel.preview_image() is not None, timeout=30_000)
    preview = window.task_panel.preview_image()
    assert preview.shape == (32, 32, 3)
    # Colorization asks the model to match a gray image.
    assert np.abs(preview[..., 0].astype(int) - preview[..., 1].astype(int)).max() <= 2


def test_the_preview_explains_a_missing_mask_in_a_sentence(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("inpaint")
    label = window.task_panel.preview_label
    qtbot.waitUntil(lambda: "mask" in label.text(), timeout=30_000)
    assert label.text()[0].isupper()


def test_the_window_module_does_not_import_torch_before_it_is_shown(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        started = time.perf_counter()
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from dgp_studio.main_window import MainWindow
        window = MainWindow()
        window.show()
        shown_after = time.perf_counter() - started
        # Checked before any event is processed: the engine thread starts loading (and
        # importing torch) only from the event loop, once the window is up.
        heavy = sorted(
            name for name in ("torch", "engine.api", "engine.dgp", "engine.imageio") if name in sys.modules
        )
        print("heavy:", heavy, "visible:", window.isVisible(), "shown after", round(shown_after, 2))
        window.shutdown()
    """)
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        DGP_STUDIO_CONFIG_DIR=str(tmp_path / "config"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "heavy: [] visible: True" in completed.stdout, completed.stdout


def test_main_delegates_cli_subcommands_and_starts_the_gui_otherwise(monkeypatch):
    import dgp_studio.__main__ as entry
    import engine.cli

    calls = []
    roots = []
    monkeypatch.setattr(
        engine.cli, "main", lambda argv, models_root=None: calls.append(("cli", argv)) or roots.append(models_root) or 7
    )
    monkeypatch.setattr(entry, "run_gui", lambda argv: calls.append(("gui", argv)) or 0)
    assert entry.main(["restore", "in.png", "--task", "colorize"]) == 7
    assert entry.main(["--version"]) == 7
    assert entry.main(["models"]) == 7
    assert entry.main(["holiday.jpg"]) == 0
    assert entry.main([]) == 0
    assert calls == [
        ("cli", ["restore", "in.png", "--task", "colorize"]),
        ("cli", ["--version"]),
        ("cli", ["models"]),
        ("gui", ["holiday.jpg"]),
        ("gui", []),
    ]
    # The model store defaults to the platform's per-user data folder.
    assert all(root is not None and root.name == "models" for root in roots)
