#!/usr/bin/python3
"""Reads the C++ writer's sample checkpoint with only json, struct and numpy, as a user's script
would, and checks layout and values. Exit 77 (skip) when numpy is missing.

usage: check_safetensors_interop.py IO_WRITE_SAMPLE_EXE
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not installed for", sys.executable)
    sys.exit(77)

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sample.safetensors")
        subprocess.run([sys.argv[1], path], check=True)
        with open(path, "rb") as f:
            raw = f.read()

    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        fail(f"header length {n} is not a multiple of 8")
    text = raw[8 : 8 + n].decode("utf-8")
    padding = len(text) - len(text.rstrip(" "))
    if text.rstrip(" ") != text.rstrip(" \t\r\n") or not text.rstrip(" ").endswith("}"):
        fail("header padding is not trailing spaces after the JSON object")
    if padding == 0:
        fail("the sample was built to need padding, but the header has none")
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    header = dict(pairs)
    keys = [k for k, _ in pairs]
    if keys[0] != "__metadata__" or keys[1:] != sorted(keys[1:]):
        fail(f"header keys not __metadata__ then sorted names: {keys}")
    meta = dict(header.pop("__metadata__"))
    if meta != {"format": "pt", "note": 'wd "λ" = 5e-4!'}:
        fail(f"metadata {meta}")

    buf = raw[8 + n :]
    cursor = 0
    arrays = {}
    for name, info in pairs[1:]:
        info = dict(info)
        begin, end = info["data_offsets"]
        if begin != cursor:
            fail(f"{name}: begins at {begin}, expected {cursor}")
        cursor = end
        dt = np.dtype(DTYPES[info["dtype"]])
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != count * dt.itemsize:
            fail(f"{name}: {end - begin} bytes for shape {info['shape']}")
        flat = np.frombuffer(buf, dtype=dt, count=count, offset=begin)
        arrays[name] = flat.reshape(info["shape"])
    if cursor != len(buf):
        fail(f"buffer has {len(buf) - cursor} bytes after the last tensor")

    expected = {
        "features.0.weight": (np.arange(6, dtype=np.float32) / 2 - 1).reshape(2, 3),
        "optim.features.0.weight.v": 1.0 / np.arange(1, 5, dtype=np.float64),
        "step": np.array(-42, dtype=np.int64),
        "big": np.array([2**40, -1, -(2**63)], dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    if sorted(arrays) != sorted(expected):
        fail(f"tensors {sorted(arrays)}")
    for name, want in expected.items():
        got = arrays[name]
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            fail(f"{name}: got {got!r}, expected {want!r}")
    print(f"ok: {len(arrays)} tensors, header {n} bytes, read with numpy {np.__version__}")


if __name__ == "__main__":
    main()
