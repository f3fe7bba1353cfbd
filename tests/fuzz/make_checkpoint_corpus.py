#!/usr/bin/python3
"""Writes the seed corpus of the checkpoint fuzz target, tests/fuzz/corpus/checkpoint/ (standard
library only; make_corpus.py runs it too).

The files are what io::save and io::save_checkpoint write for the target's model (parameters
"layer.weight" [2, 3] and "layer.bias" [2], double), made here from the documented layout with
json, struct and zlib, plus near misses: a wrong checksum, another optimiser, a bad generator
state, a file cut short.
"""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(HERE, "corpus", "checkpoint")


def put(name, data):
    os.makedirs(FOLDER, exist_ok=True)
    with open(os.path.join(FOLDER, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata, crc=True):
    """tensors: [(name, dtype, shape, bytes)] in data order."""
    header, data = {}, b""
    if crc:
        metadata = dict(metadata, **{"xgrad.crc32": "%08x" % zlib.crc32(
            b"".join(t[3] for t in tensors))})
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


weight = struct.pack("<6d", 0.5, -1, 2, 0.25, -0.75, 3)
bias = struct.pack("<2d", 0.1, -0.2)
put("module", safetensors(
    [("layer.weight", "F64", [2, 3], weight), ("layer.bias", "F64", [2], bias)], {}))

# A generator state as std::mt19937_64 writes it: 312 words and the position.
rng = " ".join(str((i * 6364136223846793005 + 1442695040888963407) % 2**64)
               for i in range(312)) + " 312"
model = [("model.layer.weight", "F64", [2, 3], weight), ("model.layer.bias", "F64", [2], bias)]
optimizer = [("optimizer.layer.weight.momentum_buffer", "F32", [2, 3], struct.pack("<6f", *[0.5] * 6)),
             ("optimizer.layer.bias.momentum_buffer", "F32", [2], struct.pack("<2f", 1, 2))]
meta = {"xgrad.format": "checkpoint-1", "xgrad.epoch": "2", "xgrad.step": "14",
        "optimizer.type": "SGD", "optimizer.lr": "0.05",
        "scheduler.type": "StepLR", "scheduler.last_epoch": "2", "scheduler.base_lr": "0.1",
        "scheduler.last_lr": "0.05", "scheduler.step_size": "2", "scheduler.gamma": "0.5",
        "rng.default": rng, "loader.epoch": "2", "loader.seed": "0", "user.note": "seed"}
full = safetensors(model + optimizer, meta)
put("checkpoint", full)
put("model_only", safetensors(model, {k: v for k, v in meta.items()
                                      if not k.startswith(("optimizer.", "scheduler."))}))
put("bad_crc", safetensors(model + optimizer, dict(meta, **{"xgrad.crc32": "00000000"}), crc=False))
put("adam_state", safetensors(model + optimizer, dict(meta, **{"optimizer.type": "Adam"})))
put("bad_rng", safetensors(model + optimizer, dict(meta, **{"rng.default": "1 2 3"})))
put("cut_short", full[:len(full) - 5])
