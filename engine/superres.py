"""Super-resolution at the photo's own scale: consistency, classical upscaling and tiled detail.

The generative prior works on small R×R squares (64 px for the built-in model), users'
photos are megapixels. A super-resolved photo is therefore assembled from three parts:

* the **input itself**: the result, shrunk back with PIL's Lanczos filter (the filter the
  app documents and the target path uses, method note ``dgp-method.md`` §4.3), reproduces
  the user's low-resolution photo to within uint8 rounding. Every result is projected onto
  that set, ``X + A⁺ (L − A X)``;
* **classical upscaling** (Pillow's Lanczos upscale, then that projection) supplies the frequencies
  the input has: it is the result at detail strength 0;
* the **prior** supplies only what the downsampling cannot see: the null-space component
  ``Y − A⁺ A Y`` of the model's output on each tile. Overlapping tiles are blended with
  smooth weights that sum to one, and a detail strength ``s`` moves the result's null-space
  content from the classical upscale's (``s = 0``) to the prior's (``s = 1``).

The Lanczos operator is separable, ``A X = A_v · X · A_hᵀ`` per channel, and banded: each
low-resolution sample is a weighted sum of about ``6 f`` neighbours. It is built
analytically (PIL's own kernel, support, centre convention and per-row normalisation), kept
as a band, and ``A Aᵀ`` (small, symmetric positive definite, about 13 diagonals) is
factorised once by a banded Cholesky, so ``A⁺ = Aᵀ (A Aᵀ)⁻¹`` is applied without any dense
matrix. Full-resolution arrays are processed in row strips; only numpy and Pillow are used.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.errors import BadInputError

__all__ = [
    "UPSCALE_METHODS",
    "LanczosOperator",
    "Tile",
    "TileGrid",
    "assemble",
    "classical_upscale",
    "extract_tile",
    "lanczos_operator",
    "prior_detail",
    "project_onto_input",
    "tile_grid",
    "without_fixed_pattern",
]

#: Fewest finished tiles from which the model's fixed pattern is estimated (fewer: none removed).
FIXED_PATTERN_MIN_TILES = 8
#: Most tiles the estimate looks at (evenly spaced through the grid), which bounds its memory.
FIXED_PATTERN_MAX_SAMPLES = 256

#: Pillow filters :func:`classical_upscale` can start from. Lanczos is the default: after the
#: projection it scores higher than bicubic on every benchmark photo (docs/benchmarks.md).
UPSCALE_METHODS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

# PIL's Lanczos: sinc(x)·sinc(x/3) on [-3, 3), the support stretched by the scale when shrinking.
_LANCZOS_LOBES = 3.0

# Elements of one float64 temporary in the row-strip loops (16 MB); peak memory above the
# image itself is a small multiple of it, whatever the photo's size.
_STRIP_ELEMENTS = 1 << 21

# Clip-and-project rounds after the projection: Lanczos ringing can push a consistent image
# below 0 or above 255; alternating the two projections (both sets hold the truth when the
# input was made by the same filter) removes most of what clipping would break.
_CLIP_ROUNDS = 3

# Rounds of correcting PIL's own uint8 resize of the rounded result. Pillow clips to
# [0, 255] after each of its two passes and the input is clipped too, so near saturated
# areas the linear model A X misses what PIL computes by several levels; each round adds
# A⁺ of the levels PIL still gets wrong by two or more. Eight rounds bring the benchmark
# photos to at most 2 levels off (1 where nothing saturates).
_PIL_ROUNDS = 8


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_factor(factor: object) -> int:
    if not _is_integer(factor) or int(factor) < 2:
        raise BadInputError(f"the super-resolution factor must be an integer of at least 2, not {factor!r}.")
    return int(factor)


def _check_low(low: object, name: str = "the low-resolution input") -> np.ndarray:
    array = np.asarray(low)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise BadInputError(f"{name} must be an h×w×3 uint8 image, not {array.dtype} of shape {array.shape}.")
    return array


def _check_float_image(image: object, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype not in (np.float32, np.float64) or array.ndim != 3 or array.shape[2] != 3:
        raise BadInputError(
            f"{name} must be an H×W×3 float32 or float64 image, not {array.dtype} of shape {array.shape}."
        )
    if not np.isfinite(array).all():
        raise BadInputError(f"{name} holds values that are not finite.")
    return array


def _check_sizes(high_shape: tuple[int, ...], low_shape: tuple[int, ...], factor: int, name: str) -> None:
    height, width = high_shape[:2]
    if low_shape[:2] != (height // factor, width // factor) or height % factor or width % factor:
        raise BadInputError(
            f"{name} is {height}×{width}, but at ×{factor} a {low_shape[0]}×{low_shape[1]} input "
            f"needs {low_shape[0] * factor}×{low_shape[1] * factor}."
        )


# --------------------------------------------------------------------------------------------
# Banded Lanczos operator (item: PIL's Lanczos downsampling as a sparse matrix)
# --------------------------------------------------------------------------------------------


def _pil_lanczos(x: np.ndarray) -> np.ndarray:
    """PIL's ``lanczos_filter``: ``sinc(x)·sinc(x/3)`` for ``-3 ≤ x < 3``, else 0."""
    inside = (x >= -_LANCZOS_LOBES) & (x < _LANCZOS_LOBES)
    return np.where(inside, np.sinc(x) * np.sinc(x / _LANCZOS_LOBES), 0.0)


def _work_dtype(x: np.ndarray) -> type[np.floating]:
    # float32 for the full-resolution passes (25 taps add about 1e-3 levels of rounding
    # error at most), float64 for everything at low resolution.
    return np.float32 if x.dtype == np.float32 else np.float64


def _regular_run(starts: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> tuple[int, int, int]:
    """The longest run of rows ``[first, stop)`` around the middle that share one set of weights
    at a constant stride (the photo's interior, away from PIL's border renormalisation).

    Returns ``(first, stop, stride)``; ``stop == first`` when there is none (sizes the factor
    does not divide, where PIL's scale is not an integer and every row differs).
    """
    size = len(starts)
    if size < 3:
        return 0, 0, 0
    middle = size // 2
    stride = int(starts[middle] - starts[middle - 1])
    regular = (
        (counts == counts[middle])
        & (starts - starts[middle] == (np.arange(size) - middle) * stride)
        & (np.abs(weights - weights[middle]).max(axis=1) <= 1e-12)
    )
    if stride < 1 or not regular[middle]:
        return 0, 0, 0
    irregular = np.flatnonzero(~regular)
    first = int(irregular[irregular < middle].max() + 1) if (irregular < middle).any() else 0
    stop = int(irregular[irregular > middle].min()) if (irregular > middle).any() else size
    return first, stop, stride


def _axis_index(ndim: int, axis: int, index: slice | int) -> tuple[slice | int, ...]:
    key: list[slice | int] = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _Band:
    """An m×n banded matrix: row i holds ``weights[i, :counts[i]]`` at columns ``starts[i] …``."""

    starts: np.ndarray  # (m,) int64
    counts: np.ndarray  # (m,) int64
    weights: np.ndarray  # (m, width) float64, zero beyond counts[i]
    columns: int

    @functools.cached_property
    def regular(self) -> tuple[int, int, int]:
        return _regular_run(self.starts, self.counts, self.weights)

    def apply(self, x: np.ndarray, axis: int) -> np.ndarray:
        """``y[i] = Σ_k weights[i, k] · x[starts[i] + k]`` along ``axis``.

        The regular interior is a strided convolution on views of ``x``; the few rows at the
        borders are gathered one tap at a time.
        """
        dtype = _work_dtype(x)
        source = x if x.dtype == dtype else x.astype(dtype)
        out_shape = list(x.shape)
        out_shape[axis] = len(self.starts)
        result = np.zeros(out_shape, dtype=dtype)
        first, stop, stride = self.regular
        if stop > first:
            target = result[_axis_index(x.ndim, axis, slice(first, stop))]
            for k in range(int(self.counts[first])):
                begin = int(self.starts[first]) + k
                view = source[
                    _axis_index(x.ndim, axis, slice(begin, begin + (stop - first - 1) * stride + 1, stride))
                ]
                target += dtype(self.weights[first, k]) * view
        rows = np.r_[0:first, stop : len(self.starts)].astype(np.int64)
        if len(rows):
            shape = [1] * x.ndim
            shape[axis] = -1
            length = x.shape[axis]
            gathered = np.zeros([len(rows) if i == axis else n for i, n in enumerate(x.shape)], dtype=dtype)
            for k in range(self.weights.shape[1]):
                column = self.weights[rows, k]
                if column.any():
                    taken = np.take(source, np.minimum(self.starts[rows] + k, length - 1), axis=axis)
                    gathered += column.astype(dtype).reshape(shape) * taken
            result[_axis_index(x.ndim, axis, rows)] = gathered  # type: ignore[index]
        return result

    def apply_transpose(self, y: np.ndarray, axis: int) -> np.ndarray:
        """``x[j] = Σ_i weights[i, j − starts[i]] · y[i]`` along ``axis`` (a scatter-add)."""
        dtype = _work_dtype(y)
        source = y if y.dtype == dtype else y.astype(dtype)
        out_shape = list(y.shape)
        out_shape[axis] = self.columns
        result = np.zeros(out_shape, dtype=dtype)
        first, stop, stride = self.regular
        if stop > first:
            rows_view = source[_axis_index(y.ndim, axis, slice(first, stop))]
            for k in range(int(self.counts[first])):
                begin = int(self.starts[first]) + k
                target = result[
                    _axis_index(y.ndim, axis, slice(begin, begin + (stop - first - 1) * stride + 1, stride))
                ]
                target += dtype(self.weights[first, k]) * rows_view
        shape = [1] * y.ndim
        shape[axis] = -1
        for row in (*range(first), *range(stop, len(self.starts))):
            start, count = int(self.starts[row]), int(self.counts[row])
            target = result[_axis_index(y.ndim, axis, slice(start, start + count))]
            target += (
                self.weights[row, :count].astype(dtype).reshape(shape)
                * source[_axis_index(y.ndim, axis, slice(row, row + 1))]
            )
        return result

    def rows(self, first: int, stop: int, offset: int) -> _Band:
        """Rows ``first … stop − 1`` with column indices shifted down by ``offset``."""
        return _Band(
            self.starts[first:stop] - offset, self.counts[first:stop], self.weights[first:stop], self.columns
        )

    def column_span(self, first: int, stop: int) -> tuple[int, int]:
        """The columns rows ``first … stop − 1`` touch, as ``[begin, end)``."""
        begin = int(self.starts[first:stop].min())
        end = int((self.starts[first:stop] + self.counts[first:stop]).max())
        return begin, end

    def transpose(self) -> _Band:
        rows = np.repeat(np.arange(len(self.starts)), self.weights.shape[1])
        taps = np.tile(np.arange(self.weights.shape[1]), len(self.starts))
        valid = taps < np.repeat(self.counts, self.weights.shape[1])
        rows, columns = rows[valid], (np.repeat(self.starts, self.weights.shape[1]) + taps)[valid]
        values = self.weights.ravel()[valid]
        starts = np.full(self.columns, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(starts, columns, rows)
        ends = np.zeros(self.columns, dtype=np.int64)
        np.maximum.at(ends, columns, rows + 1)
        if (starts > ends).any():
            raise AssertionError("a column of the Lanczos operator is empty")  # cannot happen for f ≥ 1
        counts = ends - starts
        weights = np.zeros((self.columns, int(counts.max())))
        weights[columns, rows - starts[columns]] = values
        return _Band(starts, counts, weights, len(self.starts))

    def dense(self) -> np.ndarray:
        matrix = np.zeros((len(self.starts), self.columns))
        for row, (start, count) in enumerate(zip(self.starts, self.counts, strict=True)):
            matrix[row, start : start + count] = self.weights[row, :count]
        return matrix


def _gram_band(band: _Band) -> np.ndarray:
    """Lower band of ``A Aᵀ``: ``gram[i, k] = (A Aᵀ)[i, i − k]``, k = 0 … p (0 outside)."""
    m, width = band.weights.shape
    ends = band.starts + band.counts
    diagonals = []
    k = 0
    # Rows i and i − k share columns while the earlier row ends after the later one starts.
    while k < m and (k == 0 or (ends[:-k] > band.starts[k:]).any()):
        later, earlier = band.weights[k:], band.weights[: m - k]
        shift = band.starts[k:] - band.starts[: m - k]  # ≥ 0: starts never decrease
        values = np.zeros(m - k)
        for tap in range(width):
            index = tap + shift
            inside = index < width
            values += later[:, tap] * np.where(
                inside, earlier[np.arange(m - k), np.minimum(index, width - 1)], 0
            )
        diagonals.append(np.concatenate([np.zeros(k), values]))
        k += 1
    return np.stack(diagonals, axis=1)


def _banded_cholesky(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factor of a banded SPD matrix, in the same lower-band layout as ``gram``.

    Returns ``lower`` with ``lower[i, k] = L[i, i − k]`` (``L Lᵀ = G``) and ``upper`` with
    ``upper[i, k] = L[i + k, i]``, the band of ``Lᵀ`` that back substitution reads. The band
    is narrow (about 7), so the scalar loop costs ``n·p²/2`` multiply-adds: milliseconds
    for a 12,000-pixel side.
    """
    size, width = gram.shape
    bandwidth = width - 1
    g = gram.tolist()
    lower = [[0.0] * width for _ in range(size)]
    for i in range(size):
        row = lower[i]
        for k in range(min(i, bandwidth), 0, -1):
            j = i - k
            other = lower[j]
            total = g[i][k]
            for m in range(max(0, i - bandwidth), j):
                total -= row[i - m] * other[j - m]
            row[k] = total / other[0]
        diagonal = g[i][0] - sum(row[k] * row[k] for k in range(1, min(i, bandwidth) + 1))
        if diagonal <= 0.0:
            raise AssertionError("A·Aᵀ of the Lanczos operator is not positive definite")
        row[0] = math.sqrt(diagonal)
    lower_band = np.asarray(lower)
    upper_band = np.zeros_like(lower_band)
    for k in range(width):
        upper_band[: size - k, k] = lower_band[k:, k]
    return lower_band, upper_band


def _solve_banded_in_place(lower: np.ndarray, upper: np.ndarray, values: np.ndarray, axis: int) -> None:
    """Overwrite the float64 ``values`` with ``G⁻¹ values`` along ``axis``, ``G = L Lᵀ`` banded.

    Forward then back substitution, one row of all right-hand sides at a time (a length-p
    dot product per row), so the Python loop runs ``2n`` times whatever the image width.
    """
    if axis == 0 and values.flags.c_contiguous:
        work = values
    else:
        work = np.ascontiguousarray(np.moveaxis(values, axis, 0))
    size, width = lower.shape
    bandwidth = width - 1
    flat = work.reshape(size, -1)
    inverse_diagonal = 1.0 / lower[:, 0]
    for i in range(size):  # L z = r
        first = max(0, i - bandwidth)
        if i > first:
            flat[i] -= lower[i, i - first : 0 : -1] @ flat[first:i]
        flat[i] *= inverse_diagonal[i]
    for i in range(size - 1, -1, -1):  # Lᵀ x = z
        last = min(size - 1, i + bandwidth)
        if last > i:
            flat[i] -= upper[i, 1 : last - i + 1] @ flat[i + 1 : last + 1]
        flat[i] *= inverse_diagonal[i]
    if work is not values:
        np.moveaxis(values, axis, 0)[...] = work


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LanczosOperator:
    """PIL's Lanczos resize of ``size`` samples to ``size // factor``, as a band.

    Attributes
    ----------
    size : int
        Input samples n.
    factor : int
        Nominal factor f; the output has ``size // factor`` samples and PIL's scale is
        ``size / (size // factor)`` (exactly f when f divides n).
    starts, counts : np.ndarray
        Per output sample, its first input sample and its number of taps (int64).
    weights : np.ndarray
        ``(size // factor, taps)`` float64, each row summing to 1, zero beyond its count.

    Notes
    -----
    Memory is ``O(size × taps)`` with ``taps = 2·ceil(3·scale) + 1`` (25 at ×4), so the
    operator of a 24,000-pixel side takes under 2 MB. Use :meth:`dense` only for tests.
    """

    size: int
    factor: int
    _band: _Band
    _transpose: _Band
    _cholesky: tuple[np.ndarray, np.ndarray]

    @property
    def out_size(self) -> int:
        """Output samples, ``size // factor``."""
        return len(self._band.starts)

    @property
    def starts(self) -> np.ndarray:
        return self._band.starts

    @property
    def counts(self) -> np.ndarray:
        return self._band.counts

    @property
    def weights(self) -> np.ndarray:
        return self._band.weights

    def dense(self) -> np.ndarray:
        """The operator as a dense ``(size // factor) × size`` float64 matrix."""
        return self._band.dense()

    def apply(self, x: np.ndarray, *, axis: int) -> np.ndarray:
        """``A x`` along ``axis`` (Lanczos downsampling; float32 for float32 input, else float64)."""
        return self._band.apply(x, axis)

    def apply_transpose(self, y: np.ndarray, *, axis: int) -> np.ndarray:
        """``Aᵀ y`` along ``axis`` (float32 for float32 input, else float64)."""
        return self._band.apply_transpose(y, axis)

    def solve_gram(self, values: np.ndarray, *, axis: int) -> None:
        """Overwrite the float64 array ``values`` with ``(A Aᵀ)⁻¹ values`` along ``axis``."""
        _solve_banded_in_place(*self._cholesky, values, axis)

    def __repr__(self) -> str:
        return f"LanczosOperator(size={self.size}, factor={self.factor}, taps={self.weights.shape[1]})"


@functools.lru_cache(maxsize=32)
def _cached_operator(size: int, factor: int) -> LanczosOperator:
    out_size = size // factor
    scale = size / out_size
    filter_scale = max(scale, 1.0)
    support = _LANCZOS_LOBES * filter_scale
    taps = int(math.ceil(support)) * 2 + 1
    centres = (np.arange(out_size) + 0.5) * scale
    # PIL rounds the window's ends by truncation after +0.5, then clamps to the image.
    starts = np.maximum(np.trunc(centres - support + 0.5).astype(np.int64), 0)
    stops = np.minimum(np.trunc(centres + support + 0.5).astype(np.int64), size)
    counts = stops - starts
    positions = starts[:, None] + np.arange(taps)[None, :]
    inside = np.arange(taps)[None, :] < counts[:, None]
    raw = np.where(inside, _pil_lanczos((positions - centres[:, None] + 0.5) / filter_scale), 0.0)
    # Per-row normalisation, which is also PIL's border handling: cut-off taps are dropped.
    weights = raw / raw.sum(axis=1, keepdims=True)
    band = _Band(starts, counts, weights, size)
    return LanczosOperator(
        size=size,
        factor=factor,
        _band=band,
        _transpose=band.transpose(),
        _cholesky=_banded_cholesky(_gram_band(band)),
    )


def lanczos_operator(size: int, factor: int) -> LanczosOperator:
    """PIL's Lanczos downsampling of ``size`` samples to ``size // factor`` as a banded operator.

    Parameters
    ----------
    size : int
        Number of input samples n (a row or column of the full-resolution image), at
        least ``factor``.
    factor : int
        Downsampling factor f ≥ 2 (the app uses 2, 4 and 8). Sizes f does not divide are
        supported as PIL handles them: the output has ``n // f`` samples at scale
        ``n / (n // f)``.

    Returns
    -------
    LanczosOperator
        The band, its transpose and the Cholesky factor of ``A Aᵀ``; cached per
        ``(size, factor)``.

    Notes
    -----
    Pillow's ``precompute_coeffs`` (``libImaging/Resample.c``): output sample i is centred at
    ``c = (i + ½)·s`` with ``s = n / (n // f)``; its window spans input samples
    ``trunc(c − 3s + ½) … trunc(c + 3s + ½) − 1`` clamped to the image; input sample j weighs
    ``L((j − c + ½) / s)`` with ``L(x) = sinc(x)·sinc(x/3)`` on ``[-3, 3)``; each row is then
    normalised to sum 1. Equals the matrix read off PIL in float32 mode
    (``engine.degrade._lanczos_resize_operator``) to about 1e-7. PIL's uint8 path rounds
    the weights to 22 fractional bits and rounds after each of its two passes, which is
    where "to within uint8 rounding" comes from.
    """
    factor = _check_factor(factor)
    if not _is_integer(size) or int(size) < factor:
        raise BadInputError(
            f"the Lanczos operator needs at least {factor} samples at ×{factor}, not {size!r}."
        )
    return _cached_operator(int(size), factor)


# --------------------------------------------------------------------------------------------
# Projection onto the input (X + A⁺ (L − A X)), in row strips
# --------------------------------------------------------------------------------------------


def _downsample(image: np.ndarray, vertical: LanczosOperator, horizontal: LanczosOperator) -> np.ndarray:
    """``A_v · X · A_hᵀ`` per channel as float64, in strips of low-resolution rows.

    Channel by channel, so that the strided views the band works on have long inner loops.
    """
    width, channels = image.shape[1:]
    low = np.empty((vertical.out_size, horizontal.out_size, channels))
    step = max(1, _STRIP_ELEMENTS // (vertical.factor * width))
    for first in range(0, vertical.out_size, step):
        stop = min(first + step, vertical.out_size)
        begin, end = vertical._band.column_span(first, stop)
        rows = vertical._band.rows(first, stop, begin)
        for channel in range(channels):
            across = horizontal.apply(image[begin:end, :, channel], axis=1).astype(np.float64, copy=False)
            low[first:stop, :, channel] = rows.apply(across, axis=0)
    return low


def _add_transpose(
    image: np.ndarray, low: np.ndarray, vertical: LanczosOperator, horizontal: LanczosOperator
) -> None:
    """``image += A_vᵀ · low · A_h`` per channel, in strips of full-resolution rows."""
    height, width, channels = image.shape
    step = max(1, _STRIP_ELEMENTS // width)
    for first in range(0, height, step):
        stop = min(first + step, height)
        begin, end = vertical._transpose.column_span(first, stop)
        rows = vertical._transpose.rows(first, stop, begin)
        for channel in range(channels):
            down = rows.apply(low[begin:end, :, channel], axis=0).astype(image.dtype, copy=False)
            image[first:stop, :, channel] += horizontal.apply_transpose(down, axis=1)


def _project_in_place(
    image: np.ndarray, target: np.ndarray, vertical: LanczosOperator, horizontal: LanczosOperator
) -> None:
    """``image ← image + A⁺ (target − A image)`` with ``A⁺ = Aᵀ (A Aᵀ)⁻¹``, per axis."""
    residual = target - _downsample(image, vertical, horizontal)
    vertical.solve_gram(residual, axis=0)
    horizontal.solve_gram(residual, axis=1)
    _add_transpose(image, residual, vertical, horizontal)


def _clip_in_strips(image: np.ndarray) -> bool:
    """Clip to [0, 255] in place; True when anything was outside by more than rounding."""
    changed = False
    step = max(1, _STRIP_ELEMENTS // (image.shape[1] * image.shape[2]))
    for first in range(0, image.shape[0], step):
        strip = image[first : first + step]
        if strip.min() < -0.5 or strip.max() > 255.5:
            changed = True
        np.clip(strip, 0, 255, out=strip)
    return changed


def _consistent_in_place(image: np.ndarray, low: np.ndarray, factor: int) -> None:
    """Make ``image`` agree with ``low`` through PIL's own Lanczos, within [0, 255].

    First the exact linear projection, then alternate clipping and projecting while clipping
    still changes anything, then correct what PIL's uint8 resize of the rounded image still
    gets wrong by two levels or more (see :data:`_PIL_ROUNDS`). Leaves ``image`` in [0, 255].
    """
    height, width = image.shape[:2]
    vertical, horizontal = lanczos_operator(height, factor), lanczos_operator(width, factor)
    target = low.astype(np.float64)
    _project_in_place(image, target, vertical, horizontal)
    for _ in range(_CLIP_ROUNDS):
        if not _clip_in_strips(image):
            break
        _project_in_place(image, target, vertical, horizontal)
    _clip_in_strips(image)
    for _ in range(_PIL_ROUNDS):
        rounded = Image.fromarray(_round_to_uint8(image), mode="RGB")
        error = target - np.asarray(rounded.resize((low.shape[1], low.shape[0]), Image.Resampling.LANCZOS))
        del rounded
        # One level is the rounding itself (of the result and inside PIL); chasing it only
        # moves the ±1 differences around.
        error[np.abs(error) < 2] = 0
        if not error.any():
            break
        vertical.solve_gram(error, axis=0)
        horizontal.solve_gram(error, axis=1)
        _add_transpose(image, error, vertical, horizontal)
        _clip_in_strips(image)


def _round_to_uint8(image: np.ndarray) -> np.ndarray:
    out = np.empty(image.shape, dtype=np.uint8)
    step = max(1, _STRIP_ELEMENTS // (image.shape[1] * image.shape[2]))
    for first in range(0, image.shape[0], step):
        out[first : first + step] = np.clip(np.rint(image[first : first + step]), 0, 255)
    return out


def project_onto_input(image: np.ndarray, low: np.ndarray, factor: int) -> np.ndarray:
    """The least change to ``image`` after which its Lanczos downsampling equals ``low``.

    Parameters
    ----------
    image : np.ndarray
        H×W×3 float32 or float64, values on the uint8 scale (0 … 255); not modified.
    low : np.ndarray
        The low-resolution input, h×w×3 uint8 with ``H = f·h`` and ``W = f·w``.
    factor : int
        Super-resolution factor f ≥ 2.

    Returns
    -------
    np.ndarray
        ``X + A_v⁺ (L − A_v X A_hᵀ) A_h⁺ᵀ`` per channel, same shape and dtype as
        ``image``; not clipped. Its downsampling by :func:`lanczos_operator` equals
        ``low`` to float precision.

    Raises
    ------
    BadInputError
        Wrong dtypes or shapes, sizes that do not match at ×f, non-finite values.

    Notes
    -----
    The orthogonal projection onto the affine set ``{X : A X = L}`` (in the Frobenius norm;
    ``A = A_v ⊗ A_h`` is separable, so ``A⁺ = A_v⁺ ⊗ A_h⁺`` with ``A⁺ = Aᵀ (A Aᵀ)⁻¹``).
    The residual ``L − A X`` is small (h×w×3); ``(A Aᵀ)⁻¹`` is applied by a banded
    Cholesky solve along each axis, and the full-resolution passes run in row strips.

    Peak memory: the returned copy (``H·W·3·itemsize``: 12 bytes per output pixel in
    float32, 24 in float64) plus the low-resolution residual (``24 / f²`` bytes per output
    pixel, 1.5 at ×4) plus strip temporaries of a few × 16 MB, independent of the photo's
    size. Measured with ``tracemalloc`` in ``tests/engine/test_superres.py``.
    """
    factor = _check_factor(factor)
    source = _check_float_image(image, "the image to project")
    target = _check_low(low)
    _check_sizes(source.shape, target.shape, factor, "the image to project")
    result = source.copy()
    height, width = result.shape[:2]
    _project_in_place(
        result, target.astype(np.float64), lanczos_operator(height, factor), lanczos_operator(width, factor)
    )
    return result


# --------------------------------------------------------------------------------------------
# Classical upscaling (strength 0) and the prior's detail
# --------------------------------------------------------------------------------------------


def classical_upscale(low: np.ndarray, factor: int, *, method: str = "lanczos") -> np.ndarray:
    """Classical ×f upscaling of the whole photo, made consistent with it: detail strength 0.

    Parameters
    ----------
    low : np.ndarray
        The low-resolution photo, h×w×3 uint8.
    factor : int
        Super-resolution factor f ≥ 2.
    method : {"lanczos", "bicubic"}, keyword-only
        The Pillow filter of the first upscale (see :data:`UPSCALE_METHODS`); Lanczos
        measures 0.05–0.3 dB higher after the projection.

    Returns
    -------
    np.ndarray
        (f·h)×(f·w)×3 float32 on the uint8 scale. Shrunk back with PIL's Lanczos it
        reproduces ``low`` to within uint8 rounding.

    Notes
    -----
    Pillow's upscale, projected onto ``{X : A X = L}``, then up to three rounds of clipping
    to [0, 255] and projecting again (alternating projections onto two convex sets). When
    ``low`` was made from a photo by the same filter both sets hold that photo, and each
    projection can only bring the estimate closer to it: the result is never further from
    the truth than the plain upscale, up to the uint8 rounding of ``low``. Peak memory
    about 17 bytes per output pixel in numpy (the float32 result, Pillow's uint8 upscale,
    the low-resolution residuals) plus Pillow's own buffers and the strip temporaries:
    1.0 GiB traced, 1.3 GiB resident for a 64 MP result.
    """
    factor = _check_factor(factor)
    low = _check_low(low)
    if method not in UPSCALE_METHODS:
        raise BadInputError(
            f"the upscaling method must be one of {', '.join(UPSCALE_METHODS)}, not {method!r}."
        )
    height, width = low.shape[:2]
    upscaled = Image.fromarray(np.ascontiguousarray(low), mode="RGB").resize(
        (width * factor, height * factor), UPSCALE_METHODS[method]
    )
    result = np.asarray(upscaled).astype(np.float32)
    del upscaled
    _consistent_in_place(result, low, factor)
    return result


def prior_detail(model_output: np.ndarray, factor: int) -> np.ndarray:
    """The part of one tile's model output that the downsampling cannot see.

    Parameters
    ----------
    model_output : np.ndarray
        The model's result for one tile, R×R×3, uint8 or float (0 … 255 scale), R
        divisible by ``factor``.
    factor : int
        Super-resolution factor f ≥ 2.

    Returns
    -------
    np.ndarray
        ``Y − A⁺ A Y``, R×R×3 float32: the null-space component of ``Y`` for the tile's own
        Lanczos operator (R → R/f, PIL's border renormalisation at the tile's edges).
        Shrinking it gives zero; its mean is about zero.
    """
    factor = _check_factor(factor)
    array = np.asarray(model_output)
    if array.dtype == np.uint8:
        array = array.astype(np.float32)
    source = _check_float_image(array, "the model's tile output")
    height, width = source.shape[:2]
    if height % factor or width % factor:
        raise BadInputError(f"the model's tile output is {height}×{width}, which ×{factor} does not divide.")
    detail = source.astype(np.float64)
    vertical, horizontal = lanczos_operator(height, factor), lanczos_operator(width, factor)
    _project_in_place(detail, np.zeros((height // factor, width // factor, 3)), vertical, horizontal)
    return detail.astype(np.float32)


def fixed_pattern(outputs: Sequence[np.ndarray], factor: int) -> np.ndarray | None:
    """The detail that every tile's model output shares at the same place, or None.

    A generator can draw the same faint structure at the same position of every output (a
    line or dot where its upsampling or attention leaves a trace); tiled over a photo it
    becomes a regular grid, plainest in flat areas such as a sky. The photo's own detail at a
    given position inside a tile differs from tile to tile, so its per-pixel median over many
    tiles is about zero, while the shared structure survives it.

    Parameters
    ----------
    outputs : sequence of np.ndarray
        Finished tiles' model outputs, each R×R×3 (uint8 or float, 0 … 255 scale), all the
        same size.
    factor : int
        Super-resolution factor f ≥ 2.

    Returns
    -------
    np.ndarray or None
        The per-pixel median of the tiles' :func:`prior_detail` (R×R×3 float32, at most
        ``FIXED_PATTERN_MAX_SAMPLES`` tiles sampled evenly), or None with fewer than
        ``FIXED_PATTERN_MIN_TILES`` outputs (the median would keep the photo's own detail).
    """
    factor = _check_factor(factor)
    if len(outputs) < FIXED_PATTERN_MIN_TILES:
        return None
    shapes = {np.shape(output) for output in outputs}
    if len(shapes) != 1:
        raise BadInputError(f"the tiles' model outputs differ in size: {sorted(shapes)}.")
    picks = np.unique(np.linspace(0, len(outputs) - 1, min(len(outputs), FIXED_PATTERN_MAX_SAMPLES)).round().astype(int))
    return np.median(np.stack([prior_detail(outputs[index], factor) for index in picks]), axis=0)


def without_fixed_pattern(outputs: Sequence[np.ndarray], factor: int) -> list[np.ndarray]:
    """The tiles' model outputs less their :func:`fixed_pattern`, as float32 copies, in order.

    With fewer than ``FIXED_PATTERN_MIN_TILES`` outputs they are returned unchanged.
    """
    pattern = fixed_pattern(outputs, factor)
    arrays = [np.asarray(output, dtype=np.float32) for output in outputs]
    if pattern is None:
        return arrays
    return [array - pattern for array in arrays]


# --------------------------------------------------------------------------------------------
# Tiles and assembly
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tile:
    """One model run's square of the photo, in input and output pixels.

    Attributes
    ----------
    input_left, input_top : int
        The tile's top-left pixel in the low-resolution photo.
    input_size : int
        Its side in input pixels, ``R / f``; the part beyond the photo (a photo smaller
        than one tile) is reflect-padded by :func:`extract_tile`.
    factor : int
        The super-resolution factor f.
    """

    input_left: int
    input_top: int
    input_size: int
    factor: int

    @property
    def output_left(self) -> int:
        return self.input_left * self.factor

    @property
    def output_top(self) -> int:
        return self.input_top * self.factor

    @property
    def output_size(self) -> int:
        """The model's resolution R."""
        return self.input_size * self.factor

    @property
    def input_box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in input pixels (may extend past a small photo)."""
        return (
            self.input_left,
            self.input_top,
            self.input_left + self.input_size,
            self.input_top + self.input_size,
        )

    @property
    def output_box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in output pixels (may extend past a small photo)."""
        return tuple(value * self.factor for value in self.input_box)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class TileGrid:
    """Tiles covering a whole low-resolution photo.

    Attributes
    ----------
    tiles : tuple of Tile
        Row by row, top to bottom, left to right; every input (and output) pixel lies in at
        least one tile.
    low_size : tuple of int
        The photo's ``(width, height)`` in input pixels.
    factor : int
    resolution : int
        The model's resolution R (the tiles' output side).
    columns, rows : int
        Tiles across and down; ``count == columns · rows``.
    """

    tiles: tuple[Tile, ...]
    low_size: tuple[int, int]
    factor: int
    resolution: int
    columns: int
    rows: int

    @property
    def count(self) -> int:
        """The number of model runs the plan makes."""
        return len(self.tiles)

    @property
    def output_size(self) -> tuple[int, int]:
        """The result's ``(width, height)``: f times the input's."""
        return (self.low_size[0] * self.factor, self.low_size[1] * self.factor)


def _axis_positions(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    positions = list(range(0, length - tile, stride))
    positions.append(length - tile)  # the last tile sits on the far border
    return positions


def tile_grid(low_size: tuple[int, int], factor: int, resolution: int, overlap: float = 0.25) -> TileGrid:
    """Overlapping model-sized tiles that cover a whole low-resolution photo.

    Parameters
    ----------
    low_size : tuple of int
        The photo's ``(width, height)`` in input pixels (Pillow's ``Image.size`` order).
    factor : int
        Super-resolution factor f ≥ 2.
    resolution : int
        The model's resolution R, divisible by f; each tile is (R/f)×(R/f) input pixels and
        R×R output pixels.
    overlap : float
        The fraction of a tile shared with its neighbour, in [0, 1); the stride is
        ``R/f − round(overlap · R/f)`` input pixels (at least 1). 0.25 is a stride of 3/4.

    Returns
    -------
    TileGrid
        Tiles at stride steps from the top-left corner, the last one on each axis moved to
        touch the far border (so it overlaps its neighbour more); ``count`` is the number of
        model runs. An axis shorter than one tile gets a single tile at 0 that extends past
        the photo (reflect-padded by :func:`extract_tile`, cropped back by :func:`assemble`).

    Notes
    -----
    The overlap trades model runs for seams. On two photos at ×4 with 64 px tiles carrying
    the truth's per-tile :func:`prior_detail`, the error in the overlap bands was 3× the
    interior's at overlap 1/4 and 1.3× at 1/2 (about twice the tiles). With tiles that also
    disagree (the truth plus a random colour shift and noise per tile) it was 1.5–1.7× at 1/4
    with per-tile details and 1.05× when :func:`assemble` was given the raw tile outputs.
    """
    factor = _check_factor(factor)
    if (
        not isinstance(low_size, Sequence)
        or len(low_size) != 2
        or not all(_is_integer(v) and v >= 1 for v in low_size)
    ):
        raise BadInputError(
            f"the photo size must be two positive integers (width, height), not {low_size!r}."
        )
    if not _is_integer(resolution) or resolution < factor or resolution % factor:
        raise BadInputError(
            f"the model resolution must be a positive multiple of the factor {factor}, not {resolution!r}."
        )
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Real) or not 0 <= overlap < 1:
        raise BadInputError(f"the tile overlap must be a fraction in [0, 1), not {overlap!r}.")
    width, height = int(low_size[0]), int(low_size[1])
    side = int(resolution) // factor
    stride = max(1, side - int(round(overlap * side)))
    xs, ys = _axis_positions(width, side, stride), _axis_positions(height, side, stride)
    tiles = tuple(Tile(input_left=x, input_top=y, input_size=side, factor=factor) for y in ys for x in xs)
    return TileGrid(
        tiles=tiles,
        low_size=(width, height),
        factor=factor,
        resolution=int(resolution),
        columns=len(xs),
        rows=len(ys),
    )


def extract_tile(low: np.ndarray, tile: Tile) -> np.ndarray:
    """The model's input for one tile: its (R/f)×(R/f)×3 uint8 square of the photo.

    Parameters
    ----------
    low : np.ndarray
        The low-resolution photo, h×w×3 uint8; not modified.
    tile : Tile
        A tile of :func:`tile_grid` for this photo.

    Returns
    -------
    np.ndarray
        A new (R/f)×(R/f)×3 uint8 array; where the tile extends past the photo (a photo
        smaller than one tile) the photo is mirrored (reflect, edge for a 1-pixel side).
    """
    low = _check_low(low)
    height, width = low.shape[:2]
    left, top, right, bottom = tile.input_box
    if left < 0 or top < 0 or left >= width or top >= height:
        raise BadInputError(f"the tile at ({left}, {top}) lies outside the {width}×{height} photo.")
    crop = low[top:bottom, left:right]
    pad_rows, pad_columns = tile.input_size - crop.shape[0], tile.input_size - crop.shape[1]
    if pad_rows or pad_columns:
        mode = "reflect" if min(crop.shape[:2]) > 1 else "edge"
        crop = np.pad(crop, ((0, pad_rows), (0, pad_columns), (0, 0)), mode=mode)
    return np.array(crop, dtype=np.uint8, copy=True)


def _window(size: int, *, flat_start: bool, flat_end: bool) -> np.ndarray:
    """A raised-cosine (Hann) window over ``size`` samples, flat (1) on halves that touch a border.

    Sampled at pixel centres, so it is positive everywhere inside the tile and falls to
    about ``(π / 2R)²`` at the tile's edges, where the model's output is least reliable.
    """
    window = np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2
    half = size // 2
    if flat_start:
        window[:half] = 1.0
    if flat_end:
        window[size - half :] = 1.0
    return window


def _placed_tiles(
    tiles: Sequence[tuple[tuple[int, int], np.ndarray]], height: int, width: int
) -> list[tuple[int, int, int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Check the tiles and give each its crop ``(top, bottom, left, right)``, its two 1-D
    windows (down, across; the 2-D window is their outer product) and its detail.

    Raises unless every output pixel lies in some tile (checked on a 1-byte coverage map).
    """
    placed = []
    covered = np.zeros((height, width), dtype=bool)
    for index, entry in enumerate(tiles):
        try:
            (left, top), detail = entry
        except (TypeError, ValueError):
            raise BadInputError(
                f"tile {index} must be ((left, top), detail), not {type(entry).__name__}."
            ) from None
        detail = _check_float_image(detail, f"the detail of tile {index}")
        tile_height, tile_width = detail.shape[:2]
        if not (_is_integer(left) and _is_integer(top)) or not (0 <= left < width and 0 <= top < height):
            raise BadInputError(
                f"tile {index} at ({left!r}, {top!r}) does not start inside the {width}×{height} result."
            )
        left, top = int(left), int(top)
        right, bottom = min(left + tile_width, width), min(top + tile_height, height)
        across = _window(tile_width, flat_start=left == 0, flat_end=left + tile_width >= width)
        down = _window(tile_height, flat_start=top == 0, flat_end=top + tile_height >= height)
        placed.append((top, bottom, left, right, down[: bottom - top], across[: right - left], detail))
        covered[top:bottom, left:right] = True
    if not covered.all():
        rows, columns = np.nonzero(~covered)
        raise BadInputError(
            f"the tiles leave {int((~covered).sum())} output pixels uncovered, the first at "
            f"({int(columns[0])}, {int(rows[0])})."
        )
    return placed


def assemble(
    low: np.ndarray,
    factor: int,
    tiles: Sequence[tuple[tuple[int, int], np.ndarray]],
    strength: float,
    *,
    classical: np.ndarray | None = None,
) -> np.ndarray:
    """The full-resolution result: classical upscaling plus the prior's blended tile detail.

    Parameters
    ----------
    low : np.ndarray
        The low-resolution photo, h×w×3 uint8; not modified.
    factor : int
        Super-resolution factor f ≥ 2.
    tiles : sequence of ((left, top), detail)
        Each tile's top-left corner in output pixels (inside the result) and its detail, an
        R×R×3 float array (R×S and sizes differing between tiles are accepted too): the
        tile's :func:`prior_detail`, or the model's output itself (as float), since only the
        blend's null-space component reaches the result (see Notes).
        Parts past the result's right or bottom edge are cropped. Together the tiles must
        cover every output pixel.
    strength : float
        Detail strength s in [0, 1]: 0 is the classical upscale exactly, 1 puts the prior's
        detail in place of the classical upscale's.
    classical : np.ndarray or None, keyword-only
        :func:`classical_upscale` of ``low`` if already computed (saves a pass); not modified.

    Returns
    -------
    np.ndarray
        (f·h)×(f·w)×3 uint8. Shrunk back with PIL's Lanczos it reproduces ``low`` to within
        uint8 rounding at every strength.

    Notes
    -----
    With C the classical upscale and B the blend of the tiles' details (each weighted by
    a Hann window, flat on halves at the photo's border, divided by the sum of windows so
    the weights are a smooth partition of unity),

        result = P(C + s · (B − N C)),    N C = C − A⁺ A C,

    where P is the projection onto the input (plus clip-and-project rounds) and N C the
    classical upscale's own null-space content. Since ``P(C + s·(B − N C)) = A⁺L +
    (1 − s)·N C + s·N B``, the strength interpolates the band the input cannot see between
    the classical guess and the prior's; the frequencies the input has stay the input's.
    The final projection also removes what the windows leak out of the null space. Given
    the truth's own null-space component as the detail, strength 1 returns the truth to
    within the uint8 rounding of ``low``.

    Because only ``N B`` matters, the tiles may carry the model's raw outputs: their blend's
    global null-space component is then used, which avoids the edge effects of each tile's
    own operator (PIL renormalises at the tile's border, so :func:`prior_detail` is least
    faithful within about ``3 f`` pixels of a tile's edge). With 64 px tiles at ×4 and an
    overlap of 1/4, raw outputs measured 2–2.5 dB closer to the truth than per-tile details
    on two photos (docs/benchmarks.md), without the seam band; at an overlap of 1/2 the two
    differ by about 0.5 dB.

    Peak memory about 20 bytes per output pixel on top of the caller's arrays: the float32
    result (12), the float32 sum of windows (4, freed before the final projection), then
    the rounding buffers of the PIL rounds and the uint8 output (3 each) and low-resolution
    residuals (``24 / f²`` each), plus strip temporaries.
    """
    factor = _check_factor(factor)
    low = _check_low(low)
    if (
        isinstance(strength, bool)
        or not isinstance(strength, numbers.Real)
        or not math.isfinite(strength)
        or not 0 <= strength <= 1
    ):
        raise BadInputError(f"the detail strength must be a number from 0 to 1, not {strength!r}.")
    height, width = low.shape[0] * factor, low.shape[1] * factor
    placed = _placed_tiles(tiles, height, width)
    if classical is None:
        result = classical_upscale(low, factor)
    else:
        result = _check_float_image(classical, "the classical upscale").astype(np.float32, copy=True)
        _check_sizes(result.shape, low.shape, factor, "the classical upscale")
    if strength == 0:
        # The blend is weighted by zero, so the result is the classical upscale; projecting it
        # again would only add float noise that can flip a rounding.
        return _round_to_uint8(result)

    weight_sum = np.zeros((height, width), dtype=np.float32)
    for top, bottom, left, right, down, across, _ in placed:
        weight_sum[top:bottom, left:right] += np.outer(down, across)
    vertical, horizontal = lanczos_operator(height, factor), lanczos_operator(width, factor)
    # result ← C + s·(B − N C) = (1 − s)·C + s·B + s·A⁺ A C, accumulated in place so that no
    # second full-resolution array is needed: A⁺ A C from C's low-resolution coefficients.
    seen = _downsample(result, vertical, horizontal)
    vertical.solve_gram(seen, axis=0)
    horizontal.solve_gram(seen, axis=1)
    result *= np.float32(1 - strength)
    for top, bottom, left, right, down, across, detail in placed:
        share = (strength * np.outer(down, across) / weight_sum[top:bottom, left:right]).astype(np.float32)
        result[top:bottom, left:right] += share[:, :, None] * detail[: bottom - top, : right - left]
    del weight_sum
    seen *= strength
    _add_transpose(result, seen, vertical, horizontal)
    del seen
    _consistent_in_place(result, low, factor)
    return _round_to_uint8(result)
