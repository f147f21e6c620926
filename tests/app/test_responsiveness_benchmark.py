"""Keeps ``benchmarks/bench_gui_responsiveness.py`` working: its measurements run briefly on the
tiny model and must produce numbers (no timing is asserted; the benchmark itself reports those)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gui_responsiveness.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gui_responsiveness", BENCHMARK_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_restore_measurements_are_produced(bench, make_window, photo, monkeypatch):
    # Measured here is responsiveness, not which stopped runs the history keeps: keep any.
    monkeypatch.setattr("dgp_studio.main_window.KEEP_STOPPED_FRACTION", 0.0)
    window = make_window()
    measured = bench.measure_restore(window, seconds=1.0, photo=photo, task="colorize", preset=bench.QUICK_PRESET)

    assert not any(isinstance(item, bench.PaintWitness) for item in window.canvas.scene().items())
    assert "take_frame" not in vars(window.engine_controller.worker), "the frame probe was left installed"
    assert "show_live_frame" not in vars(window.canvas) and "show_preview" not in vars(window.canvas)
    assert window.history.count() == 1, "the cancelled run should leave its best result"
    assert measured.steps_done > 0
    assert measured.ticks == len(measured.gaps_ms) > 10
    assert len(measured.gap_times_s) == len(measured.gaps_ms)
    assert measured.frames_produced >= 1
    assert 1 <= len(measured.latencies_ms) <= measured.frames_shown <= measured.frames_taken
    assert measured.frames_taken <= measured.frames_produced
    assert all(latency > 0 for latency in measured.latencies_ms)

    idle_gaps = bench.measure_idle_loop(0.2)
    assert len(idle_gaps) > 5

    rows = bench.summary_rows([], measured, idle_gaps)
    assert [row[0].split(" (")[0].split(" during")[0] for row in rows] == [
        "event-loop stall, idle window",
        "event-loop stall",
        "frame latency, engine to painted",
        "frames coalesced",
        "newer frames already produced when a frame is painted",
    ]
    assert all(len(row) == 4 for row in rows)
    table = bench.format_table(rows)
    assert table.splitlines()[0].startswith("measurement")


def test_a_launch_reports_the_first_paint(bench):
    (launch,) = bench.measure_window_appear(1)

    assert launch.seconds_to_first_paint > 0
    assert not launch.torch_imported_before_show, "torch must load after the window is up"
    rows = bench.summary_rows([launch], _idle_measurement(bench))
    assert rows[0][0] == "window appears after launch (1 launches)"
    assert rows[1][3] == "yes"


def _idle_measurement(bench):
    """A measurement with a few ticks and no frames (enough for the launch rows)."""
    return bench.RestoreMeasurement(
        seconds=0.1, ticks=3, gaps_ms=[5.0, 5.1, 4.9], gap_times_s=[0.005, 0.0101, 0.015],
        latencies_ms=[], frames_produced=0, frames_replaced_in_mailbox=0, frames_taken=0,
        frames_shown=0, frames_superseded_on_canvas=0, most_frames_behind=0, steps_done=0,
    )
