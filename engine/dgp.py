"""The Deep Generative Prior optimisation as a generator of events.

Pan et al., "Exploiting Deep Generative Prior for Versatile Image
Restoration and Manipulation" (TPAMI 2021); ``docs/dgp-method.md`` restates
the method and the reference code's behaviour, which this module follows:

1. latent search (section 5): ``search_candidates`` draws z ~ N(0, std^2 I)
   (and, when the class is unknown, a class each), degraded by the target
   path and scored by the last three D features; the best wins. Candidates
   are scored in batches, and the target's features are computed once;
2. progressive optimisation (section 6): Adam (beta1 = 0) on z and on G's
   parameter groups - the input linear, then one group per block - with
   per-stage learning rates ``g_lr * lr_ratio**i`` for the first
   ``unlocked_groups`` groups and 0 for the others. Frozen groups still
   receive gradients so Adam's second moments evolve as in the reference;
   the optimiser state persists across stages. The output layer is never
   trained;
3. the loss ``w_d * feature_loss + w_mse * MSE + w_nll * mean(z^2)/2``.

D is frozen: eval mode, no gradients, and its spectrally normalised weights
are constants computed once (its ``u`` never changes in eval mode). The
target's D features are also computed once per run.

``run_dgp`` yields :mod:`engine.events` and checks ``should_stop`` before
every iteration and every search batch, so a cancel lands within one
iteration; the state reached so far is returned in ``Cancelled``.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.biggan import Discriminator, Generator, spectral_norm_layers
from engine.degrade import Degradation
from engine.devices import autocast_context, precision_label
from engine.errors import BadInputError, NonFiniteLossError
from engine.eta import RunsRemainingTime
from engine.events import (
    Cancelled,
    Finished,
    Frame,
    Notice,
    RunPlan,
    SearchFinished,
    SearchProgress,
    StageBegan,
    StageEnded,
    StagePlan,
    Started,
    Step,
)
from engine.schedule import Schedule
from engine.state import GeneratorState, RestoreResult

LATENT_SEARCH_FEATURES = 3   # section 5: the last three D entries score candidates
_NO_SEARCH_FOR_CLASS = (
    "the class is unknown and the preset's latent search has {candidates} candidate(s), so nothing "
    "would choose it; pick a class or use a preset that searches 2 or more candidates."
)


def generator_parameter_groups(generator: Generator, *, update_embed: bool) -> list[list[nn.Parameter]]:
    """DGP's groups: 0 = input linear (+ class table), i = G block i-1 with its attention.

    The output layer is in no group (never fine-tuned). Instance-norm affine
    parameters are excluded: the reference keeps them frozen.
    """
    first = list(generator.linear.parameters())
    if update_embed:
        first += list(generator.shared.parameters())
    groups = [first]
    for block_list in generator.blocks:
        params = [
            p for name, p in block_list.named_parameters()
            if ".in1." not in f".{name}" and ".in2." not in f".{name}"
        ]
        groups.append(params)
    return groups


def feature_loss(
    fake: list[torch.Tensor], real: list[torch.Tensor], count: int, *, per_sample: bool = False
) -> torch.Tensor:
    """Sum over the last ``count`` D features of the mean absolute difference.

    With ``per_sample`` the means are taken per batch entry (latent search),
    which equals the reference's batch-1 computation for each candidate.
    """
    total = None
    for f, r in zip(fake[-count:], real[-count:]):
        difference = (f.float() - r.float()).abs()
        term = difference.flatten(1).mean(1) if per_sample else difference.mean()
        total = term if total is None else total + term
    return total


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> H x W x 3 uint8 (a fresh C-contiguous array)."""
    pixels = ((x[0].detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())


@dataclass
class SearchOutcome:
    z: torch.Tensor
    class_index: int
    loss: float
    top_classes: tuple[tuple[int, float], ...]


def search_latent(
    generator: Generator,
    discriminator: Discriminator,
    degradation: Degradation,
    target_features: list[torch.Tensor],
    *,
    candidates: int,
    sample_std: float,
    class_index: int | None,
    seed: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    batch_size: int = 16,
    should_stop: threading.Event | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[SearchProgress | SearchOutcome]:
    """Section 5's ``select_z``, batched. Yields progress, then one :class:`SearchOutcome`.

    All candidates are drawn up front from one seeded generator, so the
    winner does not depend on the batch size. As in the reference, 0
    candidates start from z = 0 and 1 candidate is a single N(0, I) draw
    (``sample_std`` scales only the candidates of a real search); both need
    a known class, since nothing is scored that could choose one.
    """
    dim_z = generator.dim_z
    n_classes = generator.config.n_classes
    rng = torch.Generator().manual_seed(seed)
    if candidates <= 1:
        if class_index is None:
            raise BadInputError(_NO_SEARCH_FOR_CLASS.format(candidates=candidates))
        z = torch.zeros(1, dim_z) if candidates <= 0 else torch.randn(1, dim_z, generator=rng)
        yield SearchOutcome(z=z, class_index=class_index, loss=float("nan"), top_classes=())
        return
    z_all = torch.randn(candidates, dim_z, generator=rng) * sample_std
    if class_index is None:
        y_all = torch.randint(0, n_classes, (candidates,), generator=rng)
    else:
        y_all = torch.full((candidates,), class_index, dtype=torch.long)
    losses = torch.empty(candidates)
    started = clock()
    done = 0
    with torch.no_grad(), autocast_context(device, autocast_dtype):
        while done < candidates:
            if should_stop is not None and should_stop.is_set():
                return
            stop = min(done + batch_size, candidates)
            z = z_all[done:stop].to(device)
            y = y_all[done:stop].to(device)
            images = generator(z, generator.shared(y))
            degraded = degradation.target_path(images.float())
            features = discriminator.features(degraded)
            expanded = [t.expand(stop - done, *t.shape[1:]) for t in target_features]
            losses[done:stop] = feature_loss(
                features, expanded, LATENT_SEARCH_FEATURES, per_sample=True
            ).float().cpu()
            done = stop
            elapsed = clock() - started
            yield SearchProgress(done=done, total=candidates, seconds_per_candidate=elapsed / done)
    best = int(torch.argmin(losses))
    top: dict[int, float] = {}
    for index in torch.argsort(losses).tolist():
        label = int(y_all[index])
        if label not in top:
            top[label] = float(losses[index])
        if len(top) == 5:
            break
    yield SearchOutcome(
        z=z_all[best : best + 1].clone(), class_index=int(y_all[best]), loss=float(losses[best]),
        top_classes=tuple(top.items()) if class_index is None else ((class_index, float(losses[best])),),
    )


def _set_spectral_norm_frozen(module: nn.Module, frozen: bool, dtype: torch.dtype | None = None) -> None:
    """Cache (or drop) every SN layer's W / sigma; ``dtype`` pre-casts it for autocast.

    Pre-cast weights spare autocast a cast of every weight on every forward:
    the same rounding, done once per search instead of once per batch.
    """
    for layer in spectral_norm_layers(module):
        if frozen:
            layer.freeze_normalized_weight(dtype)
        else:
            layer.unfreeze_normalized_weight()


def _adam_options(device: torch.device) -> dict:
    """The reference's Adam (beta1 = 0), as one fused kernel per step where torch has one.

    The fused kernel reads and writes each parameter, gradient and moment once
    instead of once per elementwise operation: on a CPU the optimiser step of
    BigGAN-128's 70 M weights drops from about a quarter of an iteration to a
    few percent.
    """
    options = {"betas": (0.0, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    if device.type in ("cpu", "cuda"):
        options["fused"] = True
    return options


def _feature_terms(
    fake: list[torch.Tensor], real: list[torch.Tensor], used: int
) -> list[torch.Tensor]:
    """Mean absolute difference of every D entry; only the last ``used`` carry gradients.

    The loss sums the last ``used`` terms (as :func:`feature_loss`); the
    others are kept, without gradients, so that a state's loss can be
    re-weighed when a later stage uses other entries (see :class:`_BestState`).
    """
    split = len(fake) - used
    with torch.no_grad():
        unused = [(f.float() - r.float()).abs().mean() for f, r in zip(fake[:split], real[:split])]
    return unused + [(f.float() - r.float()).abs().mean() for f, r in zip(fake[split:], real[split:])]


@dataclass(frozen=True)
class _LossParts:
    """A state's loss terms: per D entry, MSE and the latent term (floats)."""

    features: tuple[float, ...]
    mse: float
    nll: float

    def total(self, stage, plan: StagePlan, w_nll: float) -> float:
        """The loss as ``stage`` weighs it (section 1)."""
        feature = sum(self.features[len(self.features) - plan.feature_layers:])
        return stage.w_d * feature + stage.w_mse * self.mse + w_nll * self.nll


class _BestState:
    """The lowest-loss state measured so far, kept on the device in preallocated buffers.

    What is kept: z, the parameters of the groups opened so far (groups not
    yet opened still hold the base weights, and are restored from the base
    model) and the instance-norm parameters, with the step, the loss parts
    and the IN switch that go with them. A snapshot is two multi-tensor
    copies, taken only when the loss improves.
    """

    def __init__(self, z: torch.Tensor, groups: list[list[nn.Parameter]], in_parameters: list[torch.Tensor]) -> None:
        self._groups = groups
        self._in_parameters = in_parameters
        self._z = torch.empty_like(z)
        self._group_buffers = [[torch.empty_like(p) for p in group] for group in groups]
        self._in_buffers = [torch.empty_like(p) for p in in_parameters]
        self.step: int | None = None
        self.parts: _LossParts | None = None
        self.losses: dict[str, float] = {}
        self.use_in = False
        self._kept_groups = 0

    def keep(self, step: int, parts: _LossParts, losses: dict[str, float], *, z: torch.Tensor,
             open_groups: int, use_in: bool) -> None:
        with torch.no_grad():
            sources = [z, *self._in_parameters]
            targets = [self._z, *self._in_buffers]
            for group, buffers in zip(self._groups[:open_groups], self._group_buffers[:open_groups]):
                sources.extend(group)
                targets.extend(buffers)
            torch._foreach_copy_(targets, sources)
        self.step, self.parts, self.losses, self.use_in = step, parts, losses, use_in
        self._kept_groups = open_groups

    def restore(self, *, z: torch.Tensor, base_groups: list[list[nn.Parameter]], open_groups: int) -> None:
        """Put the kept state back into ``z`` and the working generator's parameters."""
        with torch.no_grad():
            targets = [z, *self._in_parameters]
            sources = [self._z, *self._in_buffers]
            for index in range(open_groups):
                targets.extend(self._groups[index])
                kept = index < self._kept_groups
                sources.extend(self._group_buffers[index] if kept else base_groups[index])
            for target, source in zip(targets, sources):
                target.copy_(source)


def run_dgp(
    base_generator: Generator,
    discriminator: Discriminator,
    degradation: Degradation,
    target: torch.Tensor,
    schedule: Schedule,
    *,
    class_index: int | None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    model_identity: str = "",
    should_stop: threading.Event | None = None,
    frame_interval: float = 0.2,
    search_batch_size: int = 16,
    channels_last: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator:
    """Restore ``target`` (1, 3, R, R in [-1, 1], already degraded) with DGP.

    Parameters
    ----------
    base_generator : the model's G; it is not modified (a working copy is tuned).
    discriminator : the model's D, already frozen with ``D.freeze()``.
    degradation : phi; ``generator_path`` is applied to G's output.
    target : x_hat, the degraded input, (1, 3, R, R) in [-1, 1].
    schedule : stages and global settings (a preset, possibly quick/scaled).
    class_index : the class, or None to let the latent search choose it (the
        preset must then search 2 or more candidates).
    seed : seeds the latent search; the optimisation itself is deterministic.
    should_stop : set it to cancel; honoured before each iteration/search batch.
    frame_interval : minimum seconds between ``Frame`` events (stage ends always send one).
    clock : seconds of a monotonic clock, for step times and the ETA.

    Yields
    ------
    ``Started``, ``SearchProgress``..., ``SearchFinished``, then per stage
    ``StageBegan``, per iteration ``Step`` (and ``Frame`` when due) and
    ``StageEnded``, and finally ``Finished(result)`` or ``Cancelled(result)``.
    A NaN or infinite loss yields ``Cancelled`` with the best finite state
    and then raises :class:`NonFiniteLossError`.

    The result keeps the best state, not merely the last: the state with the
    lowest total loss among every state an iteration measured and the state
    after the last update (measured once more at the end), each weighed as
    the stage being run weighs its loss (stages change the weights and D
    entries, and a state's loss parts are re-weighed accordingly). The loss
    of step k is that of the parameters *before* step k's update, and the
    state kept for it is exactly those parameters (its ``Frame`` image).
    ``RestoreResult.best_step`` names that step, or is None for the last
    state. Its ``image`` is rendered from the state as
    :meth:`engine.api.Engine.render` renders it (base + delta, frozen
    spectral norms), so the two agree bit for bit.
    """
    device = torch.device(device)
    started_at = clock()
    feature_count = discriminator.config.n_discriminator_features
    groups_count = base_generator.config.n_generator_blocks + 1
    stage_plans = schedule.plan(feature_count=feature_count, group_count=groups_count)
    total_steps = sum(plan.iterations for plan in stage_plans)
    if class_index is not None and not 0 <= class_index < base_generator.config.n_classes:
        raise BadInputError(
            f"class index {class_index} is outside this model's {base_generator.config.n_classes} classes."
        )
    if class_index is None and schedule.search_candidates <= 1:
        raise BadInputError(f"preset {schedule.name}: " + _NO_SEARCH_FOR_CLASS.format(
            candidates=schedule.search_candidates))
    yield Started(
        plan=RunPlan(
            task=schedule.task, preset=schedule.name, search_candidates=schedule.search_candidates,
            stages=stage_plans, total_steps=total_steps, device=str(device),
            precision=precision_label(autocast_dtype),
        )
    )
    eta = RunsRemainingTime([(schedule.search_candidates, stage_plans)])

    generator = copy.deepcopy(base_generator).to(device).eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(memory_format=memory_format)
    target = target.to(device).float()
    stop_requested = should_stop.is_set if should_stop is not None else (lambda: False)

    with torch.no_grad(), autocast_context(device, autocast_dtype):
        target_features = [f.float() for f in discriminator.features(target)]

    # -- 1. latent search (G's weights are constant here: cache W / sigma) --
    _set_spectral_norm_frozen(generator, True, autocast_dtype)
    outcome: SearchOutcome | None = None
    for item in search_latent(
        generator, discriminator, degradation, target_features,
        candidates=schedule.search_candidates, sample_std=schedule.sample_std,
        class_index=class_index, seed=seed, device=device, autocast_dtype=autocast_dtype,
        batch_size=search_batch_size, should_stop=should_stop, clock=clock,
    ):
        if isinstance(item, SearchOutcome):
            outcome = item
        else:
            eta.search_progress(0, item.done, clock())
            yield item
    _set_spectral_norm_frozen(generator, False)
    if outcome is None:  # cancelled during the search
        yield Cancelled(result=None)
        return
    chosen_class = outcome.class_index
    yield SearchFinished(class_index=chosen_class, top_classes=outcome.top_classes, loss=outcome.loss)

    # -- 2. progressive optimisation -----------------------------------------
    z = outcome.z.to(device).clone().requires_grad_(True)
    generator.requires_grad_(False)
    groups = generator_parameter_groups(generator, update_embed=schedule.update_embed)
    base_groups = generator_parameter_groups(base_generator, update_embed=schedule.update_embed)
    for group in groups:
        for parameter in group:
            parameter.requires_grad_(True)
    in_parameters = [
        p for name, p in generator.named_parameters() if ".in1." in f".{name}" or ".in2." in f".{name}"
    ]
    adam = _adam_options(device)
    g_optimizer = torch.optim.Adam([{"params": g, "lr": 0.0} for g in groups], **adam)
    z_optimizer = torch.optim.Adam([z], lr=0.0, **adam)
    y = torch.tensor([chosen_class], device=device)
    best = _BestState(z, groups, in_parameters)

    def measure(use_in: bool) -> _LossParts:
        """The loss parts of the current state (no gradients)."""
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            image = generator(z, generator.shared(y), use_in=use_in)
            degraded = degradation.generator_path(image.float())
            features = discriminator.features(degraded)
        terms = _feature_terms(features, target_features, 0)
        mse = torch.mean((degraded.float() - target) ** 2)
        nll = torch.mean(z.detach() ** 2) / 2
        values = torch.stack([*terms, mse, nll]).tolist()
        return _LossParts(features=tuple(values[:-2]), mse=values[-2], nll=values[-1])

    def result(*, cancelled: bool, steps_done: int, measure_last: bool = True) -> RestoreResult:
        use_in, kept_step, losses = last_use_in, None, last_losses
        if best.step is not None:
            weigh_stage, weigh_plan = last_stage
            last_parts = measure(last_use_in) if measure_last else None
            best_total = best.parts.total(weigh_stage, weigh_plan, schedule.w_nll)
            last_total = None if last_parts is None else last_parts.total(weigh_stage, weigh_plan, schedule.w_nll)
            if last_total is None or not math.isfinite(last_total) or best_total < last_total:
                best.restore(z=z, base_groups=base_groups, open_groups=opened_groups)
                use_in, kept_step, losses = best.use_in, best.step, best.losses
            else:
                feature = sum(last_parts.features[len(last_parts.features) - weigh_plan.feature_layers:])
                losses = {"total": last_total, "feature": feature, "mse": last_parts.mse, "nll": last_parts.nll}
        state = GeneratorState.capture(
            base_generator, generator, z, chosen_class, model_identity=model_identity,
            use_in=use_in, task=schedule.task, preset=schedule.name,
            info={"steps_done": steps_done, "seed": seed, "best_step": kept_step},
        )
        # The image is the state's own rendering, with Engine.render's arithmetic
        # (base + delta, frozen normalised weights): the result, its edits and its
        # morph ends are then the same pixels.
        state.apply_to(generator, base_generator.state_dict())
        _set_spectral_norm_frozen(generator, True)
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            image = generator(
                state.z.to(device), state.class_embedding.to(device), use_in=state.use_in
            ).float()
            degraded = degradation.generator_path(image)
        _set_spectral_norm_frozen(generator, False)
        return RestoreResult(
            image=to_uint8_image(image), degraded=to_uint8_image(degraded),
            target=to_uint8_image(target), state=state, class_index=chosen_class,
            top_classes=outcome.top_classes, losses=losses, steps_done=steps_done,
            total_steps=total_now, seconds=clock() - started_at,
            task=schedule.task, preset=schedule.name, cancelled=cancelled, best_step=kept_step,
        )

    step = 0
    total_now = total_steps
    opened_groups = 0
    last_losses: dict[str, float] = {}
    last_use_in = False
    last_stage = (schedule.stages[0], stage_plans[0]) if stage_plans else None
    last_frame_at = -math.inf
    for stage, plan in zip(schedule.stages, stage_plans):
        step_started = clock()
        eta.stage_began(0, plan.index, step_started)
        yield StageBegan(stage=plan, first_step=step + 1)
        if stage.g_lr > 0:
            opened_groups = max(opened_groups, plan.unlocked_groups)
        done_in_stage = 0
        early = False
        for _ in range(plan.iterations):
            if stop_requested():
                yield Cancelled(result=result(cancelled=True, steps_done=step))
                return
            step += 1
            done_in_stage += 1
            warm = step / schedule.warm_up if step < schedule.warm_up else 1.0
            for index, group in enumerate(g_optimizer.param_groups):
                unlocked = index < plan.unlocked_groups
                group["lr"] = stage.g_lr * stage.lr_ratio**index * warm if unlocked else 0.0
            z_optimizer.param_groups[0]["lr"] = stage.z_lr * warm

            with autocast_context(device, autocast_dtype):
                image = generator(z, generator.shared(y), use_in=stage.use_in)
                degraded = degradation.generator_path(image.float())
                features = discriminator.features(degraded)
            terms = _feature_terms(features, target_features, plan.feature_layers)
            ftr = torch.stack(terms[len(terms) - plan.feature_layers:]).sum()
            mse = torch.mean((degraded.float() - target) ** 2)
            nll = torch.mean(z**2) / 2
            loss = stage.w_d * ftr + stage.w_mse * mse + schedule.w_nll * nll
            # One device synchronisation for every number this step reports.
            values = torch.stack([loss, ftr, *terms, mse, nll]).detach().tolist()
            losses = {"total": values[0], "feature": values[1], "mse": values[-2], "nll": values[-1]}
            if not math.isfinite(losses["total"]):
                step -= 1
                reason = (
                    f"the loss became {losses['total']} at step {step + 1}; the run stopped and "
                    f"kept the best state before it."
                )
                yield Cancelled(
                    result=result(cancelled=True, steps_done=step, measure_last=False), reason=reason
                )
                raise NonFiniteLossError(reason)
            parts = _LossParts(features=tuple(values[2:-2]), mse=values[-2], nll=values[-1])
            total = parts.total(stage, plan, schedule.w_nll)
            last_stage, last_use_in = (stage, plan), stage.use_in
            # The parameters have not been updated yet: they are the ones this loss measured.
            if best.step is None or total < best.parts.total(stage, plan, schedule.w_nll):
                best.keep(step, parts, losses, z=z, open_groups=opened_groups, use_in=stage.use_in)
            g_optimizer.zero_grad(set_to_none=True)
            z_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            z_optimizer.step()
            g_optimizer.step()
            last_losses = losses

            # Adversarial defence (section 4.5): the reference stops the current
            # stage once the [-1, 1]-scale MSE is below stop_mse.
            early = schedule.stop_mse > 0 and losses["mse"] < schedule.stop_mse
            stage_end = early or done_in_stage == plan.iterations
            now = clock()
            seconds_per_step = now - step_started
            step_started = now
            if early:
                total_now -= plan.iterations - done_in_stage
                eta.stage_ended(0, plan.index, done_in_stage, now)
            else:
                eta.stage_progress(0, plan.index, done_in_stage, now)
            yield Step(
                stage=plan.index, step=step, total_steps=total_now, losses=losses,
                seconds_per_step=seconds_per_step,
                eta_seconds=0.0 if step == total_now else eta.remaining_seconds(),
            )
            if now - last_frame_at >= frame_interval or stage_end:
                last_frame_at = now
                yield Frame(
                    stage=plan.index, step=step, total_steps=total_now,
                    image=to_uint8_image(image), degraded=to_uint8_image(degraded),
                    target=to_uint8_image(target), losses=losses, seconds_per_step=seconds_per_step,
                )
            if early:
                yield Notice(f"stage {plan.index + 1} stopped early: MSE {losses['mse']:.2e} "
                             f"< {schedule.stop_mse:.0e}.")
                break
        yield StageEnded(stage=plan.index, steps_done=done_in_stage, total_steps=total_now, early=early)
    yield Finished(result=result(cancelled=False, steps_done=step))
