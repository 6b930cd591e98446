"""``edgelearn evaluate``: the exported bundle scored on a folder of labelled WAVs, without torch.

The folder is laid out ``<label>/<file>.wav``, like Speech Commands, so real voices recorded on the
device (or the Speech Commands test set itself) are scored exactly as the device would run them:
each clip goes through the same loading as ``edgelearn predict`` and the bundle's ONNX model. A
folder whose name is not a class in ``labels.json`` is a word outside the keyword list, so its
clips count as ``_unknown_`` (the Speech Commands convention); ``_background_noise_`` holds long
noise recordings, not clips, and is skipped. Both are said in the output.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from components.data.labels import BACKGROUND_NOISE_DIR, SILENCE, UNKNOWN, folder_name
from components.errors import EdgelearnError
from components.export.audio import AudioRejected
from components.export.bundle import open_bundle
from components.export.predict import DEFAULT_BUNDLE, Predictor, load_clip

# What load_clip did to a clip is the first word of its note ("padded ...", "resampled ..."),
# but for a crop ("kept the loudest ..."): counted by that word for the one-line summary.
FITTING = {"kept": "cropped"}


class EvaluationError(EdgelearnError):
    """The folder to evaluate on is missing or holds no labelled clip."""


@dataclass
class LabelledClips:
    """The clips of a ``<label>/<file>.wav`` folder, with their class in the bundle's labels."""

    clips: list[tuple[Path, str]] = field(default_factory=list)
    as_unknown: dict[str, int] = field(default_factory=dict)  # folder not in labels -> its clips
    skipped: list[str] = field(default_factory=list)  # folders that are not labelled clips


def find_clips(directory: Path, labels: Sequence[str]) -> LabelledClips:
    """Every ``*.wav`` one level down, in name order; hidden files and folders are ignored. A
    folder is a class when it is named as the label or as that label's corpus folder (a phrase
    "Hey Edge" lives in ``hey_edge/``)."""
    if not directory.exists():
        raise EvaluationError(f"{directory}: folder does not exist")
    if not directory.is_dir():
        raise EvaluationError(f"{directory}: not a folder (expected <label>/<file>.wav inside)")
    by_folder = {folder_name(label): label for label in labels} | {x: x for x in labels}
    found = LabelledClips()
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        if folder.name == BACKGROUND_NOISE_DIR:
            found.skipped.append(folder.name)
            continue
        files = sorted(
            p for p in folder.iterdir()
            if p.suffix.lower() == ".wav" and not p.name.startswith(".") and not p.is_dir()
        )  # fmt: skip
        label = by_folder.get(folder.name, UNKNOWN)
        if files and label == UNKNOWN and folder.name != UNKNOWN:
            found.as_unknown[folder.name] = len(files)
        found.clips += [(f, label) for f in files]
    if not found.clips:
        raise EvaluationError(f"{directory}: no labelled clips (expected <label>/<file>.wav)")
    return found


def confusion_figures(
    true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class counts, the confusion matrix (rows: true label, columns: predicted, in
    the order of ``labels``) and false accepts: ``_unknown_`` clips predicted as a keyword (not
    ``_unknown_`` or ``_silence_``), the errors a device user notices as the device waking up on a
    word nobody said to it. Percentages are 0-100, as in the other metrics of the pipeline."""
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    if not true:
        raise ValueError("no clips to score")
    index = {label: i for i, label in enumerate(labels)}
    stray = sorted({x for x in (*true, *predicted) if x not in index})
    if stray:
        raise ValueError(f"labels not in {list(labels)}: {stray}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in true], [index[p] for p in predicted]), 1)
    per_class = {
        label: {
            "clips": int(matrix[i].sum()),
            "correct": int(matrix[i, i]),
            "accuracy_pct": 100.0 * int(matrix[i, i]) / int(matrix[i].sum())
            if matrix[i].sum()
            else None,
        }
        for i, label in enumerate(labels)
    }
    pairs = zip(true, predicted, strict=True)
    false_accepts = sum(t == UNKNOWN and p not in (UNKNOWN, SILENCE) for t, p in pairs)
    return {
        "num_clips": len(true),
        "accuracy_pct": 100.0 * int(np.trace(matrix)) / len(true),
        "labels": list(labels),
        "confusion": matrix.tolist(),
        "per_class": per_class,
        "num_unknown": sum(t == UNKNOWN for t in true),
        "false_accepts": int(false_accepts),
    }


@dataclass
class FolderScore:
    figures: dict[str, Any]
    found: LabelledClips
    rejected: list[tuple[Path, str]]  # clips that could not be scored, and why
    fitted: Counter[str]  # clips downmixed / resampled / padded / cropped to fit the model


def score_folder(directory: Path, predictor: Predictor, metadata: dict[str, Any]) -> FolderScore:
    """Score every clip of ``directory`` with ``predictor`` (what the export stage can call too)."""
    found = find_clips(Path(directory), predictor.labels)
    true, predicted, rejected, fitted = [], [], [], Counter[str]()
    for path, label in found.clips:
        try:
            clip, notes = load_clip(path, metadata)
        except AudioRejected as reason:
            rejected.append((path, str(reason)))
            continue
        fitted.update(FITTING.get(note.split()[0], note.split()[0]) for note in notes)
        true.append(label)
        predicted.append(predictor.predict(clip)[0])
    if not true:
        raise EvaluationError(f"{directory}: none of its {len(found.clips)} clips could be read")
    figures = confusion_figures(true, predicted, predictor.labels)
    return FolderScore(figures, found, rejected, fitted)


def format_figures(figures: dict[str, Any]) -> list[str]:
    """Accuracy, false accepts and the confusion matrix with each row's clips and accuracy."""
    labels, matrix = figures["labels"], figures["confusion"]
    correct = sum(row[i] for i, row in enumerate(matrix))
    lines = [f"accuracy: {figures['accuracy_pct']:.2f}% ({correct} of {figures['num_clips']})"]
    unknown = figures["num_unknown"]
    rate = f" ({100.0 * figures['false_accepts'] / unknown:.2f}%)" if unknown else ""
    lines.append(f"false accepts: {figures['false_accepts']} of {unknown} {UNKNOWN} clips "
                 f"predicted as a keyword{rate}")  # fmt: skip
    accuracies = [figures["per_class"][label]["accuracy_pct"] for label in labels]
    rows = [
        [*row, sum(row), "-" if acc is None else f"{acc:.1f}"]
        for row, acc in zip(matrix, accuracies, strict=True)
    ]
    header = [*labels, "clips", "acc %"]
    widths = [max(len(str(x)) for x in column) + 1 for column in zip(header, *rows, strict=True)]
    first = max(len(label) for label in labels)
    lines.append("confusion matrix (rows: true label, columns: predicted):")
    for name, cells in (("", header), *zip(labels, rows, strict=True)):
        cells_text = (f"{x:>{w}}" for x, w in zip(cells, widths, strict=True))
        lines.append(f"{name:<{first}}" + "".join(cells_text))
    return lines


def evaluate_folder(
    directory: str, bundle_dir: str = DEFAULT_BUNDLE, int8: bool = False,
    out: TextIO = sys.stdout, err: TextIO = sys.stderr,
) -> int:  # fmt: skip
    """Print the figures of the bundle on ``directory``; returns 1 if a clip failed, else 0.

    A bad bundle, or a folder missing or without clips, raises an ``EdgelearnError`` (exit 2).
    """
    bundle = open_bundle(Path(bundle_dir))
    score = score_folder(Path(directory), Predictor(bundle, int8), bundle.metadata)
    for path, reason in score.rejected:
        print(f"edgelearn: error: {path}: {reason}", file=err)
    model = "int8" if int8 else "fp32"
    print(f"{directory}: {score.figures['num_clips']} clips scored with {bundle.directory} "
          f"({model})", file=out)  # fmt: skip
    if score.found.as_unknown:
        folders = ", ".join(f"{name}/ ({n})" for name, n in score.found.as_unknown.items())
        print(f"note: folders that are not a class in labels.json count as {UNKNOWN} (Speech "
              f"Commands convention: words outside the keyword list): {folders}",
              file=out)  # fmt: skip
    for name in score.found.skipped:
        print(f"note: skipped {name}/ (long noise recordings, not labelled clips)", file=out)
    if score.fitted:
        done = ", ".join(f"{n} {what}" for what, n in sorted(score.fitted.items()))
        rate, samples = bundle.metadata["sample_rate"], bundle.metadata["clip_samples"]
        print(f"note: clips fitted to the model's {samples} samples at {rate} Hz: {done}", file=out)
    print("\n".join(format_figures(score.figures)), file=out, flush=True)
    if score.rejected:
        total = len(score.found.clips)
        print(f"edgelearn: {len(score.rejected)} of {total} files could not be scored", file=err)
    return 1 if score.rejected else 0
