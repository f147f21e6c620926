"""A morph's ends are its two states exactly, whatever each state's instance-norm switch."""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.api import Engine, load_model
from engine.degrade import degradation_for_task
from engine.dgp import run_dgp
from engine.schedule import Stage
from tests.conftest import make_tiny_biggan
from tests.engine.test_dgp import synthetic_target, tiny_schedule


def test_morph_ends_render_each_state_with_its_own_instance_norm_switch():
    generator, discriminator = make_tiny_biggan()
    engine = Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")
    degradation = degradation_for_task("reconstruct", resolution=32)
    states = []
    for use_in in (True, False):
        stages = [Stage(iterations=6, feature_layers="all", unlocked_groups="all", lr_ratio=1.0, g_lr=2e-2,
                        z_lr=0.5, w_d=1.0, w_mse=1.0, use_in=use_in)]
        result = list(run_dgp(engine.G, engine.D, degradation, synthetic_target(),
                              tiny_schedule(stages=stages), class_index=1))[-1].result
        states.append(dataclasses.replace(result.state, model_identity=engine.model.identity))
    a, b = states
    assert a.use_in and not b.use_in
    frames = dict(engine.morph(a, b, [0.0, 1.0]))
    assert np.array_equal(frames[0.0], engine.render(a))
    assert np.array_equal(frames[1.0], engine.render(b))
