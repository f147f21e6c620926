"""Speed of the studio's instant edits: morph frames, timeline scrubbing, jitter/transfer, export.

Prints timings (nothing is asserted). The model is the built-in one when it
is installed (``resources/models/builtin-64/model.json``), otherwise a
random-weight model of the same architecture (speed does not depend on the
weights). The two keyframes are made like a restore's results: every weight
and buffer of G fine-tuned (slightly perturbed), its own z and class, so
morphing rewrites the whole generator for each frame, as it does in the app.

Targets (from the issue): one morph frame ≤ 30 ms, scrubbing ≥ 20 frames/s,
a 60-frame MP4 export ≤ 5 s, for the 64 px built-in architecture on a CPU.

Usage::

    python benchmarks/bench_manipulation.py                  # the 64 px built-in architecture
    python benchmarks/bench_manipulation.py --threads 1      # as the app with one engine thread
    python benchmarks/bench_manipulation.py --big            # also BigGAN-256 ch96: morph frame on CPU
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.api import Engine, LoadedModel, MorphRenderer, builtin_model_folder, load_model
from engine.biggan import BigGANConfig, Discriminator, Generator, orthogonal_init_
from engine.export import AnimationOptions, export_animation, timeline_lambdas
from engine.state import GeneratorState

BUILTIN_ARCHITECTURE = BigGANConfig(
    resolution=64, g_ch=16, d_ch=16, n_classes=200, g_attention=(16,), d_attention=(16,)
)
BIG_ARCHITECTURE = BigGANConfig(resolution=256, g_ch=96, d_ch=96, n_classes=1000)


def random_model(config: BigGANConfig) -> LoadedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator, discriminator = Generator(config), Discriminator(config)
        orthogonal_init_(generator)
        orthogonal_init_(discriminator)
    return load_model((generator.eval(), discriminator.eval()))


def builtin_or_random() -> tuple[LoadedModel, str]:
    if (builtin_model_folder() / "model.json").exists():
        return load_model("builtin"), "the shipped built-in model"
    return random_model(BUILTIN_ARCHITECTURE), "random weights, built-in architecture"


def fine_tuned_state(engine: Engine, *, seed: int, class_index: int) -> GeneratorState:
    """A state like a full DGP run leaves: every floating entry of G changed a little."""
    generator = torch.Generator().manual_seed(seed)
    tuned = copy.deepcopy(engine.G)
    with torch.no_grad():
        for value in tuned.state_dict().values():
            if value.is_floating_point():
                value.add_(0.01 * value.abs().mean() * torch.randn(value.shape, generator=generator))
    z = 0.5 * torch.randn(1, engine.G.config.effective_dim_z, generator=generator)
    return GeneratorState.capture(
        engine.G, tuned, z, class_index, model_identity=engine.model.identity, use_in=False
    )


def milliseconds(samples: list[float]) -> str:
    return f"median {1000 * statistics.median(samples):.1f} ms, mean {1000 * statistics.mean(samples):.1f} ms"


def time_morph_frames(morpher: MorphRenderer, count: int) -> list[float]:
    for lam in (0.1, 0.5, 0.9):  # warm-up: allocator, kernels
        morpher.render(lam)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        morpher.render(index / max(count - 1, 1))
        samples.append(time.perf_counter() - started)
    return samples


def scrub_frames_per_second(engine: Engine, keyframes: list[GeneratorState], steps: int) -> float:
    """A drag across the whole timeline, one render per mouse move, as the engine thread serves it."""
    easing = ["ease-in-out"] * (len(keyframes) - 1)
    morpher = MorphRenderer(engine, keyframes[0], keyframes[1])
    started = time.perf_counter()
    for segment, lam in timeline_lambdas(len(keyframes), steps, easing=easing):
        pair = keyframes[segment], keyframes[segment + 1]
        if morpher.state_a is not pair[0] or morpher.state_b is not pair[1]:
            morpher.retarget(*pair)  # crossing into the next segment
        morpher.render(lam)
    return steps / (time.perf_counter() - started)


def export_seconds(
    engine: Engine, keyframes: list[GeneratorState], *, frames: int, size: int | None
) -> float:
    morpher = MorphRenderer(engine, keyframes[0], keyframes[1])
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        lazily = (morpher.render(lam) for _segment, lam in timeline_lambdas(2, frames))
        for _progress in export_animation(
            lazily, Path(folder) / "morph.mp4", options=AnimationOptions(fps=24, size=size), total=frames
        ):
            pass
        return time.perf_counter() - started


def time_batches(engine: Engine, state: GeneratorState) -> tuple[float, float]:
    engine.jitter(state, sigma=0.5, count=16, seed=0)  # warm-up
    started = time.perf_counter()
    engine.jitter(state, sigma=0.5, count=16, seed=1)
    jitter = time.perf_counter() - started
    started = time.perf_counter()
    engine.transfer_many(state, list(range(16)))
    transfer = time.perf_counter() - started
    return jitter, transfer


def bench_builtin(args) -> None:
    model, source = builtin_or_random()
    engine = Engine(model, device="cpu", precision=args.precision)
    config = engine.G.config
    print(
        f"model: BigGAN-{config.resolution} ch{config.g_ch}, {config.n_classes} classes ({source}); "
        f"precision {engine.autocast_dtype or 'fp32'}; torch threads {torch.get_num_threads()}"
    )
    keyframes = [
        fine_tuned_state(engine, seed=1, class_index=0),
        fine_tuned_state(engine, seed=2, class_index=7),
        fine_tuned_state(engine, seed=3, class_index=42),
    ]
    changed = sum(v.numel() for v in keyframes[0].weight_delta.values())
    entries = len(keyframes[0].weight_delta)
    print(f"keyframes: {len(keyframes)}, each changes {entries} entries ({changed:,} values)")

    morpher = MorphRenderer(engine, keyframes[0], keyframes[1])
    samples = time_morph_frames(morpher, args.frames)
    print(f"one morph frame ({config.resolution} px):     {milliseconds(samples)}   (target <= 30 ms)")
    started = time.perf_counter()
    morpher.retarget(keyframes[1], keyframes[2])
    print(f"moving to the next segment (retarget):  {1000 * (time.perf_counter() - started):.1f} ms")
    fps = scrub_frames_per_second(engine, keyframes, args.scrub_steps)
    print(f"scrubbing A->B->C, {args.scrub_steps} positions:  {fps:.1f} frames/s   (target >= 20)")
    jitter, transfer = time_batches(engine, keyframes[0])
    print(f"jitter, 16 variations in one batch:     {1000 * jitter:.0f} ms ({62.5 * jitter:.1f} ms each)")
    print(f"category transfer, 16 classes:          {1000 * transfer:.0f} ms ({62.5 * transfer:.1f} ms each)")
    seconds = export_seconds(engine, keyframes, frames=60, size=None)
    print(f"60-frame MP4 export at {config.resolution} px:       {seconds:.2f} s   (target <= 5 s)")
    seconds = export_seconds(engine, keyframes, frames=60, size=4 * config.resolution)
    print(f"60-frame MP4 export at {4 * config.resolution} px (4x):  {seconds:.2f} s")


def bench_big(args) -> None:
    engine = Engine(random_model(BIG_ARCHITECTURE), device="cpu", precision=args.precision)
    config = engine.G.config
    keyframes = [
        fine_tuned_state(engine, seed=1, class_index=1),
        fine_tuned_state(engine, seed=2, class_index=207),
    ]
    morpher = MorphRenderer(engine, *keyframes)
    samples = time_morph_frames(morpher, max(3, args.frames // 10))
    print(
        f"BigGAN-{config.resolution} ch{config.g_ch} (random weights), one morph frame on CPU: "
        f"{milliseconds(samples)}; precision {engine.autocast_dtype or 'fp32'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16 (default auto)")
    parser.add_argument("--frames", type=int, default=40, help="morph frames to time (default 40)")
    parser.add_argument(
        "--scrub-steps", type=int, default=120, help="positions in the scrub drag (default 120)"
    )
    parser.add_argument("--big", action="store_true", help="also time BigGAN-256 ch96 (slow on a CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    bench_builtin(args)
    if args.big:
        bench_big(args)


if __name__ == "__main__":
    main()
