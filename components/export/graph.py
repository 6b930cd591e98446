"""The device graph: raw 16 kHz audio in, class scores out, exported with torch.onnx and checked."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from torch import nn

from components.config import FeatureParams
from components.errors import EdgelearnError
from components.export.frontend import ConvLogMelFrontend
from components.model.supernet import with_layout

log = logging.getLogger(__name__)

INPUT_NAME = "audio"
OUTPUT_NAMES = ("logits", "probabilities")
FOLD_LIMIT = 1024  # elements: computed constants larger than this (the DFT weights) stay ops
# that ONNX Runtime folds when the session loads: the file carries the network, not the cosines


class AudioClassifier(nn.Module):
    """Frontend + network: (batch, samples) float audio in [-1, 1] -> (logits, probabilities)."""

    def __init__(self, frontend: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.net = net

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(self.frontend(audio))
        return logits, torch.softmax(logits, dim=1)


def device_graph(net: nn.Module, features: FeatureParams, opset: int) -> onnx.ModelProto:
    """What a device runs for ``net``: the device frontend and the network, exported and checked
    (``export_onnx``). The export stage ships this graph; the search times it."""
    # the default memory order: channels-last weights (CONV_LAYOUT) would put layout copies
    # into the graph
    plain = with_layout(copy.deepcopy(net), torch.contiguous_format)
    model = AudioClassifier(ConvLogMelFrontend(features), plain).eval()
    return export_onnx(model, features.clip_samples, opset)


def export_onnx(model: AudioClassifier, clip_samples: int, opset: int) -> onnx.ModelProto:
    """Export with the dynamo exporter at a pinned opset and a dynamic batch axis, then run the
    full ONNX checker (with shape inference); a graph that fails it is never written."""
    example = torch.zeros(2, clip_samples)
    batch = torch.export.Dim("batch", min=1, max=4096)
    chatter = io.StringIO()  # the exporter prints its progress; keep it in the debug log
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"audio": {0: batch}},
            external_data=False,
            optimize=False,
        )
        assert program is not None  # dynamo=True always returns the program
        # The exporter's own optimization folds computed constants of up to 262144 elements into
        # initializers; a lower limit keeps the DFT basis as the few ops that compute it.
        onnxscript.optimizer.optimize(program.model, output_size_limit=FOLD_LIMIT)
    log.debug("torch.onnx: %s", chatter.getvalue())
    proto = program.model_proto
    for node in proto.graph.node:  # exporter bookkeeping (source scopes): bytes the device skips
        del node.metadata_props[:]
    proto.doc_string = "edgelearn keyword spotting: raw 16 kHz audio -> class scores"
    check_graph(proto, opset, clip_samples)
    return proto


def check_graph(proto: onnx.ModelProto, opset: int, clip_samples: int) -> None:
    """The ONNX checker's full check, plus the contract: pinned opset, one input of shape
    (batch, clip_samples) with a symbolic batch, the named outputs."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise EdgelearnError(f"exported graph fails onnx.checker: {err}") from None
    version = {o.domain: o.version for o in proto.opset_import}.get("")
    if version != opset:
        raise EdgelearnError(f"exported graph has opset {version}, export.opset pins {opset}")
    inputs = list(proto.graph.input)
    dims = list(inputs[0].type.tensor_type.shape.dim) if len(inputs) == 1 else []
    if (
        len(inputs) != 1
        or inputs[0].name != INPUT_NAME
        or len(dims) != 2
        or not dims[0].dim_param
        or dims[1].dim_value != clip_samples
    ):
        raise EdgelearnError(
            f"exported graph input is {[str(i.type.tensor_type.shape) for i in inputs]}, "
            f"expected one '{INPUT_NAME}' of shape (batch, {clip_samples})"
        )
    outputs = tuple(o.name for o in proto.graph.output)
    if outputs != OUTPUT_NAMES:
        raise EdgelearnError(f"exported graph outputs {outputs}, expected {OUTPUT_NAMES}")


def save_onnx(proto: onnx.ModelProto, path: Path) -> int:
    """Write one self-contained file (no external data); returns its size in bytes."""
    data = proto.SerializeToString()
    Path(path).write_bytes(data)
    return len(data)
