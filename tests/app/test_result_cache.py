"""The result cache in the app: a repeat is answered from disk, Run again recomputes, Clear frees."""

from __future__ import annotations

import tomllib
import warnings

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from dgp_studio.main_window import CACHE_HIT_MESSAGE
from dgp_studio.settings import (
    AppSettings,
    SettingsDialog,
    cache_dir,
    load_settings,
    save_settings,
)
from engine.cache import IMAGE_FILE, CacheEntryDroppedWarning
from engine.errors import BadInputError


def paint_blob(window, centre=(30, 22), diameter=10):
    layer = window.mask_layer()
    layer.begin_stroke(QPointF(*centre), diameter=diameter, erase=False)
    layer.end_stroke()


def run_and_wait(qtbot, window, *, recompute=False):
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        assert window.start_restore(recompute=recompute)


def cache_entries():
    return [item for item in cache_dir().iterdir() if item.is_dir() and not item.name.startswith(".")]


def test_the_cache_folder_is_redirected_and_the_size_round_trips(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DGP_STUDIO_CACHE_DIR")
    monkeypatch.setattr(
        "dgp_studio.settings.platformdirs.user_cache_dir", lambda appname, **_: str(tmp_path / appname)
    )
    assert cache_dir() == tmp_path / "dgp-studio" / "states"
    assert AppSettings().cache_max_mb == 2048
    written = save_settings(AppSettings(cache_max_mb=300))
    assert tomllib.loads(written.read_text(encoding="utf-8"))["cache_max_mb"] == 300
    assert load_settings().cache_max_mb == 300
    with pytest.raises(BadInputError, match="cache_max_mb = -1"):
        AppSettings(cache_max_mb=-1).validated()


def test_dialog_edits_the_cache_size_and_clear_reports_what_it_freed(qtbot):
    freed_bytes = [5 * 1024 * 1024]
    dialog = SettingsDialog(AppSettings(cache_max_mb=512), clear_cache=lambda: freed_bytes.pop())
    qtbot.addWidget(dialog)
    assert dialog.cache_spin.value() == 512
    dialog.cache_spin.setValue(1024)
    assert dialog.settings() == AppSettings(cache_max_mb=1024)
    dialog.clear_cache_button.click()
    assert dialog.cache_status_label.text() == "Freed 5.0 MB."


def test_a_repeated_restore_comes_from_the_cache_and_run_again_recomputes(make_window, qtbot, photo):
    window = make_window()
    worker = window.engine_controller.worker
    window.set_photo(photo, source_name="gradient")
    paint_blob(window)
    window.task_panel.set_task("inpaint")

    run_and_wait(qtbot, window)
    assert worker.restores_run == 1 and not window.last_result_from_cache
    assert len(cache_entries()) == 1

    frames_before = window.frames_shown
    run_and_wait(qtbot, window)
    assert worker.restores_run == 1  # answered without running the engine
    assert window.last_result_from_cache and window.frames_shown == frames_before
    assert window.statusBar().currentMessage() == CACHE_HIT_MESSAGE
    # The run is in the history already: the cache's answer selects it instead of adding a copy.
    [first] = window.history.entries()
    assert window.history.current_entry() is first
    window.history.remove_entry(first)
    run_and_wait(qtbot, window)
    assert worker.restores_run == 1 and window.last_result_from_cache
    [second] = window.history.entries()
    np.testing.assert_array_equal(second.composite, first.composite)
    np.testing.assert_array_equal(second.image, first.image)
    assert second.class_index == first.class_index and second.result.target.shape == first.result.target.shape
    assert window.canvas.has_result()

    # Another seed is another job: it runs.
    window.task_panel.seed_spin.setValue(window.task_panel.seed_spin.value() + 1)
    run_and_wait(qtbot, window)
    assert worker.restores_run == 2 and not window.last_result_from_cache
    assert len(cache_entries()) == 2

    # "Run again" recomputes the job the cache holds.
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        window.run_again_action.trigger()
    assert worker.restores_run == 3 and not window.last_result_from_cache
    assert window.statusBar().currentMessage() != CACHE_HIT_MESSAGE


def test_a_corrupt_entry_is_dropped_and_clearing_frees_the_cache(make_window, qtbot, photo):
    window = make_window()
    worker = window.engine_controller.worker
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("colorize")
    run_and_wait(qtbot, window)
    [entry] = cache_entries()
    (entry / IMAGE_FILE).write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_and_wait(qtbot, window)
    assert any(issubclass(item.category, CacheEntryDroppedWarning) for item in caught)
    assert worker.restores_run == 2 and not window.last_result_from_cache
    assert not window.error_dialogs
    assert len(cache_entries()) == 1  # the recomputed result replaced the dropped one

    dialog = SettingsDialog(AppSettings(), clear_cache=worker.clear_cache)
    qtbot.addWidget(dialog)
    assert dialog.clear_cache() > 0
    assert dialog.cache_status_label.text().startswith("Freed ")
    assert cache_entries() == []
    run_and_wait(qtbot, window)
    assert worker.restores_run == 3


def test_a_cache_size_of_zero_turns_the_cache_off(make_window, qtbot, photo):
    window = make_window()
    worker = window.engine_controller.worker
    window.apply_settings(AppSettings(device="cpu", precision="fp32", cache_max_mb=0))
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("colorize")
    run_and_wait(qtbot, window)
    run_and_wait(qtbot, window)
    assert worker.restores_run == 2 and cache_entries() == []
