"""Cost of keeping the best state during a DGP run, as a share of the iteration time.

``run_dgp`` snapshots z, the opened parameter groups and the instance-norm
parameters (multi-tensor copies into preallocated buffers on the device)
whenever an iteration's loss is the lowest so far, and measures the last
state once more at the end. This script runs a real restore and times every
snapshot inside it, and also times one snapshot of a generator's every group
(the most a snapshot copies), printing both as a fraction of the mean
iteration time measured in the same run.

Usage::

    python benchmarks/bench_best_state.py                     # BigGAN-128 width 32, 12 iterations
    python benchmarks/bench_best_state.py --ch 96 --iterations 4
    python benchmarks/bench_best_state.py --builtin          # the shipped 64 px model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import dgp
from engine import events as ev
from engine.biggan import BigGANConfig, Discriminator, Generator
from engine.degrade import degradation_for_task
from engine.schedule import resolve_preset


def random_pair(config: BigGANConfig) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    generator, discriminator = Generator(config), Discriminator(config)
    with torch.no_grad():
        for module in (generator, discriminator):
            for parameter in module.parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0, 0.02)
    return generator.eval(), discriminator.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ch", type=int, default=32, help="channel width of a random BigGAN-128")
    parser.add_argument("--builtin", action="store_true", help="use the shipped 64 px model instead")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.builtin:
        from engine.api import load_model

        model = load_model("builtin")
        generator, discriminator = model.G, model.D
    else:
        generator, discriminator = random_pair(BigGANConfig(resolution=128, g_ch=args.ch, d_ch=args.ch))
    discriminator.freeze()
    resolution = generator.config.resolution
    schedule = resolve_preset("studio_reconstruct").quick()
    share = max(1, args.iterations // len(schedule.stages))
    schedule = schedule.scaled(1.0)
    from dataclasses import replace

    schedule = replace(schedule, search_candidates=2,
                       stages=tuple(replace(stage, iterations=share) for stage in schedule.stages))
    degradation = degradation_for_task("reconstruct", resolution=resolution)
    target = torch.rand(1, 3, resolution, resolution) * 2 - 1

    snapshot_seconds: list[float] = []
    keep = dgp._BestState.keep

    def timed_keep(self, *a, **k):
        started = time.perf_counter()
        keep(self, *a, **k)
        snapshot_seconds.append(time.perf_counter() - started)

    dgp._BestState.keep = timed_keep
    step_seconds = []
    for event in dgp.run_dgp(generator, discriminator, degradation, target, schedule, class_index=1,
                             frame_interval=float("inf")):
        if isinstance(event, ev.Step) and event.step > 1:
            step_seconds.append(event.seconds_per_step)
    dgp._BestState.keep = keep
    iteration = statistics.mean(step_seconds)

    # The most one snapshot copies: every group of the generator.
    groups = dgp.generator_parameter_groups(generator, update_embed=True)
    sources = [p.detach() for group in groups for p in group]
    targets = [torch.empty_like(p) for p in sources]
    full = []
    for _ in range(5):
        started = time.perf_counter()
        torch._foreach_copy_(targets, sources)
        full.append(time.perf_counter() - started)
    parameters = sum(p.numel() for p in sources)
    print(f"model: {'builtin 64 px' if args.builtin else f'BigGAN-{resolution} ch {args.ch}'}, "
          f"{parameters / 1e6:.1f} M tuned parameters, {len(step_seconds) + 1} iterations")
    # Minima as well as means: on a shared machine the means carry other processes' load.
    fastest = min(step_seconds)
    print(f"iteration: mean {iteration * 1000:.1f} ms, fastest {fastest * 1000:.1f} ms")
    print(f"snapshots: {len(snapshot_seconds)}, mean {statistics.mean(snapshot_seconds) * 1000:.2f} ms "
          f"= {statistics.mean(snapshot_seconds) / iteration:.2%} of the mean iteration; fastest "
          f"{min(snapshot_seconds) * 1000:.2f} ms = {min(snapshot_seconds) / fastest:.2%} of the fastest; "
          f"all snapshots = {sum(snapshot_seconds) / (iteration * (len(step_seconds) + 1)):.2%} of the run")
    print(f"one snapshot of every group: fastest of 5 {min(full) * 1000:.2f} ms "
          f"= {min(full) / fastest:.2%} of the fastest iteration")


if __name__ == "__main__":
    main()
