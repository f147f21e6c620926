"""Inpainted holes on real photos: classical fills against a model-like fill put in two ways.

scikit-image's public-domain sample photos (astronaut, coffee, chelsea, rocket, camera as
RGB) get holes of 2 %, 5 % and 10 % of the photo, rectangles and blobs. Inside each hole
the script prints the PSNR against the photo of

* ``mean``: :func:`engine.blend.mean_fill` (the ring's mean colour);
* ``harmonic``: :func:`engine.blend.harmonic_fill` (Laplace interpolation);
* ``feathered``: a stand-in for the model's fill (the photo blurred and colour-shifted, so
  its detail is soft and its colours are off, as a 64 px model's are) put in like
  ``engine.composite.composite_inpainting`` does today, over the hole's context square;
* ``poisson``: the same fill put in with :func:`engine.blend.poisson_blend`.

``seam`` columns measure the edge: over the 4-neighbour pairs with one pixel in the hole and
one outside, the mean absolute difference between the result's step and the photo's own
step there (0 = the edge looks exactly as in the photo), for the feathered and the Poisson
result. Last, the time (wall clock and this process's CPU time) of one 1000×1000-pixel hole. The holes' original pixels
are set to 0 before filling, so nothing of the truth leaks in. Nothing is asserted.

Usage::

    python benchmarks/bench_inpaint_fills.py
    python benchmarks/bench_inpaint_fills.py --check-tolerance   # also: default tolerance vs 1e-7
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.blend import (
    DEFAULT_TOLERANCE,
    connected_areas,
    context_square,
    harmonic_fill,
    mean_fill,
    poisson_blend,
    solve_laplace,
)
from engine.composite import composite_inpainting
from engine.metrics import psnr

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
FRACTIONS = (0.02, 0.05, 0.10)
BLUR_RADIUS = 3.0
COLOUR_GAIN = np.array([0.92, 1.0, 1.06])
COLOUR_OFFSET = np.array([14.0, -9.0, 6.0])


def load_photo(name: str) -> np.ndarray:
    import skimage.data  # a dev dependency: only the benchmark needs it

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def model_stand_in(photo: np.ndarray) -> np.ndarray:
    """The photo blurred and colour-shifted: soft detail, colours off, like a low-resolution fill."""
    blurred = np.asarray(
        Image.fromarray(photo).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)), dtype=np.float64
    )
    return np.clip(np.rint(blurred * COLOUR_GAIN + COLOUR_OFFSET), 0, 255).astype(np.uint8)


def rectangle_hole(height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    hole_height = int(round(math.sqrt(fraction * height * width * 3 / 4)))
    hole_width = int(round(fraction * height * width / hole_height))
    top = int(rng.integers(4, height - hole_height - 4))
    left = int(rng.integers(4, width - hole_width - 4))
    mask = np.zeros((height, width), dtype=np.float32)
    mask[top : top + hole_height, left : left + hole_width] = 1.0
    return mask


def blob_hole(height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A wobbly disc whose area is the fraction of the photo."""
    phases = rng.uniform(0, 2 * math.pi, size=2)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    radius = math.sqrt(fraction * height * width / math.pi)
    centre_row = float(rng.uniform(1.3 * radius + 4, height - 1.3 * radius - 4))
    centre_column = float(rng.uniform(1.3 * radius + 4, width - 1.3 * radius - 4))
    angle = np.arctan2(rows - centre_row, columns - centre_column)
    distance = np.hypot(rows - centre_row, columns - centre_column)
    wobble = 1.0 + 0.2 * np.sin(3 * angle + phases[0]) + 0.1 * np.cos(5 * angle + phases[1])
    for _ in range(4):  # rescale until the area matches
        mask = distance <= radius * wobble
        radius *= math.sqrt(fraction * height * width / max(int(mask.sum()), 1))
    return (distance <= radius * wobble).astype(np.float32)


def seam_error(result: np.ndarray, photo: np.ndarray, hole: np.ndarray) -> float:
    """Mean |result step − photo step| over the pairs of neighbours across the hole's edge."""
    errors = []
    for axis in (0, 1):
        crossing = np.diff(hole.astype(np.int8), axis=axis) != 0
        step_error = np.diff(result.astype(np.float64), axis=axis) - np.diff(
            photo.astype(np.float64), axis=axis
        )
        errors.append(np.abs(step_error)[crossing])
    return float(np.concatenate(errors).mean())


def one_case(photo: np.ndarray, stand_in: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    hole = mask >= 0.5
    corrupted = photo.copy()
    corrupted[hole] = 0
    (area,) = connected_areas(mask)
    roi = context_square(area, (photo.shape[1], photo.shape[0]), min_side=64, context=0.1)
    fill = roi.crop(stand_in)
    results = {
        "mean": mean_fill(corrupted, mask),
        "harmonic": harmonic_fill(corrupted, mask),
        "feathered": composite_inpainting(corrupted, mask, roi, fill),
        "poisson": poisson_blend(corrupted, mask, fill, box=roi.box),
    }
    scores = {name: psnr(photo[hole], result[hole], data_range=255) for name, result in results.items()}
    scores["seam feathered"] = seam_error(results["feathered"], photo, hole)
    scores["seam poisson"] = seam_error(results["poisson"], photo, hole)
    return scores


def time_large_hole(check_tolerance: bool) -> None:
    photo = np.asarray(
        Image.fromarray(load_photo("astronaut")).resize((1100, 1100), Image.Resampling.BICUBIC)
    )
    stand_in = model_stand_in(photo)
    mask = np.zeros((1100, 1100), dtype=np.float32)
    mask[50:1050, 50:1050] = 1.0
    started, cpu_started = time.perf_counter(), time.process_time()
    blended = poisson_blend(photo, mask, stand_in)
    blend_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    harmonic_fill(photo, mask)
    harmonic_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    hole = mask >= 0.5
    print(
        f"\n1000×1000 hole in a 1100×1100 photo (wall / CPU): poisson_blend {blend_seconds[0]:.2f} / "
        f"{blend_seconds[1]:.2f} s, harmonic_fill {harmonic_seconds[0]:.2f} / {harmonic_seconds[1]:.2f} s "
        f"(PSNR in the hole {psnr(photo[hole], blended[hole], data_range=255):.2f} dB)"
    )
    if check_tolerance:
        known = photo.transpose(2, 0, 1).astype(np.float32) - stand_in.transpose(2, 0, 1).astype(np.float32)
        guidance = stand_in.transpose(2, 0, 1).astype(np.float32)
        reference = solve_laplace(known, hole, tolerance=1e-7)
        default = solve_laplace(known, hole, tolerance=DEFAULT_TOLERANCE)
        levels = np.abs(default.values - reference.values)[:, hole].max()
        rounded = [np.clip(np.rint(guidance + s.values), 0, 255) for s in (default, reference)]
        print(
            f"tolerance {DEFAULT_TOLERANCE:g} ({default.iterations} iterations) against 1e-7 "
            f"({reference.iterations} iterations, reached {reference.relative_residual:.1e}): "
            f"at most {levels:.3f} levels apart before rounding, "
            f"{np.abs(rounded[0] - rounded[1]).max():.0f} after"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check-tolerance", action="store_true", help="compare the default tolerance with 1e-7"
    )
    parser.add_argument("--seed", type=int, default=0, help="where the holes go")
    options = parser.parse_args()
    rng = np.random.default_rng(options.seed)
    columns = ("mean", "harmonic", "feathered", "poisson", "seam feathered", "seam poisson")
    gain = ", ".join(f"{v:g}" for v in COLOUR_GAIN)
    offset = ", ".join(f"{v:+g}" for v in COLOUR_OFFSET)
    print("PSNR in the hole (dB); seam error at its edge (levels).")
    print(f"Model stand-in: the photo blurred {BLUR_RADIUS:g} px, RGB gain ({gain}), offset ({offset}).\n")
    print(f"{'photo':<10} {'hole':<10} " + " ".join(f"{name:>14}" for name in columns))
    rows = []
    started = time.perf_counter()
    for name in PHOTOS:
        photo = load_photo(name)
        stand_in = model_stand_in(photo)
        for fraction in FRACTIONS:
            for shape, make in (("rect", rectangle_hole), ("blob", blob_hole)):
                mask = make(photo.shape[0], photo.shape[1], fraction, rng)
                scores = one_case(photo, stand_in, mask)
                rows.append(scores)
                label = f"{shape} {fraction:.0%}"
                print(f"{name:<10} {label:<10} " + " ".join(f"{scores[c]:14.2f}" for c in columns))
    print(f"{'mean':<21} " + " ".join(f"{np.mean([r[c] for r in rows]):14.2f}" for c in columns))
    wins = sum(r["poisson"] > r["mean"] for r in rows)
    print(
        f"\npoisson above mean fill in {wins} of {len(rows)} holes; above the feathered composite in "
        f"{sum(r['poisson'] > r['feathered'] for r in rows)}; table took {time.perf_counter() - started:.1f} s"
    )
    time_large_hole(options.check_tolerance)


if __name__ == "__main__":
    main()
