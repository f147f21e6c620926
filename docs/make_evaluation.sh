#!/usr/bin/env bash
# Make docs/evaluation.md: every task and every method on a seeded sample of 200 Tiny ImageNet
# validation images with the built-in model (quick presets), split over one process per core.
#
#   bash docs/make_evaluation.sh [EXTRA EVALUATE OPTIONS]
#
# Run from the repository root with the project installed (`dgp-studio` on PATH). Resumable: the
# results accumulate in runs/evaluation/ (or $DGP_EVAL_OUT), and a rerun continues where the last
# one stopped. Environment: DGP_EVAL_DATA (the val.tar), DGP_EVAL_SHARDS (processes, default: the
# number of cores), DGP_EVAL_LIMIT (images, default 200). Shard K's progress goes to
# OUT/shard-K.log, except the first shard's, which stays on the terminal.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

data="${DGP_EVAL_DATA:-../shared/data/tiny-imagenet-200/val.tar}"
out="${DGP_EVAL_OUT:-runs/evaluation}"
shards="${DGP_EVAL_SHARDS:-$(nproc)}"
limit="${DGP_EVAL_LIMIT:-200}"
mkdir -p "$out"

pids=()
for shard in $(seq 1 "$shards"); do
    command=(dgp-studio evaluate --data "$data" --limit "$limit" --quick --seed 0 --threads 1
             --shard "$shard/$shards" --out "$out" "$@")
    if [ "$shard" -eq 1 ]; then
        "${command[@]}" &
    else
        "${command[@]}" 2> "$out/shard-$shard.log" &
    fi
    pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
if [ "$status" -ne 0 ]; then
    echo "make_evaluation: a shard stopped with status $status; rerun to continue." >&2
    exit "$status"
fi

# The last shard to stop wrote the report over every shard's results: publish it in docs/.
mkdir -p docs/evaluation
cp "$out"/sheet_*.png docs/evaluation/
report="$(sed 's#](sheet_#](evaluation/sheet_#' "$out/evaluation.md")"  # sheet links into docs/evaluation/
if grep -qx '## The run' docs/evaluation.md 2>/dev/null; then
    # Keep the hand-written part above "## The run"; the generated report, less its title, follows it.
    { sed '/^## The run$/,$d' docs/evaluation.md; echo '## The run'; tail -n +2 <<< "$report"; } > docs/evaluation.md.tmp
else
    echo "$report" > docs/evaluation.md.tmp
fi
mv docs/evaluation.md.tmp docs/evaluation.md
echo "wrote docs/evaluation.md and docs/evaluation/sheet_*.png"
