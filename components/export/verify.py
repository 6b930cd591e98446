"""Checks of the exported graphs against PyTorch: scores, accuracy and batch-1 latency."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from components.latency import DeviceProfile, Latency, NoisyMeasurementError

BATCH = 64


def audio_batches(audio: np.ndarray, rows: np.ndarray, batch: int = BATCH) -> Iterator[np.ndarray]:
    """float32 audio in [-1, 1) for ``rows`` of the int16 (clips, samples) array, as prepare
    scaled it for the training features."""
    for start in range(0, len(rows), batch):
        pcm = np.asarray(audio[rows[start : start + batch]])
        yield pcm.astype(np.float32) / 32768.0


def ort_session(model: bytes | str, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def ort_scores(sess: ort.InferenceSession, batches: Iterator[np.ndarray]) -> np.ndarray:
    """Every output of the graph, concatenated over batches: shape (outputs, clips, classes)."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: b}) for b in batches]
    return np.stack([np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))])


@torch.no_grad()
def torch_scores(model: nn.Module, batches: Iterator[np.ndarray]) -> np.ndarray:
    outs = [model(torch.from_numpy(b)) for b in batches]
    return np.stack([torch.cat([o[i] for o in outs]).numpy() for i in range(len(outs[0]))])


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float  # over every output (logits and probabilities) and clip
    logits_max_abs_diff: float
    probabilities_max_abs_diff: float
    label_agreement_pct: float
    clips: int


def parity(onnx_out: np.ndarray, torch_out: np.ndarray) -> Parity:
    """Compare (outputs, clips, classes) stacks; labels are the argmax of the first output."""
    diff = np.abs(onnx_out.astype(np.float64) - torch_out.astype(np.float64))
    agree = onnx_out[0].argmax(1) == torch_out[0].argmax(1)
    return Parity(
        max_abs_diff=float(diff.max()),
        logits_max_abs_diff=float(diff[0].max()),
        probabilities_max_abs_diff=float(diff[1].max()),
        label_agreement_pct=100.0 * float(agree.mean()),
        clips=int(onnx_out.shape[1]),
    )


def accuracy_pct(logits: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def measure_torch(
    model: nn.Module, audio: np.ndarray, profile: DeviceProfile, what: str = "PyTorch eager"
) -> Latency:
    """Batch-1 latency of a torch module in eager mode, timed like ``components.latency.measure``
    times ONNX Runtime: the profile's threads, warm-up, samples of at least ``min_sample_ms``,
    repeats, spread limit and retries."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    previous = torch.get_num_threads()
    torch.set_num_threads(profile.threads)
    try:
        with torch.inference_mode():
            model.eval()
            return _time(lambda: model(x), profile, what)
    finally:
        torch.set_num_threads(previous)


def _time(run: Callable[[], object], profile: DeviceProfile, what: str) -> Latency:
    for _ in range(max(1, profile.warmup)):
        run()
    start = time.perf_counter()
    for _ in range(20):
        run()
    single_ms = (time.perf_counter() - start) * 1e3 / 20
    inner = max(1, math.ceil(profile.min_sample_ms / max(single_ms, 1e-6)))
    spreads = []
    for attempt in range(1, profile.retries + 2):
        for _ in range(profile.warmup):
            run()
        times = np.empty(profile.repeats)
        for i in range(profile.repeats):
            start = time.perf_counter()
            for _ in range(inner):
                run()
            times[i] = (time.perf_counter() - start) / inner
        p10, p25, median, p75, p90 = (
            float(v) * 1e3 for v in np.percentile(times, [10, 25, 50, 75, 90])
        )
        result = Latency(median, p10, p25, p75, p90, profile.repeats, inner, attempt)
        if result.spread <= profile.max_spread:
            return result
        spreads.append(result.spread)
    raise NoisyMeasurementError(
        f"latency of {what} on '{profile.name}': timings too noisy to trust "
        f"((p75-p25)/median = {', '.join(f'{s:.2f}' for s in spreads)} over "
        f"{len(spreads)} attempts, limit {profile.max_spread}); is something else running?"
    )
