#!/bin/bash
# Every side-by-side speed comparison against PyTorch, one after another, in one run, with the
# load average before and after each. Run it with nothing else on the cores: PyTorch's OpenMP
# threads lose far more than ours on an oversubscribed machine, which inflates the ratios.
# Each comparison also prints its ceiling: PyTorch's time over the work floor at the CPU's FMA
# peak (`lethe bench peak`, measured first and last), the largest ratio any implementation
# could reach here. TAIL=N prints the last N lines of each log (default 6). PRECISION=bf16 runs
# ours in bfloat16 and PyTorch both in float32 and under bf16 autocast (the block step, which has
# no bf16 mirror, is then skipped).
#   Tools/compare_all_torch.sh [PYTHON]    (PYTHON: the venv of Tools/requirements-torch.txt,
#                                           default /work/venv-torch/bin/python)
# Needs `make build` first. Writes one log per comparison under ${LOGS:-/tmp/lethe-compare}.
set -euo pipefail
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE
PY=${1:-/work/venv-torch/bin/python}
L=.build/release/lethe
PRECISION=${PRECISION:-fp32}
case "$PRECISION" in fp32|bf16) ;; *) echo "PRECISION=$PRECISION: use fp32 or bf16" >&2; exit 2 ;; esac
LOGS=${LOGS:-/tmp/lethe-compare}
mkdir -p "$LOGS"
[ -x "$L" ] || { echo "$L is missing: run make build first" >&2; exit 1; }
"$PY" -c "import torch, transformers, peft, h5py" || { echo "$PY lacks torch/transformers/peft/h5py: see Tools/requirements-torch.txt" >&2; exit 1; }
run() {
    local name=$1; shift
    echo "== $name ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)) -> $LOGS/$name.log"
    "$@" > "$LOGS/$name.log" 2>&1
    tail -n "${TAIL:-6}" "$LOGS/$name.log"
}
# The ceiling of every ratio below: the FP32 FMA rate of these cores (each script also prints
# the largest speed-up over PyTorch that this peak allows for its work).
run peak "$L" bench peak --threads 2
run train "$PY" -u Tools/compare_train_torch.py --threads 2 --precision "$PRECISION" --lethe "$L"
if [ "$PRECISION" = fp32 ]; then
    run block "$PY" -u Tools/compare_block_step_torch.py --threads 2 --repetitions 5 --lethe "$L"
fi
run decoder "$L" bench decoder --batch 4 --tokens 128 --steps 3 --threads 2 --precision "$PRECISION"
run decoder-torch "$PY" -u Tools/compare_decoder_torch.py --batch 4 --tokens 128 --steps 3 --threads 2 \
    --precision "$PRECISION" --lethe "$L"
run_dir=$(mktemp -d)
"$L" plan --data Datasets/bbc-news/train.jsonl --shards 4 --slices 3 --budget 3 --seed 0 --run "$run_dir/run" > /dev/null
run s3t "$PY" -u Tools/compare_s3t_torch.py --run "$run_dir/run" --epochs 3 --rank 16 --targets q v --threads 2 --precision "$PRECISION" --lethe "$L"
# Shards are independent: two at a time, one thread each, on both sides.
run s3t-jobs "$PY" -u Tools/compare_s3t_torch.py --run "$run_dir/run" --epochs 3 --rank 16 --targets q v --threads 1 --jobs 2 --precision "$PRECISION" --lethe "$L"
rm -rf "$run_dir"
run peak-after "$L" bench peak --threads 2
echo "== done ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
