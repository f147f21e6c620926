"""Super-resolution at the photo's own scale: classical upscaling against plain upscaling.

Each scikit-image sample photo (public domain, shipped with the package) is shrunk by
PIL's Lanczos ×1/f, the filter the app documents, and upscaled back four ways:
Pillow bicubic, Pillow Lanczos, and :func:`engine.superres.classical_upscale` started
from each (the detail-strength-0 result: the upscale made consistent with the input).
Printed side by side: PSNR against the original and, for the consistent results, the
largest difference in uint8 levels between the input and the result shrunk back by PIL.

A second table checks :func:`engine.superres.assemble` with synthetic detail on tiles of
the built-in model's size (64 px): the truth's own per-tile null-space component (strength
1 should come close to the truth) and noise (PSNR should fall smoothly with strength).
The prior's real detail needs the model and is not measured here.

Nothing is asserted. Usage::

    python benchmarks/bench_superres_classical.py
    python benchmarks/bench_superres_classical.py --factors 4 2 8
"""

from __future__ import annotations

import argparse
import sys
import time
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


def detail_table(name: str, factor: int, resolution: int) -> None:
    truth = sample_photo(name, factor)
    low = shrink(truth, factor)
    classical = classical_upscale(low, factor)
    grid = tile_grid((low.shape[1], low.shape[0]), factor, resolution)
    padded = np.pad(truth, ((0, resolution), (0, resolution), (0, 0)), mode="reflect")
    rng = np.random.default_rng(0)
    truth_tiles, noise_tiles = [], []
    for tile in grid.tiles:
        left, top, right, bottom = tile.output_box
        truth_tiles.append(((left, top), prior_detail(padded[top:bottom, left:right], factor)))
        noise = rng.normal(128, 25, size=(resolution, resolution, 3)).astype(np.float32)
        noise_tiles.append(((left, top), prior_detail(noise, factor)))
    print(
        f"\n{name} ×{factor}, {grid.count} tiles of {resolution} px ({grid.columns}×{grid.rows}, overlap 1/4)\n"
    )
    print(
        "| strength | truth's tile detail: PSNR | levels off (samples > 1) | noise detail: PSNR | levels off |"
    )
    print("|---|---|---|---|---|")
    for strength in STRENGTHS:
        with_truth = assemble(low, factor, truth_tiles, strength, classical=classical)
        with_noise = assemble(low, factor, noise_tiles, strength, classical=classical)
        truth_worst, truth_over = level_error(with_truth, low, factor)
        noise_worst, noise_over = level_error(with_noise, low, factor)
        print(
            f"| {strength:.2f} | {score(truth, with_truth):.2f} | {truth_worst} ({truth_over}) | "
            f"{score(truth, with_noise):.2f} | {noise_worst} ({noise_over}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 2], help="super-resolution factors")
    parser.add_argument("--detail-photo", default="coffee", help="photo for the synthetic-detail table")
    args = parser.parse_args()
    started = time.perf_counter()
    classical_table(args.factors)
    detail_table(args.detail_photo, 4, 64)
    print(f"\n{time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
