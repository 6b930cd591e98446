"""What ``flows.runner`` hands a stage: ``components.config_view.restrict``, a view of the
params that reads only the keys the stage's dvc.yaml entry declares."""

from __future__ import annotations

import pytest

from components.config import FeatureParams, Params, SupernetParams, params_from_dict
from components.config_view import UndeclaredParamError, declared_values, restrict
from components.errors import ConfigError

PARAMS = params_from_dict(
    {
        "base": {"seed": 5},
        "paths": {"prepared": "prep"},
        "search": {"profiles": ["phone"], "budget_ms": 2.5},
    }
)


def undeclared(stage: str, key: str) -> str:
    return (f"stage {stage!r} reads {key}, which its dvc.yaml entry does not list: add it under "
            "the stage's params (or ${...} it in deps/outs), or stop reading it")  # fmt: skip


def test_a_declared_section_reads_whole():
    view = restrict(PARAMS, {"supernet", "base.seed"}, "supernet")
    assert isinstance(view.supernet, SupernetParams)
    assert view.supernet == PARAMS.supernet
    assert view.base.seed == 5


def test_an_undeclared_key_raises_naming_the_stage_and_the_key():
    view = restrict(PARAMS, {"supernet"}, "supernet")
    with pytest.raises(UndeclaredParamError) as err:
        view.features  # noqa: B018 - the read is the test
    assert str(err.value) == undeclared("supernet", "features")
    assert isinstance(err.value, ConfigError)  # the CLI shows it as a user error, one line
    with pytest.raises(UndeclaredParamError, match=r"reads base, which"):  # nothing of it declared
        view.base.seed  # noqa: B018


def test_a_declared_single_key_reads_and_its_siblings_do_not():
    view = restrict(PARAMS, {"search.profiles", "features"}, "export")
    assert view.search.profiles == ["phone"]
    with pytest.raises(UndeclaredParamError) as err:
        view.search.budget_ms  # noqa: B018
    assert str(err.value) == undeclared("export", "search.budget_ms")
    assert isinstance(view.features, FeatureParams)


def test_nested_single_keys():
    view = restrict(PARAMS, {"finetune.server.lr", "paths.prepared"}, "finetune")
    assert view.finetune.server.lr == PARAMS.finetune.server.lr
    assert view.paths.prepared == PARAMS.paths.prepared
    with pytest.raises(UndeclaredParamError, match=r"reads finetune\.server\.tau,"):
        view.finetune.server.tau  # noqa: B018
    with pytest.raises(UndeclaredParamError, match=r"reads finetune\.rounds,"):
        view.finetune.rounds  # noqa: B018
    with pytest.raises(UndeclaredParamError, match=r"reads paths\.supernet,"):
        view.paths.supernet  # noqa: B018
    assert repr(view) == "ParamsView('finetune', ['finetune.server.lr', 'paths.prepared'])"


def test_a_declared_key_that_params_has_not_is_refused():
    with pytest.raises(ConfigError) as err:
        restrict(Params(), {"search.profil"}, "export")
    assert str(err.value) == "dvc.yaml: stage 'export' lists search.profil, which params has not"
    with pytest.raises(ConfigError, match=r"lists search\.profiles\.name, which params has not"):
        restrict(Params(), {"search.profiles.name"}, "export")  # profile is a value, not a section


def test_declared_values_nest_the_declared_keys():
    values = declared_values(PARAMS, {"search.profiles", "base.seed", "paths.prepared",
                                      "features"})  # fmt: skip
    assert values == {
        "base": {"seed": 5},
        "features": PARAMS.features.model_dump(mode="json"),
        "paths": {"prepared": "prep"},
        "search": {"profiles": ["phone"]},
    }
    nested = declared_values(PARAMS, {"finetune.server", "finetune.pvt.fixed"})
    server = PARAMS.finetune.server.model_dump(mode="json")
    assert nested == {"finetune": {"pvt": {"fixed": ["head.*"]}, "server": server}}
    assert declared_values(PARAMS, set()) == {}
