"""Prefect flow of the corpus stage: synthesize the espeak-ng corpus (or skip for real data)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from tqdm import tqdm

from components.config import load_params
from components.data.synthesize import synthesize_corpus
from components.io import atomic_dir
from flows.stage_common import record_metrics
from flows.tracking import stage_run

REAL_DATA_NOTE = """No audio here on purpose: prepare.source is 'speech_commands', so the
prepare stage reads {path} instead of a synthesized corpus.
"""


@flow(name="corpus")
def corpus_flow(params_path: str = "params.yaml") -> dict[str, float]:
    params = load_params(params_path)
    logger = get_run_logger()
    out_dir = Path(params.corpus.out_dir)
    sections = {"base": params.base.model_dump(), "corpus": params.corpus.model_dump()}
    sections["prepare.source"] = params.prepare.source
    with stage_run(params.base, "corpus", sections):
        if params.prepare.source != "synthetic":
            with atomic_dir(out_dir) as tmp:
                note = REAL_DATA_NOTE.format(path=params.prepare.speech_commands_dir)
                (tmp / "README.md").write_text(note)
            logger.info("prepare.source is %s: no corpus synthesized", params.prepare.source)
            metrics: dict[str, float] = {"num_clips": 0, "num_speakers": 0, "seconds": 0.0}
        else:
            total = params.corpus.num_server_speakers + params.corpus.num_client_speakers
            with tqdm(total=total, desc="synthesizing speakers", unit="spk", disable=None) as bar:
                summary = synthesize_corpus(
                    params.corpus,
                    out_dir,
                    params.base.seed,
                    progress=lambda done, _total: bar.update(done - bar.n),
                )
            metrics = {
                "num_clips": summary.num_clips,
                "num_speakers": summary.num_speakers,
                "num_server_speakers": summary.num_server_speakers,
                "num_client_speakers": summary.num_client_speakers,
                "num_noise_files": summary.num_noise_files,
                "seconds": round(summary.seconds, 2),
            }
            logger.info("synthesized %d clips in %.1f s", summary.num_clips, summary.seconds)
        record_metrics("corpus", metrics)
    return metrics
