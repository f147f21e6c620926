"""engine.metrics against scikit-image as the oracle, and the task recipes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import color
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from engine import metrics
from engine.degrade import centered_square_mask
from engine.errors import BadInputError


def structured_image(height: int = 48, width: int = 40) -> np.ndarray:
    """Smooth gradients, a disc and stripes in [0, 1], H×W×3 float64."""
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    disc = ((xs - 0.6) ** 2 + (ys - 0.4) ** 2 < 0.08).astype(np.float64)
    stripes = 0.5 + 0.5 * np.sin(xs * 25)
    return np.stack([xs, 0.3 * ys + 0.6 * disc, 0.7 * stripes * ys], axis=-1)


def image_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    random_a = rng.random((33, 29, 3))
    random_b = np.clip(random_a + rng.normal(0, 0.1, random_a.shape), 0, 1)
    clean = structured_image()
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    shifted = np.roll(clean, 3, axis=1)
    unrelated = rng.random(clean.shape)
    return [
        ("random", random_a, random_b),
        ("structured-noisy", clean, noisy),
        ("structured-shifted", clean, shifted),
        ("structured-unrelated", clean, unrelated),
    ]


@pytest.mark.parametrize("name, first, second", image_pairs(), ids=[p[0] for p in image_pairs()])
def test_pixel_metrics_match_scikit_image(name, first, second):
    for data_range in (1.0, 2.0):
        expected_ssim = structural_similarity(first, second, data_range=data_range, channel_axis=-1)
        assert metrics.ssim(first, second, data_range=data_range) == pytest.approx(expected_ssim, abs=1e-6)
        expected_psnr = peak_signal_noise_ratio(first, second, data_range=data_range)
        assert metrics.psnr(first, second, data_range=data_range) == pytest.approx(expected_psnr, abs=1e-6)
    assert metrics.mse(first, second) == pytest.approx(mean_squared_error(first, second), abs=1e-12)


def test_ssim_single_channel_other_window_and_uint8_levels():
    rng = np.random.default_rng(3)
    first = rng.integers(0, 256, (20, 17)).astype(np.uint8)
    second = np.clip(first.astype(int) + rng.integers(-20, 21, first.shape), 0, 255).astype(np.uint8)
    for win_size in (5, 7, 9):
        expected = structural_similarity(first, second, data_range=255, win_size=win_size)
        ours = metrics.ssim(first, second, data_range=255, win_size=win_size)
        assert ours == pytest.approx(expected, abs=1e-6)


def test_identical_images_are_perfect():
    image = structured_image()
    assert metrics.ssim(image, image, data_range=1) == pytest.approx(1.0, abs=1e-12)
    assert metrics.psnr(image, image, data_range=1) == math.inf
    assert metrics.mse(image, image) == 0.0


def test_metrics_refuse_to_guess():
    image = structured_image()
    with pytest.raises(BadInputError, match="data_range"):
        metrics.psnr(image, image, data_range=0)
    with pytest.raises(BadInputError, match="same shape"):
        metrics.ssim(image, image[:-1], data_range=1)
    with pytest.raises(BadInputError, match="window"):
        metrics.ssim(image[:5, :5], image[:5, :5], data_range=1)
    with pytest.raises(BadInputError, match="odd"):
        metrics.ssim(image, image, data_range=1, win_size=6)
    with pytest.raises(TypeError):
        metrics.psnr(image, image, 1.0)  # the range is keyword-only


@pytest.mark.parametrize("height, width", [(64, 64), (128, 128), (256, 256), (30, 45)])
def test_hole_region_is_the_degradation_hole(height, width):
    rows, columns = metrics.hole_region(height, width)
    known = centered_square_mask(height, width)[0, 0].numpy()
    hole = np.zeros((height, width), dtype=bool)
    hole[rows, columns] = True
    np.testing.assert_array_equal(hole, known == 0)
    if (height, width) == (64, 64):
        assert (rows.start, rows.stop) == (21, 43)


def test_mean_chroma_matches_scikit_image_lab():
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (16, 12, 3)).astype(np.uint8)
    lab = color.rgb2lab(image.astype(np.float64) / 255.0)
    expected = np.mean(np.hypot(lab[..., 1], lab[..., 2]))
    assert metrics.mean_chroma(image) == pytest.approx(expected, rel=1e-4)
    gray = np.repeat(image[..., :1], 3, axis=2)
    assert metrics.mean_chroma(gray) < 1e-3


def test_lab_recompose_takes_lightness_from_the_source_and_colour_from_the_result():
    rng = np.random.default_rng(5)
    # Moderate colours so that the recomposition stays inside sRGB, where skimage's
    # clipping lab2rgb and the engine's chroma-reducing conversion agree.
    result = rng.integers(90, 170, (24, 24, 3)).astype(np.uint8)
    source = rng.integers(90, 170, (24, 24, 3)).astype(np.uint8)
    recomposed = metrics.lab_recompose(result, source)
    lab_result = color.rgb2lab(result / 255.0)
    lab_source = color.rgb2lab(source / 255.0)
    lab_oracle = np.concatenate([lab_source[..., :1], lab_result[..., 1:]], axis=-1)
    oracle = np.round(np.clip(color.lab2rgb(lab_oracle), 0, 1) * 255)
    assert np.abs(recomposed.astype(int) - oracle.astype(int)).max() <= 1
    lab_recomposed = color.rgb2lab(recomposed / 255.0)
    assert np.abs(lab_recomposed[..., 0] - lab_source[..., 0]).max() < 0.5
    # Recomposing an image with itself gives it back (up to uint8 rounding).
    assert np.abs(metrics.lab_recompose(source, source).astype(int) - source.astype(int)).max() <= 1


def test_score_result_recipes():
    truth = np.round(structured_image(64, 64) * 255).astype(np.uint8)
    changed = truth.copy()
    rows, columns = metrics.hole_region(64, 64)
    changed[rows, columns] = 0
    # Inpainting is scored inside the hole only: a wrong hole scores badly there...
    inpaint = metrics.score_result("inpaint", changed, truth)
    whole = metrics.score_result("reconstruct", changed, truth)
    assert inpaint["mse"] > whole["mse"] * 5
    hole_truth = truth[rows, columns] / 255.0
    assert inpaint["psnr"] == pytest.approx(
        peak_signal_noise_ratio(hole_truth, np.zeros_like(hole_truth), data_range=1), abs=1e-6
    )
    # ...and changes outside the hole do not count.
    outside = truth.copy()
    outside[:5] = 255
    assert metrics.score_result("inpaint", outside, truth)["psnr"] == math.inf
    # Colorization keeps the truth's lightness: a grey result loses only the colour.
    gray = np.repeat(np.round(truth.mean(axis=2, keepdims=True)).astype(np.uint8), 3, axis=2)
    colorize = metrics.score_result("colorize", gray, truth)
    assert colorize["chroma"] < 1.0 < colorize["chroma_truth"]
    recomposed_lightness = color.rgb2lab(metrics.scored_image("colorize", gray, truth) / 255.0)[..., 0]
    assert np.abs(recomposed_lightness - color.rgb2lab(truth / 255.0)[..., 0]).max() < 0.5
    assert metrics.score_result("colorize", truth, truth)["psnr"] > 40
    assert colorize["ssim_range2"] > colorize["ssim"]
    with pytest.raises(BadInputError, match="unknown task"):
        metrics.score_result("hybrid", truth, truth)

