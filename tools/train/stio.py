"""Byte-reproducible safetensors files.

`safetensors.torch.save_file` passes the metadata to Rust as a HashMap, so the order of the
metadata keys in the header (and with it the file's bytes) changes from run to run. `save`
here serializes with safetensors itself (tensor order and data layout unchanged) and rewrites
the header with the metadata keys in the caller's dict order, padded as safetensors pads it
(spaces up to a multiple of 8 bytes).
"""
import json
import struct

from safetensors.torch import save as _save


def to_bytes(tensors, metadata=None):
    raw = _save(tensors, metadata=metadata)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    if metadata:
        out["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for k, v in header.items():
        if k != "__metadata__":
            out[k] = v
    h = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def save(tensors, path, metadata=None):
    with open(path, "wb") as f:
        f.write(to_bytes(tensors, metadata))
