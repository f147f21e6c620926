"""The run progress panel: the time left, and the loss sparkline drawn per stage."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dgp_studio.progress import LossSparkline, RunProgressPanel


def step(stage: int, number: int, loss: float, eta: float = 12.0) -> SimpleNamespace:
    return SimpleNamespace(
        stage=stage, step=number, total_steps=6, losses={"total": loss}, seconds_per_step=0.1, eta_seconds=eta
    )


def test_the_time_left_is_shown_during_a_run_and_nothing_stands_in_for_it_after(qtbot):
    panel = RunProgressPanel()
    qtbot.addWidget(panel)
    panel.begin()
    assert panel.eta_label.text() == ""
    panel.on_step(step(0, 1, 1.0))
    assert panel.eta_label.text().startswith("12 s left")
    panel.finish("Done after 6 of 6 iterations (0.6 s); class: goldfish.")
    assert panel.eta_label.text() == ""


def test_each_stage_of_the_sparkline_is_scaled_to_its_own_range(qtbot):
    panel = RunProgressPanel()
    qtbot.addWidget(panel)
    panel.begin()
    # A later stage weighs more feature layers: its loss is larger, though it falls too.
    losses = [(0, 1.0), (0, 0.97), (0, 0.95), (1, 3.6), (1, 3.4), (2, 9.0)]
    for number, (stage, loss) in enumerate(losses, start=1):
        panel.on_step(step(stage, number, loss))
    sparkline = panel.sparkline
    assert sparkline.values() == [loss for _stage, loss in losses]
    segments = sparkline.segments()
    assert [(stage, first) for stage, first, _heights in segments] == [(0, 0), (1, 3), (2, 5)]
    first, second, third = (heights for _stage, _first, heights in segments)
    np.testing.assert_allclose(first, [1.0, 0.4, 0.0])  # each stage falls from its top to its bottom
    np.testing.assert_allclose(second, [1.0, 0.0])
    np.testing.assert_allclose(third, [0.5])  # one value: the middle
    assert "stages use different loss terms" in sparkline.toolTip()


def test_a_stage_spanning_more_than_a_decade_is_drawn_on_a_log_scale(qtbot):
    sparkline = LossSparkline()
    qtbot.addWidget(sparkline)
    for loss in (100.0, 10.0, 1.0):
        sparkline.add(loss, stage=0)
    [(_stage, _first, heights)] = sparkline.segments()
    np.testing.assert_allclose(heights, [1.0, 0.5, 0.0])


def test_the_sparkline_marks_where_a_stage_begins(qtbot):
    sparkline = LossSparkline()
    qtbot.addWidget(sparkline)
    sparkline.resize(201, 40)
    for loss in (1.0, 0.9, 0.8):
        sparkline.add(loss, stage=0)
    for loss in (3.0, 2.9, 2.8):
        sparkline.add(loss, stage=1)
    image = sparkline.grab().toImage()
    background = image.pixelColor(2, 38)
    # Between the third and the fourth point (x = 2 + 2.5 / 5 · 197): a faint line from top to bottom.
    boundary = round(2 + 2.5 / 5 * (sparkline.width() - 4))
    column = [image.pixelColor(boundary, y) for y in range(18, 22)]
    assert all(colour.lightness() > background.lightness() for colour in column)
    # And none elsewhere in empty space: the first stage's line ends low, the second starts high.
    assert image.pixelColor(boundary - 20, 20).lightness() == pytest.approx(background.lightness(), abs=3)


def test_an_early_stop_moves_the_stage_ticks_and_the_total(qtbot):
    panel = RunProgressPanel()
    qtbot.addWidget(panel)
    panel.begin()
    stages = [SimpleNamespace(index=i, iterations=3, unlocked_groups=2, total_groups=4) for i in range(3)]
    panel.on_started(SimpleNamespace(stages=stages, total_steps=9, search_candidates=0, task="defend",
                                     preset="studio_defend", device="cpu", precision="fp32"))
    assert panel.progress_bar.stage_starts() == [3, 6]
    panel.on_stage_began(SimpleNamespace(stage=stages[0], first_step=1))
    # Stage 1 stops after one step: the total drops to 7 and stage 2 begins at step 2.
    panel.on_step(SimpleNamespace(stage=0, step=1, total_steps=7, losses={"total": 1.0}, seconds_per_step=0.1,
                                  eta_seconds=None))
    assert panel.progress_bar.maximum() == 7 and panel.progress_bar.value() == 1
    assert panel.eta_label.text().startswith("\u2014")
    panel.on_stage_began(SimpleNamespace(stage=stages[1], first_step=2))
    assert panel.progress_bar.stage_starts() == [1, 4]
    panel.on_step(SimpleNamespace(stage=1, step=2, total_steps=5, losses={"total": 1.0}, seconds_per_step=0.1,
                                  eta_seconds=3.0))
    panel.on_stage_began(SimpleNamespace(stage=stages[2], first_step=3))
    for number in (3, 4, 5):
        panel.on_step(SimpleNamespace(stage=2, step=number, total_steps=5, losses={"total": 1.0},
                                      seconds_per_step=0.1, eta_seconds=0.0))
    assert panel.progress_bar.stage_starts() == [1, 2]
    assert panel.progress_bar.value() == panel.progress_bar.maximum() == 5
