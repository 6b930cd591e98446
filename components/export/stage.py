"""The export stage: ``run(params, workdir, provenance)`` -> verified fp32/int8 graphs and bundle.

Exports the trained sub-network with its log-mel frontend as one ONNX graph, checks it against
PyTorch on every test clip, quantizes it to int8 calibrated on server training clips, times all
three on the device profile, measures streaming detection on long synthesized streams (false
accepts per hour, false-reject rate, and the detection threshold the bundle carries:
``detection``), and writes ``export/`` atomically: nothing is replaced unless every check passed.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from components.config import ExportParams, Params
from components.data.labels import CLASSES
from components.data.prepared import PreparedData, check_num_classes, load_prepared
from components.data.splits import CLIENT, SERVER, TEST, TRAIN
from components.errors import EdgelearnError
from components.export import bundle as bundle_files
from components.export.detection import measure_detection
from components.export.gates import (
    Int8Decision,
    check_parity,
    decide_int8,
    refused,
    require_int8,
)
from components.export.graph import INPUT_NAME, OUTPUT_NAMES, AudioClassifier, device_graph
from components.export.predict import Predictor
from components.export.quantize import quantize_int8
from components.export.real_voice import score_real_voices
from components.export.verify import (
    Parity,
    accuracy_pct,
    audio_batches,
    ort_scores,
    ort_session,
    parity,
    torch_scores,
)
from components.features import LogMelFrontend
from components.io import atomic_dir
from components.latency import (
    DEVICE_MODEL,
    DEVICES_DIR,
    DeviceProfile,
    Latency,
    fleet_profile,
    is_imported_table,
    session,
    time_interleaved,
)
from components.model.checkpoint import load_subnet_file
from components.model.space import SearchSpace, count_macs
from components.model.subnet import SubNetwork, count_parameters

log = logging.getLogger(__name__)


# metrics/export.json (the rest goes to the details file)
HEADLINE = (
    "onnx_bytes", "int8_bytes", "parity_max_abs_diff", "fp32_test_acc", "int8_test_acc",
    "int8_shipped", "fp32_latency_ms", "int8_latency_ms", "torch_latency_ms",
    "fp32_client_test_acc", "fp32_server_test_acc", "false_accepts_per_hour", "false_reject_rate",
    "detection_threshold", "real_voice_acc", "real_voice_keyword_acc", "real_voice_unknown_pct",
    "export_seconds",
)  # fmt: skip
REAL_VOICES = "real_voices"  # paths.export/real_voices: `edgelearn evaluate` re-scores it


@dataclass(frozen=True)
class ExportResult:
    metrics: dict[str, Any]  # numbers, but for the detection curve and where its threshold is from
    fp32_path: Path
    int8_path: Path | None  # None when the int8 model was not shipped
    bundle_dir: Path
    metadata: dict[str, Any]
    latency: dict[str, dict[str, float]]
    example: np.ndarray  # one real test clip, (1, samples) float32: MLflow's input example
    example_outputs: dict[str, np.ndarray]
    fleet_bundles: dict[str, Path] = field(default_factory=dict)  # further devices' bundles


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
    MLflow run id) goes into the bundle's metadata as given. ``paths.export`` is replaced whole
    at the end, or not at all when a hard check fails. The primary device's bundle (the first of
    ``search.profiles``, the federated fine-tuned network ``paths.final``) is ``bundle/``; with
    a fleet, every further device's (its network from ``paths.search/devices/<name>/``, trained
    on server data by the search stage) is ``devices/<name>/bundle/``, with the same checks."""
    started = time.monotonic()
    out_dir = workdir / params.paths.export
    prepared = workdir / params.paths.prepared
    final = workdir / params.paths.final
    networks = [(load_subnet_file(final)[0], final, params.paths.final, FINE_TUNED)]
    data = load_prepared(prepared)
    profiles = [fleet_profile(entry, workdir) for entry in params.search.profiles]
    # a device whose entry is an imported table cannot be reached: its bundle is not timed here
    timed = [not is_imported_table(entry) for entry in params.search.profiles]
    for profile in profiles[1:]:
        rel = f"{params.paths.search}/{DEVICES_DIR}/{profile.name}/{DEVICE_MODEL}"
        if not (workdir / rel).is_file():
            raise EdgelearnError(
                f"{workdir / rel}: device {profile.name!r} of search.profiles has no searched "
                "network: run the search stage for it"
            )
        networks.append((load_subnet_file(workdir / rel)[0], workdir / rel, rel, SERVER_TRAINED))
    rows = test_rows(data)
    if sum(len(r) for r in rows.values()) == 0:
        raise EdgelearnError(f"{prepared}: no test clips to verify with")

    with atomic_dir(out_dir) as staging:
        built = []
        for k, (profile, network) in enumerate(zip(profiles, networks, strict=True)):
            if len(profiles) > 1:
                log.info("bundle %d of %d: %s", k + 1, len(profiles), profile.name)
            target = staging if k == 0 else staging / DEVICES_DIR / profile.name
            built.append(build_bundle(params, *network, prepared, data, rows, profile, target,
                                      provenance, timed[k]))  # fmt: skip

    primary = built[0]
    metrics = primary.metrics
    metrics["devices"] = len(profiles)
    if len(profiles) > 1:
        metrics["fleet"] = {p.name: {k: b.metrics[k] for k in HEADLINE if k in b.metrics}
                            for p, b in zip(profiles[1:], built[1:], strict=True)}  # fmt: skip
    metrics["export_seconds"] = round(time.monotonic() - started, 2)
    example_outputs = dict(zip(OUTPUT_NAMES, primary.fp32_out[:, :1], strict=True))
    return ExportResult(
        metrics, out_dir / bundle_files.FP32_MODEL,
        out_dir / bundle_files.INT8_MODEL if primary.int8_shipped else None,
        out_dir / "bundle", primary.metadata, primary.latency, primary.example, example_outputs,
        {p.name: out_dir / DEVICES_DIR / p.name / "bundle" for p in profiles[1:]},
    )  # fmt: skip


FINE_TUNED = "federated fine-tuning (finetune stage) of the searched network"
SERVER_TRAINED = ("the search stage's training on server data only (federated fine-tuning runs "
                  "for the primary device's network, the first of search.profiles)")  # fmt: skip


@dataclass(frozen=True)
class Built:
    """One bundle, built and checked: its metrics, metadata, latencies and fp32 test scores."""

    metrics: dict[str, Any]
    metadata: dict[str, Any]
    latency: dict[str, dict[str, float]]
    fp32_out: np.ndarray
    example: np.ndarray
    int8_shipped: bool


def build_bundle(
    params: Params, net: SubNetwork, model_path: Path, model_rel: str, training: str,
    prepared: Path,
    data: PreparedData, rows: dict[str, np.ndarray], profile: DeviceProfile, target: Path,
    provenance: dict[str, Any], timed: bool = True,
) -> Built:  # fmt: skip
    """``net`` (read from ``model_path``) with its log-mel frontend as one graph, checked against
    PyTorch on every test clip, quantized, timed on ``profile`` (not when ``timed`` is False: a
    device measured elsewhere; its latencies are NaN and int8 gets the accuracy gate only), its
    streaming detection and real voices measured, written to ``target``: ``bundle/`` (graphs,
    labels, metadata, sums), ``real_voices/`` and the graphs again at the top. Raises when a
    hard check fails."""
    p = params.export
    check_num_classes(prepared, data.classes, model_path, net.head.out_features)
    all_test = np.concatenate(list(rows.values()))
    labels = data.labels[all_test]

    # What PyTorch runs: the training frontend (torch.stft) and the trained network, unchanged.
    reference = AudioClassifier(LogMelFrontend(params.features), net).eval()
    proto = device_graph(net, params.features, p.opset)
    bundle = target / "bundle"
    bundle.mkdir(parents=True)
    fp32 = bundle / bundle_files.FP32_MODEL
    int8 = bundle / bundle_files.INT8_MODEL
    fp32.write_bytes(proto.SerializeToString())

    log.info("scoring %d test clips with PyTorch and ONNX Runtime", len(all_test))
    torch_out = torch_scores(reference, audio_batches(data.audio, all_test))
    fp32_out = ort_scores(ort_session(str(fp32)), audio_batches(data.audio, all_test))
    fp32_parity = parity(fp32_out, torch_out)
    check_parity(fp32_parity, p.parity_atol, p.parity_min_agreement_pct)

    cal = calibration_rows(data, p.calibration_clips, params.base.seed)
    quant, int8_out = try_int8(fp32, int8, data, cal, all_test, p)
    example = next(audio_batches(data.audio, all_test[:1]))
    latency: dict[str, Latency] = {}
    if timed:
        log.info("timing PyTorch eager, ONNX fp32 and ONNX int8 on '%s'", profile.name)
        latency = measure_graphs(reference, fp32, int8 if int8_out is not None else None,
                                 example, profile)  # fmt: skip
    else:
        log.info("'%s' was measured elsewhere (its table imported): its graphs are not timed "
                 "here", profile.name)  # fmt: skip
    fp32_acc = accuracy_pct(fp32_out[0], labels)
    if int8_out is None:
        decision = refused(str(quant["refused"]))
    else:
        decision = decide_int8(
            fp32_acc, accuracy_pct(int8_out[0], labels), median_ms(latency, "fp32"),
            median_ms(latency, "int8"), p.int8_max_acc_drop, p.int8_min_speedup, timed,
        )  # fmt: skip
    require_int8(decision, p.int8)
    for reason in decision.reasons:
        log.warning("int8 model not shipped: %s", reason)
    int8_bytes = int8.stat().st_size if int8.exists() else 0
    if not decision.shipped:
        int8.unlink(missing_ok=True)

    metrics = summarize(rows, data, fp32_out, int8_out, torch_out, fp32_parity, latency,
                        fp32.stat().st_size, int8_bytes, len(cal), decision)  # fmt: skip
    quant = {k: v for k, v in quant.items() if k != "refused"} | decision.to_dict()
    metadata = bundle_metadata(
        params, data.classes, net.config, count_parameters(net), proto, quant, metrics, latency,
        {**provenance, "model_file": model_rel,
         "model_sha256": bundle_files.sha256_file(model_path),
         "prepared_data": params.paths.prepared}, profile, training, training == FINE_TUNED,
    )  # fmt: skip
    # the fp32 graph as the device runs it, before metadata.json and the sums are written;
    # hours of audio are scored on every core (the scores are the same, only faster)
    device = Predictor(bundle_files.Bundle(bundle, metadata, data.classes), threads=0)
    detection = measure_detection(device, metadata, data, p, params.base.seed)
    metrics |= detection.metrics
    metadata |= detection.metadata
    voices, summary = score_real_voices(device, metadata, data.classes, target / REAL_VOICES)
    metrics |= voices
    metadata["real_voices"] = summary
    (bundle / bundle_files.LABELS).write_text(json.dumps(data.classes, indent=2) + "\n")
    (bundle / bundle_files.METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    models = [bundle_files.FP32_MODEL] + [bundle_files.INT8_MODEL] * decision.shipped
    bundle_files.write_sums(bundle, [*models, bundle_files.LABELS, bundle_files.METADATA])
    for name in models:  # the graphs also at the top of the device's folder, as before
        shutil.copyfile(bundle / name, target / name)
    return Built(metrics, metadata, {k: v.to_dict() for k, v in latency.items()}, fp32_out,
                 example, decision.shipped)  # fmt: skip


def try_int8(
    fp32: Path, int8: Path, data: PreparedData, cal: np.ndarray, test: np.ndarray, p: ExportParams
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Quantize and score the int8 model; ``(record, None)`` with ``record["refused"]`` saying
    why when int8 is off or ONNX Runtime cannot quantize this graph."""
    if p.int8 == "off":
        return {"refused": "export.int8 is 'off'"}, None
    log.info("int8: calibrating on %d server training clips", len(cal))
    try:
        quant = quantize_int8(
            fp32, int8, list(audio_batches(data.audio, cal)), method=p.calibration_method,
            fmt=p.quant_format, per_channel=p.per_channel, reduce_range=p.reduce_range,
        )  # fmt: skip
    except Exception as err:
        log.warning("int8 quantization failed", exc_info=True)
        int8.unlink(missing_ok=True)
        return {"refused": f"ONNX Runtime could not quantize the graph ({err})"}, None
    return quant, ort_scores(ort_session(str(int8)), audio_batches(data.audio, test))


def measure_graphs(
    reference: AudioClassifier, fp32: Path, int8: Path | None, example: np.ndarray,
    profile: DeviceProfile,
) -> dict[str, Latency]:  # fmt: skip
    """PyTorch eager, ONNX fp32 and (when there is one) ONNX int8 at batch 1, interleaved, so the
    int8-versus-fp32 comparison is made under the same machine conditions."""
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    runs: dict[str, Callable[[], object]] = {"torch": lambda: reference(x)}
    for name, path in (("fp32", fp32), ("int8", int8)):
        if path is not None:
            runs[name] = partial(session(path, profile).run, None, {INPUT_NAME: example})
    threads = torch.get_num_threads()
    torch.set_num_threads(profile.threads)
    try:
        with torch.inference_mode():
            return time_interleaved(runs, profile)
    finally:
        torch.set_num_threads(threads)


def median_ms(latency: Mapping[str, Latency], name: str) -> float:
    """A graph's measured median, NaN where it was not timed."""
    return latency[name].median_ms if name in latency else math.nan


def summarize(
    rows: dict[str, np.ndarray], data: PreparedData, fp32_out: np.ndarray,
    int8_out: np.ndarray | None, torch_out: np.ndarray, fp32_parity: Parity,
    latency: dict[str, Latency], onnx_bytes: int, int8_bytes: int, calibration_clips: int,
    decision: Int8Decision,
) -> dict[str, float | int]:  # fmt: skip
    """metrics/export.json: ARCHITECTURE.md's keys, then per-pool accuracies and diagnostics.
    The int8 figures are those of the int8 model that was built and measured, shipped or not
    (``int8_shipped``); NaN when none was built."""
    labels = data.labels[np.concatenate(list(rows.values()))]
    n_server = len(rows[SERVER])
    nan = float("nan")
    if int8_out is None:
        int8_out = np.full_like(fp32_out, nan)
    int8_vs_fp32 = 100.0 * float((int8_out[0].argmax(1) == fp32_out[0].argmax(1)).mean())
    fp32_ms, int8_ms = median_ms(latency, "fp32"), median_ms(latency, "int8")
    metrics: dict[str, float | int] = {
        "onnx_bytes": onnx_bytes,
        "int8_bytes": int8_bytes,
        "parity_max_abs_diff": fp32_parity.max_abs_diff,
        "fp32_test_acc": round(accuracy_pct(fp32_out[0], labels), 3),
        "int8_test_acc": round(accuracy_pct(int8_out[0], labels), 3),
        "fp32_latency_ms": round(fp32_ms, 4),
        "int8_latency_ms": round(int8_ms, 4),
        "torch_latency_ms": round(median_ms(latency, "torch"), 4),
        "parity_label_agreement_pct": round(fp32_parity.label_agreement_pct, 3),
        "parity_logits_max_abs_diff": fp32_parity.logits_max_abs_diff,
        "parity_probabilities_max_abs_diff": fp32_parity.probabilities_max_abs_diff,
        "torch_test_acc": round(accuracy_pct(torch_out[0], labels), 3),
        "int8_label_agreement_pct": round(int8_vs_fp32, 3),
        "test_clips": len(labels),
        "calibration_clips": calibration_clips,
        "int8_shipped": int(decision.shipped),
        "int8_speedup": round(fp32_ms / int8_ms, 3),
    }
    for name, sl in ((SERVER, slice(0, n_server)), (CLIENT, slice(n_server, None))):
        metrics[f"fp32_{name}_test_acc"] = round(accuracy_pct(fp32_out[0][sl], labels[sl]), 3)
        metrics[f"int8_{name}_test_acc"] = round(accuracy_pct(int8_out[0][sl], labels[sl]), 3)
    return metrics


def bundle_metadata(
    params: Params, classes: list[str], architecture: dict[str, Any], num_parameters: int,
    proto: onnx.ModelProto,
    quantization: dict[str, Any], metrics: dict[str, Any], latency: dict[str, Latency],
    provenance: dict[str, Any], device: DeviceProfile, training: str, primary: bool,
) -> dict[str, Any]:  # fmt: skip
    """What a device integrator needs to feed the graph and trust it, as JSON."""
    f = params.features
    space = SearchSpace.from_dict(architecture["space"])
    n = len(classes)
    setup = ("Speech Commands v2 12-class setup" if classes == list(CLASSES)
             else f"{n - 2} keywords, _unknown_, _silence_")  # fmt: skip
    return {
        "format": bundle_files.FORMAT,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": f"keyword spotting, {n} classes ({setup})",
        "sample_rate": f.sample_rate,
        "clip_samples": f.clip_samples,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", f.clip_samples],
            "dtype": "float32",
            "range": "mono PCM scaled to [-1, 1): int16 / 32768",
        },
        "outputs": [
            {"name": OUTPUT_NAMES[0], "shape": ["batch", n], "dtype": "float32"},
            {
                "name": OUTPUT_NAMES[1],
                "shape": ["batch", n],
                "dtype": "float32",
                "note": "softmax of logits",
            },
        ],
        "labels": bundle_files.LABELS,
        "models": {
            "fp32": bundle_files.FP32_MODEL,
            "int8": bundle_files.INT8_MODEL if quantization["shipped"] else None,
        },
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "ir_version": proto.ir_version,
        "frontend": {"kind": "log-mel, in the graph", **f.model_dump()},
        "architecture": {
            **architecture,
            "parameters": num_parameters,
            "macs": count_macs(space, architecture["widths"]),
        },
        "training": training,
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
        },
        "latency_ms": {
            "profile": device.name,
            "threads": device.threads,
            "graph_optimization": device.graph_optimization,
            # a device measured elsewhere: no figure here (its search's are the table's)
            "measured_here": bool(latency),
            **{k: round(v.median_ms, 4) for k, v in latency.items()},
        },
        "provenance": provenance,
        # only the primary device's network is registered (a further device's: in the run)
        "mlflow_registered_model": params.export.registered_model_name if primary else None,
    }
