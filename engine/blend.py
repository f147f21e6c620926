"""Putting an inpainted fill into the photo in the gradient domain, and the classical hole fills.

A model's fill for a painted hole rarely has exactly the photo's colours: pasted in (even
with a feathered edge, :func:`engine.composite.composite_inpainting`) it shows as a patch.
:func:`poisson_blend` keeps the fill's *gradients* and takes its *level* from the photo:
inside the hole it solves, per channel and at the photo's own resolution, the Poisson
equation with the fill's gradients as guidance and the photo's pixels on the hole's
boundary (Pérez, Gangnet and Blake 2003, "Poisson Image Editing", eq. 7–8 with
v = ∇g). Written as ``result = fill + h``, the correction ``h`` is the harmonic function
that equals ``original − fill`` on the boundary: a constant or slowly varying colour cast of
the fill is removed exactly, its texture is kept.

The module also holds what the restore plan needs to choose one model run per painted area
(:func:`connected_areas`, :func:`context_square`) and the classical baselines the
evaluation compares against (:func:`mean_fill`, :func:`harmonic_fill`).

Masks are H×W arrays in [0, 1] (1 = painted = missing, ``engine.imageio.load_mask``); a
pixel is *in the hole* when its mask value is at least :data:`HOLE_THRESHOLD`. Every pixel
outside the hole is copied from the original bit for bit; originals are never modified.
Numpy and Pillow only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.composite import RegionOfInterest
from engine.errors import BadInputError

__all__ = [
    "DEFAULT_TOLERANCE",
    "HOLE_THRESHOLD",
    "MEAN_FILL_RING_PX",
    "LaplaceSolution",
    "PaintedArea",
    "connected_areas",
    "context_square",
    "harmonic_fill",
    "mean_fill",
    "poisson_blend",
    "solve_laplace",
]

#: A mask value at or above this marks a pixel as missing (the same core as the feathered composite).
HOLE_THRESHOLD = 0.5

#: Default stopping point of the solver: ‖b − A·x‖₂ ≤ tolerance · ‖b‖₂ per channel at full
#: resolution. On a 1000×1000 hole in a photo with a blurred, colour-shifted fill, 1e-4 (17
#: iterations) is within 0.08 levels of a solve run to float32's floor (5e-6, 105 iterations),
#: so the rounded uint8 results differ by at most one level, next to rounding boundaries
#: (``benchmarks/bench_inpaint_fills.py --check-tolerance``).
DEFAULT_TOLERANCE = 1e-4

#: Width of the ring of known pixels around a hole whose mean colour :func:`mean_fill` uses.
MEAN_FILL_RING_PX = 3

# Coarse-to-fine stops halving when the next level's shorter side would drop below this.
_COARSEST_SIDE = 16
# Holes whose bounding boxes are fewer pixels apart than this are solved together: any value ≥ 1
# keeps other holes' pixels out of a solve's box, a few more saves the overhead of many tiny solves.
_SOLVE_MERGE_DISTANCE = 8
# Multigrid levels with at most this many unknowns are solved exactly (a dense inverse).
_DENSE_UNKNOWNS = 64
# Restarts of conjugate gradients from the current solution when float32 drift left the true
# residual above the tolerance.
_RESTARTS = 3
# Pairwise box comparisons are made in blocks of this many rows, so memory stays bounded.
_BOX_BLOCK = 1024


# --------------------------------------------------------------------------------------
# Checks


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _rgb_image(image: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadInputError(
            f"{name} must be an H×W×3 uint8 array, got shape {getattr(image, 'shape', None)} "
            f"and dtype {getattr(image, 'dtype', type(image).__name__)}."
        )
    return image


def _hole_of(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The boolean hole (mask ≥ :data:`HOLE_THRESHOLD`) of an H×W mask of the given shape."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.shape != shape:
        raise BadInputError(
            f"the mask must be {shape[1]}×{shape[0]} like the image, got shape {getattr(mask, 'shape', None)}."
        )
    if mask.dtype == np.bool_:
        return mask
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise BadInputError(f"the mask must hold numbers or booleans, not {mask.dtype}.")
    if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
        raise BadInputError("the mask holds NaN or infinite values.")
    return mask >= HOLE_THRESHOLD


def _non_negative_int(value: object, name: str) -> int:
    if not _is_integer(value) or int(value) < 0:  # type: ignore[call-overload]
        raise BadInputError(f"{name} must be a non-negative integer, not {value!r}.")
    return int(value)  # type: ignore[call-overload]


def _checked_box(box: object, width: int, height: int, name: str) -> tuple[int, int, int, int]:
    if isinstance(box, RegionOfInterest):
        box = box.box
    if not isinstance(box, Sequence) or len(box) != 4 or not all(_is_integer(v) for v in box):
        raise BadInputError(f"{name} must be four integers (left, top, right, bottom), not {box!r}.")
    left, top, right, bottom = (int(v) for v in box)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise BadInputError(
            f"{name} (left {left}, top {top}, right {right}, bottom {bottom}) is empty or does not fit "
            f"inside the {width}×{height} image."
        )
    return left, top, right, bottom


def _checked_solver_options(tolerance: object, max_iterations: object) -> tuple[float, int | None]:
    if (
        not isinstance(tolerance, numbers.Real)
        or isinstance(tolerance, bool)
        or not math.isfinite(float(tolerance))
        or not 0.0 < float(tolerance) < 1.0
    ):
        raise BadInputError(f"the solver tolerance must be a number between 0 and 1, not {tolerance!r}.")
    if max_iterations is not None and (not _is_integer(max_iterations) or int(max_iterations) < 1):  # type: ignore[call-overload]
        raise BadInputError(f"max_iterations must be a positive integer or None, not {max_iterations!r}.")
    return float(tolerance), None if max_iterations is None else int(max_iterations)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------
# Connected areas


@dataclass(frozen=True)
class PaintedArea:
    """One separate painted area of a mask.

    Attributes
    ----------
    box : tuple of int
        ``(left, top, right, bottom)``, the area's bounding box (Pillow's crop box: right and
        bottom are one past the last painted column and row).
    pixel_count : int
        Number of painted pixels in the area.
    """

    box: tuple[int, int, int, int]
    pixel_count: int

    @property
    def width(self) -> int:
        """Width of the bounding box in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """Height of the bounding box in pixels."""
        return self.box[3] - self.box[1]


def _components(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Union-find over ``count`` nodes and the edges (first[i], second[i]), vectorised.

    Returns each node's root, the smallest node index of its component. Every round hooks
    the larger of two roots joined by an edge onto the smaller, then halves paths until
    every node points at a root (parent[x] ≤ x throughout, so no cycle can form); edges
    whose ends share a root are dropped for good.
    """
    parent = np.arange(count, dtype=np.int64)
    while first.size:
        root_first = parent[first]
        root_second = parent[second]
        open_edges = root_first != root_second
        if not open_edges.any():
            break
        first, second = first[open_edges], second[open_edges]
        root_first, root_second = root_first[open_edges], root_second[open_edges]
        np.minimum.at(parent, np.maximum(root_first, root_second), np.minimum(root_first, root_second))
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
    return parent


def _expand_ranges(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) for every i and every j in [low[i], high[i])."""
    counts = np.maximum(high - low, 0)
    total = int(counts.sum())
    owners = np.repeat(np.arange(low.size, dtype=np.int64), counts)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return owners, np.repeat(low, counts) + offsets


def _labelled_runs(hole: np.ndarray, connectivity: int) -> tuple[np.ndarray, ...]:
    """Horizontal runs of the hole and their component labels.

    Returns ``(rows, starts, ends, labels)``: run r covers row ``rows[r]``, columns
    ``starts[r] … ends[r] − 1``; labels are 0 … n − 1. Runs in consecutive rows are joined
    when their column ranges overlap (4-connectivity) or overlap or touch diagonally
    (8-connectivity). Work is proportional to the pixels of the painted rows' bounding box
    (one pass to find the runs) plus the number of runs.
    """
    painted_rows = np.flatnonzero(hole.any(axis=1))
    if painted_rows.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    first_row, last_row = int(painted_rows[0]), int(painted_rows[-1]) + 1
    band = hole[first_row:last_row]
    padded = np.zeros((band.shape[0], band.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = band
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)  # row-major order pairs every start with its end
    rows = rows.astype(np.int64) + first_row
    starts = starts.astype(np.int64)
    ends = ends.astype(np.int64)
    # Runs sorted by (row, column): with stride > width + 1, row·stride + column orders them
    # and keeps rows apart, so one search finds the runs of the next row that overlap.
    stride = hole.shape[1] + 3
    reach = 1 if connectivity == 8 else 0
    start_keys = rows * stride + starts
    end_keys = rows * stride + ends
    below_high = np.searchsorted(start_keys, (rows + 1) * stride + ends + reach, side="left")
    below_low = np.searchsorted(end_keys, (rows + 1) * stride + starts - reach, side="right")
    upper, lower = _expand_ranges(below_low, below_high)
    roots = _components(rows.size, upper, lower)
    _, labels = np.unique(roots, return_inverse=True)
    return rows, starts, ends, labels.astype(np.int64)


def _box_gaps(boxes: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Gaps between every box of ``block`` (rows) and every box of ``boxes`` (columns).

    The gap is the number of empty columns or rows between two boxes along the axis that
    separates them most; it is 0 for boxes that touch and negative for boxes that overlap.
    """
    left, top, right, bottom = (boxes[:, index][None, :] for index in range(4))
    block_left, block_top, block_right, block_bottom = (block[:, index][:, None] for index in range(4))
    return np.maximum(
        np.maximum(left - block_right, block_left - right), np.maximum(top - block_bottom, block_top - bottom)
    )


def _merge_close_boxes(boxes: np.ndarray, counts: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge boxes whose gap is below ``distance`` until no two are that close."""
    while distance > 0 and boxes.shape[0] > 1:
        firsts, seconds = [], []
        for start in range(0, boxes.shape[0], _BOX_BLOCK):
            close = _box_gaps(boxes, boxes[start : start + _BOX_BLOCK]) < distance
            rows, columns = np.nonzero(close)
            later = columns > rows + start
            firsts.append(rows[later] + start)
            seconds.append(columns[later])
        first, second = np.concatenate(firsts), np.concatenate(seconds)
        if first.size == 0:
            break
        _, labels = np.unique(_components(boxes.shape[0], first, second), return_inverse=True)
        merged = np.empty((int(labels.max()) + 1, 4), dtype=np.int64)
        merged[:, :2] = np.iinfo(np.int64).max
        merged[:, 2:] = np.iinfo(np.int64).min
        for index, reduce in enumerate((np.minimum, np.minimum, np.maximum, np.maximum)):
            reduce.at(merged[:, index], labels, boxes[:, index])
        counts = np.bincount(labels, weights=counts).astype(np.int64)
        boxes = merged
    return boxes, counts


def _areas_of_hole(hole: np.ndarray, *, merge_distance: int, connectivity: int) -> list[PaintedArea]:
    rows, starts, ends, labels = _labelled_runs(hole, connectivity)
    if rows.size == 0:
        return []
    count = int(labels.max()) + 1
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, :2] = np.iinfo(np.int64).max
    boxes[:, 2:] = np.iinfo(np.int64).min
    np.minimum.at(boxes[:, 0], labels, starts)
    np.minimum.at(boxes[:, 1], labels, rows)
    np.maximum.at(boxes[:, 2], labels, ends)
    np.maximum.at(boxes[:, 3], labels, rows + 1)
    pixel_counts = np.bincount(labels, weights=ends - starts, minlength=count).astype(np.int64)
    boxes, pixel_counts = _merge_close_boxes(boxes, pixel_counts, merge_distance)
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    return [
        PaintedArea(box=tuple(int(v) for v in boxes[index]), pixel_count=int(pixel_counts[index]))  # type: ignore[arg-type]
        for index in order
    ]


def connected_areas(
    mask: np.ndarray, *, merge_distance: int = 0, connectivity: int = 8
) -> tuple[PaintedArea, ...]:
    """The separate painted areas of a mask, each with its bounding box.

    Parameters
    ----------
    mask : np.ndarray
        H×W float in [0, 1] (1 = painted; a pixel counts as painted at ≥
        :data:`HOLE_THRESHOLD`) or H×W bool.
    merge_distance : int, keyword-only
        Areas whose bounding boxes are fewer than this many pixels apart are reported as one
        area (its box covers both), repeatedly, until no two areas are that close. The
        distance of two boxes is the number of empty columns or rows between them along the
        axis that separates them most (boxes that touch are 0 apart, overlapping boxes less).
        0 merges nothing; 1 merges areas whose boxes touch or overlap, so that every box
        then holds the painted pixels of its own area only.
    connectivity : {4, 8}, keyword-only
        Which neighbours join painted pixels into one area: the 4 edge neighbours, or also
        the 4 diagonal ones.

    Returns
    -------
    tuple of PaintedArea
        Sorted by the box's top, then left edge; empty when nothing is painted.

    Notes
    -----
    Labelling works on horizontal runs of painted pixels: one vectorised pass finds the runs,
    runs in consecutive rows that overlap are joined, and a vectorised union-find gives the
    components, so the cost follows the number of runs, not a per-pixel Python loop (a
    4000×3000 mask with a dozen large blobs and a stroke: 0.7 s on two heavily loaded cores).
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise BadInputError(f"the mask must be an H×W array, got {getattr(mask, 'shape', None)}.")
    if connectivity not in (4, 8) or isinstance(connectivity, bool):
        raise BadInputError(f"connectivity must be 4 or 8, not {connectivity!r}.")
    merge_distance = _non_negative_int(merge_distance, "merge_distance")
    hole = _hole_of(mask, mask.shape)
    return tuple(_areas_of_hole(hole, merge_distance=merge_distance, connectivity=connectivity))


def context_square(
    box: Sequence[int] | PaintedArea,
    image_size: tuple[int, int],
    *,
    min_side: int,
    context: float,
) -> RegionOfInterest:
    """The square region a model should see to fill one painted area.

    Parameters
    ----------
    box : sequence of int or PaintedArea
        The area's ``(left, top, right, bottom)`` box inside the image.
    image_size : tuple of int
        ``(width, height)`` of the photo.
    min_side : int, keyword-only
        The square's smallest side, e.g. the model's resolution, so that a small hole is seen
        with enough surroundings and not enlarged beyond the model's pixels.
    context : float, keyword-only
        Margin on each side as a fraction of the box's longer side: the square's side is
        ``ceil(max(box width, box height) · (1 + 2·context))``, at least ``min_side``.

    Returns
    -------
    RegionOfInterest
        A square inside the photo, centred on the box where the photo allows and otherwise
        shifted (never cropped) until it fits. When that side is larger than the photo's
        shorter side, the largest square that fits (side ``min(width, height)``) is returned,
        centred on the box along the photo's longer axis; a box longer than that square then
        sticks out of it, and the painted pixels outside it are not seen by the model
        (``engine.composite.unreachable_mask_fraction`` says how many).
    """
    if isinstance(box, PaintedArea):
        box = box.box
    if (
        not isinstance(image_size, Sequence)
        or len(image_size) != 2
        or not all(_is_integer(v) and int(v) >= 1 for v in image_size)
    ):
        raise BadInputError(f"the image size must be two positive integers, not {image_size!r}.")
    width, height = (int(v) for v in image_size)
    left, top, right, bottom = _checked_box(box, width, height, "the area's box")
    if not _is_integer(min_side) or int(min_side) < 1:
        raise BadInputError(f"min_side must be a positive integer, not {min_side!r}.")
    if not isinstance(context, numbers.Real) or isinstance(context, bool) or not 0 <= float(context) < 1e6:
        raise BadInputError(f"context must be a non-negative number, not {context!r}.")
    longer = max(right - left, bottom - top)
    side = max(int(min_side), math.ceil(longer * (1.0 + 2.0 * float(context)) - 1e-9))
    side = min(side, width, height)
    square_left = min(max((left + right - side) // 2, 0), width - side)
    square_top = min(max((top + bottom - side) // 2, 0), height - side)
    return RegionOfInterest(left=square_left, top=square_top, size=side)


# --------------------------------------------------------------------------------------
# The Laplace solver


@dataclass(frozen=True)
class LaplaceSolution:
    """What :func:`solve_laplace` returns.

    Attributes
    ----------
    values : np.ndarray
        C×H×W float32: the given values where the hole is not, the solution in the hole.
    iterations : int
        Conjugate-gradient iterations at full resolution (the coarser levels not counted).
    relative_residual : float
        ``max over channels of ‖b − A·x‖₂ / ‖b‖₂`` of the returned solution at full
        resolution, recomputed from it (not the recursion's estimate); 0 for an empty hole.
    levels : int
        Number of resolutions solved, the full one included.
    """

    values: np.ndarray
    iterations: int
    relative_residual: float
    levels: int


@dataclass(frozen=True)
class _Level:
    """One resolution of the multigrid hierarchy: a weighted graph Laplacian on a grid.

    ``(A·x)_i = diagonal_i · x_i − Σ_j w_ij · x_j`` over the grid's unknowns (``hole``); the
    weights couple each cell to its right (``weight_x``) and lower (``weight_y``) neighbour,
    and ``diagonal`` holds Σ_j w_ij plus the cell's couplings to known (Dirichlet) pixels.
    """

    hole: np.ndarray
    weight_x: np.ndarray
    weight_y: np.ndarray
    dirichlet: np.ndarray
    diagonal: np.ndarray
    inverse_diagonal: np.ndarray
    red: np.ndarray
    black: np.ndarray
    factors: tuple[int, int]
    dense_inverse: np.ndarray | None
    dense_index: tuple[np.ndarray, np.ndarray] | None
    unit_weights: bool


def _make_level(
    hole: np.ndarray,
    weight_x: np.ndarray,
    weight_y: np.ndarray,
    dirichlet: np.ndarray,
    *,
    unit_weights: bool = False,
) -> _Level:
    height, width = hole.shape
    diagonal = dirichlet.copy()
    diagonal[:, 1:] += weight_x
    diagonal[:, :-1] += weight_x
    diagonal[1:, :] += weight_y
    diagonal[:-1, :] += weight_y
    diagonal[~hole] = 1.0  # never used: keeps the division below finite
    checker = (np.add.outer(np.arange(height), np.arange(width)) % 2) == 0
    factors = (2 if height > 1 else 1, 2 if width > 1 else 1)
    dense_inverse = dense_index = None
    unknowns = int(np.count_nonzero(hole))
    if unknowns <= _DENSE_UNKNOWNS or factors == (1, 1):
        rows, columns = np.nonzero(hole)
        number = np.full(hole.shape, -1, dtype=np.int64)
        number[rows, columns] = np.arange(unknowns)
        matrix = np.diag(diagonal[rows, columns].astype(np.float64))
        for (row_step, column_step), weights in (((0, 1), weight_x), ((1, 0), weight_y)):
            edge_rows, edge_columns = np.nonzero(weights > 0)
            first = number[edge_rows, edge_columns]
            second = number[edge_rows + row_step, edge_columns + column_step]
            value = weights[edge_rows, edge_columns].astype(np.float64)
            matrix[first, second] -= value
            matrix[second, first] -= value
        dense_inverse = np.linalg.inv(matrix)
        dense_index = (rows, columns)
    return _Level(
        hole=hole,
        weight_x=weight_x,
        weight_y=weight_y,
        dirichlet=dirichlet,
        diagonal=diagonal,
        inverse_diagonal=(1.0 / diagonal).astype(np.float32),
        red=hole & checker,
        black=hole & ~checker,
        factors=factors,
        dense_inverse=dense_inverse,
        dense_index=dense_index,
        unit_weights=unit_weights,
    )


def _block_sum(array: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """Sum over factor_y × factor_x blocks of the last two axes (zero-padded to whole blocks)."""
    factor_y, factor_x = factors
    height, width = array.shape[-2:]
    pad_y, pad_x = -height % factor_y, -width % factor_x
    if pad_y or pad_x:
        array = np.pad(array, [(0, 0)] * (array.ndim - 2) + [(0, pad_y), (0, pad_x)])
    coarse_height, coarse_width = array.shape[-2] // factor_y, array.shape[-1] // factor_x
    blocks = array.reshape((*array.shape[:-2], coarse_height, factor_y, coarse_width, factor_x))
    return blocks.sum(axis=(-3, -1))


def _coarser_level(level: _Level) -> _Level:
    """The Galerkin coarse level Pᵀ·A·P for piecewise-constant P over 2×2 blocks.

    A coarse cell is unknown when any pixel of its block is. With P constant on blocks,
    xᵀAx of the fine graph Laplacian keeps only the edges that cross between blocks (their
    weights add up) and the couplings to known pixels (they add up too), so the coarse
    level is again a weighted graph Laplacian, symmetric positive definite like the fine one.
    """
    factor_y, factor_x = level.factors
    hole = _block_sum(level.hole.astype(np.int32), level.factors) > 0
    height, width = level.hole.shape
    coarse_height, coarse_width = hole.shape
    padded_x = np.zeros((coarse_height * factor_y, coarse_width * factor_x), dtype=np.float32)
    padded_x[:height, : width - 1] = level.weight_x
    padded_y = np.zeros_like(padded_x)
    padded_y[: height - 1, :width] = level.weight_y
    # Edges leaving a block to the right start in its last column; those leaving it
    # downwards start in its last row. With a factor of 1 every edge leaves its block.
    crossing_x = (
        padded_x[:, factor_x - 1 :: factor_x].reshape(coarse_height, factor_y, coarse_width).sum(axis=1)
    )
    crossing_y = (
        padded_y[factor_y - 1 :: factor_y, :].reshape(coarse_height, coarse_width, factor_x).sum(axis=2)
    )
    dirichlet = _block_sum(level.dirichlet, level.factors).astype(np.float32)
    return _make_level(
        hole, crossing_x[:, : coarse_width - 1].copy(), crossing_y[: coarse_height - 1, :].copy(), dirichlet
    )


def _hierarchy(hole: np.ndarray) -> list[_Level]:
    """The fine level of the 5-point Laplacian on the hole and its Galerkin coarse levels."""
    height, width = hole.shape
    weight_x = (hole[:, :-1] & hole[:, 1:]).astype(np.float32)
    weight_y = (hole[:-1, :] & hole[1:, :]).astype(np.float32)
    known = ~hole
    dirichlet = np.zeros((height, width), dtype=np.float32)
    dirichlet[:, 1:] += known[:, :-1]
    dirichlet[:, :-1] += known[:, 1:]
    dirichlet[1:, :] += known[:-1, :]
    dirichlet[:-1, :] += known[1:, :]
    dirichlet *= hole
    levels = [_make_level(hole, weight_x, weight_y, dirichlet, unit_weights=True)]
    while levels[-1].dense_inverse is None:
        levels.append(_coarser_level(levels[-1]))
    return levels


def _weighted_neighbour_sum(level: _Level, x: np.ndarray) -> np.ndarray:
    """Σ_j w_ij · x_j for every unknown cell of a C×H×W array that is zero at known cells."""
    total = np.zeros_like(x)
    if level.unit_weights:
        # The fine level's weights are 1 between unknowns and 0 elsewhere, and x is zero at
        # known cells, so a plain neighbour sum gives the same values at the unknowns.
        total[:, :, 1:] += x[:, :, :-1]
        total[:, :, :-1] += x[:, :, 1:]
        total[:, 1:, :] += x[:, :-1, :]
        total[:, :-1, :] += x[:, 1:, :]
        return total
    total[:, :, 1:] += level.weight_x * x[:, :, :-1]
    total[:, :, :-1] += level.weight_x * x[:, :, 1:]
    total[:, 1:, :] += level.weight_y * x[:, :-1, :]
    total[:, :-1, :] += level.weight_y * x[:, 1:, :]
    return total


def _apply(level: _Level, x: np.ndarray) -> np.ndarray:
    result = level.diagonal * x
    result -= _weighted_neighbour_sum(level, x)
    result *= level.hole
    return result


def _gauss_seidel(level: _Level, x: np.ndarray, rhs: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """One red-black Gauss–Seidel half sweep: the cells of one colour solved exactly."""
    updated = _weighted_neighbour_sum(level, x)
    updated += rhs
    updated *= level.inverse_diagonal
    return np.where(colour, updated, x)


def _v_cycle(levels: list[_Level], index: int, rhs: np.ndarray) -> np.ndarray:
    """One symmetric V(1,1)-cycle from zero: an SPD approximation of A⁻¹·rhs.

    Red then black before the coarse correction, black then red after it (the adjoint
    sweep), restriction the transpose of the piecewise-constant prolongation and Galerkin
    coarse levels: together a symmetric positive definite preconditioner, as conjugate
    gradients requires.
    """
    level = levels[index]
    if level.dense_inverse is not None:
        rows, columns = level.dense_index  # type: ignore[misc]
        x = np.zeros_like(rhs)
        x[:, rows, columns] = (rhs[:, rows, columns].astype(np.float64) @ level.dense_inverse).astype(
            np.float32
        )
        return x
    x = np.where(level.red, rhs * level.inverse_diagonal, np.float32(0.0))
    x = _gauss_seidel(level, x, rhs, level.black)
    residual = rhs - _apply(level, x)
    correction = _v_cycle(levels, index + 1, _block_sum(residual, level.factors))
    factor_y, factor_x = level.factors
    height, width = level.hole.shape
    enlarged = np.repeat(np.repeat(correction, factor_y, axis=1), factor_x, axis=2)[:, :height, :width]
    x += enlarged * level.hole
    x = _gauss_seidel(level, x, rhs, level.black)
    return _gauss_seidel(level, x, rhs, level.red)


def _channel_dot(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-channel inner products of two C×H×W float32 arrays, accumulated in float64."""
    return np.einsum("chw,chw->c", first, second, dtype=np.float64)


def _conjugate_gradients(
    values: np.ndarray, hole: np.ndarray, guess: np.ndarray | None, tolerance: float, max_iterations: int
) -> tuple[np.ndarray, int, float]:
    """Solve the 5-point Laplace system in the hole; returns (values, iterations, relative residual)."""
    levels = _hierarchy(hole)
    fine = levels[0]
    known = np.where(hole, 0.0, values).astype(np.float32)
    rhs = np.zeros_like(known)
    rhs[:, :, 1:] += known[:, :, :-1]
    rhs[:, :, :-1] += known[:, :, 1:]
    rhs[:, 1:, :] += known[:, :-1, :]
    rhs[:, :-1, :] += known[:, 1:, :]
    rhs *= hole
    rhs_norm = np.sqrt(_channel_dot(rhs, rhs))
    scale = np.where(rhs_norm > 0, rhs_norm, 1.0)
    x = np.zeros_like(values) if guess is None else (guess * hole).astype(np.float32)
    iterations = 0
    # The recursive residual of CG drifts from the true one in float32; restarting from the
    # current solution while the true residual is above the tolerance makes the stated
    # residual hold for what is returned (a few restarts at most: below about 1e-6 float32
    # rounding, not the iteration, limits what can be reached).
    for _ in range(_RESTARTS + 1):
        residual = rhs - _apply(fine, x)
        relative = np.sqrt(_channel_dot(residual, residual)) / scale
        if np.all(relative <= tolerance) or iterations >= max_iterations:
            break
        restart_at = iterations
        preconditioned = _v_cycle(levels, 0, residual)
        direction = preconditioned.copy()
        alignment = _channel_dot(residual, preconditioned)
        while iterations < max_iterations:
            active = relative > tolerance
            if not active.any():
                break
            product = _apply(fine, direction)
            curvature = _channel_dot(direction, product)
            usable = active & (curvature > 0)
            step = np.where(usable, alignment / np.where(usable, curvature, 1.0), 0.0)
            step32 = step.astype(np.float32)[:, None, None]
            x += step32 * direction
            residual -= step32 * product
            relative = np.where(active, np.sqrt(_channel_dot(residual, residual)) / scale, relative)
            iterations += 1
            preconditioned = _v_cycle(levels, 0, residual)
            new_alignment = _channel_dot(residual, preconditioned)
            usable = active & (alignment > 0)
            ratio = np.where(usable, new_alignment / np.where(usable, alignment, 1.0), 0.0)
            alignment = np.where(active, new_alignment, alignment)
            direction *= ratio.astype(np.float32)[:, None, None]
            direction += np.where(active[:, None, None], preconditioned, 0.0).astype(np.float32)
        if iterations == restart_at:
            break
    else:
        residual = rhs - _apply(fine, x)
        relative = np.sqrt(_channel_dot(residual, residual)) / scale
    result = np.where(hole[None], x, values).astype(np.float32)
    return result, iterations, float(relative.max())


def _coarser(values: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-resolution version of the problem: 2×2 blocks, a block is in the hole only if all of it is."""
    channels, height, width = values.shape
    pad_rows, pad_columns = height % 2, width % 2
    if pad_rows or pad_columns:
        values = np.pad(values, ((0, 0), (0, pad_rows), (0, pad_columns)), mode="edge")
        hole = np.pad(hole, ((0, pad_rows), (0, pad_columns)), mode="edge")
    coarse_height, coarse_width = hole.shape[0] // 2, hole.shape[1] // 2
    known = (~hole).astype(np.float32)
    known_blocks = known.reshape(coarse_height, 2, coarse_width, 2).sum(axis=(1, 3))
    value_blocks = (values * known).reshape(channels, coarse_height, 2, coarse_width, 2).sum(axis=(2, 4))
    coarse_values = value_blocks / np.maximum(known_blocks, 1.0)
    return coarse_values.astype(np.float32), known_blocks == 0


def _finer(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (pixel-centred) ×2 enlargement of a C×h×w array, cut to height×width."""
    planes = []
    for plane in values:
        image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        enlarged = image.resize((plane.shape[1] * 2, plane.shape[0] * 2), Image.Resampling.BILINEAR)
        planes.append(np.asarray(enlarged, dtype=np.float32)[:height, :width])
    return np.stack(planes)


def _solve_coarse_to_fine(
    values: np.ndarray, hole: np.ndarray, tolerance: float, max_iterations: int | None
) -> tuple[np.ndarray, int, float, int]:
    height, width = hole.shape
    guess = None
    levels = 1
    if min(height, width) // 2 >= _COARSEST_SIDE:
        coarse_values, coarse_hole = _coarser(values, hole)
        if coarse_hole.any():
            coarse, _, _, coarse_levels = _solve_coarse_to_fine(coarse_values, coarse_hole, tolerance, None)
            guess = _finer(coarse, height, width)
            levels += coarse_levels
    # Plain CG needs about (side · log(1/tolerance)) iterations from a cold start on a square;
    # the default cap is well above that, so it only guards against a breakdown.
    limit = max_iterations if max_iterations is not None else 20 * (height + width) + 100
    solved, iterations, relative = _conjugate_gradients(values, hole, guess, tolerance, limit)
    return solved, iterations, relative, levels


def solve_laplace(
    values: np.ndarray,
    hole: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int | None = None,
) -> LaplaceSolution:
    """Harmonic interpolation into a hole: the discrete Laplace equation with Dirichlet data.

    Parameters
    ----------
    values : np.ndarray
        C×H×W (or H×W) real array: the boundary values, read where ``hole`` is False.
    hole : np.ndarray
        H×W bool, True where the values are unknown. Every 4-connected part of the hole must
        touch a known pixel (true unless the hole is the whole array).
    tolerance : float, keyword-only
        Stop when ``‖b − A·x‖₂ ≤ tolerance · ‖b‖₂`` for every channel, where A is the
        5-point Laplacian restricted to the hole and b the known neighbours' sum
        (default :data:`DEFAULT_TOLERANCE`).
    max_iterations : int, optional, keyword-only
        Cap on the conjugate-gradient iterations at full resolution; default
        ``20 · (H + W) + 100``. When reached, the solution so far is returned and its
        ``relative_residual`` says how far it got.

    Returns
    -------
    LaplaceSolution
        ``values`` C×H×W float32 (an H×W input gives 1×H×W).

    Notes
    -----
    For every hole pixel p, ``|N_p|·x_p − Σ_{q ∈ N_p ∩ hole} x_q = Σ_{q ∈ N_p, q known} v_q``
    with N_p the pixel's 4 neighbours inside the array (Pérez et al. 2003, eq. 8, with zero
    guidance): Dirichlet on the hole's boundary, and at the array's edge no flux (the
    missing neighbour is simply not there). The system is symmetric positive definite and
    solved by conjugate gradients, all channels at once, coarse to fine: the problem on
    2×2 blocks (a block is unknown only if all four pixels are; known values averaged) is
    solved first, recursively down to a side of about 16 pixels, and its bilinear
    enlargement is the initial guess, so the slow low frequencies are already in place.
    """
    if not isinstance(values, np.ndarray) or values.ndim not in (2, 3):
        raise BadInputError(
            f"the values must be an H×W or C×H×W array, got {getattr(values, 'shape', None)}."
        )
    planes = values[None] if values.ndim == 2 else values
    if not isinstance(hole, np.ndarray) or hole.dtype != np.bool_ or hole.shape != planes.shape[1:]:
        raise BadInputError(
            f"the hole must be an H×W bool array of shape {planes.shape[1:]}, got {getattr(hole, 'shape', None)}."
        )
    tolerance, max_iterations = _checked_solver_options(tolerance, max_iterations)
    planes = np.asarray(planes, dtype=np.float32)
    if not np.isfinite(planes[:, ~hole]).all():
        raise BadInputError("the known values hold NaN or infinite numbers.")
    if not hole.any():
        return LaplaceSolution(values=planes.copy(), iterations=0, relative_residual=0.0, levels=0)
    if hole.all():
        raise BadInputError(
            "the hole covers the whole array, so there are no boundary values to interpolate."
        )
    solved, iterations, relative, levels = _solve_coarse_to_fine(planes, hole, tolerance, max_iterations)
    return LaplaceSolution(values=solved, iterations=iterations, relative_residual=relative, levels=levels)


# --------------------------------------------------------------------------------------
# Blending and fills


def _checked_fill(
    fill: np.ndarray, box: object, width: int, height: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    if box is None:
        box = (0, 0, width, height)
    left, top, right, bottom = _checked_box(box, width, height, "the fill's box")
    expected = (bottom - top, right - left, 3)
    if not isinstance(fill, np.ndarray) or fill.shape != expected:
        raise BadInputError(
            f"the fill must be a {expected[1]}×{expected[0]}×3 array for its box "
            f"(left {left}, top {top}, right {right}, bottom {bottom}), got shape {getattr(fill, 'shape', None)}."
        )
    if not (np.issubdtype(fill.dtype, np.integer) or np.issubdtype(fill.dtype, np.floating)):
        raise BadInputError(f"the fill must hold numbers (uint8 or float levels 0–255), not {fill.dtype}.")
    return fill, (left, top, right, bottom)


def _blend_into(
    original: np.ndarray,
    hole: np.ndarray,
    fill: np.ndarray | None,
    box: tuple[int, ...],
    tolerance: float,
    max_iterations: int | None,
) -> np.ndarray:
    """Solve ``fill + h`` (or plain harmonic interpolation when fill is None) in the hole inside box."""
    height, width = hole.shape
    left, top, right, bottom = box
    output = np.array(original, copy=True, order="C")
    inside = hole[top:bottom, left:right]
    if not inside.any():
        return output
    if inside.all() and (left, top, right, bottom) == (0, 0, width, height):
        raise BadInputError(
            "the mask covers the whole photo, so there are no pixels to blend the fill against."
        )
    for area in _areas_of_hole(inside, merge_distance=_SOLVE_MERGE_DISTANCE, connectivity=4):
        # The solve's box: the holes' box plus a one-pixel ring of boundary pixels, inside the photo.
        area_left, area_top, area_right, area_bottom = area.box
        solve_left, solve_right = max(left + area_left - 1, 0), min(left + area_right + 1, width)
        solve_top, solve_bottom = max(top + area_top - 1, 0), min(top + area_bottom + 1, height)
        rows = np.arange(solve_top, solve_bottom)
        columns = np.arange(solve_left, solve_right)
        in_box = ((rows >= top) & (rows < bottom))[:, None] & ((columns >= left) & (columns < right))[None, :]
        solve_hole = hole[solve_top:solve_bottom, solve_left:solve_right] & in_box
        known = original[solve_top:solve_bottom, solve_left:solve_right].transpose(2, 0, 1).astype(np.float32)
        if fill is None:
            guidance = np.zeros_like(known)
        else:
            # Boundary pixels just outside the fill's box take the nearest fill pixel: along
            # each edge crossing the box that is the hole pixel's own fill value, so the
            # guidance gradient across the box's edge is zero there.
            fill_rows = np.clip(rows, top, bottom - 1) - top
            fill_columns = np.clip(columns, left, right - 1) - left
            guidance = fill[np.ix_(fill_rows, fill_columns)].transpose(2, 0, 1).astype(np.float32)
            if not np.isfinite(guidance).all():
                raise BadInputError("the fill holds NaN or infinite values.")
        solution = solve_laplace(
            known - guidance, solve_hole, tolerance=tolerance, max_iterations=max_iterations
        )
        blended = np.clip(np.rint(guidance + solution.values), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        window = output[solve_top:solve_bottom, solve_left:solve_right]
        window[solve_hole] = blended[solve_hole]
    return output


def poisson_blend(
    original: np.ndarray,
    mask: np.ndarray,
    fill: np.ndarray,
    *,
    box: Sequence[int] | RegionOfInterest | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int | None = None,
) -> np.ndarray:
    """Put a fill into the photo's hole in the gradient domain (seamless cloning).

    Parameters
    ----------
    original : np.ndarray
        H×W×3 uint8 photo; not modified.
    mask : np.ndarray
        H×W float in [0, 1] (1 = painted = missing) or bool. Pixels at ≥
        :data:`HOLE_THRESHOLD` are replaced; softly painted pixels below it are kept as they
        are and serve as boundary values (the gradient-domain solve meets them continuously,
        so no feathered rim is needed).
    fill : np.ndarray
        bh×bw×3 uint8 or float (levels 0–255): the model's result resized to the photo's
        pixels for ``box``. Only the part of it over the hole (plus one pixel) is read.
    box : sequence of int or RegionOfInterest, optional, keyword-only
        ``(left, top, right, bottom)`` of the photo that ``fill`` covers; default the whole
        photo (then ``fill`` is H×W×3). Painted pixels outside the box are not filled and,
        where they border the box, act as boundary values with their original colours.
    tolerance : float, keyword-only
        Relative residual at which the solver stops (see :func:`solve_laplace`); default
        :data:`DEFAULT_TOLERANCE`.
    max_iterations : int, optional, keyword-only
        Cap on the solver's full-resolution iterations per solve (see :func:`solve_laplace`).

    Returns
    -------
    np.ndarray
        New H×W×3 uint8: in the hole ``fill + h`` rounded and clipped to [0, 255], where ``h``
        is harmonic in the hole and equals ``original − fill`` on its boundary; every other
        pixel bit-identical to ``original``.

    Raises
    ------
    BadInputError
        For arrays of the wrong shape or type, a box outside the photo, NaN in the mask or
        the fill, and a mask that covers the whole photo.

    Notes
    -----
    Pérez, Gangnet and Blake (2003), "Poisson Image Editing", eq. 7–8 with the guidance
    field ``v = ∇fill``; solving for ``h = result − fill`` turns it into a Laplace equation
    (:func:`solve_laplace`). Holes are grouped by :func:`connected_areas` and each group is
    solved on its own bounding box plus one pixel, so the memory used follows the holes'
    boxes (a few float32 copies of them), not the photo. Where the hole reaches the photo's
    edge there is no boundary value and the fill's gradient is kept (no flux across the
    edge). Beyond the fill's box the nearest fill pixel stands in as guidance.
    """
    original = _rgb_image(original, "the original image")
    height, width = original.shape[:2]
    hole = _hole_of(mask, (height, width))
    fill, checked_box = _checked_fill(fill, box, width, height)
    tolerance, max_iterations = _checked_solver_options(tolerance, max_iterations)
    return _blend_into(original, hole, fill, checked_box, tolerance, max_iterations)


def harmonic_fill(
    original: np.ndarray,
    mask: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_iterations: int | None = None,
) -> np.ndarray:
    """Fill the hole by Laplace interpolation of its boundary (the smoothest possible fill).

    Parameters
    ----------
    original : np.ndarray
        H×W×3 uint8 photo; not modified.
    mask : np.ndarray
        H×W float in [0, 1] or bool, as for :func:`poisson_blend`.
    tolerance, max_iterations : keyword-only
        As for :func:`poisson_blend`.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8: :func:`poisson_blend` with zero guidance, i.e. in the hole the
        harmonic function with the photo's boundary values; every other pixel bit-identical.
    """
    original = _rgb_image(original, "the original image")
    height, width = original.shape[:2]
    hole = _hole_of(mask, (height, width))
    tolerance, max_iterations = _checked_solver_options(tolerance, max_iterations)
    return _blend_into(original, hole, None, (0, 0, width, height), tolerance, max_iterations)


def _chessboard_dilation(region: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` (8-neighbour steps) of a True pixel: a separable max filter."""
    grown = region.copy()
    for _ in range(radius):
        step = grown.copy()
        step[1:, :] |= grown[:-1, :]
        step[:-1, :] |= grown[1:, :]
        grown = step
    for _ in range(radius):
        step = grown.copy()
        step[:, 1:] |= grown[:, :-1]
        step[:, :-1] |= grown[:, 1:]
        grown = step
    return grown


def mean_fill(original: np.ndarray, mask: np.ndarray, *, ring_px: int = MEAN_FILL_RING_PX) -> np.ndarray:
    """Fill each hole with the mean colour of the known pixels around it.

    Parameters
    ----------
    original : np.ndarray
        H×W×3 uint8 photo; not modified.
    mask : np.ndarray
        H×W float in [0, 1] or bool, as for :func:`poisson_blend`.
    ring_px : int, keyword-only
        Width of the ring: the known pixels within ``ring_px`` 8-neighbour steps of the area
        (a square neighbourhood) are averaged; default :data:`MEAN_FILL_RING_PX`.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8. Each painted area (8-connected; areas whose boxes touch or overlap
        count as one, :func:`connected_areas` with ``merge_distance=1``) gets one colour,
        the per-channel mean of its ring rounded to the nearest level; every other pixel is
        bit-identical to ``original``.
    """
    original = _rgb_image(original, "the original image")
    height, width = original.shape[:2]
    hole = _hole_of(mask, (height, width))
    ring_px = _non_negative_int(ring_px, "ring_px")
    if ring_px < 1:
        raise BadInputError("ring_px must be at least 1, or there is no ring to take the colour from.")
    output = np.array(original, copy=True, order="C")
    if hole.all():
        raise BadInputError(
            "the mask covers the whole photo, so there are no known pixels to take a colour from."
        )
    for area in _areas_of_hole(hole, merge_distance=1, connectivity=8):
        left, top, right, bottom = area.box
        near_left, near_top = max(left - ring_px, 0), max(top - ring_px, 0)
        near_right, near_bottom = min(right + ring_px, width), min(bottom + ring_px, height)
        own = np.zeros((near_bottom - near_top, near_right - near_left), dtype=bool)
        own_box = (slice(top - near_top, bottom - near_top), slice(left - near_left, right - near_left))
        own[own_box] = hole[top:bottom, left:right]
        ring = _chessboard_dilation(own, ring_px) & ~hole[near_top:near_bottom, near_left:near_right]
        colour = np.rint(
            original[near_top:near_bottom, near_left:near_right][ring].mean(axis=0, dtype=np.float64)
        )
        window = output[top:bottom, left:right]
        window[hole[top:bottom, left:right]] = colour.astype(np.uint8)
    return output
