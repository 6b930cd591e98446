import json

import pytest

from components.config import Params, load_params, params_from_dict, params_json_schema
from components.errors import ConfigError
from tests.helpers import ROOT


def test_repo_params_and_smoke_params_validate():
    assert load_params(ROOT / "params.yaml").base.tracking_uri == "sqlite:///mlruns/mlflow.db"
    smoke = load_params(ROOT / "configs/smoke.yaml")
    assert smoke.corpus.num_server_speakers == 12
    assert smoke.features == Params().features  # smoke only shrinks sizes


def test_defaults_match_params_yaml():
    # params.yaml spells out every default, so reading it is the same as the schema's defaults
    assert load_params(ROOT / "params.yaml") == Params()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"prepare": {"sorce": "synthetic"}}, "prepare.sorce: unknown key"),
        ({"bse": {}}, "bse: unknown key"),
        ({"base": {"seed": "5"}}, "base.seed: Input should be a valid integer"),
        ({"base": {"seed": True}}, "base.seed: Input should be a valid integer"),
        ({"prepare": {"source": "librispeech"}}, "prepare.source: Input should be 'synthetic'"),
        ({"prepare": {"val_fraction": 1.5}}, "prepare.val_fraction: Input should be less than"),
        ({"corpus": {"server_snr_db": [30, 10]}}, "server_snr_db: low end 30.0 is above"),
        ({"features": {"f_max": 9000.0}}, "need f_min < f_max <= sample_rate/2"),
        (["base"], "expected a mapping of sections, got list"),
    ],
)
def test_bad_params_name_the_key(data, expected):
    with pytest.raises(ConfigError) as err:
        params_from_dict(data, "params.yaml")
    assert str(err.value).startswith("params.yaml")
    assert expected in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)


def test_params_are_frozen():
    params = Params()
    with pytest.raises(ValueError, match="frozen"):
        params.base.seed = 3  # type: ignore[misc]


def test_schema_lists_every_section():
    schema = json.loads(params_json_schema())
    assert set(schema["properties"]) == {
        "base",
        "paths",
        "corpus",
        "features",
        "prepare",
        "supernet",
        "search",
        "finetune",
        "export",
        "schedule",
    }
    assert schema["additionalProperties"] is False


def test_unquoted_yes_no_on_off_are_words_as_dvc_writes_them(tmp_path):
    # `dvc exp run -S` rewrites params.yaml with YAML 1.2 (ruamel), which leaves these unquoted
    path = tmp_path / "params.yaml"
    path.write_text("prepare:\n  keywords: [yes, no, On, OFF]\nsearch:\n  netadapt_v1: true\n")
    params = load_params(path)
    assert params.prepare.keywords == ("yes", "no", "On", "OFF")
    assert params.search.netadapt_v1 is True
    path.write_text("prepare:\n  keywords: [true, go]\n")
    with pytest.raises(ConfigError, match=r"True in the list is a YAML boolean"):
        load_params(path)
