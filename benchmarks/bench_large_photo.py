"""Peak memory of loading a large camera photo with ``engine.imageio.load_image``.

Makes a 12000×9000 (108 MP) JPEG with photo-like content in a temporary folder (in a child
process), then loads it in another fresh process and prints the time and the peak resident
memory before and after (``resource.getrusage``), so the torch import is not counted as the
photo's. Both are children because Linux carries a process's peak RSS across ``exec``.

    python benchmarks/bench_large_photo.py [--width 12000 --height 9000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LOADER = """
import resource, sys, time
import engine.imageio
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
loaded = engine.imageio.load_image(sys.argv[1])
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{loaded.width}x{loaded.height} loaded in {seconds:.1f} s; peak RSS {peak / 1024:.0f} MiB "
      f"({before / 1024:.0f} MiB before loading, +{(peak - before) / 1024:.0f} MiB for the photo)")
"""


def make_photo(path: Path, width: int, height: int) -> None:
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    columns = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = (rows * 0.7 + columns * 0.3).astype(np.uint8)
    rgb[..., 1] = (columns * 0.8).astype(np.uint8)
    rgb[..., 2] = np.random.default_rng(0).integers(0, 255, (height, width), dtype=np.uint8) // 4 + 64
    Image.fromarray(rgb).save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=9000)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_photo(args.make, args.width, args.height)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.jpg"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make", str(path), "--width", str(args.width),
                        "--height", str(args.height)], check=True)
        print(f"made {path.name}: {args.width}x{args.height}, {path.stat().st_size / 2**20:.1f} MiB "
              f"in {time.perf_counter() - started:.1f} s")
        subprocess.run([sys.executable, "-c", LOADER, str(path)], check=True)


if __name__ == "__main__":
    main()
