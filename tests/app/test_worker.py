"""The engine thread: frames coalesce, cancel lands within one iteration, errors become one sentence."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtCore import QObject

from dgp_studio.worker import EngineController, RestoreJob, error_sentence
from engine.errors import BadInputError, NonFiniteLossError
from engine.events import Cancelled, Finished, Frame, Started, Step


class GuiRecorder(QObject):
    """Lives on the GUI thread, so the worker's signals reach it queued, like the window."""

    def __init__(self, controller: EngineController) -> None:
        super().__init__()
        self.worker = controller.worker
        self.frame_notifications = 0
        self.frames: list[Frame] = []
        self.events: list = []
        self.failures: list[tuple[str, str]] = []
        self.worker.frameAvailable.connect(self.on_frame_available)
        self.worker.eventsAvailable.connect(self.on_events_available)
        self.worker.failed.connect(self.on_failed)

    def on_frame_available(self) -> None:
        self.frame_notifications += 1
        frame = self.worker.take_frame()
        if frame is not None:
            self.frames.append(frame)

    def on_events_available(self) -> None:
        self.events.extend(self.worker.take_events())

    def on_failed(self, sentence: str, details: str) -> None:
        self.failures.append((sentence, details))

    def steps(self) -> list[int]:
        return [event.step for event in self.events if isinstance(event, Step)]


@dataclass
class FakeModel:
    display_name: str = "fake model"
    class_names: tuple[str, ...] = ("tench", "goldfish")
    class_numbers: tuple[int, ...] = (0, 1)


class FakeEngine:
    """Just enough of ``engine.api.Engine`` for the worker; ``script`` yields the events."""

    resolution = 32
    device = "cpu"
    autocast_dtype = None

    def __init__(self, script) -> None:
        self.model = FakeModel()
        self._script = script

    def presets_for(self, task: str) -> list[str]:
        return ["fake_preset"]

    def schedule_for(self, *args, **kwargs):
        raise BadInputError("the fake engine has no schedules.")

    def prepare(self, request):
        # The real engine plans the request once; the fake's "plan" is the request itself.
        return request

    def restore(self, request, *, should_stop, frame_interval):
        yield from self._script(request, should_stop)


def job(image: np.ndarray | None = None, **overrides) -> RestoreJob:
    image = np.zeros((40, 40, 3), dtype=np.uint8) if image is None else image
    fields = {"image": image, "task": "reconstruct", "roi": (0, 0, 40), "quick": True}
    fields.update(overrides)
    return RestoreJob(**fields)


def frame(step: int) -> Frame:
    picture = np.full((4, 4, 3), step % 256, dtype=np.uint8)
    return Frame(
        stage=0,
        step=step,
        total_steps=200,
        image=picture,
        degraded=picture,
        target=picture,
        losses={"total": 1.0 / step},
        seconds_per_step=0.001,
    )


@pytest.fixture
def controllers():
    made: list[EngineController] = []

    def make(**kwargs) -> EngineController:
        controller = EngineController(**kwargs)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        assert controller.shutdown(timeout_ms=30_000)


def test_frames_coalesce_into_one_notification_carrying_the_newest(qtbot, controllers):
    produced, release = threading.Event(), threading.Event()

    def script(request, should_stop):
        for step in range(1, 201):
            yield frame(step)
        produced.set()
        release.wait(30)
        yield Cancelled(result=None)

    controller = controllers(engine_factory=lambda settings: FakeEngine(script))
    recorder = GuiRecorder(controller)
    assert controller.restore(job())
    # The GUI thread does not process events meanwhile: 200 frames pile up in the worker.
    assert produced.wait(60)
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        release.set()
    assert recorder.frame_notifications == 1  # no backlog of queued signals
    assert [shown.step for shown in recorder.frames] == [200]  # and it carries the newest frame


def test_non_frame_events_arrive_in_order_and_all_of_them(qtbot, controllers):
    def script(request, should_stop):
        for step in range(1, 51):
            yield Step(
                stage=0,
                step=step,
                total_steps=50,
                losses={"total": 1.0},
                seconds_per_step=0.0,
                eta_seconds=0.0,
            )
        yield Cancelled(result=None)

    controller = controllers(engine_factory=lambda settings: FakeEngine(script))
    recorder = GuiRecorder(controller)
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        controller.restore(job())
    recorder.on_events_available()
    assert recorder.steps() == list(range(1, 51))
    assert isinstance(recorder.events[-1], Cancelled)


def test_a_second_run_is_refused_while_one_runs(qtbot, controllers):
    release = threading.Event()

    def script(request, should_stop):
        release.wait(30)
        yield Cancelled(result=None)

    controller = controllers(engine_factory=lambda settings: FakeEngine(script))
    assert controller.restore(job())
    assert controller.is_running()
    assert not controller.restore(job())
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        release.set()
    assert not controller.is_running()


def test_cancel_lands_within_one_iteration_and_keeps_the_best_result(qtbot, controllers, tiny_engine_factory):
    seen = {"after_stop": [], "threads": set()}

    def factory(settings):
        engine = tiny_engine_factory(settings)
        real_restore = engine.restore

        def restore(request, *, should_stop, frame_interval):
            for event in real_restore(request, should_stop=should_stop, frame_interval=frame_interval):
                seen["threads"].add(threading.get_ident())
                if isinstance(event, Step) and should_stop.is_set():
                    seen["after_stop"].append(event.step)
                yield event

        engine.restore = restore
        return engine

    controller = controllers(engine_factory=factory)
    recorder = GuiRecorder(controller)
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:20, 10:30] = 1
    assert controller.restore(job(task="inpaint", mask=mask, iteration_scale=40.0))
    qtbot.waitUntil(lambda: len(recorder.steps()) >= 3, timeout=120_000)
    with qtbot.waitSignal(controller.runEnded, timeout=60_000):
        controller.cancel()
    recorder.on_events_available()
    started = next(event for event in recorder.events if isinstance(event, Started))
    ended = recorder.events[-1]
    assert isinstance(ended, Cancelled) and ended.result is not None
    assert ended.result.steps_done < started.plan.total_steps
    assert len(seen["after_stop"]) <= 1  # at most the iteration already under way
    assert ended.result.composite is not None and ended.result.composite.shape == (40, 40, 3)
    assert threading.get_ident() not in seen["threads"]  # torch ran on the engine thread only
    assert not recorder.failures


def test_a_quick_tiny_restore_streams_frames_and_finishes(qtbot, controllers, tiny_engine_factory):
    controller = controllers(engine_factory=tiny_engine_factory)
    recorder = GuiRecorder(controller)
    with qtbot.waitSignal(controller.runEnded, timeout=120_000):
        controller.restore(job(task="colorize", class_index=3))
    recorder.on_events_available()
    assert not recorder.failures
    finished = recorder.events[-1]
    assert isinstance(finished, Finished)
    assert finished.result.class_index == 3
    assert recorder.frames and recorder.frames[-1].image.shape == (32, 32, 3)
    assert (
        recorder.steps() == sorted(recorder.steps()) and recorder.steps()[-1] == finished.result.total_steps
    )


def test_a_model_that_fails_to_load_reports_one_sentence(qtbot, controllers):
    def factory(settings):
        raise BadInputError("G.pth is not a BigGAN generator checkpoint.")

    controller = controllers(engine_factory=factory)
    recorder = GuiRecorder(controller)
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        assert controller.restore(job())
    assert recorder.failures[0][0] == "G.pth is not a BigGAN generator checkpoint."
    assert not controller.is_running()


def test_an_unexpected_engine_error_becomes_a_sentence_with_details(qtbot, controllers):
    def script(request, should_stop):
        yield Step(
            stage=0, step=1, total_steps=5, losses={"total": 1.0}, seconds_per_step=0.0, eta_seconds=0.0
        )
        raise RuntimeError("boom")

    controller = controllers(engine_factory=lambda settings: FakeEngine(script))
    recorder = GuiRecorder(controller)
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        controller.restore(job())
    sentence, details = recorder.failures[0]
    assert sentence == "The engine stopped because of an unexpected error (RuntimeError: boom)."
    assert "Traceback" in details and "boom" in details
    # The thread survives: the next run works.
    with qtbot.waitSignal(controller.runEnded, timeout=30_000):
        assert controller.restore(job())


def test_shutdown_during_a_run_stops_the_thread(qtbot, controllers):
    started = threading.Event()

    def script(request, should_stop):
        step = 0
        while not should_stop.is_set():
            step += 1
            started.set()
            yield Step(
                stage=0, step=step, total_steps=10**9, losses={}, seconds_per_step=0.0, eta_seconds=0.0
            )
            should_stop.wait(0.01)
        yield Cancelled(result=None)

    controller = controllers(engine_factory=lambda settings: FakeEngine(script))
    controller.restore(job())
    assert started.wait(30)
    thread = controller.thread
    assert controller.shutdown(timeout_ms=10_000)
    assert not thread.isRunning()


def test_error_sentences():
    assert error_sentence(BadInputError("x.png is not an image.")) == "x.png is not an image."
    # Engine messages that start in lower case read as sentences on their own ...
    assert (
        error_sentence(BadInputError("inpainting needs a mask: paint the missing region first."))
        == "Inpainting needs a mask: paint the missing region first."
    )
    # ... but names, options and identifiers at the start are kept as written.
    for text in ("--task inpaint needs --mask MASK.png.", "hole_region: size must be positive.", "photos/a: bad."):
        assert error_sentence(BadInputError(text)) == text
    assert "unstable" in error_sentence(NonFiniteLossError("nan"))
    assert "out of memory" in error_sentence(RuntimeError("CUDA out of memory. Tried to allocate"))
