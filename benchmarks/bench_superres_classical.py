"""Super-resolution at the photo's own scale: classical upscaling against plain upscaling.

Each scikit-image sample photo (public domain, shipped with the package) is shrunk by
PIL's Lanczos ×1/f, the filter the app documents, and upscaled back four ways:
Pillow bicubic, Pillow Lanczos, and :func:`engine.superres.classical_upscale` started
from each (the detail-strength-0 result: the upscale made consistent with the input).
Printed side by side: PSNR against the original and, for the consistent results, the
largest difference in uint8 levels between the input and the result shrunk back by PIL.

A second table checks :func:`engine.superres.assemble` with synthetic detail on tiles of
the built-in model's size (64 px): the truth's own per-tile null-space component (strength
1 should come close to the truth), the truth's raw tiles (the blend's global null space is
used: strength 1 should give the truth back) and noise (PSNR should fall smoothly with
strength).
The prior's real detail needs the model and is not measured here.

With ``--memory-megapixels N`` it instead measures the peak memory of ``classical_upscale``
and of ``assemble`` (tiles of 64 px, strength 0.5) for an N-megapixel result at ×4, each in a
fresh process: numpy's peak as ``tracemalloc`` sees it (Pillow's buffers are not traced) and
the process's peak resident size.

Nothing is asserted. Usage::

    python benchmarks/bench_superres_classical.py
    python benchmarks/bench_superres_classical.py --factors 4 2 8
    python benchmarks/bench_superres_classical.py --memory-megapixels 64
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.metrics import psnr
from engine.superres import assemble, classical_upscale, prior_detail, tile_grid

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def sample_photo(name: str, factor: int) -> np.ndarray:
    """A scikit-image sample as RGB uint8, cropped to a multiple of the factor."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    height, width = image.shape[:2]
    return np.ascontiguousarray(image[: height - height % factor, : width - width % factor, :3])


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape[:2]
    return np.asarray(
        Image.fromarray(image).resize((width // factor, height // factor), Image.Resampling.LANCZOS)
    )


def score(truth: np.ndarray, result: np.ndarray) -> float:
    return psnr(truth, result, data_range=255)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def level_error(result: np.ndarray, low: np.ndarray, factor: int) -> tuple[int, int]:
    """The largest difference in levels between ``low`` and ``result`` shrunk back, and how many
    input samples (pixels × channels) are more than one level off."""
    difference = np.abs(shrink(result, factor).astype(np.int16) - low)
    return int(difference.max()), int((difference > 1).sum())


def classical_table(factors: list[int]) -> None:
    print(
        "| photo | size | ×f | bicubic | Lanczos | consistent (bicubic) | consistent (Lanczos) "
        "| gain over bicubic | levels off (samples > 1) | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for factor in factors:
        gains = []
        for name in PHOTOS:
            truth = sample_photo(name, factor)
            low = shrink(truth, factor)
            size = (truth.shape[1], truth.shape[0])
            bicubic = np.asarray(Image.fromarray(low).resize(size, Image.Resampling.BICUBIC))
            lanczos = np.asarray(Image.fromarray(low).resize(size, Image.Resampling.LANCZOS))
            from_bicubic = to_uint8(classical_upscale(low, factor, method="bicubic"))
            started = time.perf_counter()
            from_lanczos = to_uint8(classical_upscale(low, factor, method="lanczos"))
            seconds = time.perf_counter() - started
            gain = score(truth, from_lanczos) - score(truth, bicubic)
            gains.append(gain)
            worst_bicubic, over_bicubic = level_error(from_bicubic, low, factor)
            worst_lanczos, over_lanczos = level_error(from_lanczos, low, factor)
            print(
                f"| {name} | {size[0]}×{size[1]} | {factor} | {score(truth, bicubic):.2f} | "
                f"{score(truth, lanczos):.2f} | {score(truth, from_bicubic):.2f} | "
                f"{score(truth, from_lanczos):.2f} | {gain:+.2f} | {worst_bicubic} ({over_bicubic}), "
                f"{worst_lanczos} ({over_lanczos}) | {seconds:.1f} |"
            )
        print(
            f"| **mean at ×{factor}** | | | | | | | **{np.mean(gains):+.2f}** (min {min(gains):+.2f}) | | |"
        )


def detail_table(name: str, factor: int, resolution: int, overlap: float) -> None:
    truth = sample_photo(name, factor)
    low = shrink(truth, factor)
    classical = classical_upscale(low, factor)
    grid = tile_grid((low.shape[1], low.shape[0]), factor, resolution, overlap=overlap)
    padded = np.pad(truth, ((0, resolution), (0, resolution), (0, 0)), mode="reflect")
    rng = np.random.default_rng(0)
    truth_tiles, raw_tiles, noise_tiles = [], [], []
    for tile in grid.tiles:
        left, top, right, bottom = tile.output_box
        truth_tiles.append(((left, top), prior_detail(padded[top:bottom, left:right], factor)))
        raw_tiles.append(((left, top), padded[top:bottom, left:right].astype(np.float32)))
        noise = rng.normal(128, 25, size=(resolution, resolution, 3)).astype(np.float32)
        noise_tiles.append(((left, top), prior_detail(noise, factor)))
    print(
        f"\n{name} ×{factor}, {grid.count} tiles of {resolution} px ({grid.columns}×{grid.rows}, overlap {overlap:g})\n"
    )
    print(
        "| strength | truth's per-tile detail: PSNR | levels off (samples > 1) "
        "| truth's raw tiles: PSNR | noise detail: PSNR | levels off |"
    )
    print("|---|---|---|---|---|---|")
    for strength in STRENGTHS:
        with_truth = assemble(low, factor, truth_tiles, strength, classical=classical)
        with_raw = assemble(low, factor, raw_tiles, strength, classical=classical)
        with_noise = assemble(low, factor, noise_tiles, strength, classical=classical)
        truth_worst, truth_over = level_error(with_truth, low, factor)
        noise_worst, noise_over = level_error(with_noise, low, factor)
        print(
            f"| {strength:.2f} | {score(truth, with_truth):.2f} | {truth_worst} ({truth_over}) | "
            f"{score(truth, with_raw):.2f} | {score(truth, with_noise):.2f} | {noise_worst} ({noise_over}) |"
        )


def memory_run(megapixels: float, which: str) -> None:
    """One measurement, in this process: ``which`` is ``classical`` or ``assemble``."""
    from skimage import data

    factor = 4
    side = int(round(np.sqrt(megapixels * 1e6) / (factor * 16))) * 16  # the input's side
    low = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC))
    pixels = (side * factor) ** 2
    tiles = []
    if which == "assemble":
        # One shared detail array keeps the caller's memory out of the measurement.
        detail = np.random.default_rng(0).normal(0, 4, size=(64, 64, 3)).astype(np.float32)
        grid = tile_grid((side, side), factor, 64)
        tiles = [((tile.output_left, tile.output_top), detail) for tile in grid.tiles]
    tracemalloc.start()
    started = time.perf_counter()
    if which == "classical":
        classical_upscale(low, factor)
    else:
        assemble(low, factor, tiles, 0.5)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(
        f"| {which} | {side * factor}×{side * factor} ({pixels / 1e6:.0f} MP) | {len(tiles) or '–'} | "
        f"{peak / 2**30:.2f} GiB = {peak / pixels:.1f} B/px | {resident / 2**30:.2f} GiB | {seconds:.0f} s |",
        flush=True,
    )


def memory_table(megapixels: float) -> None:
    print("| function | result | tiles | numpy peak (tracemalloc) | process peak resident | s |")
    print("|---|---|---|---|---|---|")
    for which in ("classical", "assemble"):
        subprocess.run(
            [sys.executable, __file__, "--memory-megapixels", str(megapixels), "--memory-run", which],
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 2], help="super-resolution factors")
    parser.add_argument("--detail-photo", default="coffee", help="photo for the synthetic-detail table")
    parser.add_argument(
        "--overlap", type=float, default=0.25, help="tile overlap for the synthetic-detail table"
    )
    parser.add_argument("--detail-only", action="store_true", help="print only the synthetic-detail table")
    parser.add_argument("--memory-megapixels", type=float, help="measure peak memory for a result this large")
    parser.add_argument("--memory-run", choices=("classical", "assemble"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_megapixels:
        if args.memory_run:
            memory_run(args.memory_megapixels, args.memory_run)
        else:
            memory_table(args.memory_megapixels)
        return
    started = time.perf_counter()
    if not args.detail_only:
        classical_table(args.factors)
    detail_table(args.detail_photo, 4, 64, args.overlap)
    print(f"\n{time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
