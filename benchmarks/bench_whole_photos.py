"""Whole photos at their own scale: each task against its classical baseline on real photos.

scikit-image's sample photos (public domain; they ship with scikit-image) of different
shapes are degraded the way each task undoes, restored through the engine's restore
plan (the same path as the app and the command line), and scored against the truth:

* sr ×4: PSNR of the result at several detail strengths (one set of model runs,
  assembled at each strength) against plain bicubic upscaling of the same input;
* inpaint: PSNR inside the holes against a mean-colour fill and a harmonic fill;
* colorize: PSNR against the grey input, and the share of the frame's columns that
  received colour (edge to edge means 100 %).

It prints one table per task and writes contact sheets (one row per photo: input,
baseline, result, truth) and ``results.json`` to ``--out``::

    python benchmarks/bench_whole_photos.py --out runs/whole-photos --quick --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engine import events as ev
from engine.api import Engine, RestoreRequest, load_model
from engine.assemble import assemble_composite
from engine.composite import RegionOfInterest, srgb_to_lab
from engine.metrics import psnr as _psnr

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of uint8 levels (data range 255)."""
    return _psnr(image.astype(np.float64), truth.astype(np.float64), data_range=255.0)


def sample_photo(name: str, long_side: int) -> np.ndarray:
    """A scikit-image sample photo as RGB uint8, its longer side resized to ``long_side`` (Lanczos)."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def run_plan(engine: Engine, request: RestoreRequest):
    """Every run's result and the final event of one restore."""
    runs, final = {}, None
    for event in engine.restore(request):
        if isinstance(event, ev.RunFinished):
            runs[event.index] = event.result
        elif isinstance(event, (ev.Finished, ev.Cancelled)):
            final = event
    return runs, final


def hole_psnr(image: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    return psnr(image[hole], truth[hole])


def evaluate_sr(engine, name, truth, request_options):
    factor = 4
    height, width = truth.shape[:2]
    height, width = height - height % factor, width - width % factor
    truth = truth[:height, :width]
    low = np.asarray(Image.fromarray(truth).resize((width // factor, height // factor), Image.Resampling.LANCZOS))
    bicubic = np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC))
    request = RestoreRequest(image=low, task="sr", sr_factor=factor, source_name=name, **request_options)
    started = time.perf_counter()
    prepared = engine.prepare(request)
    runs, _final = run_plan(engine, prepared)
    seconds = time.perf_counter() - started
    results = [runs.get(index) for index in range(len(prepared.plan.runs))]
    by_strength = {s: assemble_composite(prepared, results, detail_strength=s) for s in STRENGTHS}
    pattern_kept = assemble_composite(prepared, results, detail_strength=0.5, remove_fixed_pattern=False)
    row = {
        "photo": name, "size": f"{width}×{height}", "tiles": len(prepared.plan.runs), "seconds": seconds,
        "bicubic": psnr(bicubic, truth),
        **{f"s={s:g}": psnr(image, truth) for s, image in by_strength.items()},
        "s=0.5 pattern kept": psnr(pattern_kept, truth),
    }
    sheet = [np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.NEAREST)), bicubic,
             pattern_kept, by_strength[0.5], by_strength[1.0], truth]
    return row, sheet


def holes_for(height: int, width: int) -> np.ndarray:
    """Two holes: a rectangle (about 2 % of the photo) and a round blob (about 3 %)."""
    mask = np.zeros((height, width), np.float32)
    rect_h, rect_w = int(height * 0.12), int(width * 0.16)
    top, left = int(height * 0.2), int(width * 0.15)
    mask[top : top + rect_h, left : left + rect_w] = 1.0
    ys, xs = np.mgrid[0:height, 0:width]
    radius = 0.1 * min(height, width)
    mask[(ys - height * 0.65) ** 2 + (xs - width * 0.68) ** 2 <= radius**2] = 1.0
    return mask


def evaluate_inpaint(engine, name, truth, request_options):
    from engine.blend import harmonic_fill, mean_fill

    height, width = truth.shape[:2]
    mask = holes_for(height, width)
    hole = mask >= 0.5
    damaged = truth.copy()
    damaged[hole] = 0
    request = RestoreRequest(image=damaged, task="inpaint", mask=mask, source_name=name, **request_options)
    started = time.perf_counter()
    prepared = engine.prepare(request)
    runs, final = run_plan(engine, prepared)
    seconds = time.perf_counter() - started
    results = [runs.get(index) for index in range(len(prepared.plan.runs))]
    by_strength = {s: assemble_composite(prepared, results, detail_strength=s) for s in STRENGTHS}
    mean, harmonic = mean_fill(damaged, mask), harmonic_fill(damaged, mask)
    outside_identical = all(bool(np.array_equal(image[~hole], damaged[~hole])) for image in by_strength.values())
    row = {
        "photo": name, "size": f"{width}×{height}", "areas": final.result.runs_total, "seconds": seconds,
        "mean fill": hole_psnr(mean, truth, hole), "harmonic fill": hole_psnr(harmonic, truth, hole),
        **{f"s={s:g}": hole_psnr(image, truth, hole) for s, image in by_strength.items()},
        "outside identical": outside_identical,
    }
    return row, [damaged, mean, harmonic, by_strength[0.5], by_strength[1.0], truth]


def evaluate_colorize(engine, name, truth, request_options):
    gray_plane = np.asarray(Image.fromarray(truth).convert("L"))
    gray = np.repeat(gray_plane[..., None], 3, axis=2)
    request = RestoreRequest(image=gray, task="colorize", source_name=name, **request_options)
    started = time.perf_counter()
    _runs, final = run_plan(engine, request)
    seconds = time.perf_counter() - started
    result = final.result.composite
    # The former behaviour for comparison: only the largest centred square goes to the model.
    square = RegionOfInterest.largest_centred_square(truth.shape[1], truth.shape[0])
    _runs, centred = run_plan(engine, RestoreRequest(image=gray, task="colorize", roi=square, source_name=name,
                                                     **request_options))
    centred = centred.result.composite

    def coloured_columns(image: np.ndarray) -> float:
        chroma = np.hypot(*np.moveaxis(srgb_to_lab(image)[..., 1:], -1, 0))
        return 100.0 * float(np.mean((chroma > 2.0).any(axis=0)))

    row = {
        "photo": name, "size": f"{truth.shape[1]}×{truth.shape[0]}", "seconds": seconds,
        "grey input": psnr(gray, truth), "centred square": psnr(centred, truth), "whole frame": psnr(result, truth),
        "coloured columns %, centred": coloured_columns(centred), "coloured columns %, whole": coloured_columns(result),
    }
    return row, [gray, centred, result, truth]


def contact_sheet(rows: list[list[np.ndarray]], path: Path, height: int = 160) -> None:
    tiles = []
    for row in rows:
        scaled = [Image.fromarray(image).resize((max(1, round(image.shape[1] * height / image.shape[0])), height),
                                                Image.Resampling.LANCZOS) for image in row]
        width = sum(tile.width for tile in scaled) + 4 * (len(scaled) - 1)
        line = Image.new("RGB", (width, height), "white")
        x = 0
        for tile in scaled:
            line.paste(tile, (x, 0))
            x += tile.width + 4
        tiles.append(line)
    sheet = Image.new("RGB", (max(t.width for t in tiles), sum(t.height + 4 for t in tiles)), "white")
    y = 0
    for line in tiles:
        sheet.paste(line, (0, y))
        y += line.height + 4
    sheet.save(path)


def print_table(task: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    print(f"\n### {task}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    numbers = [c for c in columns if all(isinstance(r[c], float) for r in rows) and c != "seconds"]
    means = [f"{np.mean([r[c] for r in rows]):.2f}" if c in numbers else "" for c in columns]
    means[0] = "**mean**"
    print("| " + " | ".join(means) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default="sr,inpaint,colorize")
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iteration-scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sr-long-side", type=int, default=192, help="truth size for ×4 SR (input is 1/4)")
    parser.add_argument("--long-side", type=int, default=256, help="photo size for inpainting and colorization")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    engine = Engine(load_model("builtin"), threads=args.threads)
    options = {"quick": args.quick, "iteration_scale": args.iteration_scale}
    evaluators = {"sr": evaluate_sr, "inpaint": evaluate_inpaint, "colorize": evaluate_colorize}
    report = {}
    for task in args.tasks.split(","):
        rows, sheet = [], []
        for name in args.photos.split(","):
            side = args.sr_long_side if task == "sr" else args.long_side
            row, images = evaluators[task](engine, name, sample_photo(name, side), options)
            rows.append(row)
            sheet.append(images)
            print(json.dumps(row), flush=True)
        print_table(task, rows)
        contact_sheet(sheet, args.out / f"sheet_{task}.png")
        report[task] = rows
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
