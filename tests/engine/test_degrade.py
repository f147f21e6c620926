"""Tests for engine.degrade: the degradations ϕ of DGP (method note §4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.degrade import (
    Degradation,
    centered_square_mask,
    degradation_for_task,
    downsample_generator_path,
    downsample_target_path,
    lanczos2_taps,
    match_low_resolution,
    rgb_to_gray,
    upsample_bilinear,
)
from engine.errors import BadInputError

# Published taps (method note §4.3), first half; the second half mirrors it.
LANCZOS_F4_HALF = [
    -0.00106538, -0.0097517, -0.02038399, -0.01487789, 0.02459406, 0.0986585, 0.18311528, 0.23971112
]
LANCZOS_F2_HALF = [-0.00886333, -0.04194003, 0.11650009, 0.43430327]


def random_image(
    *, batch: int = 1, size: int = 32, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).to(dtype)


def reference_generator_downsample(x: torch.Tensor, factor: int, padding: int) -> torch.Tensor:
    """Deep Image Prior's downsampler written independently: full 2-D kernel, explicit padding."""
    taps = lanczos2_taps(factor).to(x.dtype)
    kernel_2d = torch.outer(taps, taps)
    channels = x.shape[1]
    weight = kernel_2d.expand(channels, 1, *kernel_2d.shape)
    padded = torch.nn.ReplicationPad2d(padding)((x + 1) / 2)
    return F.conv2d(padded, weight, stride=factor, groups=channels) * 2 - 1


# ---------------------------------------------------------------------------------------------
# Lanczos taps and the generator path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("factor", "half"), [(4, LANCZOS_F4_HALF), (2, LANCZOS_F2_HALF)])
def test_lanczos_taps_equal_published_values(factor: int, half: list[float]) -> None:
    taps = lanczos2_taps(factor)
    expected = torch.tensor(half + half[::-1], dtype=torch.float64)
    assert taps.shape == (4 * factor,)
    torch.testing.assert_close(taps, expected, atol=1e-6, rtol=0)
    assert taps.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_lanczos_taps_for_factor_8_are_symmetric_and_normalised() -> None:
    taps = lanczos2_taps(8)
    assert taps.shape == (32,)
    torch.testing.assert_close(taps, taps.flip(0))
    assert taps.sum().item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("factor", "padding"), [(2, 3), (4, 6), (8, 12)])
def test_generator_path_matches_2d_lanczos_with_reference_padding(factor: int, padding: int) -> None:
    # Paddings 3 (f=2) and 6 (f=4) are the reference's; 12 follows (kernel - f) / 2 for f=8.
    # float64 so that the separable passes and the 2-D kernel agree to rounding only.
    x = random_image(batch=2, size=64, seed=1, dtype=torch.float64)
    expected = reference_generator_downsample(x, factor, padding)
    actual = downsample_generator_path(x, factor)
    assert actual.shape == (2, 3, 64 // factor, 64 // factor)
    torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)
    # In float32 the two summation orders differ by a few ulps.
    in_float32 = downsample_generator_path(x.float(), factor)
    torch.testing.assert_close(in_float32, expected.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_shapes_for_each_factor(factor: int) -> None:
    x = random_image(batch=3, size=32, seed=2)
    low_generator = downsample_generator_path(x, factor)
    low_target = downsample_target_path(x, factor)
    assert low_generator.shape == low_target.shape == (3, 3, 32 // factor, 32 // factor)
    assert upsample_bilinear(low_generator, factor).shape == x.shape
    degradation = Degradation(sr_factor=factor)
    assert degradation.generator_path(x).shape == x.shape
    assert degradation.target_path(x).shape == x.shape


def test_generator_path_keeps_constant_images() -> None:
    # The kernel sums to one and padding replicates, so a flat image stays flat.
    x = torch.full((1, 3, 32, 32), 0.25)
    for factor in (2, 4, 8):
        torch.testing.assert_close(Degradation(sr_factor=factor).generator_path(x), x, atol=1e-6, rtol=0)


def test_bad_factor_and_indivisible_size_raise() -> None:
    x = random_image(size=30)
    with pytest.raises(BadInputError, match="factor"):
        downsample_generator_path(x, 3)
    with pytest.raises(BadInputError, match="not divisible"):
        downsample_generator_path(x, 4)
    with pytest.raises(BadInputError, match="not divisible"):
        downsample_target_path(x, 4)
    with pytest.raises(BadInputError, match="factor"):
        Degradation(sr_factor=3)
    with pytest.raises(BadInputError, match="not divisible"):
        degradation_for_task("sr", resolution=30, sr_factor=4)


# ---------------------------------------------------------------------------------------------
# Target path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4])
def test_target_path_matches_direct_pil_resize(factor: int) -> None:
    x = random_image(batch=2, size=48, seed=3)
    # The reference's conversion: [0, 1] in float32, ×255, clip, truncate to uint8.
    as_uint8 = np.clip(((x + 1) / 2).numpy() * np.float32(255), 0, 255).astype(np.uint8)
    actual = downsample_target_path(x, factor)
    for index in range(2):
        pil = Image.fromarray(as_uint8[index].transpose(1, 2, 0), mode="RGB")
        resized = np.asarray(pil.resize((48 // factor, 48 // factor), Image.Resampling.LANCZOS))
        expected = torch.from_numpy(resized.transpose(2, 0, 1).astype(np.float32)) / 255 * 2 - 1
        torch.testing.assert_close(actual[index], expected, atol=1e-6, rtol=0)


def test_target_path_truncates_instead_of_rounding() -> None:
    # 0.999 of a level above 100 must still become level 100 before resizing.
    level = torch.full((1, 3, 8, 8), (100.999 / 255) * 2 - 1)
    low = downsample_target_path(level, 2)
    torch.testing.assert_close(low, torch.full((1, 3, 4, 4), 100 / 255 * 2 - 1), atol=1e-6, rtol=0)


def test_target_path_differs_from_generator_path() -> None:
    # Two different resamplers (Lanczos-3 on uint8 vs Lanczos-2 conv), as in the reference.
    x = random_image(size=32, seed=4)
    difference = (downsample_target_path(x, 4) - downsample_generator_path(x, 4)).abs().max()
    assert difference > 1e-2


def test_target_path_keeps_dtype_and_carries_no_gradient() -> None:
    x = random_image(size=16, dtype=torch.float64).requires_grad_(True)
    low = downsample_target_path(x, 2)
    assert low.dtype == torch.float64
    assert not low.requires_grad


def smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like uint8 image: random colour blobs, smooth, away from 0 and 255."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def pil_downsample(rgb: np.ndarray, factor: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((width // factor, height // factor), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("size", [(64, 64), (48, 64)])
def test_matched_result_downsamples_to_the_input(size: tuple[int, int]) -> None:
    truth = smooth_photo(*size, seed=1)
    low = pil_downsample(truth, 4)
    # A result with the wrong tones and its own detail: noise plus a brightness shift.
    rng = np.random.default_rng(2)
    result = np.clip(truth.astype(int) + 25 + rng.integers(-30, 30, truth.shape), 0, 255).astype(np.uint8)
    assert np.abs(pil_downsample(result, 4).astype(int) - low).mean() > 20
    matched = match_low_resolution(result, low, 4)
    assert matched.shape == truth.shape and matched.dtype == np.uint8
    assert np.abs(pil_downsample(matched, 4).astype(int) - low).max() <= 1
    squared_error = lambda image: np.mean((image.astype(float) - truth) ** 2)
    assert squared_error(matched) < 0.6 * squared_error(result)


def test_matching_never_moves_a_result_away_from_the_truth() -> None:
    # An orthogonal projection onto a set that holds the truth: closer for any result.
    truth = smooth_photo(32, 32, seed=3)
    low = pil_downsample(truth, 4)
    rng = np.random.default_rng(4)
    for _ in range(20):
        result = rng.integers(0, 256, truth.shape, dtype=np.uint8)
        before = np.mean((result.astype(float) - truth) ** 2)
        after = np.mean((match_low_resolution(result, low, 4).astype(float) - truth) ** 2)
        assert after <= before


def test_a_consistent_result_is_left_as_it_is() -> None:
    truth = smooth_photo(32, 32, seed=5)
    matched = match_low_resolution(truth, pil_downsample(truth, 2), 2)
    assert np.abs(matched.astype(int) - truth).max() <= 1


def test_matching_refuses_mismatched_sizes_and_types() -> None:
    image = smooth_photo(32, 32, seed=6)
    with pytest.raises(BadInputError, match=r"needs a 8×8 low-resolution input, not 16×16"):
        match_low_resolution(image, pil_downsample(image, 2), 4)
    with pytest.raises(BadInputError, match="uint8"):
        match_low_resolution(image.astype(np.float32), pil_downsample(image, 4), 4)
    with pytest.raises(BadInputError):
        match_low_resolution(image, pil_downsample(image, 4), 3)


# ---------------------------------------------------------------------------------------------
# Gray and mask
# ---------------------------------------------------------------------------------------------


def test_gray_of_gray_is_itself() -> None:
    x = random_image(batch=2, size=16, seed=5)
    gray = rgb_to_gray(x)
    assert gray.shape == x.shape
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    # The reference weights sum to 0.9999, so graying twice shrinks values by at most 1e-4.
    torch.testing.assert_close(rgb_to_gray(gray), gray, atol=1.1e-4, rtol=0)


def test_gray_uses_reference_weights_on_signed_values() -> None:
    x = torch.tensor([-1.0, 0.5, 1.0]).view(1, 3, 1, 1)
    expected = 0.2989 * -1.0 + 0.5870 * 0.5 + 0.1140 * 1.0
    torch.testing.assert_close(rgb_to_gray(x), torch.full((1, 3, 1, 1), expected))


def test_gray_needs_three_channels() -> None:
    with pytest.raises(BadInputError, match="3-channel"):
        rgb_to_gray(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize(("size", "begin", "end"), [(128, 43, 85), (256, 85, 171)])
def test_centered_square_mask_matches_reference_hole(size: int, begin: int, end: int) -> None:
    mask = centered_square_mask(size, size)
    assert mask.shape == (1, 1, size, size)
    hole_rows = torch.nonzero(mask[0, 0].min(dim=1).values == 0).flatten()
    hole_cols = torch.nonzero(mask[0, 0].min(dim=0).values == 0).flatten()
    assert (hole_rows.min().item(), hole_rows.max().item() + 1) == (begin, end)
    assert (hole_cols.min().item(), hole_cols.max().item() + 1) == (begin, end)
    assert int((mask == 0).sum()) == (end - begin) ** 2
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_soft_mask_scales() -> None:
    x = random_image(size=16, seed=6)
    mask = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    torch.testing.assert_close(Degradation(mask=mask).generator_path(x), x * mask)
    half = Degradation(mask=torch.full((1, 1, 16, 16), 0.5))
    torch.testing.assert_close(half.target_path(x), 0.5 * x)


def test_mask_shape_errors() -> None:
    x = random_image(size=32)
    with pytest.raises(BadInputError, match="mask is 16×16 but the image is 32×32"):
        Degradation(mask=torch.ones(1, 1, 16, 16)).generator_path(x)
    with pytest.raises(BadInputError, match="mask is 16×16 but the image is 32×32"):
        Degradation(mask=torch.ones(1, 1, 16, 16)).target_path(x)
    with pytest.raises(BadInputError, match="2 masks but the batch has 3"):
        Degradation(mask=torch.ones(2, 1, 32, 32)).generator_path(random_image(batch=3, size=32))
    with pytest.raises(BadInputError, match="shape"):
        Degradation(mask=torch.ones(1, 3, 32, 32))
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        Degradation(mask=torch.full((1, 1, 32, 32), 2.0))
    with pytest.raises(BadInputError, match="mask is 64×64 but the image is 32×32"):
        degradation_for_task("inpaint", resolution=32, mask=torch.ones(1, 1, 64, 64))


def test_mask_variants_are_accepted() -> None:
    x = random_image(batch=2, size=8)
    bool_mask = torch.zeros(8, 8, dtype=torch.bool)
    bool_mask[:, :4] = True
    result = Degradation(mask=bool_mask).generator_path(x)
    assert torch.equal(result[..., :4], x[..., :4]) and bool((result[..., 4:] == 0).all())
    per_image = torch.stack([torch.ones(1, 8, 8), torch.zeros(1, 8, 8)])
    result = Degradation(mask=per_image).generator_path(x)
    assert torch.equal(result[0], x[0]) and bool((result[1] == 0).all())


def test_validate_for_inpainting() -> None:
    with pytest.raises(BadInputError, match="no painted pixels"):
        Degradation(mask=torch.ones(1, 1, 8, 8)).validate_for_inpainting()
    with pytest.raises(BadInputError, match="whole image"):
        Degradation(mask=torch.zeros(1, 1, 8, 8)).validate_for_inpainting()
    with pytest.raises(BadInputError, match="needs a mask"):
        Degradation(grayscale=True).validate_for_inpainting()
    with pytest.raises(BadInputError, match="no painted pixels"):
        degradation_for_task("inpaint", resolution=8, mask=torch.ones(1, 1, 8, 8))
    Degradation(mask=centered_square_mask(8, 8)).validate_for_inpainting()


# ---------------------------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------------------------

# Every subset of {gray, SR ×f, mask}, for each factor.
COMPOSITIONS = [
    (grayscale, sr_factor, use_mask)
    for grayscale, sr_factor, use_mask in itertools.product([False, True], [None, 2, 4, 8], [False, True])
    if grayscale or sr_factor or use_mask
]


@pytest.mark.parametrize(("grayscale", "sr_factor", "use_mask"), COMPOSITIONS)
def test_gradients_flow_through_generator_path(
    grayscale: bool, sr_factor: int | None, use_mask: bool
) -> None:
    size, hole_begin, hole_end = 128, 16, 112
    mask = torch.ones(1, 1, size, size)
    mask[..., hole_begin:hole_end, hole_begin:hole_end] = 0
    degradation = Degradation(grayscale=grayscale, sr_factor=sr_factor, mask=mask if use_mask else None)
    x = random_image(batch=2, size=size, seed=7).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    (degradation.generator_path(x) * weights).sum().backward()
    grad = x.grad
    assert grad is not None and bool(torch.isfinite(grad).all())
    # Known pixels receive gradient in every channel and every image.
    assert bool((grad[..., :hole_begin, :].abs().sum(dim=(-1, -2)) > 0).all())
    if use_mask:
        # Output pixels depend on inputs within 3f pixels (Lanczos-2 reach 2f, bilinear reach f),
        # so deeper inside the hole no output reaches back and the gradient is exactly zero.
        margin = 3 * sr_factor + 1 if sr_factor else 0
        interior = grad[..., hole_begin + margin : hole_end - margin, hole_begin + margin : hole_end - margin]
        assert interior.numel() > 0 and bool((interior == 0).all())
        if sr_factor:
            # ...but SR blurs across the hole's edge, so the band just inside it does get gradient.
            assert grad[..., hole_begin : hole_begin + 2, hole_begin:hole_end].abs().sum() > 0


def test_hybrid_order_matches_composition_by_hand() -> None:
    x = random_image(batch=2, size=32, seed=9)
    mask = centered_square_mask(32, 32)
    degradation = degradation_for_task("hybrid", resolution=32)
    assert (degradation.grayscale, degradation.sr_factor) == (True, 2)
    assert torch.equal(degradation.mask, mask)

    by_hand = rgb_to_gray(upsample_bilinear(downsample_generator_path(x, 2), 2)) * mask
    torch.testing.assert_close(degradation.generator_path(x), by_hand)
    target_by_hand = rgb_to_gray(upsample_bilinear(downsample_target_path(x, 2), 2)) * mask
    torch.testing.assert_close(degradation.target_path(x), target_by_hand)

    # The comparison is sensitive to order: masking before resampling blurs the hole's edge.
    mask_first = upsample_bilinear(downsample_generator_path(rgb_to_gray(x * mask), 2), 2)
    assert (degradation.generator_path(x) - mask_first).abs().max() > 1e-2


def test_identity_is_identity() -> None:
    x = random_image(batch=2, size=16, seed=10)
    for task in ("reconstruct", "defend"):
        degradation = degradation_for_task(task, resolution=16)
        assert degradation.is_identity
        assert degradation.describe() == "identity"
        assert torch.equal(degradation.generator_path(x), x)
        assert torch.equal(degradation.target_path(x), x)
    assert not Degradation(grayscale=True).is_identity


def test_target_from_low_resolution() -> None:
    low = random_image(batch=1, size=8, seed=11)
    mask = centered_square_mask(32, 32)
    degradation = Degradation(grayscale=True, sr_factor=4, mask=mask)
    expected = rgb_to_gray(upsample_bilinear(low, 4)) * mask
    torch.testing.assert_close(degradation.target_from_low_resolution(low), expected)
    with pytest.raises(BadInputError, match="needs 8×8"):
        degradation.target_from_low_resolution(random_image(size=16))
    with pytest.raises(BadInputError, match="downsampling factor"):
        Degradation(grayscale=True).target_from_low_resolution(low)


def test_task_factory() -> None:
    assert degradation_for_task("colorize", resolution=32) == Degradation(grayscale=True)
    assert degradation_for_task("sr", resolution=32) == Degradation(sr_factor=4)
    assert degradation_for_task("sr", resolution=32, sr_factor=8).sr_factor == 8
    inpaint = degradation_for_task("inpaint", resolution=32)
    assert torch.equal(inpaint.mask, centered_square_mask(32, 32))
    custom = degradation_for_task("hybrid", resolution=32, grayscale=True, mask=centered_square_mask(32, 32))
    assert (custom.grayscale, custom.sr_factor) == (True, None)
    assert custom.describe() == "grayscale + mask"
    assert degradation_for_task("hybrid", resolution=32).describe() == "grayscale + ×2 downsampling + mask"
    with pytest.raises(BadInputError, match="unknown task 'deblur'"):
        degradation_for_task("deblur", resolution=32)
    with pytest.raises(BadInputError, match="does not take a mask"):
        degradation_for_task("colorize", resolution=32, mask=centered_square_mask(32, 32))
    with pytest.raises(BadInputError, match="at least one"):
        degradation_for_task("hybrid", resolution=32, grayscale=False)


def test_equality_repr_and_to() -> None:
    mask = centered_square_mask(16, 16)
    first = Degradation(grayscale=True, mask=mask)
    assert first == Degradation(grayscale=True, mask=mask.clone())
    assert first != Degradation(grayscale=True, mask=torch.ones(1, 1, 16, 16))
    assert first != Degradation(grayscale=False, mask=mask)
    assert "1×1×16×16" in repr(first)
    moved = first.to("cpu")
    assert moved == first and moved.mask.device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# dtype, device, autocast
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_paths_keep_dtype(dtype: torch.dtype) -> None:
    degradation = Degradation(grayscale=True, sr_factor=4, mask=centered_square_mask(32, 32))
    x = random_image(batch=2, size=32, seed=12, dtype=dtype)
    assert degradation.generator_path(x).dtype == dtype
    assert degradation.target_path(x).dtype == dtype


def test_generator_path_under_autocast_runs_in_input_dtype() -> None:
    degradation = Degradation(grayscale=True, sr_factor=2, mask=centered_square_mask(32, 32))
    x = random_image(batch=2, size=32, seed=13)
    reference = degradation.generator_path(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = degradation.generator_path(x)
        reduced = degradation.generator_path(x.to(torch.bfloat16))
    assert full.dtype == torch.float32
    # float32 input stays float32 inside autocast: bit-identical to running outside it.
    assert torch.equal(full, reference)
    assert reduced.dtype == torch.bfloat16
    torch.testing.assert_close(reduced.float(), reference, atol=3e-2, rtol=0)
