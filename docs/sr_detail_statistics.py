"""Where a ×4 super-resolution result's error lies: below or above the input's Nyquist frequency.

Reads the images an evaluation run wrote (``dgp-studio evaluate --tasks sr4 ... --out DIR``) and
prints, per method and averaged over the images:

- PSNR against the ground truth;
- the share of the error's energy above the low-resolution input's Nyquist frequency (the part
  the input says nothing about, which the prior has to supply);
- the energy of the result's detail (that band) relative to the ground truth's;
- the correlation of the result's detail with the ground truth's.

A detail band with energy ratio a and correlation ρ costs the truth's detail energy times
(1 + a − 2ρ√a); a blur (a ≈ 0) costs it once. So a result whose detail correlates poorly with the
truth loses PSNR to a blur however plausible it looks.

    python docs/sr_detail_statistics.py runs/evaluation --methods bicubic,dgp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from engine.metrics import psnr

SCALE = 4


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _detail_mask(height: int, width: int) -> np.ndarray:
    """True at the 2-D frequencies above the input's Nyquist (|k| > size / (2·SCALE) on either axis)."""
    ky = np.abs(np.fft.fftfreq(height) * height)
    kx = np.abs(np.fft.fftfreq(width) * width)
    return (ky[:, None] > height / (2 * SCALE)) | (kx[None, :] > width / (2 * SCALE))


def band_statistics(result: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    detail = _detail_mask(*truth.shape[:2])
    error_spectrum = np.abs(np.fft.fft2(result - truth, axes=(0, 1))) ** 2
    result_detail = np.fft.fft2(result, axes=(0, 1))[detail]
    truth_detail = np.fft.fft2(truth, axes=(0, 1))[detail]
    result_energy = float((np.abs(result_detail) ** 2).sum())
    truth_energy = float((np.abs(truth_detail) ** 2).sum())
    return {
        "psnr": psnr(truth, result, data_range=1.0),
        "error_above_nyquist": float(error_spectrum[detail].sum() / error_spectrum.sum()),
        "detail_energy": result_energy / truth_energy,
        "detail_correlation": float(np.real((result_detail * np.conj(truth_detail)).sum()))
        / np.sqrt(result_energy * truth_energy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="folder of a 'dgp-studio evaluate --tasks sr4' run")
    parser.add_argument("--methods", default="bicubic,dgp", help="comma-separated (default: bicubic,dgp)")
    args = parser.parse_args(argv)
    results_dir, truth_dir = args.report / "images" / "sr4", args.report / "images" / "truth"
    if not results_dir.is_dir() or not truth_dir.is_dir():
        print(f"{args.report}: no images/sr4 and images/truth folders (not an sr4 evaluation run).", file=sys.stderr)
        return 2
    truths = {path.stem: path for path in truth_dir.iterdir()}
    print(f"{'method':10s} {'images':>6s} {'PSNR':>6s} {'error above Nyquist':>20s} "
          f"{'detail energy':>14s} {'detail correlation':>19s}")
    for method in args.methods.split(","):
        rows = []
        for path in sorted(results_dir.glob(f"*__{method}.png")):
            image_id = path.name[: -len(f"__{method}.png")]
            truth = truths.get(image_id)
            if truth is not None:
                rows.append(band_statistics(_load(path), _load(truth)))
        if not rows:
            print(f"{method:10s} {0:6d}  (no images)")
            continue
        mean = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
        print(f"{method:10s} {len(rows):6d} {mean['psnr']:6.2f} {mean['error_above_nyquist']:20.2f} "
              f"{mean['detail_energy']:14.2f} {mean['detail_correlation']:19.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
