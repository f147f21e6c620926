"""The DGP loop: parameter groups, schedules, events, cancel, determinism, NaN handling."""

from __future__ import annotations

import copy
import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import events as ev
from engine.degrade import degradation_for_task
from engine.dgp import feature_loss, generator_parameter_groups, run_dgp
from engine.errors import BadInputError, NonFiniteLossError
from engine.schedule import Schedule, Stage, builtin_presets, presets_for_task
from tests.conftest import make_tiny_biggan


def synthetic_target(resolution: int = 32) -> torch.Tensor:
    """A smooth colourful test image in [-1, 1] (1, 3, R, R)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, resolution), torch.linspace(-1, 1, resolution), indexing="ij")
    disc = ((xs - 0.2) ** 2 + (ys + 0.1) ** 2 < 0.3).float()
    image = torch.stack([0.8 * xs, 0.6 * ys, disc - 0.5 + 0.3 * xs * ys])
    return image.clamp(-1, 1)[None]


def tiny_schedule(
    *, stages: list[Stage] | None = None, candidates: int = 4, task: str = "reconstruct",
    w_nll: float = 0.02, stop_mse: float = 0.0,
) -> Schedule:
    stages = stages or [
        Stage(iterations=3, feature_layers="all", unlocked_groups=2, lr_ratio=0.7, g_lr=1e-3, z_lr=1e-2,
              w_d=1.0, w_mse=1.0, use_in=False),
        Stage(iterations=3, feature_layers="all", unlocked_groups="all", lr_ratio=1.0, g_lr=1e-3,
              z_lr=1e-2, w_d=1.0, w_mse=1.0, use_in=False),
    ]
    return Schedule(
        name="test", title="test", task=task, source="tests", resolution=0, update_embed=False,
        w_nll=w_nll, search_candidates=candidates, sample_std=0.5, seed=0, warm_up=0, stop_mse=stop_mse,
        stages=tuple(stages), quick_iteration_scale=0.5, quick_search_candidates=2,
    )


@pytest.fixture()
def tiny_pair():
    generator, discriminator = make_tiny_biggan()
    discriminator.freeze()
    return generator, discriminator


def run_to_end(generator, discriminator, schedule, *, task="reconstruct", class_index=1, seed=0,
               target=None, should_stop=None):
    degradation = degradation_for_task(task, resolution=32)
    target = synthetic_target() if target is None else target
    events = list(
        run_dgp(generator, discriminator, degradation, degradation.target_path(target), schedule,
                class_index=class_index, seed=seed, should_stop=should_stop)
    )
    return events


def test_parameter_groups_follow_the_reference(tiny_pair):
    generator, _ = tiny_pair
    groups = generator_parameter_groups(generator, update_embed=False)
    assert len(groups) == generator.config.n_generator_blocks + 1
    assert groups[0] == list(generator.linear.parameters())
    grouped = {id(p) for group in groups for p in group}
    # The output layer and instance-norm parameters are never fine-tuned.
    assert not any(id(p) in grouped for p in generator.output_layer.parameters())
    assert id(generator.shared.weight) not in grouped
    assert all(id(p) not in grouped for name, p in generator.named_parameters() if ".in1." in name or ".in2." in name)
    with_embed = generator_parameter_groups(generator, update_embed=True)
    assert id(generator.shared.weight) in {id(p) for p in with_embed[0]}


def test_only_unlocked_groups_change_but_frozen_ones_keep_adam_history(tiny_pair, monkeypatch):
    generator, discriminator = tiny_pair
    schedule = tiny_schedule(stages=[
        Stage(iterations=3, feature_layers="all", unlocked_groups=2, lr_ratio=0.5, g_lr=1e-3, z_lr=1e-2,
              w_d=1.0, w_mse=1.0, use_in=False),
    ])
    captured = {}
    original_adam = torch.optim.Adam

    def recording_adam(params, **kwargs):
        optimizer = original_adam(params, **kwargs)
        captured.setdefault("optimizers", []).append(optimizer)
        return optimizer

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    events = run_to_end(generator, discriminator, schedule)
    result = events[-1].result
    changed = set(result.state.weight_delta)
    assert any(k.startswith("linear.") for k in changed)
    assert any(k.startswith("blocks.0.") for k in changed)
    assert not any(k.startswith(("blocks.1.", "blocks.2.", "output_layer.")) for k in changed)
    g_optimizer = captured["optimizers"][0]
    lrs = [group["lr"] for group in g_optimizer.param_groups]
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(5e-4)
    assert all(lr == 0 for lr in lrs[2:])
    frozen_param = g_optimizer.param_groups[2]["params"][0]
    assert torch.count_nonzero(g_optimizer.state[frozen_param]["exp_avg_sq"]) > 0


def test_events_give_exact_progress_and_a_finished_result(tiny_pair):
    generator, discriminator = tiny_pair
    schedule = tiny_schedule()
    events = run_to_end(generator, discriminator, schedule)
    started = events[0]
    assert isinstance(started, ev.Started)
    assert started.plan.total_steps == 6
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert [s.step for s in steps] == list(range(1, 7))
    assert steps[-1].eta_seconds == 0
    assert [e.stage.index for e in events if isinstance(e, ev.StageBegan)] == [0, 1]
    frames = [e for e in events if isinstance(e, ev.Frame)]
    assert frames and frames[-1].image.shape == (32, 32, 3) and frames[-1].image.dtype == np.uint8
    assert isinstance(events[-1], ev.Finished)
    result = events[-1].result
    assert result.steps_done == 6 and result.image.shape == (32, 32, 3)
    assert result.class_index == 1


def test_the_base_generator_is_not_modified(tiny_pair):
    generator, discriminator = tiny_pair
    before = copy.deepcopy(generator.state_dict())
    run_to_end(generator, discriminator, tiny_schedule())
    for key, value in generator.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_same_seed_gives_the_same_result(tiny_pair):
    generator, discriminator = tiny_pair
    first = run_to_end(generator, discriminator, tiny_schedule(), class_index=None, seed=3)[-1].result
    second = run_to_end(generator, discriminator, tiny_schedule(), class_index=None, seed=3)[-1].result
    assert np.array_equal(first.image, second.image)
    assert torch.equal(first.state.z, second.state.z)
    assert first.class_index == second.class_index


def test_unknown_class_search_ranks_classes(tiny_pair):
    generator, discriminator = tiny_pair
    events = run_to_end(generator, discriminator, tiny_schedule(candidates=40), class_index=None)
    found = next(e for e in events if isinstance(e, ev.SearchFinished))
    assert len(found.top_classes) == 5
    losses = [loss for _, loss in found.top_classes]
    assert losses == sorted(losses)
    assert found.class_index == found.top_classes[0][0]
    assert len({c for c, _ in found.top_classes}) == 5


def test_search_winner_does_not_depend_on_batch_size(tiny_pair):
    generator, discriminator = tiny_pair
    degradation = degradation_for_task("colorize", resolution=32)
    target = degradation.target_path(synthetic_target())
    winners = []
    for batch in (1, 7):
        events = run_dgp(generator, discriminator, degradation, target, tiny_schedule(candidates=12),
                         class_index=None, seed=5, search_batch_size=batch)
        winners.append(next(e for e in events if isinstance(e, ev.SearchFinished)).class_index)
    assert winners[0] == winners[1]


def test_interrupt_at_step_k_equals_step_k_of_a_full_run(tiny_pair):
    generator, discriminator = tiny_pair
    k = 4
    stop = threading.Event()
    degradation = degradation_for_task("reconstruct", resolution=32)
    target = synthetic_target()
    cancelled = None
    for event in run_dgp(generator, discriminator, degradation, target, tiny_schedule(), class_index=1,
                         should_stop=stop):
        if isinstance(event, ev.Step) and event.step == k:
            stop.set()
        if isinstance(event, ev.Cancelled):
            cancelled = event
    assert cancelled is not None and cancelled.result.steps_done == k
    # The same schedule truncated after k iterations runs exactly those k steps.
    truncated = tiny_schedule(stages=[
        dataclasses.replace(tiny_schedule().stages[0]),
        dataclasses.replace(tiny_schedule().stages[1], iterations=k - 3),
    ])
    full = run_to_end(generator, discriminator, truncated)[-1].result
    assert torch.equal(cancelled.result.state.z, full.state.z)
    assert set(cancelled.result.state.weight_delta) == set(full.state.weight_delta)
    for key, value in full.state.weight_delta.items():
        assert torch.equal(cancelled.result.state.weight_delta[key], value), key
    assert np.array_equal(cancelled.result.image, full.image)


def test_cancel_during_search_stops_without_a_result(tiny_pair):
    generator, discriminator = tiny_pair
    stop = threading.Event()
    stop.set()
    events = run_to_end(generator, discriminator, tiny_schedule(candidates=50), should_stop=stop)
    assert isinstance(events[-1], ev.Cancelled) and events[-1].result is None
    assert not any(isinstance(e, ev.Step) for e in events)


def test_dgp_reconstructs_better_than_latent_optimisation_alone(tiny_pair):
    generator, discriminator = tiny_pair
    stages = [
        Stage(iterations=25, feature_layers="all", unlocked_groups="all", lr_ratio=1.0, g_lr=2e-3, z_lr=5e-2,
              w_d=0.1, w_mse=10.0, use_in=False),
    ]
    z_only = [dataclasses.replace(stage, g_lr=0.0) for stage in stages]
    target = synthetic_target()
    dgp = run_to_end(generator, discriminator, tiny_schedule(stages=stages), target=target)[-1].result
    gan_inversion = run_to_end(generator, discriminator, tiny_schedule(stages=z_only), target=target)[-1].result
    truth = ((target[0].permute(1, 2, 0).numpy() + 1) * 127.5).round()

    def mse(image):
        return float(np.mean((image.astype(np.float64) - truth) ** 2))

    assert mse(dgp.image) < 0.5 * mse(gan_inversion.image)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_state(tiny_pair):
    generator, discriminator = tiny_pair
    schedule = tiny_schedule()
    degradation = degradation_for_task("reconstruct", resolution=32)
    target = synthetic_target()
    seen = []

    class PoisonAfterTwoSteps:
        """A degradation whose generator path returns NaN from the third call on."""

        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(degradation, name)

        def generator_path(self, x):
            self.calls += 1
            return x * float("nan") if self.calls == 3 else degradation.generator_path(x)

    poisoned = PoisonAfterTwoSteps()
    with pytest.raises(NonFiniteLossError, match="step 3"):
        for event in run_dgp(generator, discriminator, poisoned, target, schedule, class_index=1):
            seen.append(event)  # noqa: PERF402 - the events before the error are the point
    cancelled = seen[-1]
    assert isinstance(cancelled, ev.Cancelled) and cancelled.result.steps_done == 2
    assert "nan" in cancelled.reason.lower()
    assert all(torch.isfinite(v).all() for v in cancelled.result.state.weight_delta.values())


def test_defence_stop_mse_ends_stages_early(tiny_pair):
    generator, discriminator = tiny_pair
    schedule = tiny_schedule(stop_mse=10.0)   # every MSE is below this
    events = run_to_end(generator, discriminator, schedule)
    assert sum(isinstance(e, ev.Step) for e in events) == 2   # one iteration per stage
    assert any(isinstance(e, ev.Notice) for e in events)


def test_an_early_stop_ends_the_stage_with_a_frame_and_exact_totals(tiny_pair):
    generator, discriminator = tiny_pair
    events = run_to_end(generator, discriminator, tiny_schedule(stop_mse=10.0))   # 3 + 3 planned
    steps = [e for e in events if isinstance(e, ev.Step)]
    # Stage 1 stops after its first step: from that step on the total is 1 + 3, then 2.
    assert [(s.step, s.total_steps) for s in steps] == [(1, 4), (2, 2)]
    ended = [e for e in events if isinstance(e, ev.StageEnded)]
    assert [(e.stage, e.steps_done, e.total_steps, e.early) for e in ended] == [(0, 1, 4, True), (1, 1, 2, True)]
    assert [e.first_step for e in events if isinstance(e, ev.StageBegan)] == [1, 2]
    # Every stage end sends a frame, even within the frame interval.
    frames = [e for e in events if isinstance(e, ev.Frame)]
    assert [(f.step, f.total_steps) for f in frames] == [(1, 4), (2, 2)]
    kinds = [type(e).__name__ for e in events if not isinstance(e, (ev.SearchProgress, ev.Notice))]
    assert kinds[-5:] == ["StageBegan", "Step", "Frame", "StageEnded", "Finished"]
    result = events[-1].result
    assert result.steps_done == result.total_steps == 2
    assert steps[-1].eta_seconds == 0


def test_stages_that_run_to_the_end_report_it(tiny_pair):
    generator, discriminator = tiny_pair
    degradation = degradation_for_task("reconstruct", resolution=32)
    events = list(run_dgp(generator, discriminator, degradation, synthetic_target(), tiny_schedule(),
                          class_index=1, frame_interval=1e9))
    ended = [e for e in events if isinstance(e, ev.StageEnded)]
    assert [(e.stage, e.steps_done, e.total_steps, e.early) for e in ended] == [(0, 3, 6, False), (1, 3, 6, False)]
    assert [f.step for f in events if isinstance(f, ev.Frame)] == [1, 3, 6]


def test_a_single_candidate_is_drawn_from_the_unit_gaussian(tiny_pair):
    # Section 5: select_num = 1 is one N(0, I) draw; sample_std scales only a real search.
    generator, discriminator = tiny_pair
    schedule = dataclasses.replace(tiny_schedule(candidates=1), sample_std=0.01)
    events = run_to_end(generator, discriminator, schedule, seed=4)
    result = events[-1].result
    assert not any(isinstance(e, ev.SearchProgress) for e in events)
    from engine.dgp import search_latent

    outcome = list(search_latent(generator, discriminator, None, [], candidates=1, sample_std=0.01,
                                 class_index=1, seed=4, device=torch.device("cpu"), autocast_dtype=None))[-1]
    expected = torch.randn(1, generator.dim_z, generator=torch.Generator().manual_seed(4))
    assert torch.equal(outcome.z, expected)
    assert 0.7 < float(outcome.z.std()) < 1.3
    assert result.class_index == 1


@pytest.mark.parametrize("candidates", [0, 1])
def test_an_unknown_class_without_a_search_is_refused(tiny_pair, candidates):
    generator, discriminator = tiny_pair
    with pytest.raises(BadInputError, match="pick a class"):
        run_to_end(generator, discriminator, tiny_schedule(candidates=candidates), class_index=None)


def test_feature_loss_per_sample_matches_batch_one(tiny_pair):
    _, discriminator = tiny_pair
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    target = torch.rand(1, 3, 32, 32) * 2 - 1
    real = discriminator.features(target)
    batched = feature_loss(discriminator.features(images), [r.expand(3, *r.shape[1:]) for r in real], 3,
                           per_sample=True)
    for i in range(3):
        single = feature_loss(discriminator.features(images[i : i + 1]), real, 3)
        assert batched[i].item() == pytest.approx(single.item(), rel=1e-5)


def test_class_outside_the_model_is_refused(tiny_pair):
    generator, discriminator = tiny_pair
    with pytest.raises(BadInputError, match="class index 12"):
        run_to_end(generator, discriminator, tiny_schedule(), class_index=12)


def test_presets_offered_for_a_model_are_the_ones_written_for_its_resolution():
    assert presets_for_task("sr", 64) == ["builtin64_sr_mse_biased", "builtin64_sr_d_biased"]
    assert presets_for_task("sr", 128) == ["imagenet1k_128_SR_x4_D_biased", "imagenet1k_128_SR_x4_MSE_biased"]
    assert presets_for_task("reconstruct", 64) == ["studio_reconstruct"]
    # A resolution without presets of its own is offered all of them, the general default first.
    offered = presets_for_task("colorize", 32)
    assert offered[0] == "imagenet1k_128_colorization"
    assert {"builtin64_colorize", "example_colorization_256"} <= set(offered[1:])


@pytest.mark.parametrize("name", sorted(builtin_presets()))
def test_every_preset_runs_a_few_steps(name, tiny_pair):
    generator, discriminator = tiny_pair
    preset = builtin_presets()[name].quick().scaled(0.001)
    preset = dataclasses.replace(preset, search_candidates=2)
    task = preset.task
    kwargs = {}
    degradation = degradation_for_task(task, resolution=32, **kwargs)
    target = degradation.target_path(synthetic_target())
    events = list(run_dgp(generator, discriminator, degradation, target, preset, class_index=2))
    assert isinstance(events[-1], ev.Finished)
    assert events[-1].result.steps_done == len(preset.stages)


def test_instance_norm_initialisation_needs_one_image(tiny_pair):
    generator, _ = tiny_pair
    z = torch.randn(2, generator.dim_z, generator=torch.Generator().manual_seed(0))
    embedding = generator.shared(torch.tensor([1, 1]))
    # The IN affine parameters are shared by a batch: one image's statistics must set them.
    with pytest.raises(ValueError, match="batch of one"):
        generator(z, embedding, use_in=True)
    assert not generator.in_initialised
    with torch.no_grad():
        first = generator(z[:1], embedding[:1], use_in=True)
        assert generator.in_initialised
        batch = generator(z, embedding, use_in=True)   # initialised: a batch uses the same parameters
    assert torch.allclose(batch[:1], first, atol=1e-5)


def test_the_instance_norm_flag_is_set_through_the_generators_api(tiny_pair):
    generator, _ = tiny_pair
    z, embedding = torch.zeros(1, generator.dim_z), generator.shared(torch.tensor([1]))
    generator.mark_in_initialised()
    with torch.no_grad():
        before = {k: v.clone() for k, v in generator.state_dict().items() if ".in1." in k}
        generator(z, embedding, use_in=True)   # kept: no re-initialisation
        assert all(torch.equal(v, generator.state_dict()[k]) for k, v in before.items())
        generator(z, embedding, use_in=False)
    assert not generator.in_initialised
    generator.mark_in_initialised()
    generator.reset_in_init()
    assert not generator.in_initialised
    # Only the generator itself touches its private flag.
    root = Path(__file__).resolve().parents[2]
    writers = sorted(
        str(path.relative_to(root)) for folder in ("engine", "dgp_studio") for path in (root / folder).rglob("*.py")
        if "._in_initialised" in path.read_text(encoding="utf-8")
    )
    assert writers == ["engine/biggan.py"]
