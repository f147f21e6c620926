"""Image-quality metrics for evaluating restorations (numpy only).

Everything the evaluation harness (:mod:`engine.evaluate`) scores goes through
this module, so that every method and every task is measured the same way:

* :func:`psnr`, :func:`ssim`, :func:`mse` — the quantities the DGP reference
  code reports (``docs/dgp-method.md`` section 8). :func:`ssim` reproduces
  scikit-image's default ``structural_similarity(..., channel_axis=-1,
  data_range=...)``: a 7×7 uniform window, sample covariance, K1 = 0.01,
  K2 = 0.03, the mean over the window centres that do not touch the border,
  then the mean over channels;
* :func:`hole_region` — the reference inpainting hole (section 4.2), where
  inpainting is scored;
* :func:`lab_recompose` — section 7's colorization scoring: lightness from the
  ground truth, colour from the result;
* :func:`mean_chroma` — how colourful an image is (colorization results that
  stay grey score low);
* :func:`score_result` — the per-task recipe combining the above.

Images are compared as float arrays; :func:`score_result` converts uint8 to
[0, 1] and passes ``data_range=1`` explicitly. The reference code's SSIM used
data_range 2 on such images (section 8, section 12 item 10), which inflates
SSIM; ``score_result`` reports that variant separately as ``ssim_range2`` so
that numbers can be set beside the paper's.
"""

from __future__ import annotations

import math

import numpy as np

from engine.composite import lab_to_srgb_uint8, srgb_to_lab
from engine.errors import BadInputError

__all__ = [
    "SCORED_TASKS",
    "hole_region",
    "lab_recompose",
    "mean_chroma",
    "mse",
    "psnr",
    "score_result",
    "scored_image",
    "ssim",
    "to_unit_float",
]

#: Tasks :func:`score_result` knows (engine task names).
SCORED_TASKS: tuple[str, ...] = ("reconstruct", "colorize", "inpaint", "sr")

# scikit-image's structural_similarity defaults (Wang et al. 2004 constants).
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


# --------------------------------------------------------------------------------------
# Checks and conversions


def _pair_as_float64(a: object, b: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 arrays of the same shape, or a one-sentence error."""
    first = np.asarray(a)
    second = np.asarray(b)
    if first.shape != second.shape:
        raise BadInputError(
            f"{name} needs two images of the same shape, got {first.shape} and {second.shape}."
        )
    if first.size == 0:
        raise BadInputError(f"{name} needs non-empty images, got shape {first.shape}.")
    for image in (first, second):
        if not (np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_):
            raise BadInputError(f"{name} needs numeric images, got dtype {image.dtype}.")
    return first.astype(np.float64), second.astype(np.float64)


def _checked_data_range(data_range: object, name: str) -> float:
    # Refuse to guess the range (as scikit-image does for float images): PSNR and SSIM
    # change with it, and [0, 1] versus [-1, 1] versus [0, 255] are all common here.
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)):
        raise BadInputError(f"{name}: data_range must be a positive number, got {data_range!r}.")
    value = float(data_range)
    if not (value > 0 and math.isfinite(value)):
        raise BadInputError(f"{name}: data_range must be a positive finite number, got {data_range!r}.")
    return value


def _check_rgb_uint8(image: object, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadInputError(
            f"{name} needs an H×W×3 uint8 RGB image, got shape {getattr(image, 'shape', None)} "
            f"and dtype {getattr(image, 'dtype', None)}."
        )
    return image


def to_unit_float(rgb_uint8: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] → float64 in [0, 1] (``value / 255``), same shape."""
    if not isinstance(rgb_uint8, np.ndarray) or rgb_uint8.dtype != np.uint8:
        raise BadInputError(
            f"to_unit_float needs a uint8 array, got dtype {getattr(rgb_uint8, 'dtype', None)}."
        )
    return rgb_uint8.astype(np.float64) / 255.0


# --------------------------------------------------------------------------------------
# Pixel metrics


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error, computed in float64.

    Parameters
    ----------
    a, b : np.ndarray
        Images of the same shape (any layout, any numeric dtype); compared in the
        units they are given in (e.g. [0, 1]).

    Returns
    -------
    float
        ``mean((a - b)²)`` ≥ 0, as ``skimage.metrics.mean_squared_error``.
    """
    first, second = _pair_as_float64(a, b, "mse")
    return float(np.mean((first - second) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB.

    Parameters
    ----------
    a, b : np.ndarray
        Images of the same shape; ``a`` is the reference (the order does not
        change the value).
    data_range : float, keyword-only
        The span of possible values: 1 for images in [0, 1], 255 for uint8
        levels, 2 for [-1, 1]. Required; there is no guess from the dtype.

    Returns
    -------
    float
        ``10·log10(data_range² / mse)``; ``inf`` for identical images. Equals
        ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=...)``.
    """
    value_range = _checked_data_range(data_range, "psnr")
    error = mse(a, b)
    if error == 0.0:
        return math.inf
    return float(10.0 * np.log10(value_range**2 / error))


def _box_mean_valid(image_hw: np.ndarray, size: int) -> np.ndarray:
    """Mean over every size×size window that lies fully inside the image.

    Returns shape ``(H - size + 1, W - size + 1)``: exactly the window centres
    scikit-image keeps after cropping ``(size - 1) // 2`` pixels per side, so the
    filter's border mode never matters. Separable: rows, then columns.
    """
    windows = np.lib.stride_tricks.sliding_window_view
    rows = windows(image_hw, size, axis=0).sum(axis=-1)
    return windows(rows, size, axis=1).sum(axis=-1) / float(size * size)


def _ssim_single_channel(first: np.ndarray, second: np.ndarray, *, data_range: float, win_size: int) -> float:
    count = win_size * win_size
    covariance_norm = count / (count - 1)  # sample covariance, skimage's default
    mean_x = _box_mean_valid(first, win_size)
    mean_y = _box_mean_valid(second, win_size)
    mean_xx = _box_mean_valid(first * first, win_size)
    mean_yy = _box_mean_valid(second * second, win_size)
    mean_xy = _box_mean_valid(first * second, win_size)
    variance_x = covariance_norm * (mean_xx - mean_x * mean_x)
    variance_y = covariance_norm * (mean_yy - mean_y * mean_y)
    covariance = covariance_norm * (mean_xy - mean_x * mean_y)
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    return float(np.mean(numerator / denominator, dtype=np.float64))


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float, win_size: int = 7) -> float:
    """Mean structural similarity, scikit-image's default computation.

    Parameters
    ----------
    a, b : np.ndarray
        Images of the same shape: H×W (one channel) or H×W×C (channels last,
        each scored separately and averaged). H and W must be at least
        ``win_size``.
    data_range : float, keyword-only
        The span of possible values (1 for [0, 1]); sets the stabilising
        constants C1 = (0.01·range)², C2 = (0.03·range)². Required.
    win_size : int, keyword-only
        Side of the uniform square window, odd (default 7).

    Returns
    -------
    float
        Mean SSIM in [-1, 1]; 1 for identical images.

    Notes
    -----
    Equals ``skimage.metrics.structural_similarity(a, b, data_range=...,
    channel_axis=-1)`` for 3-D inputs (``channel_axis=None`` for 2-D): local
    means, variances and covariance over a ``win_size``² uniform window with
    sample covariance (normalised by N − 1), the SSIM map averaged over the
    window positions that fit entirely inside the image, in float64.
    """
    value_range = _checked_data_range(data_range, "ssim")
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise BadInputError(f"ssim: win_size must be an odd whole number of at least 3, got {win_size!r}.")
    first, second = _pair_as_float64(a, b, "ssim")
    if first.ndim == 2:
        first, second = first[..., None], second[..., None]
    if first.ndim != 3:
        raise BadInputError(f"ssim needs H×W or H×W×C images, got shape {first.shape}.")
    height, width = first.shape[:2]
    if height < win_size or width < win_size:
        raise BadInputError(
            f"ssim: the images are {height}×{width}, smaller than the {win_size}×{win_size} window."
        )
    per_channel = [
        _ssim_single_channel(first[..., c], second[..., c], data_range=value_range, win_size=win_size)
        for c in range(first.shape[2])
    ]
    return float(np.mean(per_channel))


# --------------------------------------------------------------------------------------
# Task-specific regions and colour


def hole_region(height: int, width: int) -> tuple[slice, slice]:
    """The reference inpainting hole as (row slice, column slice).

    Parameters
    ----------
    height, width : int
        Image size in pixels.

    Returns
    -------
    tuple of slice
        ``(rows, columns)`` indexing the hole of
        :func:`engine.degrade.centered_square_mask`: ``hole = min(H, W) // 3``,
        ``begin = (H - hole) // 2``, ``end = H - begin`` for rows *and* columns
        (both from H, as the reference does; section 4.2). At 64 px that is
        rows/columns 21–42 (22 pixels, one more than ``hole`` by rounding).
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BadInputError(f"hole_region: {name} must be a positive whole number, got {value!r}.")
    hole = min(int(height), int(width)) // 3
    begin = (int(height) - hole) // 2
    end = int(height) - begin
    return slice(begin, end), slice(begin, end)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean CIE chroma ``sqrt(a*² + b*²)`` of an sRGB image.

    Parameters
    ----------
    rgb : np.ndarray
        H×W×3 uint8 sRGB.

    Returns
    -------
    float
        Mean chroma over all pixels, ≥ 0 (0 for a grey image; natural photos
        are typically 10–30). Lab with D65 white, as
        :func:`engine.composite.srgb_to_lab`.
    """
    image = _check_rgb_uint8(rgb, "mean_chroma")
    lab = srgb_to_lab(image).astype(np.float64)
    return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


def lab_recompose(result_rgb: np.ndarray, luminance_source_rgb: np.ndarray) -> np.ndarray:
    """Section 7's colorization output: L* of one image, a* b* of another.

    Parameters
    ----------
    result_rgb : np.ndarray
        H×W×3 uint8 sRGB: the colorization result (gives a*, b*).
    luminance_source_rgb : np.ndarray
        H×W×3 uint8 sRGB of the same size: gives L* (in the evaluation setting
        the ground truth, as the reference code does; section 12 item 6).

    Returns
    -------
    np.ndarray
        New H×W×3 uint8 sRGB.

    Notes
    -----
    The back conversion is :func:`engine.composite.lab_to_srgb_uint8`, the one
    the app's colorization composite uses: out-of-gamut colours lose chroma,
    never lightness. The reference's ``skimage.color.lab2rgb`` clips RGB
    instead; the two agree wherever the combination lies inside sRGB.
    """
    result = _check_rgb_uint8(result_rgb, "lab_recompose's result")
    source = _check_rgb_uint8(luminance_source_rgb, "lab_recompose's luminance source")
    if result.shape != source.shape:
        raise BadInputError(
            f"lab_recompose needs two images of the same size, got {result.shape[1]}×{result.shape[0]} "
            f"and {source.shape[1]}×{source.shape[0]}."
        )
    lab = srgb_to_lab(source)
    colour = srgb_to_lab(result)
    lab[..., 1:] = colour[..., 1:]
    return lab_to_srgb_uint8(lab)


# --------------------------------------------------------------------------------------
# Per-task scoring


def _check_task(task: str) -> None:
    if task not in SCORED_TASKS:
        raise BadInputError(f"unknown task {task!r} to score; expected one of {', '.join(SCORED_TASKS)}.")


def scored_image(task: str, result_rgb: np.ndarray, truth_rgb: np.ndarray) -> np.ndarray:
    """The image a task's metrics are computed on (full size).

    For ``colorize`` the Lab recomposition of the result with the ground
    truth's L* (:func:`lab_recompose`); for the other tasks the result itself.
    Both arguments are H×W×3 uint8; returns H×W×3 uint8.
    """
    _check_task(task)
    result = _check_rgb_uint8(result_rgb, f"the {task} result")
    truth = _check_rgb_uint8(truth_rgb, "the ground truth")
    if result.shape != truth.shape:
        raise BadInputError(
            f"the {task} result is {result.shape[1]}×{result.shape[0]} but the ground truth is "
            f"{truth.shape[1]}×{truth.shape[0]}."
        )
    if task == "colorize":
        return lab_recompose(result, truth)
    return result


def score_result(task: str, result_rgb: np.ndarray, truth_rgb: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and MSE of a restoration against its ground truth, the paper's way.

    Parameters
    ----------
    task : str
        ``reconstruct``, ``sr`` (whole image), ``inpaint`` (the
        :func:`hole_region` crop only) or ``colorize`` (the Lab recomposition
        with the ground truth's L*, see :func:`scored_image`).
    result_rgb, truth_rgb : np.ndarray
        H×W×3 uint8 sRGB of the same size.

    Returns
    -------
    dict of str to float
        ``psnr`` (dB), ``ssim``, ``mse`` on images scaled to [0, 1] with
        ``data_range = 1``; ``ssim_range2`` with ``data_range = 2``, the
        reference code's (inflated) SSIM, for comparison with the paper only;
        for ``colorize`` also ``chroma`` (mean chroma of the scored image) and
        ``chroma_truth`` (of the ground truth).
    """
    scored = scored_image(task, result_rgb, truth_rgb)
    truth = truth_rgb
    if task == "inpaint":
        rows, columns = hole_region(truth.shape[0], truth.shape[1])
        scored, truth = scored[rows, columns], truth[rows, columns]
    result_unit, truth_unit = to_unit_float(scored), to_unit_float(truth)
    scores = {
        "psnr": psnr(truth_unit, result_unit, data_range=1.0),
        "ssim": ssim(truth_unit, result_unit, data_range=1.0),
        "ssim_range2": ssim(truth_unit, result_unit, data_range=2.0),
        "mse": mse(truth_unit, result_unit),
    }
    if task == "colorize":
        scores["chroma"] = mean_chroma(scored)
        scores["chroma_truth"] = mean_chroma(truth)
    return scores
