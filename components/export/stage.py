"""The export stage: ``run(params, workdir, provenance)`` -> verified fp32/int8 graphs and bundle.

Exports the trained sub-network with its log-mel frontend as one ONNX graph, checks it against
PyTorch on every test clip, quantizes it to int8 calibrated on server training clips, times all
three on the device profile, and writes ``export/`` atomically: nothing is replaced unless every
check passed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from components.config import Params
from components.data.labels import CLASSES
from components.data.prepared import PreparedData, load_prepared
from components.data.splits import CLIENT, SERVER, TEST, TRAIN
from components.errors import EdgelearnError
from components.export import bundle as bundle_files
from components.export.frontend import ConvLogMelFrontend
from components.export.graph import INPUT_NAME, OUTPUT_NAMES, AudioClassifier, export_onnx
from components.export.quantize import quantize_int8
from components.export.verify import (
    Parity,
    accuracy_pct,
    audio_batches,
    measure_torch,
    ort_scores,
    ort_session,
    parity,
    torch_scores,
)
from components.features import LogMelFrontend
from components.io import atomic_dir, copy_atomic
from components.latency import Latency, load_profile, measure
from components.model.checkpoint import load_subnet_file
from components.model.space import SearchSpace, count_macs
from components.model.subnet import count_parameters

log = logging.getLogger(__name__)


class ExportCheckError(EdgelearnError):
    """An exported graph failed a check (parity or int8 accuracy); nothing was written."""


@dataclass(frozen=True)
class ExportResult:
    metrics: dict[str, float | int]
    fp32_path: Path
    int8_path: Path
    bundle_dir: Path
    metadata: dict[str, Any]
    latency: dict[str, dict[str, float]]
    example: np.ndarray  # one real test clip, (1, samples) float32: MLflow's input example
    example_outputs: dict[str, np.ndarray]


def test_rows(data: PreparedData) -> dict[str, np.ndarray]:
    """Held-out clips: the server pool's test split and every client's test clips."""
    return {SERVER: data.select(SERVER, TEST), CLIENT: data.select(CLIENT, TEST)}


def calibration_rows(data: PreparedData, clips: int, seed: int) -> np.ndarray:
    rows = data.select(SERVER, TRAIN)
    if clips and clips < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=clips, replace=False))
    return rows


def run(params: Params, workdir: Path, provenance: dict[str, Any]) -> ExportResult:
    """Export, verify, quantize, time and bundle; ``provenance`` (git commit, DVC hashes, the
    MLflow run id) goes into the bundle's metadata as given."""
    started = time.monotonic()
    p = params.export
    out_dir = workdir / params.paths.export
    model_path = workdir / params.paths.final
    net, _payload = load_subnet_file(model_path)
    data = load_prepared(workdir / params.paths.prepared)
    profile = load_profile(params.search.profile)
    rows = test_rows(data)
    all_test = np.concatenate(list(rows.values()))
    if len(all_test) == 0:
        raise EdgelearnError(f"{workdir / params.paths.prepared}: no test clips to verify with")
    labels = data.labels[all_test]

    # What PyTorch runs: the training frontend (torch.stft) and the trained network, unchanged.
    reference = AudioClassifier(LogMelFrontend(params.features), net).eval()
    shipped = AudioClassifier(ConvLogMelFrontend(params.features), net).eval()
    proto = export_onnx(shipped, params.features.clip_samples, p.opset)

    with atomic_dir(out_dir / "bundle") as staging:
        fp32 = staging / bundle_files.FP32_MODEL
        int8 = staging / bundle_files.INT8_MODEL
        fp32.write_bytes(proto.SerializeToString())

        log.info("scoring %d test clips with PyTorch and ONNX Runtime", len(all_test))
        torch_out = torch_scores(reference, audio_batches(data.audio, all_test))
        fp32_out = ort_scores(ort_session(str(fp32)), audio_batches(data.audio, all_test))
        fp32_parity = parity(fp32_out, torch_out)
        check_parity(fp32_parity, p.parity_atol, p.parity_min_agreement_pct)

        cal = calibration_rows(data, p.calibration_clips, params.base.seed)
        log.info("int8: calibrating on %d server training clips", len(cal))
        quant = quantize_int8(
            fp32,
            int8,
            list(audio_batches(data.audio, cal)),
            method=p.calibration_method,
            fmt=p.quant_format,
            per_channel=p.per_channel,
        )
        int8_out = ort_scores(ort_session(str(int8)), audio_batches(data.audio, all_test))
        check_int8(
            accuracy_pct(fp32_out[0], labels), accuracy_pct(int8_out[0], labels),
            p.int8_max_acc_drop,
        )  # fmt: skip

        example = next(audio_batches(data.audio, all_test[:1]))
        log.info("timing PyTorch eager, ONNX fp32 and ONNX int8 on '%s'", profile.name)
        latency = {
            "torch": measure_torch(reference, example, profile),
            "fp32": measure(str(fp32), {INPUT_NAME: example}, profile, what="ONNX fp32"),
            "int8": measure(str(int8), {INPUT_NAME: example}, profile, what="ONNX int8"),
        }

        metrics = summarize(
            rows, data, fp32_out, int8_out, torch_out, fp32_parity, latency,
            fp32.stat().st_size, int8.stat().st_size, len(cal),
        )  # fmt: skip
        metadata = bundle_metadata(
            params, net.config, count_parameters(net), proto, quant, metrics, latency,
            {**provenance, "model_file": params.paths.final,
             "model_sha256": bundle_files.sha256_file(model_path),
             "prepared_data": params.paths.prepared},
        )  # fmt: skip
        (staging / bundle_files.LABELS).write_text(json.dumps(list(CLASSES), indent=2) + "\n")
        (staging / bundle_files.METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        bundle_files.write_sums(staging, list(bundle_files.REQUIRED))

    bundle_dir = out_dir / "bundle"
    for name in (bundle_files.FP32_MODEL, bundle_files.INT8_MODEL):
        copy_atomic(bundle_dir / name, out_dir / name)
    metrics["export_seconds"] = round(time.monotonic() - started, 2)
    example_outputs = dict(zip(OUTPUT_NAMES, fp32_out[:, :1], strict=True))
    return ExportResult(
        metrics, out_dir / bundle_files.FP32_MODEL, out_dir / bundle_files.INT8_MODEL,
        bundle_dir, metadata, {k: v.to_dict() for k, v in latency.items()}, example,
        example_outputs,
    )  # fmt: skip


def check_parity(result: Parity, atol: float, min_agreement_pct: float) -> None:
    if result.max_abs_diff > atol or result.label_agreement_pct < min_agreement_pct:
        raise ExportCheckError(
            f"ONNX Runtime and PyTorch disagree on {result.clips} test clips: max |difference| of "
            f"the scores {result.max_abs_diff:.3g} (export.parity_atol {atol:g}), same label on "
            f"{result.label_agreement_pct:.2f}% (export.parity_min_agreement_pct "
            f"{min_agreement_pct:g}); the graph was not written"
        )


def check_int8(fp32_acc: float, int8_acc: float, max_drop: float) -> None:
    if fp32_acc - int8_acc > max_drop:
        raise ExportCheckError(
            f"int8 test accuracy {int8_acc:.2f}% is {fp32_acc - int8_acc:.2f} points below fp32 "
            f"({fp32_acc:.2f}%), more than export.int8_max_acc_drop = {max_drop:g}; try another "
            "export.calibration_method or more export.calibration_clips"
        )


def summarize(
    rows: dict[str, np.ndarray], data: PreparedData, fp32_out: np.ndarray, int8_out: np.ndarray,
    torch_out: np.ndarray, fp32_parity: Parity, latency: dict[str, Latency], onnx_bytes: int,
    int8_bytes: int, calibration_clips: int,
) -> dict[str, float | int]:  # fmt: skip
    """metrics/export.json: ARCHITECTURE.md's keys, then per-pool accuracies and diagnostics."""
    labels = data.labels[np.concatenate(list(rows.values()))]
    n_server = len(rows[SERVER])
    int8_vs_fp32 = 100.0 * float((int8_out[0].argmax(1) == fp32_out[0].argmax(1)).mean())
    metrics: dict[str, float | int] = {
        "onnx_bytes": onnx_bytes,
        "int8_bytes": int8_bytes,
        "parity_max_abs_diff": fp32_parity.max_abs_diff,
        "fp32_test_acc": round(accuracy_pct(fp32_out[0], labels), 3),
        "int8_test_acc": round(accuracy_pct(int8_out[0], labels), 3),
        "fp32_latency_ms": round(latency["fp32"].median_ms, 4),
        "int8_latency_ms": round(latency["int8"].median_ms, 4),
        "torch_latency_ms": round(latency["torch"].median_ms, 4),
        "parity_label_agreement_pct": round(fp32_parity.label_agreement_pct, 3),
        "parity_logits_max_abs_diff": fp32_parity.logits_max_abs_diff,
        "parity_probabilities_max_abs_diff": fp32_parity.probabilities_max_abs_diff,
        "torch_test_acc": round(accuracy_pct(torch_out[0], labels), 3),
        "int8_label_agreement_pct": round(int8_vs_fp32, 3),
        "test_clips": len(labels),
        "calibration_clips": calibration_clips,
    }
    for name, sl in ((SERVER, slice(0, n_server)), (CLIENT, slice(n_server, None))):
        metrics[f"fp32_{name}_test_acc"] = round(accuracy_pct(fp32_out[0][sl], labels[sl]), 3)
        metrics[f"int8_{name}_test_acc"] = round(accuracy_pct(int8_out[0][sl], labels[sl]), 3)
    return metrics


def bundle_metadata(
    params: Params, architecture: dict[str, Any], num_parameters: int, proto: onnx.ModelProto,
    quantization: dict[str, Any], metrics: dict[str, Any], latency: dict[str, Latency],
    provenance: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """What a device integrator needs to feed the graph and trust it, as JSON."""
    f = params.features
    space = SearchSpace.from_dict(architecture["space"])
    return {
        "format": bundle_files.FORMAT,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "keyword spotting, 12 classes (Speech Commands v2 12-class setup)",
        "sample_rate": f.sample_rate,
        "clip_samples": f.clip_samples,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", f.clip_samples],
            "dtype": "float32",
            "range": "mono PCM scaled to [-1, 1): int16 / 32768",
        },
        "outputs": [
            {"name": OUTPUT_NAMES[0], "shape": ["batch", len(CLASSES)], "dtype": "float32"},
            {
                "name": OUTPUT_NAMES[1],
                "shape": ["batch", len(CLASSES)],
                "dtype": "float32",
                "note": "softmax of logits",
            },
        ],  # fmt: skip
        "labels": bundle_files.LABELS,
        "models": {"fp32": bundle_files.FP32_MODEL, "int8": bundle_files.INT8_MODEL},
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "ir_version": proto.ir_version,
        "frontend": {"kind": "log-mel, in the graph", **f.model_dump()},
        "architecture": {
            **architecture,
            "parameters": num_parameters,
            "macs": count_macs(space, architecture["widths"]),
        },
        "quantization": quantization,
        "verification": {
            k: metrics[k]
            for k in (
                "parity_max_abs_diff",
                "parity_label_agreement_pct",
                "fp32_test_acc",
                "int8_test_acc",
                "torch_test_acc",
                "test_clips",
            )
        },  # fmt: skip
        "latency_ms": {
            "profile": params.search.profile,
            **{k: round(v.median_ms, 4) for k, v in latency.items()},
        },
        "provenance": provenance,
        "mlflow_registered_model": params.export.registered_model_name,
    }
