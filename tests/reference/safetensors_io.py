"""A safetensors reader and writer in a few lines, for the reference scripts (Debian 12 packages no
python3-safetensors). Also a second, independent implementation for elbo's reader to agree with."""
import json
import struct

import torch


def save(path, tensors, metadata=None):
    """Writes tensors (float32, float16 or int64) and string metadata as a safetensors file."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    kinds = {torch.float32: ("F32", "<f4"), torch.float16: ("F16", "<f2"), torch.int64: ("I64", "<i8")}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dtype, numpy_type = kinds[t.dtype]
        data = t.numpy().astype(numpy_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    print(f"wrote {len(tensors)} tensors to {path}")


def load(path):
    """Reads F32/F16 safetensors into float32 tensors, and the metadata."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    types = {"F32": torch.float32, "F16": torch.float16, "F64": torch.float64}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=types[e["dtype"]]).reshape(e["shape"]).float()
    return out, metadata
