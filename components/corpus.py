"""The corpus stage: synthesize the default corpus, or leave a note when real data is used."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.config import Params
from components.data.synthesize import synthesize_corpus
from components.io import atomic_dir
from components.progress import Progress, no_progress

REAL_DATA_NOTE = """No audio here on purpose: prepare.source is '{source}', so the
prepare stage reads {path} instead of a synthesized corpus.
"""


HEADLINE = ("num_clips", "num_speakers", "seconds")  # metrics/corpus.json


@dataclass(frozen=True)
class CorpusResult:
    out_dir: Path
    metrics: dict[str, float]


def run(
    params: Params, workdir: Path = Path("."), progress: Progress = no_progress
) -> CorpusResult:
    """Write ``paths.corpus``: the synthesized corpus when ``prepare.source`` is ``synthetic``,
    otherwise only a README saying where the real corpus is read from."""
    out_dir = workdir / params.paths.corpus
    if params.prepare.source != "synthetic":
        with atomic_dir(out_dir) as tmp:
            note = REAL_DATA_NOTE.format(source=params.prepare.source,
                                         path=params.prepare.speech_commands_dir)  # fmt: skip
            (tmp / "README.md").write_text(note)
        return CorpusResult(out_dir, {"num_clips": 0, "num_speakers": 0, "seconds": 0.0})
    summary = synthesize_corpus(
        params.corpus, out_dir, params.base.seed,
        progress=lambda done, total: progress("speakers", done, total),
    )  # fmt: skip
    return CorpusResult(out_dir, {
        "num_clips": summary.num_clips,
        "num_speakers": summary.num_speakers,
        "num_server_speakers": summary.num_server_speakers,
        "num_client_speakers": summary.num_client_speakers,
        "num_noise_files": summary.num_noise_files,
        "seconds": round(summary.seconds, 2),
    })  # fmt: skip
