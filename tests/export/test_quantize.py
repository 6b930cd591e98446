"""int8: static quantization calibrated on training clips, frontend kept in float."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import numpy_helper

from components.export.quantize import frontend_nodes

pytestmark = pytest.mark.slow


def test_int8_figures_are_measured_and_recorded(exported):
    m = exported.result.metrics
    assert m["int8_shipped"] == 1  # the fixture's gates are open
    assert 0.0 <= m["int8_test_acc"] <= 100.0 and 0.0 <= m["int8_label_agreement_pct"] <= 100.0
    # from the unrounded medians; the ms figures in the metrics are rounded to 4 decimals
    assert m["int8_speedup"] == pytest.approx(m["fp32_latency_ms"] / m["int8_latency_ms"], abs=0.01)
    assert m["calibration_clips"] == 200
    assert m["int8_bytes"] < m["onnx_bytes"]


def test_network_weights_are_int8_and_the_frontend_is_float(exported):
    proto = onnx.load(str(exported.result.int8_path))
    onnx.checker.check_model(proto, full_check=True)
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    quantized = [n for n, w in weights.items() if w.dtype.name == "int8" and w.ndim == 4]
    assert len(quantized) >= 6  # stem + depthwise/pointwise convolutions, per channel
    kept = set(frontend_nodes(proto))
    by_name = {n.name: n for n in proto.graph.node}
    assert {by_name[k].op_type for k in kept} >= {"Conv", "MatMul", "Log", "Pad"}
    for name in kept:  # nothing in the frontend reads a dequantized tensor
        producers = {o: n for n in proto.graph.node for o in n.output}
        for i in by_name[name].input:
            assert i not in producers or producers[i].op_type != "DequantizeLinear"
    meta = json.loads((exported.result.bundle_dir / "metadata.json").read_text())
    assert meta["quantization"]["per_channel"] is True
    assert meta["quantization"]["format"] == "qdq"
    assert meta["quantization"]["reduce_range"] is True
    assert meta["quantization"]["shipped"] is True and meta["models"]["int8"] == "model.int8.onnx"
