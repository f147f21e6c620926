"""Tests for engine.blend: gradient-domain blending, the classical fills, areas and context squares."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blend import (
    DEFAULT_TOLERANCE,
    PaintedArea,
    connected_areas,
    context_square,
    harmonic_fill,
    mean_fill,
    poisson_blend,
    solve_laplace,
)
from engine.composite import RegionOfInterest, composite_inpainting
from engine.errors import BadInputError


def _smooth_photo(height: int, width: int) -> np.ndarray:
    """A smooth RGB image with structure in every channel (levels 40–215)."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 128 + 60 * np.sin(columns / 9.0) + 20 * np.cos(rows / 13.0)
    green = 120 + 50 * np.cos((rows + columns) / 11.0)
    blue = 100 + 0.8 * rows + 0.5 * columns
    return np.clip(np.rint(np.stack([red, green, blue], axis=-1)), 0, 255).astype(np.uint8)


def _textured_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-25, 26, size=(height, width, 3))
    return np.clip(_smooth_photo(height, width).astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _disc_mask(height: int, width: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    return (((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2) <= radius**2).astype(np.float32)


def _boundary_step(image: np.ndarray, hole: np.ndarray) -> float:
    """Mean absolute level difference over the 4-neighbour pairs with one pixel in the hole, one out."""
    image = image.astype(np.float64)
    steps = []
    for axis in (0, 1):
        inside = np.take(hole, range(hole.shape[axis] - 1), axis=axis)
        after = np.take(hole, range(1, hole.shape[axis]), axis=axis)
        crossing = inside != after
        difference = np.abs(np.diff(image, axis=axis))
        steps.append(difference[crossing])
    return float(np.concatenate(steps).mean())


def _laplace_residual(values: np.ndarray, hole: np.ndarray) -> float:
    """‖b − A·x‖ / ‖b‖ of the 5-point system, computed directly from the definition."""
    padded = np.pad(values.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    present = np.pad(np.ones(hole.shape), 1)
    padded_hole = np.pad(hole, 1)
    worst = 0.0
    for channel in padded:
        unknown_sum = np.zeros(hole.shape)
        known_sum = np.zeros(hole.shape)
        count = np.zeros(hole.shape)
        for row_step, column_step in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            window = (
                slice(1 + row_step, hole.shape[0] + 1 + row_step),
                slice(1 + column_step, hole.shape[1] + 1 + column_step),
            )
            neighbour_hole = padded_hole[window]
            unknown_sum += np.where(neighbour_hole, channel[window], 0.0)
            known_sum += np.where(neighbour_hole, 0.0, channel[window] * present[window])
            count += present[window]
        centre = channel[1:-1, 1:-1]
        residual = (known_sum - (count * centre - unknown_sum))[hole]
        worst = max(worst, float(np.linalg.norm(residual) / np.linalg.norm(known_sum[hole])))
    return worst


# ----------------------------------------------------------------------------- poisson_blend


def test_pixels_outside_the_hole_are_bit_identical_and_the_original_is_untouched() -> None:
    original = _textured_photo(48, 64)
    keep = original.copy()
    mask = _disc_mask(48, 64, (20, 30), 9)
    mask[40:44, 5:9] = 0.3  # soft paint below the threshold: known, kept
    mask[5:8, 50:60] = 0.5  # at the threshold: in the hole
    fill = np.random.default_rng(3).uniform(0, 255, size=(48, 64, 3))
    for result in (
        poisson_blend(original, mask, fill),
        harmonic_fill(original, mask),
        mean_fill(original, mask),
    ):
        outside = mask < 0.5
        np.testing.assert_array_equal(result[outside], original[outside])
        assert result.dtype == np.uint8 and result.shape == original.shape
        assert (result[~outside] != original[~outside]).any()
    np.testing.assert_array_equal(original, keep)


def test_a_fill_with_a_constant_colour_offset_comes_back_as_the_truth() -> None:
    truth = _textured_photo(50, 70, seed=1)
    mask = _disc_mask(50, 70, (25, 33), 14)
    mask[5:12, 55:66] = 1.0  # a second, separate hole
    corrupted = truth.copy()
    corrupted[mask >= 0.5] = 0  # nothing of the truth is left in the hole
    fill = truth.astype(np.float32) + np.array([23.0, -17.5, 9.25], dtype=np.float32)
    result = poisson_blend(corrupted, mask, fill)
    assert np.abs(result.astype(np.int64) - truth).max() <= 1


def test_the_fill_can_cover_only_a_box_and_be_uint8() -> None:
    truth = _textured_photo(60, 80, seed=2)
    mask = _disc_mask(60, 80, (30, 45), 8)
    box = (30, 15, 62, 47)
    fill = np.clip(truth[15:47, 30:62].astype(np.int64) + 12, 0, 255).astype(np.uint8)
    result = poisson_blend(truth, mask, fill, box=box)
    assert np.abs(result.astype(np.int64) - truth).max() <= 1
    roi = RegionOfInterest(left=30, top=15, size=32)
    np.testing.assert_array_equal(poisson_blend(truth, mask, fill, box=roi), result)


def test_painted_pixels_outside_the_fill_box_are_left_alone() -> None:
    original = _textured_photo(40, 60)
    mask = np.zeros((40, 60), dtype=np.float32)
    mask[10:20, 5:15] = 1.0  # inside the box
    mask[25:35, 40:55] = 1.0  # outside it
    fill = np.full((20, 20, 3), 200, dtype=np.uint8)
    result = poisson_blend(original, mask, fill, box=(0, 5, 20, 25))
    np.testing.assert_array_equal(result[25:35, 40:55], original[25:35, 40:55])
    assert (result[10:20, 5:15] != original[10:20, 5:15]).any()


def test_harmonic_fill_of_a_linear_ramp_is_the_ramp() -> None:
    rows, columns = np.mgrid[0:40, 0:56]
    ramp = np.stack([3 * columns + 20, 2 * rows + 30, columns + rows + 10], axis=-1).astype(np.uint8)
    mask = np.zeros((40, 56), dtype=np.float32)
    mask[6:34, 8:50] = 1.0
    original = ramp.copy()
    original[mask >= 0.5] = 255
    np.testing.assert_array_equal(harmonic_fill(original, mask), ramp)
    # A hole reaching the top edge has no boundary value there: zero flux across it, which a
    # ramp along the rows satisfies (red) and a ramp across them does not (green).
    mask[0:10, 20:30] = 1.0
    original[mask >= 0.5] = 255
    result = harmonic_fill(original, mask)
    np.testing.assert_array_equal(result[..., 0], ramp[..., 0])
    assert (result[0, 20:30, 1] > ramp[0, 20:30, 1]).all()


def test_mean_fill_uses_the_ring_around_each_hole() -> None:
    original = np.zeros((30, 40, 3), dtype=np.uint8)
    original[:, :20] = (10, 20, 30)
    original[:, 20:] = (200, 150, 100)
    original[0:3, 0:3] = (255, 255, 255)  # far from the holes: must not count
    mask = np.zeros((30, 40), dtype=np.float32)
    mask[10:15, 5:10] = 1.0
    mask[10:15, 28:34] = 1.0
    result = mean_fill(original, mask)
    assert (result[10:15, 5:10] == (10, 20, 30)).all()
    assert (result[10:15, 28:34] == (200, 150, 100)).all()
    # A hole across the colour edge takes the mean of its whole ring.
    mask = np.zeros((30, 40), dtype=np.float32)
    mask[10:20, 15:25] = 1.0
    ring = np.zeros((30, 40), dtype=bool)
    ring[7:23, 12:28] = True
    ring[10:20, 15:25] = False
    expected = np.rint(original[ring].mean(axis=0))
    assert (mean_fill(original, mask)[10:20, 15:25] == expected).all()


def test_no_seam_at_the_holes_edge_and_far_less_than_the_feathered_composite() -> None:
    truth = _smooth_photo(64, 64)
    mask = _disc_mask(64, 64, (32, 30), 15)
    hole = mask >= 0.5
    fill = np.clip(truth.astype(np.int64) + (40, -30, 35), 0, 255).astype(np.uint8)
    blended = poisson_blend(truth, mask, fill)
    feathered = composite_inpainting(
        truth, mask, RegionOfInterest(left=0, top=0, size=64), fill, feather_px=2
    )
    truth_step = _boundary_step(truth, hole)
    blended_step = _boundary_step(blended, hole)
    feathered_step = _boundary_step(feathered, hole)
    # The stated bound: the photo's own step across that edge plus one level.
    assert blended_step <= truth_step + 1.0
    assert feathered_step > 3 * blended_step


def test_the_solver_stops_at_the_stated_residual() -> None:
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 255, size=(3, 70, 90)).astype(np.float32)
    hole = np.zeros((70, 90), dtype=bool)
    hole[5:65, 8:80] = _disc_mask(60, 72, (30, 36), 34) >= 0.5
    hole[0:4, 40:50] = True  # touching the array's edge
    for tolerance in (1e-2, DEFAULT_TOLERANCE, 1e-5):
        solution = solve_laplace(values, hole, tolerance=tolerance)
        measured = _laplace_residual(solution.values, hole)
        assert measured <= tolerance * 1.01
        assert solution.relative_residual == pytest.approx(measured, rel=0.2, abs=1e-6)
        np.testing.assert_array_equal(solution.values[:, ~hole], values[:, ~hole])
    assert solution.levels > 1  # coarse-to-fine took part
    assert solution.iterations > solve_laplace(values, hole, tolerance=1e-2).iterations
    capped = solve_laplace(values, hole, tolerance=1e-5, max_iterations=1)
    assert capped.iterations == 1 and capped.relative_residual > 1e-5


@pytest.mark.timeout(120)
def test_a_1000_by_1000_hole_needs_few_iterations() -> None:
    # A 1000×1000 hole in a 1040×1040 image with random boundary values: plain CG
    # would need thousands of iterations here; the multigrid-preconditioned solve needs a
    # few dozen whatever the size, which keeps it at seconds (timed by the benchmark, not here).
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 255, size=(1040, 1040)).astype(np.float32)  # one channel: same iterations
    hole = np.zeros((1040, 1040), dtype=bool)
    hole[20:1020, 20:1020] = True
    solution = solve_laplace(values, hole)
    assert solution.relative_residual <= DEFAULT_TOLERANCE
    assert solution.iterations <= 40
    assert solution.levels >= 6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(mask=np.zeros((10, 12))), "mask must be 12×8"),
        (dict(fill=np.zeros((8, 12, 4))), "fill must be a 12×8×3"),
        (dict(fill=np.zeros((8, 12, 3), dtype=object)), "fill must hold numbers"),
        (dict(box=(0, 0, 13, 8)), "does not fit"),
        (dict(box=(2, 2, 2, 5)), "empty"),
        (dict(mask=np.ones((8, 12))), "covers the whole photo"),
        (dict(mask=np.full((8, 12), np.nan)), "NaN"),
        (dict(tolerance=0.0), "tolerance"),
        (dict(max_iterations=0), "max_iterations"),
    ],
)
def test_bad_input_is_refused_in_one_sentence(arguments: dict, message: str) -> None:
    base = dict(
        original=np.zeros((8, 12, 3), dtype=np.uint8),
        mask=_disc_mask(8, 12, (4, 6), 2),
        fill=np.zeros((8, 12, 3), dtype=np.uint8),
    )
    base.update(arguments)
    with pytest.raises(BadInputError, match=message):
        poisson_blend(base.pop("original"), base.pop("mask"), base.pop("fill"), **base)


def test_fill_with_nan_over_the_hole_is_refused_and_empty_masks_change_nothing() -> None:
    original = _textured_photo(20, 20)
    fill = np.zeros((20, 20, 3))
    fill[8, 8] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        poisson_blend(original, _disc_mask(20, 20, (8, 8), 3), fill)
    empty = np.zeros((20, 20))
    for result in (
        poisson_blend(original, empty, fill),
        harmonic_fill(original, empty),
        mean_fill(original, empty),
    ):
        np.testing.assert_array_equal(result, original)
    with pytest.raises(BadInputError, match="whole photo"):
        mean_fill(original, np.ones((20, 20)))


# ----------------------------------------------------------------------------- connected areas


def test_connected_areas_on_a_handmade_mask() -> None:
    mask = np.zeros((20, 30), dtype=np.float32)
    mask[2:5, 2:6] = 1.0  # blob A
    mask[3, 6:9] = 0.6  # a soft arm of A, still painted
    mask[10:15, 20:25] = 1.0  # blob B
    mask[10:13, 27:29] = 1.0  # blob C, two empty columns right of B
    mask[16, 5] = 0.4  # below the threshold: not painted
    areas = connected_areas(mask)
    assert [area.box for area in areas] == [(2, 2, 9, 5), (20, 10, 25, 15), (27, 10, 29, 13)]
    assert [area.pixel_count for area in areas] == [15, 25, 6]
    assert areas[0].width == 7 and areas[0].height == 3
    merged = connected_areas(mask, merge_distance=3)  # B and C are 2 columns apart
    assert [area.box for area in merged] == [(2, 2, 9, 5), (20, 10, 29, 15)]
    assert merged[1].pixel_count == 31
    assert [area.box for area in connected_areas(mask, merge_distance=2)] == [area.box for area in areas]
    everything = connected_areas(mask, merge_distance=100)
    assert everything == (PaintedArea(box=(2, 2, 29, 15), pixel_count=46),)


def test_diagonal_touch_joins_with_8_connectivity_only() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 2:4] = True
    mask[4:6, 4:6] = True  # touches the first square at one corner
    mask[1, 7] = True
    mask[2, 8] = True  # another diagonal pair, in the other direction
    eight = connected_areas(mask, connectivity=8)
    four = connected_areas(mask, connectivity=4)
    assert [area.box for area in eight] == [(7, 1, 9, 3), (2, 2, 6, 6)]
    assert [area.box for area in four] == [(7, 1, 8, 2), (2, 2, 4, 4), (8, 2, 9, 3), (4, 4, 6, 6)]
    assert connected_areas(np.zeros((5, 5))) == ()
    with pytest.raises(BadInputError, match="connectivity"):
        connected_areas(mask, connectivity=6)


@pytest.mark.timeout(60)
def test_connected_areas_of_a_winding_shape_and_a_large_mask() -> None:
    # A comb: the teeth join only through the spine at the bottom, found however the rows run.
    mask = np.zeros((30, 40), dtype=bool)
    mask[0:28, 2:38:4] = True
    mask[27, 2:35] = True
    areas = connected_areas(mask)
    assert len(areas) == 1 and areas[0].pixel_count == int(mask.sum())
    big = np.zeros((3000, 4000), dtype=np.float32)
    disc = _disc_mask(181, 181, (90, 90), 89.5) >= 0.5
    for index in range(12):
        top, left = 210 + 200 * index, 310 + 280 * index
        big[top : top + 181, left : left + 181][disc] = 1.0
    big[100:2900, 3900:3905] = 1.0  # a long stroke
    found = connected_areas(big)
    assert len(found) == 13
    assert sum(area.pixel_count for area in found) == int((big >= 0.5).sum())


# ----------------------------------------------------------------------------- context squares


def test_context_square_inside_the_photo() -> None:
    square = context_square((100, 200, 140, 220), (1000, 800), min_side=32, context=0.25)
    assert square == RegionOfInterest(left=90, top=180, size=60)  # 40 · 1.5 = 60, centred
    small = context_square((100, 200, 110, 205), (1000, 800), min_side=64, context=0.25)
    assert small == RegionOfInterest(left=73, top=170, size=64)
    area = PaintedArea(box=(100, 200, 140, 220), pixel_count=10)
    assert context_square(area, (1000, 800), min_side=32, context=0.25) == square


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 0, 10, 10), RegionOfInterest(left=0, top=0, size=64)),  # top-left corner
        ((290, 190, 300, 200), RegionOfInterest(left=236, top=136, size=64)),  # bottom-right corner
        ((0, 140, 20, 200), RegionOfInterest(left=0, top=110, size=90)),  # left edge, shifted only across
    ],
)
def test_context_square_is_shifted_not_cropped_at_the_photos_corners(
    box: tuple, expected: RegionOfInterest
) -> None:
    square = context_square(box, (300, 200), min_side=64, context=0.25)
    assert square == expected
    square.validate(300, 200)
    left, top, right, bottom = box
    assert square.left <= left and square.top <= top and square.right >= right and square.bottom >= bottom


def test_context_square_larger_than_the_photo_is_the_largest_square_that_fits() -> None:
    square = context_square((50, 20, 90, 60), (300, 120), min_side=256, context=0.25)
    assert square == RegionOfInterest(left=10, top=0, size=120)  # centred on the box along the width
    wide = context_square((0, 10, 300, 30), (300, 120), min_side=16, context=0.0)
    assert wide.size == 120 and wide.top == 0 and wide.left == 90  # the box sticks out of it
    with pytest.raises(BadInputError, match="box"):
        context_square((0, 0, 400, 10), (300, 120), min_side=16, context=0.1)
    with pytest.raises(BadInputError, match="context"):
        context_square((0, 0, 10, 10), (300, 120), min_side=16, context=-1)
