#!/usr/bin/env bash
# Make the README's morph animation with the app's own command line and the built-in model:
# restore two of the shipped sample photos (full presets), save their states, and morph one into
# the other as a looping GIF.
#
#   bash docs/make_morph_gif.sh [OUT.gif]        (default: docs/morph.gif)
#
# Run from the repository root with the project installed (`dgp-studio` on PATH). About five
# minutes on two CPU cores; a GPU makes it seconds. The intermediate states go to a temporary
# folder that is removed afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${1:-docs/morph.gif}"
work="$(mktemp -d "${TMPDIR:-/tmp}/dgp-studio-morph.XXXXXX")"
trap 'rm -rf "$work"' EXIT
samples=dgp_studio/samples

dgp-studio restore "$samples/coffee-cup.jpg" --task inpaint --mask "$samples/coffee-cup-mask.png" \
    --class espresso --seed 0 -o "$work/cup.png" --save-state "$work/cup.dgpstate"
dgp-studio restore "$samples/chelsea-cat.jpg" --task reconstruct --class tabby --seed 0 \
    -o "$work/cat.png" --save-state "$work/cat.dgpstate"
dgp-studio morph "$work/cup.dgpstate" "$work/cat.dgpstate" --frames 24 --fps 12 \
    --easing ease-in-out --ping-pong --size 192 -o "$out" --overwrite
