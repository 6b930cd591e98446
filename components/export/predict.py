"""``edgelearn predict``: the exported bundle on WAV files, with ONNX Runtime and numpy only.

This is the device side: it must never import torch (a test runs it where torch cannot load).
Each file is decoded, downmixed, resampled from a higher rate (a lower one is refused: the band
the model listens to is missing), padded or cropped to the clip length, and scored; a bad file is
reported by name and the others still run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import onnxruntime as ort

from components.export.audio import AudioRejected, fit_length, read_wav, resample, to_mono
from components.export.bundle import Bundle, BundleError, open_bundle

DEFAULT_BUNDLE = "export/bundle"


def load_clip(path: Path, metadata: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """One (1, clip_samples) float32 input for the graph, and notes on what was done to it."""
    rate, samples = int(metadata["sample_rate"]), int(metadata["clip_samples"])
    audio = to_mono(read_wav(path))
    notes = list(audio.notes)
    x = audio.samples
    if audio.rate < rate:
        top = metadata.get("frontend", {}).get("f_max", rate / 2)
        raise AudioRejected(
            f"sample rate {audio.rate} Hz is below the model's {rate} Hz: everything above "
            f"{audio.rate / 2:g} Hz is missing, and the model listens up to {top:g} Hz; "
            f"record at {rate} Hz or more"
        )
    if audio.rate > rate:
        x = resample(x, audio.rate, rate)
        notes.append(f"resampled {audio.rate} Hz to {rate} Hz")
    x, note = fit_length(x, samples)
    if note:
        notes.append(note)
    return x[None, :].astype(np.float32), notes


class Predictor:
    """An ONNX Runtime session over one of the bundle's models."""

    def __init__(self, bundle: Bundle, int8: bool = False, threads: int = 1) -> None:
        """``threads``: 1 as on a device core; 0 (every core) for offline scoring of hours of
        audio, where only the scores matter, not the time."""
        path = bundle.model_path(int8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ORT raises its own types for a bad graph
            raise BundleError(f"{path}: ONNX Runtime cannot load it ({err})") from None
        self.input = bundle.metadata["input"]["name"]
        self.labels = bundle.labels

    def predict(self, clip: np.ndarray) -> tuple[str, float]:
        _, probabilities = self.session.run(None, {self.input: clip})
        best = int(np.argmax(probabilities[0]))
        return self.labels[best], float(probabilities[0, best])


def predict_files(
    paths: Sequence[str],
    bundle_dir: str = DEFAULT_BUNDLE,
    int8: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print ``FILE<tab>label<tab>score`` per file; returns 1 if any file failed, else 0.

    A bundle that fails its checksums raises ``BundleError`` before any file is scored.
    """
    bundle = open_bundle(Path(bundle_dir))
    predictor = Predictor(bundle, int8)
    failed = 0
    for name in paths:
        try:
            clip, notes = load_clip(Path(name), bundle.metadata)
        except AudioRejected as reason:
            print(f"edgelearn: error: {name}: {reason}", file=err)
            failed += 1
            continue
        label, score = predictor.predict(clip)
        print(f"{name}\t{label}\t{score:.4f}", file=out, flush=True)
        for note in notes:
            print(f"edgelearn: note: {name}: {note}", file=err)
    if failed:
        print(f"edgelearn: {failed} of {len(paths)} files could not be scored", file=err)
    return 1 if failed else 0
