"""Instant edits of results on the engine thread: jitter, category transfer, morph frames, export.

Nothing here optimises: every job is forward passes of the fine-tuned
generator a result left behind (its ``GeneratorState``). :class:`StudioWorker`
lives on the same ``QThread`` as :class:`dgp_studio.worker.EngineWorker` and
uses its engine; :class:`StudioController` is its GUI-side face.

Two kinds of work (house style §2b, the Mandelbrot example's coalescing):

* **Previews** driven by sliders and pickers (a jitter grid, one class
  transfer, a category gallery, a scrubbed timeline position) are posted to a
  one-slot box per kind: a newer request replaces one not yet started, so the
  engine thread only ever renders the latest position the user asked for.
* **Jobs** (rendering a timeline's frames, exporting an animation, keeping an
  edit as a result, saving a contact sheet) run in order. Frame rendering
  serves pending previews between frames, so scrubbing stays live while the
  preview frames are rendered; frames and exports stop cooperatively through
  a ``threading.Event``.

Like :mod:`dgp_studio.worker`, this module imports neither torch nor the
engine at top level; the request dataclasses only *hold* engine objects
(``GeneratorState``, ``RestoreResult``) that the GUI never looks inside.
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from dgp_studio.worker import EngineController, EngineWorker, RestoreJob, error_sentence

LOG = logging.getLogger(__name__)

RENDER_BATCH_SIZE = 16  # jitter variations and gallery classes per forward pass
FRAME_BATCH_SIZE = 8  # timeline frames sent to the GUI per notification
EASINGS = ("linear", "ease-in-out", "ease-in", "ease-out")


# ------------------------------------------------------------------ requests


@dataclass(frozen=True, eq=False)
class JitterRequest:
    """``count`` variations G*(z* + sigma·eps, e*) of ``state`` (a ``GeneratorState``)."""

    request_id: int
    state: Any
    sigma: float
    count: int
    seed: int


@dataclass(frozen=True, eq=False)
class TransferRequest:
    """``state`` rendered with class ``class_index``'s embedding."""

    request_id: int
    state: Any
    class_index: int


@dataclass(frozen=True, eq=False)
class GalleryRequest:
    """``state`` transferred to each of ``classes``, streamed in batches."""

    request_id: int
    state: Any
    classes: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class ScrubRequest:
    """One timeline position: segment ``segment`` (keyframe i → i+1) at ``lam`` in [0, 1]."""

    request_id: int
    keyframes: tuple[Any, ...]
    segment: int
    lam: float


@dataclass(frozen=True, eq=False)
class KeyframesRequest:
    """Each keyframe's state rendered as the morph renders its ends (``engine.render``)."""

    request_id: int
    keyframes: tuple[Any, ...]


@dataclass(frozen=True)
class AnimationSettings:
    """The GUI's copy of ``engine.export.AnimationOptions`` (which imports torch).

    ``size`` is the side of the output in pixels, None = the model's resolution.
    """

    fps: float = 24.0
    loop: bool = True
    ping_pong: bool = False
    size: int | None = None
    crf: int = 18
    quality: int = 90


@dataclass(frozen=True, eq=False)
class FramesRequest:
    """Render a timeline's ``frames`` frames (evenly spaced in time, eased per segment)."""

    request_id: int
    keyframes: tuple[Any, ...]
    frames: int
    easing: tuple[str, ...]  # one per segment
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, eq=False)
class ExportRequest:
    """Write a timeline as an animation; ``rendered`` reuses frames already rendered for it."""

    request_id: int
    keyframes: tuple[Any, ...]
    frames: int
    easing: tuple[str, ...]
    path: Path
    settings: AnimationSettings
    overwrite: bool = False
    rendered: tuple[np.ndarray, ...] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, eq=False)
class KeepRequest:
    """Turn an edited state into a result of its own (re-composited into ``job``'s photo).

    With ``class_index`` the state is first moved to that class (category transfer).
    """

    request_id: int
    parent: Any  # RestoreResult
    state: Any  # GeneratorState
    job: RestoreJob | None
    class_index: int | None = None


@dataclass(frozen=True, eq=False)
class SheetRequest:
    """Write images as one contact sheet."""

    request_id: int
    images: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    path: Path
    columns: int
    overwrite: bool = True


PreviewRequest = JitterRequest | TransferRequest | GalleryRequest | ScrubRequest | KeyframesRequest
# Served first to last: a scrub is what the user is looking at while dragging.
_PREVIEW_ORDER: tuple[type, ...] = (
    ScrubRequest, KeyframesRequest, TransferRequest, JitterRequest, GalleryRequest,
)


def timeline_position(position: float, keyframe_count: int, easing: Sequence[str]) -> tuple[int, float]:
    """Map a playhead position to a segment and its eased interpolation weight.

    Mirrors ``engine.export.timeline_lambdas`` for a continuous position (that
    module imports torch, so the GUI cannot use it).

    Parameters
    ----------
    position : float
        Time along the whole timeline in [0, 1] (0 = first keyframe, 1 = last).
    keyframe_count : int
        K ≥ 2 keyframes: K − 1 segments of equal duration.
    easing : sequence of str
        One easing kind per segment (see :func:`ease`).

    Returns
    -------
    (int, float)
        Segment index in [0, K − 2] and lambda in [0, 1] (0 = the segment's first keyframe);
        an inner keyframe is reported as the start of the next segment, the end as ``(K - 2, 1.0)``.
    """
    if keyframe_count < 2:
        raise ValueError(f"a timeline needs at least 2 keyframes, got {keyframe_count}")
    segments = keyframe_count - 1
    if len(easing) != segments:
        raise ValueError(f"{len(easing)} easing kinds for {segments} segments")
    scaled = min(max(float(position), 0.0), 1.0) * segments
    segment = min(int(scaled), segments - 1)
    local = min(scaled - segment, 1.0)
    from engine.export import ease  # numpy/PIL/PyAV only: no torch on the GUI thread

    return segment, ease(local, easing[segment])


# ------------------------------------------------------------------- worker


class StudioWorker(QObject):
    """Renders edits on the engine thread; use it through :class:`StudioController`.

    Signals
    -------
    jitterReady(int, object, object)
        Request id, the images (list of ``(R, R, 3)`` uint8) and their states.
    transferReady(int, int, object)
        Request id, class index and the image.
    galleryBatch(int, int, object)
        Request id, index of the batch's first class in the request, the images.
    galleryDone(int)
        The gallery with this request id is complete.
    scrubReady(int, object)
        Request id and the image at that timeline position.
    keyframesReady(int, object)
        Request id and each keyframe's image (list of ``(R, R, 3)`` uint8), the
        same pixels as the morph's frames at the keyframes.
    framesBatch(int, int, object)
        Request id, index of the first frame, the frames.
    framesDone(int, bool)
        Request id, and whether every frame was rendered (False: stopped or failed).
    kept(int, object)
        Request id and the new ``RestoreResult``.
    exportProgress(int, int, int, str)
        Request id, frames written, frames in all (0 while unknown), what is happening.
    exportEnded(int, object)
        Request id and the written path as str, or None when cancelled or failed.
    sheetSaved(int, str)
        Request id and the sheet's path.
    failed(int, str, str)
        Request id, one sentence for the user and the details.
    """

    jitterReady = Signal(int, object, object)
    transferReady = Signal(int, int, object)
    galleryBatch = Signal(int, int, object)
    galleryDone = Signal(int)
    scrubReady = Signal(int, object)
    keyframesReady = Signal(int, object)
    framesBatch = Signal(int, int, object)
    framesDone = Signal(int, bool)
    kept = Signal(int, object)
    exportProgress = Signal(int, int, int, str)
    exportEnded = Signal(int, object)
    sheetSaved = Signal(int, str)
    failed = Signal(int, str, str)

    def __init__(self, engine_worker: EngineWorker) -> None:
        super().__init__()
        self._engine_worker = engine_worker
        self._pending: dict[type, PreviewRequest] = {}
        self._lock = threading.Lock()
        self._morpher: Any = None  # one engine.api.MorphRenderer, preallocated once per engine

    # ---------------------------------------------------- any thread

    def post(self, request: PreviewRequest) -> bool:
        """Leave a preview request (replacing an unstarted one of its kind); True when a wake-up is due."""
        with self._lock:
            was_empty = not self._pending
            self._pending[type(request)] = request
            return was_empty

    def _take_pending(self) -> PreviewRequest | None:
        with self._lock:
            for kind in _PREVIEW_ORDER:
                if kind in self._pending:
                    return self._pending.pop(kind)
            return None

    def _has_pending(self, kind: type) -> bool:
        with self._lock:
            return kind in self._pending

    # ---------------------------------------------------- engine thread

    @Slot()
    def serve_pending(self) -> None:
        """Render every waiting preview, the most interactive kind first."""
        while (request := self._take_pending()) is not None:
            self._guarded(request.request_id, self._serve, request)

    @Slot(object)
    def run_job(self, request: object) -> None:
        """Run one queued job (frames, export, keep, sheet)."""
        handlers = {
            FramesRequest: self._render_frames,
            ExportRequest: self._export,
            KeepRequest: self._keep,
            SheetRequest: self._save_sheet,
        }
        handler = handlers[type(request)]
        ok = self._guarded(request.request_id, handler, request)
        if not ok and isinstance(request, FramesRequest):
            self.framesDone.emit(request.request_id, False)
        if not ok and isinstance(request, ExportRequest):
            self.exportEnded.emit(request.request_id, None)

    def _guarded(self, request_id: int, handler, request: object) -> bool:
        try:
            engine = self._engine_worker.current_engine()
            if engine is None:  # loading failed; the engine worker reported it
                return False
            handler(engine, request)
        except Exception as error:  # noqa: BLE001 - every failure becomes one sentence in a dialog
            details = "".join(traceback.format_exception(error))
            LOG.info("studio job failed\n%s", details)
            self.failed.emit(request_id, error_sentence(error), details)
            return False
        return True

    def _serve(self, engine: Any, request: PreviewRequest) -> None:
        if isinstance(request, ScrubRequest):
            image = self._morph_frame(engine, request.keyframes, request.segment, request.lam)
            self.scrubReady.emit(request.request_id, image)
        elif isinstance(request, KeyframesRequest):
            images = [engine.render(state) for state in request.keyframes]
            self.keyframesReady.emit(request.request_id, images)
        elif isinstance(request, TransferRequest):
            image = engine.transfer(request.state, request.class_index)
            self.transferReady.emit(request.request_id, request.class_index, image)
        elif isinstance(request, JitterRequest):
            images = engine.jitter(
                request.state, sigma=request.sigma, count=request.count, seed=request.seed,
                batch_size=RENDER_BATCH_SIZE,
            )
            states = engine.jitter_states(
                request.state, sigma=request.sigma, count=request.count, seed=request.seed
            )
            self.jitterReady.emit(request.request_id, images, states)
        elif isinstance(request, GalleryRequest):
            classes = list(request.classes)
            for start in range(0, len(classes), RENDER_BATCH_SIZE):
                if self._has_pending(GalleryRequest):
                    return  # a newer gallery replaces this one
                chunk = classes[start : start + RENDER_BATCH_SIZE]
                images = engine.transfer_many(request.state, chunk, batch_size=RENDER_BATCH_SIZE)
                self.galleryBatch.emit(request.request_id, start, images)
                self._serve_scrubs_and_transfers()
            self.galleryDone.emit(request.request_id)

    def _serve_scrubs_and_transfers(self) -> None:
        # Long jobs let the previews the user is dragging through jump the queue.
        for kind in (ScrubRequest, TransferRequest):
            with self._lock:
                request = self._pending.pop(kind, None)
            if request is not None:
                self._guarded(request.request_id, self._serve, request)

    def _morph_frame(self, engine: Any, keyframes: Sequence[Any], segment: int, lam: float) -> np.ndarray:
        from engine.api import MorphRenderer

        if not 0 <= segment < len(keyframes) - 1:
            raise ValueError(f"segment {segment} does not exist between {len(keyframes)} keyframes")
        state_a, state_b = keyframes[segment], keyframes[segment + 1]
        morpher = self._morpher
        if morpher is None or morpher.engine is not engine:
            morpher = self._morpher = MorphRenderer(engine, state_a, state_b)
        elif morpher.state_a is not state_a or morpher.state_b is not state_b:
            morpher.retarget(state_a, state_b)
        return morpher.render(float(lam))

    def _timeline(self, request: FramesRequest | ExportRequest) -> list[tuple[int, float]]:
        from engine.export import timeline_lambdas

        return timeline_lambdas(len(request.keyframes), request.frames, easing=list(request.easing))

    def _render_frames(self, engine: Any, request: FramesRequest) -> None:
        timeline = self._timeline(request)
        batch: list[np.ndarray] = []
        first = 0
        for index, (segment, lam) in enumerate(timeline):
            if request.stop.is_set():
                self.framesDone.emit(request.request_id, False)
                return
            batch.append(self._morph_frame(engine, request.keyframes, segment, lam))
            if len(batch) == FRAME_BATCH_SIZE or index == len(timeline) - 1:
                self.framesBatch.emit(request.request_id, first, batch)
                first, batch = index + 1, []
                self._serve_scrubs_and_transfers()
        self.framesDone.emit(request.request_id, True)

    def _export(self, engine: Any, request: ExportRequest) -> None:
        from engine.export import AnimationOptions, export_animation

        settings = request.settings
        options = AnimationOptions(
            fps=float(settings.fps), loop=settings.loop, ping_pong=settings.ping_pong, size=settings.size,
            crf=settings.crf, quality=settings.quality,
        )
        if request.rendered is not None and len(request.rendered) == request.frames:
            frames: Iterator[np.ndarray] = iter(request.rendered)
        else:
            timeline = self._timeline(request)
            # Lazily: export_animation pulls one frame at a time, so a cancel lands within a frame.
            frames = (self._morph_frame(engine, request.keyframes, segment, lam) for segment, lam in timeline)
        writer = export_animation(
            frames, request.path, options=options, total=request.frames, should_stop=request.stop,
            overwrite=request.overwrite,
        )
        written = None
        while True:
            try:
                progress = next(writer)
            except StopIteration as end:
                written = end.value
                break
            self.exportProgress.emit(request.request_id, progress.done, progress.total, progress.detail)
        self.exportEnded.emit(request.request_id, None if written is None else str(written))

    def _keep(self, engine: Any, request: KeepRequest) -> None:
        engine_request = None
        if request.job is not None and request.job.image is not None:
            engine_request = request.job.to_request()
        state = request.state
        if request.class_index is not None:
            state = engine.transferred_state(state, request.class_index)
        result = engine.edited_result(request.parent, state, request=engine_request)
        self.kept.emit(request.request_id, result)

    def _save_sheet(self, engine: Any, request: SheetRequest) -> None:
        from engine.export import write_contact_sheet

        written = write_contact_sheet(
            list(request.images), request.path, columns=request.columns, labels=list(request.labels),
            overwrite=request.overwrite,
        )
        self.sheetSaved.emit(request.request_id, str(written))


# -------------------------------------------------------------- controller


class StudioController(QObject):
    """GUI-side face of :class:`StudioWorker` (every method is called on the GUI thread).

    Each request method returns the request's id; results arrive through
    ``self.worker``'s signals, queued to the GUI thread, carrying that id so
    that widgets can drop answers to requests they have since replaced.
    """

    _serve_requested = Signal()
    _job_requested = Signal(object)

    def __init__(self, engine_controller: EngineController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = StudioWorker(engine_controller.worker)
        self.worker.moveToThread(engine_controller.thread)
        self._serve_requested.connect(self.worker.serve_pending)
        self._job_requested.connect(self.worker.run_job)
        self._ids = itertools.count(1)
        self._frames_job: FramesRequest | None = None
        self._export_job: ExportRequest | None = None
        self._export_ids: set[int] = set()
        self._shut_down = False

    def _post(self, request: PreviewRequest) -> int:
        if not self._shut_down and self.worker.post(request):
            self._serve_requested.emit()
        return request.request_id

    def _queue(self, request: object) -> None:
        if not self._shut_down:
            self._job_requested.emit(request)

    def jitter(self, state: Any, *, sigma: float, count: int, seed: int) -> int:
        return self._post(JitterRequest(next(self._ids), state, float(sigma), int(count), int(seed)))

    def transfer(self, state: Any, class_index: int) -> int:
        return self._post(TransferRequest(next(self._ids), state, int(class_index)))

    def gallery(self, state: Any, classes: Sequence[int]) -> int:
        return self._post(GalleryRequest(next(self._ids), state, tuple(int(c) for c in classes)))

    def render_keyframes(self, keyframes: Sequence[Any]) -> int:
        """Render each keyframe state as the morph's ends show it."""
        return self._post(KeyframesRequest(next(self._ids), tuple(keyframes)))

    def scrub(self, keyframes: Sequence[Any], segment: int, lam: float) -> int:
        return self._post(ScrubRequest(next(self._ids), tuple(keyframes), int(segment), float(lam)))

    def render_frames(self, keyframes: Sequence[Any], *, frames: int, easing: Sequence[str]) -> int:
        """Render a timeline's frames (stopping the previous frames job, which is now stale)."""
        self.cancel_frames()
        request = FramesRequest(next(self._ids), tuple(keyframes), int(frames), tuple(easing))
        self._frames_job = request
        self._queue(request)
        return request.request_id

    def cancel_frames(self) -> None:
        if self._frames_job is not None:
            self._frames_job.stop.set()
            self._frames_job = None

    def export(
        self, keyframes: Sequence[Any], *, frames: int, easing: Sequence[str], path: Path,
        settings: AnimationSettings, overwrite: bool = False, rendered: Sequence[np.ndarray] | None = None,
    ) -> int:
        request = ExportRequest(
            next(self._ids), tuple(keyframes), int(frames), tuple(easing), Path(path), settings,
            overwrite=overwrite, rendered=None if rendered is None else tuple(rendered),
        )
        self._export_job = request
        self._export_ids.add(request.request_id)
        self._queue(request)
        return request.request_id

    def is_export(self, request_id: int) -> bool:
        """Whether ``request_id`` was an export (whose dialog reports its own failures)."""
        return request_id in self._export_ids

    def cancel_export(self) -> None:
        """Stop the running export within one frame; nothing is left at its path."""
        if self._export_job is not None:
            self._export_job.stop.set()

    def keep(self, parent: Any, state: Any, job: RestoreJob | None, *, class_index: int | None = None) -> int:
        request = KeepRequest(next(self._ids), parent, state, job, class_index)
        self._queue(request)
        return request.request_id

    def save_sheet(
        self, images: Sequence[np.ndarray], labels: Sequence[str], path: Path, *, columns: int
    ) -> int:
        request = SheetRequest(next(self._ids), tuple(images), tuple(labels), Path(path), int(columns))
        self._queue(request)
        return request.request_id

    def shutdown(self) -> None:
        """Stop frames and exports so that the engine thread can end (call before its shutdown)."""
        self._shut_down = True
        self.cancel_frames()
        self.cancel_export()
