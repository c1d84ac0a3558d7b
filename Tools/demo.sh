#!/usr/bin/env bash
# `make demo`: plan BBC News into S3T shards, train, evaluate, forget an example, audit and
# verify the run, evaluate again, print a short report.
# Called by the Makefile as `bash Tools/demo.sh .build/release/lethe` after setup and a release
# build. Settings (chosen to finish in a few minutes on 2 shared vCPUs): 4 shards × 3 slices,
# budget 3 cyclic sequences per shard, headlines, LoRA r 16 on all six linear layers, blocks of 1 layer,
# 3 epochs per stage at lr 3e-3; the shards train in parallel, one process of one thread per
# core (`--jobs`: on these small batches that beats one process on every core by ~1.3×, and the
# stage tensors are bit-identical either way). Writes Checkpoints/runs/demo (replaced each time).
set -euo pipefail
lethe="${1:-.build/release/lethe}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
unset OPENBLAS_CORETYPE   # OpenBLAS's AVX2 override halves sgemm speed here
run="Checkpoints/runs/demo"
train="Datasets/bbc-news/train.jsonl"
test_data="Datasets/bbc-news/test.jsonl"
for f in "$train" "$test_data" Checkpoints/base/all-MiniLM-L6-v2/model.safetensors; do
    [[ -e "$f" ]] || { echo "missing $f: run \`make setup\` first" >&2; exit 1; }
done
rm -rf "$run"
start=$(date +%s)

echo "== 1. plan: BBC News headlines into 4 shards × 3 slices, 3 sequences per shard"
"$lethe" plan --data "$train" --shards 4 --slices 3 --budget 3 --seed 0 --run "$run"

echo
echo "== 2. train: stage i of each sequence trains LoRA block i from the top (1 layer) on slices π1..πi"
cores=$(nproc 2>/dev/null || echo 2)
jobs=$(( cores < 4 ? cores : 4 ))
t0=$(date +%s)
"$lethe" train --run "$run" --epochs 3 --lr 3e-3 --rank 16 --alpha 32 --targets q k v o up down \
    --layers-per-block 1 --threads 1 --jobs "$jobs" --seed 0
t1=$(date +%s)

echo
echo "== 3. evaluate the served ensemble (mean of the 4 shard models' logits) on the test split"
"$lethe" evaluate --run "$run" --data "$test_data"

echo
echo "== 4. status and a prediction"
"$lethe" status --run "$run"
"$lethe" predict --run "$run" --text "Shares in the bank fell after profits missed forecasts" \
    --text "Striker scores twice as United win the cup"

echo
echo "== 5. forget business/001: ledger first, then tombstone, truncate, publish, erase"
"$lethe" forget --run "$run" --id business/001
echo
echo "-- audit: which stages saw it, and that none of them is served"
"$lethe" audit --run "$run" --id business/001
echo
echo "-- verify: stage hashes, ledger chain, no served stage with a deleted example"
"$lethe" verify --run "$run"
echo
echo "-- the ensemble after the deletion (shard 0 now serves a shorter prefix)"
"$lethe" evaluate --run "$run" --data "$test_data"

end=$(date +%s)
echo
echo "== report"
echo "run directory: $run ($(du -sh "$run" | cut -f1)), training $((t1 - t0)) s, demo total $((end - start)) s."
echo "Try: \`lethe audit --run $run --id business/001 --json\`, \`lethe status --run $run\`."
