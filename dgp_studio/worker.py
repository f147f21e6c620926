"""The engine thread: one long-lived ``QThread`` that owns the device, the model and the engine.

:class:`EngineWorker` lives on that thread (``moveToThread``). Its slots load
the model, describe a job (stage table and degraded preview) and run a
restoration by iterating the engine's event generator. The GUI talks to it
through :class:`EngineController`, which owns the thread.

Rules (house style §2b):

* torch runs only here; this module imports neither torch nor ``engine.api``
  at top level (they are imported inside the slots, on the engine thread).
* Cancellation is cooperative: :meth:`EngineController.cancel` sets a
  ``threading.Event`` that the engine checks before every iteration, so a
  cancel lands within one iteration and yields ``Cancelled(best result)``.
* No backlog: frames go into a one-slot mailbox (the newest replaces the
  older, one notification at most in flight); other events go into a queue
  that the GUI drains in one go per notification. Each frame carries the
  ``time.perf_counter()`` of its arrival from the engine (:class:`TimedFrame`),
  so the time until it is on screen can be measured.
* Errors become ``failed(sentence, details)``; the traceback goes to the log.
* Finished restores (and cancelled ones with a result) go into the result
  cache (:mod:`engine.cache`); an identical job is answered from it at once
  with :class:`RestoredFromCache` unless the job asks to recompute.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from dgp_studio.settings import BUILTIN_MODEL, CUSTOM_MODEL, AppSettings
from engine.errors import BadInputError, NonFiniteLossError
from engine.events import Cancelled, Finished, Frame, StagePlan

LOG = logging.getLogger(__name__)

FRAME_INTERVAL_S = 1 / 15  # the engine sends frames no faster than this (~15 fps)
ENGINE_TASKS = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")

T = TypeVar("T")


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class RestoreJob:
    """A restoration as the GUI describes it (Qt-free; converted to ``engine.api.RestoreRequest`` here).

    Parameters
    ----------
    image : numpy.ndarray or None
        The full-resolution photo, ``(H, W, 3)`` ``uint8``. Not copied: the
        app never modifies a loaded photo in place. None only for describing
        a schedule before any photo is open.
    roi : (left, top, size)
        The square sent to the model, in image pixels.
    mask : numpy.ndarray or None
        ``(H, W)`` ``uint8`` with 1 = missing (a copy), or None when the task uses no mask.
    """

    image: np.ndarray | None
    task: str
    roi: tuple[int, int, int] | None   # None: the whole photo (the engine plans its runs)
    mask: np.ndarray | None = None
    sr_factor: int | None = None
    grayscale: bool = False
    class_index: int | None = None
    preset: str | None = None
    quick: bool = True
    seed: int = 0
    iteration_scale: float = 1.0
    source_name: str = "the photo"
    # False: run even when the result cache holds this job ("Run again"); the new result replaces it.
    use_cache: bool = True
    detail_strength: float | None = None   # sr: 0 = classical upscaling … 1 = all the prior's detail
    allow_large: bool = False              # the user confirmed a result above the size limit

    def to_request(self) -> Any:
        """The engine's ``RestoreRequest`` (imports the engine: call on the engine thread)."""
        from engine.api import RestoreRequest
        from engine.composite import RegionOfInterest

        if self.image is None:
            raise BadInputError("Open a photo first: there is nothing to restore yet.")
        roi = None
        if self.roi is not None:
            left, top, size = self.roi
            roi = RegionOfInterest(int(left), int(top), int(size))
        return RestoreRequest(
            image=self.image,
            task=self.task,
            roi=roi,
            detail_strength=self.detail_strength,
            allow_large=self.allow_large,
            mask=None if self.mask is None else self.mask.astype(np.float32),
            sr_factor=self.sr_factor,
            grayscale=self.grayscale,
            class_index=self.class_index,
            preset=self.preset,
            quick=self.quick,
            seed=self.seed,
            iteration_scale=self.iteration_scale,
            source_name=self.source_name,
        )


def large_result_size(job: RestoreJob) -> tuple[int, int] | None:
    """``(width, height)`` of the job's result when it is above the size that is made without asking.

    Only resampling tasks grow the photo: super-resolution (and hybrid with a factor) of the
    whole photo or of the chosen region.
    """
    from engine.tasks import LARGE_OUTPUT_PIXELS

    if job.image is None or job.allow_large or not job.sr_factor or job.task not in ("sr", "hybrid"):
        return None
    if job.roi is not None:
        width = height = int(job.roi[2])
    else:
        height, width = job.image.shape[:2]
    width, height = width * job.sr_factor, height * job.sr_factor
    return (width, height) if width * height > LARGE_OUTPUT_PIXELS else None


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class RestoredFromCache:
    """The job's result came from the result cache, without running (queued like an engine event).

    ``result`` is an ``engine.state.RestoreResult`` rebuilt from the cached
    entry (``cancelled`` as when it was stored); ``key`` is its cache key.
    """

    result: Any
    key: str


@dataclass(frozen=True)
class ModelInfo:
    """What the GUI needs to know about the loaded model and engine."""

    display_name: str
    resolution: int
    class_names: tuple[str, ...]
    presets: dict[str, tuple[str, ...]]  # task -> preset names, the default first
    device: str
    precision: str
    # The number users see per class: its ImageNet index when the model knows it.
    class_numbers: tuple[int, ...] = ()
    preset_titles: dict[str, str] = field(default_factory=dict)  # preset name -> its title
    identity: str = ""  # the model's stable id (a digest of its files), as results record it


@dataclass(frozen=True, eq=False)
class JobDescription:
    """The stage table and degraded preview of a job, or why it cannot run."""

    job: RestoreJob
    preset: str
    stages: tuple[StagePlan, ...] = ()
    preview: np.ndarray | None = None  # x_hat as (R, R, 3) uint8
    problem: str | None = None  # one sentence when the job is not runnable


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class TimedFrame:
    """An engine ``Frame`` and when the engine produced it.

    ``produced_at`` is ``time.perf_counter()`` read on the engine thread as the
    frame left the engine; the clock is shared by all threads, so the GUI can
    subtract it from its own readings.
    """

    frame: Frame
    produced_at: float


@dataclass
class _Mailbox(Generic[T]):
    """A thread-safe one-value box: a newer value replaces an unread older one."""

    _value: T | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, value: T) -> bool:
        """Store ``value``; True when the box was empty (the reader needs a new notification)."""
        with self._lock:
            was_empty = self._value is None
            self._value = value
            return was_empty

    def take(self) -> T | None:
        with self._lock:
            value, self._value = self._value, None
            return value


@dataclass
class _EventQueue:
    """A thread-safe queue the reader drains whole."""

    _items: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, item: object) -> bool:
        """Queue ``item``; True when the queue was empty (the reader needs a new notification)."""
        with self._lock:
            self._items.append(item)
            return len(self._items) == 1

    def drain(self) -> list:
        with self._lock:
            items, self._items = self._items, []
            return items


EngineFactory = Callable[[AppSettings], Any]
"""Builds an engine from settings, on the engine thread (tests inject a tiny model)."""


def default_engine_factory(settings: AppSettings, *, user_preset_folders: Sequence[Path] = ()) -> Any:
    """Load the model named by ``settings`` and wrap it in an ``engine.api.Engine``."""
    from engine.api import Engine, load_model

    if settings.model == BUILTIN_MODEL:
        model = load_model("builtin")
    elif settings.model == CUSTOM_MODEL:
        model = load_model(settings.generator_path, settings.discriminator_path)
    else:  # an id in the model store (Tools > Model manager)
        from dgp_studio.settings import models_dir
        from engine.model_store import ModelStore

        stored = ModelStore(models_dir()).get(settings.model)
        if stored.d_path is None:
            raise BadInputError(
                f"{stored.name}: this model has no discriminator; import its D file in the model manager "
                "to restore with it."
            )
        model = load_model(stored.g_path, stored.d_path)
    return Engine(
        model,
        device=settings.device,
        precision=settings.precision,
        threads=settings.engine_threads(),
        user_preset_folders=tuple(user_preset_folders),
    )


def import_torch_optimizers() -> None:
    """Import what torch loads on a restore's first iteration, while the model loads instead.

    The first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (about a
    second, with stretches of 100-200 ms in which it holds the GIL). Done during the first
    restore, that froze the GUI's event loop just as the run began (engine thread only).
    """
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def describe_engine(engine: Any) -> ModelInfo:
    """A :class:`ModelInfo` for a loaded engine (engine thread)."""
    from engine.devices import precision_label
    from engine.schedule import builtin_presets

    presets: dict[str, tuple[str, ...]] = {}
    for task in ENGINE_TASKS:
        try:
            presets[task] = tuple(engine.presets_for(task))
        except BadInputError:
            presets[task] = ()
    shipped = builtin_presets()   # read once: every name below is looked up in it
    titles = {
        name: shipped[name].title
        for names in presets.values() for name in names
        if name in shipped   # others are listed by name only
    }
    model = engine.model
    return ModelInfo(
        display_name=model.display_name,
        resolution=int(engine.resolution),
        class_names=tuple(model.class_names),
        presets=presets,
        device=str(engine.device),
        precision=precision_label(engine.autocast_dtype),
        class_numbers=tuple(model.class_numbers),
        preset_titles=titles,
        identity=str(getattr(model, "identity", "")),
    )


def as_sentence(text: str) -> str:
    """``text`` with a capital first letter, as a sentence shown on its own starts.

    The engine's messages may begin in lower case (they are also embedded in
    longer ones). Only a plain lower-case word is capitalised: a message that
    starts with a file name, a path, an option or an identifier
    (``x.png …``, ``--mask …``, ``hole_region: …``) keeps it as written.
    """
    first_word = text.split(maxsplit=1)[0] if text.strip() else ""
    if first_word.isalpha() and first_word.islower():
        start = text.index(first_word)
        return text[:start] + first_word[0].upper() + text[start + 1 :]
    return text


def error_sentence(error: BaseException) -> str:
    """The one sentence a dialog shows for an engine error."""
    if isinstance(error, BadInputError):
        return as_sentence(str(error))
    if isinstance(error, NonFiniteLossError):
        return (
            "The optimisation became unstable (the loss stopped being a finite number); "
            "the best result reached before that is kept."
        )
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return (
            "The device ran out of memory; try the CPU, a smaller model or a smaller iteration scale "
            "in Settings."
        )
    return f"The engine stopped because of an unexpected error ({type(error).__name__}: {error})."


class EngineWorker(QObject):
    """Owns the engine; lives on the engine thread. Use it through :class:`EngineController`.

    Signals
    -------
    modelLoading(str)
        Loading started (what is being loaded).
    modelLoaded(object)
        A :class:`ModelInfo`.
    eventsAvailable()
        Engine events wait in the queue: call :meth:`take_events`.
    frameAvailable()
        A newer ``Frame`` waits in the mailbox: call :meth:`take_frame`.
    described(object)
        A :class:`JobDescription`.
    failed(str, str)
        One sentence for the user and the details (traceback).
    runEnded()
        A restoration ended (finished, cancelled or failed); emitted last.
    """

    modelLoading = Signal(str)
    modelLoaded = Signal(object)
    eventsAvailable = Signal()
    frameAvailable = Signal()
    described = Signal(object)
    failed = Signal(str, str)
    runEnded = Signal()

    def __init__(
        self,
        *,
        engine_factory: EngineFactory | None = None,
        user_preset_folders: Sequence[Path] = (),
        cache_folder: Path | None = None,
    ) -> None:
        super().__init__()
        self._user_preset_folders = tuple(user_preset_folders)
        self._cache_folder = None if cache_folder is None else Path(cache_folder)
        self._state_cache: Any = None  # engine.cache.StateCache, opened on the first restore
        self.restores_run = 0  # engine.restore calls (tests tell a cache hit from a run by it)
        self._engine_factory = engine_factory or (
            lambda settings: default_engine_factory(settings, user_preset_folders=self._user_preset_folders)
        )
        self._engine: Any = None
        self._settings = AppSettings()
        self._loaded_settings: AppSettings | None = None
        self._stop = threading.Event()
        self._frames: _Mailbox[TimedFrame] = _Mailbox()
        # Frames the engine produced and, of those, the ones replaced unread in the mailbox.
        self.frames_produced = 0
        self.frames_replaced = 0
        self._events = _EventQueue()
        self._describe_box: _Mailbox[RestoreJob] = _Mailbox()

    # ------------------------------------------------ thread-safe (any thread)

    def request_stop(self) -> None:
        """Ask the running restoration to stop before its next iteration."""
        self._stop.set()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def take_frame(self) -> Frame | None:
        """The newest frame not yet taken (older ones were dropped), or None."""
        timed = self._frames.take()
        return None if timed is None else timed.frame

    def take_timed_frame(self) -> TimedFrame | None:
        """Like :meth:`take_frame`, with the time the engine produced the frame."""
        return self._frames.take()

    def take_events(self) -> list:
        """Every queued non-frame event, oldest first."""
        return self._events.drain()

    def post_describe(self, job: RestoreJob) -> bool:
        """Leave a job to describe; True when the worker needs to be woken for it."""
        return self._describe_box.put(job)

    # ---------------------------------------------------- slots (engine thread)

    @Slot(object)
    def set_settings(self, settings: AppSettings) -> None:
        """Use these settings for the next load (the engine is rebuilt when they differ)."""
        self._settings = settings

    @Slot()
    def load(self) -> None:
        """Build the engine now if the settings changed since the last load."""
        self._ensure_engine()

    def current_engine(self) -> Any:
        """The engine, built first if the settings changed; None when loading failed (reported).

        Engine thread only: other workers on that thread (the studio's) share the engine this way.
        """
        return self._ensure_engine()

    def result_cache(self) -> Any:
        """The result cache the restorations use (``engine.cache.StateCache``), or None when it is off
        or cannot be opened.

        Engine thread only: other workers on that thread (the sessions') share this one object, so
        the size limit is the same and the folder is never opened twice.
        """
        return self._open_state_cache()

    def result_cache_key(self, engine: Any, job: RestoreJob) -> str:
        """The key under which a restoration of ``job`` by ``engine`` is stored in the result cache.

        Exactly the key :meth:`restore` uses, so a saved session names the entry a restoration wrote.
        Engine thread only (the engine prepares the job's request); raises ``BadInputError`` for a job
        the engine cannot prepare.
        """
        key, _made_with = engine.cache_key(job.to_request())
        return key

    def _ensure_engine(self) -> Any:
        # The cache size does not shape the engine: changing it must not reload the model.
        if (
            self._engine is not None
            and self._loaded_settings is not None
            and self._loaded_settings.without_cache_settings() == self._settings.without_cache_settings()
        ):
            return self._engine
        settings = self._settings
        if settings.model == BUILTIN_MODEL:
            what = "the built-in model"
        elif settings.model == CUSTOM_MODEL:
            what = Path(settings.generator_path).name
        else:
            what = f"the imported model {settings.model}"
        self.modelLoading.emit(what)
        self._engine = None
        try:
            engine = self._engine_factory(settings)
            info = describe_engine(engine)
            import_torch_optimizers()
        except Exception as error:  # noqa: BLE001 - every failure becomes one sentence in a dialog
            self._report(error, context="loading the model")
            return None
        self._engine = engine
        self._loaded_settings = settings
        self.modelLoaded.emit(info)
        return engine

    @Slot()
    def describe_pending(self) -> None:
        """Describe the newest job left by :meth:`post_describe` (no-op when none is waiting)."""
        job = self._describe_box.take()
        if job is None:
            return
        engine = self._ensure_engine()
        if engine is None:
            return
        self.described.emit(self._describe(engine, job))

    def _describe(self, engine: Any, job: RestoreJob) -> JobDescription:
        preset = job.preset or (engine.presets_for(job.task) or [""])[0]
        try:
            schedule = engine.schedule_for(
                job.preset, task=job.task, quick=job.quick, iteration_scale=job.iteration_scale
            )
            stages = tuple(
                schedule.plan(
                    feature_count=engine.D.config.n_discriminator_features,
                    group_count=engine.G.config.n_generator_blocks + 1,
                )
            )
        except BadInputError as error:
            return JobDescription(job=job, preset=preset, problem=error_sentence(error))
        if job.image is None:
            return JobDescription(
                job=job,
                preset=preset,
                stages=stages,
                problem="Open a photo to see what the model will be asked to match.",
            )
        try:
            preview = engine.preview_degraded(job.to_request())
        except BadInputError as error:
            return JobDescription(job=job, preset=preset, stages=stages, problem=error_sentence(error))
        except Exception as error:
            LOG.exception("describing a job failed")
            return JobDescription(job=job, preset=preset, stages=stages, problem=error_sentence(error))
        return JobDescription(job=job, preset=preset, stages=stages, preview=preview)

    @Slot(object)
    def restore(self, job: RestoreJob) -> None:
        """Run one restoration, streaming its events; always ends with ``runEnded``."""
        try:
            engine = self._ensure_engine()
            if engine is None:
                return
            if self._stop.is_set():
                self._queue_event(Cancelled(result=None, reason="cancelled before it started"))
                return
            prepared = engine.prepare(job.to_request())   # once: the cache key and the run share it
            cache = self._open_state_cache()
            key = None
            if cache is not None:
                key, made_with = engine.cache_key(prepared)
                if job.use_cache:
                    hit = cache.get(key)  # a corrupt entry is dropped (and logged) there: a miss
                    if hit is not None:
                        result = self._result_from_cache(engine, prepared, hit)
                        self._queue_event(RestoredFromCache(result=result, key=key))
                        return
            self.restores_run += 1
            for event in engine.restore(prepared, should_stop=self._stop, frame_interval=FRAME_INTERVAL_S):
                if key is not None and isinstance(event, (Finished, Cancelled)) and event.result is not None:
                    self._store_in_cache(cache, key, event.result, made_with)
                if isinstance(event, Frame):
                    self.frames_produced += 1
                    if self._frames.put(TimedFrame(event, time.perf_counter())):
                        self.frameAvailable.emit()
                    else:
                        self.frames_replaced += 1
                else:
                    self._queue_event(event)
                # Keep the preview/stage table live between iterations without re-entering the event loop.
                pending = self._describe_box.take()
                if pending is not None:
                    self.described.emit(self._describe(engine, pending))
        except Exception as error:  # noqa: BLE001 - every failure becomes one sentence in a dialog
            self._report(error, context="restoring")
        finally:
            self._stop.clear()
            self.runEnded.emit()

    # ------------------------------------------------------------ result cache

    def _open_state_cache(self) -> Any:
        """The result cache sized by the settings, or None when it is off or cannot be opened."""
        max_bytes = self._settings.cache_max_bytes()
        if self._cache_folder is None or max_bytes <= 0:
            return None
        from engine.cache import StateCache

        try:
            if self._state_cache is None:
                self._state_cache = StateCache(self._cache_folder, max_bytes=max_bytes)
            elif self._state_cache.max_bytes != max_bytes:
                self._state_cache.set_max_bytes(max_bytes)
        except (OSError, BadInputError) as error:
            # A broken cache folder costs speed, never the restoration.
            LOG.warning("the result cache in %s is unavailable: %s", self._cache_folder, error)
            self._state_cache = None
            return None
        return self._state_cache

    def _result_from_cache(self, engine: Any, prepared: Any, entry: Any) -> Any:
        """A ``RestoreResult`` rebuilt from a cached entry (x_hat and phi(G(z*)) recomputed: cheap)."""
        import torch

        from engine.dgp import to_uint8_image
        from engine.state import RestoreResult
        from engine.tensors import to_tensor

        request = prepared.request
        sidecar = entry.sidecar
        with torch.no_grad():
            degraded = to_uint8_image(
                prepared.degradation.generator_path(to_tensor(entry.image).to(engine.device))
            )
        return RestoreResult(
            image=entry.image,
            degraded=degraded,
            target=to_uint8_image(prepared.target),
            state=entry.state,
            class_index=int(sidecar["class_index"]),
            top_classes=tuple((int(index), float(score)) for index, score in sidecar.get("top_classes", [])),
            losses={str(name): float(value) for name, value in sidecar.get("losses", {}).items()},
            steps_done=int(sidecar.get("steps_done", 0)),
            total_steps=int(sidecar.get("total_steps", 0)),
            seconds=float(sidecar.get("seconds", 0.0)),
            task=str(sidecar.get("task", request.task)),
            preset=str(sidecar.get("preset", prepared.schedule.name)),
            cancelled=bool(sidecar.get("cancelled", False)),
            composite=entry.composite,
            notes=tuple(str(note) for note in sidecar.get("notes", ())),
            best_step=entry.state.info.get("best_step"),  # the run records it in the state
        )

    def _store_in_cache(self, cache: Any, key: str, result: Any, made_with: dict) -> None:
        try:
            cache.put(key, result, made_with=made_with)
        except Exception as error:  # noqa: BLE001 - a full disk must not cost the user the result
            LOG.warning("could not keep the result in the cache: %s", error)

    def clear_cache(self) -> int:
        """Delete every cached result; returns the bytes freed (any thread: the cache is thread-safe)."""
        if self._cache_folder is None:
            return 0
        cache = self._state_cache
        if cache is None:
            from dgp_studio.settings import clear_state_cache

            return clear_state_cache(self._cache_folder)
        return int(cache.clear())

    def _queue_event(self, event: object) -> None:
        if self._events.append(event):
            self.eventsAvailable.emit()

    def _report(self, error: BaseException, *, context: str) -> None:
        details = "".join(traceback.format_exception(error))
        if isinstance(error, BadInputError):
            LOG.info("%s: %s", context, error)
        else:
            LOG.error("error while %s\n%s", context, details)
        self.failed.emit(error_sentence(error), details)


_live_controllers: weakref.WeakSet[EngineController] = weakref.WeakSet()


def running_engine_threads() -> list[QThread]:
    """Engine threads still running (tests assert this is empty after each test)."""
    return [
        controller.thread
        for controller in list(_live_controllers)
        if controller.thread is not None and controller.thread.isRunning()
    ]


class EngineController(QObject):
    """GUI-side owner of the engine thread and its :class:`EngineWorker`.

    Every method is called on the GUI thread; work is handed to the worker
    through queued signals, results come back through the worker's signals
    (``self.worker.<signal>``), delivered on the GUI thread.

    Parameters
    ----------
    engine_factory : callable, optional
        ``settings -> engine``; defaults to loading the model the settings name.
    user_preset_folders : sequence of Path
        Folders with the user's own presets.
    cache_folder : Path, optional
        The result cache's folder; None = no cache.
    """

    runEnded = Signal()  # re-emitted on the GUI thread after the worker's runEnded
    modelLoaded = Signal(object)  # re-emitted on the GUI thread: a ModelInfo

    _set_settings_requested = Signal(object)
    _load_requested = Signal()
    _restore_requested = Signal(object)
    _describe_requested = Signal()

    def __init__(
        self,
        *,
        engine_factory: EngineFactory | None = None,
        user_preset_folders: Sequence[Path] = (),
        cache_folder: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = EngineWorker(
            engine_factory=engine_factory, user_preset_folders=user_preset_folders, cache_folder=cache_folder
        )
        # No parent: a QThread must not be deleted by its parent while it runs.
        self.thread: QThread | None = QThread()
        self.thread.setObjectName("dgp-engine")
        self.worker.moveToThread(self.thread)
        self._set_settings_requested.connect(self.worker.set_settings)
        self._load_requested.connect(self.worker.load)
        self._restore_requested.connect(self.worker.restore)
        self._describe_requested.connect(self.worker.describe_pending)
        # Connections to this GUI-thread object are queued, so these re-emissions
        # happen on the GUI thread (safe to wait on with QSignalSpy or pytest-qt).
        self.worker.runEnded.connect(self._on_run_ended)
        self.worker.modelLoaded.connect(self.modelLoaded)
        self._running = False
        self._shut_down = False
        self.thread.start()
        _live_controllers.add(self)

    def is_running(self) -> bool:
        """Whether a restoration is in flight (from request until ``runEnded``)."""
        return self._running

    def set_settings(self, settings: AppSettings) -> None:
        self._set_settings_requested.emit(settings)

    def load(self) -> None:
        """Load the model in the background (now, or after the current run)."""
        if not self._shut_down:
            self._load_requested.emit()

    def restore(self, job: RestoreJob) -> bool:
        """Start a restoration; False (and nothing happens) while another one runs."""
        if self._running or self._shut_down:
            return False
        self._running = True
        self._restore_requested.emit(job)
        return True

    def describe(self, job: RestoreJob) -> None:
        """Ask for the job's stage table and preview; only the newest request is served."""
        if not self._shut_down and self.worker.post_describe(job):
            self._describe_requested.emit()

    def cancel(self) -> None:
        """Stop the running restoration before its next iteration (the best result is kept)."""
        if self._running:
            self.worker.request_stop()

    def _on_run_ended(self) -> None:
        self._running = False
        self.runEnded.emit()

    def shutdown(self, *, timeout_ms: int = 10_000) -> bool:
        """Stop any run, end the thread and wait for it; True when it ended within ``timeout_ms``."""
        if self.thread is None:
            return True
        self._shut_down = True
        self.worker.request_stop()
        self.thread.quit()
        finished = self.thread.wait(timeout_ms)
        if finished:
            self.thread = None
        else:
            LOG.warning("the engine thread did not stop within %d ms", timeout_ms)
        return finished
