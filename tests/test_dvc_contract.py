"""dvc.yaml and params.yaml held together.

Every key a stage declares exists in the params schema, and each stage's component, run on tiny
inputs through the view ``edgelearn stage`` hands it (``restrict`` to the stage's declared keys),
reads nothing else (an undeclared read raises ``UndeclaredParamError`` and fails the test) and
reads every entry of its ``params`` list (one it never reads reruns the stage for nothing).
The export stage is left to the integration test, which runs it through ``edgelearn stage``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from components import corpus, prepare
from components.config import Params, params_from_dict
from components.config_view import ParamsView, UndeclaredParamError, restrict
from components.federated import stage as finetune
from components.search import stage as search
from components.supernet import stage as supernet
from flows.contract import declared_keys, dvc_stages
from tests.helpers import ROOT
from tests.helpers.fake_grid import simulate_in_process
from tests.helpers.federated import write_start_model
from tests.helpers.search import StubMeasurer, additive_table, write_search_inputs
from tests.helpers.spaces import STAGE_SUPERNET
from tests.helpers.speech_commands import write_speech_commands
from tests.helpers.toy_data import write_prepared

STAGES = dvc_stages(ROOT)


def params_list(stage: str) -> set[str]:
    """The stage's ``params`` entries (without the ${...} paths of its deps and outs)."""
    keys: set[str] = set()
    for item in STAGES[stage].get("params", []):
        keys.update([item] if isinstance(item, str) else item.get("params.yaml", []))
    return keys


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_declared_key_exists_in_the_params_schema(stage):
    restrict(Params(), declared_keys(stage, ROOT), stage)  # ConfigError for a key params has not
    assert STAGES[stage]["cmd"].startswith(f"edgelearn stage {stage} ")


@pytest.fixture
def run_restricted(monkeypatch) -> Callable[..., set[str]]:
    """``run_restricted(stage, params, component)`` calls ``component(view)`` with the view of
    ``params`` that ``stage`` gets, and returns every dotted key the component read."""
    reads: set[str] = set()
    read = ParamsView.__getattr__

    def recording(self: ParamsView, name: str) -> Any:
        value = read(self, name)  # raises for an undeclared key
        reads.add(f"{self._prefix}{name}")
        return value

    monkeypatch.setattr(ParamsView, "__getattr__", recording)

    def run(stage: str, params: Params, component: Callable[[Params], object]) -> set[str]:
        component(restrict(params, declared_keys(stage, ROOT), stage))
        return reads

    return run


def check_every_entry_read(stage: str, reads: set[str]) -> None:
    unread = params_list(stage) - reads
    assert not unread, f"dvc.yaml lists {sorted(unread)} for {stage}, which it never reads"


def test_corpus_reads_what_it_declares(run_restricted, tmp_path, monkeypatch):
    # The synthesis is a stub here: synthesize_corpus gets params.corpus, a whole declared
    # section, so whatever it reads inside is declared; the stage's own reads are all here.
    summary = SimpleNamespace(num_clips=1, num_speakers=1, num_server_speakers=1,
                              num_client_speakers=0, num_noise_files=1, seconds=0.0)  # fmt: skip
    monkeypatch.setattr(corpus, "synthesize_corpus", lambda *args, **kwargs: summary)
    real = params_from_dict({"prepare": {"source": "speech_commands"}})
    run_restricted("corpus", real, lambda p: corpus.run(p, tmp_path))
    assert (tmp_path / "data/corpus/README.md").is_file()
    reads = run_restricted("corpus", Params(), lambda p: corpus.run(p, tmp_path))
    check_every_entry_read("corpus", reads)


def test_prepare_reads_what_it_declares(run_restricted, tmp_path):
    write_speech_commands(tmp_path / "sc", num_speakers=8)
    write_speech_commands(tmp_path / "data/corpus", num_speakers=8)  # the synthetic source
    given = params_from_dict(
        {"prepare": {"source": "speech_commands", "speech_commands_dir": str(tmp_path / "sc")}}
    )
    run_restricted("prepare", given, lambda p: prepare.run(p, tmp_path))
    reads = run_restricted("prepare", Params(), lambda p: prepare.run(p, tmp_path))
    assert (tmp_path / "data/prepared/manifest.csv").is_file()
    check_every_entry_read("prepare", reads)


def test_supernet_reads_what_it_declares(run_restricted, tmp_path):
    write_prepared(tmp_path / "data/prepared", clients=1, val=12)
    params = params_from_dict({"supernet": STAGE_SUPERNET})
    reads = run_restricted("supernet", params, lambda p: supernet.run(p, tmp_path))
    assert (tmp_path / "models/supernet.ckpt").is_file()
    check_every_entry_read("supernet", reads)


def test_search_reads_what_it_declares(run_restricted, tmp_path):
    write_search_inputs(tmp_path)
    additive_table().save(tmp_path / "phone.json")
    tiny = {"budget_ms": 4.0, "candidates": 2, "lut_check_archs": 1, "train_epochs": 1}

    def on(search_params: dict[str, Any]) -> Params:
        return params_from_dict({"supernet": STAGE_SUPERNET, "search": {**tiny, **search_params}})

    run_restricted("search", on({}), lambda p: search.run(p, tmp_path, measurer=StubMeasurer()))
    reads = run_restricted("search", on({"lut_import": "phone.json", "train_baselines": False}),
                           lambda p: search.run(p, tmp_path))  # another device's table  # fmt: skip
    assert (tmp_path / "models/searched.pt").is_file()
    check_every_entry_read("search", reads)


def test_finetune_reads_what_it_declares(run_restricted, tmp_path, monkeypatch):
    simulate_in_process(monkeypatch)  # Flower's federation in this process, without Ray
    prepared = write_prepared(tmp_path / "data/prepared", clients=2)
    write_start_model(tmp_path / "models/searched.pt", prepared, steps=1)
    params = params_from_dict({"finetune": {"rounds": 1, "clients_per_round": 2,
                                            "min_clients": 1, "local_steps": 1}})  # fmt: skip
    reads = run_restricted("finetune", params, lambda p: finetune.run(p, tmp_path))
    assert (tmp_path / "models/final.pt").is_file()
    check_every_entry_read("finetune", reads)


def test_a_stage_reading_an_undeclared_key_fails_here(run_restricted):
    """The check has teeth: a component that reads a key its entry does not list fails."""
    with pytest.raises(UndeclaredParamError, match=r"stage 'supernet' reads search,"):
        run_restricted("supernet", Params(), lambda p: p.search.budget_ms)
    with pytest.raises(UndeclaredParamError, match=r"stage 'export' reads search\.budget_ms,"):
        run_restricted("export", Params(), lambda p: p.search.budget_ms)
