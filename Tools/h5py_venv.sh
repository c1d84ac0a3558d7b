#!/usr/bin/env bash
# Creates (once) the virtual environment that Tools/h5py_interop.py runs in and prints the
# path of its python. Used by Tests/StoreTests (the h5py interop test) and by hand:
#   bash Tools/h5py_venv.sh            -> prints .cache/venv-h5py/bin/python
# Pinned packages: Tools/requirements-h5py.txt. Safe to run concurrently (flock), and an
# interrupted install is redone (the venv counts only once its .ready marker exists).
# Exit code 3 means pip could not reach the package registry (the caller may skip).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/venv-h5py"
requirements="$root/Tools/requirements-h5py.txt"
mkdir -p "$root/.cache"
exec 9>"$root/.cache/venv-h5py.lock"
flock 9
# The marker records the requirements it was built from, so a changed pin rebuilds the venv.
if [[ -f "$venv/.ready" ]] && cmp -s "$venv/.ready" "$requirements"; then
    echo "$venv/bin/python"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: -r "$requirements" >&2; then
    rm -rf "$venv"
    probe="$(mktemp -d)"
    trap 'rm -rf "$probe"' EXIT
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$probe" \
            "pip" >/dev/null 2>&1; then
        echo "pip cannot reach the package registry" >&2
        exit 3
    fi
    echo "pip install -r $requirements failed (see above)" >&2
    exit 1
fi
cp "$requirements" "$venv/.ready"
echo "$venv/bin/python"
