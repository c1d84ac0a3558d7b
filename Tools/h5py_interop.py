#!/usr/bin/env python3
"""h5py side of the Store interop test (Tests/StoreTests/H5pyInteropTests.swift).

Environment: `bash Tools/h5py_venv.sh` creates .cache/venv-h5py with the pinned
Tools/requirements-h5py.txt (h5py 3.16.0, numpy 2.4.6) and prints its python.

Usage:
  python Tools/h5py_interop.py digest FILE   # print the JSON digest of an existing file
  python Tools/h5py_interop.py write FILE    # write the reference file with h5py, print its digest
  python Tools/h5py_interop.py huge FILE     # write datasets that claim 10^12 elements, print their shapes

The digest lists every group, every dataset (dtype, shape, SHA-256 of its raw little-endian
bytes, chunks, compression, fletcher32) and every attribute (kind and value). Strings hash as
their UTF-8 bytes each followed by one NUL byte; doubles are written with float.hex() so the
comparison is exact. The Swift test computes the same digest from what Lethe reads or wrote.
The reference file uses h5py's default libver (never libver='latest', which HDF5 1.10 cannot read).
"""
import hashlib
import json
import sys

import h5py
import numpy as np

NUMERIC = {"float32": "<f4", "float16": "<f2", "int64": "<i8", "uint8": "|u1"}


def dtype_name(dtype):
    if h5py.check_string_dtype(dtype) is not None:
        return "string"
    return np.dtype(dtype).name


def dataset_sha256(ds):
    name = dtype_name(ds.dtype)
    if name == "string":
        strings = ds.asstr()[()]
        flat = [strings] if ds.shape == () else list(np.asarray(strings, dtype=object).ravel())
        raw = b"".join(s.encode("utf-8") + b"\0" for s in flat)
    elif name in NUMERIC:
        raw = np.ascontiguousarray(ds[()], dtype=NUMERIC[name]).tobytes()
    else:
        raise SystemExit(f"unsupported dtype {ds.dtype} at {ds.name}")
    return hashlib.sha256(raw).hexdigest()


def attribute_json(value):
    if isinstance(value, bytes):
        return {"kind": "string", "value": value.decode("utf-8")}
    if isinstance(value, str):
        return {"kind": "string", "value": value}
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise SystemExit(f"attribute of rank {value.ndim} is not modelled")
        if value.dtype.kind in "iu":
            return {"kind": "ints", "value": [int(v) for v in value]}
        if value.dtype.kind == "f":
            return {"kind": "doubles", "value": [float(v).hex() for v in value]}
        return {"kind": "strings",
                "value": [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value]}
    if isinstance(value, (np.integer, int)):
        return {"kind": "int", "value": int(value)}
    if isinstance(value, (np.floating, float)):
        return {"kind": "double", "value": float(value).hex()}
    raise SystemExit(f"attribute of type {type(value)} is not modelled")


def digest(path):
    groups, datasets, attributes = ["/"], {}, {}

    def attrs_of(obj):
        if len(obj.attrs):
            attributes[obj.name] = {k: attribute_json(obj.attrs[k]) for k in sorted(obj.attrs)}

    def visit(name, obj):
        full = "/" + name
        if isinstance(obj, h5py.Group):
            groups.append(full)
        else:
            datasets[full] = {
                "dtype": dtype_name(obj.dtype),
                "shape": list(obj.shape),
                "sha256": dataset_sha256(obj),
                "chunks": list(obj.chunks) if obj.chunks else None,
                "compression": obj.compression,
                "fletcher32": bool(obj.fletcher32),
            }
        attrs_of(obj)

    with h5py.File(path, "r") as f:
        attrs_of(f)
        f.visititems(visit)
    return {"h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version,
            "groups": sorted(groups), "datasets": datasets, "attributes": attributes}


def write_reference(path):
    """A file covering every dtype and attribute kind the store reads, with known values."""
    string_type = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "lethe-interop"
        f.attrs["version"] = np.int64(3)
        f.attrs["learning_rate"] = 0.1
        f.attrs["dims"] = np.array([2, 3, -4], dtype="<i8")
        f.attrs["scales"] = np.array([0.5, -1.25, 1e-7], dtype="<f8")
        f.attrs.create("names", ["alpha", "βeta", ""], dtype=string_type)
        floats = (np.arange(24, dtype="<f4") * 0.25 - 3.0).reshape(2, 3, 4)
        f.create_dataset("tensors/floats", data=floats)
        f.create_dataset("tensors/halves", data=np.linspace(-2, 2, 9).astype("<f2"))
        f.create_dataset("tensors/ints", data=np.array([[-(2**62), -1, 0], [1, 7, 2**62]], "<i8"))
        f.create_dataset("bytes", data=np.arange(256, dtype="|u1"))
        f.create_dataset("ids", data=["ex-001", "ex-002", "dokument-ä", "映画"], dtype=string_type)
        packed = f.create_dataset("a/b/c/packed", data=np.tile(np.arange(100, dtype="<f4"), 50),
                                  chunks=(1000,), compression="gzip", compression_opts=6,
                                  shuffle=True)
        packed.attrs["note"] = "gzip level 6"
        f["tensors/floats"].attrs["scale"] = np.float64(2.5)
    return digest(path)


def write_huge(path):
    """Datasets whose shapes claim 10^12 elements in a file of a few kB: HDF5 allocates a
    dataset's storage only when data is written, and none is."""
    shapes = {"huge": (10**12,), "square": (10**6, 10**6)}
    with h5py.File(path, "w") as f:
        for name, shape in shapes.items():
            f.create_dataset(name, shape=shape, dtype="<f4")
    return {name: list(shape) for name, shape in shapes.items()}


def main():
    commands = {"digest": digest, "write": write_reference, "huge": write_huge}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    command, path = sys.argv[1], sys.argv[2]
    result = commands[command](path)
    print(json.dumps(result, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main()
