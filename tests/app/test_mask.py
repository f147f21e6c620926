"""Mask painting: exact brush geometry, undo per stroke stored as a region, files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from dgp_studio.mask import MaskLayer, PixelRect, paint_segment
from engine.errors import BadInputError


def expected_segment_pixels(shape, start, end, diameter):
    """Brute force: every pixel whose centre lies within diameter/2 of the segment."""
    rows, cols = np.indices(shape, dtype=np.float64)
    centre_x, centre_y = cols + 0.5, rows + 0.5
    (x0, y0), (x1, y1) = start, end
    seg_x, seg_y = x1 - x0, y1 - y0
    length_sq = seg_x**2 + seg_y**2
    t = (
        0.0
        if length_sq == 0
        else np.clip(((centre_x - x0) * seg_x + (centre_y - y0) * seg_y) / length_sq, 0, 1)
    )
    distance_sq = (centre_x - (x0 + t * seg_x)) ** 2 + (centre_y - (y0 + t * seg_y)) ** 2
    return distance_sq <= (diameter / 2) ** 2


@pytest.mark.parametrize(
    ("start", "end", "diameter"),
    [
        ((10.5, 10.5), (10.5, 10.5), 1.0),  # one click, 1 px brush: exactly one pixel
        ((3.2, 4.7), (25.9, 17.1), 5.0),
        ((-6.0, 8.0), (12.0, -3.0), 9.0),  # runs off the top-left corner
        ((30.0, 20.0), (30.0, 20.0), 12.5),
    ],
)
def test_paint_segment_matches_the_documented_distance_rule(start, end, diameter):
    mask = np.zeros((24, 36), dtype=np.uint8)
    touched = paint_segment(mask, start, end, diameter=diameter, value=1)
    expected = expected_segment_pixels(mask.shape, start, end, diameter)
    np.testing.assert_array_equal(mask.astype(bool), expected)
    rows, cols = np.nonzero(expected)
    assert touched == PixelRect(
        cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1
    )


def test_single_click_with_one_pixel_brush_paints_exactly_that_pixel():
    mask = np.zeros((5, 5), dtype=np.uint8)
    paint_segment(mask, (2.3, 3.6), (2.3, 3.6), diameter=1.0, value=1)
    assert mask.sum() == 1 and mask[3, 2] == 1


def test_stroke_paints_expected_pixels_and_one_undo_removes_exactly_it(qapp):
    layer = MaskLayer(60, 40)
    # An earlier stroke that the later one overlaps: undo must give it back intact.
    layer.begin_stroke(QPointF(12, 12), diameter=6, erase=False)
    layer.stroke_to(QPointF(20, 12))
    layer.end_stroke()
    after_first = layer.array.copy()

    path = [QPointF(15, 10), QPointF(30, 25), QPointF(45, 25)]
    layer.begin_stroke(path[0], diameter=4, erase=False)
    for point in path[1:]:
        layer.stroke_to(point)
    command = layer.end_stroke()
    assert command is not None

    expected_second = np.zeros((40, 60), dtype=bool)
    expected_second |= expected_segment_pixels((40, 60), (15, 10), (15, 10), 4)
    for a, b in itertools.pairwise(path):
        expected_second |= expected_segment_pixels((40, 60), (a.x(), a.y()), (b.x(), b.y()), 4)
    np.testing.assert_array_equal(layer.array.astype(bool), after_first.astype(bool) | expected_second)

    # The command keeps only the rectangle of pixels that changed, not the whole mask.
    changed = layer.array != after_first
    rows, cols = np.nonzero(changed)
    assert command.rect == PixelRect(
        cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1
    )
    assert command.before.shape == command.after.shape == (command.rect.height, command.rect.width)
    assert command.before.size < layer.array.size

    assert layer.undo_stack.count() == 2
    layer.undo_stack.undo()
    np.testing.assert_array_equal(layer.array, after_first)
    layer.undo_stack.redo()
    np.testing.assert_array_equal(layer.array.astype(bool), after_first.astype(bool) | expected_second)
    layer.undo_stack.undo()
    layer.undo_stack.undo()
    assert layer.is_empty()


def test_eraser_stroke_is_undone_by_one_undo(qapp):
    layer = MaskLayer(30, 30)
    layer.fill_rect(0, 0, 30, 30)
    assert layer.array.all()
    layer.begin_stroke(QPointF(15, 15), diameter=10, erase=True)
    layer.end_stroke()
    erased = ~layer.array.astype(bool)
    np.testing.assert_array_equal(erased, expected_segment_pixels((30, 30), (15, 15), (15, 15), 10))
    layer.undo_stack.undo()
    assert layer.array.all()


def test_overlay_image_follows_the_mask_and_its_undo(qapp):
    layer = MaskLayer(20, 10)
    layer.begin_stroke(QPointF(5.5, 5.5), diameter=1, erase=False)
    layer.end_stroke()
    overlay = layer.overlay_image()
    assert overlay.pixelColor(5, 5).alpha() == 255
    assert overlay.pixelColor(6, 5).alpha() == 0
    layer.undo_stack.undo()
    assert overlay.pixelColor(5, 5).alpha() == 0


def test_a_stroke_that_changes_nothing_adds_no_undo_step(qapp):
    layer = MaskLayer(20, 20)
    layer.begin_stroke(QPointF(5, 5), diameter=3, erase=True)  # erasing an empty mask
    assert layer.end_stroke() is None
    assert layer.undo_stack.count() == 0


def test_rectangle_clear_and_invert_are_single_undo_steps(qapp):
    layer = MaskLayer(16, 12)
    assert layer.fill_rect(2.0, 3.0, 6.0, 8.0)  # pixel centres 2.5…5.5 × 3.5…7.5
    expected = np.zeros((12, 16), dtype=np.uint8)
    expected[3:8, 2:6] = 1
    np.testing.assert_array_equal(layer.array, expected)
    assert layer.invert()
    np.testing.assert_array_equal(layer.array, 1 - expected)
    assert layer.clear()
    assert layer.is_empty()
    assert not layer.clear()  # nothing left to clear: no undo step
    layer.undo_stack.undo()
    np.testing.assert_array_equal(layer.array, 1 - expected)
    layer.undo_stack.undo()
    np.testing.assert_array_equal(layer.array, expected)


def test_exported_mask_reads_back_identically_with_the_engine_loader(qapp, tmp_path):
    from engine.imageio import load_mask

    layer = MaskLayer(40, 30)
    layer.begin_stroke(QPointF(8, 8), diameter=7, erase=False)
    layer.stroke_to(QPointF(33, 21))
    layer.end_stroke()
    target = tmp_path / "mask.png"
    layer.export_png(target)
    read_back = load_mask(target, size=(40, 30))
    np.testing.assert_array_equal(read_back >= 0.5, layer.array.astype(bool))


def test_replacing_with_a_mask_of_another_size_is_refused(qapp):
    layer = MaskLayer(20, 10)
    with pytest.raises(BadInputError, match="20 \u00d7 10"):
        layer.replace(np.ones((11, 20), dtype=np.uint8), text="Import mask")
    assert layer.undo_stack.count() == 0
