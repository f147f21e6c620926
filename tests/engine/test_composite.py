"""Tests for engine.composite: regions, model inputs and full-resolution compositing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.composite import (
    RegionOfInterest,
    composite_colorization,
    composite_for_task,
    composite_inpainting,
    composite_reconstruction,
    composite_super_resolution,
    default_feather_px,
    lab_to_srgb_uint8,
    prepare_low_resolution_input,
    prepare_mask,
    prepare_model_input,
    small_region_notice,
    srgb_to_lab,
    unreachable_mask_fraction,
)
from engine.errors import BadInputError


def _random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _grey_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    grey = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


# ----------------------------------------------------------------------------- region of interest


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (7, 4, (2, 0, 4)),  # (7 - 4) / 2 = 1.5 → 2
        (6, 4, (1, 0, 4)),
        (4, 9, (0, 2, 4)),  # (9 - 4) / 2 = 2.5 → 2 (round half to even, like torchvision)
        (4, 11, (0, 4, 4)),  # 3.5 → 4
        (5, 5, (0, 0, 5)),
    ],
)
def test_largest_centred_square_rounds_like_torchvision(width: int, height: int, expected: tuple) -> None:
    roi = RegionOfInterest.largest_centred_square(width, height)
    assert (roi.left, roi.top, roi.size) == expected
    roi.validate(width, height)


@pytest.mark.parametrize(
    "roi",
    [
        RegionOfInterest(left=0, top=0, size=0),
        RegionOfInterest(left=-1, top=0, size=4),
        RegionOfInterest(left=0, top=-1, size=4),
        RegionOfInterest(left=5, top=0, size=4),  # right edge 9 > width 8
        RegionOfInterest(left=0, top=3, size=4),  # bottom edge 7 > height 6
    ],
)
def test_region_validation_refuses_regions_outside_the_image(roi: RegionOfInterest) -> None:
    with pytest.raises(BadInputError, match="region of interest"):
        roi.validate(8, 6)


def test_region_needs_integers_and_crop_copies() -> None:
    with pytest.raises(BadInputError, match="left"):
        RegionOfInterest(left=1.5, top=0, size=2)  # type: ignore[arg-type]
    image = _random_rgb(6, 8)
    roi = RegionOfInterest(left=np.int64(3), top=1, size=4)
    crop = roi.crop(image)
    np.testing.assert_array_equal(crop, image[1:5, 3:7])
    crop[:] = 0
    assert image[1:5, 3:7].any()  # the crop does not alias the original
    with pytest.raises(BadInputError):
        RegionOfInterest(left=6, top=0, size=4).crop(image)


# ----------------------------------------------------------------------------- model inputs


def test_prepare_model_input_is_crop_then_pil_bilinear() -> None:
    image = _random_rgb(30, 40)
    roi = RegionOfInterest.largest_centred_square(40, 30)
    prepared = prepare_model_input(image, roi, 16)
    expected = np.asarray(Image.fromarray(image[:, 5:35]).resize((16, 16), Image.Resampling.BILINEAR))
    assert prepared.shape == (16, 16, 3) and prepared.dtype == np.uint8
    np.testing.assert_array_equal(prepared, expected)


def test_prepare_mask_area_averages() -> None:
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[:, :4] = 1.0  # left half painted
    mask[4, 4] = 1.0  # one pixel of the bottom-right 4×4 block: 1/16
    prepared = prepare_mask(mask, RegionOfInterest(left=0, top=0, size=8), 2)
    assert prepared.dtype == np.float32 and prepared.shape == (2, 2)
    np.testing.assert_allclose(prepared, [[1.0, 0.0], [1.0, 1 / 16]], atol=1e-6)


def test_small_region_notice() -> None:
    assert small_region_notice(RegionOfInterest(left=0, top=0, size=128), 128) is None
    notice = small_region_notice(RegionOfInterest(left=0, top=0, size=90), 128)
    assert notice is not None and "90×90" in notice and "128×128" in notice
    assert small_region_notice(RegionOfInterest(left=0, top=0, size=32), 128, factor=4) is None
    assert "reduced" in small_region_notice(RegionOfInterest(left=0, top=0, size=500), 128, factor=4)


def test_low_resolution_input_size_and_factor_check() -> None:
    image = _random_rgb(50, 60)
    roi = RegionOfInterest(left=5, top=5, size=40)
    low = prepare_low_resolution_input(image, roi, 64, 4)
    assert low.shape == (16, 16, 3) and low.dtype == np.uint8
    expected = np.asarray(Image.fromarray(image[5:45, 5:45]).resize((16, 16), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(low, expected)
    with pytest.raises(BadInputError, match="divisible"):
        prepare_low_resolution_input(image, roi, 64, 3)


# ----------------------------------------------------------------------------- colour


def test_lab_round_trip_and_neutral_axis() -> None:
    colours = _random_rgb(32, 32, seed=5)
    np.testing.assert_array_equal(lab_to_srgb_uint8(srgb_to_lab(colours)), colours)
    grey_lab = srgb_to_lab(_grey_photo(4, 4))
    assert np.abs(grey_lab[..., 1:]).max() < 1e-3
    white = srgb_to_lab(np.array([[255, 255, 255]], dtype=np.uint8))
    assert abs(white[0, 0] - 100.0) < 1e-3


def test_out_of_gamut_colours_keep_their_lightness() -> None:
    lab = np.array([[20.0, 90.0, -90.0], [95.0, -100.0, 100.0], [50.0, 0.0, 0.0]], dtype=np.float32)
    rgb = lab_to_srgb_uint8(lab)
    np.testing.assert_allclose(srgb_to_lab(rgb)[:, 0], lab[:, 0], atol=0.6)


def test_colorization_keeps_lightness_and_takes_colour() -> None:
    original = _grey_photo(24, 40, seed=1)
    roi = RegionOfInterest(left=10, top=2, size=20)
    untouched = original.copy()
    # A saturated model output: bright red top half, deep blue bottom half.
    result = np.zeros((8, 8, 3), dtype=np.uint8)
    result[:4] = (230, 20, 20)
    result[4:] = (20, 20, 200)
    output = composite_colorization(original, roi, result)

    np.testing.assert_array_equal(original, untouched)
    assert output.shape == original.shape and output.dtype == np.uint8
    lightness_change = np.abs(srgb_to_lab(output)[..., 0] - srgb_to_lab(original)[..., 0])
    assert lightness_change.max() <= 1.0
    outside = np.ones(original.shape[:2], dtype=bool)
    outside[roi.top : roi.bottom, roi.left : roi.right] = False
    np.testing.assert_array_equal(output[outside], original[outside])
    region_lab = srgb_to_lab(roi.crop(output))
    # Only mid-tones can carry much colour; very dark or light pixels are near-grey by gamut.
    mid = (region_lab[..., 0] > 30) & (region_lab[..., 0] < 70)
    assert np.median(region_lab[:4][mid[:4]][:, 1]) > 15  # top rows reddish (a* > 0)
    assert np.median(region_lab[-4:][mid[-4:]][:, 2]) < -15  # bottom rows bluish (b* < 0)


def test_colorization_fades_the_colour_in_from_the_regions_edge() -> None:
    # The generator's border pixels are its least reliable: colour starts at the original's
    # (grey here) on the region's edge and reaches the result's 1.5 model pixels inside.
    original = np.full((48, 48, 3), 128, dtype=np.uint8)
    roi = RegionOfInterest(left=8, top=8, size=32)
    result = np.zeros((8, 8, 3), dtype=np.uint8)
    result[:] = (200, 60, 60)
    chroma = np.hypot(*np.moveaxis(srgb_to_lab(roi.crop(composite_colorization(original, roi, result)))[..., 1:], -1, 0))
    band = round(1.5 * 32 / 8)
    edge, inside = chroma[0, 16], chroma[band, 16]
    assert edge < 0.3 * inside
    assert np.all(np.diff(chroma[: band + 1, 16]) > 0)  # rising monotonically across the band
    np.testing.assert_allclose(chroma[band:-band, band:-band], inside, atol=0.5)  # the interior: the result's colour
    assert inside > 20


# ----------------------------------------------------------------------------- inpainting


def test_inpainting_changes_only_masked_pixels_and_a_feather() -> None:
    original = _random_rgb(40, 50, seed=2)
    untouched = original.copy()
    mask = np.zeros((40, 50), dtype=np.float32)
    mask[15:22, 20:30] = 1.0
    roi = RegionOfInterest(left=5, top=0, size=40)
    result = np.full((16, 16, 3), (0, 255, 0), dtype=np.uint8)
    feather = 3
    output = composite_inpainting(original, mask, roi, result, feather_px=feather)

    np.testing.assert_array_equal(original, untouched)
    np.testing.assert_array_equal(output[15:22, 20:30], np.broadcast_to((0, 255, 0), (7, 10, 3)))
    grown = np.zeros_like(mask, dtype=bool)
    grown[15 - feather : 22 + feather, 20 - feather : 30 + feather] = True
    np.testing.assert_array_equal(output[~grown], original[~grown])  # bit-identical outside
    rim = grown & (mask == 0)
    assert np.any(output[rim] != original[rim])  # the feather does blend


def test_inpainting_feather_falls_off_linearly_with_distance() -> None:
    original = np.full((30, 30, 3), 100, dtype=np.uint8)
    mask = np.zeros((30, 30), dtype=np.float32)
    mask[10:20, 10:20] = 1.0
    result = np.full((10, 10, 3), (100, 200, 100), dtype=np.uint8)
    roi = RegionOfInterest(left=0, top=0, size=30)
    output = composite_inpainting(original, mask, roi, result, feather_px=3)
    # Above the hole's centre: distances 4, 3, 2, 1 and the hole; weight 1 − d/4 for d ≤ 3.
    np.testing.assert_array_equal(output[6:11, 15, 1], [100, 125, 150, 175, 200])
    np.testing.assert_array_equal(output[6:11, 15, 0], 100)


def test_inpainting_default_feather_and_hard_edge() -> None:
    original = _random_rgb(20, 20, seed=3)
    mask = np.zeros((20, 20), dtype=np.float32)
    mask[8:12, 8:12] = 1.0
    roi = RegionOfInterest(left=0, top=0, size=20)
    result = np.zeros((8, 8, 3), dtype=np.uint8)
    hard = composite_inpainting(original, mask, roi, result, feather_px=0)
    painted = mask > 0
    np.testing.assert_array_equal(hard[painted], 0)
    np.testing.assert_array_equal(hard[~painted], original[~painted])
    assert default_feather_px(roi) == 2
    assert default_feather_px(RegionOfInterest(left=0, top=0, size=1000)) == 8
    soft = composite_inpainting(original, mask, roi, result)
    beyond = np.ones_like(painted)
    beyond[6:14, 6:14] = False
    np.testing.assert_array_equal(soft[beyond], original[beyond])


def test_masked_pixels_outside_the_region_stay_original() -> None:
    original = _random_rgb(20, 30, seed=4)
    mask = np.zeros((20, 30), dtype=np.float32)
    mask[5:10, 15:25] = 1.0  # half inside (columns 15-19), half outside the region
    roi = RegionOfInterest(left=0, top=0, size=20)
    output = composite_inpainting(original, mask, roi, np.zeros((8, 8, 3), dtype=np.uint8), feather_px=2)
    np.testing.assert_array_equal(output[:, 20:], original[:, 20:])
    np.testing.assert_array_equal(output[5:10, 15:20], 0)
    assert unreachable_mask_fraction(mask, roi) == pytest.approx(0.5)
    assert unreachable_mask_fraction(np.zeros((20, 30)), roi) == 0.0


def test_inpainting_refuses_a_mask_of_another_size() -> None:
    with pytest.raises(BadInputError, match="mask"):
        composite_inpainting(
            _random_rgb(10, 10), np.ones((5, 5)), RegionOfInterest(left=0, top=0, size=10),
            np.zeros((4, 4, 3), dtype=np.uint8),
        )


# ----------------------------------------------------------------------------- other tasks


def test_super_resolution_output_size() -> None:
    result = _random_rgb(32, 32)
    roi = RegionOfInterest(left=3, top=4, size=10)
    output = composite_super_resolution(result, roi, 4)
    assert output.shape == (40, 40, 3) and output.dtype == np.uint8
    np.testing.assert_array_equal(composite_super_resolution(result, RegionOfInterest(0, 0, 8), 4), result)


def test_reconstruction_pastes_only_the_region() -> None:
    original = _random_rgb(12, 16, seed=6)
    roi = RegionOfInterest(left=4, top=2, size=8)
    result = np.full((4, 4, 3), 77, dtype=np.uint8)
    output = composite_reconstruction(original, roi, result)
    np.testing.assert_array_equal(output[2:10, 4:12], 77)
    output[2:10, 4:12] = original[2:10, 4:12]
    np.testing.assert_array_equal(output, original)


def test_dispatcher_routes_and_refuses() -> None:
    original = _grey_photo(16, 16, seed=7)
    roi = RegionOfInterest(left=0, top=0, size=16)
    result = _random_rgb(8, 8, seed=8)
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[4:8, 4:8] = 1.0
    np.testing.assert_array_equal(
        composite_for_task("colorize", original, roi, result), composite_colorization(original, roi, result)
    )
    np.testing.assert_array_equal(
        composite_for_task("defend", original, roi, result), composite_reconstruction(original, roi, result)
    )
    assert composite_for_task("sr", original, roi, result, factor=2).shape == (32, 32, 3)
    # Hybrid on a grey original with a mask: colour recomposition, then the hole from the result.
    hybrid = composite_for_task("hybrid", original, roi, result, mask=mask, feather_px=0)
    colourised = composite_colorization(original, roi, result)
    expected = composite_inpainting(colourised, mask, roi, result, feather_px=0)
    np.testing.assert_array_equal(hybrid, expected)
    assert composite_for_task("hybrid", original, roi, result, factor=2).shape == (32, 32, 3)

    with pytest.raises(BadInputError, match="unknown task"):
        composite_for_task("sharpen", original, roi, result)
    with pytest.raises(BadInputError, match="needs a mask"):
        composite_for_task("inpaint", original, roi, result)
    with pytest.raises(BadInputError, match="needs a super-resolution factor"):
        composite_for_task("sr", original, roi, result)
    with pytest.raises(BadInputError, match="does not take a mask"):
        composite_for_task("colorize", original, roi, result, mask=mask)
