#!/usr/bin/env python3
"""Writes tests/data/malformed/: one small safetensors file for each way a file can be broken.

Run from anywhere with any python3 (no dependencies); the files are committed and
tests/test_safetensors.cpp expects each to be rejected with its own message.
"""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "malformed")


def file_bytes(header, data, header_len=None):
    text = header if isinstance(header, (bytes, bytearray)) else json.dumps(header).encode()
    n = len(text) if header_len is None else header_len
    return struct.pack("<Q", n) + text + data


def write(name, content):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(content)


def main():
    os.makedirs(HERE, exist_ok=True)
    six = struct.pack("<6f", -3, -2, -1, 0, 1, 2)  # 24 bytes
    good = {"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}

    write("short.safetensors", b"\x05\x00\x00")
    write("truncated.safetensors", file_bytes(good, six)[:-7])
    write("header_too_long.safetensors", file_bytes(good, six, header_len=4096))
    write("invalid_json.safetensors", file_bytes(b'{"x": {"dtype": "F32", "shape": [2, 3]', six))
    write("not_an_object.safetensors", file_bytes(b"[1, 2, 3]", six))
    write("offsets_out_of_range.safetensors",
          file_bytes({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]}}, six))
    write("offsets_reversed.safetensors",
          file_bytes({"x": {"dtype": "F32", "shape": [0], "data_offsets": [16, 8]}}, six))
    write("overlapping.safetensors",
          file_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                      "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, six))
    write("shape_bytes_mismatch.safetensors",
          file_bytes({"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 24]}}, six))
    write("unknown_dtype.safetensors",
          file_bytes({"x": {"dtype": "F12", "shape": [2, 3], "data_offsets": [0, 24]}}, six))
    write("negative_shape.safetensors",
          file_bytes({"x": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}}, six))
    write("missing_offsets.safetensors", file_bytes({"x": {"dtype": "F32", "shape": [2, 3]}}, six))
    write("metadata_not_string.safetensors",
          file_bytes({"__metadata__": {"epoch": 3}, **good}, six))


if __name__ == "__main__":
    main()
