"""The evaluation harness: DGP, its ablations and simple baselines on held-out photos.

``dgp-studio evaluate`` (or ``python -m engine.evaluate``) restores a seeded
random sample of Tiny ImageNet validation images under four tasks and scores
every method the same way (:mod:`engine.metrics`):

* tasks: ``reconstruct`` (identity ϕ), ``colorize``, ``inpaint`` (the centred
  square hole) and ``sr4`` (×4 super-resolution; the low-resolution input is
  the reference's Lanczos target path of the ground truth), as in
  ``docs/dgp-method.md`` sections 4 and 8;
* methods on the same generator, images, latent-search seed and iteration
  budget (the task's default preset for the model):

  - ``z_only`` — G fixed (every G learning rate 0, no instance-norm switch):
    latent optimisation only, GAN inversion (a) of the paper's Table 1;
  - ``random_g`` — the same architecture with random orthogonal weights,
    fine-tuned with the same schedule (Deep-Image-Prior style); D stays the
    trained one;
  - ``dgp_mse`` — pixel MSE instead of the discriminator loss (w_d = 0,
    w_mse = 1 in every stage), Table 4's "MSE" column;
  - ``dgp_d_all`` — the preset's losses but every G group unlocked from stage
    1, Table 4's "Discriminator" column;
  - ``dgp`` — the preset as it is (discriminator loss + progressive
    unlocking);
  - baselines: ``bicubic`` and ``lanczos`` upsampling (sr4), ``mean_fill`` and
    ``harmonic_fill`` (inpaint), ``gray_input`` (colorize).

Work is resumable: every (image, task, method) becomes one JSON line in
``OUT/results.jsonl`` (``OUT/results.shard-K-of-N.jsonl`` with ``--shard``) as
soon as it is done, and a rerun skips what is in any of them.
``--shard K/N`` stays this harness's own way of splitting the work: it keeps
every method of one image in one process, and its results are scores, not the
restored photos that ``dgp-studio batch`` (:mod:`engine.batch`) writes with its
manifest. Both resume the same way (a record per finished unit, appended as
soon as it is done); ``batch`` also hands units to a worker pool or a Ray
cluster, which ``evaluate`` gets by starting N shard processes.
At the end ``OUT/evaluation.md`` holds one table per task and an example sheet
per task (``OUT/sheet_TASK.png``).

Examples::

    dgp-studio evaluate --data shared/data/tiny-imagenet-200/val.tar --limit 200 --out report/
    dgp-studio evaluate --data val.tar --tasks inpaint,sr4 --methods dgp,z_only,lanczos \\
        --limit 20 --quick --out quick-report/
    # two processes, one core each, sharing one report folder
    dgp-studio evaluate --data val.tar --limit 200 --quick --threads 1 --shard 1/2 --out report/ &
    dgp-studio evaluate --data val.tar --limit 200 --quick --threads 1 --shard 2/2 --out report/
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from engine.api import BUILTIN_MODEL_NAME, Engine, LoadedModel, load_model
from engine.biggan import Generator, orthogonal_init_, spectral_norm_layers
from engine.composite import RegionOfInterest, prepare_model_input
from engine.degrade import Degradation, degradation_for_task, downsample_target_path
from engine.dgp import run_dgp, to_uint8_image
from engine.errors import BadInputError, NonFiniteLossError
from engine.events import Cancelled, Finished
from engine.imageio import save_image
from engine.metrics import score_result, scored_image
from engine.schedule import Schedule, default_preset_name, resolve_preset
from engine.superres import assemble
from engine.tasks import DEFAULT_DETAIL_STRENGTH
from engine.tensors import to_tensor

__all__ = [
    "BASELINE_METHODS",
    "DGP_METHODS",
    "METHODS",
    "TASKS",
    "ValidationImage",
    "harmonic_fill",
    "list_validation_images",
    "main",
    "mean_fill",
    "method_schedule",
    "random_generator",
    "read_results",
    "run_evaluation",
    "sample_validation_images",
    "write_report",
]

RESULTS_FILE = "results.jsonl"
SHARD_RESULTS_PATTERN = "results.shard-*.jsonl"   # one file per --shard process
REPORT_FILE = "evaluation.md"
SAMPLE_FILE = "sample.txt"
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class TaskSpec:
    """How an evaluation task maps onto the engine."""

    engine_task: str               # degradation, preset and scoring task
    sr_factor: int | None
    baselines: tuple[str, ...]
    title: str


TASK_SPECS: dict[str, TaskSpec] = {
    "reconstruct": TaskSpec("reconstruct", None, (), "Reconstruction"),
    "colorize": TaskSpec("colorize", None, ("gray_input",), "Colorization"),
    "inpaint": TaskSpec("inpaint", None, ("mean_fill", "harmonic_fill"), "Inpainting, centred hole"),
    "sr4": TaskSpec("sr", 4, ("bicubic", "lanczos"), "Super-resolution ×4"),
}
TASKS: tuple[str, ...] = tuple(TASK_SPECS)

DGP_METHODS: tuple[str, ...] = ("z_only", "random_g", "dgp_mse", "dgp_d_all", "dgp")
BASELINE_METHODS: tuple[str, ...] = ("bicubic", "lanczos", "mean_fill", "harmonic_fill", "gray_input")
METHODS: tuple[str, ...] = BASELINE_METHODS + DGP_METHODS   # also the tables' row order

METHOD_DESCRIPTIONS: dict[str, str] = {
    "bicubic": "bicubic upsampling of the ×4 low-resolution input (Pillow)",
    "lanczos": "Lanczos-3 upsampling of the ×4 low-resolution input (Pillow)",
    "mean_fill": "the hole filled with the mean colour of the known pixels",
    "harmonic_fill": "the hole filled by solving Laplace's equation with the known pixels as boundary",
    "gray_input": "the grey input itself (no colour)",
    "z_only": "latent optimisation only: the trained G fixed (every G learning rate 0, no instance norm)",
    "random_g": "the same architecture randomly (orthogonally) initialised, fine-tuned with the same "
                "schedule (Deep-Image-Prior style); D is the trained one",
    "dgp_mse": "DGP with pixel MSE instead of the discriminator loss (w_d = 0, w_mse = 1 in every stage)",
    "dgp_d_all": "DGP with the preset's losses but every G group unlocked from stage 1 (not progressive)",
    "dgp": "DGP with the task's default preset as published: discriminator loss + progressive unlocking",
}

# Run settings that must agree between a results file and a rerun that resumes it.
_RESUME_KEYS = ("model", "resolution", "data", "seed", "quick", "iteration_scale", "presets", "sr_detail_strength")

# Results written before SR results were assembled with the prior's detail at a strength
# (they were projected onto the input, or not at all) read as having no strength.
_RESUME_DEFAULTS = {"presets": {}, "sr_detail_strength": None}

# Power-iteration steps that bring a random generator's stored singular vectors close
# to the true ones; trained checkpoints arrive with converged vectors.
_RANDOM_G_POWER_STEPS = 30


# --------------------------------------------------------------------------------------
# Validation data


@dataclass(frozen=True)
class ValidationImage:
    """One validation photo: where it is in the tar and what it shows."""

    member: str            # tar member name, "WNID/val_N.JPEG"
    wnid: str
    imagenet_index: int    # ImageNet-1k class index (0–999)
    class_index: int       # the model's label position for that class
    class_name: str

    @property
    def image_id(self) -> str:
        """A file-name-safe id, e.g. ``n01443537_val_68``."""
        path = PurePosixPath(self.member)
        return f"{self.wnid}_{path.stem}"


def read_classes(path: Path) -> list[dict]:
    """The ``classes.json`` list of ``{"wnid", "imagenet_index", "name"}`` objects."""
    if not path.is_file():
        raise BadInputError(f"{path}: the class list does not exist (classes.json belongs beside the tar).")
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: the class list is not valid JSON ({error}).") from None
    if not isinstance(classes, list) or not all(
        isinstance(c, dict) and {"wnid", "imagenet_index"} <= set(c) for c in classes
    ):
        raise BadInputError(f"{path}: expected a list of objects with wnid and imagenet_index.")
    return classes


def model_class_lookup(model: LoadedModel) -> dict[int, int] | None:
    """ImageNet index → the model's label position, or None for a 1000-class ImageNet model.

    A model trained on a subset (the built-in 200-class one) lists the ImageNet
    index of each of its labels in ``class_imagenet_indices``.
    """
    if model.class_imagenet_indices:
        return {int(index): position for position, index in enumerate(model.class_imagenet_indices)}
    if model.config.n_classes == 1000:
        return None
    raise BadInputError(
        f"{model.display_name}: the model has {model.config.n_classes} classes but no ImageNet indices, "
        f"so validation labels cannot be mapped to its classes."
    )


def list_validation_images(
    tar_path: Path, classes: Sequence[dict], model: LoadedModel
) -> tuple[list[ValidationImage], int]:
    """Every JPEG in the tar whose class the model knows, sorted by member name.

    Returns the images and the number of images skipped (class unknown to the
    model or not in ``classes``). Only the tar's index is read, not the images.
    """
    lookup = model_class_lookup(model)
    by_wnid = {str(c["wnid"]): c for c in classes}
    try:
        with tarfile.open(tar_path) as archive:
            names = [m.name for m in archive.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError) as error:
        raise BadInputError(f"{tar_path}: cannot read the tar file ({error}).") from None
    images: list[ValidationImage] = []
    skipped = 0
    for name in sorted(names):
        if not name.lower().endswith((".jpeg", ".jpg", ".png")):
            continue
        wnid = PurePosixPath(name).parts[0]
        entry = by_wnid.get(wnid)
        if entry is None:
            skipped += 1
            continue
        imagenet_index = int(entry["imagenet_index"])
        class_index = imagenet_index if lookup is None else lookup.get(imagenet_index)
        if class_index is None or not 0 <= class_index < model.config.n_classes:
            skipped += 1
            continue
        images.append(ValidationImage(
            member=name, wnid=wnid, imagenet_index=imagenet_index, class_index=class_index,
            class_name=str(entry.get("name", wnid)),
        ))
    if not images:
        raise BadInputError(f"{tar_path}: the tar holds no images of classes the model knows.")
    return images, skipped


def sample_validation_images(
    images: Sequence[ValidationImage], *, limit: int | None, fraction: float | None, seed: int
) -> list[ValidationImage]:
    """A seeded random sample: the first ``count`` entries of a seeded permutation.

    The permutation depends only on ``seed`` and the (sorted) image list, so a
    larger ``limit`` extends a smaller one's sample: a resumed run with a
    higher limit keeps every image already done. ``fraction`` asks for
    ``ceil(fraction · len(images))`` images; with both, the smaller count wins;
    with neither, :data:`DEFAULT_LIMIT`.
    """
    counts = []
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadInputError(f"--limit must be a whole number of at least 1, got {limit!r}.")
        counts.append(limit)
    if fraction is not None:
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise BadInputError(f"--sample-fraction must be a number in (0, 1], got {fraction!r}.")
        counts.append(max(1, math.ceil(fraction * len(images))))
    count = min(counts) if counts else DEFAULT_LIMIT
    order = np.random.default_rng(seed).permutation(len(images))
    return [images[i] for i in order[: min(count, len(images))]]


def read_ground_truths(
    tar_path: Path, chosen: Sequence[ValidationImage], resolution: int
) -> dict[str, np.ndarray]:
    """Decode the chosen members (in place, from the tar) to R×R×3 uint8.

    Grey JPEGs become RGB; other sizes are centre-cropped to a square and
    resized as the app prepares a photo (:func:`engine.composite.prepare_model_input`).
    """
    wanted = {image.member for image in chosen}
    truths: dict[str, np.ndarray] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if member.name not in wanted:
                continue
            data = archive.extractfile(member).read()
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    rgb = np.asarray(opened.convert("RGB"), dtype=np.uint8)
            except OSError as error:
                raise BadInputError(
                    f"{tar_path}: the member {member.name} is not a readable image ({error})."
                ) from None
            roi = RegionOfInterest.largest_centred_square(rgb.shape[1], rgb.shape[0])
            truths[member.name] = prepare_model_input(rgb, roi, resolution)
    return truths


# --------------------------------------------------------------------------------------
# Baselines


def mean_fill(image_rgb: np.ndarray, known_hw: np.ndarray) -> np.ndarray:
    """Fill unknown pixels with the per-channel mean of the known ones.

    Parameters
    ----------
    image_rgb : np.ndarray
        H×W×3 uint8; only known pixels are read.
    known_hw : np.ndarray
        H×W bool (or 0/1), True = known.

    Returns
    -------
    np.ndarray
        New H×W×3 uint8: known pixels unchanged, the others the rounded mean colour.
    """
    known = np.asarray(known_hw).astype(bool)
    if not known.any():
        raise BadInputError("mean_fill needs at least one known pixel.")
    output = np.array(image_rgb, dtype=np.uint8, copy=True)
    mean_colour = image_rgb[known].astype(np.float64).mean(axis=0)
    output[~known] = np.clip(np.rint(mean_colour), 0, 255).astype(np.uint8)
    return output


def _neighbour_sum(field: np.ndarray) -> np.ndarray:
    """Sum of the 4-neighbours of every pixel of an H×W×C field (zero outside the image)."""
    total = np.zeros_like(field)
    total[1:] += field[:-1]
    total[:-1] += field[1:]
    total[:, 1:] += field[:, :-1]
    total[:, :-1] += field[:, 1:]
    return total


def harmonic_fill(
    image_rgb: np.ndarray, known_hw: np.ndarray, *, tolerance: float = 1e-6, max_iterations: int = 5000
) -> np.ndarray:
    """Fill unknown pixels with the harmonic interpolant of the known ones.

    Solves the discrete Laplace equation Δu = 0 on the unknown pixels (4-neighbour
    stencil), with the known pixels as Dirichlet boundary and no flux across the
    image border, by conjugate gradients (the system is symmetric positive
    definite whenever every unknown region touches a known pixel).

    Parameters
    ----------
    image_rgb : np.ndarray
        H×W×3 uint8.
    known_hw : np.ndarray
        H×W bool (or 0/1), True = known.
    tolerance : float, keyword-only
        Stop when the residual norm falls below ``tolerance`` times the
        right-hand side's.
    max_iterations : int, keyword-only
        Upper bound on CG steps (a 22×22 hole needs a few dozen).

    Returns
    -------
    np.ndarray
        New H×W×3 uint8, known pixels unchanged.
    """
    known = np.asarray(known_hw).astype(bool)
    if known.shape != image_rgb.shape[:2]:
        raise BadInputError(
            f"harmonic_fill: the mask is {known.shape[1]}×{known.shape[0]} but the image is "
            f"{image_rgb.shape[1]}×{image_rgb.shape[0]}."
        )
    if not known.any():
        raise BadInputError("harmonic_fill needs at least one known pixel.")
    unknown = ~known
    if not unknown.any():
        return np.array(image_rgb, copy=True)
    values = image_rgb.astype(np.float64)
    unknown_3 = unknown[..., None]
    # Number of in-image neighbours: border pixels have fewer (no flux across the border).
    degree = _neighbour_sum(np.ones((*known.shape, 1)))

    def laplacian(field: np.ndarray) -> np.ndarray:
        # A·x for x living on the unknown pixels (zero elsewhere), restricted to them.
        return np.where(unknown_3, degree * field - _neighbour_sum(field), 0.0)

    rhs = np.where(unknown_3, _neighbour_sum(np.where(unknown_3, 0.0, values)), 0.0)
    solution = np.where(unknown_3, values[known].mean(axis=0), 0.0)   # start from the mean colour
    residual = rhs - laplacian(solution)
    direction = residual.copy()
    residual_norm = (residual**2).sum(axis=(0, 1))            # per channel
    target_norm = (tolerance**2) * np.maximum((rhs**2).sum(axis=(0, 1)), 1e-30)
    for _ in range(max_iterations):
        if np.all(residual_norm <= target_norm):
            break
        applied = laplacian(direction)
        curvature = (direction * applied).sum(axis=(0, 1))
        step = np.where(curvature > 0, residual_norm / np.where(curvature > 0, curvature, 1.0), 0.0)
        solution += step * direction
        residual -= step * applied
        new_norm = (residual**2).sum(axis=(0, 1))
        direction = residual + (new_norm / np.maximum(residual_norm, 1e-300)) * direction
        residual_norm = new_norm
    output = np.array(image_rgb, copy=True)
    output[unknown] = np.clip(np.rint(solution[unknown]), 0, 255).astype(np.uint8)
    return output


def _upscale(low_rgb: np.ndarray, resolution: int, resample: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(low_rgb, mode="RGB").resize((resolution, resolution), resample))


# --------------------------------------------------------------------------------------
# Method variants


def method_schedule(method: str, preset: Schedule) -> Schedule:
    """The schedule a DGP method runs: the task's preset changed in one factor.

    ``z_only``: every G learning rate 0 and the instance-norm switch off (its
    data-dependent initialisation would change G). ``dgp_mse``: w_d = 0,
    w_mse = 1 in every stage. ``dgp_d_all``: every group unlocked in every stage.
    ``dgp`` and ``random_g``: the preset unchanged.
    """
    if method in ("dgp", "random_g"):
        return preset
    if method == "z_only":
        stages = tuple(dataclasses.replace(s, g_lr=0.0, use_in=False) for s in preset.stages)
    elif method == "dgp_mse":
        stages = tuple(dataclasses.replace(s, w_d=0.0, w_mse=1.0) for s in preset.stages)
    elif method == "dgp_d_all":
        stages = tuple(dataclasses.replace(s, unlocked_groups="all") for s in preset.stages)
    else:
        raise BadInputError(f"{method!r} is not a DGP method; expected one of {', '.join(DGP_METHODS)}.")
    return dataclasses.replace(preset, name=f"{preset.name} [{method}]", stages=stages)


def _schedule_key(schedule: Schedule, generator_kind: str) -> str:
    """Identical keys mean identical runs (name and descriptions aside)."""
    settings = dataclasses.replace(schedule, name="", title="", source="", purpose="")
    return hashlib.sha1(f"{generator_kind}|{settings!r}".encode()).hexdigest()[:16]


def random_generator(model: LoadedModel, *, seed: int) -> Generator:
    """G's architecture with BigGAN's orthogonal initialisation from ``seed``.

    Fresh buffers (identity batch-norm statistics), and the stored spectral-norm
    vectors power-iterated to convergence as training would leave them, so that
    ``W / sigma`` really has unit spectral norm. The global RNG is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(model.config)
        orthogonal_init_(generator)
    with torch.no_grad():
        for layer in spectral_norm_layers(generator):
            layer.training = True
            for _ in range(_RANDOM_G_POWER_STEPS):
                layer.spectral_sigma()
            layer.training = False
    return generator.eval()


# --------------------------------------------------------------------------------------
# Results file


def read_results(path: Path, *, repair: bool = True) -> list[dict]:
    """The records of a results file; a torn last line (an interrupted write) is dropped.

    With ``repair`` the file is rewritten without unreadable lines so that
    appends start on a fresh line; only the process that appends to a file
    repairs it (another shard's last line may be half-written right now).
    """
    if not path.exists():
        return []
    records: list[dict] = []
    bad = 0
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and {"image", "task", "method"} <= set(record):
            records.append(record)
        else:
            bad += 1
    if repair and (bad or (text and not text.endswith("\n"))):
        _write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def shard_results_name(shard: tuple[int, int] | None) -> str:
    """The results file a process appends to: ``results.jsonl``, or its shard's own file."""
    if shard is None:
        return RESULTS_FILE
    index, count = shard
    return f"results.shard-{index}-of-{count}.jsonl"


def read_all_results(out_dir: Path, own: Path | None = None) -> list[dict]:
    """Every record in a report folder: ``results.jsonl`` and every shard's file.

    Only ``own`` (this process's file) is repaired; see :func:`read_results`.
    """
    paths = [out_dir / RESULTS_FILE, *sorted(out_dir.glob(SHARD_RESULTS_PATTERN))]
    return [record for path in paths for record in read_results(path, repair=path == own)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 1 ≤ K ≤ N."""
    index, separator, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (0, 0)
    if not separator or not 1 <= shard[0] <= shard[1]:
        raise BadInputError(f"--shard {text}: expected K/N with 1 ≤ K ≤ N, e.g. 1/2.")
    return shard


def _append_record(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _check_resumable(records: Iterable[dict], run: dict, path: Path) -> None:
    for record in records:
        previous = record.get("run", {})
        for key in _RESUME_KEYS:
            # Results written before a key existed ran with its default.
            earlier = previous.get(key, _RESUME_DEFAULTS.get(key))
            if earlier != run[key]:
                raise BadInputError(
                    f"{path} holds results made with {key} = {earlier!r}, but this run has "
                    f"{key} = {run[key]!r}; choose another --out folder or the same settings."
                )


# --------------------------------------------------------------------------------------
# The run


def _git_commit() -> str:
    """``git rev-parse HEAD`` of the source tree, with a note when it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" (with uncommitted changes)" if status else "")


def _dgp_result(
    engine: Engine, generator: Generator, degradation: Degradation, target: torch.Tensor,
    schedule: Schedule, *, class_index: int, seed: int,
) -> tuple[np.ndarray, int, str]:
    """Run DGP to the end: (result image, changed G tensors, note)."""
    final = None
    note = ""
    try:
        for event in run_dgp(
            generator, engine.D, degradation, target, schedule, class_index=class_index, seed=seed,
            device=engine.device, autocast_dtype=engine.autocast_dtype, model_identity=engine.model.identity,
            frame_interval=math.inf,
        ):
            if isinstance(event, (Finished, Cancelled)):
                final = event
    except NonFiniteLossError as error:
        # The Cancelled event before the error carries the last good state: score that.
        note = str(error)
    if final is None or final.result is None:
        raise RuntimeError(f"the {schedule.name} run produced no result ({note or 'no final event'}).")
    return final.result.image, len(final.result.state.weight_delta), note


def run_evaluation(
    model: LoadedModel,
    *,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    tasks: Sequence[str] = TASKS,
    methods: Sequence[str] = METHODS,
    limit: int | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
    quick: bool = False,
    iteration_scale: float = 1.0,
    presets: dict[str, str] | None = None,
    shard: tuple[int, int] | None = None,
    classes_path: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    adjust_schedule: Callable[[Schedule], Schedule] | None = None,
    command: str = "",
    progress: bool = True,
) -> list[dict]:
    """Evaluate ``methods`` on ``tasks`` over a seeded sample of a validation tar.

    Parameters
    ----------
    model : LoadedModel
        G and D (D is required: DGP's loss and latent search use it).
    data : path
        A Tiny-ImageNet-style tar of ``WNID/NAME.JPEG`` members, read in place.
    out_dir : path
        Report folder (created). ``results.jsonl`` there is resumed.
    tasks, methods : sequences of str
        Subsets of :data:`TASKS` and :data:`METHODS`; each task runs the DGP
        methods and its own baselines among ``methods``.
    limit, sample_fraction : optional
        How many images (see :func:`sample_validation_images`).
    seed : int
        Seeds the image sample, the latent search of every method (the same
        candidates for all of them) and ``random_g``'s initialisation.
    quick : bool
        Use the presets' quick variants.
    iteration_scale : float
        Multiply every stage's iterations (after ``quick``).
    presets : dict, optional
        Task → preset name, for tasks that should not run the model's default
        preset (e.g. ``{"sr4": "builtin64_sr_mse_biased"}``).
    shard : (K, N), optional
        Run only every N-th image of the sample, starting with the K-th (1-based),
        appending to the shard's own results file. N processes with K = 1 … N
        (one CPU thread each) share the work; each reads every shard's file, so
        the report written by the last one to finish covers all of them.
    classes_path : path, optional
        ``classes.json``; by default the one beside the tar.
    device, precision : str
        As for :class:`engine.api.Engine`.
    adjust_schedule : callable, optional
        Applied to each task's preset before the method variants are built
        (tests use it to shrink runs). It is not recorded for resuming.
    command : str
        The command line, for the report.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    list of dict
        Every record in ``results.jsonl`` (earlier ones included). The report
        is written before returning, also after an interruption.
    """
    tasks = list(tasks)
    methods = list(methods)
    for task in tasks:
        if task not in TASK_SPECS:
            raise BadInputError(f"unknown task {task!r}; choose from {', '.join(TASKS)}.")
    for method in methods:
        if method not in METHODS:
            raise BadInputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
    if not tasks or not methods:
        raise BadInputError("the evaluation needs at least one task and one method.")
    chosen_presets = dict(presets or {})
    for task, name in chosen_presets.items():
        if task not in tasks:
            raise BadInputError(f"--preset {task}={name}: the task {task!r} is not among the evaluated tasks.")
    if model.D is None:
        raise BadInputError(f"{model.display_name}: the model has no discriminator, which DGP needs.")
    data_path = Path(data)
    if not data_path.is_file():
        raise BadInputError(f"{data_path}: the validation tar does not exist.")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    results_path = out_path / shard_results_name(shard)

    classes = read_classes(Path(classes_path) if classes_path else data_path.parent / "classes.json")
    eligible, skipped = list_validation_images(data_path, classes, model)
    chosen = sample_validation_images(eligible, limit=limit, fraction=sample_fraction, seed=seed)

    engine = Engine(model, device=device, precision=precision)
    resolution = engine.resolution
    run = {
        "model": model.identity, "model_name": model.display_name, "resolution": resolution,
        "data": data_path.name, "seed": seed, "quick": bool(quick), "iteration_scale": float(iteration_scale),
        "device": str(engine.device), "precision": "bf16" if engine.autocast_dtype else "fp32",
        "eligible_images": len(eligible), "skipped_images": skipped, "presets": chosen_presets,
        "shards": shard[1] if shard else 1,
        # Generative SR results are assembled as the app assembles them: classical upscaling of
        # the input plus this share of the prior's detail above its frequencies, consistent with
        # the input (engine.superres.assemble); the raw G output is scored too.
        "sr_detail_strength": DEFAULT_DETAIL_STRENGTH,
    }
    records = read_all_results(out_path, own=results_path)
    _check_resumable(records, run, results_path)
    done = {(r["image"], r["task"], r["method"]) for r in records}
    _write_text_atomically(
        out_path / SAMPLE_FILE,
        f"# {len(chosen)} images: the first {len(chosen)} of a permutation (seed {seed}) of the "
        f"{len(eligible)} images in {data_path.name} whose class the model knows\n"
        + "".join(f"{image.member}\t{image.class_name}\n" for image in chosen),
    )
    if shard is not None:
        chosen = chosen[shard[0] - 1::shard[1]]

    presets: dict[str, Schedule] = {}
    for task in tasks:
        spec = TASK_SPECS[task]
        preset = resolve_preset(chosen_presets.get(task) or default_preset_name(spec.engine_task, resolution))
        if preset.task != spec.engine_task:
            raise BadInputError(
                f"--preset {task}={preset.name}: that preset is for the {preset.task} task, not {spec.engine_task}."
            )
        if preset.resolution and preset.resolution != resolution:
            raise BadInputError(
                f"--preset {task}={preset.name}: that preset is written for {preset.resolution} px, "
                f"but the model makes {resolution} px images."
            )
        if quick:
            preset = preset.quick()
        preset = preset.scaled(iteration_scale)
        if adjust_schedule is not None:
            preset = adjust_schedule(preset)
        presets[task] = preset

    # Baselines first (instant), then DGP with the published preset, so that an
    # identical variant (e.g. dgp_d_all where the preset already unlocks all groups)
    # reuses dgp's run instead of repeating it.
    execution_order = BASELINE_METHODS + ("dgp", "dgp_d_all", "dgp_mse", "z_only", "random_g")
    order = [m for m in execution_order if m in methods]
    work = [
        (image, task, method)
        for image in chosen for task in tasks for method in order
        if (method in DGP_METHODS or method in TASK_SPECS[task].baselines)
    ]
    pending = [item for item in work if (item[0].member, item[1], item[2]) not in done]

    from tqdm import tqdm

    bar = tqdm(total=len(work), initial=len(work) - len(pending), desc="evaluate", unit="run",
               disable=not progress or None, file=sys.stderr, dynamic_ncols=True)
    truths = read_ground_truths(data_path, sorted({item[0] for item in pending}, key=lambda i: i.member),
                                resolution) if pending else {}
    image_folder = out_path / "images"
    random_g: Generator | None = None
    prepared: dict[tuple[str, str], tuple[Degradation, torch.Tensor, np.ndarray, np.ndarray | None]] = {}
    try:
        for image, task, method in pending:
            spec = TASK_SPECS[task]
            truth = truths[image.member]
            (image_folder / task).mkdir(parents=True, exist_ok=True)
            truth_png = image_folder / "truth" / f"{image.image_id}.png"
            if not truth_png.exists():
                truth_png.parent.mkdir(parents=True, exist_ok=True)
                save_image(truth, truth_png, overwrite=True)
            key = (image.member, task)
            if key not in prepared:
                prepared.clear()   # one (image, task) at a time: work is ordered that way
                degradation = degradation_for_task(
                    spec.engine_task, resolution=resolution, sr_factor=spec.sr_factor
                ).to(engine.device)
                target = degradation.target_path(to_tensor(truth, device=engine.device))
                input_rgb = to_uint8_image(target)
                save_image(input_rgb, image_folder / task / f"{image.image_id}__input.png", overwrite=True)
                low_rgb = (
                    to_uint8_image(downsample_target_path(to_tensor(truth), spec.sr_factor))
                    if spec.sr_factor else None
                )
                prepared[key] = (degradation, target, input_rgb, low_rgb)
            degradation, target, input_rgb, low_rgb = prepared[key]
            bar.set_postfix_str(f"{image.image_id} {task} {method}", refresh=False)

            record = {
                "image": image.member, "image_id": image.image_id, "class_index": image.class_index,
                "imagenet_index": image.imagenet_index, "class_name": image.class_name,
                "task": task, "method": method, "run": run,
            }
            started = time.perf_counter()
            if method in DGP_METHODS:
                schedule = method_schedule(method, presets[task])
                generator_kind = "random" if method == "random_g" else "trained"
                schedule_key = _schedule_key(schedule, generator_kind)
                twin = next(
                    (r for r in records if r["image"] == image.member and r["task"] == task
                     and r.get("schedule_key") == schedule_key and "result_png" in r),
                    None,
                )
                record.update({
                    "preset": schedule.name, "iterations": schedule.total_iterations,
                    "search_candidates": schedule.search_candidates, "schedule_key": schedule_key,
                })
                if twin is not None:
                    record.update({
                        "metrics": twin["metrics"], "seconds": twin["seconds"],
                        "g_changed_tensors": twin["g_changed_tensors"], "result_png": twin["result_png"],
                        **({"metrics_generator": twin["metrics_generator"]} if "metrics_generator" in twin else {}),
                        "identical_to": twin.get("identical_to", twin["method"]),
                    })
                    _append_record(results_path, record)
                    records.append(record)
                    bar.update(1)
                    continue
                if method == "random_g":
                    if random_g is None:
                        random_g = random_generator(model, seed=seed).to(engine.device)
                    generator = random_g
                else:
                    generator = engine.G
                result, changed, note = _dgp_result(
                    engine, generator, degradation, target, schedule,
                    class_index=image.class_index, seed=seed,
                )
                record["g_changed_tensors"] = changed
                if note:
                    record["note"] = note
                if low_rgb is not None:
                    record["metrics_generator"] = score_result(spec.engine_task, result, truth)
                    tile = result.astype(np.float32)   # only its part above the input's frequencies counts
                    result = assemble(low_rgb, spec.sr_factor, [((0, 0), tile)], DEFAULT_DETAIL_STRENGTH)
            else:
                result = _baseline_result(method, truth, input_rgb, low_rgb, degradation, resolution)
            seconds = time.perf_counter() - started
            scored = scored_image(spec.engine_task, result, truth)
            result_png = image_folder / task / f"{image.image_id}__{method}.png"
            save_image(scored, result_png, overwrite=True)
            record.update({
                "metrics": score_result(spec.engine_task, result, truth), "seconds": seconds,
                "result_png": result_png.relative_to(out_path).as_posix(),
            })
            _append_record(results_path, record)
            records.append(record)
            bar.update(1)
    finally:
        bar.close()
        if shard is not None:
            records = _write_report_over_every_shard(out_path, command)
        elif records:
            write_report(records, out_path, command=command)
    return records


def _write_report_over_every_shard(out_path: Path, command: str) -> list[dict]:
    """Write the report over every shard's records, until no shard has added one meanwhile.

    Each shard writes the report when it stops. Two that stop together could each
    read the records before the other's last append, and the later write would then
    miss images; reading again after each write, and writing again when the count
    grew, leaves the last write covering every record appended before it.
    """
    records = read_all_results(out_path)
    while records:
        write_report(records, out_path, command=command)
        latest = read_all_results(out_path)
        if len(latest) == len(records):
            break
        records = latest
    return records


def _baseline_result(
    method: str, truth: np.ndarray, input_rgb: np.ndarray, low_rgb: np.ndarray | None,
    degradation: Degradation, resolution: int,
) -> np.ndarray:
    if method in ("bicubic", "lanczos"):
        resample = Image.Resampling.BICUBIC if method == "bicubic" else Image.Resampling.LANCZOS
        return _upscale(low_rgb, resolution, resample)
    if method in ("mean_fill", "harmonic_fill"):
        known = degradation.mask[0, 0].detach().cpu().numpy() >= 0.5
        return mean_fill(truth, known) if method == "mean_fill" else harmonic_fill(truth, known)
    if method == "gray_input":
        return input_rgb
    raise BadInputError(f"{method!r} is not a baseline; expected one of {', '.join(BASELINE_METHODS)}.")


# --------------------------------------------------------------------------------------
# Report

_METRIC_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    # key, header, scale, decimals
    ("psnr", "PSNR (dB) ↑", 1.0, 2),
    ("ssim", "SSIM ↑", 1.0, 4),
    ("ssim_range2", "SSIM, range 2 ↑", 1.0, 4),
    ("mse", "MSE ×10⁻³ ↓", 1e3, 3),
)
_CHROMA_COLUMN = ("chroma", "mean chroma", 1.0, 2)
SHEET_EXAMPLES = 4


def paired_psnr_differences(task_records: Sequence[dict], method: str, other: str) -> np.ndarray:
    """PSNR of ``method`` minus ``other`` on every image both have (inf − inf gives nan)."""
    psnr = {(r["image"], r["method"]): float(r["metrics"]["psnr"]) for r in task_records}
    images = sorted(image for image, m in psnr if m == other and (image, method) in psnr)
    with np.errstate(invalid="ignore"):
        return np.array([psnr[(image, method)] - psnr[(image, other)] for image in images], dtype=np.float64)


def _paired_comparison_lines(task_records: Sequence[dict], methods: Sequence[str]) -> list[str]:
    """``dgp`` against every other method, image by image: a mean is not a per-image win."""
    if "dgp" not in methods:
        return []
    rows = []
    for other in (m for m in methods if m != "dgp"):
        if all(r.get("identical_to") == "dgp" for r in task_records if r["method"] == other):
            continue  # a copy of dgp's own runs
        differences = paired_psnr_differences(task_records, "dgp", other)
        if differences.size == 0:
            continue
        finite = differences[np.isfinite(differences)]
        wins = int(np.sum(differences > 0))
        if finite.size >= 2:
            half_width = 1.96 * finite.std(ddof=1) / math.sqrt(finite.size)
            difference = f"{finite.mean():+.2f} ± {half_width:.2f}"
        elif finite.size == 1:
            difference = f"{finite[0]:+.2f}"
        else:
            difference = "n/a"
        if finite.size < differences.size:
            difference += f" ({differences.size - finite.size} image(s) with an infinite PSNR left out)"
        rows.append(f"| `{other}` | {difference} | {wins} of {differences.size} |")
    if not rows:
        return []
    return [
        "",
        "Paired with `dgp` on the same images (difference: 95 % interval of the mean, normal approximation):",
        "",
        "| compared with | PSNR of `dgp` minus it (dB) | `dgp` higher on |",
        "|---|---|---|",
        *rows,
    ]


def _iteration_scale_note(scale: float) -> str:
    return "" if scale == 1.0 else f", iterations ×{scale:g}"


def _mean_and_std(values: Sequence[float], scale: float, decimals: int) -> str:
    """Mean ± sample std; an infinite PSNR (an exact result) is counted beside, not averaged."""
    array = np.asarray(values, dtype=np.float64) * scale
    if np.isnan(array).any() or (array == -np.inf).any():
        return "n/a"
    finite = array[np.isfinite(array)]
    exact = array.size - finite.size
    exact_note = f" (and {exact} × ∞)" if exact else ""
    if finite.size == 0:
        return "∞"
    if finite.size < 2:
        return f"{finite[0]:.{decimals}f}{exact_note}"
    return f"{finite.mean():.{decimals}f} ± {finite.std(ddof=1):.{decimals}f}{exact_note}"


def _read_png(path: Path, size: int) -> np.ndarray:
    if path.is_file():
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB"), dtype=np.uint8)
    return np.full((size, size, 3), 128, dtype=np.uint8)


def _write_sheet(task: str, task_records: list[dict], methods: list[str], out_dir: Path) -> str | None:
    """Rows: example images; columns: input, each method, ground truth."""
    images: list[str] = []
    for record in task_records:
        if record["image_id"] not in images:
            images.append(record["image_id"])
    images = images[:SHEET_EXAMPLES]
    if not images:
        return None
    by_key = {(r["image_id"], r["method"]): r for r in task_records}
    first_truth = out_dir / "images" / "truth" / f"{images[0]}.png"
    size = _read_png(first_truth, 64).shape[0]
    cells, labels = [], []
    for image_id in images:
        row = [("input", out_dir / "images" / task / f"{image_id}__input.png")]
        for method in methods:
            record = by_key.get((image_id, method))
            row.append((method, out_dir / record["result_png"] if record else out_dir / "missing"))
        row.append(("ground truth", out_dir / "images" / "truth" / f"{image_id}.png"))
        for label, path in row:
            cells.append(_read_png(path, size))
            labels.append(label)
    from engine.export import write_contact_sheet

    name = f"sheet_{task}.png"
    write_contact_sheet(cells, out_dir / name, columns=len(methods) + 2, labels=labels, overwrite=True)
    return name


def write_report(results: Sequence[dict], out_dir: str | os.PathLike, *, command: str) -> Path:
    """Write ``OUT/evaluation.md`` and one example sheet per task from result records.

    Parameters
    ----------
    results : sequence of dict
        Records as in ``results.jsonl`` (keys ``image``, ``image_id``, ``task``,
        ``method``, ``metrics``, ``seconds``, ``run``, ``result_png``, …).
    out_dir : path
        The report folder (holding the images the records name).
    command : str, keyword-only
        The exact command that produced the results, quoted in the report.

    Returns
    -------
    Path
        The Markdown file.
    """
    out_path = Path(out_dir)
    results = list(results)
    if not results:
        raise BadInputError(f"{out_path}: there are no results to report.")
    run = results[-1].get("run", {})
    shards = max(int(r.get("run", {}).get("shards", 1)) for r in results)
    images = sorted({r["image"] for r in results})
    lines = [
        "# DGP evaluation",
        "",
        f"- Date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- Commit: `{_git_commit()}`",
        f"- Command: `{command or '(not recorded)'}`"
        + (f" (one of {shards} processes that split the sample with `--shard K/{shards}`)" if shards > 1 else ""),
        (f"- Model: {run.get('model_name', '?')} (identity `{run.get('model', '?')}`, "
        f"{run.get('resolution', '?')} px) on {run.get('device', '?')}, {run.get('precision', '?')}"),
        (f"- Data: {len(images)} images of `{run.get('data', '?')}`, a seeded random sample "
        f"(seed {run.get('seed', '?')}: the first images of a permutation of the "
        f"{run.get('eligible_images', '?')} validation images whose class the model knows; "
        f"{run.get('skipped_images', 0)} others skipped); the list is in `{SAMPLE_FILE}`. Each image is "
        f"resized to the model resolution; the class is known (the validation label)."),
        (f"- Schedules: each task's {'preset named below' if run.get('presets') else 'default preset for the model'}"
        f"{' (quick variant)' if run.get('quick') else ''}"
        f"{_iteration_scale_note(run.get('iteration_scale', 1.0))}"
        f"; every DGP method uses the same latent-search seed and iteration budget."),
        "",
        "## How the numbers are computed",
        "",
        ("- Images are compared in [0, 1] (uint8 / 255) with **data_range = 1** for PSNR and SSIM "
        "(scikit-image's `structural_similarity` defaults: 7×7 uniform window, sample covariance, "
        "mean over channels). *SSIM, range 2* is the same with data_range = 2, which is what the DGP "
        "reference code effectively computed; only that column is comparable with the paper's SSIM."),
        ("- Inpainting is scored inside the centred square hole only; colorization on the Lab "
        "recomposition (L* of the ground truth, a* b* of the result), with the mean chroma "
        "√(a*² + b*²) of that image beside it; super-resolution and reconstruction on the whole image."),
        ("- Cells are mean ± sample standard deviation over the N images; *s/image* is the wall time of "
        "the whole method per image (latent search included for DGP methods). A result equal to the "
        "ground truth has PSNR = ∞: it is counted beside the mean (\"and k × ∞\"), not averaged in."),
        "",
        "## Methods",
        "",
    ]
    present_methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    lines += [f"- `{m}`: {METHOD_DESCRIPTIONS[m]}" for m in present_methods]

    for task in [t for t in TASKS if any(r["task"] == t for r in results)]:
        task_records = [r for r in results if r["task"] == task]
        methods = [m for m in METHODS if any(r["method"] == m for r in task_records)]
        columns = list(_METRIC_COLUMNS) + ([_CHROMA_COLUMN] if task == "colorize" else [])
        lines += ["", f"## {TASK_SPECS[task].title} (`{task}`)", ""]
        presets = sorted({r["preset"].split(" [")[0] for r in task_records if r.get("preset")})
        if presets:
            lines += [f"Preset: `{', '.join(presets)}`.", ""]
        header = ["method"] + [c[1] for c in columns] + ["N", "s/image"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        notes = []
        for method in methods:
            rows = [r for r in task_records if r["method"] == method]
            cells = [f"`{method}`"]
            for key, _, scale, decimals in columns:
                cells.append(_mean_and_std([r["metrics"][key] for r in rows], scale, decimals))
            cells += [str(len(rows)), f"{np.mean([r['seconds'] for r in rows]):.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
            twins = sorted({r["identical_to"] for r in rows if r.get("identical_to")})
            if twins:
                notes.append(f"`{method}` runs exactly the same schedule as `{', '.join(twins)}` for this "
                             f"preset; its results are copied, not recomputed.")
            failures = [r for r in rows if r.get("note")]
            if failures:
                notes.append(f"`{method}`: {len(failures)} run(s) stopped on a non-finite loss and were "
                             f"scored at the last finite state.")
        generator_psnr = {
            method: [r["metrics_generator"]["psnr"] for r in task_records
                     if r["method"] == method and "metrics_generator" in r]
            for method in methods
        }
        if any(generator_psnr.values()):
            notes.append(
                "Generative results are projected onto the images whose Lanczos downsampling is the "
                "input (the least change that makes them agree with it, as the app does). PSNR of the "
                "generator's own output, before that projection: "
                + ", ".join(f"`{m}` {np.mean(v):.2f}" for m, v in generator_psnr.items() if v) + " dB."
            )
        if task == "colorize":
            truth_chroma = [
                r["metrics"]["chroma_truth"] for r in task_records if "chroma_truth" in r["metrics"]
            ]
            if truth_chroma:
                notes.append(f"Mean chroma of the ground truth: {np.mean(truth_chroma):.2f}.")
        if notes:
            lines += [""] + [f"- {note}" for note in notes]
        lines += _paired_comparison_lines(task_records, methods)
        sheet = _write_sheet(task, task_records, methods, out_path)
        if sheet:
            lines += ["", f"![{task} examples: input, each method, ground truth]({sheet})"]
    path = out_path / REPORT_FILE
    _write_text_atomically(path, "\n".join(lines) + "\n")
    return path


def _write_text_atomically(path: Path, text: str) -> None:
    """Write through :func:`engine.files.write_bytes_atomically` (a fresh temporary name per call)."""
    from engine.files import write_bytes_atomically

    write_bytes_atomically(path, text.encode("utf-8"), overwrite=True)


# --------------------------------------------------------------------------------------
# Command line


def _comma_list(text: str, allowed: Sequence[str], option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item not in allowed:
            raise BadInputError(f"{option}: unknown value {item!r}; choose from {', '.join(allowed)}.")
    if not items:
        raise BadInputError(f"{option} needs at least one value.")
    return items


def _preset_choices(options: Sequence[str]) -> dict[str, str]:
    """``["sr4=NAME", ...]`` → ``{"sr4": "NAME"}``, each task at most once."""
    chosen: dict[str, str] = {}
    for option in options:
        task, separator, name = option.partition("=")
        task, name = task.strip(), name.strip()
        if not separator or not task or not name:
            raise BadInputError(f"--preset {option}: expected TASK=NAME, e.g. sr4=builtin64_sr_mse_biased.")
        if task not in TASKS:
            raise BadInputError(f"--preset {option}: unknown task {task!r}; choose from {', '.join(TASKS)}.")
        if task in chosen:
            raise BadInputError(f"--preset {option}: the task {task} already has a preset ({chosen[task]}).")
        chosen[task] = name
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgp-studio evaluate",
        description="Score DGP, its ablations and simple baselines on a seeded sample of validation images.",
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, type=Path, metavar="VAL.tar",
                        help="tar of WNID/NAME.JPEG images (Tiny ImageNet's val.tar), classes.json beside it")
    parser.add_argument("--classes", type=Path, metavar="classes.json",
                        help="class list (default: the one beside the tar)")
    parser.add_argument("--tasks", default=",".join(TASKS), metavar="LIST",
                        help=f"comma-separated, from {','.join(TASKS)} (default: all)")
    parser.add_argument("--methods", default=",".join(METHODS), metavar="LIST",
                        help=f"comma-separated, from {','.join(METHODS)} (default: all)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help=f"number of images (default {DEFAULT_LIMIT} unless --sample-fraction is given)")
    parser.add_argument("--sample-fraction", type=float, metavar="F",
                        help="fraction of the usable validation images to sample (with --limit: the smaller)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the sample, the latent search and random_g (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="report folder; results.jsonl there is resumed")
    parser.add_argument("--quick", action="store_true", help="the presets' quick variants")
    parser.add_argument("--iteration-scale", type=float, default=1.0, metavar="X",
                        help="multiply every stage's iterations")
    parser.add_argument("--preset", action="append", default=[], metavar="TASK=NAME",
                        help="run TASK with preset NAME instead of the model's default (repeatable), "
                             "e.g. sr4=builtin64_sr_mse_biased")
    parser.add_argument("--shard", metavar="K/N",
                        help="run every N-th image starting with the K-th, so that N processes "
                             "(e.g. one per core, --threads 1) share one --out folder")
    parser.add_argument("--model", default=BUILTIN_MODEL_NAME, metavar="builtin|PATH",
                        help="'builtin' (default), a folder with G and D files, or a generator file "
                             "(then give --discriminator)")
    parser.add_argument("--discriminator", type=Path, metavar="D", help="discriminator file for --model PATH")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    return parser


def _check_arguments(args) -> None:
    """The numeric options' ranges and the --out folder, checked before any model loads."""
    from engine.files import check_output

    if args.limit is not None and not 1 <= args.limit <= 10**7:
        raise BadInputError(f"--limit must be from 1 to 10**7, got {args.limit}.")
    if args.sample_fraction is not None and not 0 < args.sample_fraction <= 1:
        raise BadInputError(f"--sample-fraction must be in (0, 1], got {args.sample_fraction}.")
    if not 0 <= args.seed <= 2**63 - 1:
        raise BadInputError(f"--seed must be from 0 to 2**63-1, got {args.seed}.")
    if not 0 < args.iteration_scale <= 100:
        raise BadInputError(f"--iteration-scale must be in (0, 100], got {args.iteration_scale}.")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise BadInputError(f"--threads must be from 1 to 1024, got {args.threads}.")
    inputs = [("the validation data", args.data), ("the class list", args.classes),
              ("the discriminator checkpoint", args.discriminator)]
    if args.model != BUILTIN_MODEL_NAME:
        inputs.append(("the model", Path(args.model)))
    check_output(args.out, option="--out", inputs=inputs, folder=True, may_exist=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``dgp-studio evaluate``: 0 done, 2 bad input, 130 interrupted (the report covers what is done)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = shlex.join(["dgp-studio", "evaluate", *argv])
    try:
        _check_arguments(args)
        tasks = _comma_list(args.tasks, TASKS, "--tasks")
        methods = _comma_list(args.methods, METHODS, "--methods")
        presets = _preset_choices(args.preset)
        shard = parse_shard(args.shard) if args.shard else None
        if args.threads:
            torch.set_num_threads(int(args.threads))
        if args.model == BUILTIN_MODEL_NAME:
            model = load_model(BUILTIN_MODEL_NAME)
        else:
            model = load_model(Path(args.model), args.discriminator)
        records = run_evaluation(
            model, data=args.data, out_dir=args.out, tasks=tasks, methods=methods, limit=args.limit,
            sample_fraction=args.sample_fraction, seed=args.seed, quick=args.quick,
            iteration_scale=args.iteration_scale, presets=presets, shard=shard, classes_path=args.classes, device=args.device,
            precision=args.precision, command=command,
        )
    except BadInputError as error:
        print(f"dgp-studio evaluate: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dgp-studio evaluate: interrupted; the report in {args.out} covers the finished runs.",
              file=sys.stderr)
        return 130
    print(f"wrote {args.out / REPORT_FILE} ({len(records)} results)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
