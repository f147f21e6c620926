"""The task table: one definition of each restoration task (torch-free).

Every part of dgp-studio that lists, labels or validates tasks reads this table:
the engine's planner and compositor, the command line's choices, the app's task list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import BadInputError

__all__ = [
    "DEFAULT_DETAIL_STRENGTH",
    "DEFAULT_INPAINT_DETAIL_STRENGTH",
    "DETAIL_TASKS",
    "LARGE_OUTPUT_PIXELS",
    "TASKS",
    "TASK_NAMES",
    "Task",
    "check_mask_for",
    "check_rgb_uint8",
    "task_named",
]

#: Super-resolution: the share of the prior's detail (above the input's frequencies) that
#: replaces the classical upscaling's guess when the user sets none (chosen by measurement:
#: docs/whole-photos.md).
DEFAULT_DETAIL_STRENGTH = 0.5
#: Inpainting: the share of the prior's fill, beyond the smoothest fill of the hole (a
#: harmonic interpolation of its border), that goes into the photo when the user sets none
#: (chosen by measurement: docs/whole-photos.md).
DEFAULT_INPAINT_DETAIL_STRENGTH = 0.25
#: The tasks whose result mixes the classical answer with the prior's at a detail strength.
DETAIL_TASKS = {"sr": DEFAULT_DETAIL_STRENGTH, "inpaint": DEFAULT_INPAINT_DETAIL_STRENGTH}
#: Results larger than this many pixels are made only when asked for (``allow_large``).
LARGE_OUTPUT_PIXELS = 64_000_000


@dataclass(frozen=True)
class Task:
    """What a task is, for users and for the planner."""

    name: str
    label: str                 # as the app shows it
    degradation: str           # what phi does, one phrase
    mask: str                  # "required", "optional" or "none"
    factor: str                # super-resolution factor: "required", "optional" or "none"
    covers: str                # how a whole photo is planned (engine.plan)


TASKS: tuple[Task, ...] = (
    Task("colorize", "Colorize", "graying", "none", "none",
         "one run on the whole frame; the photo's luminance is kept, the colour is the prior's"),
    Task("inpaint", "Inpaint", "masking", "required", "none",
         "one run per painted area, on a square around it with context"),
    Task("sr", "Super-resolution", "downsampling ×f", "none", "required",
         "overlapping tiles of the low-resolution photo at its own scale"),
    Task("hybrid", "Hybrid", "any of downsampling, graying and masking", "optional", "optional",
         "one run on the whole frame (on the region, with downsampling)"),
    Task("reconstruct", "Reconstruct", "identity", "none", "none", "one run on the whole frame"),
    Task("defend", "Adversarial defence", "identity", "none", "none", "one run on the whole frame"),
)
TASK_NAMES: tuple[str, ...] = tuple(task.name for task in TASKS)


def task_named(name: str) -> Task:
    for task in TASKS:
        if task.name == name:
            return task
    raise BadInputError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}.")


def check_rgb_uint8(image: object, name: str) -> np.ndarray:
    """``image`` as an H×W×3 uint8 array, or one sentence naming ``name`` and what it is instead."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadInputError(
            f"{name}: expected an H×W×3 uint8 RGB image, got shape {getattr(image, 'shape', None)} "
            f"and dtype {getattr(image, 'dtype', type(image).__name__)}."
        )
    return image


def check_mask_for(mask: object, width: int, height: int, name: str, *, region=None) -> np.ndarray:
    """A painted mask for a ``width``×``height`` photo: same size, something painted, not everything.

    ``region`` (a square the user chose) must hold some of the painting.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise BadInputError(f"{name}: the mask must be an H×W array, got {getattr(mask, 'shape', None)}.")
    if mask.shape[:2] != (height, width):
        raise BadInputError(f"{name}: the mask is {mask.shape[1]}×{mask.shape[0]} but the photo is {width}×{height}.")
    painted = mask > 0
    if not painted.any():
        raise BadInputError(f"{name}: the mask has no painted pixels; paint the region to fill first.")
    if (mask >= 0.5).all():
        raise BadInputError(
            f"{name}: the mask covers the whole photo, so nothing is left for the restore to agree with; "
            "paint only what is missing."
        )
    if region is not None and not painted[region.top : region.bottom, region.left : region.right].any():
        raise BadInputError(f"{name}: the mask has no painted pixels inside the selected region.")
    return mask
