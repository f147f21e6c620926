"""A restore plan: the model runs one restore of a whole photo takes, decided before any runs.

The generative prior works on its own fixed square (64 px built-in, 128/256 px released);
photos are megapixels of any shape. A plan maps one photo onto one or more model runs so
that the whole frame is covered at the photo's own scale, and the result agrees with
everything the photo says:

* ``colorize``, ``reconstruct``, ``defend``, ``hybrid`` (without super-resolution): one run
  on the whole frame squeezed to the model's square; colour is smooth, so the squeeze
  costs nothing that the full-resolution luminance does not keep (``whole`` runs);
* ``inpaint``: one run per separate painted area, each on a square around the area with
  context, so that a small hole is seen at the model's full resolution wherever it is
  (``area`` runs);
* ``sr``: overlapping tiles of the low-resolution photo *at its own scale*, each the
  model's input size (R/f pixels), so no input pixel is thrown away (``tile`` runs);
* a user's region of interest restricts any task to that square (one ``region`` run).

The plan is pure data (no torch); :class:`engine.api.Engine` prepares each run's target
once, runs them in order with one step count over the whole plan, and assembles the
full-resolution result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.composite import Box, RegionOfInterest
from engine.errors import BadInputError
from engine.superres import Tile, tile_grid

__all__ = [
    "PlannedRun",
    "RestorePlan",
    "area_runs",
    "painted_areas",
    "sr_tile_runs",
]

#: Run roles (see the module docstring).
WHOLE, REGION, AREA, TILE = "whole", "region", "area", "tile"

#: Inpainting: areas closer than this (in photo pixels, at least) are one run.
AREA_MERGE_FRACTION = 0.02
#: Inpainting: the square a run sees is the area's bounding square grown by this
#: fraction of its side on every side (context for the prior and the loss).
AREA_CONTEXT = 0.5
#: Super-resolution tiles overlap by this fraction of their side.
TILE_OVERLAP = 0.25
#: Super-resolution: the share of the prior's detail (above the input's frequencies)
#: added to the classical upscaling when the user sets none (chosen by measurement:
#: docs/whole-photos.md).
DEFAULT_DETAIL_STRENGTH = 0.5
#: Results larger than this many pixels are made only when asked for (``allow_large``).
LARGE_OUTPUT_PIXELS = 64_000_000


@dataclass(frozen=True)
class PlannedRun:
    """One model run of a plan.

    Attributes
    ----------
    index : int
        0-based position in the plan.
    role : str
        ``whole``, ``region``, ``area`` or ``tile``.
    region : Box or RegionOfInterest
        The pixels of the photo the model sees (for ``tile``: of the low-resolution photo).
    output : Box or None
        ``tile`` only: where the run's R×R output lands in the super-resolved frame.
    """

    index: int
    role: str
    region: Box | RegionOfInterest
    output: Box | None = None
    tile: Tile | None = None          # ``tile`` runs: the super-resolution tile (engine.superres)


@dataclass(frozen=True)
class RestorePlan:
    """The runs of one restore and the exact work they take.

    ``steps_per_run`` optimisation iterations and ``candidates_per_run`` latent-search
    candidates are the same for every run (one schedule), so the whole plan's progress
    is exact before it starts.
    """

    task: str
    runs: tuple[PlannedRun, ...]
    steps_per_run: int
    candidates_per_run: int
    photo_size: tuple[int, int]          # (width, height) of the photo as given
    output_size: tuple[int, int]         # (width, height) of the result

    def __post_init__(self) -> None:
        if not self.runs:
            raise BadInputError("a restore plan needs at least one model run.")

    @property
    def total_steps(self) -> int:
        return self.steps_per_run * len(self.runs)

    @property
    def total_candidates(self) -> int:
        return self.candidates_per_run * len(self.runs)

    def first_step_of(self, run_index: int) -> int:
        """Steps done by the plan before run ``run_index`` starts."""
        return self.steps_per_run * run_index

    def describe(self) -> str:
        """One sentence for progress lines: how many runs, of what."""
        count = len(self.runs)
        if count == 1:
            what = {WHOLE: "the whole frame", REGION: "the selected region", AREA: "the painted area",
                    TILE: "one tile"}[self.runs[0].role]
            return f"1 model run on {what}"
        noun = {AREA: "painted areas", TILE: "tiles"}.get(self.runs[0].role, "regions")
        return f"{count} model runs ({count} {noun})"


def sr_tile_runs(low_width: int, low_height: int, *, resolution: int, factor: int,
                 overlap: float = TILE_OVERLAP) -> tuple[PlannedRun, ...]:
    """Overlapping model-input tiles of the low-resolution photo at its own scale, covering all of it.

    Each tile is (R/f)×(R/f) input pixels (:func:`engine.superres.tile_grid`); a photo
    smaller than one tile gets one tile that reaches past its border (reflect-padded when
    its input is cut, cropped when the result is assembled).
    """
    grid = tile_grid((low_width, low_height), factor, resolution, overlap)
    return tuple(
        PlannedRun(
            index=index, role=TILE, region=RegionOfInterest(tile.input_left, tile.input_top, tile.input_size),
            output=Box(tile.output_left, tile.output_top, tile.output_size, tile.output_size), tile=tile,
        )
        for index, tile in enumerate(grid.tiles)
    )


def area_runs(areas: list[tuple[int, int, int, int]], width: int, height: int, *,
              resolution: int, context: float = AREA_CONTEXT) -> tuple[PlannedRun, ...]:
    """One square run per painted area ``(left, top, right, bottom)``.

    Each square is the area's bounding square grown by ``context`` × its side on every
    side, at least the model's resolution (so a small hole is seen at the model's full
    resolution, not enlarged), moved (not cut) to lie inside the photo. When the photo is
    smaller than that square, the run sees the largest square that fits, placed as close
    to the area's centre as the photo allows.
    """
    runs = []
    for left, top, right, bottom in areas:
        side = max(right - left, bottom - top)
        wanted = max(resolution, int(round(side * (1 + 2 * context))))
        square = min(wanted, width, height)
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        square_left = int(round(centre_x - square / 2))
        square_top = int(round(centre_y - square / 2))
        square_left = min(max(0, square_left), width - square)
        square_top = min(max(0, square_top), height - square)
        runs.append(PlannedRun(index=len(runs), role=AREA, region=RegionOfInterest(square_left, square_top, square)))
    return tuple(runs)


def painted_areas(mask: np.ndarray, *, merge_distance: int) -> list[tuple[int, int, int, int]]:
    """The separate painted areas of a mask as tight boxes ``(left, top, right, bottom)``.

    Pixels with ``mask > 0`` are painted. Painting is gathered on a grid of
    ``merge_distance``-pixel cells; cells that touch (8-connectivity) form one area, so
    strokes closer than about one cell are one area (one model run). Each box is the
    tight bounding box of the area's painted pixels. Areas are ordered top to bottom,
    then left to right.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise BadInputError(f"the mask must be an H×W array, got {getattr(mask, 'shape', None)}.")
    cell = max(1, int(merge_distance))
    height, width = mask.shape
    rows, columns = -(-height // cell), -(-width // cell)
    painted = mask > 0
    padded = np.zeros((rows * cell, columns * cell), dtype=bool)
    padded[:height, :width] = painted
    occupied = padded.reshape(rows, cell, columns, cell).any(axis=(1, 3))
    labels = np.where(occupied, np.arange(1, rows * columns + 1).reshape(rows, columns), 0)
    while True:  # propagate the largest label through touching cells until nothing changes
        grown = np.pad(labels, 1)
        neighbourhood = np.max(
            [grown[dy : dy + rows, dx : dx + columns] for dy in range(3) for dx in range(3)], axis=0
        )
        updated = np.where(occupied, neighbourhood, 0)
        if np.array_equal(updated, labels):
            break
        labels = updated
    boxes = []
    for label in np.unique(labels[labels > 0]):
        cell_rows = np.flatnonzero((labels == label).any(axis=1))
        cell_columns = np.flatnonzero((labels == label).any(axis=0))
        r0, r1 = int(cell_rows[0]), int(cell_rows[-1]) + 1
        c0, c1 = int(cell_columns[0]), int(cell_columns[-1]) + 1
        member = np.repeat(np.repeat(labels[r0:r1, c0:c1] == label, cell, axis=0), cell, axis=1)
        window = padded[r0 * cell : r1 * cell, c0 * cell : c1 * cell] & member
        ys = np.flatnonzero(window.any(axis=1)) + r0 * cell
        xs = np.flatnonzero(window.any(axis=0)) + c0 * cell
        boxes.append((int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1))
    return sorted(boxes, key=lambda box: (box[1], box[0]))
