"""The SR projection's guarantee with uint8 inputs (``engine.degrade.match_low_resolution``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.degrade import _lanczos_resize_operator, match_low_resolution

FACTOR = 4


def truth(size: int = 64) -> np.ndarray:
    """Hard black/white edges (Lanczos overshoot that PIL clips) over a colour gradient."""
    ys, xs = np.mgrid[0:size, 0:size]
    image = np.stack([xs * 4.0, ys * 4.0, (xs + ys) * 2.0], axis=-1)
    image[(xs // 8 + ys // 8) % 2 == 0] = 255
    image[10:20, 30:50] = 0
    return np.clip(image, 0, 255).astype(np.uint8)


def apply(matrix_v: np.ndarray, image: np.ndarray, matrix_h: np.ndarray) -> np.ndarray:
    return np.einsum("ir,rcq,jc->ijq", matrix_v, image, matrix_h)


def test_a_perfect_result_moves_by_the_inputs_own_error_and_no_further():
    t = truth()
    low = np.asarray(Image.fromarray(t).resize((16, 16), Image.Resampling.LANCZOS))
    operator, inverse = _lanczos_resize_operator(64, FACTOR)
    e = low - apply(operator, t.astype(np.float64), operator)
    pinv_e = apply(inverse, e, inverse)
    assert np.abs(e).max() > 1, "uint8 rounding and clipping make low differ from A·t"
    # The old claim fails: the truth itself is moved.
    moved = match_low_resolution(t, low, FACTOR).astype(np.float64) - t
    assert np.sqrt(np.mean(moved**2)) > 0.1
    # The stated bound holds, for the truth and for results with errors of any size.
    rng = np.random.default_rng(0)
    slack = 0.5 * np.sqrt(t.size)   # rounding the output to integers
    for noise in (0.0, 2.0, 8.0, 30.0):
        x = np.clip(t + rng.normal(0, noise, t.shape), 0, 255).round().astype(np.uint8)
        error = x.astype(np.float64) - t
        in_band = apply(inverse, apply(operator, error, operator), inverse)   # A⁺A(x − t)
        bound_sq = np.sum(error**2) - np.sum(in_band**2) + np.sum(pinv_e**2)
        result = match_low_resolution(x, low, FACTOR).astype(np.float64)
        assert np.linalg.norm(result - t) <= np.sqrt(bound_sq) + slack
        assert np.linalg.norm(result - t) <= np.linalg.norm(error) + np.linalg.norm(pinv_e) + slack
    # With large errors in the input's frequencies the projection does bring it closer.
    x = np.clip(t.astype(np.float64) + 40, 0, 255).astype(np.uint8)
    assert np.linalg.norm(match_low_resolution(x, low, FACTOR).astype(np.float64) - t) < np.linalg.norm(
        x.astype(np.float64) - t
    )
