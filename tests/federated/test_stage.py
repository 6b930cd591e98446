"""The finetune stage: bad input stops it before Ray starts, with one message naming the key; a
whole run in this process, without Ray."""

import pytest

from components.config import Params
from components.errors import ConfigError, EdgelearnError
from components.federated import stage
from components.model.checkpoint import load_subnet_file
from tests.helpers.fake_grid import simulate_in_process
from tests.helpers.federated import WIDTHS, write_start_model
from tests.helpers.toy_data import write_prepared


def params_with(paths=None, **finetune) -> Params:
    return Params.model_validate({"finetune": finetune, "paths": paths or {}})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("stage")
    write_start_model(work / "models/searched.pt", write_prepared(work / "data/prepared"), steps=1)
    return work


def test_min_clients_above_clients_per_round(workdir):
    with pytest.raises(ConfigError, match=r"finetune.min_clients=5 exceeds .*clients_per_round=4"):
        stage.run(params_with(min_clients=5, clients_per_round=4), workdir)


def test_missing_start_model(workdir):
    with pytest.raises(EdgelearnError, match=r"nope\.pt: sub-network file not found"):
        stage.run(params_with(paths={"searched": "models/nope.pt"}), workdir)


def test_fixed_patterns_must_match_a_variable(workdir):
    p = params_with(pvt={"strategy": "fixed", "fixed": ["decoder.*"]})
    with pytest.raises(
        ConfigError,
        match=r"finetune.pvt.fixed: no variable matches .*'decoder.*layers: stem, body.0,",
    ):
        stage.run(p, workdir)


def test_fault_rates_must_sum_to_at_most_one():
    with pytest.raises(ValueError, match="fault rates must sum to at most 1"):
        params_with(faults={"crash": 0.6, "nan": 0.6})


def test_the_stage_in_process_writes_the_final_model_and_its_figures(tmp_path, monkeypatch):
    """The whole stage with Flower's federation run in this process (no Ray): two rounds over
    two clients, every reply accepted."""
    simulate_in_process(monkeypatch)
    prepared = write_prepared(tmp_path / "data/prepared", clients=2)
    write_start_model(tmp_path / "models/searched.pt", prepared, steps=5)
    rounds = []
    params = params_with(rounds=2, clients_per_round=2, min_clients=1, local_steps=2)
    result = stage.run(params, tmp_path, on_round=lambda r, figures: rounds.append(r))
    assert result.model == tmp_path / "models/final.pt"
    net, payload = load_subnet_file(result.model)
    assert net.widths == WIDTHS and payload["metrics"] == result.metrics
    assert payload["finetune"] == params.finetune.model_dump(mode="json")
    m = result.metrics
    assert (m["rounds"], m["clients_total"], m["clients_per_round"]) == (2, 2, 2)
    assert (m["failed_client_updates"], m["rejected_client_updates"], m["skipped_rounds"]) == (
        0, 0, 0
    )  # fmt: skip
    assert m["federated_eval_clients_before"] == m["federated_eval_clients_after"] == 2
    # the default sends every variable in float32, as FedAvg (its metrics record differs a little)
    assert 0.98 <= m["upload_reduction_x"] <= 1.02
    assert m["server_learning_steps"] == 2 * params.finetune.server_learning.steps == 40
    assert rounds == [0, 1, 2] and [h["round"] for h in result.history] == [0.0, 1.0, 2.0]
    assert [h.get("accepted") for h in result.history] == [None, 2.0, 2.0]
    assert result.reasons == []
