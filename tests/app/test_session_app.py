"""Sessions in the window: save one, reopen it in a fresh window, and keep editing its results.

The user folders (settings, result cache, QSettings) live under the test's
``tmp_path`` (tests/app/conftest.py), so the result cache a light session
refers to is the test's own.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QMessageBox

from dgp_studio.settings import cache_dir


def largest_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(int) - b.astype(int))))


@pytest.fixture
def photo_file(tmp_path, photo) -> Path:
    path = tmp_path / "gradient.png"
    Image.fromarray(photo).save(path)
    return path


def open_file(window, qtbot, path: Path) -> None:
    with qtbot.waitSignal(window.photoOpened, timeout=30_000):
        window.open_path(path)


def restore(window, qtbot, class_index: int | None) -> None:
    window.class_picker.set_selected_class(class_index)
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        assert window.start_restore()


@pytest.fixture
def worked_on(make_window, fast_engine_factory, qtbot, photo_file):
    """A window with the photo opened from a file, a mask, a moved region, two inpaintings,
    a kept jitter of the first, all three on the morph timeline, and settings changed after."""
    window = make_window(engine_factory=fast_engine_factory)
    open_file(window, qtbot, photo_file)
    layer = window.mask_layer()
    layer.begin_stroke(QPointF(30, 20), diameter=9, erase=False)
    layer.end_stroke()
    window.canvas.set_roi(10, 2, 44)
    window.task_panel.set_task("inpaint")
    window.task_panel.iteration_scale_spin.setValue(0.05)
    restore(window, qtbot, 1)
    restore(window, qtbot, 4)
    first, second = window.history.entries()

    window.history.setCurrentRow(0)
    panel = window.studio_panel
    window.side_tabs.setCurrentWidget(panel)
    panel.tabs.setCurrentIndex(0)
    panel.count_spin.setValue(3)
    qtbot.waitUntil(lambda: panel.entry() is first and panel.jitter_grid.count() == 3, timeout=60_000)
    with qtbot.waitSignal(window.resultAdded, timeout=60_000) as added:
        panel.keep_variation(1)
    kept = added.args[0]
    assert kept.state.weight_delta is first.state.weight_delta

    for entry in (first, second, kept):
        window.add_to_timeline(entry)
    window.timeline.set_easing(1, "ease-in")
    window.timeline.frames_spin.setValue(10)
    window.timeline.fps_spin.setValue(12)
    window.timeline.ping_pong_check.setChecked(True)
    window.timeline.set_position(0.25)

    window.task_panel.set_task("sr")
    window.task_panel.set_sr_factor(8)
    window.task_panel.preset_combo.setCurrentIndex(2)  # a named preset, not the default
    window.task_panel.seed_spin.setValue(5)
    window.class_picker.set_selected_class(7)
    window.history.setCurrentRow(1)
    window.side_tabs.setCurrentIndex(0)  # the studio panel renders only while it is shown
    assert not window.error_dialogs
    return window


def save(window, qtbot, path: Path, *, embed: bool) -> Path:
    with qtbot.waitSignal(window.sessions.sessionSaved, timeout=60_000) as saved:
        assert window.sessions.save_to(path, embed=embed) is not None
    return Path(saved.args[0])


def reopen(make_window, fast_engine_factory, qtbot, path: Path):
    window = make_window(engine_factory=fast_engine_factory)
    with qtbot.waitSignal(window.sessions.sessionOpened, timeout=60_000):
        window.open_path(path)
    assert not window.error_dialogs, [dialog.text() for dialog in window.error_dialogs]
    return window


def jitter_images(window, qtbot, state, *, seed: int) -> list[np.ndarray]:
    """Three variations of ``state`` rendered on the window's engine thread."""
    answers: dict[int, list] = {}

    def keep(request_id: int, images: list, _states: list) -> None:
        answers[request_id] = images

    worker = window.studio.worker
    worker.jitterReady.connect(keep)
    try:
        request_id = window.studio.jitter(state, sigma=0.5, count=3, seed=seed)
        qtbot.waitUntil(lambda: request_id in answers, timeout=60_000)
    finally:
        worker.jitterReady.disconnect(keep)
    return answers[request_id]


def assert_same_window(before, after) -> None:
    assert np.array_equal(after.photo(), before.photo())
    assert np.array_equal(after.mask_layer().array, before.mask_layer().array)
    assert after.mask_layer().undo_stack.count() == 0  # reopening is not an edit to undo
    assert after.canvas.roi() == before.canvas.roi() == (10, 2, 44)
    assert after.task_panel.options() == before.task_panel.options()
    assert after.task_panel.task() == "sr" and after.task_panel.sr_factor() == 8
    assert after.task_panel.options().preset == before.task_panel.preset_combo.itemData(2) is not None
    assert after.class_picker.selected_class() == 7
    old, new = before.history.entries(), after.history.entries()
    assert [entry.caption() for entry in new] == [entry.caption() for entry in old]
    for a, b in zip(old, new):
        assert np.array_equal(a.composite, b.composite) and np.array_equal(a.image, b.image)
        assert (a.task, a.class_index, a.edit, a.finished_at) == (
            b.task,
            b.class_index,
            b.edit,
            b.finished_at,
        )
        assert b.photo_serial == after.photo_serial() and b.job.roi == a.job.roi
        assert np.array_equal(b.job.mask, a.job.mask)
    assert after.history.currentRow() == 1
    assert after.canvas.has_result()
    positions = {id(entry): index for index, entry in enumerate(new)}
    assert [positions[id(entry)] for entry in after.timeline.keyframe_entries()] == [0, 1, 2]
    assert after.timeline.easing() == ["linear", "ease-in"]
    assert (after.timeline.frame_count(), after.timeline.fps_spin.value()) == (10, 12)
    assert after.timeline.ping_pong_check.isChecked() and after.timeline.position() == 0.25
    assert after.timeline_dock.isVisible()


def test_a_session_with_embedded_states_reopens_as_it_was_and_stays_editable(
    worked_on, make_window, fast_engine_factory, qtbot, tmp_path, photo_file, monkeypatch
):
    import itertools

    clock = itertools.count(1)   # every save happens at a later time, even within one second
    monkeypatch.setattr("engine.session._now", lambda: f"2030-01-01T00:00:{next(clock):02d}+0000")
    before = worked_on
    path = save(before, qtbot, tmp_path / "project", embed=True)
    assert path == tmp_path / "project.dgps"
    assert before.sessions.current_path() == path and "project.dgps" in before.windowTitle()
    with zipfile.ZipFile(path) as archive:
        assert archive.read("image/original.png") == photo_file.read_bytes()
        assert len([name for name in archive.namelist() if name.endswith(".safetensors")]) == 3
        created_at = json.loads(archive.read("session.json"))["created_at"]

    after = reopen(make_window, fast_engine_factory, qtbot, path)
    assert_same_window(before, after)
    assert after.photo_path() == photo_file and "project.dgps" in after.windowTitle()
    assert str(path) in after.recent_files()
    assert after.sessions.current_path() == path and after.sessions.embeds()
    old, new = before.history.entries(), after.history.entries()
    assert (
        new[2].state.weight_delta is new[0].state.weight_delta
    )  # the kept jitter shares its parent's weights

    # Jitter works at once on the reopened states and gives the saved states' variations.
    for index in (0, 2):
        reopened = jitter_images(after, qtbot, new[index].state, seed=11)
        saved = jitter_images(before, qtbot, old[index].state, seed=11)
        assert all(largest_difference(a, b) <= 1 for a, b in zip(reopened, saved))
    # So does the morph: the start of the timeline is the first keyframe.
    timeline = after.timeline
    timeline.set_position(0.0)
    qtbot.waitUntil(
        lambda: timeline.preview_is_current() and timeline.shown_position() == 0.0, timeout=60_000
    )
    assert largest_difference(timeline.preview_image(), old[0].image) <= 1
    # And the studio panel edits the selected result.
    panel = after.studio_panel
    after.side_tabs.setCurrentWidget(panel)
    panel.tabs.setCurrentIndex(0)
    qtbot.waitUntil(
        lambda: panel.entry() is new[1] and panel.jitter_grid.count() == panel.count_spin.value(),
        timeout=60_000,
    )
    assert not after.error_dialogs

    # Save Session writes the current file again, with the same choice.
    with qtbot.waitSignal(after.sessions.sessionSaved, timeout=60_000) as resaved:
        after.sessions.save()
    assert resaved.args[0] == str(path)
    with zipfile.ZipFile(path) as archive:
        assert "image/original.png" in archive.namelist()
        assert json.loads(archive.read("session.json"))["created_at"] == created_at
    with qtbot.waitSignal(before.sessions.sessionSaved, timeout=60_000):
        before.sessions.save()   # the window that made the session saves it again
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("session.json"))["created_at"] == created_at
    # Opening another photo starts a new session: Save Session will ask for a name.
    open_file(after, qtbot, photo_file)
    assert after.sessions.current_path() is None


def test_a_light_session_finds_its_states_in_the_result_cache_and_names_what_it_cannot_find(
    worked_on, make_window, fast_engine_factory, qtbot, tmp_path, photo_file
):
    path = save(worked_on, qtbot, tmp_path / "light.dgps", embed=False)
    with zipfile.ZipFile(path) as archive:
        assert not any(name.startswith("image/") for name in archive.namelist())  # the photo is referenced
    assert "result cache" in worked_on.statusBar().currentMessage()

    after = reopen(make_window, fast_engine_factory, qtbot, path)
    assert_same_window(worked_on, after)
    entries = after.history.entries()
    assert all(entry.state is not None for entry in entries)
    reopened = jitter_images(after, qtbot, entries[1].state, seed=3)
    saved = jitter_images(worked_on, qtbot, worked_on.history.entries()[1].state, seed=3)
    assert all(largest_difference(a, b) <= 1 for a, b in zip(reopened, saved))

    # Without the cache the results come back as images, and the window says so.
    after.engine_controller.worker.clear_cache()
    assert not [item for item in cache_dir().iterdir() if len(item.name) == 64]
    bare = reopen(make_window, fast_engine_factory, qtbot, path)
    entries = bare.history.entries()
    assert len(entries) == 3 and all(entry.state is None for entry in entries)
    assert np.array_equal(entries[1].composite, worked_on.history.entries()[1].composite)
    assert bare.canvas.has_result()
    message = bare.statusBar().currentMessage()
    assert "3 of 3 results" in message and "without their model state" in message
    assert bare.timeline.keyframe_entries() == []

    # A moved photo that is not in the session: one sentence naming it, and the window is left as it was.
    photo_file.rename(tmp_path / "moved.png")
    moved = make_window(engine_factory=fast_engine_factory)
    with qtbot.waitSignal(moved.errorShown, timeout=60_000) as shown:
        moved.open_path(path)
    assert str(photo_file) in shown.args[0] and "moved or changed" in shown.args[0]
    assert moved.photo() is None and not moved.history.entries()


def test_a_session_opened_before_the_model_is_ready_gets_its_preset_and_class_once_it_is(
    worked_on, qtbot, tmp_path, fast_engine_factory
):
    from dgp_studio.main_window import MainWindow
    from dgp_studio.settings import AppSettings

    path = save(worked_on, qtbot, tmp_path / "early.dgps", embed=True)
    # As when the app is started with a session file: the window is not shown yet, so no model.
    window = MainWindow(
        app_settings=AppSettings(device="cpu", precision="fp32"), engine_factory=fast_engine_factory
    )
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.sessions.sessionOpened, timeout=60_000):
            window.open_path(path)
        assert window.model_info() is None and window.class_picker.selected_class() is None
        assert len(window.history.entries()) == 3 and window.task_panel.task() == "sr"
        window.resize(1100, 760)
        with qtbot.waitSignal(window.modelReady, timeout=60_000):
            window.show()
        assert window.class_picker.selected_class() == 7
        assert window.task_panel.options() == worked_on.task_panel.options()
        assert not window.error_dialogs
    finally:
        assert window.shutdown(timeout_ms=30_000)


def test_a_photo_that_moved_is_taken_from_the_session_and_its_own_bytes_stay_in_it(
    make_window, fast_engine_factory, qtbot, tmp_path, photo
):
    original = tmp_path / "holiday.jpg"
    Image.fromarray(photo).save(original, quality=85)
    window = make_window(engine_factory=fast_engine_factory)
    open_file(window, qtbot, original)
    path = save(window, qtbot, tmp_path / "trip.dgps", embed=True)
    original.rename(tmp_path / "elsewhere.jpg")

    after = reopen(make_window, fast_engine_factory, qtbot, path)
    assert np.array_equal(after.photo(), window.photo()) and after.photo_path() is None
    message = after.statusBar().currentMessage()
    assert str(original) in message and "moved or changed" in message and "trip.dgps" in message
    # Saved again without embedding: the photo's file is gone, so its bytes stay in the session.
    again = save(after, qtbot, tmp_path / "trip-again.dgps", embed=False)
    with zipfile.ZipFile(again) as archive:
        assert archive.read("image/original.jpg") == (tmp_path / "elsewhere.jpg").read_bytes()


def test_a_save_asked_for_during_a_restoration_is_written_even_if_the_window_closes(
    make_window, fast_engine_factory, qtbot, tmp_path, photo
):
    from engine.session import load_session

    window = make_window(engine_factory=fast_engine_factory)
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("reconstruct")
    assert window.start_restore()
    path = tmp_path / "closing.dgps"
    assert window.sessions.save_to(path, embed=False) is not None
    assert "when the running restoration ends" in window.statusBar().currentMessage()
    assert window.shutdown(timeout_ms=60_000)
    assert path.is_file() and load_session(path).image.name == "gradient"


def test_a_hostile_session_is_refused_and_writes_nothing(make_window, fast_engine_factory, qtbot, tmp_path):
    path = tmp_path / "inside" / "hostile.dgps"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("session.json", '{"format": "dgp-studio-session", "version": 1}')
        archive.writestr("../escaped.txt", "outside")
    window = make_window(engine_factory=fast_engine_factory)
    with qtbot.waitSignal(window.errorShown, timeout=60_000) as shown:
        window.open_path(path)
    assert str(path) in shown.args[0] and "'../escaped.txt'" in shown.args[0]
    assert not (tmp_path / "escaped.txt").exists() and window.photo() is None


def test_opening_a_session_over_unsaved_results_asks_first(worked_on, qtbot, tmp_path, monkeypatch):
    window = worked_on
    path = save(window, qtbot, tmp_path / "first.dgps", embed=False)
    restore(window, qtbot, 2)  # a result the session does not hold
    asked = []

    def answer(*args, **kwargs):
        asked.append(args[2])
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    assert window.sessions.open(path) is None
    assert len(asked) == 1 and "4 result(s)" in asked[0]
    assert len(window.history.entries()) == 4 and not window.sessions.is_busy()
