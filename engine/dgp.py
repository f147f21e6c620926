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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.biggan import Discriminator, Generator, spectral_norm_layers
from engine.degrade import Degradation
from engine.devices import autocast_context, precision_label
from engine.errors import BadInputError, NonFiniteLossError
from engine.events import (
    Cancelled,
    Finished,
    Frame,
    Notice,
    RunPlan,
    SearchFinished,
    SearchProgress,
    StageBegan,
    Started,
    Step,
)
from engine.schedule import Schedule
from engine.state import GeneratorState, RestoreResult

LATENT_SEARCH_FEATURES = 3   # section 5: the last three D entries score candidates


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
) -> Iterator[SearchProgress | SearchOutcome]:
    """Section 5's ``select_z``, batched. Yields progress, then one :class:`SearchOutcome`.

    All candidates are drawn up front from one seeded generator, so the
    winner does not depend on the batch size.
    """
    dim_z = generator.dim_z
    n_classes = generator.config.n_classes
    rng = torch.Generator().manual_seed(seed)
    if candidates <= 0:
        z = torch.zeros(1, dim_z)
        chosen = 0 if class_index is None else class_index
        yield SearchOutcome(z=z, class_index=chosen, loss=float("nan"), top_classes=())
        return
    z_all = torch.randn(candidates, dim_z, generator=rng) * sample_std
    if class_index is None:
        y_all = torch.randint(0, n_classes, (candidates,), generator=rng)
    else:
        y_all = torch.full((candidates,), class_index, dtype=torch.long)
    if candidates == 1:
        yield SearchOutcome(z=z_all[:1], class_index=int(y_all[0]), loss=float("nan"), top_classes=())
        return
    losses = torch.empty(candidates)
    started = time.perf_counter()
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
            elapsed = time.perf_counter() - started
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
) -> Iterator:
    """Restore ``target`` (1, 3, R, R in [-1, 1], already degraded) with DGP.

    Parameters
    ----------
    base_generator : the model's G; it is not modified (a working copy is tuned).
    discriminator : the model's D, already frozen with ``D.freeze()``.
    degradation : phi; ``generator_path`` is applied to G's output.
    target : x_hat, the degraded input, (1, 3, R, R) in [-1, 1].
    schedule : stages and global settings (a preset, possibly quick/scaled).
    class_index : the class, or None to let the latent search choose it.
    seed : seeds the latent search; the optimisation itself is deterministic.
    should_stop : set it to cancel; honoured before each iteration/search batch.
    frame_interval : minimum seconds between ``Frame`` events (stage ends always send one).

    Yields
    ------
    ``Started``, ``SearchProgress``..., ``SearchFinished``, then per stage
    ``StageBegan`` and per iteration ``Step`` (and ``Frame`` when due), and
    finally ``Finished(result)`` or ``Cancelled(result)``. A NaN or infinite
    loss yields ``Cancelled`` with the last good state and then raises
    :class:`NonFiniteLossError`.
    """
    device = torch.device(device)
    started_at = time.perf_counter()
    feature_count = discriminator.config.n_discriminator_features
    groups_count = base_generator.config.n_generator_blocks + 1
    stage_plans = schedule.plan(feature_count=feature_count, group_count=groups_count)
    total_steps = sum(plan.iterations for plan in stage_plans)
    if class_index is not None and not 0 <= class_index < base_generator.config.n_classes:
        raise BadInputError(
            f"class index {class_index} is outside this model's {base_generator.config.n_classes} classes."
        )
    yield Started(
        plan=RunPlan(
            task=schedule.task, preset=schedule.name, search_candidates=schedule.search_candidates,
            stages=stage_plans, total_steps=total_steps, device=str(device),
            precision=precision_label(autocast_dtype),
        )
    )

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
        batch_size=search_batch_size, should_stop=should_stop,
    ):
        if isinstance(item, SearchOutcome):
            outcome = item
        else:
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
    for group in groups:
        for parameter in group:
            parameter.requires_grad_(True)
    adam = _adam_options(device)
    g_optimizer = torch.optim.Adam([{"params": g, "lr": 0.0} for g in groups], **adam)
    z_optimizer = torch.optim.Adam([z], lr=0.0, **adam)
    y = torch.tensor([chosen_class], device=device)

    def result(*, cancelled: bool, steps_done: int, losses: dict[str, float]) -> RestoreResult:
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            use_in = last_use_in
            if use_in:
                generator._in_initialised = True
            image = generator(z.detach(), generator.shared(y), use_in=use_in).float()
            degraded = degradation.generator_path(image)
        state = GeneratorState.capture(
            base_generator, generator, z, chosen_class, model_identity=model_identity,
            use_in=last_use_in, task=schedule.task, preset=schedule.name,
            info={"steps_done": steps_done, "seed": seed},
        )
        return RestoreResult(
            image=to_uint8_image(image), degraded=to_uint8_image(degraded),
            target=to_uint8_image(target), state=state, class_index=chosen_class,
            top_classes=outcome.top_classes, losses=losses, steps_done=steps_done,
            total_steps=total_steps, seconds=time.perf_counter() - started_at,
            task=schedule.task, preset=schedule.name, cancelled=cancelled,
        )

    step = 0
    last_losses: dict[str, float] = {}
    last_use_in = False
    last_frame_at = 0.0
    step_started = time.perf_counter()
    seconds_per_step = 0.0
    smoothed: float | None = None
    for stage, plan in zip(schedule.stages, stage_plans):
        yield StageBegan(stage=plan, first_step=step + 1)
        for _ in range(plan.iterations):
            if stop_requested():
                yield Cancelled(result=result(cancelled=True, steps_done=step, losses=last_losses))
                return
            step += 1
            warm = step / schedule.warm_up if step < schedule.warm_up else 1.0
            for index, group in enumerate(g_optimizer.param_groups):
                unlocked = index < plan.unlocked_groups
                group["lr"] = stage.g_lr * stage.lr_ratio**index * warm if unlocked else 0.0
            z_optimizer.param_groups[0]["lr"] = stage.z_lr * warm

            with autocast_context(device, autocast_dtype):
                image = generator(z, generator.shared(y), use_in=stage.use_in)
                degraded = degradation.generator_path(image.float())
                features = discriminator.features(degraded)
            last_use_in = stage.use_in
            ftr = feature_loss(features, target_features, plan.feature_layers)
            mse = torch.mean((degraded.float() - target) ** 2)
            nll = torch.mean(z**2) / 2
            loss = stage.w_d * ftr + stage.w_mse * mse + schedule.w_nll * nll
            losses = {
                "total": loss.item(), "feature": ftr.item(), "mse": mse.item(), "nll": nll.item(),
            }
            if not math.isfinite(losses["total"]):
                step -= 1
                reason = (
                    f"the loss became {losses['total']} at step {step + 1}; the run stopped and "
                    f"kept the state of step {step}."
                )
                yield Cancelled(result=result(cancelled=True, steps_done=step, losses=last_losses), reason=reason)
                raise NonFiniteLossError(reason)
            g_optimizer.zero_grad(set_to_none=True)
            z_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            z_optimizer.step()
            g_optimizer.step()
            last_losses = losses

            now = time.perf_counter()
            seconds_per_step = now - step_started
            step_started = now
            # Every group receives gradients in every stage, so iterations cost
            # the same throughout; a smoothed step time gives a steady ETA.
            smoothed = seconds_per_step if smoothed is None else 0.9 * smoothed + 0.1 * seconds_per_step
            remaining = total_steps - step
            yield Step(
                stage=plan.index, step=step, total_steps=total_steps, losses=losses,
                seconds_per_step=seconds_per_step, eta_seconds=remaining * smoothed,
            )
            stage_end = step == sum(p.iterations for p in stage_plans[: plan.index + 1])
            if now - last_frame_at >= frame_interval or stage_end:
                last_frame_at = now
                yield Frame(
                    stage=plan.index, step=step, total_steps=total_steps,
                    image=to_uint8_image(image), degraded=to_uint8_image(degraded),
                    target=to_uint8_image(target), losses=losses, seconds_per_step=seconds_per_step,
                )
            # Adversarial defence (section 4.5): the reference stops the current
            # stage once the [-1, 1]-scale MSE is below stop_mse.
            if schedule.stop_mse > 0 and losses["mse"] < schedule.stop_mse:
                yield Notice(f"stage {plan.index + 1} stopped early: MSE {losses['mse']:.2e} "
                             f"< {schedule.stop_mse:.0e}.")
                break
    yield Finished(result=result(cancelled=False, steps_done=step, losses=last_losses))
