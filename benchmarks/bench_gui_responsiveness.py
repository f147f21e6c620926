"""Responsiveness of the desktop app: how soon the window appears, how long the GUI's event loop
stalls while a restore runs on the CPU, and how soon a live frame reaches the screen.

Prints the three measurements side by side with their targets (nothing is asserted):

* **Window appears.** ``python -m dgp_studio`` is launched ``--launches`` times with empty
  settings, cache and data folders; each time the app writes the moment its main window first
  paints (the opt-in ``DGP_STUDIO_REPORT_SHOWN`` probe in ``dgp_studio/__main__.py``), and the
  time from just before the process starts to that paint is taken. The probe also says whether
  torch had been imported before the window was shown (it must not be: the model loads on the
  engine thread once the window is up). Target: under 2 s.
* **Event-loop stalls.** The real ``MainWindow`` and its ``EngineController`` restore a photo
  with the built-in model on the CPU, started by clicking Restore and cancelled after
  ``--seconds``. A 5 ms precise timer on the GUI thread records every tick; a stall is the gap
  between two ticks (so an idle loop shows about 5 ms). Target: the longest stays under 50 ms.
  The same timer first runs for 2 s with the window idle: that baseline is what the machine
  alone costs (other processes, the scheduler), to tell a busy machine from a slow app.
* **Frame latency.** For each live frame: from the moment the engine handed it to the worker
  thread (``TimedFrame.produced_at``, ``time.perf_counter()`` is one clock for all threads) to
  the moment the canvas finished painting it (an invisible item stacked above the result is
  painted last in the same repaint, see :class:`PaintWitness`). Frames are
  coalesced (the newest wins); the count of frames never painted and the most frames ever
  waiting behind a painted one are printed too. Target: every painted frame within 100 ms.

The in-process part runs on Qt's ``offscreen`` platform unless ``QT_QPA_PLATFORM`` says
otherwise; painting still happens there (into the offscreen backing store).

Usage::

    python benchmarks/bench_gui_responsiveness.py
    python benchmarks/bench_gui_responsiveness.py --seconds 20 --launches 7
    python benchmarks/bench_gui_responsiveness.py --preset builtin64_colorize   # the full preset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QEventLoop, QRectF, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsItem

from dgp_studio.__main__ import SHOWN_REPORT_VARIABLE
from dgp_studio.canvas import ResultItem
from dgp_studio.settings import (
    CACHE_DIR_VARIABLE,
    CONFIG_DIR_VARIABLE,
    DATA_DIR_VARIABLE,
    AppSettings,
)

WINDOW_APPEAR_TARGET_S = 2.0
STALL_TARGET_MS = 50.0
FRAME_LATENCY_TARGET_MS = 100.0
TICK_INTERVAL_MS = 5
IDLE_BASELINE_SECONDS = 2.0
SETTLE_SECONDS = 0.5
QUICK_PRESET = "quick"
# The Tiny ImageNet contact sheet in the read-only shared/ folder (a sibling of the repository or inside it).
SAMPLE_PHOTO_CANDIDATES = tuple(
    root / "data" / "tiny-imagenet-200" / "sample.png"
    for root in (REPOSITORY.parent / "shared", REPOSITORY / "shared")
)


# ----------------------------------------------------------------------------- launches


@dataclass(frozen=True)
class LaunchMeasurement:
    """One launch of ``python -m dgp_studio``."""

    seconds_to_first_paint: float
    torch_imported_before_show: bool


def isolated_environment(folder: Path) -> dict[str, str]:
    """The environment for an app that sees empty user folders under ``folder``."""
    return {
        **os.environ,
        CONFIG_DIR_VARIABLE: str(folder / "config"),
        CACHE_DIR_VARIABLE: str(folder / "cache"),
        DATA_DIR_VARIABLE: str(folder / "data"),
        "DGP_STUDIO_LOG_DIR": str(folder / "logs"),
        "XDG_CONFIG_HOME": str(folder / "xdg-config"),  # QSettings (window geometry, recent files)
    }


def launch_once(*, timeout_s: float = 60.0) -> LaunchMeasurement:
    """Start the app, wait for its window's first paint, then end the process."""
    with tempfile.TemporaryDirectory(prefix="dgp-launch-") as name:
        folder = Path(name)
        report = folder / "shown.json"
        environment = {**isolated_environment(folder), SHOWN_REPORT_VARIABLE: str(report)}
        with open(folder / "stderr.txt", "w+b") as stderr:
            started_at = time.time()
            process = subprocess.Popen(
                [sys.executable, "-m", "dgp_studio"],
                cwd=REPOSITORY,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                while not report.exists():
                    if process.poll() is not None:
                        stderr.seek(0)
                        raise RuntimeError(
                            f"dgp_studio exited with code {process.returncode} before its window painted:\n"
                            + stderr.read().decode(errors="replace")[-2000:]
                        )
                    if time.time() - started_at > timeout_s:
                        raise RuntimeError(f"dgp_studio's window did not paint within {timeout_s:.0f} s.")
                    time.sleep(0.005)
                shown = json.loads(report.read_text(encoding="utf-8"))
            finally:
                process.kill()
                process.wait(30)
    return LaunchMeasurement(
        seconds_to_first_paint=float(shown["shown_at"]) - started_at,
        torch_imported_before_show=bool(shown["torch_imported_before_show"]),
    )


def measure_window_appear(launches: int) -> list[LaunchMeasurement]:
    """``launches`` launches, one after another."""
    return [launch_once() for _ in range(launches)]


# ------------------------------------------------------------------ in-process probes


class EventLoopProbe:
    """Records the gaps between ticks of a precise timer on the GUI thread."""

    def __init__(self, interval_ms: int = TICK_INTERVAL_MS) -> None:
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._ticks: list[float] = []

    def start(self) -> None:
        self._ticks = [time.perf_counter()]
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._tick()

    def _tick(self) -> None:
        self._ticks.append(time.perf_counter())

    def gaps_ms(self) -> list[float]:
        """Milliseconds between consecutive ticks (the first counted from :meth:`start`)."""
        return [1000 * (later - earlier) for earlier, later in zip(self._ticks, self._ticks[1:])]

    def gap_times_s(self) -> list[float]:
        """When each gap ended, in seconds after :meth:`start`."""
        return [tick - self._ticks[0] for tick in self._ticks[1:]]


class PaintWitness(QGraphicsItem):
    """An invisible item over the whole photo, stacked above everything else on the canvas.

    Whenever the view repaints part of the photo it paints the items there bottom to top, so
    this item's ``paint`` runs after the result item's in the same pass: ``on_paint`` is called
    once the live frame under it has been drawn.
    """

    def __init__(self, bounds: QRectF, on_paint: Callable[[], None]) -> None:
        super().__init__()
        self._bounds = QRectF(bounds)
        self._on_paint = on_paint
        self.setZValue(1e9)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter, option, widget=None) -> None:
        self._on_paint()


class FrameLatencyProbe:
    """Times each live frame from the engine to the end of the canvas paint that shows it.

    Wraps the window's ``worker.take_frame``, ``canvas.show_live_frame`` and ``canvas.show_preview``
    (whole-photo previews; as instance
    attributes, so the window's own code paths run unchanged) and watches the canvas's
    repaints with a :class:`PaintWitness`. Create it once the photo is open.
    """

    def __init__(self, window) -> None:
        self._worker = window.engine_controller.worker
        self._canvas = window.canvas
        self._result_item = next(
            item for item in self._canvas.scene().items() if isinstance(item, ResultItem)
        )
        self._witness = PaintWitness(self._canvas.sceneRect(), self._painted)
        self.latencies_ms: list[float] = []
        self.frames_taken = 0
        self.frames_shown = 0
        self.frames_superseded_on_canvas = 0
        self.most_frames_behind = 0  # newer frames the engine had produced when a frame was painted
        self._produced_at_start = 0
        self._replaced_at_start = 0
        self._last_taken: tuple[float, int] | None = None  # (produced_at, frames produced by then)
        self._pending: tuple[int, float, int] | None = None  # (pixmap key, produced_at, sequence)

    def install(self) -> None:
        self._produced_at_start = self._worker.frames_produced
        self._replaced_at_start = self._worker.frames_replaced
        self._worker.take_frame = self._take_frame
        self._canvas.show_live_frame = self._show_live_frame
        self._canvas.show_preview = self._show_preview
        self._canvas.scene().addItem(self._witness)

    def uninstall(self) -> None:
        del self._worker.take_frame
        del self._canvas.show_live_frame
        del self._canvas.show_preview
        self._canvas.scene().removeItem(self._witness)

    def frames_produced(self) -> int:
        return self._worker.frames_produced - self._produced_at_start

    def frames_replaced_in_mailbox(self) -> int:
        return self._worker.frames_replaced - self._replaced_at_start

    def _take_frame(self):
        timed = self._worker.take_timed_frame()
        if timed is None:
            return None
        self.frames_taken += 1
        self._last_taken = (timed.produced_at, self._worker.frames_produced)
        return timed.frame

    def _show_live_frame(self, *args, **kwargs) -> None:
        type(self._canvas).show_live_frame(self._canvas, *args, **kwargs)
        self._note_shown()

    def _show_preview(self, *args, **kwargs) -> None:
        type(self._canvas).show_preview(self._canvas, *args, **kwargs)
        self._note_shown()

    def _note_shown(self) -> None:
        if self._last_taken is None:
            return
        if self._pending is not None:
            self.frames_superseded_on_canvas += 1
        produced_at, sequence = self._last_taken
        self._pending = (self._result_item.pixmap().cacheKey(), produced_at, sequence)
        self.frames_shown += 1

    def _painted(self) -> None:
        if self._pending is None or self._result_item.pixmap().cacheKey() != self._pending[0]:
            return
        _key, produced_at, sequence = self._pending
        self._pending = None
        self.latencies_ms.append(1000 * (time.perf_counter() - produced_at))
        self.most_frames_behind = max(self.most_frames_behind, self._worker.frames_produced - sequence)


# --------------------------------------------------------------------- the restore run


@dataclass
class RestoreMeasurement:
    """What one measured restore produced."""

    seconds: float
    ticks: int
    gaps_ms: list[float]
    gap_times_s: list[float]
    latencies_ms: list[float]
    frames_produced: int
    frames_replaced_in_mailbox: int
    frames_taken: int
    frames_shown: int
    frames_superseded_on_canvas: int
    most_frames_behind: int
    steps_done: int
    notes: list[str] = field(default_factory=list)


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Run the event loop (blocking, not spinning) until ``condition()`` holds."""
    deadline = time.perf_counter() + timeout_s
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: (condition() or time.perf_counter() > deadline) and loop.quit())
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}.")


def open_window(*, engine_factory=None, settings: AppSettings | None = None, timeout_s: float = 300.0):
    """A shown ``MainWindow`` whose model has loaded (the built-in model on the CPU by default)."""
    from dgp_studio.main_window import MainWindow

    window = MainWindow(
        app_settings=settings or AppSettings(device="cpu"),
        engine_factory=engine_factory,
    )
    window.resize(1280, 820)
    window.show()
    wait_for(lambda: window.model_info() is not None, timeout_s=timeout_s, what="the model to load")
    return window


def run_event_loop_for(seconds: float) -> None:
    """Let the GUI's event loop run (repaints, queued signals) for ``seconds``."""
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def measure_idle_loop(seconds: float) -> list[float]:
    """Gaps between timer ticks (ms) while the window sits idle: what the machine alone costs."""
    probe = EventLoopProbe()
    probe.start()
    run_event_loop_for(seconds)
    probe.stop()
    return probe.gaps_ms()


def sample_photo() -> tuple[np.ndarray, str]:
    """The photo to restore and what it is.

    The Tiny ImageNet contact sheet (832 × 662, a hundred real photos) when shared/ holds it,
    otherwise a synthetic photo-like image of the same size (smooth shading, an edge, noise).
    """
    for candidate in SAMPLE_PHOTO_CANDIDATES:
        if candidate.exists():
            from PIL import Image

            with Image.open(candidate) as image:
                return np.asarray(image.convert("RGB")).copy(), str(candidate)
    generator = np.random.default_rng(0)
    rows, cols = np.mgrid[0:662, 0:832].astype(np.float32)
    shading = 0.5 + 0.5 * np.sin(cols / 90.0)[..., None] * np.cos(rows / 70.0)[..., None]
    tint = np.array([0.9, 0.7, 0.5], dtype=np.float32)
    disc = ((cols - 420) ** 2 + (rows - 330) ** 2 < 160**2)[..., None] * np.array([0.1, 0.3, 0.4], np.float32)
    noise = generator.normal(0.0, 0.04, size=(662, 832, 3)).astype(np.float32)
    return (np.clip(shading * tint + disc + noise, 0, 1) * 255).astype(np.uint8), "a synthetic photo"


def prepare_job(window, *, photo: np.ndarray, task: str, preset: str) -> None:
    """Open ``photo`` and set the task panel as a user would for this run."""
    window.set_photo(photo, source_name="benchmark photo")
    panel = window.task_panel
    panel.set_task(task)
    if preset == QUICK_PRESET:
        # The quick draft with every stage stretched, so that the run outlasts the measurement.
        panel.quick_check.setChecked(True)
        panel.iteration_scale_spin.setValue(panel.iteration_scale_spin.maximum())
    else:
        index = panel.preset_combo.findData(preset)
        if index < 0:
            names = [panel.preset_combo.itemData(i) for i in range(1, panel.preset_combo.count())]
            raise SystemExit(f"--preset {preset}: not a preset for {task}; choose quick or one of {names}.")
        panel.preset_combo.setCurrentIndex(index)
        panel.quick_check.setChecked(False)
        panel.iteration_scale_spin.setValue(1.0)
    if task in ("inpaint", "hybrid"):
        left, top, size = window.canvas.roi()
        window.mask_layer().fill_rect(left + size / 4, top + size / 4, left + 3 * size / 4, top + 3 * size / 4)


def measure_restore(
    window,
    *,
    seconds: float,
    photo: np.ndarray,
    task: str = "colorize",
    preset: str = QUICK_PRESET,
    timeout_s: float = 300.0,
) -> RestoreMeasurement:
    """Click Restore, cancel after ``seconds`` (unless it ends first), and measure until it ends."""
    prepare_job(window, photo=photo, task=task, preset=preset)
    # The photo's first paint and the job's description belong to opening it, not to the restore.
    run_event_loop_for(SETTLE_SECONDS)
    loop_probe = EventLoopProbe()
    frame_probe = FrameLatencyProbe(window)
    frame_probe.install()
    results_before = window.history.count()
    ended = QEventLoop()
    window.runEnded.connect(ended.quit)
    cancel_timer = QTimer()
    cancel_timer.setSingleShot(True)
    cancel_timer.timeout.connect(window.cancel_restore)
    give_up_timer = QTimer()
    give_up_timer.setSingleShot(True)
    give_up_timer.timeout.connect(ended.quit)
    try:
        loop_probe.start()
        started_at = time.perf_counter()
        window.restore_button.click()  # the path a user's click takes
        if not window.is_running():
            raise RuntimeError("the restore did not start (see the window's status bar or error dialog).")
        cancel_timer.start(round(seconds * 1000))
        give_up_timer.start(round(timeout_s * 1000))
        ended.exec()
        elapsed = time.perf_counter() - started_at
        loop_probe.stop()
    finally:
        cancel_timer.stop()
        give_up_timer.stop()
        window.runEnded.disconnect(ended.quit)
        frame_probe.uninstall()
    if window.is_running():
        raise RuntimeError(f"the restore did not end within {timeout_s:.0f} s of being cancelled.")
    notes = []
    if window.history.count() == results_before:
        notes.append("the run ended without a result")
    entry = window.history.current_entry()
    steps_done = int(entry.result.steps_done) if entry is not None and entry.result is not None else 0
    gaps = loop_probe.gaps_ms()
    return RestoreMeasurement(
        seconds=elapsed,
        ticks=len(gaps),
        gaps_ms=gaps,
        gap_times_s=loop_probe.gap_times_s(),
        latencies_ms=frame_probe.latencies_ms,
        frames_produced=frame_probe.frames_produced(),
        frames_replaced_in_mailbox=frame_probe.frames_replaced_in_mailbox(),
        frames_taken=frame_probe.frames_taken,
        frames_shown=frame_probe.frames_shown,
        frames_superseded_on_canvas=frame_probe.frames_superseded_on_canvas,
        most_frames_behind=frame_probe.most_frames_behind,
        steps_done=steps_done,
        notes=notes,
    )


# ------------------------------------------------------------------------------ report


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary_rows(
    launches: Sequence[LaunchMeasurement],
    restore: RestoreMeasurement,
    idle_gaps_ms: Sequence[float] = (),
) -> list[tuple[str, str, str, str]]:
    """``(measurement, value, target, met?)`` rows for the table (``idle_gaps_ms``: the baseline)."""

    def verdict(met: bool) -> str:
        return "yes" if met else "NO"

    rows = []
    if launches:
        appear = [launch.seconds_to_first_paint for launch in launches]
        torch_early = sum(launch.torch_imported_before_show for launch in launches)
        rows.append((
            f"window appears after launch ({len(launches)} launches)",
            f"median {statistics.median(appear):.2f} s, max {max(appear):.2f} s",
            f"< {WINDOW_APPEAR_TARGET_S:.0f} s",
            verdict(max(appear) < WINDOW_APPEAR_TARGET_S),
        ))
        rows.append((
            "torch imported before the window is shown",
            f"{torch_early} of {len(launches)} launches",
            "never",
            verdict(torch_early == 0),
        ))
    if idle_gaps_ms:
        rows.append((
            "event-loop stall, idle window (the machine's baseline)",
            f"longest {max(idle_gaps_ms):.1f} ms, p99 {percentile(idle_gaps_ms, 0.99):.1f} ms",
            "\u2014",
            "\u2014",
        ))
    gaps = restore.gaps_ms
    longest = max(gaps)
    longest_at = restore.gap_times_s[gaps.index(longest)]
    over = sum(gap > STALL_TARGET_MS for gap in gaps)
    rows.append((
        f"event-loop stall during a {restore.seconds:.1f} s restore",
        (f"longest {longest:.1f} ms (at {longest_at:.1f} s), p99 {percentile(gaps, 0.99):.1f} ms, "
         f"{over} of {len(gaps)} gaps > {STALL_TARGET_MS:.0f} ms"),
        f"< {STALL_TARGET_MS:.0f} ms",
        verdict(longest < STALL_TARGET_MS),
    ))
    latencies = restore.latencies_ms
    if latencies:
        rows.append((
            f"frame latency, engine to painted ({len(latencies)} frames)",
            (f"median {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
             f"max {max(latencies):.1f} ms"),
            f"< {FRAME_LATENCY_TARGET_MS:.0f} ms",
            verdict(max(latencies) < FRAME_LATENCY_TARGET_MS),
        ))
    else:
        rows.append(("frame latency, engine to painted", "no frame was painted", "", "NO"))
    dropped = restore.frames_produced - len(latencies)
    rows.append((
        "frames coalesced (produced, never painted)",
        (f"{dropped} of {restore.frames_produced} ({restore.frames_replaced_in_mailbox} replaced unread, "
         f"{restore.frames_superseded_on_canvas} replaced before a paint, "
         f"{restore.frames_taken - restore.frames_shown} stale at the end)"),
        "newest wins",
        "\u2014",
    ))
    rows.append((
        "newer frames already produced when a frame is painted",
        f"at most {restore.most_frames_behind}",
        "\u2264 1 (no backlog)",
        verdict(restore.most_frames_behind <= 1),
    ))
    return rows


def format_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("measurement", "value", "target", "met?")
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(4)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="how long the restore runs (default 12)")
    parser.add_argument("--launches", type=int, default=5, help="app launches to time (default 5; 0 skips)")
    parser.add_argument(
        "--preset", default=QUICK_PRESET,
        help="'quick' (the task's default preset in quick mode, stretched to outlast --seconds; default) "
             "or a preset name, run as shipped (its latent search comes first)",
    )
    parser.add_argument("--task", default="colorize", choices=("colorize", "inpaint", "sr"))
    parser.add_argument("--image", type=Path, help="the photo to restore (default: a built-in sample)")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="the engine's CPU threads, as in Settings (default 0: torch's default, one per core)",
    )
    options = parser.parse_args(argv)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, Qt platform {os.environ['QT_QPA_PLATFORM']}"
          + (f", load average {load[0]:.2f} at the start" if load else ""))
    launches = measure_window_appear(options.launches)

    with tempfile.TemporaryDirectory(prefix="dgp-responsiveness-") as name:
        folder = Path(name)
        for variable, value in isolated_environment(folder).items():
            os.environ[variable] = value
        app = QApplication.instance() or QApplication([sys.argv[0]])
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder / "qsettings"))
        if options.image is not None:
            from engine.errors import BadInputError
            from engine.imageio import load_image

            try:
                photo, photo_name = load_image(options.image).rgb, str(options.image)
            except BadInputError as error:
                raise SystemExit(f"--image: {error}") from None
        else:
            photo, photo_name = sample_photo()
        if options.threads < 0:
            raise SystemExit("--threads: give 0 (torch's default) or a positive number of threads.")
        window = open_window(settings=AppSettings(device="cpu", threads=options.threads))
        info = window.model_info()
        import torch  # loaded by the engine thread by now

        print(f"Model: {info.display_name} ({info.resolution} px) on {info.device}, {info.precision}, "
              f"engine threads: {torch.get_num_threads()}; task {options.task}, preset {options.preset}; "
              f"photo {photo_name} ({photo.shape[1]} × {photo.shape[0]})")
        try:
            idle_gaps = measure_idle_loop(IDLE_BASELINE_SECONDS)
            restore = measure_restore(window, seconds=options.seconds, photo=photo, task=options.task,
                                      preset=options.preset)
        finally:
            window.shutdown(timeout_ms=60_000)
            window.close()
            app.processEvents()
    per_step = f", {restore.seconds / restore.steps_done:.3f} s per step overall" if restore.steps_done else ""
    print(f"Restore: {restore.steps_done} steps in {restore.seconds:.1f} s{per_step}; "
          f"{restore.frames_produced} frames produced"
          + (f"; {'; '.join(restore.notes)}" if restore.notes else ""))
    print()
    print(format_table(summary_rows(launches, restore, idle_gaps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
