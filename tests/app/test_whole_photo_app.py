"""The app restores whole photos: live previews over the whole frame, SR drawn at the photo's scale, large results asked for."""

from __future__ import annotations

import numpy as np

from engine.tasks import LARGE_OUTPUT_PIXELS


def test_a_whole_photo_colorization_shows_previews_over_the_whole_frame(make_window, qtbot, photo):
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("colorize")
    assert not window.region_action.isChecked()
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        assert window.start_restore()
    [entry] = window.history.entries()
    assert entry.job.roi is None
    assert entry.composite.shape == photo.shape
    # The result covers the whole photo's rectangle on the canvas.
    item = window.canvas._result_item
    rect = item.sceneBoundingRect()
    assert (round(rect.width()), round(rect.height())) == (photo.shape[1], photo.shape[0])


def test_super_resolution_is_drawn_at_the_photos_scale(make_window, qtbot, photo):
    photo = np.ascontiguousarray(photo[:16, :22])        # two 16 px tiles: a quick plan
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("sr")
    window.task_panel.set_sr_factor(2)
    with qtbot.waitSignal(window.runEnded, timeout=300_000):
        assert window.start_restore()
    [entry] = window.history.entries()
    assert entry.composite.shape == (photo.shape[0] * 2, photo.shape[1] * 2, 3)
    rect = window.canvas._result_item.sceneBoundingRect()
    # 2x the pixels, drawn over exactly the photo (compare and hold-to-compare line up).
    assert (round(rect.left()), round(rect.top())) == (0, 0)
    assert (round(rect.width()), round(rect.height())) == (photo.shape[1], photo.shape[0])


def test_a_result_above_the_size_limit_is_asked_for_first(make_window, monkeypatch):
    window = make_window()
    side = int((LARGE_OUTPUT_PIXELS / 64) ** 0.5) + 8        # x8 of it is above the limit
    window.set_photo(np.zeros((side, side, 3), np.uint8), source_name="big")
    window.task_panel.set_task("sr")
    window.task_panel.set_sr_factor(8)
    asked = []
    monkeypatch.setattr(window, "ask_large_result", lambda text: asked.append(text) or False)
    assert not window.start_restore()
    assert asked and "MP" in asked[0]
    assert not window.history.entries()


def test_restricting_to_a_region_sends_the_region(make_window, photo):
    window = make_window()
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("colorize")
    assert window.build_job().roi is None
    window.region_action.setChecked(True)
    assert window.build_job().roi == window.canvas.roi()
