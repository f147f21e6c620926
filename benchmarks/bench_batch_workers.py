"""Batch throughput on this machine: W local workers × T torch threads, side by side.

Restores the same Tiny ImageNet validation photos with the built-in model
through :func:`engine.batch.run_batch` (the path ``dgp-studio batch`` takes)
for each layout and preset, into a fresh temporary folder each time, and
prints photos per minute. The clock runs from the first photo handed to a
worker to the last result recorded, so process start and model loading are
left out (they are paid once per batch, not per photo); the start-up is
printed beside it. Layouts alternate within one run so that a background
load on a shared machine weighs on all of them alike; compare the ratios.

Usage::

    python benchmarks/bench_batch_workers.py --cores 2 --quick-photos 8 --default-photos 2
    python benchmarks/bench_batch_workers.py --quick-photos 0 --default-photos 2 --default-iteration-scale 0.1
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import batch


def extract_photos(tar_path: Path, folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.lower().endswith(".jpeg")]
        for index, member in enumerate(members[:: max(1, len(members) // count)][:count]):
            data = archive.extractfile(member).read()
            Image.open(io.BytesIO(data)).convert("RGB").save(folder / f"photo{index:02d}.png")


def run_once(photos: Path, workers: int, threads: int, quick: bool,
             iteration_scale: float = 1.0) -> tuple[float, float, int]:
    settings = batch.BatchSettings(task="colorize", quick=quick, class_index=None, device="cpu",
                                   threads=threads, model_identity="bench", iteration_scale=iteration_scale)
    with tempfile.TemporaryDirectory() as out:
        items = batch.plan_batch([photos], Path(out), settings)
        marks: dict[str, float] = {}
        created = time.perf_counter()

        def on_event(kind: str, data: dict) -> None:
            if kind == "started":
                marks.setdefault("first", time.perf_counter())
            elif kind == "record":
                marks["last"] = time.perf_counter()

        summary = batch.run_batch(items, settings, Path(out), on_event=on_event,
                                  make_pool=lambda: batch.LocalPool(settings, workers))
        return marks["last"] - marks["first"], marks["first"] - created, summary.done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/tiny-imagenet-200/val.tar")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick-photos", type=int, default=8)
    parser.add_argument("--default-photos", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="repeat each layout this many times (alternating)")
    parser.add_argument("--default-iteration-scale", type=float, default=1.0, metavar="X",
                        help="shorten the default preset's stages (its latent search is kept whole)")
    args = parser.parse_args()
    layouts = [(args.cores, 1), (1, args.cores)]
    with tempfile.TemporaryDirectory() as scratch:
        for preset, count in (("quick", args.quick_photos), ("default", args.default_photos)):
            if count <= 0:
                continue
            photos = Path(scratch) / preset
            extract_photos(args.data, photos, count)
            results: dict[tuple[int, int], list[float]] = {layout: [] for layout in layouts}
            for _round in range(args.rounds):
                for workers, threads in layouts:
                    scale = 1.0 if preset == "quick" else args.default_iteration_scale
                    seconds, startup, done = run_once(photos, workers, threads, quick=preset == "quick",
                                                      iteration_scale=scale)
                    rate = done / seconds * 60.0
                    results[(workers, threads)].append(rate)
                    print(f"{preset:7s} {workers}×{threads}: {done} photos in {seconds:6.1f} s "
                          f"= {rate:5.2f} photos/min (start-up {startup:4.1f} s)", flush=True)
            base = sum(results[layouts[1]]) / len(results[layouts[1]])
            best = sum(results[layouts[0]]) / len(results[layouts[0]])
            print(f"{preset:7s} {layouts[0][0]}×1 against 1×{layouts[1][1]}: {best / base:.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
