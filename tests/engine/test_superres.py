"""Tests for engine.superres: super-resolution consistent with the input at its own scale."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from engine import superres
from engine.errors import BadInputError
from engine.metrics import psnr
from engine.superres import (
    assemble,
    classical_upscale,
    extract_tile,
    lanczos_operator,
    prior_detail,
    project_onto_input,
    tile_grid,
)


def pil_shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """The app's documented downsampling: PIL's Lanczos resize of a uint8 RGB image."""
    height, width = image.shape[:2]
    return np.asarray(
        Image.fromarray(image, mode="RGB").resize(
            (width // factor, height // factor), Image.Resampling.LANCZOS
        )
    )


def smooth_photo(height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: smooth shapes plus texture, kept away from 0 and 255."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for channel in range(3):
        phase = rng.uniform(0, 2 * np.pi, size=4)
        value = (
            0.5
            + 0.2 * np.sin(7 * rows + phase[0]) * np.cos(5 * columns + phase[1])
            + 0.1 * np.sin(31 * rows + 17 * columns + phase[2])
            + 0.05 * np.sin(97 * columns + 3 * channel + phase[3])
        )
        channels.append(value)
    image = np.stack(channels, axis=-1) + rng.normal(0, 0.03, size=(height, width, 3))
    return np.clip(np.rint(np.clip(image, 0.05, 0.95) * 255), 0, 255).astype(np.uint8)


def level_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def truth_tiles(truth: np.ndarray, factor: int, resolution: int, *, overlap: float = 0.25) -> list:
    """Per-tile details as if the model had returned the truth on every tile."""
    grid = tile_grid(
        (truth.shape[1] // factor, truth.shape[0] // factor), factor, resolution, overlap=overlap
    )
    padded = np.pad(truth, ((0, resolution), (0, resolution), (0, 0)), mode="reflect")
    tiles = []
    for tile in grid.tiles:
        left, top, right, bottom = tile.output_box
        tiles.append(((left, top), prior_detail(padded[top:bottom, left:right], factor)))
    return tiles


# --------------------------------------------------------------------------------------------
# The banded operator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("multiple", [1, 2, 3, 8, 21])
@pytest.mark.parametrize("extra", [0, 1])
def test_operator_equals_the_matrix_read_off_pil(factor, multiple, extra):
    from engine.degrade import _lanczos_resize_operator

    size = multiple * factor + extra * (factor - 1)  # extra: a size the factor does not divide
    operator = lanczos_operator(size, factor)
    read_off_pil, _ = _lanczos_resize_operator(size, factor)
    assert operator.dense().shape == read_off_pil.shape == (size // factor, size)
    np.testing.assert_allclose(operator.dense(), read_off_pil, rtol=0, atol=1e-6)


def test_operator_of_a_huge_side_is_small_and_quick():
    started = time.perf_counter()
    operator = lanczos_operator(24000, 2)
    seconds = time.perf_counter() - started
    stored = operator.weights.nbytes + operator.starts.nbytes + operator._cholesky[0].nbytes
    assert operator.weights.shape == (12000, 13)
    assert stored < 4_000_000  # O(size × taps); the dense matrix would be 2.3 GB
    assert seconds < 20


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_band_products_equal_dense_products(factor, dtype):
    rng = np.random.default_rng(factor)
    for size in (6 * factor, 9 * factor + 1, 40 * factor):
        operator = lanczos_operator(size, factor)
        dense = operator.dense()
        x = rng.random((3, size, 2)).astype(dtype)
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(
            operator.apply(x, axis=1), np.einsum("in,anc->aic", dense, x), atol=tolerance
        )
        y = rng.random((operator.out_size, 4)).astype(dtype)
        np.testing.assert_allclose(operator.apply_transpose(y, axis=0), dense.T @ y, atol=tolerance)
        gram_rhs = rng.random((operator.out_size, 5))
        solved = gram_rhs.copy()
        operator.solve_gram(solved, axis=0)
        np.testing.assert_allclose(dense @ dense.T @ solved, gram_rhs, atol=1e-10)


def test_operator_refuses_bad_arguments():
    with pytest.raises(BadInputError, match="factor"):
        lanczos_operator(16, 1)
    with pytest.raises(BadInputError, match="at least 4 samples"):
        lanczos_operator(3, 4)
    with pytest.raises(BadInputError, match="factor"):
        lanczos_operator(16, True)


def test_module_needs_neither_torch_nor_scipy():
    code = (
        "import sys, engine.superres; "
        "bad = [m for m in ('torch', 'scipy', 'PySide6') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr + completed.stdout


# --------------------------------------------------------------------------------------------
# Projection onto the input
# --------------------------------------------------------------------------------------------


def test_projection_is_the_least_change_to_the_input():
    factor = 4
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, size=(24, 36, 3))
    low = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    original = image.copy()
    projected = project_onto_input(image, low, factor)
    np.testing.assert_array_equal(image, original)  # not modified

    vertical, horizontal = lanczos_operator(24, factor).dense(), lanczos_operator(36, factor).dense()
    for channel in range(3):
        shrunk = vertical @ projected[:, :, channel] @ horizontal.T
        np.testing.assert_allclose(shrunk, low[:, :, channel], atol=1e-9)
        residual = low[:, :, channel] - vertical @ image[:, :, channel] @ horizontal.T
        expected = image[:, :, channel] + np.linalg.pinv(vertical) @ residual @ np.linalg.pinv(horizontal).T
        np.testing.assert_allclose(projected[:, :, channel], expected, atol=1e-9)
    # A projection: applying it again changes nothing.
    np.testing.assert_allclose(project_onto_input(projected, low, factor), projected, atol=1e-9)


def test_projection_keeps_float32():
    low = smooth_photo(8, 8)
    projected = project_onto_input(np.zeros((32, 32, 3), dtype=np.float32), low, 4)
    assert projected.dtype == np.float32


@pytest.mark.parametrize(
    ("image", "low", "message"),
    [
        (np.zeros((32, 32, 3), dtype=np.uint8), np.zeros((8, 8, 3), dtype=np.uint8), "float32 or float64"),
        (np.zeros((32, 32, 3)), np.zeros((8, 8, 3)), "uint8"),
        (np.zeros((32, 30, 3)), np.zeros((8, 8, 3), dtype=np.uint8), "needs 32×32"),
        (np.full((32, 32, 3), np.nan), np.zeros((8, 8, 3), dtype=np.uint8), "not finite"),
    ],
)
def test_projection_refuses_bad_input_in_one_sentence(image, low, message):
    with pytest.raises(BadInputError, match=message):
        project_onto_input(image, low, 4)


def test_projection_memory_is_bounded(monkeypatch):
    """The float32 result, the small residual and strips, no more (small strips, so that any
    further full-resolution array would show)."""
    monkeypatch.setattr(superres, "_STRIP_ELEMENTS", 1 << 16)
    factor = 4
    low = smooth_photo(256, 384)
    image = np.asarray(Image.fromarray(low).resize((1536, 1024), Image.Resampling.BICUBIC)).astype(np.float32)
    tracemalloc.start()
    try:
        projected = project_onto_input(image, low, factor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = 1536 * 1024
    assert projected.shape == (1024, 1536, 3)
    # 12 bytes per pixel for the result, 1.5 for the residual (24 / f²), the rest is strips.
    assert peak < 13.5 * pixels + 8 * 2**20, f"peak {peak / pixels:.1f} bytes per output pixel"


# --------------------------------------------------------------------------------------------
# Classical upscaling (strength 0)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("method", ["lanczos", "bicubic"])
def test_classical_upscale_reproduces_the_input_through_pil(factor, method):
    low = pil_shrink(smooth_photo(64 * factor // 2, 48 * factor // 2, seed=factor), factor)
    result = classical_upscale(low, factor, method=method)
    assert result.dtype == np.float32 and result.shape == (low.shape[0] * factor, low.shape[1] * factor, 3)
    assert result.min() >= 0 and result.max() <= 255
    rounded = np.rint(result).astype(np.uint8)
    assert level_difference(pil_shrink(rounded, factor), low).max() <= 1


def test_classical_upscale_is_consistent_near_saturation():
    """Blown-out areas: PIL clips inside its two passes, which the linear model cannot see."""
    factor = 4
    truth = smooth_photo(128, 128, seed=3).astype(np.int16)
    truth[40:90, 30:100] = 255  # a white patch with hard edges
    truth[10:20, :] = 0
    truth = truth.astype(np.uint8)
    low = pil_shrink(truth, factor)
    rounded = np.rint(classical_upscale(low, factor)).astype(np.uint8)
    difference = level_difference(pil_shrink(rounded, factor), low)
    assert difference.max() <= 2
    assert (difference > 1).mean() < 0.002


def test_classical_upscale_is_never_below_plain_upscaling_on_photos():
    skimage_data = pytest.importorskip("skimage.data")
    factor = 4
    for name in ("astronaut", "chelsea"):
        truth = getattr(skimage_data, name)()[:256, :256]
        low = pil_shrink(truth, factor)
        size = (truth.shape[1], truth.shape[0])
        classical = np.rint(classical_upscale(low, factor)).astype(np.uint8)
        for resample in (Image.Resampling.BICUBIC, Image.Resampling.LANCZOS):
            plain = np.asarray(Image.fromarray(low).resize(size, resample))
            assert psnr(truth, classical, data_range=255) > psnr(truth, plain, data_range=255), name


def test_classical_upscale_refuses_bad_input():
    with pytest.raises(BadInputError, match="uint8"):
        classical_upscale(np.zeros((4, 4, 3)), 4)
    with pytest.raises(BadInputError, match="method"):
        classical_upscale(np.zeros((4, 4, 3), dtype=np.uint8), 4, method="nearest")
    with pytest.raises(BadInputError, match="factor"):
        classical_upscale(np.zeros((4, 4, 3), dtype=np.uint8), 3.0)


def test_classical_upscale_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(superres, "_STRIP_ELEMENTS", 1 << 16)
    low = smooth_photo(256, 384)
    tracemalloc.start()
    try:
        result = classical_upscale(low, 4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = result.shape[0] * result.shape[1]
    # The float32 result and the uint8 upscale (15 bytes per pixel), the residual, strips.
    assert peak < 16.5 * pixels + 8 * 2**20, f"peak {peak / pixels:.1f} bytes per output pixel"


# --------------------------------------------------------------------------------------------
# The prior's detail
# --------------------------------------------------------------------------------------------


def test_prior_detail_is_invisible_to_the_downsampling():
    rng = np.random.default_rng(4)
    output = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    detail = prior_detail(output, 4)
    assert detail.shape == (64, 64, 3) and detail.dtype == np.float32
    operator = lanczos_operator(64, 4).dense()
    for channel in range(3):
        np.testing.assert_allclose(operator @ detail[:, :, channel] @ operator.T, 0, atol=1e-3)
    # What remains is the model output's row-space part, which the downsampling does see.
    seen = output.astype(np.float64) - detail
    np.testing.assert_allclose(prior_detail(seen.astype(np.float32), 4), 0, atol=1e-3)


def test_prior_detail_refuses_a_tile_the_factor_does_not_divide():
    with pytest.raises(BadInputError, match="does not divide"):
        prior_detail(np.zeros((30, 30, 3), dtype=np.uint8), 4)


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low_size", "factor", "resolution"),
    [
        ((75, 100), 4, 64),
        ((16, 16), 4, 64),
        ((17, 40), 4, 64),
        ((5, 3), 4, 64),
        ((125, 94), 2, 64),
        ((33, 9), 8, 64),
    ],
)
def test_tile_grid_covers_every_pixel(low_size, factor, resolution):
    grid = tile_grid(low_size, factor, resolution, overlap=0.25)
    width, height = low_size
    side = resolution // factor
    assert grid.count == grid.columns * grid.rows == len(grid.tiles)
    assert grid.output_size == (width * factor, height * factor)
    covered = np.zeros((height, width), dtype=int)
    covered_output = np.zeros((height * factor, width * factor), dtype=bool)
    for tile in grid.tiles:
        assert tile.input_size == side and tile.output_size == resolution
        left, top, right, bottom = tile.input_box
        assert 0 <= left < width and 0 <= top < height
        # A tile extends past the photo only where the photo is smaller than a tile.
        assert right <= max(width, side) and bottom <= max(height, side)
        covered[top:bottom, left:right] += 1
        out_left, out_top, out_right, out_bottom = tile.output_box
        assert (out_left, out_top) == (left * factor, top * factor)
        covered_output[out_top:out_bottom, out_left:out_right] = True
    assert covered.min() >= 1
    assert covered_output.all()


def test_tile_grid_stride_follows_the_overlap():
    grid = tile_grid((100, 16), 4, 64, overlap=0.25)
    lefts = [tile.input_left for tile in grid.tiles]
    assert lefts == [0, 12, 24, 36, 48, 60, 72, 84]  # stride 12 of 16, the last on the border
    assert tile_grid((100, 16), 4, 64, overlap=0.5).columns == 12
    assert tile_grid((100, 16), 4, 64, overlap=0).columns == 7


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (((0, 10), 4, 64), "photo size"),
        (((10, 10), 4, 62), "multiple of the factor"),
        (((10, 10), 4, 64, 1.0), "overlap"),
    ],
)
def test_tile_grid_refuses_bad_arguments(arguments, message):
    with pytest.raises(BadInputError, match=message):
        tile_grid(*arguments)


def test_extract_tile_reflects_a_photo_smaller_than_one_tile():
    low = smooth_photo(5, 7)
    grid = tile_grid((7, 5), 4, 64)
    assert grid.count == 1
    original = low.copy()
    square = extract_tile(low, grid.tiles[0])
    np.testing.assert_array_equal(low, original)
    assert square.shape == (16, 16, 3) and square.dtype == np.uint8
    np.testing.assert_array_equal(square[:5, :7], low)
    np.testing.assert_array_equal(square[5, :7], low[3])  # reflect: row 5 mirrors row 3
    np.testing.assert_array_equal(square[:5, 7], low[:, 5])
    line = extract_tile(smooth_photo(1, 7), tile_grid((7, 1), 4, 64).tiles[0])
    np.testing.assert_array_equal(line[15], line[0])  # a 1-pixel side repeats its edge


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene():
    """A 192×256 truth at ×4, its input, its classical upscale and per-tile truth details."""
    factor = 4
    truth = smooth_photo(192, 256, seed=7)
    low = pil_shrink(truth, factor)
    return {
        "factor": factor,
        "truth": truth,
        "low": low,
        "classical": classical_upscale(low, factor),
        "tiles": truth_tiles(truth, factor, 64),
    }


def test_strength_zero_is_exactly_the_classical_upscale(scene):
    result = assemble(scene["low"], scene["factor"], scene["tiles"], 0)
    expected = np.clip(np.rint(classical_upscale(scene["low"], scene["factor"])), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(
        assemble(scene["low"], scene["factor"], scene["tiles"], 0.0, classical=scene["classical"]), expected
    )


@pytest.mark.parametrize("strength", [0, 0.5, 1])
def test_every_strength_reproduces_the_input_through_pil(scene, strength):
    rng = np.random.default_rng(11)
    noisy = [
        (position, prior_detail(rng.normal(128, 40, size=detail.shape).astype(np.float32), scene["factor"]))
        for position, detail in scene["tiles"]
    ]
    for tiles in (scene["tiles"], noisy):
        result = assemble(scene["low"], scene["factor"], tiles, strength, classical=scene["classical"])
        assert result.dtype == np.uint8 and result.shape == scene["truth"].shape
        assert level_difference(pil_shrink(result, scene["factor"]), scene["low"]).max() <= 1


def test_the_truths_own_detail_at_strength_one_gives_back_the_truth():
    factor = 4
    truth = smooth_photo(96, 160, seed=5)
    low = pil_shrink(truth, factor)
    whole = [((0, 0), prior_detail(truth, factor))]  # one tile: the global null space
    result = assemble(low, factor, whole, 1)
    assert level_difference(result, truth).max() <= 2
    assert psnr(truth, result, data_range=255) > 50
    assert psnr(truth, np.rint(classical_upscale(low, factor)).astype(np.uint8), data_range=255) < 35


def test_raw_tile_outputs_of_the_truth_give_back_the_truth(scene):
    """Only the blend's null-space part is used, so raw outputs work and show no seams."""
    padded = np.pad(scene["truth"], ((0, 64), (0, 64), (0, 0)), mode="reflect").astype(np.float32)
    raw = [((left, top), padded[top : top + 64, left : left + 64]) for (left, top), _ in scene["tiles"]]
    result = assemble(scene["low"], 4, raw, 1, classical=scene["classical"])
    assert level_difference(result, scene["truth"]).max() <= 2
    assert psnr(scene["truth"], result, data_range=255) > 50


def test_tiled_truth_detail_moves_smoothly_from_classical_to_truth(scene):
    scores = [
        psnr(
            scene["truth"],
            assemble(scene["low"], 4, scene["tiles"], s, classical=scene["classical"]),
            data_range=255,
        )
        for s in (0, 0.25, 0.5, 0.75, 1)
    ]
    assert (np.diff(scores) > 1).all()
    assert scores[-1] > 40  # per-tile null spaces differ from the global one only near tile edges


def test_noise_detail_lowers_psnr_smoothly_with_strength(scene):
    rng = np.random.default_rng(2)
    noisy = [
        (position, prior_detail(rng.normal(128, 25, size=detail.shape).astype(np.float32), 4))
        for position, detail in scene["tiles"]
    ]
    scores = [
        psnr(
            scene["truth"], assemble(scene["low"], 4, noisy, s, classical=scene["classical"]), data_range=255
        )
        for s in (0, 0.25, 0.5, 0.75, 1)
    ]
    steps = np.diff(scores)
    assert (steps < 0).all()
    assert steps.min() > -4 * abs(steps.max())  # no jump: each quarter costs a similar amount


def test_tiles_blend_without_seams(scene):
    """A smooth detail given tile by tile assembles like the same detail given as one tile."""
    factor, low = scene["factor"], scene["low"]
    height, width = scene["truth"].shape[:2]
    rows, columns = np.mgrid[0:height, 0:width]
    field = 6 * np.sin(columns / 9.0)[:, :, None] * np.cos(rows / 7.0)[:, :, None] * np.ones(3)
    field = field.astype(np.float32)
    padded = np.pad(field, ((0, 64), (0, 64), (0, 0)), mode="reflect")
    tiled = [((left, top), padded[top : top + 64, left : left + 64]) for (left, top), _ in scene["tiles"]]
    single = [((0, 0), field)]
    together = assemble(low, factor, tiled, 1, classical=scene["classical"]).astype(np.int16)
    alone = assemble(low, factor, single, 1, classical=scene["classical"]).astype(np.int16)
    assert np.abs(together - alone).max() <= 1  # the windows are a partition of unity


def test_tiled_truth_has_no_step_at_tile_borders(scene):
    """Across tile borders the tiled result differs from the truth no more than inside tiles."""
    result = assemble(scene["low"], 4, scene["tiles"], 1, classical=scene["classical"]).astype(np.float64)
    error = np.abs(result - scene["truth"]).mean(axis=2)
    borders = np.zeros(error.shape, dtype=bool)
    for (left, top), _ in scene["tiles"]:
        for edge in (left, left + 63):
            if 0 < edge < error.shape[1] - 1:
                borders[:, max(edge - 2, 0) : edge + 3] = True
        for edge in (top, top + 63):
            if 0 < edge < error.shape[0] - 1:
                borders[max(edge - 2, 0) : edge + 3, :] = True
    assert error[borders].mean() < 2.0 * error[~borders].mean() + 0.25
    assert error.max() < 12


def test_assemble_memory_is_bounded(monkeypatch):
    """No full-resolution array beyond the result, the sum of windows and the uint8 output."""
    monkeypatch.setattr(superres, "_STRIP_ELEMENTS", 1 << 16)
    factor = 4
    low = smooth_photo(256, 384, seed=6)
    start = np.asarray(Image.fromarray(low).resize((1536, 1024), Image.Resampling.BICUBIC)).astype(np.float32)
    detail = np.random.default_rng(0).normal(0, 4, size=(128, 128, 3)).astype(np.float32)
    tiles = [((left, top), detail) for top in range(0, 1024, 96) for left in range(0, 1536, 96)]
    tracemalloc.start()
    try:
        result = assemble(low, factor, tiles, 0.5, classical=start)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = 1536 * 1024
    assert result.shape == (1024, 1536, 3)
    # The float32 result (12 bytes per pixel) and the sum of windows (4), or later the result,
    # a rounding buffer and the uint8 output (3 each); low-resolution residuals; strips.
    assert peak < 20 * pixels + 8 * 2**20, f"peak {peak / pixels:.1f} bytes per output pixel"


def test_assemble_refuses_uncovered_pixels_and_bad_strengths(scene):
    low, tiles = scene["low"], scene["tiles"]
    with pytest.raises(BadInputError, match="uncovered"):
        assemble(low, 4, tiles[1:], 0.5, classical=scene["classical"])
    for strength in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(BadInputError, match="strength"):
            assemble(low, 4, tiles, strength)
    with pytest.raises(BadInputError, match="does not start inside"):
        assemble(low, 4, [((10_000, 0), tiles[0][1])], 0.5, classical=scene["classical"])


def test_assemble_leaves_its_inputs_alone(scene):
    low = scene["low"].copy()
    classical = scene["classical"].copy()
    details = [detail.copy() for _, detail in scene["tiles"]]
    assemble(low, 4, scene["tiles"], 0.7, classical=classical)
    np.testing.assert_array_equal(low, scene["low"])
    np.testing.assert_array_equal(classical, scene["classical"])
    for (_, detail), copy in zip(scene["tiles"], details, strict=True):
        np.testing.assert_array_equal(detail, copy)


def test_small_photo_is_padded_and_cropped_back():
    factor = 4
    truth = smooth_photo(20, 28, seed=9)
    low = pil_shrink(truth, factor)
    grid = tile_grid((low.shape[1], low.shape[0]), factor, 64)
    assert grid.count == 1
    model_input = extract_tile(low, grid.tiles[0])
    model_output = np.asarray(Image.fromarray(model_input).resize((64, 64), Image.Resampling.BICUBIC))
    tiles = [((0, 0), prior_detail(model_output, factor))]
    result = assemble(low, factor, tiles, 1)
    assert result.shape == truth.shape
    assert level_difference(pil_shrink(result, factor), low).max() <= 1


def test_strip_size_does_not_change_results(scene, monkeypatch):
    expected = assemble(scene["low"], 4, scene["tiles"], 0.5, classical=scene["classical"])
    monkeypatch.setattr(superres, "_STRIP_ELEMENTS", 1000)
    np.testing.assert_array_equal(
        assemble(scene["low"], 4, scene["tiles"], 0.5, classical=scene["classical"]), expected
    )
