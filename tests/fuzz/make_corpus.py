#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/ (run from anywhere; needs numpy).

Seeds are small valid files and near misses (cut short, a trailing byte, a bad field), so that
each fuzzer starts from inputs that reach deep into its reader.
"""
import gzip
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
CORPUS = os.path.join(HERE, "corpus")


def put(reader, name, data):
    folder = os.path.join(CORPUS, reader)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def read(*parts):
    with open(os.path.join(DATA, *parts), "rb") as f:
        return f.read()


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


# IDX: the first byte is the harness's control byte (see fuzz_targets.hpp, run_idx).
u8 = idx(0x08, [2, 3], bytes([0, 1, 2, 250, 128, 7]))
put("idx", "u8_plain", b"\x00" + u8)
put("idx", "u8_gzip", b"\x01" + u8)
put("idx", "u8_gzip_cut", b"\x02" + u8)
put("idx", "u8_gzip_bad_crc", b"\x03" + u8)
put("idx", "u8_first_row", b"\x04" + u8)
put("idx", "i16_plain", b"\x00" + idx(0x0B, [3], struct.pack(">3h", -2, 0, 300)))
put("idx", "i32_gzip", b"\x01" + idx(0x0C, [2, 1, 1], struct.pack(">2i", -70000, 5)))
put("idx", "f32_plain", b"\x00" + idx(0x0D, [2, 2], struct.pack(">4f", 1.5, -0.25, 3e38, 0.0)))
put("idx", "f64_plain", b"\x00" + idx(0x0E, [1], struct.pack(">d", 6.02e23)))
put("idx", "i8_empty", b"\x00" + idx(0x09, [0, 4], b""))
put("idx", "truncated", b"\x00" + idx(0x08, [4, 4], bytes(5)))
put("idx", "trailing", b"\x00" + idx(0x08, [2], bytes(3)))
put("idx", "huge_dims", b"\x01" + idx(0x0E, [65536, 65536, 65536], bytes(8)))
put("idx", "raw_gzip_file", b"\x00" + gzip.compress(u8, mtime=0))

# CSV
put("csv", "basic", b"x,y,label\n1,2.5,0\n-3,4e-3,1\n")
put("csv", "crlf_quotes", b'"a", \'b\' ,c\r\n+1,2,3\r\n4,5,6\r\n\r\n')
put("csv", "special", b"a;b\nnan;inf\n-inf;1e400\n1e-400;0x10\n")
put("csv", "ragged", b"a,b,c\n1,2\n")
put("csv", "blank_inside", b"a\n1\n\n2\n")
put("csv", "not_number", b"a,b\n1,two\n")
put("csv", "header_only", b"only,a,header\n")

# .npy: NumPy's own files from tests/data/npy, plus a version 2.0 file and near misses.
for name in sorted(os.listdir(os.path.join(DATA, "npy"))):
    put("npy", name, read("npy", name))
header = b"{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }"
header += b" " * ((64 - (12 + len(header) + 1) % 64) % 64) + b"\n"
v2 = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + struct.pack("<3H", 1, 2, 65535)
put("npy", "v2_u2.npy", v2)
put("npy", "v2_truncated.npy", v2[:-1])
f4 = read("npy", "f4.npy")
put("npy", "f4_trailing.npy", f4 + b"\x00")
put("npy", "f4_big_shape.npy", f4.replace(b"(2, 3)", b"(9999999999, 3)"))

# safetensors: the peer's file plus small hand-made ones.


def safetensors(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


put("safetensors", "peer.safetensors", read("peer.safetensors"))
put("safetensors", "empty", safetensors({}, b""))
put("safetensors", "one_f32", safetensors(
    {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, struct.pack("<2f", 1, -2)))
put("safetensors", "checkpoint", safetensors(
    {"layer.weight": {"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 48]},
     "vector": {"dtype": "BF16", "shape": [4], "data_offsets": [48, 56]},
     "__metadata__": {"step": "7"}}, bytes(56)))
put("safetensors", "overlap", safetensors(
    {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
     "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, bytes(6)))
put("safetensors", "other_dtypes", safetensors(
    {"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
     "b": {"dtype": "F4", "shape": [2, 1], "data_offsets": [8, 9]}}, bytes(9)))

# HDF5: the course-layout file of tests/data and a copy cut short.
h5 = read("catvnoncat_tiny.h5")
put("hdf5", "catvnoncat_tiny.h5", h5)
put("hdf5", "cut_short.h5", h5[:2048])

# The checkpoint target's corpus has a script of its own (standard library only).
exec(open(os.path.join(HERE, "make_checkpoint_corpus.py")).read())
