"""Morph keyframes: the thumbnails, the scrubbed ends and the frames are the same pixels."""

from __future__ import annotations

import numpy as np


def test_keyframe_thumbnails_equal_the_rendered_ends_bit_for_bit(make_window, fast_engine_factory, qtbot, photo):
    window = make_window(engine_factory=fast_engine_factory)
    window.set_photo(photo, source_name="gradient")
    window.task_panel.set_task("reconstruct")
    window.task_panel.iteration_scale_spin.setValue(0.05)
    window.class_picker.set_selected_class(1)
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        assert window.start_restore()
    (entry,) = window.history.entries()
    timeline = window.timeline
    # The same result as A and B.
    window.add_to_timeline(entry)
    window.add_to_timeline(entry)
    qtbot.waitUntil(
        lambda: len(timeline.keyframe_images()) == 2 and all(i is not None for i in timeline.keyframe_images()),
        timeout=60_000,
    )
    thumbnail_a, thumbnail_b = timeline.keyframe_images()
    assert np.array_equal(thumbnail_a, thumbnail_b)

    for position in (0.0, 1.0):
        timeline.set_position(position)
        qtbot.waitUntil(
            lambda p=position: timeline.preview_is_current() and timeline.shown_position() == p, timeout=60_000
        )
        assert np.array_equal(timeline.preview_image(), thumbnail_a), position
    timeline.frames_spin.setValue(3)
    with qtbot.waitSignal(timeline.framesReady, timeout=60_000):
        timeline.play()
    timeline.pause()
    frames = timeline.plan().rendered
    assert frames is not None and len(frames) == 3
    assert np.array_equal(frames[0], thumbnail_a) and np.array_equal(frames[-1], thumbnail_a)
    # ... and they are the engine's rendering of the state, which is the result's own image.
    engine = window._controller.worker.current_engine()
    assert np.array_equal(engine.render(entry.state), thumbnail_a)
    assert np.array_equal(entry.image, thumbnail_a)
