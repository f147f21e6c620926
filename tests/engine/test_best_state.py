"""The state a run keeps: the lowest-loss one, exactly as measured, on finish and on cancel."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from engine import events as ev
from engine.api import Engine, load_model
from engine.degrade import degradation_for_task
from engine.dgp import run_dgp
from engine.schedule import Stage
from tests.conftest import make_tiny_biggan
from tests.engine.test_dgp import synthetic_target, tiny_schedule


def stage(iterations: int, *, g_lr: float, z_lr: float, w_mse: float = 1.0, use_in: bool = False) -> Stage:
    return Stage(iterations=iterations, feature_layers="all", unlocked_groups="all", lr_ratio=1.0, g_lr=g_lr,
                 z_lr=z_lr, w_d=1.0, w_mse=w_mse, use_in=use_in)


# Converges for 8 steps, then a last stage with far too large rates makes the loss rise.
RISING = [stage(8, g_lr=2e-3, z_lr=5e-2), stage(4, g_lr=0.3, z_lr=3.0)]


@pytest.fixture()
def tiny_pair():
    generator, discriminator = make_tiny_biggan()
    discriminator.freeze()
    return generator, discriminator


def run(pair, stages, *, should_stop=None, stop_after=None, use_in=False):
    generator, discriminator = pair
    degradation = degradation_for_task("reconstruct", resolution=32)
    target = degradation.target_path(synthetic_target())
    events = []
    for event in run_dgp(generator, discriminator, degradation, target, tiny_schedule(stages=stages),
                         class_index=1, should_stop=should_stop, frame_interval=0.0):
        events.append(event)
        if stop_after is not None and isinstance(event, ev.Step) and event.step == stop_after:
            should_stop.set()
    return events


def steps_of(events):
    return [e for e in events if isinstance(e, ev.Step)]


def truncated(stages, iterations: int):
    """The same schedule cut after ``iterations`` iterations."""
    kept, left = [], iterations
    for item in stages:
        if left <= 0:
            break
        kept.append(dataclasses.replace(item, iterations=min(item.iterations, left)))
        left -= item.iterations
    return kept


def assert_same_state(result, other):
    assert torch.equal(result.state.z, other.state.z)
    assert set(result.state.weight_delta) == set(other.state.weight_delta)
    for key, value in other.state.weight_delta.items():
        assert torch.equal(result.state.weight_delta[key], value), key
    assert np.array_equal(result.image, other.image)


def test_a_run_whose_loss_rises_at_the_end_returns_the_earlier_better_state(tiny_pair):
    events = run(tiny_pair, RISING)
    steps = steps_of(events)
    totals = [s.losses["total"] for s in steps]
    lowest = int(np.argmin(totals)) + 1
    assert totals[-1] > 2 * min(totals), "the schedule must make the loss rise"
    result = events[-1].result
    assert isinstance(events[-1], ev.Finished)
    assert result.best_step == lowest and result.losses == steps[lowest - 1].losses
    assert result.steps_done == 12
    # Step k's loss measured the parameters before step k's update: the kept state is the
    # one a run of k - 1 iterations ends with, bit for bit.
    shorter = run(tiny_pair, truncated(RISING, lowest - 1))[-1].result
    assert shorter.best_step is None
    assert_same_state(result, shorter)
    # ... and its image is the frame that step showed, not the latest one.
    frames = {e.step: e for e in events if isinstance(e, ev.Frame)}
    assert np.abs(result.image.astype(int) - frames[lowest].image.astype(int)).max() <= 1
    assert np.abs(result.image.astype(int) - frames[12].image.astype(int)).max() > 10


def test_a_cancelled_run_returns_the_best_state_not_the_latest(tiny_pair):
    full = steps_of(run(tiny_pair, RISING))
    stop_at = 11
    lowest = int(np.argmin([s.losses["total"] for s in full[:stop_at]])) + 1
    assert lowest < stop_at - 1
    events = run(tiny_pair, RISING, should_stop=threading.Event(), stop_after=stop_at)
    cancelled = events[-1]
    assert isinstance(cancelled, ev.Cancelled) and cancelled.result.cancelled
    assert cancelled.result.steps_done == stop_at and cancelled.result.best_step == lowest
    assert_same_state(cancelled.result, run(tiny_pair, truncated(RISING, lowest - 1))[-1].result)


def test_a_converging_run_keeps_its_last_state(tiny_pair):
    stages = [stage(3, g_lr=1e-4, z_lr=1e-3)]
    events = run(tiny_pair, stages)
    result = events[-1].result
    assert result.best_step is None and result.steps_done == 3
    # The last state's loss was measured once more; it is below every step's.
    assert result.losses["total"] < min(s.losses["total"] for s in steps_of(events))


def test_states_are_compared_by_the_loss_of_the_stage_being_run(tiny_pair):
    # Stage 2 weighs the MSE 200 times more: its raw totals are far above stage 1's, yet its
    # states are better by its own measure and must not lose to stage 1's.
    stages = [stage(5, g_lr=2e-3, z_lr=5e-2), stage(4, g_lr=1e-3, z_lr=1e-2, w_mse=200.0)]
    events = run(tiny_pair, stages)
    steps = steps_of(events)
    assert min(s.losses["total"] for s in steps[5:]) > max(s.losses["total"] for s in steps[:5])
    result = events[-1].result
    assert result.best_step is None or result.best_step > 5


def test_the_best_state_keeps_its_instance_norm_parameters(tiny_pair):
    # The IN switch is on from the first stage and its parameters are set at the first
    # forward; the kept state must bring back those, not merely z and the groups.
    stages = [stage(6, g_lr=2e-3, z_lr=5e-2, use_in=True), stage(3, g_lr=0.3, z_lr=3.0, use_in=True)]
    events = run(tiny_pair, stages)
    result = events[-1].result
    assert result.best_step is not None and result.state.use_in
    shorter = run(tiny_pair, truncated(stages, result.best_step - 1))[-1].result
    assert_same_state(result, shorter)


def test_the_result_image_is_the_state_as_the_engine_renders_it(tiny_pair):
    generator, discriminator = tiny_pair
    engine = Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")
    for stages in (RISING, [stage(4, g_lr=2e-3, z_lr=5e-2, use_in=True)]):
        result = run((engine.G, engine.D), stages)[-1].result
        state = dataclasses.replace(result.state, model_identity=engine.model.identity)
        assert np.array_equal(engine.render(state), result.image)
