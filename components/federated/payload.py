"""The wire format of model state in Flower messages, and its measured size.

A payload is two records of a Flower ``RecordDict``: an ``ArrayRecord`` with (at most) two flat
arrays, ``float`` (float32 values of uncompressed entries, concatenated) and ``codes`` (uint8
packed OMC codes, concatenated), and a ``ConfigRecord`` ``layout`` naming the entries by their
index in the ``ModelLayout`` plus each compressed entry's scale and offset. One flat array per
kind instead of one ``Array`` per tensor keeps Flower's per-array framing (~450 bytes each) from
dominating the traffic of a 20k-parameter model. Sizes are measured, not computed:
``payload_bytes`` sums the serialized objects Flower transfers for a record (``deflate()`` of every
nested object, arrays and chunks).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

from components.federated.compression import MAX_BITS, QuantizedTensor, dequantize, packed_length
from components.federated.variables import ModelLayout

Value = torch.Tensor | QuantizedTensor
FLOAT, CODES = "float", "codes"


class PayloadError(ValueError):
    """A received payload does not describe the model's entries (count, sizes or encoding)."""


def encode_payload(
    values: Mapping[str, Value], layout: ModelLayout
) -> tuple[ArrayRecord, ConfigRecord]:
    """Pack ``values`` (float tensors or quantized ones) in layout order."""
    float_ids, code_ids, scales, offsets, bits = [], [], [], [], set()
    floats, codes = [], []
    for i, name in enumerate(layout.names):
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, QuantizedTensor):
            code_ids.append(i)
            scales.append(value.scale)
            offsets.append(value.offset)
            bits.add(value.bits)
            codes.append(value.codes.reshape(-1).numpy())
        else:
            float_ids.append(i)
            floats.append(value.detach().reshape(-1).to(torch.float32).numpy())
    if len(bits) > 1:
        raise ValueError(f"one bit width per payload, got {sorted(bits)}")
    arrays = ArrayRecord()
    if floats:
        arrays[FLOAT] = Array(np.concatenate(floats))
    if codes:
        arrays[CODES] = Array(np.concatenate(codes))
    layout_record = ConfigRecord(
        {"float_ids": float_ids, "code_ids": code_ids, "scale": scales, "offset": offsets,
         "bits": bits.pop() if bits else 0}
    )  # fmt: skip
    return arrays, layout_record


def _flat(arrays: ArrayRecord, key: str, dtype: type) -> np.ndarray:
    if key not in arrays:
        return np.zeros(0, dtype)
    data = arrays[key].numpy()
    if data.dtype != dtype or data.ndim != 1:
        raise PayloadError(f"'{key}' must be a flat {np.dtype(dtype).name} array, got {data.dtype}")
    return data


def _ids(record: ConfigRecord, key: str, n: int) -> list[int]:
    ids = record.get(key, [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and 0 <= i < n for i in ids):
        raise PayloadError(f"'{key}' must list entry indices in 0..{n - 1}")
    return [int(i) for i in ids]


def _floats(record: ConfigRecord, key: str) -> list[float]:
    values = record.get(key, [])
    if not isinstance(values, list):
        raise PayloadError(f"'{key}' must be a list of numbers")
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        raise PayloadError(f"'{key}' must be a list of numbers")
    return numbers


def decode_payload(
    arrays: ArrayRecord, record: ConfigRecord, layout: ModelLayout
) -> dict[str, Value]:
    """Inverse of ``encode_payload``; any inconsistency raises ``PayloadError``."""
    entries = layout.entries
    float_ids = _ids(record, "float_ids", len(entries))
    code_ids = _ids(record, "code_ids", len(entries))
    if len(set(float_ids) | set(code_ids)) != len(float_ids) + len(code_ids):
        raise PayloadError("an entry appears twice")
    floats = _flat(arrays, FLOAT, np.float32)
    codes = _flat(arrays, CODES, np.uint8)
    need = sum(entries[i].numel for i in float_ids)
    if floats.size != need:
        raise PayloadError(f"float values: {floats.size} numbers for entries holding {need}")
    out: dict[str, Value] = {}
    pos = 0
    for i in float_ids:
        e = entries[i]
        out[e.name] = torch.from_numpy(floats[pos : pos + e.numel].copy()).reshape(e.shape)
        pos += e.numel
    if code_ids:
        bits = record.get("bits")
        scales, offsets = _floats(record, "scale"), _floats(record, "offset")
        if not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise PayloadError(f"bits must be in 1..{MAX_BITS}, got {bits!r}")
        if not len(scales) == len(offsets) == len(code_ids):
            raise PayloadError("one scale and one offset per compressed entry")
        need = sum(packed_length(entries[i].numel, bits) for i in code_ids)
        if codes.size != need:
            raise PayloadError(f"codes: {codes.size} bytes for entries holding {need}")
        pos = 0
        for i, scale, offset in zip(code_ids, scales, offsets, strict=True):
            e = entries[i]
            n = packed_length(e.numel, bits)
            packed = torch.from_numpy(codes[pos : pos + n].copy())
            out[e.name] = QuantizedTensor(packed, scale, offset, bits, e.shape)
            pos += n
    elif codes.size:
        raise PayloadError(f"codes: {codes.size} bytes but no compressed entry listed")
    return out


def float_values(values: Mapping[str, Value]) -> dict[str, np.ndarray]:
    """Every entry as a numpy float array, OMC entries dequantized: what the server screens and
    averages, and what a client starts from."""
    return {
        n: (dequantize(v) if isinstance(v, QuantizedTensor) else v).numpy()
        for n, v in values.items()
    }


def payload_bytes(content: RecordDict) -> int:
    """Serialized size of a message's content as Flower transfers it (deduplicated objects)."""
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values())
