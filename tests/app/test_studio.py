"""The studio over the tiny model: jitter grid, class transfer and gallery, morph timeline, export.

Every edit is rendered on the engine thread from a real restore's state, so
the checks compare against what the engine produced for the history entries.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from dgp_studio.studio_jobs import EASINGS, timeline_position
from dgp_studio.timeline import playback_order

REPO_ROOT = Path(__file__).resolve().parents[2]


def largest_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(int) - b.astype(int))))


@pytest.fixture
def restored(make_window, fast_engine_factory, qtbot, photo):
    """``restored(classes)``: a window with one quick restore per class (None = Auto) in its history."""

    def build(classes=(None,)):
        window = make_window(engine_factory=fast_engine_factory)
        window.set_photo(photo, source_name="gradient")
        window.task_panel.set_task("reconstruct")
        window.task_panel.iteration_scale_spin.setValue(0.05)
        for class_index in classes:
            window.class_picker.set_selected_class(class_index)
            with qtbot.waitSignal(window.runEnded, timeout=180_000):
                assert window.start_restore()
        assert not window.error_dialogs
        assert len(window.history.entries()) == len(classes)
        return window

    return build


def show_studio(window, qtbot, tab: int):
    window.side_tabs.setCurrentWidget(window.studio_panel)
    window.studio_panel.tabs.setCurrentIndex(tab)
    qtbot.waitUntil(window.studio_panel.isVisible, timeout=5000)
    return window.studio_panel


# ------------------------------------------------------------------ jitter


def test_the_jitter_grid_shows_n_variations_and_a_click_keeps_one(restored, qtbot):
    window = restored()
    [parent] = window.history.entries()
    assert parent.result is not None and parent.state is parent.result.state  # the entry carries the result
    panel = show_studio(window, qtbot, tab=0)
    panel.count_spin.setValue(6)
    qtbot.waitUntil(lambda: panel.jitter_grid.count() == 6, timeout=60_000)
    images = panel.jitter_grid.images()
    assert all(image.shape == parent.image.shape for image in images)
    assert largest_difference(images[0], images[1]) > 1  # six different variations
    assert largest_difference(images[0], parent.image) > 1

    grid = panel.jitter_grid
    centre = grid.item_rect(2).center()
    with qtbot.waitSignal(window.resultAdded, timeout=60_000) as added:
        qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    kept = added.args[0]
    assert window.history.entries() == [parent, kept]
    assert "#3" in kept.caption() and "\u03c3 0.50" in kept.caption()
    # Same fine-tuned weights and class, the jittered z; its image is the clicked thumbnail.
    assert kept.state.weight_delta is parent.state.weight_delta
    assert kept.state.class_index == parent.state.class_index
    assert not np.array_equal(kept.state.z.numpy(), parent.state.z.numpy())
    assert largest_difference(kept.image, images[2]) <= 1
    # Put back into the photo at full resolution, like the restore itself.
    assert kept.composite.shape == parent.composite.shape
    assert window.canvas.has_result()
    # The studio keeps editing the parent, so more variations can be kept from the same grid.
    assert panel.entry() is parent and panel.jitter_grid.count() == 6
    assert panel.jitter_grid.captions()[2] == "#3 \u2713 kept"


def test_zero_strength_jitter_is_the_result_and_reseed_draws_new_variations(restored, qtbot):
    window = restored()
    [parent] = window.history.entries()
    panel = show_studio(window, qtbot, tab=0)
    panel.count_spin.setValue(3)
    qtbot.waitUntil(lambda: panel.jitter_grid.count() == 3, timeout=60_000)
    first = panel.jitter_grid.images()
    seed = panel.seed()
    panel.reseed()
    assert panel.seed() != seed
    qtbot.waitUntil(
        lambda: panel.jitter_grid.count() == 3
        and largest_difference(panel.jitter_grid.images()[0], first[0]) > 1,
        timeout=60_000,
    )
    panel.sigma_slider.setValue(0)
    qtbot.waitUntil(
        lambda: all(largest_difference(image, parent.image) <= 1 for image in panel.jitter_grid.images()),
        timeout=60_000,
    )
    assert panel.sigma_label.text() == "0.00"


# ---------------------------------------------------------------- transfer


def test_transfer_to_the_same_class_reproduces_the_result_and_picks_coalesce(restored, qtbot):
    window = restored(classes=(1,))
    [entry] = window.history.entries()
    panel = show_studio(window, qtbot, tab=1)
    with qtbot.waitSignal(panel.transferShown, timeout=60_000, check_params_cb=lambda index: index == 1):
        panel.class_picker.set_selected_class(1)
    same = panel.transfer_preview.image()
    assert same is not entry.image  # rendered by the engine, not the history's copy
    assert largest_difference(same, entry.image) <= 1

    rendered: list[int] = []
    window.studio.worker.transferReady.connect(lambda _id, index, _image: rendered.append(index))
    with qtbot.waitSignal(panel.transferShown, timeout=60_000, check_params_cb=lambda index: index == 9):
        for class_index in range(2, 10):  # as fast as a user pressing ↓ through the list
            panel.class_picker.set_selected_class(class_index)
    qtbot.waitUntil(lambda: bool(rendered) and rendered[-1] == 9, timeout=10_000)  # queued to this thread
    assert len(rendered) < 8  # stale picks were dropped, not rendered
    other = panel.transfer_preview.image()
    assert largest_difference(other, entry.image) > 1

    with qtbot.waitSignal(window.resultAdded, timeout=60_000) as added:
        panel.keep_transfer_button.click()
    kept = added.args[0]
    assert kept.class_index == 9 and "\u2192 class 9" in kept.caption()
    assert largest_difference(kept.image, other) <= 1


def test_a_gallery_of_the_top_five_and_of_an_index_range_saves_a_sheet(restored, qtbot, tmp_path):
    window = restored()  # Auto: the latent search ranks the classes
    [entry] = window.history.entries()
    top = [index for index, _loss in entry.result.top_classes[:5]]
    assert len(top) == 5
    panel = show_studio(window, qtbot, tab=1)
    with qtbot.waitSignal(panel.galleryShown, timeout=60_000):
        panel.render_gallery()  # the first mode: the top five
    assert panel.gallery_labels() == [f"{index} \u00b7 class {index}" for index in top]
    own = panel.gallery_grid.images()[top.index(entry.class_index)]
    assert largest_difference(own, entry.image) <= 1

    panel.gallery_mode.setCurrentIndex(panel.gallery_mode.findData("range"))
    panel.range_from.setValue(2)
    panel.range_to.setValue(7)
    with qtbot.waitSignal(panel.galleryShown, timeout=60_000) as shown:
        panel.gallery_button.click()
    assert shown.args == [6] and panel.gallery_grid.count() == 6
    assert panel.gallery_labels()[0] == "2 \u00b7 class 2"
    images = panel.gallery_grid.images()
    assert largest_difference(images[0], images[1]) > 1

    panel.gallery_mode.setCurrentIndex(panel.gallery_mode.findData("names"))
    panel.name_filter.setText("class 3")
    assert panel.gallery_classes() == ([3], "")
    panel.name_filter.setText("class 5, class 2, class 5")  # alternatives, each class once
    assert panel.gallery_classes() == ([5, 2], "")
    panel.name_filter.setText("terrier")
    assert panel.gallery_classes()[0] == [] and "terrier" in panel.gallery_classes()[1]

    sheet = tmp_path / "gallery.png"
    with qtbot.waitSignal(panel.sheetSaved, timeout=60_000):
        panel.save_sheet(sheet)
    with Image.open(sheet) as written:
        # Six 32 px cells in three columns and two rows, with padding and a caption strip.
        assert written.width > 3 * 32 and written.height > 2 * 32
        assert written.width < 3 * 48


# ------------------------------------------------------------------ layout


def test_with_the_timeline_docked_every_studio_tab_fits_a_900_pixel_screen(make_window, qtbot):
    window = make_window()
    restore_width = window.side_tabs.width()
    # A thousand classes, as the real models have: the gallery's range spin boxes grow to four digits.
    window.studio_panel.set_class_names([f"class name {index}" for index in range(1000)], range(1, 1001))
    window.timeline_dock.show()
    for tab in (0, 1):
        show_studio(window, qtbot, tab=tab)
        for mode in range(window.studio_panel.gallery_mode.count()):
            window.studio_panel.gallery_mode.setCurrentIndex(mode)
            QApplication.processEvents()
            # The pages scroll instead of setting the window's least height (a 1440 × 900 screen
            # leaves about 850 pixels below the panel and title bar).
            assert window.minimumSizeHint().height() < 800
            assert window.minimumSize().height() < 800
            # Showing a page does not widen the side panel, and no page is cut off at the side.
            assert window.side_tabs.width() == restore_width
            page = window.studio_panel.tabs.currentWidget()
            assert page.widget().minimumSizeHint().width() <= page.viewport().width()
    page = window.studio_panel.tabs.currentWidget()
    window.resize(window.width(), window.minimumSizeHint().height())
    QApplication.processEvents()
    assert page.verticalScrollBar().maximum() > 0  # the category page scrolls where it does not fit
    assert page.horizontalScrollBar().maximum() == 0  # but never sideways


# ---------------------------------------------------------------- timeline


def test_the_gui_timeline_mapping_matches_the_engines():
    from engine.export import EASING_KINDS, timeline_lambdas

    assert tuple(EASINGS) == tuple(EASING_KINDS)
    easing = ["linear", "ease-in-out", "ease-in"]
    frames = 13
    expected = timeline_lambdas(4, frames, easing=easing)
    mapped = [timeline_position(index / (frames - 1), 4, easing) for index in range(frames)]
    assert [segment for segment, _ in mapped] == [segment for segment, _ in expected]
    assert [lam for _, lam in mapped] == pytest.approx([lam for _, lam in expected], abs=1e-9)
    assert playback_order(4, ping_pong=True) == [0, 1, 2, 3, 2, 1]
    assert playback_order(4, ping_pong=False) == [0, 1, 2, 3]


def press_and_drag(bar, qtbot, start_x: float, end_x: float) -> None:
    y = bar.height() / 2
    qtbot.mousePress(bar, Qt.MouseButton.LeftButton, pos=QPoint(round(start_x), round(y)))
    move = QMouseEvent(
        QEvent.Type.MouseMove,
        QPointF(end_x, y),
        bar.mapToGlobal(QPointF(end_x, y)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(bar, move)
    qtbot.mouseRelease(bar, Qt.MouseButton.LeftButton, pos=QPoint(round(end_x), round(y)))


def wait_for_preview_at(qtbot, timeline, position: float) -> np.ndarray:
    qtbot.waitUntil(
        lambda: timeline.preview_is_current() and timeline.shown_position() == pytest.approx(position),
        timeout=60_000,
    )
    return timeline.preview_image()


def test_scrubbing_the_timeline_to_the_ends_shows_the_keyframes(restored, qtbot):
    window = restored(classes=(1, 4))
    first, second = window.history.entries()
    window.add_to_timeline(first)
    window.add_to_timeline(second)
    timeline = window.timeline
    assert window.timeline_dock.isVisible()
    assert [entry for entry in timeline.keyframe_entries()] == [first, second]
    bar = timeline.bar
    qtbot.waitUntil(lambda: bar.width() > 100, timeout=5000)

    # Drag from the middle to the far left: λ = 0 is keyframe A.
    press_and_drag(bar, qtbot, bar.x_of(0.5), 0)
    assert bar.position() == 0.0
    assert largest_difference(wait_for_preview_at(qtbot, timeline, 0.0), first.image) == 0
    # … and to the far right: λ = 1 is keyframe B.
    press_and_drag(bar, qtbot, 0, bar.width())
    assert bar.position() == 1.0
    assert largest_difference(wait_for_preview_at(qtbot, timeline, 1.0), second.image) == 0
    # Half way the morph is neither.
    timeline.set_position(0.5)
    middle = wait_for_preview_at(qtbot, timeline, 0.5)
    assert largest_difference(middle, first.image) > 1 and largest_difference(middle, second.image) > 1

    # Reordering makes B the first keyframe.
    timeline.move_keyframe(1, -1)
    assert timeline.keyframe_entries() == [second, first]
    timeline.set_position(0.0)
    assert largest_difference(wait_for_preview_at(qtbot, timeline, 0.0), second.image) == 0
    timeline.remove_keyframe(0)
    assert timeline.keyframe_entries() == [first] and not timeline.export_button.isEnabled()


def test_play_renders_the_frames_in_batches_and_steps_through_them(restored, qtbot):
    window = restored(classes=(1, 4))
    first, second = window.history.entries()
    for entry in (first, second, first):  # A → B → A: two segments
        window.add_to_timeline(entry)
    timeline = window.timeline
    timeline.set_easing(1, "ease-in-out")
    timeline.frames_spin.setValue(9)
    timeline.fps_spin.setValue(60)
    batches: list[tuple[int, int]] = []
    window.studio.worker.framesBatch.connect(lambda _id, start, frames: batches.append((start, len(frames))))
    with qtbot.waitSignal(timeline.framesReady, timeout=60_000):
        timeline.play()
    assert batches == [(0, 8), (8, 1)]
    frames = timeline.rendered_frames()
    assert largest_difference(frames[0], first.image) == 0
    assert largest_difference(frames[4], second.image) == 0  # the inner keyframe, exactly half way
    assert largest_difference(frames[8], first.image) == 0
    shown: list[float] = []
    qtbot.waitUntil(
        lambda: shown.append(timeline.position()) or len(set(shown)) >= 4, timeout=30_000
    )  # the playhead moves through the frames
    shown_image = timeline.preview_image()
    assert any(np.array_equal(shown_image, frame) for frame in frames)
    timeline.pause()
    assert not timeline.is_playing()


# ------------------------------------------------------------------ export


def timeline_of_two(window, frames: int):
    first, second = window.history.entries()
    window.add_to_timeline(first)
    window.add_to_timeline(second)
    window.timeline.frames_spin.setValue(frames)
    return first, second


def count_mp4_frames(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        decoded = [frame for frame in container.decode(video=0)]
    return len(decoded), (decoded[0].width, decoded[0].height)


@pytest.fixture
def out_folder(tmp_path) -> Path:
    """An empty folder for exports (``tmp_path`` also holds the test's settings)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_exporting_six_frames_as_gif_and_mp4_from_the_dialog(restored, qtbot, out_folder):
    window = restored(classes=(1, 4))
    timeline_of_two(window, frames=6)
    dialog = window.export_animation_dialog()
    assert dialog is not None and dialog.isVisible()
    dialog.set_format(".gif")
    dialog.set_path(out_folder / "morph")
    assert dialog.path() == out_folder / "morph.gif"
    with qtbot.waitSignal(dialog.exportEnded, timeout=120_000) as ended:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert ended.args == [str(out_folder / "morph.gif")]
    with Image.open(out_folder / "morph.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (32, 32)
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum()

    dialog.set_format(".mp4")
    dialog.set_upscale(2)
    assert dialog.path() == out_folder / "morph.mp4"
    with qtbot.waitSignal(dialog.exportEnded, timeout=120_000):
        assert dialog.start()
    count, size = count_mp4_frames(out_folder / "morph.mp4")
    assert count == 6 and size == (64, 64)
    assert "Saved" in dialog.status_label.text()
    assert sorted(path.name for path in out_folder.iterdir()) == ["morph.gif", "morph.mp4"]  # no leftovers


def test_cancelling_an_export_leaves_no_file(restored, qtbot, out_folder):
    window = restored(classes=(1, 4))
    timeline_of_two(window, frames=2000)
    dialog = window.export_animation_dialog()
    dialog.set_format(".mp4")
    dialog.set_upscale(8)
    dialog.set_path(out_folder / "long")
    assert dialog.start() and dialog.is_exporting()
    qtbot.waitUntil(lambda: dialog.progress_bar.value() >= 2, timeout=60_000)
    assert list(out_folder.iterdir())  # the hidden temporary file is being written
    with qtbot.waitSignal(dialog.exportEnded, timeout=60_000) as ended:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert ended.args == [None]
    assert list(out_folder.iterdir()) == []  # neither the MP4 nor its temporary file
    assert dialog.status_label.text() == "Cancelled: nothing was written."
    assert not dialog.is_exporting() and dialog.export_button.isEnabled()


def test_closing_the_window_during_an_export_stops_it_and_the_engine_thread(restored, qtbot, out_folder):
    window = restored(classes=(1, 4))
    timeline_of_two(window, frames=2000)
    dialog = window.export_animation_dialog()
    dialog.set_format(".gif")
    dialog.set_path(out_folder / "long")
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.progress_bar.value() >= 2, timeout=60_000)
    assert window.shutdown(timeout_ms=30_000)  # the engine thread ended: the export was cancelled
    from dgp_studio.worker import running_engine_threads

    assert running_engine_threads() == []
    assert list(out_folder.iterdir()) == []


# --------------------------------------------------------------- imports


def test_the_studio_modules_do_not_import_torch_or_the_engine():
    script = textwrap.dedent("""
        import sys
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        import dgp_studio.export_dialog, dgp_studio.studio_jobs, dgp_studio.studio_panel, dgp_studio.timeline
        heavy = sorted(name for name in ("torch", "engine.api", "engine.export", "engine.imageio")
                       if name in sys.modules)
        print("heavy:", heavy)
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    completed = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120,
        cwd=REPO_ROOT, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "heavy: []" in completed.stdout, completed.stdout
