#!/usr/bin/env python3
"""List and verify Lethe stage checkpoints with h5py (docs/FORMAT.md, "Stage checkpoints").

Environment: the h5py venv of Tools/h5py_venv.sh (pins in Tools/requirements-h5py.txt):
    python="$(bash Tools/h5py_venv.sh)"; "$python" Tools/inspect_stage.py RUN/stages/shard-0/*.h5
Prints one JSON object per file: its attributes, every tensor (path, shape, dtype), and the
canonical tensor SHA-256 recomputed independently of Lethe (sorted paths; path bytes, 0x00,
ndim and dims as uint64 little-endian, float32 little-endian values), with `hash_ok` telling
whether it equals the recorded `tensors_sha256`. Exit code 1 if any file fails the check.
"""
import hashlib
import json
import struct
import sys

import h5py
import numpy as np


def inspect(path):
    with h5py.File(path, "r") as f:
        tensors = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("adapters", "head"):
                tensors[name] = np.asarray(obj[()], dtype="<f4")

        f.visititems(visit)
        digest = hashlib.sha256()
        for name in sorted(tensors, key=lambda n: n.encode()):
            value = tensors[name]
            digest.update(name.encode() + b"\0")
            digest.update(struct.pack("<Q", value.ndim))
            digest.update(struct.pack("<%dQ" % value.ndim, *value.shape))
            digest.update(np.ascontiguousarray(value).tobytes())
        attributes = {}
        for key, value in f.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.ndarray):
                value = [v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v) for v in value]
            elif isinstance(value, np.generic):
                value = value.item()
            attributes[key] = value
        computed = digest.hexdigest()
        return {
            "file": path,
            "attributes": attributes,
            "tensors": {name: {"shape": list(t.shape), "dtype": str(f[name].dtype)} for name, t in tensors.items()},
            "tensors_sha256": computed,
            "hash_ok": computed == attributes.get("tensors_sha256"),
        }


def main(paths):
    if not paths or any(p in ("-h", "--help") for p in paths):
        print(__doc__.strip())
        return 0 if paths else 64
    ok = True
    for path in paths:
        try:
            report = inspect(path)
        except (OSError, KeyError) as error:
            print(json.dumps({"file": path, "error": str(error), "hash_ok": False}, sort_keys=True))
            ok = False
            continue
        ok &= report["hash_ok"]
        print(json.dumps(report, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
