"""Events streamed by the engine's long-running jobs (restore, exports).

Every job is a Python generator yielding these frozen dataclasses; the CLI,
the tests and the desktop app's worker thread consume the same stream. Arrays
in events are copies owned by the event (H x W x 3 ``uint8``, C-contiguous),
so they may cross threads freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.state import RestoreResult


@dataclass(frozen=True)
class StagePlan:
    """One stage of a DGP schedule as it will run."""

    index: int               # 0-based
    iterations: int
    unlocked_groups: int     # G parameter groups fine-tuned (from the shallow end)
    total_groups: int
    feature_layers: int      # trailing D features in the loss


@dataclass(frozen=True)
class RunPlan:
    """Everything needed for exact progress and ETA before the run starts."""

    task: str
    preset: str
    search_candidates: int
    stages: tuple[StagePlan, ...]
    total_steps: int         # optimisation iterations over all stages (and all runs of a plan)
    device: str
    precision: str
    runs: int = 1            # model runs of the restore plan (tiles, painted areas); stages repeat per run


@dataclass(frozen=True)
class Started:
    plan: RunPlan


@dataclass(frozen=True)
class RunBegan:
    """One model run of a restore plan starts (``index`` of ``count``; ``region`` its photo box)."""

    index: int
    count: int
    role: str                # whole, region, area or tile (engine.plan)
    region: tuple[int, int, int, int]   # (left, top, right, bottom) in the photo's pixels


@dataclass(frozen=True)
class RunFinished:
    """One model run of a plan ended with ``result`` (its model-resolution images and state)."""

    index: int
    count: int
    result: RestoreResult


@dataclass(frozen=True)
class SearchProgress:
    """Latent search: ``done`` of ``total`` candidates scored."""

    done: int
    total: int
    seconds_per_candidate: float


@dataclass(frozen=True)
class SearchFinished:
    class_index: int
    top_classes: tuple[tuple[int, float], ...]  # (class index, best loss), best first
    loss: float


@dataclass(frozen=True)
class StageBegan:
    stage: StagePlan
    first_step: int          # global step (1-based) of this stage's first iteration


@dataclass(frozen=True)
class StageEnded:
    """A stage's loop ended: after all its iterations, or ``early`` (the defence's ``stop_mse``).

    ``steps_done`` counts the stage's own iterations; ``total_steps`` is the
    run's exact total from now on (an early stop lowers it).
    """

    stage: int               # 0-based
    steps_done: int
    total_steps: int
    early: bool = False


@dataclass(frozen=True)
class Step:
    """One iteration; ``total_steps`` is exact (revised down once a stage stops early)."""

    stage: int
    step: int                # global, 1-based
    total_steps: int
    losses: dict[str, float]
    seconds_per_step: float
    eta_seconds: float | None  # estimated time left (engine.eta); None before anything was timed


@dataclass(frozen=True)
class Frame:
    """The current output and what the loss compares ("what the model sees")."""

    stage: int
    step: int
    total_steps: int
    image: np.ndarray        # G(z) at model resolution, H x W x 3 uint8
    degraded: np.ndarray     # phi(G(z)), H x W x 3 uint8
    target: np.ndarray       # x_hat, the degraded input, H x W x 3 uint8
    losses: dict[str, float]
    seconds_per_step: float
    #: The restore so far put into the photo at a display scale (what will be saved), or None.
    preview: np.ndarray | None = None


@dataclass(frozen=True)
class Notice:
    text: str


@dataclass(frozen=True)
class Finished:
    result: RestoreResult


@dataclass(frozen=True)
class Cancelled:
    """The run was stopped; ``result`` holds the best state reached (or None during the search).

    The best state is the one with the lowest total loss as the stage being
    run weighs it, among every state the run measured and the last one
    (``RestoreResult.best_step`` says which).
    """

    result: RestoreResult | None
    reason: str = "cancelled"


@dataclass(frozen=True)
class Progress:
    """Generic progress of non-DGP jobs (exports, batch rendering)."""

    done: int
    total: int
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


Event = (
    Started | RunBegan | RunFinished | SearchProgress | SearchFinished | StageBegan | Step | Frame
    | StageEnded | Notice | Finished | Cancelled | Progress
)
