"""Remaining-time estimates: per kind of work, warm-up excluded, robust, across the runs of a plan."""

from __future__ import annotations

import numpy as np
import pytest

from engine import events as ev
from engine.degrade import degradation_for_task
from engine.dgp import run_dgp
from engine.eta import (
    SEARCH_RELATIVE_COST,
    RemainingTime,
    RunsRemainingTime,
    Segment,
    format_remaining,
    segments_for_run,
)
from engine.events import StagePlan
from engine.schedule import Stage
from tests.conftest import make_tiny_biggan
from tests.engine.test_dgp import synthetic_target, tiny_schedule


def stage_plans(*iterations: int) -> tuple[StagePlan, ...]:
    return tuple(
        StagePlan(index=i, iterations=n, unlocked_groups=i + 2, total_groups=6, feature_layers=8)
        for i, n in enumerate(iterations)
    )


def simulated_durations(seed: int = 0):
    """Seconds per unit of a run: search batches of 16, then 100 + 100 iterations.

    The first batch and the first iteration are slow (allocation, optimiser state),
    stage 1 costs 20 % more than stage 0, every unit has ±8 % noise and a few
    iterations are 4x slower (a garbage collection, a frame written to disk).
    """
    rng = np.random.default_rng(seed)
    search = [16 * 0.02 * (1 + rng.uniform(-0.08, 0.08)) for _ in range(4)]
    search[0] = 2.0
    stages = [[base * (1 + rng.uniform(-0.08, 0.08)) for _ in range(100)] for base in (0.2, 0.24)]
    stages[0][0] = 6.0
    for spike in (30, 60):
        stages[0][spike] *= 4
    stages[1][40] *= 4
    return search, stages


def test_a_run_with_a_slow_first_step_and_a_stage_change_stays_within_25_percent():
    search, stages = simulated_durations()
    estimate = RemainingTime(segments_for_run(64, stage_plans(100, 100)))
    now = 0.0
    for batch, seconds in enumerate(search):
        now += seconds
        estimate.advance(0, 16 * (batch + 1), now)
    checked = 0
    total_iterations = 200
    done = 0
    for stage, durations in enumerate(stages):
        estimate.advance(1 + stage, 0, now)
        for index, seconds in enumerate(durations):
            now += seconds
            done += 1
            estimate.advance(1 + stage, index + 1, now)
            true_left = sum(durations[index + 1 :]) + sum(sum(d) for d in stages[stage + 1 :])
            if done >= 0.05 * total_iterations and true_left > 0:
                guess = estimate.remaining_seconds()
                assert guess is not None
                assert abs(guess - true_left) <= 0.25 * true_left, (done, guess, true_left)
                checked += 1
    assert checked == 190
    assert estimate.remaining_seconds() == 0.0


def test_nothing_measured_means_no_estimate_and_an_unseen_kind_is_priced_from_the_seen_ones():
    estimate = RemainingTime(segments_for_run(64, stage_plans(10, 10)))
    assert estimate.remaining_seconds() is None
    estimate.advance(0, 16, 0.0)   # the first batch is warm-up: not timed
    assert estimate.remaining_seconds() is None
    estimate.advance(0, 32, 16 * 0.05)
    candidate = 0.05
    iteration = candidate / SEARCH_RELATIVE_COST
    assert estimate.price("search") == pytest.approx(candidate)
    assert estimate.price("stage-0") == pytest.approx(iteration)
    assert estimate.remaining_seconds() == pytest.approx(32 * candidate + 20 * iteration)


def test_the_median_ignores_a_few_slow_units():
    estimate = RemainingTime([Segment("stage-0", 100)])
    now = 0.0
    estimate.advance(0, 0, now)
    for index in range(20):
        now += 9.0 if index in (0, 5, 11) else 0.1
        estimate.advance(0, index + 1, now)
    assert estimate.price("stage-0") == pytest.approx(0.1)


def simulate_plan(estimate: RunsRemainingTime, runs: int, run_seconds: dict[str, float], now: float,
                  *, upto: int | None = None) -> float:
    """Feed ``runs`` runs of (32 candidates, 50 + 50 iterations) as engine events."""
    for run in range(runs if upto is None else upto):
        for done in (16, 32):
            now += 16 * run_seconds["search"]
            estimate.on_event(run, ev.SearchProgress(done=done, total=32, seconds_per_candidate=0.0), now)
        step = 0
        for plan in stage_plans(50, 50):
            estimate.on_event(run, ev.StageBegan(stage=plan, first_step=step + 1), now)
            for _ in range(plan.iterations):
                now += run_seconds[f"stage-{plan.index}"]
                step += 1
                estimate.on_event(run, ev.Step(stage=plan.index, step=step, total_steps=100, losses={},
                                               seconds_per_step=0.0, eta_seconds=None), now)
            estimate.on_event(run, ev.StageEnded(stage=plan.index, steps_done=plan.iterations,
                                                 total_steps=100), now)
        estimate.on_event(run, ev.Finished(result=None), now)
    return now


def test_a_plan_of_runs_prices_runs_2_to_n_with_what_run_1_measured():
    seconds = {"search": 0.01, "stage-0": 0.2, "stage-1": 0.3}
    one_run = 32 * seconds["search"] + 50 * seconds["stage-0"] + 50 * seconds["stage-1"]
    plan = [(32, stage_plans(50, 50))] * 3
    estimate = RunsRemainingTime(plan)
    assert estimate.remaining_seconds() is None
    simulate_plan(estimate, 3, seconds, 0.0, upto=1)
    # Run 1 is over: runs 2 and 3 are priced by kind, search and stages apart.
    assert estimate.remaining_seconds() == pytest.approx(2 * one_run, rel=1e-6)
    # A plan made later starts from those prices before anything of it has run.
    later = RunsRemainingTime(plan[1:], prices=estimate.prices())
    assert later.remaining_seconds() == pytest.approx(2 * one_run, rel=1e-6)


def test_a_stage_that_stops_early_leaves_nothing_of_it_to_wait_for():
    estimate = RunsRemainingTime([(0, stage_plans(100, 100))])
    estimate.stage_began(0, 0, 0.0)
    for done in range(1, 11):
        estimate.stage_progress(0, 0, done, done * 0.5)
    assert estimate.remaining_seconds() == pytest.approx(190 * 0.5)
    estimate.stage_ended(0, 0, 10, 5.0)
    assert estimate.remaining_seconds() == pytest.approx(100 * 0.5)


def test_a_cancelled_run_of_a_plan_leaves_only_the_runs_after_it():
    seconds = {"search": 0.01, "stage-0": 0.2, "stage-1": 0.3}
    estimate = RunsRemainingTime([(32, stage_plans(50, 50))] * 2)
    now = simulate_plan(estimate, 1, seconds, 0.0)
    estimate.on_event(1, ev.SearchProgress(done=16, total=32, seconds_per_candidate=0.0), now)
    estimate.on_event(1, ev.Cancelled(result=None), now + 0.1)
    assert estimate.remaining_seconds() == 0.0


def test_format_remaining():
    assert format_remaining(None) == "\u2014"
    assert format_remaining(float("nan")) == "\u2014"
    assert format_remaining(44.6) == "45 s left"
    assert format_remaining(425) == "7 min 05 s left"
    assert format_remaining(5520) == "1 h 32 min left"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_run_dgp_reports_a_robust_eta_from_a_slow_first_step_on():
    generator, discriminator = make_tiny_biggan()
    discriminator.freeze()
    stages = [
        Stage(iterations=20, feature_layers="all", unlocked_groups=2, lr_ratio=1.0, g_lr=1e-3, z_lr=1e-2,
              w_d=1.0, w_mse=1.0, use_in=False),
        Stage(iterations=20, feature_layers="all", unlocked_groups="all", lr_ratio=1.0, g_lr=1e-3,
              z_lr=1e-2, w_d=1.0, w_mse=1.0, use_in=False),
    ]
    rng = np.random.default_rng(1)
    durations = [0.1 * (1 + rng.uniform(-0.05, 0.05)) for _ in range(20)]
    durations += [0.11 * (1 + rng.uniform(-0.05, 0.05)) for _ in range(20)]
    durations[0] = 5.0   # the first iteration allocates everything
    clock = FakeClock()
    degradation = degradation_for_task("reconstruct", resolution=32)
    checked = 0
    for event in run_dgp(generator, discriminator, degradation, synthetic_target(),
                         tiny_schedule(stages=stages, candidates=0), class_index=1, clock=clock):
        # The clock moves by the next iteration's duration before that iteration runs.
        if isinstance(event, ev.StageBegan):
            clock.now += durations[event.first_step - 1]
        elif isinstance(event, ev.Step):
            true_left = sum(durations[event.step :])
            if event.step >= 2 and true_left > 0:   # 5 % of the 40 steps
                assert event.eta_seconds is not None
                assert abs(event.eta_seconds - true_left) <= 0.25 * true_left, (event.step, event.eta_seconds)
                checked += 1
            if event.step < len(durations) and event.step != 20:
                clock.now += durations[event.step]
            assert event.seconds_per_step == pytest.approx(durations[event.step - 1])
    assert checked == 38


def test_the_command_line_progress_follows_revised_totals_and_unknown_etas(capsys):
    import json

    from engine.cli import _event_json, _ProgressPrinter

    printer = _ProgressPrinter()
    printer.handle(ev.StageBegan(stage=stage_plans(3)[0], first_step=1))
    printer.handle(ev.Step(stage=0, step=1, total_steps=4, losses={"total": 1.0}, seconds_per_step=0.1,
                           eta_seconds=None))
    assert printer.bar.total == 4
    printer.handle(ev.Step(stage=1, step=2, total_steps=2, losses={"total": 1.0}, seconds_per_step=0.1,
                           eta_seconds=0.0))
    assert printer.bar.total == 2
    printer.close()
    ended = json.loads(_event_json(ev.StageEnded(stage=0, steps_done=1, total_steps=4, early=True)))
    assert ended == {"event": "StageEnded", "stage": 0, "steps_done": 1, "total_steps": 4, "early": True}
    step = json.loads(_event_json(ev.Step(stage=0, step=1, total_steps=4, losses={}, seconds_per_step=0.1,
                                          eta_seconds=None)))
    assert step["eta_seconds"] is None
