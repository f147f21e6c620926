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

from engine.blend import context_square
from engine.composite import Box, RegionOfInterest
from engine.errors import BadInputError
from engine.superres import Tile, tile_grid

__all__ = [
    "PlannedRun",
    "RestorePlan",
    "area_runs",
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
    resolution, not enlarged), moved (not cut) to lie inside the photo
    (:func:`engine.blend.context_square`).
    """
    return tuple(
        PlannedRun(index=index, role=AREA, region=context_square(
            area, (width, height), min_side=resolution, context=context,
        ))
        for index, area in enumerate(areas)
    )
