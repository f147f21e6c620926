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
# Smoke tests, run from outside the repository with the virtual environment out of reach:
#   1. dgp-studio --version prints the project's version;
#   2. the window starts (offscreen) and stays up for a few seconds;
#   3. a quick colorize restore of a generated sample writes a PNG of the sample's size
#      (skipped while resources/models/builtin-64/model.json is absent).
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

# The smoke tests run in an empty folder, with no virtual environment, PYTHONPATH or user
# configuration in reach: the bundle must carry everything it needs.
mkdir -p "$smoke_dir/home"
smoke_dir="$(cd "$smoke_dir" && pwd)"
bundle_env=(env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV
    PATH=/usr/local/bin:/usr/bin:/bin HOME="$smoke_dir/home"
    XDG_CONFIG_HOME="$smoke_dir/home/config" XDG_DATA_HOME="$smoke_dir/home/data"
    XDG_CACHE_HOME="$smoke_dir/home/cache" QT_QPA_PLATFORM=offscreen)
run_bundle() { (cd "$smoke_dir" && "${bundle_env[@]}" "$executable" "$@"); }

step "smoke test: dgp-studio --version"
expected_version="$("$venv/bin/python" -c 'import engine; print(engine.__version__)')"
reported="$(run_bundle --version)"
echo "$reported"
[[ "$reported" == *"$expected_version"* ]] \
    || { echo "build_bundle.sh: --version printed '$reported', expected $expected_version" >&2; exit 1; }

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
echo "still running after ${window_seconds}s: ok"

step "smoke test: quick colorize restore"
if [[ ! -f resources/models/builtin-64/model.json ]]; then
    echo "SKIPPED: resources/models/builtin-64/model.json is absent (the built-in model is not shipped yet)"
else
    # A small synthetic photo: a colour gradient with a disc, so the restore has structure to keep.
    "$venv/bin/python" - "$smoke_dir/sample.png" <<'PY'
import sys
from PIL import Image, ImageDraw

image = Image.new("RGB", (96, 80))
image.putdata([(x * 255 // 95, y * 255 // 79, 128) for y in range(80) for x in range(96)])
ImageDraw.Draw(image).ellipse((28, 20, 68, 60), fill=(230, 180, 40))
image.save(sys.argv[1])
PY
    run_bundle restore sample.png --task colorize --quick -o out.png
    "$venv/bin/python" - "$smoke_dir/sample.png" "$smoke_dir/out.png" <<'PY'
import sys
from PIL import Image

sample, restored = (Image.open(path) for path in sys.argv[1:3])
if restored.size != sample.size:
    sys.exit(f"out.png is {restored.size}, expected the sample's size {sample.size}")
print(f"out.png: {restored.size[0]}x{restored.size[1]} {restored.mode}: ok")
PY
fi

step "bundle built and smoke-tested: $bundle_dir"
