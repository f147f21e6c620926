#!/usr/bin/env bash
# Fresh-machine check: does the README's "## Set-up" work, word for word, on a clean clone?
#
#   packaging/fresh_machine_check.sh [--install-only] [--screenshot PATH] [--wait SECONDS] [--keep]
#   packaging/fresh_machine_check.sh --print-script    # show what would run, run nothing
#
# 1. Clones the repository's last commit into a temporary folder (uncommitted changes are not
#    part of what a new user gets, so they are not part of the check).
# 2. Reads the first ```bash block under "## Set-up" in that clone's README.md and runs its
#    commands literally, in one shell, in the clone: every line but the last installs (it makes
#    the clone's own .venv); the last line launches the app. The script never restates those
#    commands, so it cannot drift from the README.
# 3. Unless --install-only: runs the launch line under Xvfb with an empty user configuration,
#    waits until a viewable dgp-studio top-level window exists (window class "dgp-studio",
#    QApplication.applicationName), lets it paint, saves a screenshot of the screen
#    (ImageMagick's `import -window root`) and checks it is not blank, then closes the app.
#
# Exit status: 0 when the install succeeded (and, without --install-only, the window appeared);
# non-zero otherwise, with the failing command's output or the app's log printed.
#
# Needs: git, the README's python (python3.11) and network access for pip. The launch half also
# needs, on Debian/Ubuntu: xvfb xauth x11-utils imagemagick and Qt's xcb libraries; missing ones
# are installed with apt-get (as root, or through sudo).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

install_only=0
print_only=0
keep=0
wait_seconds=90
screenshot="$repo_root/build/fresh-machine-window.png"
usage() { sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --install-only) install_only=1 ;;
        --keep) keep=1 ;;
        --print-script) print_only=1 ;;
        --wait) wait_seconds="${2:?--wait needs a number of seconds}"; shift ;;
        --screenshot) screenshot="${2:?--screenshot needs a file path}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fresh_machine_check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$wait_seconds" =~ ^[0-9]+$ ]] \
    || { echo "fresh_machine_check.sh: --wait takes whole seconds" >&2; exit 2; }
mkdir -p "$(dirname "$screenshot")"
screenshot="$(cd "$(dirname "$screenshot")" && pwd)/$(basename "$screenshot")"

say() { printf '\n== %s\n' "$*"; }
fail() { echo "fresh_machine_check.sh: $*" >&2; exit 1; }

# Qt's xcb platform plugin (Qt 6) and the tools this check uses, as Debian/Ubuntu packages.
display_packages=(
    xvfb xauth x11-utils imagemagick
    libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0
    libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-xinerama0
    libxcb-xkb1 libxcb-util1 libxkbcommon-x11-0 libx11-xcb1 libegl1 libgl1 libfontconfig1 libdbus-1-3
)

ensure_display_packages() {
    if ! command -v dpkg-query >/dev/null; then
        echo "not a Debian/Ubuntu system: make sure Xvfb, xauth, xwininfo, ImageMagick" \
             "and Qt's xcb libraries are installed"
        return
    fi
    local missing=() package
    for package in "${display_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [[ ${#missing[@]} -eq 0 ]] && { echo "all present"; return; }
    echo "installing: ${missing[*]}"
    local apt=(apt-get)
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || fail "missing packages (${missing[*]}) and not root; install them first"
        apt=(sudo apt-get)
    fi
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
say "clean clone of the last commit"
work="$(mktemp -d "${TMPDIR:-/tmp}/dgp-studio-fresh.XXXXXX")"
cleanup() { if [[ $keep -eq 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
clone="$work/dgp-studio"
git clone --quiet "$repo_root" "$clone"
echo "$clone at $(git -C "$clone" rev-parse --short HEAD)"
if [[ -n "$(git -C "$repo_root" status --porcelain --untracked-files=no)" ]]; then
    echo "note: $repo_root has uncommitted changes; they are not part of this check"
fi

say "the README's set-up commands"
# The first ```bash block under "## Set-up", blank lines and comments dropped.
mapfile -t commands < <(awk '
    $0 == "## Set-up" { section = 1; next }
    section && /^## / { exit }
    section && !block && /^```bash[[:space:]]*$/ { block = 1; next }
    block && /^```/ { exit }
    block && $0 !~ /^[[:space:]]*(#|$)/ { print }
' "$clone/README.md")
[[ ${#commands[@]} -ge 2 ]] \
    || fail "README.md has no \`\`\`bash block with an install and a launch command under '## Set-up'"
install_commands=("${commands[@]:0:${#commands[@]}-1}")
launch_command="${commands[-1]}"
# The launch line is run in the background, so it must be one simple command.
# shellcheck disable=SC2016  # a regular expression: $ and ` are literal characters here
launch_pattern='^(dgp-studio|python[0-9.]* -m dgp_studio)( [^&|;<>`$()]*)?$'
[[ "$launch_command" =~ $launch_pattern ]] \
    || fail "the last line of README's set-up block is not the app's launch command: $launch_command"
printf 'install: %s\n' "${install_commands[@]}"
echo "launch:  $launch_command"

# The generated script runs the README lines verbatim, one shell, in the clone: the install
# lines' `. .venv/bin/activate` is what puts the launcher on PATH for the launch line.
script="$work/readme_setup.sh"
{
    echo 'set -euo pipefail'
    printf 'cd %q\n' "$clone"
    for command in "${install_commands[@]}"; do
        printf 'echo %q\n' "+ $command"
        printf '%s\n' "$command"
    done
} > "$script"

if [[ $install_only -eq 0 ]]; then
    cat >> "$script" <<EOF
# ---- launch half (under Xvfb) ----
export XDG_CONFIG_HOME=$(printf %q "$work/user/config") XDG_DATA_HOME=$(printf %q "$work/user/data")
export XDG_STATE_HOME=$(printf %q "$work/user/state")
unset QT_QPA_PLATFORM
app_log=$(printf %q "$work/app.log")
screenshot=$(printf %q "$screenshot")
wait_seconds=$wait_seconds
echo "+ $launch_command   (display \$DISPLAY)"
$launch_command > "\$app_log" 2>&1 &
EOF
    cat >> "$script" <<'EOF'
app_pid=$!
trap 'kill "$app_pid" 2>/dev/null || true' EXIT

# A viewable top-level window whose WM_CLASS class is "dgp-studio" and that is not tiny.
window_is_up() {
    local id
    for id in $(xwininfo -root -tree 2>/dev/null | awk '/"dgp-studio"\)/ { print $1 }'); do
        xwininfo -id "$id" 2>/dev/null | awk '
            /Map State:/ { viewable = ($3 == "IsViewable") }
            /Width:/ { width = $2 } /Height:/ { height = $2 }
            END { exit !(viewable && width >= 200 && height >= 150) }' && return 0
    done
    return 1
}

for (( second = 0; second < wait_seconds; second++ )); do
    window_is_up && break
    if ! kill -0 "$app_pid" 2>/dev/null; then
        cat "$app_log" >&2
        echo "the app exited before showing its window" >&2
        exit 1
    fi
    sleep 1
done
if ! window_is_up; then
    cat "$app_log" >&2
    xwininfo -root -tree >&2 || true
    echo "no dgp-studio window appeared within ${wait_seconds}s" >&2
    exit 1
fi
echo "window up after ${second}s"
sleep 3     # let the first paint (and any start-up work) land before the screenshot
import -window root "$screenshot"
# A blank screen means the window never painted: the check must see something drawn.
python - "$screenshot" <<'PY'
import sys
from PIL import Image

low, high = Image.open(sys.argv[1]).convert("L").getextrema()
if high - low < 16:
    sys.exit(f"{sys.argv[1]} is blank (grey levels {low}..{high}): the window did not paint")
print(f"screenshot {sys.argv[1]}: grey levels {low}..{high}")
PY
kill "$app_pid"
wait "$app_pid" 2>/dev/null || true
trap - EXIT
echo "window appeared; screenshot saved"
EOF
fi

# A fresh user: no active virtual environment, PYTHONPATH or forced Qt platform from this shell.
clean_path="$PATH"
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    clean_path="$(tr ':' '\n' <<<"$PATH" | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd: -)"
fi
clean_env=(env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP -u QT_QPA_PLATFORM
           PATH="$clean_path")

if [[ $print_only -eq 1 ]]; then
    say "$script (not run)"
    cat "$script"
    exit 0
fi

if [[ $install_only -eq 1 ]]; then
    say "install half (README, literally)"
    "${clean_env[@]}" bash "$script"
    say "install succeeded (--install-only: the app was not launched)"
    exit 0
fi

say "display packages"
ensure_display_packages
command -v xvfb-run >/dev/null || fail "xvfb-run is missing (Debian package xvfb)"

say "install and launch (README, literally), under Xvfb"
"${clean_env[@]}" xvfb-run --auto-servernum --server-args="-screen 0 1280x800x24" bash "$script"
say "fresh-machine check passed: $screenshot"
