"""Checks of the exported graphs against PyTorch: scores, accuracy and batch-1 latency."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from components.latency import DeviceProfile, Latency, time_callable

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
    and sampling until the median is known to the profile's precision."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    previous = torch.get_num_threads()
    torch.set_num_threads(profile.threads)
    try:
        with torch.inference_mode():
            model.eval()
            return time_callable(lambda: model(x), profile, what)
    finally:
        torch.set_num_threads(previous)
