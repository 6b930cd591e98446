"""int8 by ONNX Runtime static quantization, calibrated on training clips; the frontend stays fp32.

The log-mel frontend is excluded: its input is raw audio whose quiet passages sit far below an
int8 step of the calibrated range, and its power/log arithmetic spans many decades, so int8 there
would change the features the network was trained on. The network's convolutions and classifier
are quantized: int8 weights with a scale per output channel, int8 activations with ranges
calibrated on server training clips.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from components.errors import EdgelearnError
from components.export.graph import INPUT_NAME

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}


class AudioBatches(CalibrationDataReader):
    """Feeds calibration audio to ONNX Runtime's calibrator, one batch per ``get_next``."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def frontend_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the graph's ``Log`` node (the log-mel) and of every node it depends on."""
    logs = [n for n in proto.graph.node if n.op_type == "Log"]
    if len(logs) != 1:
        raise EdgelearnError(f"expected one Log node (the log-mel frontend), found {len(logs)}")
    producer = {out: n for n in proto.graph.node for out in n.output}
    seen: dict[str, onnx.NodeProto] = {}
    stack = [logs[0]]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        stack.extend(producer[i] for i in node.input if i in producer)
    return sorted(seen)


def quantize_int8(
    fp32: Path,
    out: Path,
    calibration: list[np.ndarray],
    *,
    method: Literal["minmax", "entropy", "percentile"] = "minmax",
    fmt: Literal["qdq", "qoperator"] = "qdq",
    per_channel: bool = True,
    reduce_range: bool = True,
) -> dict[str, object]:
    """Write the int8 model to ``out``; returns what was done (for the bundle's metadata)."""
    with tempfile.TemporaryDirectory(prefix="edgelearn-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and ORT's basic graph optimizations (batch norm folded into conv)
        # before quantizing, as ONNX Runtime's quantization guide recommends.
        quant_pre_process(str(fp32), str(prepared), skip_optimization=True)
        proto = onnx.load(str(prepared))
        softmax = [n.name for n in proto.graph.node if n.op_type == "Softmax"]
        exclude = frontend_nodes(proto) + softmax
        quantize_static(
            str(prepared),
            str(out),
            AudioBatches(calibration),
            quant_format=FORMATS[fmt],
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=METHODS[method],
            reduce_range=reduce_range,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    result = onnx.load(str(out))
    onnx.checker.check_model(result, full_check=True)
    pairs = sum(n.op_type == "DequantizeLinear" for n in result.graph.node)
    log.info("int8: %d DequantizeLinear nodes; %d frontend/softmax nodes kept in fp32", pairs,
             len(exclude))  # fmt: skip
    return {
        "format": fmt,
        "per_channel": per_channel,
        "calibration_method": method,
        "calibration_clips": int(sum(len(b) for b in calibration)),
        "fp32_nodes": exclude,
        "activation_type": "int8",
        "weight_type": "int8",
        "reduce_range": reduce_range,
    }
