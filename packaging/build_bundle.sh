#!/usr/bin/env bash
# Build the one-folder PyInstaller bundle dist/dgp-studio/ and smoke-test it.
#
#   packaging/build_bundle.sh
#
# The bundle is built from a clean, runtime-only virtual environment (build/bundle-venv: torch,
# the project and its runtime dependencies at the pinned versions, PyInstaller; no dev tools),
# because PyInstaller takes whatever the build environment can import.
#
# Environment:
#   PYTHON            interpreter for the virtual environment (default: python3.11, else python3)
#   TORCH_INDEX_URL   optional pip index for torch, e.g. https://download.pytorch.org/whl/cpu
#                     for a CPU-only bundle (PyPI's Linux torch wheel pulls in the CUDA libraries)
#
# Contents, checked with the virtual environment's Python: the built-in model, every preset, the
# desktop entry and icons, the sample list with its photos, masks and credits are inside; no
# other weight file is, nor Qt's GTK theme plugin. The CUDA libraries carried are counted (none
# with a CPU-only torch).
#
# Smoke tests, run from outside the repository with the virtual environment out of reach:
#   1. dgp-studio --version prints the project's version;
#   2. --install-desktop-entry writes a menu entry that starts the bundle's executable;
#   3. the window starts (offscreen), loads the built-in model and stays up for a few seconds,
#      with no warning or error in its log;
#   4. a quick restore of the bundle's own colorize sample photo (JPEG in) writes a PNG of the
#      photo's size and a state; a 3-frame morph of that state is written as MP4 (PyAV) and GIF.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

venv="build/bundle-venv"
work="build/pyinstaller"
bundle_dir="dist/dgp-studio"
smoke_dir="build/bundle-smoke"
window_seconds=15

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    python="$(command -v python3.11 || command -v python3)"
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "build_bundle.sh: $python is older than Python 3.11" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }

step "clean virtual environment $venv ($("$python" --version))"
rm -rf "$venv" "$work" "$bundle_dir" "$smoke_dir"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

step "torch (pinned, on its own first)"
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    "${pip[@]}" install --index-url "$TORCH_INDEX_URL" torch==2.13.0
else
    "${pip[@]}" install torch==2.13.0
fi

step "dgp-studio and its runtime dependencies (no dev extras)"
"${pip[@]}" install -c constraints.txt .

step "PyInstaller"
"${pip[@]}" install -c constraints.txt pyinstaller pyinstaller-hooks-contrib

step "pyinstaller packaging/dgp-studio.spec"
"$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath dist --workpath "$work" packaging/dgp-studio.spec

executable="$repo_root/$bundle_dir/dgp-studio"
[[ -x "$executable" ]] || { echo "build_bundle.sh: $executable was not built" >&2; exit 1; }
echo "bundle: $bundle_dir ($(du -sh "$bundle_dir" | cut -f1))"

step "bundle contents"
"$venv/bin/python" - "$repo_root" "$bundle_dir/_internal" <<'PY'
import sys
from pathlib import Path

from dgp_studio.desktop_entry import APP_ID
from dgp_studio.welcome import load_samples

repo, inside = (Path(argument) for argument in sys.argv[1:3])
problems = []


def expect(relative):
    if not (inside / relative).is_file():
        problems.append(f"{relative} is missing")


for name in ("model.json", "G_ema.safetensors", "D.safetensors"):
    expect(f"resources/models/builtin-64/{name}")
expect("resources/imagenet_classes.json")
presets = sorted(path.name for path in (repo / "resources" / "presets").glob("*.toml"))
for name in presets:
    expect(f"resources/presets/{name}")
for name in ("app_id.txt", f"{APP_ID}.desktop", f"icons/{APP_ID}.png", f"icons/{APP_ID}.svg"):
    expect(f"packaging/{name}")
samples = load_samples(inside / "dgp_studio" / "samples")  # raises if a photo or mask is missing
expect("dgp_studio/samples/LICENSES.md")

weight_suffixes = {".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".npz"}
builtin_model = inside / "resources" / "models" / "builtin-64"
problems += [
    f"{path.relative_to(inside)} is a weight file outside the built-in model"
    for path in inside.rglob("*")
    if path.suffix in weight_suffixes and builtin_model not in path.parents
]
problems += [
    f"{path.relative_to(inside)} is Qt's GTK theme plugin, which the spec leaves out"
    for path in inside.rglob("libqgtk3.so")
]
cuda_prefixes = ("libcuda", "libcublas", "libcudnn", "libcufft", "libcusparse", "libnccl", "libnvrtc")
cuda_libraries = sorted(path.name for path in inside.rglob("lib*.so*") if path.name.startswith(cuda_prefixes))
print(f"{len(presets)} presets, {len(samples)} samples with their photos and masks, the built-in model, icons: "
      + ("ok" if not problems else "PROBLEMS"))
print(f"CUDA libraries: {len(cuda_libraries)}" + (f" ({', '.join(cuda_libraries[:5])}, ...)" if cuda_libraries else ""))
if problems:
    sys.exit("build_bundle.sh: " + "; ".join(problems))
PY

# The smoke tests run in an empty folder, with no virtual environment, PYTHONPATH or user
# configuration in reach: the bundle must carry everything it needs.
mkdir -p "$smoke_dir/home"
smoke_dir="$(cd "$smoke_dir" && pwd)"
bundle_env=(env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV
    PATH=/usr/local/bin:/usr/bin:/bin HOME="$smoke_dir/home"
    XDG_CONFIG_HOME="$smoke_dir/home/config" XDG_DATA_HOME="$smoke_dir/home/data"
    XDG_CACHE_HOME="$smoke_dir/home/cache" XDG_STATE_HOME="$smoke_dir/home/state"
    DGP_STUDIO_LOG_DIR="$smoke_dir/log" QT_QPA_PLATFORM=offscreen)
run_bundle() { (cd "$smoke_dir" && "${bundle_env[@]}" "$executable" "$@"); }

step "smoke test: dgp-studio --version"
expected_version="$("$venv/bin/python" -c 'import engine; print(engine.__version__)')"
reported="$(run_bundle --version)"
echo "$reported"
[[ "$reported" == *"$expected_version"* ]] \
    || { echo "build_bundle.sh: --version printed '$reported', expected $expected_version" >&2; exit 1; }

step "smoke test: dgp-studio --install-desktop-entry (into the smoke test's own data folder)"
run_bundle --install-desktop-entry
installed_entry="$(find "$smoke_dir/home/data/applications" -name '*.desktop' -print -quit)"
grep "^Exec=" "$installed_entry" | grep -F "$executable" \
    || { echo "build_bundle.sh: $installed_entry does not start $executable" >&2; exit 1; }

step "smoke test: the window starts offscreen and stays up ${window_seconds}s"
set +e
(cd "$smoke_dir" && timeout --kill-after=5 "$window_seconds" "${bundle_env[@]}" "$executable") \
    > "$smoke_dir/window.log" 2>&1
window_status=$?
set -e
if [[ $window_status -ne 124 ]]; then
    cat "$smoke_dir/window.log" >&2
    echo "build_bundle.sh: the window exited with status $window_status within ${window_seconds}s" >&2
    exit 1
fi
app_log="$smoke_dir/log/dgp-studio.log"
if ! grep -q "model ready" "$app_log" || grep -E -q " (WARNING|ERROR|CRITICAL) |Traceback" "$app_log"; then
    cat "$app_log" >&2
    echo "build_bundle.sh: the window did not load the built-in model cleanly (its log is above)" >&2
    exit 1
fi
grep -o "model ready.*" "$app_log"
echo "still running after ${window_seconds}s, no warning in its log: ok"

step "smoke test: quick restore of the colorize sample, then a morph of its state"
# The bundle's own copy of the sample photo, with the class its samples.toml entry names.
sample_lines="$("$venv/bin/python" - "$repo_root/$bundle_dir/_internal" <<'PY'
import sys
from pathlib import Path

from dgp_studio.welcome import load_samples

samples = load_samples(Path(sys.argv[1]) / "dgp_studio" / "samples")
sample = next(sample for sample in samples if sample.task == "colorize")
print(sample.class_name or "auto", sample.path, sep="\n")  # a class name may hold spaces
PY
)"
sample_class="${sample_lines%%$'\n'*}"
sample_photo="${sample_lines#*$'\n'}"
echo "sample: ${sample_photo#"$repo_root/"} (class $sample_class)"
run_bundle restore "$sample_photo" --task colorize --class "$sample_class" --quick \
    -o out.png --save-state out.dgpstate
run_bundle morph out.dgpstate out.dgpstate --frames 3 --fps 12 -o morph.mp4
run_bundle morph out.dgpstate out.dgpstate --frames 3 --fps 12 -o morph.gif
"$venv/bin/python" - "$sample_photo" "$smoke_dir" 12 <<'PY'
import sys
from pathlib import Path

import av
from PIL import Image, ImageSequence

photo, smoke, morph_fps = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
with Image.open(photo) as original, Image.open(smoke / "out.png") as restored:
    if restored.format != "PNG" or restored.size != original.size:
        sys.exit(f"out.png is a {restored.format} of {restored.size}, expected a PNG of {original.size}")
    print(f"out.png: {restored.width}x{restored.height} {restored.mode}, the photo's size: ok")
with av.open(str(smoke / "morph.mp4")) as container:
    video_frames = sum(1 for _ in container.decode(video=0))
if video_frames != 3:
    sys.exit(f"morph.mp4 has {video_frames} frames, expected 3")
# The state morphs into itself, so the GIF encoder merges the identical frames into one that
# lasts as long as the three (GIF times frames in hundredths of a second).
expected_ms = 3 * 1000 / morph_fps
with Image.open(smoke / "morph.gif") as animation:
    gif_ms = sum(frame.info.get("duration", 0) for frame in ImageSequence.Iterator(animation))
    if animation.format != "GIF" or abs(gif_ms - expected_ms) > 3 * 10:
        sys.exit(f"morph.gif is a {animation.format} of {gif_ms} ms, expected a GIF of {expected_ms:.0f} ms")
print(f"morph.mp4: 3 frames, morph.gif: {gif_ms} ms: ok")
PY

step "bundle built and smoke-tested: $bundle_dir"
