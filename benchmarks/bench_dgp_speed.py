"""Speed of this engine against a re-implementation of the published DGP loop.

Both run in the same process, on the same BigGAN architecture (random
weights: speed does not depend on them), one after the other, and the
script prints the ratios. The published style is the reference code's way
of working (``docs/dgp-method.md`` sections 5, 6 and 8):

* fp32, no autocast, contiguous tensors;
* latent-search candidates rendered one at a time (batch 1), each scored by
  one G forward and two D forwards (the target's features are recomputed);
* every forward of G *and* D recomputes spectral norm's W / sigma;
* D's parameters keep ``requires_grad`` (the reference never turns it off),
  so backward also computes D's weight gradients;
* the target's D features are recomputed every iteration;
* PSNR and SSIM against the original are computed on the CPU every
  iteration (scikit-image, as the reference's per-iteration metrics).

This engine: batched candidates, D frozen (eval, no gradients, W / sigma
cached once), G's W / sigma cached during the search, target features
computed once, channels_last, and bf16 autocast where the CPU has native
bf16 (AMX/AVX512-BF16) or on CUDA.

Usage::

    python benchmarks/bench_dgp_speed.py                      # BigGAN-128, ch 96
    python benchmarks/bench_dgp_speed.py --resolution 256 --ch 96
    python benchmarks/bench_dgp_speed.py --ch 32 --candidates 8 --iterations 3   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import events as ev
from engine.biggan import BigGANConfig, Discriminator, Generator
from engine.degrade import degradation_for_task
from engine.devices import precision_label, select_autocast_dtype, select_device
from engine.dgp import feature_loss, generator_parameter_groups, run_dgp
from engine.schedule import resolve_preset


def random_pair(config: BigGANConfig) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    generator, discriminator = Generator(config), Discriminator(config)
    with torch.no_grad():
        for module in (generator, discriminator):
            for name, parameter in module.named_parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0, 0.02)
    return generator.eval(), discriminator.eval()


def published_style_candidates(generator, discriminator, degradation, target, count: int) -> list[float]:
    """Seconds per candidate, the reference's way (batch 1, 2 D forwards, SN every forward)."""
    times = []
    with torch.no_grad():
        for _ in range(count):
            start = time.perf_counter()
            z = torch.randn(1, generator.dim_z) * 0.5
            y = torch.tensor([1])
            image = generator(z, generator.shared(y))
            fake = discriminator.features(degradation.target_path(image))
            real = discriminator.features(target)
            feature_loss(fake, real, 3).item()
            times.append(time.perf_counter() - start)
    return times


def published_style_iterations(generator, discriminator, degradation, target, original, count: int) -> list[float]:
    """Seconds per iteration, the reference's way (fp32, all groups, metrics every step)."""
    import copy

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    generator = copy.deepcopy(generator)
    discriminator = copy.deepcopy(discriminator)
    discriminator.requires_grad_(True)
    z = (torch.randn(1, generator.dim_z) * 0.5).requires_grad_(True)
    y = torch.tensor([1])
    groups = generator_parameter_groups(generator, update_embed=False)
    g_optimizer = torch.optim.Adam([{"params": g} for g in groups], lr=5e-5, betas=(0.0, 0.999), eps=1e-8)
    z_optimizer = torch.optim.Adam([z], lr=2e-3, betas=(0.0, 0.999), eps=1e-8)
    original_np = ((original[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        image = generator(z, generator.shared(y))
        degraded = degradation.generator_path(image)
        fake = discriminator.features(degraded)
        with torch.no_grad():
            real = discriminator.features(target)
        ftr = feature_loss(fake, real, 7)
        mse = torch.mean((degraded - target) ** 2)
        loss = ftr + 0.02 * torch.mean(z**2) / 2 + 0 * mse
        g_optimizer.zero_grad()
        z_optimizer.zero_grad()
        loss.backward()
        z_optimizer.step()
        g_optimizer.step()
        result = ((image.detach()[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
        peak_signal_noise_ratio(original_np, result, data_range=1)
        structural_similarity(original_np, result, data_range=2, channel_axis=-1, win_size=7)
        times.append(time.perf_counter() - start)
    return times


def engine_run(generator, discriminator, degradation, target, *, candidates: int, iterations: int,
               device, autocast_dtype, batch_size: int) -> tuple[float, list[float]]:
    import dataclasses

    schedule = resolve_preset("imagenet1k_128_colorization")
    first = dataclasses.replace(schedule.stages[-1], iterations=iterations + 1)  # all groups unlocked
    schedule = dataclasses.replace(schedule, stages=(first,), search_candidates=candidates)
    discriminator = discriminator.to(device)
    discriminator.to(memory_format=torch.channels_last)
    discriminator.freeze(autocast_dtype)
    search_seconds = None
    steps = []
    for event in run_dgp(generator.to(device), discriminator, degradation.to(device), target.to(device),
                         schedule, class_index=1, device=device, autocast_dtype=autocast_dtype,
                         search_batch_size=batch_size, frame_interval=1e9):
        if isinstance(event, ev.SearchProgress) and event.done == event.total:
            search_seconds = event.seconds_per_candidate
        if isinstance(event, ev.Step):
            steps.append(event.seconds_per_step)
    return search_seconds, steps[1:]  # the first step includes the optimiser's lazy state creation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--ch", type=int, default=96)
    parser.add_argument("--published-candidates", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=32, help="engine candidates (batched)")
    parser.add_argument("--batch", type=int, default=16, help="engine search batch size")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = BigGANConfig(resolution=args.resolution, g_ch=args.ch, d_ch=args.ch)
    generator, discriminator = random_pair(config)
    degradation = degradation_for_task("colorize", resolution=args.resolution)
    original = torch.rand(1, 3, args.resolution, args.resolution) * 2 - 1
    target = degradation.target_path(original)
    device = select_device(args.device)
    autocast_dtype = select_autocast_dtype(args.precision, device)
    print(f"BigGAN-{args.resolution} ch{args.ch}: G {sum(p.numel() for p in generator.parameters()) / 1e6:.1f} M, "
          f"D {sum(p.numel() for p in discriminator.parameters()) / 1e6:.1f} M parameters; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, engine on {device} "
          f"({precision_label(autocast_dtype)})", flush=True)

    published_style_candidates(generator, discriminator, degradation, target, 1)  # warm-up
    reference_candidates = published_style_candidates(
        generator, discriminator, degradation, target, args.published_candidates)
    print(f"published style: {statistics.median(reference_candidates):.3f} s per candidate "
          f"(median of {len(reference_candidates)})", flush=True)
    reference_iterations = published_style_iterations(
        generator, discriminator, degradation, target, original, args.iterations + 1)[1:]
    print(f"published style: {statistics.median(reference_iterations):.3f} s per iteration "
          f"(median of {len(reference_iterations)})", flush=True)

    search_seconds, engine_steps = engine_run(
        generator, discriminator, degradation, target, candidates=args.candidates,
        iterations=args.iterations, device=device, autocast_dtype=autocast_dtype, batch_size=args.batch)
    engine_iteration = statistics.median(engine_steps)
    print(f"engine:          {search_seconds:.3f} s per candidate ({args.candidates} in batches of {args.batch})")
    print(f"engine:          {engine_iteration:.3f} s per iteration (median of {len(engine_steps)})")
    candidate_ratio = statistics.median(reference_candidates) / search_seconds
    iteration_ratio = statistics.median(reference_iterations) / engine_iteration
    print(f"speed-up: candidate search {candidate_ratio:.2f}x, iterations {iteration_ratio:.2f}x")
    print(f"500-candidate search: {500 * statistics.median(reference_candidates) / 60:.1f} min -> "
          f"{500 * search_seconds / 60:.1f} min; 1,400-step colorization: "
          f"{1400 * statistics.median(reference_iterations) / 60:.0f} min -> {1400 * engine_iteration / 60:.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
