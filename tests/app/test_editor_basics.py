"""Editor basics: the close prompt, what runs is what is shown, history, focus, wheel, Help, New."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from dgp_studio import main_window
from dgp_studio.class_picker import AUTO_LABEL
from dgp_studio.history import HistoryEntry
from dgp_studio.main_window import CLOSE_CANCEL, CLOSE_DISCARD, CLOSE_SAVE, stopped_result_worth_keeping
from engine.resources import imagenet_class_names

REAL_ASK = main_window.ask_before_closing  # read before the autouse fixture answers in its place


def fake_entry(window, photo, *, task="colorize", class_name="Auto", cancelled=False, result=None):
    """A history entry of the open photo, as a run would add it (no engine needed)."""
    return HistoryEntry(
        composite=photo,
        image=photo[:32, :32],
        task=task,
        class_index=None,
        class_name=class_name,
        seconds=2.0,
        cancelled=cancelled,
        source_path=None if window.photo_path() is None else str(window.photo_path()),
        photo_serial=window.photo_serial(),
        result=result,
        photo_name=window.photo_name(),
    )


def answer_with(monkeypatch, answer):
    asked = []

    def ask(parent, sentence, *, can_save):
        asked.append(sentence)
        return answer

    monkeypatch.setattr(main_window, "ask_before_closing", ask)
    return asked


def run_and_wait(qtbot, window, *, timeout=180_000):
    with qtbot.waitSignal(window.runEnded, timeout=timeout):
        assert window.start_restore()


# ------------------------------------------------------------------ closing


def test_closing_with_unsaved_results_asks_and_cancel_keeps_the_window(make_window, photo, monkeypatch):
    window = make_window(wait_for_model=False)
    window.set_photo(photo, source_name="gradient.png")
    window.history.add_entry(fake_entry(window, photo))
    asked = answer_with(monkeypatch, CLOSE_CANCEL)
    assert not window.close()
    assert window.isVisible() and asked and "1 result(s)" in asked[0]
    asked = answer_with(monkeypatch, CLOSE_DISCARD)
    assert window.close()
    assert asked and not window.isVisible()


def test_no_prompt_when_nothing_is_unsaved(make_window, photo, monkeypatch):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    asked = answer_with(monkeypatch, CLOSE_CANCEL)
    assert window.close()
    assert asked == []


def test_save_writes_the_session_first_and_backing_out_of_the_name_keeps_the_window(
    make_window, photo, monkeypatch
):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    window.history.add_entry(fake_entry(window, photo))
    answer_with(monkeypatch, CLOSE_SAVE)
    saves = []
    monkeypatch.setattr(window.sessions, "save", lambda: saves.append(1))  # returns None: dialog cancelled
    assert not window.close() and window.isVisible() and saves == [1]
    monkeypatch.setattr(window.sessions, "save", lambda: saves.append(2) or 7)
    assert window.close() and saves == [1, 2]


def test_a_saved_session_needs_no_prompt_until_a_result_is_removed(make_window, photo, monkeypatch, qtbot, tmp_path):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    window.history.add_entry(fake_entry(window, photo))
    window.history.add_entry(fake_entry(window, photo, task="inpaint"))
    with qtbot.waitSignal(window.sessions.sessionSaved, timeout=60_000):
        window.sessions.save_to(tmp_path / "work.dgps", embed=False)
    assert not window.has_unsaved_work()
    window.history.remove_entry(window.history.entries()[0])
    assert window.has_unsaved_work()


def test_the_prompt_offers_save_discard_and_cancel(qtbot):
    ask = REAL_ASK
    seen = {}

    def click(button):
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen["buttons"] = {box.buttonRole(item) for item in box.buttons()}
        seen["text"] = box.text()
        box.button(button).click()

    QTimer.singleShot(100, lambda: click(QMessageBox.StandardButton.Discard))
    assert ask(None, "2 result(s) are not saved.", can_save=True) == CLOSE_DISCARD
    assert len(seen["buttons"]) == 3 and seen["text"] == "2 result(s) are not saved."
    QTimer.singleShot(100, lambda: click(QMessageBox.StandardButton.Cancel))
    assert ask(None, "x", can_save=True) == CLOSE_CANCEL
    QTimer.singleShot(100, lambda: click(QMessageBox.StandardButton.Save))
    assert ask(None, "x", can_save=True) == CLOSE_SAVE


def test_discard_cancels_a_running_restore_and_the_thread_ends(make_window, photo, monkeypatch, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(10.0)
    assert window.start_restore()
    qtbot.waitUntil(lambda: window.progress_panel.progress_bar.value() >= 1, timeout=120_000)
    asked = answer_with(monkeypatch, CLOSE_CANCEL)
    assert not window.close() and window.is_running()
    assert "A restoration is running" in asked[0]
    thread = window.engine_controller.thread
    answer_with(monkeypatch, CLOSE_DISCARD)
    assert window.close()
    assert not thread.isRunning()


# ------------------------------------------------------------ class choice


def test_a_search_that_hides_the_class_runs_what_the_picker_shows(make_window, photo, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    picker = window.class_picker
    picker.set_class_names(imagenet_class_names())  # the names BigGAN-128 lists
    yorkshire = picker.class_names().index("Yorkshire terrier")
    picker.set_selected_class(yorkshire)
    assert window.build_job().class_index == yorkshire
    qtbot.keyClicks(picker.search_field, "barn")
    shown = picker.class_list.currentItem()
    job = window.build_job()
    assert shown.text() == AUTO_LABEL
    assert job.class_index is None and picker.selected_class() is None
    assert "Auto" in picker.choice_label.text()


def test_the_class_does_not_carry_over_to_the_next_photo_unless_pinned(make_window, photo):
    window = make_window()
    picker = window.class_picker
    window.set_photo(photo)
    picker.set_selected_class(3)
    window.set_photo(photo[::-1].copy())
    assert picker.selected_class() is None
    picker.set_selected_class(3)
    picker.pin_check.setChecked(True)
    window.set_photo(photo.copy())
    assert picker.selected_class() == 3


def test_search_hint_and_down_moves_into_the_list(make_window, qtbot):
    window = make_window()
    picker = window.class_picker
    qtbot.keyClicks(picker.search_field, "xyz")
    assert not picker.no_match_label.isHidden()
    assert "No class matches" in picker.no_match_label.text() and "xyz" in picker.no_match_label.text()
    picker.search_field.clear()
    assert picker.no_match_label.isHidden()
    window.activateWindow()
    picker.search_field.setFocus()
    qtbot.waitUntil(picker.search_field.hasFocus, timeout=5000)
    qtbot.keyClick(picker.search_field, Qt.Key.Key_Down)
    assert picker.class_list.hasFocus()
    assert picker.class_list.currentRow() == 1


# ------------------------------------------------------------------ history


def test_save_result_as_proposes_the_name_of_the_results_own_photo(make_window, photo, tmp_path):
    window = make_window(wait_for_model=False)
    first, second = tmp_path / "beach.png", tmp_path / "forest.png"
    window.set_photo(photo, source_name=first.name, path=first)
    beach_result = fake_entry(window, photo)
    window.history.add_entry(beach_result)
    window.set_photo(photo[::-1].copy(), source_name=second.name, path=second)
    assert Path(window.suggested_result_path(beach_result)).name == "beach-colorize.png"


def test_results_stay_grouped_by_photo_and_clicking_one_shows_its_photo(make_window, photo, tmp_path):
    window = make_window(wait_for_model=False)
    window.set_photo(photo, source_name="beach.png")
    first = fake_entry(window, photo)
    window.history.add_entry(first)
    other = photo[::-1].copy()
    window.set_photo(other, source_name="forest.png")
    window.history.add_entry(fake_entry(window, other))
    window.set_photo(photo, source_name="beach.png")  # opened again: a new photo
    window.history.add_entry(fake_entry(window, photo))
    # A new result of the first photo joins its group.
    window.history.blockSignals(True)
    window.history.setCurrentRow(0)
    window.history.blockSignals(False)
    window.history.select_entry(first)
    assert window.photo_name() == "beach.png" and window.photo_serial() == first.photo_serial
    window.history.add_entry(fake_entry(window, photo, task="inpaint"))
    names = [entry.photo_name for entry in window.history.entries()]
    assert names == ["beach.png", "beach.png", "forest.png", "beach.png"]
    forest = window.history.entries()[2]
    window.history.select_entry(forest)
    assert window.photo_name() == "forest.png"
    np.testing.assert_array_equal(window.photo(), other)


def test_captions_are_readable_and_say_when_a_run_was_stopped(make_window, photo):
    window = make_window(wait_for_model=False)
    window.set_photo(photo, source_name="cat.jpg")
    entry = fake_entry(window, photo, task="sr", class_name="tabby")
    assert entry.caption().startswith("cat.jpg\nSuper-resolve \u00b7 tabby \u00b7 ")
    assert "\u2192" not in entry.caption()
    stopped = fake_entry(
        window, photo, cancelled=True, result=SimpleNamespace(steps_done=30, total_steps=120)
    )
    assert stopped.caption().endswith("stopped at 25 %")
    assert "Stopped by you after 30 of 120 iterations" in stopped.tooltip()


def test_remove_by_context_menu_action_and_by_delete(make_window, photo, qtbot):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    for task in ("colorize", "inpaint", "sr"):
        window.history.add_entry(fake_entry(window, photo, task=task))
    window.history.setCurrentRow(1)
    window.history.remove_action.trigger()  # the context menu's "Remove"
    assert [entry.task for entry in window.history.entries()] == ["colorize", "sr"]
    window.activateWindow()
    window.history.setFocus()
    qtbot.waitUntil(window.history.hasFocus, timeout=5000)
    qtbot.keyClick(window.history, Qt.Key.Key_Delete)
    assert window.history.count() == 1


def test_a_cache_hit_selects_the_entry_instead_of_adding_a_copy(make_window, photo, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    run_and_wait(qtbot, window)
    window.history.add_entry(fake_entry(window, photo, task="inpaint"))  # select something else
    run_and_wait(qtbot, window)
    assert window.last_result_from_cache
    assert window.history.count() == 2
    assert window.history.current_entry() is window.history.entries()[0]


def test_a_cancel_after_one_iteration_adds_no_entry(make_window, photo, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(10.0)
    assert window.start_restore()
    bar = window.progress_panel.progress_bar
    qtbot.waitUntil(lambda: bar.value() >= 1, timeout=120_000)
    with qtbot.waitSignal(window.runEnded, timeout=60_000):
        window.cancel_restore()
    assert window.history.count() == 0
    assert "too early" in window.progress_panel.status_label.text()
    assert not stopped_result_worth_keeping(SimpleNamespace(steps_done=1, total_steps=300))
    assert stopped_result_worth_keeping(SimpleNamespace(steps_done=15, total_steps=300))


# --------------------------------------------------------- screen & focus


def test_a_new_photo_clears_the_previous_runs_display(make_window, photo, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("colorize")
    run_and_wait(qtbot, window)
    panel = window.progress_panel
    window.split_slider.setValue(400)
    assert panel.sparkline.values() and panel.model_target_tile.image() is not None
    window.set_photo(photo[::-1].copy())
    assert panel.status_label.text() == "Idle." and not panel.sparkline.values()
    assert panel.model_output_tile.image() is None and panel.model_target_tile.image() is None
    assert panel.details.isHidden() and window.split_slider.value() == 0
    assert window.canvas.split_fraction() == 0


def test_after_a_restore_the_keyboard_is_not_in_the_brush_size_box(make_window, photo, qtbot):
    window = make_window()
    window.set_photo(photo)
    window.task_panel.set_task("defend")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    window.restore_button.setFocus()
    qtbot.waitUntil(window.restore_button.hasFocus, timeout=5000)
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        qtbot.mouseClick(window.restore_button, Qt.MouseButton.LeftButton)
    assert QApplication.focusWidget() is not window.brush_size_spin
    assert window.brush_size_spin.focusPolicy() == Qt.FocusPolicy.ClickFocus


def test_the_wheel_over_an_unfocused_combo_box_scrolls_instead_of_changing_it(make_window, qtbot):
    window = make_window()
    combo = window.task_panel.preset_combo
    window.task_panel.set_task("sr")
    factor = window.task_panel.sr_factor_combo
    before = (combo.currentIndex(), factor.currentIndex())

    def wheel(widget):
        event = QWheelEvent(
            QPointF(4, 4), QPointF(widget.mapToGlobal(QPoint(4, 4))), QPoint(0, -120), QPoint(0, -120),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
        )
        QApplication.sendEvent(widget, event)

    window.canvas.setFocus()
    wheel(combo)
    wheel(factor)
    assert (combo.currentIndex(), factor.currentIndex()) == before
    assert factor.focusPolicy() == Qt.FocusPolicy.StrongFocus
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    factor.setFocus()
    qtbot.waitUntil(factor.hasFocus, timeout=5000)
    wheel(factor)
    assert factor.currentIndex() != before[1]


# ---------------------------------------------------------------- help, new


def test_the_shortcut_sheet_lists_every_actions_shortcut(make_window):
    window = make_window(wait_for_model=False)
    dialog = window.shortcuts_dialog()
    rows = dict(dialog.rows())
    assert rows["Open"] == window.open_action.shortcut().toString()
    with_keys = [action for action in window.actions() if action.shortcuts()]
    assert len(with_keys) > 20
    for action in with_keys:
        assert action.shortcuts()[0].toString() in " ".join(rows.values()), action.text()
    dialog.deleteLater()


def test_about_names_version_model_and_licences(make_window):
    from engine import __version__

    window = make_window()
    dialog = window.about_dialog()
    text = dialog.text_label.text()
    info = window.model_info()
    assert __version__ in text and info.display_name in text
    assert info.identity and info.identity in text
    assert "LICENSES.md" in text and "PySide6" in text and "PyTorch" in text
    dialog.deleteLater()


def test_the_guide_opens_the_readme(make_window, monkeypatch):
    window = make_window(wait_for_model=False)
    opened = []
    monkeypatch.setattr(
        "dgp_studio.help_dialogs.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile()) or True
    )
    window.guide_action.trigger()
    assert opened and Path(opened[0]).name == "README.md" and Path(opened[0]).is_file()


def test_close_photo_and_new_bring_the_welcome_panel_back(make_window, photo, monkeypatch):
    window = make_window(wait_for_model=False)
    window.set_photo(photo)
    window.history.add_entry(fake_entry(window, photo))
    window.close_photo_action.trigger()
    assert window.photo() is None
    assert window.canvas_stack.currentWidget() is window.welcome_panel
    assert window.history.count() == 1  # closing the photo keeps its results
    window.set_photo(photo)
    asked = answer_with(monkeypatch, CLOSE_CANCEL)
    window.new_action.trigger()
    assert asked and window.photo() is not None and window.history.count() == 1
    answer_with(monkeypatch, CLOSE_DISCARD)
    window.new_action.trigger()
    assert window.photo() is None and window.history.count() == 0
    assert window.canvas_stack.currentWidget() is window.welcome_panel
    assert not window.has_unsaved_work()
