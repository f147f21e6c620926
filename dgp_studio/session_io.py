"""Sessions in the window: File ▸ Save Session (Ctrl+S), Save Session As…, Open Session….

A session (:mod:`engine.session`, a ``.dgps`` file) holds the photo, the
mask, the region, the task panel, the chosen class, every result in the
history and the morph timeline. :class:`SessionController` captures them on
the GUI thread (arrays and the results' states are only referenced, never
copied or looked into) and puts an opened session back into the window.

Reading and writing the file run on the engine thread
(:class:`SessionWorker`, beside the restore and studio workers): saving needs
the engine to compute each restore's result-cache key, and the results'
states are torch tensors, which the GUI thread never touches. A save asked
for during a restoration is therefore written when it ends.

This module imports neither torch nor the engine's model code.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QFileDialog, QGridLayout, QMessageBox

from dgp_studio import APP_DISPLAY_NAME
from dgp_studio.history import HistoryEntry
from dgp_studio.mask import PixelRect
from dgp_studio.settings import window_state
from dgp_studio.task_panel import SR_FACTORS
from dgp_studio.worker import EngineWorker, RestoreJob, error_sentence
from engine.errors import BadInputError
from engine.session import (
    SESSION_SUFFIX,
    WEIGHTS_EMBEDDED,
    HistoryItem,
    MorphTimeline,
    ResultJob,
    Session,
    SessionImage,
    TaskSettings,
)

if TYPE_CHECKING:
    from dgp_studio.main_window import MainWindow

LOG = logging.getLogger(__name__)

SESSION_FILTER = f"{APP_DISPLAY_NAME} sessions (*{SESSION_SUFFIX})"
EMBED_CHOICE_KEY = "sessions/embed"
EMBED_LABEL = "Embed the photo and the result states (the file travels)"
EMBED_TIP = (
    "Keep the photo and every result's fine-tuned model inside the session, so that it opens "
    "and stays editable on any computer (a larger file). Otherwise results are found again "
    "through this computer's result cache."
)


# ------------------------------------------------------------------ requests


@dataclass(frozen=True, eq=False)
class SaveRequest:
    """Write ``session`` to ``path``; its photo is described on the engine thread (reading the file)."""

    request_id: int
    path: Path
    session: Session
    restore_jobs: tuple[RestoreJob | None, ...]  # per history entry: the job whose cache key to look up
    photo: np.ndarray
    photo_name: str
    photo_path: Path | None
    photo_sha256: str | None
    embed: bool
    overwrite: bool = True  # False when ".dgps" was added to the name the user confirmed
    opened_image: SessionImage | None = None  # the photo as the opened session described it, if still shown


@dataclass(frozen=True, eq=False)
class OpenRequest:
    """Read the session at ``path`` and rebuild its results."""

    request_id: int
    path: Path


@dataclass(frozen=True, eq=False)
class SavedOutcome:
    """A written session: ``saved`` is ``engine.session.SavedSession``; ``notes`` one sentence each."""

    path: Path
    embed: bool
    saved: Any
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class OpenedSession:
    """A session read back: the photo (``engine.session.SessionPhoto``) and, per history entry,
    its ``RestoreResult`` (None without a state) and ``RestoreJob`` (None for another photo)."""

    path: Path
    session: Session
    photo: Any
    results: tuple[Any, ...]
    jobs: tuple[RestoreJob | None, ...]
    notes: tuple[str, ...]


def _request_fields(job: RestoreJob | ResultJob) -> dict:
    """The request's fields that a session stores: every field of ResultJob."""
    return {field.name: getattr(job, field.name) for field in dataclasses.fields(ResultJob)}


def _result_job(job: RestoreJob) -> ResultJob:
    fields = _request_fields(job)
    fields["roi"] = None if job.roi is None else tuple(int(value) for value in job.roi)
    return ResultJob(**fields)


def _restore_job(job: ResultJob, photo: np.ndarray, source_name: str) -> RestoreJob:
    return RestoreJob(image=photo, source_name=source_name, **_request_fields(job))


# ------------------------------------------------------------------- worker


class SessionWorker(QObject):
    """Reads and writes session files on the engine thread; use it through :class:`SessionController`.

    Signals
    -------
    saved(int, object)
        Request id and a :class:`SavedOutcome`.
    opened(int, object)
        Request id and an :class:`OpenedSession`.
    failed(int, str, str)
        Request id, one sentence for the user and the details.
    """

    saved = Signal(int, object)
    opened = Signal(int, object)
    failed = Signal(int, str, str)

    def __init__(self, engine_worker: EngineWorker) -> None:
        super().__init__()
        self._engine_worker = engine_worker

    @Slot(object)
    def run(self, request: object) -> None:
        try:
            if isinstance(request, SaveRequest):
                self.saved.emit(request.request_id, self._save(request))
            else:
                self.opened.emit(request.request_id, self._open(request))
        except Exception as error:  # noqa: BLE001 - every failure becomes one sentence in a dialog
            details = "".join(traceback.format_exception(error))
            if isinstance(error, BadInputError):
                LOG.info("session file: %s", error)
            else:
                LOG.error("session file failed\n%s", details)
            self.failed.emit(request.request_id, error_sentence(error), details)

    def _result_cache(self) -> Any:
        # The restore worker's own cache object: the same size limit, and nothing opened twice.
        return self._engine_worker.result_cache()

    def _cache_keys(self, jobs: tuple[RestoreJob | None, ...]) -> list[str | None]:
        """Each restore's key in the result cache, None where the cache does not hold it."""
        keys: list[str | None] = [None] * len(jobs)
        if not any(jobs):
            return keys
        cache = self._result_cache()
        engine = self._engine_worker.current_engine() if cache is not None else None
        if engine is None:
            return keys
        for index, job in enumerate(jobs):
            if job is None or job.image is None:
                continue
            try:
                key = self._engine_worker.result_cache_key(engine, job)
            except BadInputError as error:
                LOG.info("no cache key for result %d: %s", index + 1, error)
                continue
            keys[index] = key if key in cache else None
        return keys

    @staticmethod
    def _describe_photo(request: SaveRequest) -> tuple[SessionImage, str | None]:
        """The photo for the file: the opened session's description when it still applies (so an
        embedded original keeps its own bytes), else read afresh from the photo's file."""
        from engine.session import session_image

        known = request.opened_image
        if known is not None and known.data is not None:
            if request.embed or request.photo_path is None:
                return known, None  # without its original at hand, the copy must stay in the file
            return replace(known, data=None, suffix=""), None
        return session_image(
            request.photo,
            name=request.photo_name,
            path=request.photo_path,
            sha256=request.photo_sha256,
            embed=request.embed,
        )

    def _save(self, request: SaveRequest) -> SavedOutcome:
        from engine.session import save_session

        image, note = self._describe_photo(request)
        keys = self._cache_keys(request.restore_jobs)
        history = tuple(replace(item, cache_key=key) for item, key in zip(request.session.history, keys))
        session = replace(request.session, image=image, history=history)
        saved = save_session(request.path, session, embed_states=request.embed, overwrite=request.overwrite)
        return SavedOutcome(
            path=saved.path,
            embed=request.embed,
            saved=saved,
            notes=() if note is None else (note,),
        )

    def _open(self, request: OpenRequest) -> OpenedSession:
        from engine.session import load_session, load_session_photo, load_states
        from engine.state import RestoreResult

        session = load_session(request.path)
        with tempfile.TemporaryDirectory(prefix="dgps-open-") as scratch:
            photo = load_session_photo(request.path, session, scratch)
            loaded = load_states(request.path, session, scratch, cache=self._result_cache())
        results, jobs = [], []
        for item, state in zip(session.history, loaded.states):
            jobs.append(None if item.job is None else _restore_job(item.job, photo.rgb, session.image.name))
            if state is None:
                results.append(None)
                continue
            results.append(
                RestoreResult(
                    image=item.image,
                    degraded=item.image if item.degraded is None else item.degraded,
                    target=item.image if item.target is None else item.target,
                    state=state,
                    class_index=state.class_index if item.class_index is None else item.class_index,
                    top_classes=item.top_classes,
                    losses=dict(item.losses),
                    steps_done=item.steps_done,
                    total_steps=item.total_steps,
                    seconds=item.seconds,
                    task=item.task,
                    preset=item.preset,
                    cancelled=item.cancelled,
                    composite=item.composite,
                    notes=item.notes,
                )
            )
        notes = tuple(note for note in (photo.note, *loaded.notes) if note)
        return OpenedSession(
            path=request.path,
            session=session,
            photo=photo,
            results=tuple(results),
            jobs=tuple(jobs),
            notes=notes,
        )


# --------------------------------------------------------------- controller


class SessionController(QObject):
    """The window's sessions: what Save Session writes, what Open Session puts back.

    Signals
    -------
    sessionSaved(str)
        A session was written to this path.
    sessionOpened(str)
        The session at this path is in the window.
    """

    sessionSaved = Signal(str)
    sessionOpened = Signal(str)
    _requested = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        controller = window.engine_controller
        self.worker = SessionWorker(controller.worker)
        self.worker.moveToThread(controller.thread)
        self._requested.connect(self.worker.run)
        self.worker.saved.connect(self._on_saved)
        self.worker.opened.connect(self._on_opened)
        self.worker.failed.connect(self._on_failed)
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self._pending_saves: set[int] = set()
        # (photo serial, the opened session's description of its photo) while that photo is shown.
        self._opened_image: tuple[int, SessionImage] | None = None
        self._path: Path | None = None
        self._embed = False
        self._created_at = ""
        self._saved_entries: list[HistoryEntry] = []  # the history as last saved or opened
        self._entries_being_saved: dict[int, list[HistoryEntry]] = {}
        self._waiting_for_model: tuple[str | None, int | None] | None = None
        window.modelReady.connect(lambda _info: self._apply_model_choices())

    # ------------------------------------------------------------ state

    def current_path(self) -> Path | None:
        """The session file the window shows (Save Session writes it), or None."""
        return self._path

    def embeds(self) -> bool:
        """Whether Save Session embeds the photo and the states in the current file."""
        return self._embed

    def is_busy(self) -> bool:
        """Whether a save or an open is on its way."""
        return bool(self._pending)

    def forget_file(self) -> None:
        """Another photo was opened: the next Save Session asks for a name."""
        self._path = None
        self._created_at = ""
        self._opened_image = None

    def finish_saving(self, *, timeout_ms: int) -> bool:
        """Let saves on their way be written before the engine thread stops (the window is closing).

        A running restoration is cancelled first, since a save waits for it. True when none is left.
        """
        if not self._pending_saves:
            return True
        window = self._window
        window.cancel_restore()
        deadline = time.monotonic() + timeout_ms / 1000
        while self._pending_saves and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if self._pending_saves:
            LOG.warning(
                "%d session save(s) did not finish before the window closed", len(self._pending_saves)
            )
        return not self._pending_saves

    def _embed_preference(self) -> bool:
        value = window_state().value(EMBED_CHOICE_KEY, False)
        return value in (True, "true", "1", 1)

    def _suggested_path(self) -> Path:
        if self._path is not None:
            return self._path
        photo_path = self._window.photo_path()
        if photo_path is not None:
            return photo_path.with_suffix(SESSION_SUFFIX)
        return Path.home() / f"session{SESSION_SUFFIX}"

    # ------------------------------------------------------------ saving

    def save(self) -> int | None:
        """Save Session: write the current file again, or ask for one first."""
        if self._path is None:
            return self.save_as_dialog()
        return self.save_to(self._path, embed=self._embed)

    def save_as_dialog(self) -> int | None:
        """Save Session As…: a file dialog with the choice to embed (the choice is remembered)."""
        window = self._window
        if window.photo() is None:
            window.statusBar().showMessage("Open a photo first: there is no session to save yet.", 5000)
            return None
        dialog = QFileDialog(window, "Save the session", str(self._suggested_path()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters([SESSION_FILTER, "All files (*)"])
        dialog.setDefaultSuffix(SESSION_SUFFIX.lstrip("."))
        # Qt's own dialog, so that the choice to embed sits in it, under the file name.
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        embed_box = QCheckBox(EMBED_LABEL)
        embed_box.setToolTip(EMBED_TIP)
        embed_box.setChecked(self._embed if self._path is not None else self._embed_preference())
        layout = dialog.layout()
        if isinstance(layout, QGridLayout):
            layout.addWidget(embed_box, layout.rowCount(), 0, 1, layout.columnCount())
        if not dialog.exec() or not dialog.selectedFiles():
            return None
        embed = embed_box.isChecked()
        state = window_state()
        state.setValue(EMBED_CHOICE_KEY, embed)
        state.sync()
        return self.save_to(dialog.selectedFiles()[0], embed=embed)

    def save_to(self, path: str | Path, *, embed: bool) -> int | None:
        """Write the window's session to ``path``; ``sessionSaved`` follows, or an error dialog.

        A file at ``path`` is replaced (the user confirmed it in the file dialog). When the
        name lacks ``.dgps`` it is added, and a file already at that new name is not replaced.
        """
        window = self._window
        photo = window.photo()
        if photo is None:
            window.statusBar().showMessage("Open a photo first: there is no session to save yet.", 5000)
            return None
        target = Path(path)
        if target.suffix.lower() != SESSION_SUFFIX:
            target = target.with_name(target.name + SESSION_SUFFIX)
        entries = window.history.entries()
        session, restore_jobs = self._capture(entries)
        request = SaveRequest(
            request_id=next(self._ids),
            path=target,
            session=session,
            restore_jobs=restore_jobs,
            photo=photo,
            photo_name=window.photo_name(),
            photo_path=window.photo_path(),
            photo_sha256=window.photo_sha256(),
            embed=bool(embed),
            overwrite=target == Path(path),
            opened_image=(
                self._opened_image[1]
                if self._opened_image is not None and self._opened_image[0] == window.photo_serial()
                else None
            ),
        )
        self._pending.add(request.request_id)
        self._pending_saves.add(request.request_id)
        self._entries_being_saved[request.request_id] = list(entries)
        if window.is_running():
            window.statusBar().showMessage(f"{target.name} is saved when the running restoration ends.", 8000)
        else:
            window.statusBar().showMessage(f"Saving {target.name}\u2026")
        self._requested.emit(request)
        return request.request_id

    def _capture(self, entries: list[HistoryEntry]) -> tuple[Session, tuple[RestoreJob | None, ...]]:
        """The window as a ``Session`` (photo described later) and each restore's job for its cache key."""
        window = self._window
        serial = window.photo_serial()
        items, restore_jobs = [], []
        for entry in entries:
            result = entry.result
            own_photo = entry.job is not None and entry.photo_serial == serial
            items.append(
                HistoryItem(
                    composite=entry.composite,
                    image=entry.image,
                    task=entry.task,
                    class_index=entry.class_index,
                    class_name=entry.class_name,
                    seconds=entry.seconds,
                    cancelled=entry.cancelled,
                    finished_at=entry.finished_at,
                    edit=entry.edit,
                    preset="" if result is None else result.preset,
                    top_classes=() if result is None else tuple(result.top_classes),
                    losses={} if result is None else dict(result.losses),
                    steps_done=0 if result is None else result.steps_done,
                    total_steps=0 if result is None else result.total_steps,
                    notes=() if result is None else tuple(result.notes),
                    degraded=None if result is None else result.degraded,
                    target=None if result is None else result.target,
                    job=_result_job(entry.job) if own_photo else None,
                    state=entry.state,
                )
            )
            is_restore = result is not None and entry.job is not None and not entry.edit
            restore_jobs.append(entry.job if is_restore else None)
        timeline = None
        keyframes = window.timeline.keyframe_entries()
        if keyframes:
            positions = {id(entry): index for index, entry in enumerate(entries)}
            line = window.timeline
            timeline = MorphTimeline(
                keyframes=tuple(positions[id(entry)] for entry in keyframes),
                easing=tuple(line.easing()),
                frames=line.frame_count(),
                fps=line.fps_spin.value(),
                loop=line.loop_check.isChecked(),
                ping_pong=line.ping_pong_check.isChecked(),
                position=line.position(),
            )
        panel = window.task_panel
        layer = window.mask_layer()
        mask = None if layer is None or layer.is_empty() else layer.array.copy()
        photo = window.photo()
        selected = window.history.currentRow()
        session = Session(
            image=SessionImage(
                name=window.photo_name(),
                width=int(photo.shape[1]),
                height=int(photo.shape[0]),
                path=None if window.photo_path() is None else str(window.photo_path()),
                sha256=window.photo_sha256(),
            ),
            roi=window.canvas.roi(),
            settings=TaskSettings(
                task=panel.task(),
                sr_factor=panel.sr_factor(),
                hybrid_grayscale=panel.hybrid_grayscale.isChecked(),
                hybrid_sr=panel.hybrid_sr.isChecked(),
                hybrid_mask=panel.hybrid_mask.isChecked(),
                preset=panel.preset_combo.currentData(),
                quick=panel.quick_check.isChecked(),
                seed=panel.seed_spin.value(),
                iteration_scale=float(panel.iteration_scale_spin.value()),
            ),
            mask=mask,
            class_index=window.class_picker.selected_class(),
            history=tuple(items),
            selected=selected if 0 <= selected < len(entries) else None,
            timeline=timeline,
            created_at=self._created_at,
        )
        return session, tuple(restore_jobs)

    def _on_saved(self, request_id: int, outcome: SavedOutcome) -> None:
        if request_id not in self._pending:
            return
        self._pending.discard(request_id)
        self._pending_saves.discard(request_id)
        self._path, self._embed, self._created_at = outcome.path, outcome.embed, outcome.saved.created_at
        self._saved_entries = self._entries_being_saved.pop(request_id, [])
        window = self._window
        window.setWindowTitle(f"{outcome.path.name} \u2014 {APP_DISPLAY_NAME}")
        saved = outcome.saved
        sentences = [f"Saved {outcome.path.name}."]
        if outcome.embed:
            sentences.append("The photo and the result states are inside: the file travels.")
        elif saved.states_in_cache:
            sentences.append(
                f"{saved.states_in_cache} result(s) stay editable while this computer's result cache "
                f"keeps them."
            )
        if saved.states_left_out:
            sentences.append(
                f"{saved.states_left_out} result(s) were saved as images only (not in the result cache); "
                f"save with \u201c{EMBED_LABEL}\u201d to keep them editable."
            )
        sentences.extend(outcome.notes)
        window.statusBar().showMessage(" ".join(sentences), 15_000)
        self.sessionSaved.emit(str(outcome.path))

    # ----------------------------------------------------------- opening

    def open_dialog(self) -> None:
        """Open Session…: choose a ``.dgps`` file (opened through the window, like any file)."""
        window = self._window
        start = (
            self._path.parent if self._path else (window.photo_path().parent if window.photo_path() else "")
        )
        path, _ = QFileDialog.getOpenFileName(
            window, "Open a session", str(start), f"{SESSION_FILTER};;All files (*)"
        )
        if path:
            window.open_path(path)

    def _has_unsaved_results(self) -> bool:
        saved = {id(entry) for entry in self._saved_entries}
        return any(id(entry) not in saved for entry in self._window.history.entries())

    def has_unsaved_changes(self) -> bool:
        """Whether the history differs from the session last saved or opened (results added or removed)."""
        return [id(entry) for entry in self._window.history.entries()] != [
            id(entry) for entry in self._saved_entries
        ]

    def forget_history(self) -> None:
        """The window started anew (File › New): nothing is left to save."""
        self.forget_file()
        self._saved_entries = []

    def open(self, path: str | Path, *, confirm: bool = True) -> int | None:
        """Read the session at ``path`` and show it instead of the window's content.

        ``sessionOpened`` follows, or an error dialog.

        With ``confirm``, results not saved in a session are not replaced without the user's yes.
        """
        window = self._window
        source = Path(path)
        if confirm and self._has_unsaved_results():
            count = len(window.history.entries())
            answer = QMessageBox.question(
                window,
                APP_DISPLAY_NAME,
                f"Opening {source.name} replaces the {count} result(s) in the history, which are not saved "
                f"in a session. Open it anyway?",
                QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Open:
                return None
        if window.is_running():
            window.cancel_restore()
            window.statusBar().showMessage(f"Stopped the running restoration to open {source.name}.")
        else:
            window.statusBar().showMessage(f"Opening {source.name}\u2026")
        request = OpenRequest(request_id=next(self._ids), path=source)
        self._pending.add(request.request_id)
        self._requested.emit(request)
        return request.request_id

    def _on_opened(self, request_id: int, opened: OpenedSession) -> None:
        if request_id not in self._pending:
            return
        self._pending.discard(request_id)
        notes = list(opened.notes)
        notes.extend(self._apply(opened))
        session = opened.session
        self._path = opened.path
        self._created_at = session.created_at
        self._opened_image = (self._window.photo_serial(), session.image)
        self._embed = any(
            item.stored_state is not None and item.stored_state.weights == WEIGHTS_EMBEDDED
            for item in session.history
        ) or (session.image.data is not None and session.image.path is not None)
        self._saved_entries = self._window.history.entries()
        self._window.setWindowTitle(f"{opened.path.name} \u2014 {APP_DISPLAY_NAME}")
        message = " ".join([f"Opened {opened.path.name}.", *notes])
        self._window.statusBar().showMessage(message, 20_000 if notes else 6000)
        self.sessionOpened.emit(str(opened.path))

    def _apply(self, opened: OpenedSession) -> list[str]:
        """Put the session into the window; returns a sentence per thing that could not be restored."""
        window = self._window
        session = opened.session
        timeline = window.timeline
        while timeline.keyframe_entries():
            timeline.remove_keyframe(0)
        window.history.clear()
        window.studio_panel.set_entry(None)
        window.set_photo(
            opened.photo.rgb,
            source_name=session.image.name,
            path=opened.photo.path,
            sha256=opened.photo.sha256,
        )
        layer = window.mask_layer()
        if session.mask is not None and layer is not None:
            layer.write_region(PixelRect(0, 0, layer.width, layer.height), session.mask)
        if session.roi is not None:
            window.canvas.set_roi(*session.roi)
        window.region_action.setChecked(session.roi is not None)
        notes = self._apply_settings(session.settings)
        self._waiting_for_model = (session.settings.preset, session.class_index)
        if window.model_info() is not None:
            self._apply_model_choices()

        serial = window.photo_serial()
        source_path = None if opened.photo.path is None else str(opened.photo.path)
        history = window.history
        entries = []
        history.blockSignals(True)
        try:
            for item, result, job in zip(session.history, opened.results, opened.jobs):
                entry = HistoryEntry(
                    composite=item.composite,
                    image=item.image,
                    task=item.task,
                    class_index=item.class_index,
                    class_name=item.class_name,
                    class_number=window.class_picker.known_class_number(item.class_index),
                    seconds=item.seconds,
                    cancelled=item.cancelled,
                    source_path=source_path if job is not None else None,
                    photo_serial=serial if job is not None else 0,  # 0: no photo the window has opened
                    finished_at=item.finished_at,
                    result=result,
                    job=job,
                    edit=item.edit,
                    photo_name=session.image.name if job is not None else "",
                )
                history.add_entry(entry)
                entries.append(entry)
            history.setCurrentRow(-1)
        finally:
            history.blockSignals(False)
        if session.selected is not None:
            history.setCurrentRow(session.selected)
        if window.canvas.has_result():
            window.canvas.set_mask_visible(False)  # as after a run: the overlay would hide the result

        line = session.timeline
        if line is not None:
            added = [timeline.add_keyframe(entries[index]) for index in line.keyframes]
            if added and all(added):
                for segment, kind in enumerate(line.easing):
                    timeline.set_easing(segment, kind)
            elif not all(added):
                notes.append(
                    f"{added.count(False)} morph keyframe(s) came back without their model state "
                    f"and were left out."
                )
            timeline.frames_spin.setValue(line.frames)
            timeline.fps_spin.setValue(line.fps)
            timeline.loop_check.setChecked(line.loop)
            timeline.ping_pong_check.setChecked(line.ping_pong)
            if timeline.keyframe_entries():
                window.timeline_dock.show()
                timeline.set_position(line.position)
        return notes

    def _apply_settings(self, settings: TaskSettings) -> list[str]:
        panel = self._window.task_panel
        panel.set_task(settings.task)
        notes = []
        if settings.sr_factor in SR_FACTORS:
            panel.set_sr_factor(settings.sr_factor)
        else:
            notes.append(
                f"The super-resolution factor \u00d7{settings.sr_factor} is not offered; "
                f"\u00d7{panel.sr_factor()} is selected."
            )
        panel.hybrid_grayscale.setChecked(settings.hybrid_grayscale)
        panel.hybrid_sr.setChecked(settings.hybrid_sr)
        panel.hybrid_mask.setChecked(settings.hybrid_mask)
        panel.quick_check.setChecked(settings.quick)
        panel.seed_spin.setValue(settings.seed)
        panel.iteration_scale_spin.setValue(settings.iteration_scale)
        return notes

    def _apply_model_choices(self) -> None:
        """The preset and class of an opened session, once the model says which exist."""
        if self._waiting_for_model is None:
            return
        preset, class_index = self._waiting_for_model
        self._waiting_for_model = None
        window = self._window
        notes = []
        combo = window.task_panel.preset_combo
        found = combo.findData(preset)
        if found >= 0:
            combo.setCurrentIndex(found)
        elif preset is not None:
            notes.append(
                f"The preset {preset} is not available for this model; the default preset is selected."
            )
        picker = window.class_picker
        if class_index is None or class_index < len(picker.class_names()):
            picker.set_selected_class(class_index)
        else:
            notes.append("The session's class is not one of this model's classes; Auto is selected.")
            picker.set_selected_class(None)
        if notes:
            window.statusBar().showMessage(" ".join(notes), 15_000)

    def _on_failed(self, request_id: int, sentence: str, details: str) -> None:
        if request_id not in self._pending:
            return
        self._pending.discard(request_id)
        self._pending_saves.discard(request_id)
        self._entries_being_saved.pop(request_id, None)
        self._window.statusBar().clearMessage()
        self._window.show_error(sentence, details)
