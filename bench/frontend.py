"""End-to-end device latency and what the frontend takes of it (issue 16, item 1).

Times, interleaved on one device profile (ONNX Runtime, batch 1), the log-mel frontend alone in
three forms (ONNX's STFT operator; one convolution with the whole windowed DFT basis, the shipped
frontend before 2026-12-06; the two-step factorized DFT shipped now), the shipped form at the
480-point window used until 2026-12-07, and the committed super-network's all-removed, searched
and full sub-networks as the device runs them (audio in, scores out: the search's
``DeviceGraph``, the export stage's graph). Prints the share of the end-to-end latency the
searchable layers hold at full width.

    python -m bench.frontend [--profile cpu-1thread] [--name frontend]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import onnxscript.optimizer
import torch

from bench.common import arguments, quiet, save, table
from components.config import FeatureParams, load_params
from components.export.frontend import ConvLogMelFrontend
from components.export.graph import FOLD_LIMIT
from components.features import LogMelFrontend
from components.latency import load_profile, measure_many
from components.model.checkpoint import load_supernet
from components.search.lut import DeviceGraph


def frontend_onnx(module: torch.nn.Module, features: FeatureParams, opset: int) -> bytes:
    """A frontend alone, exported as the device graph's frontend is (dynamo, same folding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), (torch.zeros(1, features.clip_samples),),
                                    dynamo=True, opset_version=opset, input_names=["audio"],
                                    external_data=False, optimize=False)  # fmt: skip
        assert program is not None
        onnxscript.optimizer.optimize(program.model, output_size_limit=FOLD_LIMIT)
    return program.model_proto.SerializeToString()


def main(argv: list[str] | None = None) -> int:
    parser = arguments("bench.frontend", __doc__)
    parser.add_argument("--profile", default="cpu-1thread")
    parser.add_argument("--name", default="frontend", help="bench/results/<name>.json")
    args = parser.parse_args(argv)
    quiet()
    params = load_params(Path("params.yaml"))
    features, opset = params.features, params.export.opset
    profile = load_profile(args.profile)
    net = load_supernet(Path(params.paths.supernet)).eval()
    space = net.space
    searched = json.loads(Path(params.paths.search, "arch.json").read_text())["widths"]
    window480 = features.model_copy(update={"n_fft": 480})
    graph = DeviceGraph(features, opset)
    feed = graph.feed()
    models = {
        "frontend: ONNX STFT operator": frontend_onnx(LogMelFrontend(features), features, opset),
        "frontend: one convolution (before)": frontend_onnx(
            ConvLogMelFrontend(features, factorize=False), features, opset),
        "frontend: two-step DFT (shipped)": frontend_onnx(
            ConvLogMelFrontend(features), features, opset),
        "frontend: two-step DFT, 480-point window (before)": frontend_onnx(
            ConvLogMelFrontend(window480), window480, opset),
        "network: all searchable layers removed": graph.onnx(net, space.smallest()),
        f"network: searched {searched}": graph.onnx(net, searched),
        "network: full": graph.onnx(net, space.largest()),
    }  # fmt: skip
    print(f"timing {len(models)} graphs interleaved on '{profile.name}'", file=sys.stderr)
    lat = measure_many({k: (v, feed) for k, v in models.items()}, profile)
    full = lat["network: full"].median_ms
    base = lat["network: all searchable layers removed"].median_ms
    rows = [[k, f"{v.median_ms:.4f}", f"+-{100 * v.uncertainty:.1f}%", f"{v.median_ms / full:.2f}"]
            for k, v in lat.items()]  # fmt: skip
    print(table(["graph (audio in)", "median ms", "95% CI", "/ full network"], rows))
    share = (full - base) / full
    print(f"searchable layers at full width: {full - base:.4f} of {full:.4f} ms = {share:.0%} of "
          "the end-to-end latency (target: at least 50%)")  # fmt: skip
    conv = lat["frontend: one convolution (before)"].median_ms
    ours = lat["frontend: two-step DFT (shipped)"].median_ms
    before = lat["frontend: two-step DFT, 480-point window (before)"].median_ms
    print(f"frontend: {conv / ours:.2f}x faster than one convolution, {ours / before:.2f}x the "
          "480-point window's time")  # fmt: skip
    path = save(args.name, {
        "command": "python -m bench.frontend " + " ".join(argv or sys.argv[1:]),
        "profile": profile.model_dump(), "features": features.model_dump(), "opset": opset,
        "searched_widths": searched,
        "latency": {k: v.to_dict() for k, v in lat.items()},
        "searchable_share_at_full_width": share,
        "frontend_speedup_vs_one_convolution": conv / ours,
        "frontend_time_vs_480_point_window": ours / before,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
