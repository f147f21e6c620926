"""Region of interest, model-input preparation and full-resolution compositing.

The model works on a fixed R×R square (64, 128, 256); users bring 4000×3000 photos. The
user (or :meth:`RegionOfInterest.largest_centred_square`) picks a square region of
interest (ROI); it is resized to R×R for the model, and the model's R×R result is put
back into a copy of the full-resolution original so that everything the task did not
need to change keeps its full-resolution pixels:

* colorize: full-resolution lightness (CIE L*) of the original, colour (a*, b*) of the result;
* inpaint: only painted pixels (plus a thin feathered rim) come from the result;
* sr: the ROI at ×f, entirely from the result;
* reconstruct / defend: the result, resized, replaces the ROI;
* hybrid: a combination of the above (see :func:`composite_for_task`).

The original arrays are never modified; every function returns a new array.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.errors import BadInputError
from engine.imageio import LoadedImage

__all__ = [
    "COMPOSITE_TASKS",
    "RegionOfInterest",
    "composite_colorization",
    "composite_for_task",
    "composite_inpainting",
    "composite_reconstruction",
    "composite_super_resolution",
    "default_feather_px",
    "lab_to_srgb_uint8",
    "prepare_low_resolution_input",
    "prepare_mask",
    "prepare_model_input",
    "small_region_notice",
    "srgb_to_lab",
    "unreachable_mask_fraction",
]

#: Tasks :func:`composite_for_task` knows (the same names as ``engine.degrade``).
COMPOSITE_TASKS: tuple[str, ...] = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")


# --------------------------------------------------------------------------------------
# Region of interest


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class RegionOfInterest:
    """A square region of an image, in full-resolution pixel coordinates.

    Attributes
    ----------
    left, top : int
        Column and row of the region's top-left pixel.
    size : int
        Side length in pixels; the region covers columns ``left … left + size − 1`` and rows
        ``top … top + size − 1``.
    """

    left: int
    top: int
    size: int

    def __post_init__(self) -> None:
        for name in ("left", "top", "size"):
            value = getattr(self, name)
            if not _is_integer(value):
                raise BadInputError(f"the region of interest's {name} must be an integer, not {value!r}.")
            object.__setattr__(self, name, int(value))  # numpy integers → plain int

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.left + self.size

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.top + self.size

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)``, Pillow's crop box."""
        return (self.left, self.top, self.right, self.bottom)

    @property
    def width(self) -> int:
        return self.size

    @property
    def height(self) -> int:
        return self.size

    @classmethod
    def largest_centred_square(cls, width: int, height: int) -> RegionOfInterest:
        """The reference target crop: a centred square of side ``min(width, height)``.

        Offsets are rounded like torchvision's ``center_crop``,
        ``int(round((height − size) / 2.0))`` (Python's round, half to even), so that the
        region matches the published preprocessing pixel for pixel.
        """
        if not (_is_integer(width) and _is_integer(height)) or width < 1 or height < 1:
            raise BadInputError(f"the image size must be two positive integers, not {width!r}×{height!r}.")
        size = min(int(width), int(height))
        return cls(
            left=int(round((width - size) / 2.0)),
            top=int(round((height - size) / 2.0)),
            size=size,
        )

    def validate(self, width: int, height: int) -> RegionOfInterest:
        """Check that the region is non-empty and lies inside a ``width``×``height`` image.

        Returns
        -------
        RegionOfInterest
            ``self``, for chaining.

        Raises
        ------
        BadInputError
            When ``size < 1`` or any part of the region is outside the image.
        """
        if self.size < 1:
            raise BadInputError(f"the region of interest must be at least 1 pixel wide, not {self.size}.")
        if self.left < 0 or self.top < 0 or self.right > width or self.bottom > height:
            raise BadInputError(
                f"the region of interest (left {self.left}, top {self.top}, size {self.size}) "
                f"does not fit inside the {width}×{height} image."
            )
        return self

    def crop(self, array: np.ndarray) -> np.ndarray:
        """Cut the region out of an H×W or H×W×C array.

        Returns
        -------
        np.ndarray
            size×size (×C) copy, C-contiguous, same dtype; the input is not referenced.
        """
        return _crop(self, array)


def _crop(region: RegionOfInterest | Box, array: np.ndarray) -> np.ndarray:
    """``region`` of an H×W or H×W×C array, as a C-contiguous copy."""
    if not isinstance(array, np.ndarray) or array.ndim not in (2, 3):
        received = getattr(array, "shape", type(array).__name__)
        raise BadInputError(f"the array to crop must be H×W or H×W×C, got {received}.")
    region.validate(array.shape[1], array.shape[0])
    return np.array(array[region.top : region.bottom, region.left : region.right], copy=True, order="C")


@dataclass(frozen=True)
class Box:
    """A rectangle of an image in full-resolution pixels; the model sees it squeezed to its square.

    A :class:`RegionOfInterest` is the square special case; both have ``left``, ``top``,
    ``width``, ``height``, ``right``, ``bottom``, ``box``, ``crop`` and ``validate``, and
    every function below takes either.
    """

    left: int
    top: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("left", "top", "width", "height"):
            value = getattr(self, name)
            if not _is_integer(value):
                raise BadInputError(f"the region's {name} must be an integer, not {value!r}.")
            object.__setattr__(self, name, int(value))

    @classmethod
    def whole(cls, width: int, height: int) -> Box:
        """The whole ``width``×``height`` image."""
        return cls(0, 0, int(width), int(height))

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def size(self) -> int:
        """The longer side (what "how large is the region" means for notices and feathering)."""
        return max(self.width, self.height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)

    def validate(self, width: int, height: int) -> Box:
        if self.width < 1 or self.height < 1:
            raise BadInputError(f"the region must be at least 1 pixel wide and high, not {self.width}×{self.height}.")
        if self.left < 0 or self.top < 0 or self.right > width or self.bottom > height:
            raise BadInputError(
                f"the region (left {self.left}, top {self.top}, {self.width}×{self.height}) "
                f"does not fit inside the {width}×{height} image."
            )
        return self

    def crop(self, array: np.ndarray) -> np.ndarray:
        return _crop(self, array)


# --------------------------------------------------------------------------------------
# Helpers


def _rgb_array(image: LoadedImage | np.ndarray, name: str) -> np.ndarray:
    array = image.rgb if isinstance(image, LoadedImage) else image
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise BadInputError(
            f"{name} must be an H×W×3 uint8 array, got shape {getattr(array, 'shape', None)} "
            f"and dtype {getattr(array, 'dtype', type(array).__name__)}."
        )
    return array


def _model_result(result_rgb_model: np.ndarray) -> np.ndarray:
    result = _rgb_array(result_rgb_model, "the model result")
    if result.shape[0] != result.shape[1]:
        raise BadInputError(f"the model result must be square, got {result.shape[1]}×{result.shape[0]}.")
    return result


def _positive_int(value: object, name: str) -> int:
    if not _is_integer(value) or int(value) < 1:  # type: ignore[call-overload]
        raise BadInputError(f"{name} must be a positive integer, not {value!r}.")
    return int(value)  # type: ignore[call-overload]


def _target_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, numbers.Integral) else (int(size[0]), int(size[1]))


def _resize_rgb(rgb: np.ndarray, size: int | tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize H×W×3 uint8 to ``size`` (a side, or (width, height)) with Pillow (antialiased when shrinking)."""
    width, height = _target_size(size)
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return np.array(rgb, copy=True, order="C")
    resized = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").resize((width, height), resample)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8))


def _resize_float(plane: np.ndarray, size: int | tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize one H×W float plane to ``size`` (a side, or (width, height)) with Pillow's mode "F"."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize(_target_size(size), resample), dtype=np.float32)


# --------------------------------------------------------------------------------------
# Model input


def prepare_model_input(
    image: LoadedImage | np.ndarray, roi: RegionOfInterest, resolution: int
) -> np.ndarray:
    """Crop the region and resize it to the model's R×R, like the reference target preparation.

    Parameters
    ----------
    image : LoadedImage or np.ndarray
        The full-resolution image, H×W×3 uint8.
    roi : RegionOfInterest
        Square region inside the image.
    resolution : int
        R, the model's side length.

    Returns
    -------
    np.ndarray
        R×R×3 uint8: the crop resized with Pillow's bilinear filter (DGP §3; Pillow
        antialiases when shrinking, as the reference did).
    """
    rgb = _rgb_array(image, "the image")
    resolution = _positive_int(resolution, "the model resolution")
    return _resize_rgb(roi.crop(rgb), resolution, Image.Resampling.BILINEAR)


def prepare_mask(mask_hw: np.ndarray, roi: RegionOfInterest, resolution: int) -> np.ndarray:
    """Crop a full-resolution mask to the region and area-average it to R×R.

    Parameters
    ----------
    mask_hw : np.ndarray
        H×W float in [0, 1], 1 = painted = missing (see ``engine.imageio.load_mask``).
    roi : RegionOfInterest
        Square region inside the mask.
    resolution : int
        R, the model's side length.

    Returns
    -------
    np.ndarray
        R×R float32 in [0, 1], 1 = missing. Each model pixel holds the painted fraction of
        the full-resolution pixels it covers (a box filter), so stroke edges become soft
        instead of aliased. Note that ``engine.degrade`` takes a *known*-pixel mask
        (1 = known): pass ``1 − prepare_mask(...)`` there.
    """
    if not isinstance(mask_hw, np.ndarray) or mask_hw.ndim != 2:
        raise BadInputError(f"the mask must be an H×W array, got {getattr(mask_hw, 'shape', None)}.")
    resolution = _positive_int(resolution, "the model resolution")
    crop = roi.crop(mask_hw).astype(np.float32)
    resized = _resize_float(crop, resolution, Image.Resampling.BOX)
    return np.ascontiguousarray(np.clip(resized, 0.0, 1.0), dtype=np.float32)


def prepare_low_resolution_input(
    image: LoadedImage | np.ndarray, roi: RegionOfInterest, resolution: int, factor: int
) -> np.ndarray:
    """The low-resolution view of the region for super-resolution: (R/f)×(R/f).

    Parameters
    ----------
    image : LoadedImage or np.ndarray
        The full-resolution image, H×W×3 uint8.
    roi : RegionOfInterest
        Square region inside the image.
    resolution : int
        R, the model's output side length; must be divisible by ``factor``.
    factor : int
        Super-resolution factor f ≥ 1.

    Returns
    -------
    np.ndarray
        (R/f)×(R/f)×3 uint8, the crop resized with Lanczos (the filter of the reference's
        target path, DGP §4.3).
    """
    rgb = _rgb_array(image, "the image")
    resolution = _positive_int(resolution, "the model resolution")
    factor = _positive_int(factor, "the super-resolution factor")
    if resolution % factor:
        raise BadInputError(
            f"the model resolution {resolution} is not divisible by the super-resolution factor {factor}."
        )
    return _resize_rgb(roi.crop(rgb), resolution // factor, Image.Resampling.LANCZOS)


def small_region_notice(roi: RegionOfInterest, resolution: int, *, factor: int | None = None) -> str | None:
    """A one-sentence notice when the region is not at the size the model takes in.

    Parameters
    ----------
    roi : RegionOfInterest
        The chosen region.
    resolution : int
        R, the model's side length.
    factor : int, optional, keyword-only
        For super-resolution: the model's input is (R/f)×(R/f), so that is the size compared.

    Returns
    -------
    str or None
        None when the region is at least as large as the model's input (and, for
        super-resolution, not larger either); otherwise a sentence saying what happens.
    """
    resolution = _positive_int(resolution, "the model resolution")
    if factor is None:
        if roi.size >= resolution:
            return None
        return (
            f"The selected region is {roi.size}×{roi.size} pixels, smaller than the model's "
            f"{resolution}×{resolution}, so it is enlarged ×{resolution / roi.size:.2f} first and the "
            "result will look soft."
        )
    factor = _positive_int(factor, "the super-resolution factor")
    input_side = resolution // factor
    if roi.size < input_side:
        return (
            f"The selected region is {roi.size}×{roi.size} pixels, smaller than the model's "
            f"{input_side}×{input_side} input, so it is enlarged before the ×{factor} super-resolution."
        )
    if roi.size > input_side:
        return (
            f"The selected region is {roi.size}×{roi.size} pixels but the model's ×{factor} input is "
            f"{input_side}×{input_side}, so the region is reduced first and the result holds less detail "
            "than the region itself."
        )
    return None


# --------------------------------------------------------------------------------------
# sRGB ↔ CIE L*a*b* (D65)

# IEC 61966-2-1 linear sRGB → XYZ (D65). The white point is taken as the matrix's own
# image of RGB = (1, 1, 1) rather than the rounded published D65 triple, so that every
# neutral grey maps to a* = b* = 0 exactly and back to R = G = B.
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float64,
)
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_WHITE_XYZ = _SRGB_TO_XYZ.sum(axis=1)
# Fold the white normalisation into the matrices: linear RGB ↔ XYZ/white.
# Fold the white normalisation into the matrices (linear RGB ↔ XYZ/white) and keep them
# as Python floats: the conversions below work on planes with scalar coefficients,
# several times faster than an (N, 3) @ (3, 3) product, which BLAS does not speed up.
_RGB_TO_NORMALISED_XYZ = tuple(tuple(float(v) for v in row) for row in _SRGB_TO_XYZ / _WHITE_XYZ[:, None])
_NORMALISED_XYZ_TO_RGB = tuple(tuple(float(v) for v in row) for row in _XYZ_TO_SRGB * _WHITE_XYZ[None, :])

_DELTA = 6.0 / 29.0
_LAB_EPSILON = _DELTA**3
_LAB_SLOPE = 1.0 / (3.0 * _DELTA**2)
_LAB_OFFSET = 4.0 / 29.0


def _srgb_decode_table() -> np.ndarray:
    levels = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(levels <= 0.04045, levels / 12.92, ((levels + 0.055) / 1.055) ** 2.4)
    return linear.astype(np.float32)


_SRGB_TO_LINEAR = _srgb_decode_table()


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _LAB_EPSILON, np.cbrt(t), t * np.float32(_LAB_SLOPE) + np.float32(_LAB_OFFSET))


def _lab_f_inverse(f: np.ndarray) -> np.ndarray:
    return np.where(f > _DELTA, f * f * f, (f - np.float32(_LAB_OFFSET)) * np.float32(1.0 / _LAB_SLOPE))


def srgb_to_lab(rgb_uint8: np.ndarray) -> np.ndarray:
    """Convert 8-bit sRGB to CIE L*a*b* (D65 white, 2° observer).

    Parameters
    ----------
    rgb_uint8 : np.ndarray
        (…, 3) uint8 in [0, 255].

    Returns
    -------
    np.ndarray
        (…, 3) float32: L* in [0, 100], a* and b* roughly in [−128, 128].
    """
    if not isinstance(rgb_uint8, np.ndarray) or rgb_uint8.dtype != np.uint8 or rgb_uint8.shape[-1:] != (3,):
        raise BadInputError(
            f"srgb_to_lab needs a (…, 3) uint8 array, got shape {getattr(rgb_uint8, 'shape', None)} "
            f"and dtype {getattr(rgb_uint8, 'dtype', None)}."
        )
    red, green, blue = (_SRGB_TO_LINEAR[rgb_uint8[..., channel]] for channel in range(3))
    fx, fy, fz = (
        _lab_f(row[0] * red + row[1] * green + row[2] * blue) for row in _RGB_TO_NORMALISED_XYZ
    )
    lab = np.empty(rgb_uint8.shape, dtype=np.float32)
    lab[..., 0] = 116.0 * fy - 16.0
    lab[..., 1] = 500.0 * (fx - fy)
    lab[..., 2] = 200.0 * (fy - fz)
    return lab


def _lab_to_linear_rgb(
    normalised_y: np.ndarray, fy: np.ndarray, a_star: np.ndarray, b_star: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planes of L* (given as Y/Yn and f(Y/Yn)), a*, b* → linear R, G, B, unclipped."""
    x = _lab_f_inverse(fy + a_star * np.float32(1.0 / 500.0))
    z = _lab_f_inverse(fy - b_star * np.float32(1.0 / 200.0))
    return tuple(  # type: ignore[return-value]
        row[0] * x + row[1] * normalised_y + row[2] * z for row in _NORMALISED_XYZ_TO_RGB
    )


def _fits_gamut(red: np.ndarray, green: np.ndarray, blue: np.ndarray, tolerance: float) -> np.ndarray:
    low, high = -tolerance, 1.0 + tolerance
    return (
        (red >= low) & (red <= high) & (green >= low) & (green <= high) & (blue >= low) & (blue <= high)
    )


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4, dtype=np.float32) - 0.055
    )


def _lab_to_srgb_uint8_flat(flat: np.ndarray, bisection_steps: int) -> np.ndarray:
    """(N, 3) L*a*b* → (N, 3) uint8 sRGB with lightness-preserving chroma reduction."""
    fy = (np.clip(flat[:, 0], 0.0, 100.0) + np.float32(16.0)) * np.float32(1.0 / 116.0)
    normalised_y = _lab_f_inverse(fy)
    a_star, b_star = flat[:, 1], flat[:, 2]
    red, green, blue = _lab_to_linear_rgb(normalised_y, fy, a_star, b_star)
    # Tolerance on linear RGB: 1e-5 of full scale moves L* by < 0.01 even near black.
    tolerance = 1e-5
    outside = np.flatnonzero(~_fits_gamut(red, green, blue, tolerance))
    if outside.size:
        sub_y, sub_fy, sub_a, sub_b = normalised_y[outside], fy[outside], a_star[outside], b_star[outside]
        inside_scale = np.zeros(outside.size, dtype=np.float32)
        outside_scale = np.ones(outside.size, dtype=np.float32)
        for _ in range(bisection_steps):
            middle = 0.5 * (inside_scale + outside_scale)
            fits = _fits_gamut(*_lab_to_linear_rgb(sub_y, sub_fy, middle * sub_a, middle * sub_b), tolerance)
            inside_scale = np.where(fits, middle, inside_scale)
            outside_scale = np.where(fits, outside_scale, middle)
        fixed = _lab_to_linear_rgb(sub_y, sub_fy, inside_scale * sub_a, inside_scale * sub_b)
        for plane, fixed_plane in zip((red, green, blue), fixed):
            plane[outside] = fixed_plane
    rgb = np.empty(flat.shape, dtype=np.uint8)
    for channel, plane in enumerate((red, green, blue)):
        rgb[:, channel] = np.clip(np.rint(_srgb_encode(plane) * 255.0), 0, 255)
    return rgb


def lab_to_srgb_uint8(lab: np.ndarray, *, bisection_steps: int = 10) -> np.ndarray:
    """Convert CIE L*a*b* (D65) to 8-bit sRGB, reducing chroma, never lightness, to fit the gamut.

    Parameters
    ----------
    lab : np.ndarray
        (…, 3) float, L* in [0, 100].
    bisection_steps : int, keyword-only
        Steps of the per-pixel search for the largest chroma that fits. Every step only
        ever keeps a scale that fits, so lightness is exact whatever the count; the count
        bounds the chroma given away (10 → at most 2⁻¹⁰ ≈ 0.1 % of it).

    Returns
    -------
    np.ndarray
        (…, 3) uint8 sRGB.

    Notes
    -----
    A colour (L*, a*, b*) outside the sRGB gamut is replaced by (L*, s·a*, s·b*) with the
    largest s in [0, 1] found inside: same lightness and hue, less saturated. s = 0 is
    always inside (the neutral grey of that lightness), so the search always succeeds.
    Clipping the RGB channels instead would also change the lightness, by many units for
    saturated colours in dark or bright areas. What remains is the uint8 rounding, which
    moves L* by well under one unit.
    """
    lab = np.asarray(lab, dtype=np.float32)
    if lab.shape[-1:] != (3,):
        raise BadInputError(f"lab_to_srgb_uint8 needs a (…, 3) array, got shape {lab.shape}.")
    flat = lab.reshape(-1, 3)
    rgb = np.empty(flat.shape, dtype=np.uint8)
    # Chunks keep the temporaries of a 3000×3000 region to tens of megabytes.
    chunk = 1 << 18
    for start in range(0, flat.shape[0], chunk):
        rgb[start : start + chunk] = _lab_to_srgb_uint8_flat(flat[start : start + chunk], bisection_steps)
    return rgb.reshape(lab.shape)


# --------------------------------------------------------------------------------------
# Compositing


# Generators draw their least reliable pixels along the image border (zero
# padding); with colour unconstrained by a grey input, those show as coloured
# lines along the region's edge. The result's colour fades in over this many
# model pixels from the edge, blending towards the original's own colour.
COLOUR_EDGE_TAPER_MODEL_PX = 1.5


def _edge_taper(
    width: int, height: int, *, band_px: int, open_sides: tuple[bool, bool, bool, bool] = (False,) * 4
) -> np.ndarray:
    """height x width float32 weights: 1 inside, rising linearly from the edge over ``band_px`` pixels.

    ``open_sides`` (left, top, right, bottom) marks edges that lie on the photo's own border:
    there is no original colour beyond them to fade into, so they are not tapered.
    """
    if band_px <= 0:
        return np.ones((height, width), dtype=np.float32)

    def ramp(side: int, open_low: bool, open_high: bool) -> np.ndarray:
        index = np.arange(side, dtype=np.float32)
        low = np.full(side, np.inf, dtype=np.float32) if open_low else index
        high = np.full(side, np.inf, dtype=np.float32) if open_high else side - 1 - index
        return np.clip((np.minimum(low, high) + 1) / (band_px + 1), 0.0, 1.0)

    left, top, right, bottom = open_sides
    return np.minimum(ramp(height, top, bottom)[:, None], ramp(width, left, right)[None, :])


def composite_colorization(
    original_rgb: LoadedImage | np.ndarray, roi: RegionOfInterest, result_rgb_model: np.ndarray
) -> np.ndarray:
    """Colour the region at full resolution: original lightness, the model's colour.

    Parameters
    ----------
    original_rgb : LoadedImage or np.ndarray
        H×W×3 uint8, the full-resolution (usually grey) original.
    roi : RegionOfInterest
        The region the model saw.
    result_rgb_model : np.ndarray
        R×R×3 uint8, the model's colourised output for that region.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8. Inside the region: L* of the original pixel (so every
        full-resolution detail is kept), a* and b* of the result, resized from R×R to the
        region with Pillow's bilinear filter (colour is smooth; bilinear cannot overshoot
        and invent saturation). Within 1.5 model pixels of the region's edge the result's
        colour fades into the original's (``COLOUR_EDGE_TAPER_MODEL_PX``), hiding the
        generator's border artefacts and the seam. Outside the region: the original
        pixels, unchanged.

    Notes
    -----
    Where the combination falls outside sRGB, chroma is reduced until it fits and
    lightness is kept (see :func:`lab_to_srgb_uint8`); the output's L* equals the
    original's to within the uint8 rounding (well below 1 unit).
    """
    original = _rgb_array(original_rgb, "the original image")
    result = _model_result(result_rgb_model)
    roi.validate(original.shape[1], original.shape[0])
    region_lab = srgb_to_lab(roi.crop(original))
    result_lab = srgb_to_lab(result)
    height, width = original.shape[:2]
    open_sides = (roi.left == 0, roi.top == 0, roi.right == width, roi.bottom == height)
    weight = _edge_taper(
        roi.width, roi.height, band_px=round(COLOUR_EDGE_TAPER_MODEL_PX * roi.size / result.shape[0]),
        open_sides=open_sides,
    )
    for channel in (1, 2):
        colour = _resize_float(result_lab[..., channel], (roi.width, roi.height), Image.Resampling.BILINEAR)
        region_lab[..., channel] = weight * colour + (1 - weight) * region_lab[..., channel]
    output = np.array(original, copy=True, order="C")
    output[roi.top : roi.bottom, roi.left : roi.right] = lab_to_srgb_uint8(region_lab)
    return output


def default_feather_px(roi: RegionOfInterest) -> int:
    """Default feather width for inpainting: ``max(2, round(roi.size / 128))`` pixels.

    About one model pixel at R = 128: the seam the model could not see at its own
    resolution is hidden over roughly the distance one model pixel covers.
    """
    return max(2, int(round(roi.size / 128)))


def _dilate_max(weights: np.ndarray, *, diagonal: bool) -> np.ndarray:
    """3×3 (``diagonal``) or 4-neighbour grey-level dilation with zero padding."""
    padded = np.pad(weights, 1)
    centre = padded[1:-1, 1:-1]
    if diagonal:
        rows = np.maximum(np.maximum(padded[:-2, :], padded[1:-1, :]), padded[2:, :])
        return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    vertical = np.maximum(padded[:-2, 1:-1], padded[2:, 1:-1])
    horizontal = np.maximum(padded[1:-1, :-2], padded[1:-1, 2:])
    return np.maximum(np.maximum(centre, vertical), horizontal)


def _feathered_weights(mask_region: np.ndarray, feather_px: int) -> np.ndarray:
    """Blend weights: 1 on the painted core, falling linearly to 0 over ``feather_px`` outside it.

    The core is where the mask is ≥ 0.5. After the ramp, a pixel at distance d (1 ≤ d ≤
    feather_px) from the core has weight 1 − d / (feather_px + 1); farther pixels have
    weight 0 unless the mask itself is soft there, in which case the mask value is used.
    Distances alternate 8- and 4-neighbour steps: an octagonal approximation of the
    Euclidean distance, so the rim has no square corners.
    """
    weights = (mask_region >= 0.5).astype(np.float32)
    step = np.float32(1.0 / (feather_px + 1))
    for index in range(feather_px):
        grown = _dilate_max(weights, diagonal=index % 2 == 0) - step
        weights = np.maximum(weights, grown)
    return np.clip(np.maximum(weights, mask_region.astype(np.float32)), 0.0, 1.0)


def unreachable_mask_fraction(mask_hw_full: np.ndarray, roi: RegionOfInterest) -> float:
    """Fraction of the painted pixels that lie outside the region and so cannot be filled.

    Parameters
    ----------
    mask_hw_full : np.ndarray
        H×W, > 0 = painted.
    roi : RegionOfInterest
        The region the model sees.

    Returns
    -------
    float
        In [0, 1]; 0.0 when nothing is painted.
    """
    if not isinstance(mask_hw_full, np.ndarray) or mask_hw_full.ndim != 2:
        raise BadInputError(f"the mask must be an H×W array, got {getattr(mask_hw_full, 'shape', None)}.")
    roi.validate(mask_hw_full.shape[1], mask_hw_full.shape[0])
    painted = mask_hw_full > 0
    total = int(np.count_nonzero(painted))
    if total == 0:
        return 0.0
    inside = int(np.count_nonzero(painted[roi.top : roi.bottom, roi.left : roi.right]))
    return (total - inside) / total


def composite_inpainting(
    original_rgb: LoadedImage | np.ndarray,
    mask_hw_full: np.ndarray,
    roi: RegionOfInterest,
    result_rgb_model: np.ndarray,
    *,
    feather_px: int | None = None,
) -> np.ndarray:
    """Fill the painted pixels from the model's result; every other pixel stays bit-identical.

    Parameters
    ----------
    original_rgb : LoadedImage or np.ndarray
        H×W×3 uint8 full-resolution original.
    mask_hw_full : np.ndarray
        H×W float in [0, 1], 1 = painted = to be filled (``engine.imageio.load_mask``).
    roi : RegionOfInterest
        The region the model saw.
    result_rgb_model : np.ndarray
        R×R×3 uint8 model output for that region; resized to the region with Lanczos.
    feather_px : int, optional, keyword-only
        Width of the blending rim outside the painted area, in full-resolution pixels;
        default :func:`default_feather_px`. 0 gives a hard edge.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8.

    Notes
    -----
    The feather goes *outward*: pixels painted at ≥ 0.5 are replaced completely (the user
    asked for them to go), and the seam is hidden over up to ``feather_px`` unpainted
    pixels around them, whose weight falls linearly from 1 − 1/(feather_px + 1) to
    1/(feather_px + 1) with the distance; softly painted pixels (< 0.5) get at least
    their mask value. Everything farther away, and everything outside the region
    (including painted pixels there, see :func:`unreachable_mask_fraction`), is copied
    from the original unchanged.
    """
    original = _rgb_array(original_rgb, "the original image")
    result = _model_result(result_rgb_model)
    if not isinstance(mask_hw_full, np.ndarray) or mask_hw_full.shape != original.shape[:2]:
        mask_shape = getattr(mask_hw_full, "shape", None)
        raise BadInputError(
            f"the mask must be {original.shape[1]}×{original.shape[0]} like the image, "
            f"got shape {mask_shape}."
        )
    roi.validate(original.shape[1], original.shape[0])
    if feather_px is None:
        feather_px = default_feather_px(roi)
    if not _is_integer(feather_px) or feather_px < 0:
        raise BadInputError(f"feather_px must be a non-negative integer, not {feather_px!r}.")
    output = np.array(original, copy=True, order="C")
    mask_region = np.clip(roi.crop(mask_hw_full).astype(np.float32), 0.0, 1.0)
    if not np.any(mask_region > 0):
        return output
    # Only the painted area grown by the feather can change: work in its bounding box.
    rows = np.flatnonzero(np.any(mask_region > 0, axis=1))
    columns = np.flatnonzero(np.any(mask_region > 0, axis=0))
    top = max(0, int(rows[0]) - feather_px)
    bottom = min(roi.height, int(rows[-1]) + feather_px + 1)
    left = max(0, int(columns[0]) - feather_px)
    right = min(roi.width, int(columns[-1]) + feather_px + 1)
    # The box holds all painted pixels of the region plus a feather-wide margin, so the
    # zero padding of the dilation never cuts a ramp short (except at the region's border,
    # beyond which nothing can change anyway).
    weights = _feathered_weights(mask_region[top:bottom, left:right], int(feather_px))
    result_region = _resize_rgb(result, (roi.width, roi.height), Image.Resampling.LANCZOS)[top:bottom, left:right]
    window = output[roi.top + top : roi.top + bottom, roi.left + left : roi.left + right]
    changed = weights > 0
    blend = weights[changed][:, None]
    old = window[changed].astype(np.float32)
    new = result_region[changed].astype(np.float32)
    window[changed] = np.clip(np.rint(old + blend * (new - old)), 0, 255).astype(np.uint8)
    return output


def composite_super_resolution(
    result_rgb_model: np.ndarray, roi: RegionOfInterest, factor: int
) -> np.ndarray:
    """The region at ×``factor``: the model's result resized to ``roi.size · factor``.

    Parameters
    ----------
    result_rgb_model : np.ndarray
        R×R×3 uint8 model output.
    roi : RegionOfInterest
        The region that was super-resolved.
    factor : int
        Super-resolution factor f ≥ 1.

    Returns
    -------
    np.ndarray
        (size·f)×(size·f)×3 uint8, resized with Lanczos (a copy when R already equals size·f).
        No original pixel exists at that resolution, so the whole output comes from the result.
    """
    result = _model_result(result_rgb_model)
    factor = _positive_int(factor, "the super-resolution factor")
    if roi.size < 1:
        raise BadInputError(f"the region of interest must be at least 1 pixel wide, not {roi.size}.")
    return _resize_rgb(result, (roi.width * factor, roi.height * factor), Image.Resampling.LANCZOS)


def composite_reconstruction(
    original_rgb: LoadedImage | np.ndarray, roi: RegionOfInterest, result_rgb_model: np.ndarray
) -> np.ndarray:
    """Replace the region with the model's result (Lanczos-resized); the rest is unchanged.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8.
    """
    original = _rgb_array(original_rgb, "the original image")
    result = _model_result(result_rgb_model)
    roi.validate(original.shape[1], original.shape[0])
    output = np.array(original, copy=True, order="C")
    resized = _resize_rgb(result, (roi.width, roi.height), Image.Resampling.LANCZOS)
    output[roi.top : roi.bottom, roi.left : roi.right] = resized
    return output


def _region_is_grayscale(original: np.ndarray, roi: RegionOfInterest) -> bool:
    region = original[roi.top : roi.bottom, roi.left : roi.right]
    red, green, blue = region[..., 0], region[..., 1], region[..., 2]
    return bool(np.array_equal(red, green) and np.array_equal(green, blue))


def composite_for_task(
    task: str,
    original: LoadedImage | np.ndarray,
    roi: RegionOfInterest,
    result: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    factor: int | None = None,
    grayscale: bool | None = None,
    feather_px: int | None = None,
) -> np.ndarray:
    """Put a model result back at full resolution the way ``task`` calls for.

    Parameters
    ----------
    task : str
        One of :data:`COMPOSITE_TASKS`.
    original : LoadedImage or np.ndarray
        H×W×3 uint8 full-resolution original.
    roi : RegionOfInterest
        The region the model saw.
    result : np.ndarray
        R×R×3 uint8 model output.
    mask : np.ndarray, optional, keyword-only
        H×W painted mask (1 = missing); required by ``inpaint``, optional for ``hybrid``.
    factor : int, optional, keyword-only
        Super-resolution factor; required by ``sr``, optional for ``hybrid``.
    grayscale : bool, optional, keyword-only
        ``hybrid`` only: whether the original is grey and so gets the colorization
        recomposition; None detects it (R = G = B everywhere in the region).
    feather_px : int, optional, keyword-only
        Passed to :func:`composite_inpainting`.

    Returns
    -------
    np.ndarray
        H×W×3 uint8 for every task except ``sr`` and ``hybrid`` with ``factor`` > 1, which
        return the region at ×factor, (size·f)×(size·f)×3.

    Notes
    -----
    * ``colorize`` → :func:`composite_colorization`; ``inpaint`` →
      :func:`composite_inpainting`; ``sr`` → :func:`composite_super_resolution`;
      ``reconstruct`` and ``defend`` → :func:`composite_reconstruction` (for a defence
      the whole region is the answer: the point is to replace the adversarial pixels).
    * ``hybrid``: with ``factor`` > 1 the region comes back at ×factor entirely from the
      result (the full-resolution original has no pixels at that size to keep).
      Otherwise the steps undo what was degraded, in order: if the region is grey, its
      colour comes from the result with the original's lightness (colorization
      recomposition); then, if a mask is given, painted pixels are replaced by the result
      with the inpainting feather on top of that. With neither grey nor a mask the result
      replaces the region (reconstruction).
    Options a task cannot use are refused rather than ignored.
    """
    if task not in COMPOSITE_TASKS:
        raise BadInputError(f"unknown task {task!r}; expected one of {', '.join(COMPOSITE_TASKS)}.")

    def refuse(option: str) -> None:
        raise BadInputError(f"the {task} task does not take {option}.")

    if grayscale is not None and task != "hybrid":
        refuse("a grayscale flag")
    if task == "sr":
        if mask is not None:
            refuse("a mask")
        if feather_px is not None:
            refuse("a feather width")
        if factor is None:
            raise BadInputError("the sr task needs a super-resolution factor.")
        return composite_super_resolution(result, roi, factor)
    if task == "hybrid":
        if factor is not None and _positive_int(factor, "the super-resolution factor") > 1:
            return composite_super_resolution(result, roi, factor)
        original_rgb = _rgb_array(original, "the original image")
        roi.validate(original_rgb.shape[1], original_rgb.shape[0])
        is_gray = _region_is_grayscale(original_rgb, roi) if grayscale is None else bool(grayscale)
        if not is_gray and mask is None:
            return composite_reconstruction(original_rgb, roi, result)
        base = composite_colorization(original_rgb, roi, result) if is_gray else original_rgb
        if mask is None:
            return base
        return composite_inpainting(base, mask, roi, result, feather_px=feather_px)
    if factor is not None:
        refuse("a super-resolution factor")
    if task == "inpaint":
        if mask is None:
            raise BadInputError("the inpaint task needs a mask.")
        return composite_inpainting(original, mask, roi, result, feather_px=feather_px)
    if mask is not None:
        refuse("a mask")
    if feather_px is not None:
        refuse("a feather width")
    if task == "colorize":
        return composite_colorization(original, roi, result)
    return composite_reconstruction(original, roi, result)
