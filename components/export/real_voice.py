"""A bundle on real human voices: the recordings Debian packages ship
(``components/data/real_voices.py``), scored as ``edgelearn evaluate`` scores a folder, so no
figure of the export stands on synthesized voices alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.data import real_voices
from components.data.labels import SILENCE, UNKNOWN
from components.export.evaluate import score_folder
from components.export.predict import Predictor


def score_real_voices(
    predictor: Predictor, metadata: dict[str, Any], classes: Sequence[str], out_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the real-voice set for the model's keywords in ``out_dir`` and score ``predictor``
    on it: (metrics, a summary for the bundle's metadata). Accuracy over all clips is dominated
    by the ``_unknown_`` clips (most of the set), so keyword accuracy and the share of real
    non-keyword speech called ``_unknown_`` are reported apart. A keyword list the set has no
    clips of gives no keyword accuracy (None), not 0."""
    keywords = [c for c in classes if c not in (UNKNOWN, SILENCE)]
    manifest = real_voices.build(out_dir, keywords)
    figures = score_folder(out_dir, predictor, metadata).figures
    per_class = figures["per_class"]
    with_clips = [k for k in keywords if per_class[k]["clips"]]
    keyword_clips = sum(per_class[k]["clips"] for k in with_clips)
    keyword_right = sum(per_class[k]["correct"] for k in with_clips)
    metrics = {
        "real_voice_acc": round(figures["accuracy_pct"], 3),
        "real_voice_keyword_acc": round(100.0 * keyword_right / keyword_clips, 3)
        if keyword_clips
        else None,
        "real_voice_unknown_pct": _round(per_class[UNKNOWN]["accuracy_pct"]),
        "real_voice_false_accepts": figures["false_accepts"],
        "real_voice_clips": figures["num_clips"],
        "real_voice_keyword_clips": keyword_clips,
        "real_voice_unknown_clips": figures["num_unknown"],
    }
    summary = {
        "packages": manifest["packages"],
        "counts": manifest["counts"],
        "speakers": {label: len(s) for label, s in manifest["speakers"].items()},
        **{k: v for k, v in metrics.items() if k != "real_voice_clips"},
    }
    return metrics, summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
