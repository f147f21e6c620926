"""Project sessions (``.dgps`` files): a photo with its mask, region, settings, results and morph timeline.

A session file is a zip archive. ``session.json`` says what is in it; the
other members hold the pixels and the result states::

    session.json                    the manifest (format, versions, times, everything below)
    image/original.<ext>            the photo file's own bytes, when embedded (never re-encoded)
    mask.png                        the painted mask, 8-bit grey (255 = missing), if anything is painted
    masks/<digest>.png              the mask each result was made with (equal masks are stored once)
    history/<n>/composite.png       result n at the photo's resolution (what "Save result" writes)
    history/<n>/image.png           result n at the model's resolution
    history/<n>/degraded.png        the degradation applied to result n (what the loss compared)
    history/<n>/target.png          what the model was asked to match
    history/<n>/state.safetensors   result n's :class:`engine.state.GeneratorState`

The photo is either referenced (absolute path and the SHA-256 of the file as
it was opened) or embedded, or both; a photo that never had a file (pasted)
is embedded as PNG. Reopening uses the referenced file when it still has the
same digest and the embedded copy otherwise, with one sentence saying so.

A result's state always keeps its own latent, class and embedding in its
member (a few kilobytes). Its fine-tuned weights (the large part) are

* ``"embedded"``: in the same member, the weight delta stored as the result
  cache stores it (float16, float32 when float16 would overflow), so the file
  travels;
* ``"entry"``: those of an earlier result in the history (a jitter or a class
  transfer shares its parent's weights), stored once;
* ``"cache"``: those of the result cache's entry with ``cache_key``
  (:mod:`engine.cache`), found again on this computer while the cache keeps it.

A result without a state keeps its images; it cannot be edited or morphed.

Every path read from a session is untrusted: member names that are absolute
or contain ``..`` make the whole file refused (zip-slip), and members are only
ever written below a folder the caller chooses, through
:func:`engine.model_store.safe_join`. This module imports neither torch nor
the model code at import time; the functions that need them import them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from engine import __version__ as ENGINE_VERSION
from engine.checksums import sha256_file
from engine.errors import BadInputError
from engine.files import MAX_INPUT_BYTES, atomic_path, check_regular_file, clean_stale_temporaries
from engine.schedule import TASKS

if TYPE_CHECKING:
    from engine.cache import StateCache
    from engine.state import GeneratorState

SESSION_SUFFIX = ".dgps"
SESSION_FORMAT = "dgp-studio-session"
SESSION_FORMAT_VERSION = 1
MANIFEST_NAME = "session.json"
MAX_MANIFEST_BYTES = 16 << 20
MAX_MEMBER_BYTES = 4 << 30       # a BigGAN-512 state in fp32 is about 0.7 GiB
MAX_COMPRESSION_RATIO = 1000     # photos, PNG masks and weights compress far less
MAX_SESSION_BYTES = 64 << 30     # the members' declared sizes together
MAX_SESSION_FILE_BYTES = 64 << 30
MAX_READ_CHUNK = 1 << 20

WEIGHTS_EMBEDDED = "embedded"
WEIGHTS_SHARED = "entry"
WEIGHTS_CACHED = "cache"
_WEIGHT_SOURCES = (WEIGHTS_EMBEDDED, WEIGHTS_SHARED, WEIGHTS_CACHED)

_IMAGE_MEMBER = "image/original"
_MASK_MEMBER = "mask.png"
_KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX_PATTERN = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_PNG_COMPRESSION = 1  # the members are stored, not deflated: PNG is compressed already


# --------------------------------------------------------------------------
# Content


@dataclass(frozen=True, eq=False)  # holds bytes: compared by identity
class SessionImage:
    """The session's photo: a reference to its file, the file's bytes, or both.

    ``path`` is the absolute path it was opened from and ``sha256`` the
    digest of that file's bytes at the time (None for a photo that never had
    a file). ``data`` holds the photo file's bytes when embedded, with
    ``suffix`` its extension (``".jpg"``); they are written to the session
    unchanged.
    """

    name: str
    width: int
    height: int
    path: str | None = None
    sha256: str | None = None
    data: bytes | None = None
    suffix: str = ""


@dataclass(frozen=True)
class TaskSettings:
    """The task panel as the user left it (not only what the chosen task uses)."""

    task: str = "inpaint"
    sr_factor: int = 4
    hybrid_grayscale: bool = True
    hybrid_sr: bool = False
    hybrid_mask: bool = True
    preset: str | None = None  # None: the engine's default preset for the task
    quick: bool = True
    seed: int = 0
    iteration_scale: float = 1.0


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class ResultJob:
    """The request that made a result; its photo is the session's photo.

    ``mask`` is ``(H, W)`` ``uint8`` with 1 = missing, or None when the task used no mask.
    """

    task: str
    roi: tuple[int, int, int] | None   # None: the whole photo
    mask: np.ndarray | None = None
    sr_factor: int | None = None
    grayscale: bool = False
    class_index: int | None = None  # the class asked for; None = the latent search chose
    preset: str | None = None
    quick: bool = True
    seed: int = 0
    iteration_scale: float = 1.0


@dataclass(frozen=True)
class StoredState:
    """Where a result's state is kept in a session file (see the module's notes)."""

    member: str  # the state file in the archive
    weights: str  # "embedded", "entry" or "cache"
    model_identity: str
    weights_entry: int | None = None  # for "entry": the history entry whose weights it shares
    cache_key: str | None = None  # the result cache's key of the restore that made the weights


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class HistoryItem:
    """One result in the history strip.

    For saving, ``state`` is the result's ``GeneratorState`` (None: images
    only) and ``cache_key`` the result cache's key of the restore that made
    it, when the cache holds it. :func:`load_session` fills ``stored_state``
    instead; :func:`load_states` turns it back into a ``GeneratorState``.
    ``job`` is None for a result of another photo than the session's.
    """

    composite: np.ndarray  # (H, W, 3) uint8 at the photo's resolution
    image: np.ndarray  # (R, R, 3) uint8 at the model's resolution
    task: str
    class_index: int | None
    class_name: str
    seconds: float
    cancelled: bool = False
    finished_at: float = 0.0  # seconds since the epoch
    edit: str = ""  # the edit that made it ("jitter σ 0.50 #3"); empty for a restore
    preset: str = ""
    top_classes: tuple[tuple[int, float], ...] = ()
    losses: Mapping[str, float] = field(default_factory=dict)
    steps_done: int = 0
    total_steps: int = 0
    notes: tuple[str, ...] = ()
    degraded: np.ndarray | None = None
    target: np.ndarray | None = None
    job: ResultJob | None = None
    state: GeneratorState | None = None
    cache_key: str | None = None
    stored_state: StoredState | None = None


@dataclass(frozen=True)
class MorphTimeline:
    """The morph timeline: keyframes as history indices in timeline order, one easing per segment."""

    keyframes: tuple[int, ...]
    easing: tuple[str, ...]
    frames: int = 48
    fps: int = 24
    loop: bool = True
    ping_pong: bool = False
    position: float = 0.0  # the playhead, 0 (first keyframe) to 1 (last)


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Session:
    """Everything a session file holds. ``roi`` is ``(left, top, size)`` in photo pixels."""

    image: SessionImage
    roi: tuple[int, int, int]
    settings: TaskSettings = field(default_factory=TaskSettings)
    mask: np.ndarray | None = None  # (H, W) uint8, 1 = missing; None = nothing painted
    class_index: int | None = None  # the class picker's choice; None = Auto
    history: tuple[HistoryItem, ...] = ()
    selected: int | None = None  # the history entry shown
    timeline: MorphTimeline | None = None
    app_version: str = ENGINE_VERSION
    created_at: str = ""  # ISO 8601; empty: now, at the first save
    modified_at: str = ""


@dataclass(frozen=True)
class SavedSession:
    """What :func:`save_session` wrote.

    ``states_in_file`` results reopen editable anywhere; ``states_in_cache``
    only while this computer's result cache keeps their restore;
    ``states_left_out`` results were saved as images only (their state was
    neither embedded nor in the cache). ``created_at`` is the creation time
    written (the session's own, or now for a new one): pass it back in
    ``Session.created_at`` when saving the same session again.
    """

    path: Path
    states_in_file: int
    states_in_cache: int
    states_left_out: int
    created_at: str = ""


@dataclass(frozen=True, eq=False)
class SessionPhoto:
    """The decoded photo of an opened session.

    ``path`` is the original file when it was used (it still has the
    recorded digest), None when the embedded copy was; ``note`` says, in one
    sentence, why the copy was used.
    """

    rgb: np.ndarray
    path: Path | None
    sha256: str | None
    note: str | None = None


@dataclass(frozen=True)
class SessionStates:
    """The history's states (None where unavailable) and one sentence per problem."""

    states: tuple[Any, ...]
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------
# The photo


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(
        buffer, format="PNG", compress_level=_PNG_COMPRESSION
    )
    return buffer.getvalue()


def session_image(
    rgb: np.ndarray,
    *,
    name: str,
    path: str | os.PathLike | None = None,
    sha256: str | None = None,
    embed: bool = False,
) -> tuple[SessionImage, str | None]:
    """Describe the open photo for a session, reading its file when it is to be embedded.

    Parameters
    ----------
    rgb : numpy.ndarray
        The photo as opened, ``(H, W, 3)`` ``uint8``.
    name : str
        What the user knows it as (the file name, "pasted image").
    path, sha256 : optional
        The file it was opened from and the SHA-256 of that file's bytes then.
        Without both, the pixels are embedded as PNG: nothing else could
        bring them back.
    embed : bool
        Also keep the file's bytes in the session, so that it travels.

    Returns
    -------
    (SessionImage, str or None)
        The description and, when the file changed since it was opened (so
        its pixels are embedded as PNG instead of its bytes), one sentence.
    """
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    if path is None or sha256 is None:
        return SessionImage(
            name=name, width=width, height=height, data=_png_bytes(rgb, "RGB"), suffix=".png"
        ), None
    source = Path(path).absolute()
    described = SessionImage(name=name, width=width, height=height, path=str(source), sha256=sha256)
    if not embed:
        return described, None
    try:
        data = source.read_bytes()
    except OSError:
        data = None
    if data is not None and hashlib.sha256(data).hexdigest() == sha256:
        suffix = source.suffix.lower() if _SUFFIX_PATTERN.match(source.suffix) else ".bin"
        return replace(described, data=data, suffix=suffix), None
    note = (
        f"{source} has changed or gone since it was opened, so the session keeps the opened pixels "
        f"as PNG instead of the file."
    )
    return replace(described, data=_png_bytes(rgb, "RGB"), suffix=".png"), note


# --------------------------------------------------------------------------
# Saving


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _delta_dtype(state: GeneratorState) -> Any:
    """float16 as the result cache stores deltas, float32 when float16 would overflow."""
    import torch

    if any(not torch.isfinite(value.to(torch.float16)).all() for value in state.weight_delta.values()):
        return torch.float32
    return torch.float16


def _check_rgb(array: object, what: str) -> np.ndarray:
    if not (
        isinstance(array, np.ndarray) and array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8
    ):
        raise BadInputError(f"session: {what} must be an H x W x 3 uint8 array.")
    return array


def _check_mask(mask: object, image: SessionImage, what: str) -> np.ndarray:
    if not (isinstance(mask, np.ndarray) and mask.shape == (image.height, image.width)):
        raise BadInputError(f"session: {what} must be a {image.height} x {image.width} array like the photo.")
    return mask


def _check_roi(roi: Sequence[int], image: SessionImage, what: str) -> None:
    left, top, size = (int(value) for value in roi)
    if size < 1 or left < 0 or top < 0 or left + size > image.width or top + size > image.height:
        raise BadInputError(
            f"session: {what} ({left}, {top}, {size}) does not fit in the "
            f"{image.width} x {image.height} photo."
        )


def _check_task(task: str, what: str) -> None:
    if task not in TASKS:
        raise BadInputError(f"session: {what} {task!r} is not one of {', '.join(TASKS)}.")


def _check_timeline(timeline: MorphTimeline, history: Sequence[HistoryItem]) -> None:
    from engine.export import EASING_KINDS

    if any(not 0 <= index < len(history) or history[index].state is None for index in timeline.keyframes):
        raise BadInputError("session: every timeline keyframe must be a result in the history with a state.")
    if len(timeline.easing) != max(len(timeline.keyframes) - 1, 0) or any(
        kind not in EASING_KINDS for kind in timeline.easing
    ):
        raise BadInputError(
            f"session: the timeline needs one easing per segment, each one of {', '.join(EASING_KINDS)}."
        )


def _plan_states(history: Sequence[HistoryItem], *, embed_states: bool) -> list[StoredState | None]:
    """How each result's state is stored (see the module's notes); None: images only."""
    plans: list[StoredState | None] = []
    for index, item in enumerate(history):
        state = item.state
        if state is None:
            plans.append(None)
            continue
        member = f"history/{index}/state.safetensors"
        cache_key = item.cache_key if item.cache_key and _KEY_PATTERN.match(item.cache_key) else None
        sharing = next(
            (
                earlier
                for earlier, (other, plan) in enumerate(zip(history, plans))
                if plan is not None
                and other.state is not None
                and other.state.weight_delta is state.weight_delta
            ),
            None,
        )
        if sharing is not None:
            plans.append(StoredState(member, WEIGHTS_SHARED, state.model_identity, sharing, cache_key))
        elif embed_states:
            plans.append(StoredState(member, WEIGHTS_EMBEDDED, state.model_identity, None, cache_key))
        elif cache_key is not None:
            plans.append(StoredState(member, WEIGHTS_CACHED, state.model_identity, None, cache_key))
        else:
            plans.append(None)
    return plans


def _weights_live_in_file(plans: Sequence[StoredState | None], index: int) -> bool:
    plan = plans[index]
    while plan is not None and plan.weights == WEIGHTS_SHARED:
        plan = plans[plan.weights_entry]
    return plan is not None and plan.weights == WEIGHTS_EMBEDDED


def _job_manifest(job: ResultJob, mask_member: str | None) -> dict:
    return {
        "task": job.task,
        "roi": None if job.roi is None else [int(value) for value in job.roi],
        "mask": mask_member,
        "sr_factor": job.sr_factor,
        "grayscale": bool(job.grayscale),
        "class_index": job.class_index,
        "preset": job.preset,
        "quick": bool(job.quick),
        "seed": int(job.seed),
        "iteration_scale": float(job.iteration_scale),
    }


def save_session(
    path: str | os.PathLike, session: Session, *, embed_states: bool, overwrite: bool = False
) -> SavedSession:
    """Write ``session`` to ``path`` as a ``.dgps`` file, atomically.

    Parameters
    ----------
    path : path
        The session file. It is written as a temporary file in the same
        folder and renamed into place, so a crash leaves the old file (or
        none), never half of one.
    session : Session
        What to save; ``session.image.data`` decides whether the photo is
        embedded (see :func:`session_image`).
    embed_states : bool, keyword-only
        Keep every result's fine-tuned weights in the file, so that it is
        editable on any computer. Otherwise a result's weights are referred
        to through the result cache (``HistoryItem.cache_key``) and a result
        the cache does not hold is saved as images only.
    overwrite : bool, keyword-only
        Replace an existing file (the app asked the user already).

    Returns
    -------
    SavedSession
        The path and how many states went where.

    Raises
    ------
    BadInputError
        For content that cannot be saved, ``path`` being the session's own
        photo, an existing file without ``overwrite``, or a folder that
        cannot be written (one sentence naming the file).
    """
    target = Path(path)
    image = session.image
    if image.data is None and (image.path is None or image.sha256 is None):
        raise BadInputError("session: the photo needs either its file's path and digest or its bytes.")
    if image.path is not None:
        try:
            if target.resolve() == Path(image.path).resolve():
                raise BadInputError(f"{target} is the session's photo; save the session under another name.")
        except OSError:
            pass
    if target.exists() and not overwrite:
        raise BadInputError(f"{target} already exists and overwriting was not requested.")
    # What is saved must open again: the checks load_session makes on the content are made here first.
    history = tuple(session.history)
    for index, item in enumerate(history):
        _check_rgb(item.composite, f"result {index + 1}'s composite")
        _check_rgb(item.image, f"result {index + 1}'s image")
        _check_task(item.task, f"result {index + 1}'s task")
        if item.job is not None:
            _check_task(item.job.task, f"the task of result {index + 1}'s request")
            if item.job.roi is not None:  # None: the request covered the whole photo
                _check_roi(item.job.roi, image, f"the region of result {index + 1}'s request")
            if item.job.mask is not None:
                _check_mask(item.job.mask, image, f"the mask of result {index + 1}")
    if session.mask is not None:
        _check_mask(session.mask, image, "the mask")
    _check_roi(session.roi, image, "the region")
    _check_task(session.settings.task, "the task")
    if session.selected is not None and not 0 <= session.selected < len(history):
        raise BadInputError("session: the selected result is not in the history.")
    if session.timeline is not None:
        _check_timeline(session.timeline, history)
    plans = _plan_states(history, embed_states=embed_states)

    members: list[tuple[str, Any]] = []  # (name, its bytes or (a GeneratorState, with its weights?))
    image_manifest = {
        "name": image.name,
        "width": int(image.width),
        "height": int(image.height),
        "path": image.path,
        "sha256": image.sha256,
        "member": None,
    }
    if image.data is not None:
        suffix = image.suffix if _SUFFIX_PATTERN.match(image.suffix or "") else ".bin"
        image_manifest["member"] = f"{_IMAGE_MEMBER}{suffix}"
        members.append((image_manifest["member"], image.data))
    mask_member = None
    if session.mask is not None and np.any(session.mask):
        mask_member = _MASK_MEMBER
        members.append((mask_member, _png_bytes(np.where(session.mask != 0, 255, 0).astype(np.uint8), "L")))

    job_masks: dict[str, str] = {}
    history_manifest = []
    for index, (item, plan) in enumerate(zip(history, plans)):
        folder = f"history/{index}"
        record: dict[str, Any] = {
            "task": item.task,
            "class_index": item.class_index,
            "class_name": item.class_name,
            "seconds": float(item.seconds),
            "cancelled": bool(item.cancelled),
            "finished_at": float(item.finished_at),
            "edit": item.edit,
            "preset": item.preset,
            "top_classes": [[int(index_), float(score)] for index_, score in item.top_classes],
            "losses": {str(name): float(value) for name, value in dict(item.losses).items()},
            "steps_done": int(item.steps_done),
            "total_steps": int(item.total_steps),
            "notes": [str(note) for note in item.notes],
        }
        for role in ("composite", "image", "degraded", "target"):
            array = getattr(item, role)
            if array is None:
                record[role] = None
                continue
            member = f"{folder}/{role}.png"
            members.append((member, _png_bytes(_check_rgb(array, f"result {index + 1}'s {role}"), "RGB")))
            record[role] = member
        record["job"] = None
        if item.job is not None:
            job_mask_member = None
            if item.job.mask is not None:
                packed = np.where(item.job.mask != 0, 255, 0).astype(np.uint8)
                digest = hashlib.sha256(packed.tobytes()).hexdigest()[:16]
                job_mask_member = f"masks/{digest}.png"
                if digest not in job_masks:
                    job_masks[digest] = job_mask_member
                    members.append((job_mask_member, _png_bytes(packed, "L")))
            record["job"] = _job_manifest(item.job, job_mask_member)
        record["state"] = None
        if plan is not None:
            record["state"] = {
                "member": plan.member,
                "weights": plan.weights,
                "weights_entry": plan.weights_entry,
                "cache_key": plan.cache_key,
                "model_identity": plan.model_identity,
            }
            members.append((plan.member, (item.state, plan.weights == WEIGHTS_EMBEDDED)))
        history_manifest.append(record)

    timeline = None
    if session.timeline is not None:
        line = session.timeline
        # A keyframe whose state is left out could not be morphed after reopening: it is dropped,
        # and each remaining segment keeps the easing of the segment it starts with.
        kept = [(order, int(index)) for order, index in enumerate(line.keyframes) if plans[index] is not None]
        easing = [line.easing[order] if order < len(line.easing) else "linear" for order, _ in kept[:-1]]
        timeline = {
            "keyframes": [index for _, index in kept],
            "easing": easing,
            "frames": int(line.frames),
            "fps": int(line.fps),
            "loop": bool(line.loop),
            "ping_pong": bool(line.ping_pong),
            "position": float(line.position),
        }
    settings = session.settings
    now = _now()
    manifest = {
        "format": SESSION_FORMAT,
        "version": SESSION_FORMAT_VERSION,
        "app_version": session.app_version or ENGINE_VERSION,
        "created_at": session.created_at or now,
        "modified_at": now,
        "image": image_manifest,
        "mask": mask_member,
        "roi": [int(value) for value in session.roi],
        "settings": {
            "task": settings.task,
            "sr_factor": int(settings.sr_factor),
            "hybrid_grayscale": bool(settings.hybrid_grayscale),
            "hybrid_sr": bool(settings.hybrid_sr),
            "hybrid_mask": bool(settings.hybrid_mask),
            "preset": settings.preset,
            "quick": bool(settings.quick),
            "seed": int(settings.seed),
            "iteration_scale": float(settings.iteration_scale),
        },
        "class_index": session.class_index,
        "history": history_manifest,
        "selected": session.selected,
        "timeline": timeline,
    }

    clean_stale_temporaries(target.parent if str(target.parent) else Path("."))
    with atomic_path(target, overwrite=overwrite) as temporary, zipfile.ZipFile(
        temporary, "w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        archive.writestr(
            MANIFEST_NAME,
            json.dumps(manifest, indent=1, ensure_ascii=False),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        with tempfile.TemporaryDirectory(prefix="dgps-states-") as scratch:
            for name, content in members:
                if isinstance(content, bytes):
                    archive.writestr(name, content)
                    continue
                state, with_weights = content
                state_file = Path(scratch) / "state.safetensors"
                if with_weights:
                    state.save(state_file, delta_dtype=_delta_dtype(state))
                else:
                    replace(state, weight_delta={}).save(state_file)
                archive.write(state_file, name)
    in_file = sum(1 for index in range(len(plans)) if _weights_live_in_file(plans, index))
    with_state = sum(1 for item in history if item.state is not None)
    left_out = sum(1 for item, plan in zip(history, plans) if item.state is not None and plan is None)
    return SavedSession(
        path=target,
        states_in_file=in_file,
        states_in_cache=with_state - left_out - in_file,
        states_left_out=left_out,
        created_at=manifest["created_at"],
    )


# --------------------------------------------------------------------------
# Loading


class _Malformed(Exception):
    """A problem with the manifest, worded as the end of a sentence about the file."""


def _unsafe_member_name(name: str) -> bool:
    if not name or "\x00" in name or name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return True
    return ".." in re.split(r"[\\/]+", name)


def _typed(value: object, kinds: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise _Malformed(f"{where} is missing or has the wrong type")
    if not isinstance(value, kinds):
        raise _Malformed(f"{where} is missing or has the wrong type")
    return value


def _number(value: object, where: str) -> float:
    return float(_typed(value, (int, float), where))


def _whole(value: object, where: str, *, minimum: int | None = None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    number = _typed(value, int, where)
    if minimum is not None and number < minimum:
        raise _Malformed(f"{where} is {number}, below {minimum}")
    return int(number)


def _text(value: object, where: str, *, optional: bool = False) -> str | None:
    return _typed(value, str, where, optional=optional)


def _section(value: object, where: str) -> dict:
    return _typed(value, dict, where)


class _Archive:
    """The open zip archive of a session being read: members by name, decoded on request."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.names: set[str] = set()
        declared = sum(info.file_size for info in archive.infolist())
        if declared > MAX_SESSION_BYTES:
            raise BadInputError(
                f"{path}: its members would unpack to {declared / 2**30:.1f} GiB together, more than any "
                f"session holds ({MAX_SESSION_BYTES >> 30} GiB)."
            )
        for info in archive.infolist():
            if _unsafe_member_name(info.filename):
                raise BadInputError(
                    f"{path}: the archive member {info.filename!r} has an absolute path or '..' in its name, "
                    f"so the session is refused."
                )
            if info.filename in self.names:
                raise BadInputError(
                    f"{path}: the archive holds {info.filename!r} twice, so the session is refused."
                )
            _check_member_size(path, info)
            self.names.add(info.filename)

    def member(self, name: str, where: str) -> str:
        if not isinstance(name, str) or name not in self.names:
            raise _Malformed(f"{where} names the member {name!r}, which the archive lacks")
        return name

    def open(self, name: str, cap: int) -> _CappedMember:
        """The member as a stream that refuses to go past its declared size or ``cap`` bytes."""
        return _CappedMember(self.path, self.archive.getinfo(name), self.archive.open(name), cap)

    def read(self, name: str, *, cap: int) -> bytes:
        """The member's bytes, read in chunks with a running size cap (never more than ``cap``)."""
        parts: list[bytes] = []
        with self.open(name, cap) as stream:
            while chunk := stream.read(MAX_READ_CHUNK):
                parts.append(chunk)
        return b"".join(parts)

    def image(self, name: str, where: str, *, mode: str) -> np.ndarray:
        """Decode a PNG member straight from the archive: only what the decoder asks for is read.

        The pixel count is checked from the PNG header against the
        megapixel limit before anything is decoded, so a member can force at
        most one image of the limit's size into memory, whatever it declares.
        """
        from engine.imageio import max_megapixels

        member = self.member(name, where)
        limit_pixels = int(max_megapixels() * 1_000_000)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with self.open(member, MAX_INPUT_BYTES) as stream, Image.open(stream, formats=["PNG"]) as opened:
                    if opened.width * opened.height > limit_pixels:
                        raise _Malformed(f"{where} has more pixels than the limit of {limit_pixels // 10**6} MP")
                    opened.load()
                    if opened.mode != mode:
                        raise _Malformed(f"{where} is a {opened.mode} image, not {mode}")
                    return np.array(opened, dtype=np.uint8)
            except (
                OSError,
                SyntaxError,
                ValueError,
                Image.DecompressionBombWarning,
                Image.DecompressionBombError,
            ) as error:
                raise _Malformed(f"{where} is not a readable PNG image ({error})") from None


class _CappedMember(io.RawIOBase):
    """A zip member's stream with a running size cap: reading past the declared size or the cap raises."""

    def __init__(self, path: Path, info: zipfile.ZipInfo, stream: io.BufferedIOBase, cap: int) -> None:
        super().__init__()
        self.path, self.info, self.stream, self.cap = path, info, stream, cap
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.stream.seek(offset, whence)
        return self.position

    def readinto(self, buffer) -> int:
        # Never ask for more than one byte past what is allowed, so a huge read cannot allocate.
        allowed = min(self.info.file_size, self.cap) - self.position + 1
        data = self.stream.read(max(0, min(len(buffer), allowed)))
        self.position += len(data)
        if self.position > self.info.file_size:
            raise _Malformed(
                f"the member {self.info.filename} holds more than the {self.info.file_size} bytes its header "
                "declares"
            )
        if self.position > self.cap:
            raise _Malformed(f"the member {self.info.filename} is larger than the {self.cap >> 20} MiB allowed")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def _read_rgb(archive: _Archive, name: object, where: str, *, optional: bool = False) -> np.ndarray | None:
    if name is None and optional:
        return None
    return archive.image(_text(name, where), where, mode="RGB")


def _read_mask(archive: _Archive, name: object, where: str, shape: tuple[int, int]) -> np.ndarray | None:
    if name is None:
        return None
    grey = archive.image(_text(name, where), where, mode="L")
    if grey.shape != shape:
        raise _Malformed(
            f"{where} is {grey.shape[1]} x {grey.shape[0]} pixels, not {shape[1]} x {shape[0]} like the photo"
        )
    return (grey >= 128).astype(np.uint8)


def _read_roi(value: object, where: str, width: int, height: int) -> tuple[int, int, int]:
    values = _typed(value, list, where)
    if len(values) != 3:
        raise _Malformed(f"{where} must be [left, top, size]")
    left, top, size = (_whole(item, where, minimum=0) for item in values)
    if size < 1 or left + size > width or top + size > height:
        raise _Malformed(f"{where} ({left}, {top}, {size}) does not fit in the {width} x {height} photo")
    return left, top, size


def _read_task(value: object, where: str) -> str:
    task = _text(value, where)
    if task not in TASKS:
        raise _Malformed(f"{where} is {task!r}, not one of {', '.join(TASKS)}")
    return task


def _read_image(archive: _Archive, section: object) -> SessionImage:
    image = _section(section, "the image section")
    width = _whole(image.get("width"), "the image width", minimum=1)
    height = _whole(image.get("height"), "the image height", minimum=1)
    path = _text(image.get("path"), "the image path", optional=True)
    if path is not None and not (Path(path).is_absolute() or PureWindowsPath(path).is_absolute()):
        raise _Malformed(f"the image path {path!r} is not absolute")
    sha256 = _text(image.get("sha256"), "the image digest", optional=True)
    if sha256 is not None and not _DIGEST_PATTERN.match(sha256):
        raise _Malformed("the image digest is not a SHA-256 in hexadecimal")
    member = _text(image.get("member"), "the embedded image", optional=True)
    data, suffix = None, ""
    if member is not None:
        suffix = member[len(_IMAGE_MEMBER) :]
        if not member.startswith(_IMAGE_MEMBER) or not _SUFFIX_PATTERN.match(suffix):
            raise _Malformed(f"the embedded image is called {member!r}, not {_IMAGE_MEMBER}.<extension>")
        data = archive.read(archive.member(member, "the embedded image"), cap=MAX_INPUT_BYTES)
    if data is None and (path is None or sha256 is None):
        raise _Malformed("the photo is neither embedded nor referenced by path and digest")
    return SessionImage(
        name=_text(image.get("name"), "the image name"),
        width=width,
        height=height,
        path=path,
        sha256=sha256,
        data=data,
        suffix=suffix,
    )


def _read_settings(section: object) -> TaskSettings:
    settings = _section(section, "the settings section")
    return TaskSettings(
        task=_read_task(settings.get("task"), "the task"),
        sr_factor=_whole(settings.get("sr_factor"), "the super-resolution factor", minimum=1),
        hybrid_grayscale=_typed(settings.get("hybrid_grayscale"), bool, "the hybrid grayscale switch"),
        hybrid_sr=_typed(settings.get("hybrid_sr"), bool, "the hybrid low-resolution switch"),
        hybrid_mask=_typed(settings.get("hybrid_mask"), bool, "the hybrid mask switch"),
        preset=_text(settings.get("preset"), "the preset", optional=True),
        quick=_typed(settings.get("quick"), bool, "the quick-mode switch"),
        seed=_whole(settings.get("seed"), "the seed", minimum=0),
        iteration_scale=_number(settings.get("iteration_scale"), "the iteration scale"),
    )


def _read_job(archive: _Archive, section: object, where: str, image: SessionImage) -> ResultJob | None:
    if section is None:
        return None
    job = _section(section, where)
    return ResultJob(
        task=_read_task(job.get("task"), f"{where}'s task"),
        roi=None if job.get("roi") is None else _read_roi(
            job.get("roi"), f"{where}'s region", image.width, image.height
        ),
        mask=_read_mask(archive, job.get("mask"), f"{where}'s mask", (image.height, image.width)),
        sr_factor=_whole(job.get("sr_factor"), f"{where}'s factor", minimum=1, optional=True),
        grayscale=_typed(job.get("grayscale"), bool, f"{where}'s grayscale switch"),
        class_index=_whole(job.get("class_index"), f"{where}'s class", minimum=0, optional=True),
        preset=_text(job.get("preset"), f"{where}'s preset", optional=True),
        quick=_typed(job.get("quick"), bool, f"{where}'s quick-mode switch"),
        seed=_whole(job.get("seed"), f"{where}'s seed", minimum=0),
        iteration_scale=_number(job.get("iteration_scale"), f"{where}'s iteration scale"),
    )


def _read_stored_state(
    archive: _Archive, section: object, where: str, index: int, earlier: list
) -> StoredState | None:
    if section is None:
        return None
    stored = _section(section, where)
    weights = _text(stored.get("weights"), f"{where}'s weights")
    if weights not in _WEIGHT_SOURCES:
        raise _Malformed(f"{where}'s weights are {weights!r}, not one of {', '.join(_WEIGHT_SOURCES)}")
    weights_entry = _whole(stored.get("weights_entry"), f"{where}'s weights entry", minimum=0, optional=True)
    cache_key = _text(stored.get("cache_key"), f"{where}'s cache key", optional=True)
    if cache_key is not None and not _KEY_PATTERN.match(cache_key):
        raise _Malformed(f"{where}'s cache key is not 64 hexadecimal digits")
    if weights == WEIGHTS_SHARED and (
        weights_entry is None or weights_entry >= index or earlier[weights_entry].stored_state is None
    ):
        raise _Malformed(f"{where} shares the weights of an entry that is not an earlier result with a state")
    if weights == WEIGHTS_CACHED and cache_key is None:
        raise _Malformed(f"{where} refers to the result cache without a key")
    return StoredState(
        member=archive.member(_text(stored.get("member"), f"{where}'s member"), f"{where}'s member"),
        weights=weights,
        model_identity=_text(stored.get("model_identity"), f"{where}'s model identity"),
        weights_entry=weights_entry,
        cache_key=cache_key,
    )


def _read_history_item(
    archive: _Archive, section: object, index: int, image: SessionImage, earlier: list
) -> HistoryItem:
    where = f"history entry {index + 1}"
    item = _section(section, where)
    top_classes = []
    for pair in _typed(item.get("top_classes", []), list, f"{where}'s top classes"):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _Malformed(f"{where}'s top classes must be [class, score] pairs")
        top_classes.append(
            (_whole(pair[0], f"{where}'s top classes", minimum=0), _number(pair[1], f"{where}'s top classes"))
        )
    losses = {
        _text(name, f"{where}'s losses"): _number(value, f"{where}'s losses")
        for name, value in _section(item.get("losses", {}), f"{where}'s losses").items()
    }
    return HistoryItem(
        composite=_read_rgb(archive, item.get("composite"), f"{where}'s composite"),
        image=_read_rgb(archive, item.get("image"), f"{where}'s image"),
        task=_read_task(item.get("task"), f"{where}'s task"),
        class_index=_whole(item.get("class_index"), f"{where}'s class", minimum=0, optional=True),
        class_name=_text(item.get("class_name"), f"{where}'s class name"),
        seconds=_number(item.get("seconds"), f"{where}'s duration"),
        cancelled=_typed(item.get("cancelled"), bool, f"{where}'s stopped flag"),
        finished_at=_number(item.get("finished_at"), f"{where}'s time"),
        edit=_text(item.get("edit", ""), f"{where}'s edit"),
        preset=_text(item.get("preset", ""), f"{where}'s preset"),
        top_classes=tuple(top_classes),
        losses=losses,
        steps_done=_whole(item.get("steps_done", 0), f"{where}'s steps", minimum=0),
        total_steps=_whole(item.get("total_steps", 0), f"{where}'s steps", minimum=0),
        notes=tuple(
            _text(note, f"{where}'s notes")
            for note in _typed(item.get("notes", []), list, f"{where}'s notes")
        ),
        degraded=_read_rgb(archive, item.get("degraded"), f"{where}'s degraded image", optional=True),
        target=_read_rgb(archive, item.get("target"), f"{where}'s target", optional=True),
        job=_read_job(archive, item.get("job"), f"{where}'s request", image),
        stored_state=_read_stored_state(archive, item.get("state"), f"{where}'s state", index, earlier),
    )


def _read_timeline(section: object, history: Sequence[HistoryItem]) -> MorphTimeline | None:
    if section is None:
        return None
    from engine.export import EASING_KINDS

    timeline = _section(section, "the timeline")
    keyframes = tuple(
        _whole(value, "a timeline keyframe", minimum=0)
        for value in _typed(timeline.get("keyframes"), list, "the keyframes")
    )
    for index in keyframes:
        if index >= len(history) or history[index].stored_state is None:
            raise _Malformed(f"timeline keyframe {index + 1} is not a result with a state")
    easing = tuple(
        _text(kind, "a timeline easing") for kind in _typed(timeline.get("easing"), list, "the easing")
    )
    if len(easing) != max(len(keyframes) - 1, 0) or any(kind not in EASING_KINDS for kind in easing):
        raise _Malformed(f"the timeline's easing must be one of {', '.join(EASING_KINDS)} per segment")
    position = _number(timeline.get("position", 0.0), "the playhead")
    if not 0.0 <= position <= 1.0:
        raise _Malformed("the playhead lies outside the timeline")
    return MorphTimeline(
        keyframes=keyframes,
        easing=easing,
        frames=_whole(timeline.get("frames"), "the frame count", minimum=2),
        fps=_whole(timeline.get("fps"), "the frame rate", minimum=1),
        loop=_typed(timeline.get("loop"), bool, "the loop switch"),
        ping_pong=_typed(timeline.get("ping_pong"), bool, "the ping-pong switch"),
        position=position,
    )


def _read_manifest(archive: _Archive) -> dict:
    if MANIFEST_NAME not in archive.names:
        raise BadInputError(f"{archive.path} is not a dgp-studio session ({MANIFEST_NAME} is missing).")
    if archive.archive.getinfo(MANIFEST_NAME).file_size > MAX_MANIFEST_BYTES:
        raise BadInputError(
            f"{archive.path}: {MANIFEST_NAME} is implausibly large, so the session is refused."
        )
    try:
        manifest = json.loads(archive.read(MANIFEST_NAME, cap=MAX_MANIFEST_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{archive.path}: {MANIFEST_NAME} is not valid JSON ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SESSION_FORMAT:
        raise BadInputError(f"{archive.path} is not a dgp-studio session.")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadInputError(f"{archive.path}: the session's format version {version!r} is unknown.")
    if version > SESSION_FORMAT_VERSION:
        raise BadInputError(
            f"{archive.path} was written by a newer dgp-studio (session format {version}, this one reads "
            f"up to {SESSION_FORMAT_VERSION}); update dgp-studio to open it."
        )
    return manifest


def load_session(path: str | os.PathLike) -> Session:
    """Read and check a ``.dgps`` file (the states stay in it: see :func:`load_states`).

    Returns
    -------
    Session
        With the photo's bytes when embedded, every mask and image decoded,
        and ``HistoryItem.stored_state`` saying where each state is.

    Raises
    ------
    BadInputError
        One sentence naming the file, for: a missing file; a file that is not
        a zip archive or is truncated or corrupt (a member fails its CRC); a
        member name that is absolute or contains ``..``, or appears twice; a
        missing or malformed ``session.json``; a session written by a newer
        format version; a member the manifest names that the archive lacks
        or that does not decode as expected.
    """
    source = Path(path)
    check_regular_file(source, what="session file", max_bytes=MAX_SESSION_FILE_BYTES)
    try:
        with zipfile.ZipFile(source) as opened:
            archive = _Archive(source, opened)
            manifest = _read_manifest(archive)
            image = _read_image(archive, manifest.get("image"))
            history: list[HistoryItem] = []
            for index, item in enumerate(_typed(manifest.get("history", []), list, "the history")):
                history.append(_read_history_item(archive, item, index, image, history))
            selected = _whole(manifest.get("selected"), "the selected result", minimum=0, optional=True)
            if selected is not None and selected >= len(history):
                raise _Malformed("the selected result is not in the history")
            return Session(
                image=image,
                roi=_read_roi(manifest.get("roi"), "the region", image.width, image.height),
                settings=_read_settings(manifest.get("settings")),
                mask=_read_mask(archive, manifest.get("mask"), "the mask", (image.height, image.width)),
                class_index=_whole(manifest.get("class_index"), "the class", minimum=0, optional=True),
                history=tuple(history),
                selected=selected,
                timeline=_read_timeline(manifest.get("timeline"), history),
                app_version=_text(manifest.get("app_version", ""), "the app version"),
                created_at=_text(manifest.get("created_at", ""), "the creation time"),
                modified_at=_text(manifest.get("modified_at", ""), "the modification time"),
            )
    except _Malformed as problem:
        raise BadInputError(f"{source}: {problem}, so the session cannot be opened.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise BadInputError(
            f"{source} is not a dgp-studio session or is truncated or corrupt ({error})."
        ) from None
    except OSError as error:
        raise BadInputError(f"{source} cannot be read ({error.strerror or error}).") from None


def _destination(folder: Path, member: str) -> Path:
    """Where ``member`` goes below ``folder``; an absolute name or one with ``..`` is refused."""
    from engine.model_store import safe_join

    return safe_join(folder, member)


def _check_member_size(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a member that would unpack to an absurd size (a "zip bomb")."""
    if info.file_size > MAX_MEMBER_BYTES:
        raise BadInputError(
            f"{path}: the member {info.filename} would unpack to {info.file_size / 2**30:.1f} GiB, "
            f"more than any session holds ({MAX_MEMBER_BYTES >> 30} GiB)."
        )
    if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
        raise BadInputError(
            f"{path}: the member {info.filename} is compressed {info.file_size // max(info.compress_size, 1)}:1, "
            "which no photo, mask or state reaches; the file is refused."
        )


def _extract(path: Path, member: str, destination: Path) -> Path:
    """Copy one member of the archive at ``path`` to ``destination`` (from :func:`_destination`)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_member_size(path, archive.getinfo(member))
            info = archive.getinfo(member)
            with _CappedMember(path, info, archive.open(member), MAX_MEMBER_BYTES) as source, open(
                destination, "wb"
            ) as copy:
                while chunk := source.read(MAX_READ_CHUNK):
                    copy.write(chunk)
    except _Malformed as problem:
        destination.unlink(missing_ok=True)
        raise BadInputError(f"{path}: {problem}, so the session cannot be opened.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as error:
        destination.unlink(missing_ok=True)
        raise BadInputError(f"{path}: the member {member} is corrupt or missing ({error}).") from None
    except OSError as error:
        destination.unlink(missing_ok=True)
        raise BadInputError(f"{destination} cannot be written ({error.strerror or error}).") from None
    return destination


def load_session_photo(path: str | os.PathLike, session: Session, folder: str | os.PathLike) -> SessionPhoto:
    """Decode the session's photo: the original file if it is unchanged, else the embedded copy.

    Parameters
    ----------
    path : path
        The session file (named in messages).
    session : Session
        From :func:`load_session`.
    folder : path
        An existing folder the embedded copy may be written into for
        decoding; nothing is written anywhere else.

    Raises
    ------
    BadInputError
        When the original has moved or changed and the session holds no
        copy, or the photo does not decode to the recorded size.
    """
    from engine.imageio import load_image

    source = Path(path)
    image = session.image
    note = None
    if image.path is not None:
        original = Path(image.path)
        if original.is_file() and image.sha256 is not None and sha256_file(original) == image.sha256:
            loaded = load_image(original)
            if loaded.size == (image.width, image.height):
                return SessionPhoto(rgb=loaded.rgb, path=original, sha256=image.sha256)
        if image.data is None:
            raise BadInputError(
                f"{source}: its photo {original} has moved or changed since the session was saved, "
                f"and the session holds no copy of it."
            )
        note = (
            f"{original} has moved or changed since the session was saved, so the copy of the photo "
            f"inside {source.name} is used."
        )
    member = f"{_IMAGE_MEMBER}{image.suffix}"
    copy = _extract(source, member, _destination(Path(folder), member))
    try:
        loaded = load_image(copy)
    except BadInputError as error:
        raise BadInputError(f"{source}: the photo embedded in it cannot be decoded ({error}).") from None
    if loaded.size != (image.width, image.height):
        raise BadInputError(
            f"{source}: the photo embedded in it is {loaded.width} x {loaded.height} pixels, "
            f"not {image.width} x {image.height} as recorded."
        )
    return SessionPhoto(
        rgb=loaded.rgb, path=None, sha256=loaded.sha256 if image.path is None else None, note=note
    )


def load_states(
    path: str | os.PathLike, session: Session, folder: str | os.PathLike, *, cache: StateCache | None = None
) -> SessionStates:
    """Rebuild the history's ``GeneratorState`` objects from the file and the result cache.

    Parameters
    ----------
    path : path
        The session file.
    session : Session
        From :func:`load_session`.
    folder : path
        An existing folder the state members are copied into to be read
        (through :func:`engine.model_store.safe_join`); nothing is written
        anywhere else. The caller removes it afterwards.
    cache : StateCache, optional
        The result cache that ``"cache"`` weights are looked up in.

    Returns
    -------
    SessionStates
        One state or None per history entry, in order; results that share
        weights share the same ``weight_delta`` dict, as before saving.
        ``notes`` says in one sentence each how many results came back
        without a state and why.
    """
    import torch

    from engine.state import GeneratorState

    source = Path(path)
    states: list[GeneratorState | None] = []
    not_kept = unreadable = 0
    for item in session.history:
        stored = item.stored_state
        if stored is None:
            states.append(None)
            continue
        destination = _destination(Path(folder), stored.member)
        try:
            own = GeneratorState.load(_extract(source, stored.member, destination))
        except BadInputError:
            unreadable += 1
            states.append(None)
            continue
        state = None
        if stored.weights == WEIGHTS_EMBEDDED:
            state = own
        elif stored.weights == WEIGHTS_SHARED:
            parent = states[stored.weights_entry]
            if parent is not None and parent.model_identity == own.model_identity:
                state = replace(own, weight_delta=parent.weight_delta)
        elif cache is not None:
            entry = cache.get(stored.cache_key)
            # Run again replaces an entry: only the very restore that was saved will do.
            if (
                entry is not None
                and entry.state.model_identity == own.model_identity
                and entry.state.z.shape == own.z.shape
                and torch.equal(entry.state.z, own.z)
            ):
                state = replace(own, weight_delta=entry.state.weight_delta)
        if state is None:
            not_kept += 1
        states.append(state)
    notes = []
    total = len(session.history)
    missing = sum(1 for item in session.history if item.stored_state is None)
    if not_kept + missing:
        notes.append(
            f"{not_kept + missing} of {total} results in {source.name} came back without their model state "
            f"(not embedded, and not in this computer's result cache), so they show their images but cannot "
            f"be edited or morphed."
        )
    if unreadable:
        notes.append(
            f"{unreadable} of {total} result states in {source.name} are unreadable and were left out."
        )
    return SessionStates(states=tuple(states), notes=tuple(notes))
