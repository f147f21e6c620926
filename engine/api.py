"""The engine's façade: load a model, restore photos, manipulate results.

Qt-free; the desktop app's worker thread, the command line, tests and
notebooks all use it::

    model = load_model("builtin")
    engine = Engine(model, device="auto", precision="auto")
    for event in engine.restore(RestoreRequest(image=rgb, task="colorize")):
        ...
    engine.jitter(result.state, sigma=0.5, count=8, seed=0)

One :class:`Engine` owns one device and one model; it is not thread-safe
(use it from one thread, as the app's engine thread does).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from engine.assemble import LivePreview, assemble_composite, partial_plan_note
from engine.biggan import BigGANConfig, Discriminator, Generator, spectral_norm_layers
from engine.blend import connected_areas
from engine.checksums import sha256_file, verify_card_files
from engine.composite import (
    Box,
    RegionOfInterest,
    composite_for_task,
    prepare_low_resolution_input,
    prepare_mask,
    prepare_model_input,
    small_region_notice,
)
from engine.degrade import Degradation, degradation_for_task
from engine.devices import autocast_context, select_autocast_dtype, select_device
from engine.dgp import run_dgp, to_uint8_image
from engine.errors import BadInputError, NonFiniteLossError
from engine.eta import RunsRemainingTime
from engine.events import (
    Cancelled,
    Finished,
    Frame,
    Notice,
    RunBegan,
    RunFinished,
    RunPlan,
    SearchProgress,
    StageBegan,
    StageEnded,
    StagePlan,
    Started,
    Step,
)
from engine.models import load_biggan
from engine.plan import (
    AREA,
    AREA_MERGE_FRACTION,
    REGION,
    WHOLE,
    PlannedRun,
    RestorePlan,
    area_runs,
    sr_tile_runs,
)
from engine.schedule import Schedule, default_preset_name, presets_for_task, resolve_preset
from engine.state import GeneratorState, RestoreResult
from engine.superres import extract_tile
from engine.tasks import (
    DEFAULT_DETAIL_STRENGTH,
    LARGE_OUTPUT_PIXELS,
    TASK_NAMES,
    check_mask_for,
    check_rgb_uint8,
)
from engine.tensors import to_tensor

BUILTIN_MODEL_NAME = "builtin"


@dataclass(frozen=True)
class LoadedModel:
    """A BigGAN pair ready for DGP, with what the app shows about it."""

    G: Generator
    D: Discriminator | None
    identity: str                   # stable id: sha256 of the files (or tensors)
    display_name: str
    class_names: tuple[str, ...]    # one per class index of this model
    class_imagenet_indices: tuple[int, ...] = ()
    source: str = ""
    card: dict = field(default_factory=dict, compare=False)

    @property
    def config(self) -> BigGANConfig:
        return self.G.config

    @property
    def class_numbers(self) -> tuple[int, ...]:
        """The number users see for each class: its ImageNet-1k index when known.

        BigGAN's 1000 classes are their own ImageNet indices; the built-in
        model's 200 labels map to ImageNet indices through its model card, so
        "1" means goldfish for every model.
        """
        if len(self.class_imagenet_indices) == self.config.n_classes:
            return tuple(self.class_imagenet_indices)
        return tuple(range(self.config.n_classes))

    def class_label(self, class_index: int) -> str:
        """``"<number> <name>"`` for a model class index, as shown to users."""
        return f"{self.class_numbers[class_index]} {self.class_names[class_index]}"


def _sha256_tensors(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def builtin_model_folder() -> Path:
    from engine.resources import resource_path

    return resource_path("models", "builtin-64")


def imagenet_names_for(config: BigGANConfig) -> tuple[str, ...]:
    if config.class_names and len(config.class_names) == config.n_classes:
        return tuple(config.class_names)
    if config.n_classes == 1000:
        from engine.resources import imagenet_class_names

        return tuple(imagenet_class_names())
    return tuple(f"class {i}" for i in range(config.n_classes))


def load_model(
    source: str | Path | tuple = BUILTIN_MODEL_NAME,
    d_path: str | Path | None = None,
    *,
    allow_missing_discriminator: bool = False,
) -> LoadedModel:
    """Load ``"builtin"``, a (G path, D path) pair, a folder with both, or a ``(G, D)`` tuple."""
    if isinstance(source, tuple):
        generator, discriminator = source
        if isinstance(generator, Generator):
            config = generator.config
            return LoadedModel(
                G=generator.eval(), D=discriminator.eval() if discriminator is not None else None,
                identity=_sha256_tensors(generator)[:16], display_name=f"in-memory {config.resolution} px",
                class_names=imagenet_names_for(config),
                class_imagenet_indices=tuple(config.class_imagenet_indices),
                source="memory",
            )
        source, d_path = generator, discriminator
    if source == BUILTIN_MODEL_NAME:
        folder = builtin_model_folder()
        card_path = folder / "model.json"
        if not card_path.exists():
            raise BadInputError(
                f"{folder}: the built-in model is not installed (no model.json); reinstall dgp-studio "
                f"or import a BigGAN generator and discriminator."
            )
        try:
            card = json.loads(card_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadInputError(f"{card_path} cannot be read as a model card ({error}).") from None
        verify_card_files(folder, card)
        g_file, d_file = folder / card["files"]["G"]["name"], folder / card["files"]["D"]["name"]
        generator, discriminator = load_biggan(g_file, d_file)
        identity = "builtin-" + card["files"]["G"]["sha256"][:12]
        config = generator.config
        return LoadedModel(
            G=generator, D=discriminator, identity=identity, display_name=card.get("name", "built-in"),
            class_names=imagenet_names_for(config),
            class_imagenet_indices=tuple(config.class_imagenet_indices),
            source=str(folder), card=card,
        )
    source = Path(source)
    card_folder = source if source.is_dir() else source.parent
    if (card_folder / "model.json").is_file():  # a model store folder: its files are checked on every load
        try:
            folder_card = json.loads((card_folder / "model.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadInputError(f"{card_folder / 'model.json'} cannot be read as a model card ({error}).") from None
        if isinstance(folder_card, dict) and str(folder_card.get("format", "")).startswith("dgp-studio"):
            verify_card_files(card_folder, folder_card)
    if source.is_dir() and d_path is None:
        g_candidates = sorted(source.glob("G_ema*.pth")) or sorted(source.glob("G*.pth")) or sorted(
            source.glob("G*.safetensors")
        )
        d_candidates = sorted(source.glob("D*.pth")) or sorted(source.glob("D*.safetensors"))
        if not g_candidates:
            raise BadInputError(f"{source}: the folder holds no generator file (G_ema*.pth or G*.pth).")
        source = g_candidates[0]
        d_path = d_candidates[0] if d_candidates else None
    generator, discriminator = load_biggan(
        source, d_path, allow_missing_discriminator=allow_missing_discriminator
    )
    identity = sha256_file(source)[:16] + (("-" + sha256_file(Path(d_path))[:8]) if d_path else "")
    config = generator.config
    return LoadedModel(
        G=generator, D=discriminator, identity=identity,
        display_name=f"BigGAN-{config.resolution} ch{config.g_ch} ({source.name})",
        class_names=imagenet_names_for(config),
        class_imagenet_indices=tuple(config.class_imagenet_indices),
        source=str(source),
    )


@dataclass(frozen=True)
class RestoreRequest:
    """One restore job on a full-resolution photo.

    ``image`` is the original H x W x 3 uint8; ``roi`` restricts the restore to a
    square (default None: the whole photo, planned by :mod:`engine.plan`); ``mask``
    H x W float with 1 = painted (missing) pixels; ``task`` one of colorize, inpaint,
    sr, hybrid, reconstruct, defend. For ``sr`` the photo is the low-resolution input
    and ``detail_strength`` (0 = classical upscaling, exactly; 1 = all the prior's
    detail; None = :data:`engine.tasks.DEFAULT_DETAIL_STRENGTH`) how much of the
    prior's detail above the input's frequencies is added. ``class_index`` None lets
    the latent search choose the class.
    """

    image: np.ndarray
    task: str
    roi: RegionOfInterest | None = None
    mask: np.ndarray | None = None
    sr_factor: int | None = None
    grayscale: bool = False          # hybrid: compose graying
    class_index: int | None = None
    preset: str | None = None
    quick: bool = False
    seed: int = 0
    iteration_scale: float = 1.0
    source_name: str = "the image"   # for messages
    detail_strength: float | None = None
    allow_large: bool = False        # results above LARGE_OUTPUT_PIXELS must be asked for


@dataclass(frozen=True)
class PreparedRun:
    """One planned run with what the model is asked to match."""

    run: PlannedRun
    target: torch.Tensor             # x_hat (1, 3, R, R) in [-1, 1]
    degradation: Degradation
    low_resolution: np.ndarray | None = None   # sr: the tile of the low-resolution photo, uint8


@dataclass(frozen=True)
class PreparedRestore:
    """A request validated and planned, every run's x_hat built: computed once per restore."""

    request: RestoreRequest
    plan: RestorePlan
    runs: tuple[PreparedRun, ...]
    schedule: Schedule
    notes: tuple[str, ...]
    #: sr: the whole low-resolution photo (padded to at least one tile), its true size and f.
    low_resolution: np.ndarray | None = None
    low_size: tuple[int, int] | None = None
    #: inpainting: each area run's painted box (left, top, right, bottom), in run order.
    areas: tuple[tuple[int, int, int, int], ...] = ()

    # The primary run (the first: for a single-run plan, the only one) stands for the
    # restore where one image is meant: the "what the model sees" preview, the state.
    @property
    def target(self) -> torch.Tensor:
        return self.runs[self.primary_index].target

    @property
    def degradation(self) -> Degradation:
        return self.runs[self.primary_index].degradation

    @property
    def roi(self) -> RegionOfInterest | Box:
        return self.runs[self.primary_index].run.region

    @property
    def primary_index(self) -> int:
        """The run whose state the result keeps: the largest painted area, else the first run."""
        if self.plan.runs[0].role == AREA:
            return max(range(len(self.runs)), key=lambda i: self.runs[i].run.region.size)
        return 0


class Engine:
    """Owns a device and a model; runs restores and manipulations on them."""

    def __init__(
        self, model: LoadedModel, *, device: str = "auto", precision: str = "auto",
        threads: int | None = None, user_preset_folders: Sequence[Path] = (),
    ) -> None:
        if model.D is None:
            raise BadInputError(
                f"{model.display_name}: this model has no discriminator; DGP's loss needs it."
            )
        if threads:
            torch.set_num_threads(int(threads))
        self.model = model
        self.device = select_device(device)
        self.autocast_dtype = select_autocast_dtype(precision, self.device)
        self.G = model.G.to(self.device).eval()
        self.D = model.D.to(self.device)
        self.D.to(memory_format=torch.channels_last)
        self.D.freeze(self.autocast_dtype)
        self.user_preset_folders = tuple(Path(p) for p in user_preset_folders)
        self._base_state = {k: v.detach().clone() for k, v in self.G.state_dict().items()}
        self._render_generator: Generator | None = None
        self._applied_state: GeneratorState | None = None

    @property
    def resolution(self) -> int:
        return self.G.config.resolution

    # -- presets --------------------------------------------------------------
    def presets_for(self, task: str) -> list[str]:
        return presets_for_task(task, self.resolution)

    def schedule_for(self, request_or_name: RestoreRequest | str | None, *, task: str | None = None,
                     quick: bool = False, iteration_scale: float = 1.0) -> Schedule:
        if isinstance(request_or_name, RestoreRequest):
            request = request_or_name
            name, task, quick, iteration_scale = request.preset, request.task, request.quick, request.iteration_scale
        else:
            name = request_or_name
        if name is None:
            name = default_preset_name(task, self.resolution)
        schedule = resolve_preset(name, extra_folders=self.user_preset_folders)
        if quick:
            schedule = schedule.quick()
        return schedule.scaled(iteration_scale)

    def stage_plans(self, schedule: Schedule) -> tuple[StagePlan, ...]:
        return tuple(schedule.plan(
            feature_count=self.D.config.n_discriminator_features,
            group_count=self.G.config.n_generator_blocks + 1,
        ))

    # -- restore --------------------------------------------------------------
    def prepare(self, request: RestoreRequest | PreparedRestore) -> PreparedRestore:
        """Validate a request, plan its runs and build each run's x_hat, phi and the schedule.

        A :class:`PreparedRestore` is returned as it is, so callers that prepared once
        (the app's worker: cache key, then restore) pass it on instead of the request.
        """
        if isinstance(request, PreparedRestore):
            return request
        image = check_rgb_uint8(request.image, request.source_name)
        height, width = image.shape[:2]
        resolution = self.resolution
        task = request.task
        if task not in TASK_NAMES:
            raise BadInputError(f"unknown task {task!r}; expected one of {', '.join(TASK_NAMES)}.")
        if request.roi is not None:
            request.roi.validate(width, height)
        if request.class_index is not None and not 0 <= request.class_index < self.G.config.n_classes:
            raise BadInputError(
                f"class index {request.class_index} is outside this model's "
                f"{self.G.config.n_classes} classes (0–{self.G.config.n_classes - 1})."
            )
        uses_mask = task in ("inpaint", "hybrid") and request.mask is not None
        if task == "inpaint" and request.mask is None:
            raise BadInputError("inpainting needs a mask: paint the missing region first.")
        if uses_mask:
            check_mask_for(request.mask, width, height, request.source_name, region=request.roi)
        sr_factor = request.sr_factor if task in ("sr", "hybrid") else None
        if task == "sr" and sr_factor is None:
            sr_factor = 4
        if task == "sr" and resolution % sr_factor:
            raise BadInputError(
                f"the model resolution {resolution} is not divisible by the super-resolution factor {sr_factor}."
            )
        self.detail_strength_for(request)   # checked before any work
        schedule = self.schedule_for(request)
        steps_per_run = sum(stage.iterations for stage in self.stage_plans(schedule))
        notes: list[str] = []
        low_photo = low_size = None
        if task == "sr":
            low_photo, low_size, runs = self._plan_super_resolution(image, request.roi, resolution, sr_factor)
            output_size = (low_size[0] * sr_factor, low_size[1] * sr_factor)
        else:
            runs = self._plan_runs(request, image, resolution, sr_factor)
            first = runs[0].region
            output_size = (width, height)
            if task == "hybrid" and sr_factor and sr_factor > 1:
                output_size = (first.width * sr_factor, first.height * sr_factor)
            notice = small_region_notice(first, resolution) if runs[0].role == REGION else None
            if notice:
                notes.append(notice)
        if output_size[0] * output_size[1] > LARGE_OUTPUT_PIXELS and not request.allow_large:
            raise BadInputError(
                f"{request.source_name}: the result would be {output_size[0]}×{output_size[1]} "
                f"({output_size[0] * output_size[1] / 1e6:.0f} MP), above the {LARGE_OUTPUT_PIXELS // 1_000_000} MP "
                "that is made without asking; confirm it (--allow-large) or choose a smaller factor or region."
            )
        plan = RestorePlan(
            task=task, runs=runs, steps_per_run=steps_per_run, candidates_per_run=schedule.search_candidates,
            photo_size=(width, height), output_size=output_size,
        )
        prepared_runs = tuple(
            self._prepare_run(request, image, run, resolution, sr_factor, low_photo) for run in runs
        )
        if len(runs) > 1:
            notes.append(f"This restore takes {plan.describe()}.")
        areas = tuple(self._areas(request.mask)) if runs[0].role == AREA else ()
        return PreparedRestore(
            request=request, plan=plan, runs=prepared_runs, schedule=schedule, notes=tuple(notes),
            low_resolution=low_photo, low_size=low_size, areas=areas,
        )

    def _plan_runs(self, request: RestoreRequest, image: np.ndarray, resolution: int,
                   sr_factor: int | None) -> tuple[PlannedRun, ...]:
        height, width = image.shape[:2]
        if request.roi is not None:
            return (PlannedRun(index=0, role=REGION, region=request.roi),)
        if request.task == "hybrid" and sr_factor and sr_factor > 1:
            # Hybrid with resampling keeps the model's square: its ×f output is built from it.
            return (PlannedRun(index=0, role=REGION, region=RegionOfInterest.largest_centred_square(width, height)),)
        if request.task == "inpaint":
            return area_runs(self._areas(request.mask), width, height, resolution=resolution)
        return (PlannedRun(index=0, role=WHOLE, region=Box.whole(width, height)),)

    @staticmethod
    def _areas(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
        height, width = mask.shape[:2]
        merge = max(2, int(AREA_MERGE_FRACTION * max(width, height)))
        return [area.box for area in connected_areas(mask, merge_distance=merge)]

    @staticmethod
    def _plan_super_resolution(image: np.ndarray, roi: RegionOfInterest | None, resolution: int,
                               factor: int) -> tuple[np.ndarray, tuple[int, int], tuple[PlannedRun, ...]]:
        """The low-resolution photo (the region, if any) at its own scale, its size and its tiles."""
        low = np.ascontiguousarray(roi.crop(image) if roi is not None else image)
        low_height, low_width = low.shape[:2]
        runs = sr_tile_runs(low_width, low_height, resolution=resolution, factor=factor)
        return low, (low_width, low_height), runs

    def _prepare_run(self, request: RestoreRequest, image: np.ndarray, run: PlannedRun, resolution: int,
                     sr_factor: int | None, low_photo: np.ndarray | None) -> PreparedRun:
        task = request.task
        mask_model = None
        if request.mask is not None and task in ("inpaint", "hybrid"):
            missing = prepare_mask(request.mask, run.region, resolution)
            if not np.any(missing > 0):
                raise BadInputError(
                    f"{request.source_name}: the mask has no painted pixels inside the region sent to the model."
                )
            mask_model = torch.from_numpy(1.0 - missing.astype(np.float32))[None, None]
        grayscale = True if task == "colorize" else request.grayscale
        degradation = degradation_for_task(
            task, resolution=resolution, mask=mask_model, sr_factor=sr_factor,
            grayscale=grayscale if task == "hybrid" else None,
        ).to(self.device)
        low = None
        if task == "sr":
            low = extract_tile(low_photo, run.tile)
            target = degradation.target_from_low_resolution(to_tensor(low).to(self.device))
        elif degradation.sr_factor:
            low = prepare_low_resolution_input(image, run.region, resolution, degradation.sr_factor)
            target = degradation.target_from_low_resolution(to_tensor(low).to(self.device))
        else:
            model_input = prepare_model_input(image, run.region, resolution)
            target = degradation.target_path(to_tensor(model_input).to(self.device))
        return PreparedRun(run=run, target=target, degradation=degradation, low_resolution=low)

    def preview_degraded(self, request: RestoreRequest | PreparedRestore) -> np.ndarray:
        """x_hat as uint8: what the model will be asked to match (the primary run's)."""
        return to_uint8_image(self.prepare(request).target)

    def cache_key(self, request: RestoreRequest | PreparedRestore) -> tuple[str, dict]:
        """The result cache's key of a restore and a JSON description of what made it.

        Computed here so the app and the command line share cache entries. x_hat of
        every run fixes the plan, the regions, their resizing and the degradation; the
        composite also depends on the photo outside the regions and on the
        full-resolution mask, so those are hashed as well.
        """
        import engine as engine_package
        from engine.cache import cache_key

        prepared = self.prepare(request)
        request = prepared.request
        photo = np.ascontiguousarray(request.image)
        targets = np.concatenate([to_uint8_image(run.target) for run in prepared.runs], axis=0)
        roi = request.roi
        settings = {
            "photo_sha256": hashlib.sha256(photo.tobytes()).hexdigest(),
            "photo_shape": list(photo.shape),
            "roi": None if roi is None else [roi.left, roi.top, roi.size],
            "plan": [[run.role, *run.region.box] for run in prepared.plan.runs],
            "sr_factor": request.sr_factor,
            "detail_strength": self.detail_strength_for(request),
            "grayscale": bool(request.grayscale),
            "quick": bool(request.quick),
            "iteration_scale": float(request.iteration_scale),
            # The preset's contents, not only its name: an edited user preset must miss.
            "schedule": repr(prepared.schedule),
            "device": str(getattr(self.device, "type", self.device)),
            "precision": str(self.autocast_dtype),
        }
        arguments = {
            "task": request.task,
            "preset": prepared.schedule.name,
            "settings": settings,
            "class_index": request.class_index,
            "seed": int(request.seed),
            "model_identity": self.model.identity,
            "engine_version": engine_package.__version__,
        }
        key = cache_key(
            input_rgb_model=targets,
            mask=request.mask if request.task in ("inpaint", "hybrid") else None,
            **arguments,
        )
        return key, {**arguments, "source_name": request.source_name}

    @staticmethod
    def detail_strength_for(request: RestoreRequest) -> float | None:
        """The super-resolution detail strength a request runs with (None for other tasks)."""
        if request.task != "sr":
            return None
        strength = DEFAULT_DETAIL_STRENGTH if request.detail_strength is None else request.detail_strength
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            raise BadInputError(f"the detail strength must be a number from 0 to 1, not {strength!r}.")
        return float(strength)

    def restore(
        self, request: RestoreRequest | PreparedRestore, *, should_stop: threading.Event | None = None,
        frame_interval: float = 0.2,
    ) -> Iterator:
        """Run every model run of a restore's plan; yields engine events (see :func:`engine.dgp.run_dgp`).

        One ``Started`` describes the whole plan (``total_steps`` over all runs); each
        run is announced by ``RunBegan`` and its ``Step``/``Frame``/``StageBegan`` events
        count steps over the whole plan. ``Frame.preview`` is the restore so far put
        into the photo at a display scale (what will be saved, not the raw model
        output). ``Finished``/``Cancelled`` results carry the full-resolution composite
        assembled from every finished run (see :func:`assemble_composite`); the state
        is the primary run's. A cancel between or during runs keeps the runs finished
        so far (and the stopped run's state), composited, and says so in ``reason``.
        """
        prepared = self.prepare(request)
        request = prepared.request
        plan = prepared.plan
        for note in prepared.notes:
            yield Notice(note)
        stage_plans = self.stage_plans(prepared.schedule)
        yield Started(plan=RunPlan(
            task=request.task, preset=prepared.schedule.name,
            search_candidates=prepared.schedule.search_candidates, stages=stage_plans,
            total_steps=plan.total_steps, device=str(self.device),
            precision="bf16" if self.autocast_dtype == torch.bfloat16 else "fp32", runs=len(plan.runs),
        ))
        preview = LivePreview(prepared)
        results: list[RestoreResult | None] = [None] * len(plan.runs)
        started_at = time.perf_counter()
        remaining = RunsRemainingTime([(prepared.schedule.search_candidates, stage_plans)] * len(plan.runs))
        steps_before = 0
        plan_total = plan.total_steps   # exact; an early-stopped stage lowers it
        non_finite: NonFiniteLossError | None = None
        class_index = request.class_index
        for prepared_run in prepared.runs:
            run = prepared_run.run
            runs_left = len(plan.runs) - run.index - 1
            run_total = plan.steps_per_run
            yield RunBegan(index=run.index, count=len(plan.runs), role=run.role, region=run.region.box)
            outcome = None
            events = run_dgp(
                self.G, self.D, prepared_run.degradation, prepared_run.target, prepared.schedule,
                class_index=class_index, seed=request.seed, device=self.device,
                autocast_dtype=self.autocast_dtype, model_identity=self.model.identity,
                should_stop=should_stop, frame_interval=max(frame_interval, preview.interval),
            )
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    break
                except NonFiniteLossError as error:
                    non_finite = error
                    break
                remaining.on_event(run.index, event, time.perf_counter())
                if isinstance(event, Started):
                    continue
                if isinstance(event, (Finished, Cancelled)):
                    outcome = event
                    continue
                # Steps count over the whole plan: those of the runs before, this run's, the
                # runs after at their planned length (an early stop shortens only its own run).
                if isinstance(event, (Step, StageEnded, Frame)):
                    run_total = event.total_steps
                plan_total = steps_before + run_total + runs_left * plan.steps_per_run
                if isinstance(event, SearchProgress):
                    done = run.index * plan.candidates_per_run + event.done
                    event = replace(event, done=done, total=plan.total_candidates)
                elif isinstance(event, StageBegan):
                    event = replace(event, first_step=event.first_step + steps_before)
                elif isinstance(event, Step):
                    last = event.step == run_total and runs_left == 0
                    estimate = remaining.remaining_seconds()
                    event = replace(
                        event, step=event.step + steps_before, total_steps=plan_total,
                        eta_seconds=0.0 if last else estimate,   # None until a price is measured
                    )
                elif isinstance(event, StageEnded):
                    event = replace(event, total_steps=plan_total)
                elif isinstance(event, Frame):
                    event = replace(event, step=event.step + steps_before, total_steps=plan_total,
                                    preview=preview.update(run.index, event.image))
                yield event
            steps_before += outcome.result.steps_done if outcome is not None and outcome.result is not None else 0
            if outcome is None or outcome.result is None:
                break
            results[run.index] = outcome.result
            preview.update(run.index, outcome.result.image, final=True)
            yield RunFinished(index=run.index, count=len(plan.runs), result=outcome.result)
            _keep_one_state(results, prepared.primary_index)
            if isinstance(outcome, Cancelled) or non_finite is not None:
                break
            if class_index is None and request.task != "inpaint":
                # Tiles of one photo show one thing: the first run's class holds for the rest.
                class_index = outcome.result.class_index
        finished = [r for r in results if r is not None]
        if not finished:
            yield Cancelled(result=None)
            if non_finite is not None:
                raise non_finite
            return
        composite = assemble_composite(prepared, results, detail_strength=self.detail_strength_for(request))
        primary = results[prepared.primary_index] or next(r for r in finished if r.state is not None)
        done_count = len(finished)
        cancelled = done_count < len(plan.runs) or any(r.cancelled for r in finished)
        notes = prepared.notes
        reason = str(non_finite) if non_finite is not None else "cancelled"
        if cancelled and len(plan.runs) > 1:
            reason = partial_plan_note(plan, results)
            notes = (*notes, reason)
        result = replace(
            primary, composite=composite, notes=notes, cancelled=cancelled,
            steps_done=sum(r.steps_done for r in finished), total_steps=plan_total,
            seconds=time.perf_counter() - started_at, runs_done=done_count, runs_total=len(plan.runs),
        )
        if cancelled:
            yield Cancelled(result=result, reason=reason)
            if non_finite is not None:
                raise non_finite
        else:
            yield Finished(result=result)

    # -- manipulation ---------------------------------------------------------
    def _check_state(self, state: GeneratorState) -> None:
        if state.model_identity != self.model.identity:
            raise BadInputError(
                f"this result was made with model {state.model_identity}, but the loaded model is "
                f"{self.model.identity}; load that model to edit it."
            )

    def _generator_for(self, state: GeneratorState) -> Generator:
        """The base G with ``state`` applied, its normalised weights cached (constant)."""
        self._check_state(state)
        if self._render_generator is None:
            import copy

            self._render_generator = copy.deepcopy(self.G).eval().requires_grad_(False)
            self._render_generator.to(memory_format=torch.channels_last)
        applied = self._applied_state
        # Edits of one result (jittered z, another class) share its weight_delta dict:
        # re-applying the same weights and re-normalising them would only cost time.
        if (
            applied is None
            or applied.weight_delta is not state.weight_delta
            or applied.use_in != state.use_in
        ):
            state.apply_to(self._render_generator, self._base_state)
            for layer in spectral_norm_layers(self._render_generator):
                layer.freeze_normalized_weight()
            self._applied_state = state
        return self._render_generator

    @torch.no_grad()
    def _render(self, generator: Generator, z: torch.Tensor, embedding: torch.Tensor, use_in: bool) -> list[np.ndarray]:
        with autocast_context(self.device, self.autocast_dtype):
            if use_in:
                generator.mark_in_initialised()
            images = generator(z.to(self.device), embedding.to(self.device), use_in=use_in).float()
        return [to_uint8_image(images[i : i + 1]) for i in range(images.shape[0])]

    def render(self, state: GeneratorState) -> np.ndarray:
        """The result image of a state: G*(z*, e*)."""
        generator = self._generator_for(state)
        return self._render(generator, state.z, state.class_embedding, state.use_in)[0]

    def jitter(
        self, state: GeneratorState, *, sigma: float, count: int, seed: int = 0, batch_size: int = 16
    ) -> list[np.ndarray]:
        """Section 10's random jittering: G*(z* + sigma * eps, e*), eps ~ N(0, I).

        Parameters
        ----------
        state : GeneratorState
            A result of this engine's model.
        sigma : float, keyword-only
            Jitter strength, >= 0 (0 renders the result itself ``count`` times).
        count : int, keyword-only
            Number of variations, >= 1.
        seed : int, keyword-only
            Seeds eps; the same seed gives the same variations as :meth:`jitter_states`.
        batch_size : int, keyword-only
            Variations rendered per forward pass.

        Returns
        -------
        list of np.ndarray
            ``count`` H×W×3 uint8 images at model resolution.
        """
        generator = self._generator_for(state)
        latents = self.jitter_latents(state, sigma=sigma, count=count, seed=seed)
        images: list[np.ndarray] = []
        for start in range(0, count, batch_size):
            z = latents[start : start + batch_size]
            embedding = state.class_embedding.expand(z.shape[0], -1)
            images += self._render(generator, z, embedding, state.use_in)
        return images

    def jitter_latents(
        self, state: GeneratorState, *, sigma: float, count: int, seed: int = 0
    ) -> torch.Tensor:
        """The jittered latents z* + sigma * eps, ``(count, dim_z)`` float32 on the CPU."""
        number = (int, float, np.integer, np.floating)
        if isinstance(sigma, bool) or not isinstance(sigma, number) or not sigma >= 0:
            raise BadInputError(f"jitter strength {sigma} must be zero or positive.")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise BadInputError(f"jitter count {count} must be a whole number of at least 1.")
        rng = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(int(count), state.z.shape[1], generator=rng)
        return state.z + float(sigma) * noise

    def jitter_states(
        self, state: GeneratorState, *, sigma: float, count: int, seed: int = 0
    ) -> list[GeneratorState]:
        """The states behind :meth:`jitter`'s images, to keep a variation as a result of its own.

        Each is ``state`` with only z replaced (the fine-tuned weights, class and
        embedding are shared, not copied); variation ``i`` renders the same image
        as ``jitter(state, sigma=sigma, count=count, seed=seed)[i]``.

        Returns
        -------
        list of GeneratorState
            ``count`` states; ``z`` is ``(1, dim_z)`` float32 on the CPU; ``info["jitter"]``
            records sigma, seed and the variation's index.
        """
        self._check_state(state)
        latents = self.jitter_latents(state, sigma=sigma, count=count, seed=seed)
        return [
            replace(
                state,
                z=latents[index : index + 1].clone(),
                info={**state.info, "jitter": {"sigma": float(sigma), "seed": int(seed), "index": index}},
            )
            for index in range(count)
        ]

    def class_index_from(self, value: str | int) -> int:
        """A class by index or (case-insensitive, unique-prefix) name."""
        n_classes = self.G.config.n_classes
        return resolve_class(value, self.model.class_names, n_classes, numbers=self.model.class_numbers)

    def transfer(self, state: GeneratorState, class_index: int) -> np.ndarray:
        """Category transfer: the fine-tuned G and z* with another class's embedding."""
        return self.transfer_many(state, [class_index])[0]

    def transferred_state(self, state: GeneratorState, class_index: int) -> GeneratorState:
        """``state`` moved to another class: same weights and z*, the tuned G's embedding of the class.

        The result's own class returns ``state`` itself (its exact embedding is kept).
        """
        n_classes = self.G.config.n_classes
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
            0 <= class_index < n_classes
        ):
            raise BadInputError(
                f"class index {class_index} is outside this model's {n_classes} classes (0–{n_classes - 1})."
            )
        if int(class_index) == state.class_index:
            return state
        generator = self._generator_for(state)
        with torch.no_grad():
            index = torch.tensor([int(class_index)], device=self.device)
            embedding = generator.shared(index).detach().float().cpu()
        return replace(
            state, class_index=int(class_index), class_embedding=embedding,
            info={**state.info, "transferred_from": state.class_index},
        )

    def edited_result(
        self, parent: RestoreResult, state: GeneratorState, *, request: RestoreRequest | None = None
    ) -> RestoreResult:
        """A result for an edit of ``parent`` (a jittered or transferred state), as if restored.

        Parameters
        ----------
        parent : RestoreResult
            The result that was edited; its schedule facts (losses, steps, top classes) are kept.
        state : GeneratorState
            The edited state, e.g. from :meth:`jitter_states` or :meth:`transferred_state`.
        request : RestoreRequest, optional, keyword-only
            The request that made ``parent``: with it the edit is put back into the
            full-resolution photo (``composite``) and ``degraded`` is recomputed.

        Returns
        -------
        RestoreResult
            ``image`` = G*(state) (H×W×3 uint8), ``class_index`` = the state's, ``composite``
            H×W×3 uint8 at the photo's resolution when ``request`` is given, else None.
        """
        started = time.perf_counter()
        image = self.render(state)
        degraded, composite, notes = parent.degraded, None, parent.notes
        if request is not None:
            prepared = self.prepare(request)
            with torch.no_grad():
                model_view = prepared.degradation.generator_path(to_tensor(image).to(self.device))
            degraded = to_uint8_image(model_view)
            composite = composite_for_task(
                request.task, request.image, prepared.roi, image,
                mask=request.mask, factor=prepared.degradation.sr_factor,
            )
            notes = prepared.notes
        return replace(
            parent, image=image, degraded=degraded, state=state, class_index=state.class_index,
            composite=composite, notes=notes, seconds=time.perf_counter() - started,
        )

    def transfer_many(self, state: GeneratorState, classes: Sequence[int], *, batch_size: int = 16) -> list[np.ndarray]:
        """Category transfer to several classes, ``batch_size`` renders per forward pass.

        Returns
        -------
        list of np.ndarray
            One H×W×3 uint8 image per entry of ``classes``, in that order.
        """
        generator = self._generator_for(state)
        for class_index in classes:
            if not 0 <= class_index < self.G.config.n_classes:
                raise BadInputError(f"class index {class_index} is outside this model's classes.")
        images: list[np.ndarray] = []
        for start in range(0, len(classes), batch_size):
            chunk = list(classes[start : start + batch_size])
            index = torch.tensor(chunk, device=self.device)
            embedding = generator.shared(index).float()
            # The result's own class keeps the exact embedding it was rendered with.
            for row, class_index in enumerate(chunk):
                if class_index == state.class_index:
                    embedding[row] = state.class_embedding[0].to(self.device)
            z = state.z.expand(len(chunk), -1)
            images += self._render(generator, z, embedding, state.use_in)
        return images

    def morph(
        self, state_a: GeneratorState, state_b: GeneratorState, lambdas: Sequence[float],
        *, should_stop: threading.Event | None = None,
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Morph A -> B: z, class embedding and every weight/buffer at (1 - lambda) A + lambda B.

        lambda = 0 renders A and lambda = 1 renders B. One preallocated
        generator is rewritten in place for each frame.
        """
        self._check_state(state_a)
        self._check_state(state_b)
        morpher = MorphRenderer(self, state_a, state_b)
        for value in lambdas:
            if should_stop is not None and should_stop.is_set():
                return
            yield float(value), morpher.render(float(value))


def _keep_one_state(results: list[RestoreResult | None], primary: int) -> None:
    """Drop the fine-tuned weights of every finished run but one (BigGAN-128's are ~280 MB a run).

    The primary run's state is kept; until it has finished, the first finished run's is.
    """
    keep = primary if results[primary] is not None else next(
        (index for index, result in enumerate(results) if result is not None), None
    )
    for index, result in enumerate(results):
        if result is not None and index != keep and result.state is not None:
            results[index] = replace(result, state=None)


class MorphRenderer:
    """Renders interpolations between two states with one preallocated generator.

    Both endpoints' weights are built once per pair (only the entries either
    state changed); each frame then rewrites the generator's own tensors in
    place with two multi-tensor kernels (copy A, lerp towards B), so no
    tensors are allocated per frame. :meth:`retarget` moves the same
    generator to another pair of states (a timeline's next segment).
    """

    def __init__(self, engine: Engine, state_a: GeneratorState, state_b: GeneratorState) -> None:
        import copy

        self.engine = engine
        self.generator = copy.deepcopy(engine.G).eval().requires_grad_(False)
        self.generator.to(memory_format=torch.channels_last)
        self._own = {k: v for k, v in self.generator.state_dict().items() if v.is_floating_point()}
        # Entries unchanged by both states keep the base value.
        with torch.no_grad():
            for key, target in self._own.items():
                target.copy_(engine._base_state[key])
        self._changed_keys: list[str] = []
        self._targets: list[torch.Tensor] = []
        self._weights_a: list[torch.Tensor] = []
        self._weights_b: list[torch.Tensor] = []
        self.retarget(state_a, state_b)

    def retarget(self, state_a: GeneratorState, state_b: GeneratorState) -> None:
        """Morph between another pair of states, reusing the preallocated generator."""
        self.engine._check_state(state_a)
        self.engine._check_state(state_b)
        base_state = self.engine._base_state
        keys, targets, weights_a, weights_b = [], [], [], []
        with torch.no_grad():
            # Entries the previous pair changed go back to the base value first.
            for key in self._changed_keys:
                self._own[key].copy_(base_state[key])
            for key, target in self._own.items():
                delta_a = state_a.weight_delta.get(key)
                delta_b = state_b.weight_delta.get(key)
                if delta_a is None and delta_b is None:
                    continue
                keys.append(key)
                targets.append(target)
                weights_a.append(self._endpoint(base_state[key], delta_a, like=target))
                weights_b.append(self._endpoint(base_state[key], delta_b, like=target))
        self._changed_keys, self._targets = keys, targets
        self._weights_a, self._weights_b = weights_a, weights_b
        self.state_a, self.state_b = state_a, state_b
        self.use_in = state_a.use_in and state_b.use_in

    @staticmethod
    def _endpoint(base: torch.Tensor, delta: torch.Tensor | None, *, like: torch.Tensor) -> torch.Tensor:
        # The same arithmetic as GeneratorState.apply_to (base, then + delta), so that
        # lambda = 0 and 1 reproduce the results exactly; the generator's own layout
        # (channels_last convolutions) keeps the per-frame kernels on their fast path.
        weight = torch.empty_like(like)
        weight.copy_(base)
        if delta is not None:
            weight.add_(delta.to(weight.device, weight.dtype))
        return weight

    @torch.no_grad()
    def render(self, lam: float) -> np.ndarray:
        """The frame at ``lam`` in [0, 1] (0 = A, 1 = B) as H×W×3 uint8."""
        lam = float(lam)
        if self._targets:
            # lerp is exact at both ends: A + 0·(B − A) = A and B − (B − A)·0 = B.
            torch._foreach_copy_(self._targets, self._weights_a)
            torch._foreach_lerp_(self._targets, self._weights_b, lam)
        for layer in spectral_norm_layers(self.generator):
            layer.freeze_normalized_weight()
        z = torch.lerp(self.state_a.z, self.state_b.z, lam)
        embedding = torch.lerp(self.state_a.class_embedding, self.state_b.class_embedding, lam)
        # The ends are the states themselves, IN switch included (render(A), render(B));
        # in between, the instance-norm path only when both states use it.
        use_in = self.state_a.use_in if lam == 0.0 else self.state_b.use_in if lam == 1.0 else self.use_in
        return self.engine._render(self.generator, z, embedding, use_in)[0]


def resolve_class(
    value: str | int, class_names: Sequence[str], n_classes: int, *, numbers: Sequence[int] | None = None
) -> int:
    """Model class index from a class number (int or digits) or a name (exact, then unique substring).

    ``numbers`` are the numbers users see (ImageNet indices); by default the
    model's own indices.
    """
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if numbers is not None and tuple(numbers) != tuple(range(n_classes)):
            if number not in numbers:
                raise BadInputError(
                    f"class {number} is not one of this model's {n_classes} classes (ImageNet indices "
                    f"{min(numbers)}–{max(numbers)}, see its class list)."
                )
            return list(numbers).index(number)
        if not 0 <= number < n_classes:
            raise BadInputError(f"class index {number} is outside this model's {n_classes} classes (0–{n_classes - 1}).")
        return number
    query = str(value).strip().lower()
    names = [name.lower() for name in class_names]
    exact = [i for i, name in enumerate(names) if name == query]
    if exact:
        return exact[0]
    partial = [i for i, name in enumerate(names) if query in name]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise BadInputError(f"unknown class name {value!r}: no class of this model matches it.")
    examples = ", ".join(class_names[i] for i in partial[:4])
    raise BadInputError(f"class name {value!r} is ambiguous: it matches {len(partial)} classes ({examples}, …).")
