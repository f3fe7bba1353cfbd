#!/usr/bin/python3
"""An independent safetensors peer for xgrad's io tests, using only json, struct and numpy.

    safetensors_peer.py write FILE
        Writes the fixture tests/data/peer.safetensors: F64, F32 and BF16 tensors (a 0-d one, a
        2-D one, an empty one), stored in a data order that differs from the header's key order,
        with __metadata__.

    safetensors_peer.py check FILE [--meta KEY=VALUE]... NAME:DTYPE:SHAPE:FIRST:STEP...
                              [--file FILE2 ...]...
        Reads files xgrad wrote and checks each strictly: header length a multiple of 8, header
        JSON without duplicate keys, tensors tiling the data section exactly, header and data in
        the order of the specs, exactly the tensors and metadata given, and values
        FIRST + STEP * arange(numel) in DTYPE (SHAPE is "3,4", or "" for a 0-d tensor).

Exit status: 0 when everything matches, 1 (with a reason on stderr) on a mismatch, 2 on bad
usage, 77 when numpy is missing (the C++ test then skips).
"""

import json
import struct
import sys

try:
    import numpy as np
except ImportError:
    print("safetensors_peer: numpy is not installed", file=sys.stderr)
    sys.exit(77)

NUMPY_DTYPES = {"F32": "<f4", "F64": "<f8"}


def fail(reason):
    print("safetensors_peer: " + reason, file=sys.stderr)
    sys.exit(1)


def bf16_bytes(values):
    """BF16 is the upper half of an F32; the values used here are exact in it."""
    bits = np.asarray(values, dtype="<f4").view("<u4")
    assert np.all(bits & 0xFFFF == 0), "value not exact in bfloat16"
    return (bits >> 16).astype("<u2").tobytes()


def write(path):
    # (name, dtype, shape, bytes), in the order the bytes are stored.
    blobs = [
        ("vector", "F64", [4], np.array([0.1, -2.5, 3.141592653589793, 1e30], dtype="<f8").tobytes()),
        ("scalar", "F64", [], np.array(-3.75, dtype="<f8").tobytes()),
        ("layer.weight", "F32", [2, 3], (np.arange(6, dtype="<f4") * 0.5 - 1.25).tobytes()),
        ("empty", "F32", [2, 0], b""),
        ("bf16", "BF16", [3], bf16_bytes([1.0, -2.0, 0.15625])),
    ]
    entries = {}
    offset = 0
    for name, dtype, shape, data in blobs:
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    # Header keys deliberately not in data order, with the metadata in the middle.
    header = {
        "layer.weight": entries["layer.weight"],
        "__metadata__": {"format": "peer", "written_by": "safetensors_peer.py"},
        "bf16": entries["bf16"],
        "scalar": entries["scalar"],
        "empty": entries["empty"],
        "vector": entries["vector"],
    }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in blobs:
            f.write(data)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate key in header: %r" % keys)
    return dict(pairs)


def parse_spec(spec):
    parts = spec.split(":")
    if len(parts) != 5 or parts[1] not in NUMPY_DTYPES:
        print("safetensors_peer: bad spec %r (NAME:F32|F64:SHAPE:FIRST:STEP)" % spec, file=sys.stderr)
        sys.exit(2)
    name, dtype, shape, first, step = parts
    dims = [int(d) for d in shape.split(",")] if shape else []
    return name, dtype, dims, float(first), float(step)


def check(path, args):
    expected_meta = {}
    specs = []
    i = 0
    while i < len(args):
        if args[i] == "--meta":
            if i + 1 == len(args):
                print("safetensors_peer: --meta needs KEY=VALUE", file=sys.stderr)
                sys.exit(2)
            key, _, value = args[i + 1].partition("=")
            expected_meta[key] = value
            i += 2
        else:
            specs.append(parse_spec(args[i]))
            i += 1

    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        fail("header length %d is not a multiple of 8" % n)
    if 8 + n > len(raw):
        fail("header length %d runs past the end of the file" % n)
    text = raw[8 : 8 + n]
    if not text.startswith(b"{"):
        fail("header does not start with '{'")
    if text.rstrip(b" ") != text.rstrip():
        fail("header padding is not spaces")
    header = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    data = raw[8 + n :]

    meta = header.pop("__metadata__", None)
    if expected_meta and meta != expected_meta:
        fail("metadata %r, expected %r" % (meta, expected_meta))
    if not expected_meta and meta is not None:
        fail("unexpected metadata %r" % (meta,))

    order = sorted(header.items(), key=lambda kv: (tuple(kv[1]["data_offsets"]), kv[0]))
    covered = 0
    for name, info in order:
        begin, end = info["data_offsets"]
        if begin != covered:
            fail("tensor %r starts at %d, expected %d (hole or overlap)" % (name, begin, covered))
        covered = end
    if covered != len(data):
        fail("tensors cover %d bytes of a %d-byte data section" % (covered, len(data)))

    if [name for name, _ in order] != [s[0] for s in specs]:
        fail("tensors in data order %r, expected %r" % ([n for n, _ in order], [s[0] for s in specs]))
    if list(header) != [s[0] for s in specs]:
        fail("header keys in order %r, expected %r" % (list(header), [s[0] for s in specs]))
    for name, dtype, dims, first, step in specs:
        info = header[name]
        if info["dtype"] != dtype:
            fail("tensor %r has dtype %s, expected %s" % (name, info["dtype"], dtype))
        if info["shape"] != dims:
            fail("tensor %r has shape %r, expected %r" % (name, info["shape"], dims))
        begin, end = info["data_offsets"]
        got = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPES[dtype])
        count = int(np.prod(dims, dtype=np.int64))
        if got.size != count:
            fail("tensor %r has %d elements, expected %d" % (name, got.size, count))
        want = (first + step * np.arange(count, dtype=np.float64)).astype(NUMPY_DTYPES[dtype])
        if not np.array_equal(got, want):
            bad = int(np.argmax(got != want))
            fail("tensor %r element %d is %r, expected %r" % (name, bad, got[bad], want[bad]))
    print("safetensors_peer: %s ok" % path)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        groups = [[]]
        for arg in sys.argv[2:]:
            if arg == "--file":
                groups.append([])
            else:
                groups[-1].append(arg)
        for group in groups:
            if not group:
                print(__doc__, file=sys.stderr)
                sys.exit(2)
            check(group[0], group[1:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
