"""Prefect flow of the corpus stage."""

from __future__ import annotations

from prefect import flow

from components import corpus
from flows.runner import stage


@flow(name="corpus")
def corpus_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("corpus", params_path, progress) as s:
        result = corpus.run(s.params, s.workdir, s.progress)
        return s.finish(result.metrics, headline=corpus.HEADLINE)
