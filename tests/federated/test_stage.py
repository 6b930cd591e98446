"""Bad input to the finetune stage stops it before Ray starts, with one message naming the key."""

import pytest

from components.config import Params
from components.errors import ConfigError, EdgelearnError
from components.federated import stage
from tests.federated.builders import write_prepared, write_start_model


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
