"""What a stage may read: the keys its dvc.yaml entry declares, and its ${...} paths resolved."""

from __future__ import annotations

import pytest
import yaml

from components.errors import ConfigError
from flows.contract import declared_keys, dvc_stages, resolve, resolved_paths
from tests.helpers import ROOT

PATHS_OUT = {"paths.metrics"}  # every stage writes metrics/<stage>.json
DECLARED = {
    "corpus": {"base.seed", "prepare.source", "prepare.speech_commands_dir",
               "prepare.keywords", "corpus",
               "paths.corpus", *PATHS_OUT},
    "prepare": {"base.seed", "prepare", "features", "paths.corpus", "paths.external",
                "paths.prepared", *PATHS_OUT},
    "supernet": {"base.seed", "supernet", "paths.prepared", "paths.supernet", *PATHS_OUT},
    "search": {"base.seed", "features", "export.opset", "supernet", "search", "paths.prepared",
               "paths.supernet", "paths.search", "paths.searched", *PATHS_OUT},
    "finetune": {"base.seed", "finetune", "paths.searched", "paths.prepared", "paths.final",
                 *PATHS_OUT},
    "export": {"base.seed", "features", "export", "search.profiles", "paths.final",
               "paths.prepared", "paths.search", "paths.export", *PATHS_OUT},
}  # fmt: skip


def test_stages_in_pipeline_order():
    assert list(dvc_stages(ROOT)) == ["corpus", "prepare", "supernet", "search", "finetune",
                                      "export"]  # fmt: skip


@pytest.mark.parametrize("stage", list(DECLARED))
def test_declared_keys_of_each_real_stage(stage):
    assert declared_keys(stage, ROOT) == DECLARED[stage]


DVC_YAML = """\
stages:
  train:
    cmd: edgelearn stage train
    deps:
      - ${paths.data}
      - ${ paths.code }/model.py
      - src/fixed.py
    params:
      - base.seed
      - train
      - params.yaml:
          - search.profile
    outs:
      - ${paths.model}:
          persist: true
    metrics:
      - ${paths.metrics}/train.json:
          cache: false
"""
PARAMS_YAML = """\
paths: {data: data/in, code: src, model: models/m.pt, metrics: metrics}
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text(PARAMS_YAML)
    return tmp_path


def test_declared_keys_are_the_params_list_and_the_templates(project):
    assert declared_keys("train", project) == {
        "base.seed", "train", "search.profile",  # the params list, plain and params.yaml: form
        "paths.data", "paths.code", "paths.model", "paths.metrics",  # ${...} anywhere
    }  # fmt: skip


def test_resolve_replaces_every_template_as_dvc_does():
    values = {"paths": {"data": "data/in", "n": 3}, "top": "x"}
    node = {"${top}": ["${paths.data}/a", "${ paths.n }-${paths.n}", 7, None], "k": True}
    assert resolve(node, values) == {"x": ["data/in/a", "3-3", 7, None], "k": True}
    assert resolve("no templates", values) == "no templates"
    with pytest.raises(ConfigError) as err:
        resolve("${paths.nope}/x", values)
    assert str(err.value) == "dvc.yaml: ${paths.nope} is not a key of params.yaml"
    with pytest.raises(ConfigError, match=r"\$\{top.deeper\} is not a key"):
        resolve("${top.deeper}", values)


def test_resolved_paths_of_deps_outs_and_metrics(project):
    assert resolved_paths("train", "deps", project) == ["data/in", "src/model.py", "src/fixed.py"]
    assert resolved_paths("train", "outs", project) == ["models/m.pt"]
    assert resolved_paths("train", "metrics", project) == ["metrics/train.json"]
    assert resolved_paths("train", "plots", project) == []
    assert resolved_paths("nope", "deps", project) == []


def test_real_paths_come_from_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["paths"]
    assert resolved_paths("search", "outs", ROOT)[:2] == [params["search"], params["searched"]]
    assert resolved_paths("search", "metrics", ROOT) == [f"{params['metrics']}/search.json"]
    for stage in dvc_stages(ROOT):
        for field in ("deps", "outs", "metrics"):
            assert not [p for p in resolved_paths(stage, field, ROOT) if "$" in p], (stage, field)


def test_a_missing_stage_or_key_is_one_clear_error(project, tmp_path_factory):
    with pytest.raises(ConfigError) as err:
        declared_keys("deploy", project)
    assert str(err.value) == f"{project / 'dvc.yaml'}: no stage 'deploy' (has train)"
    (project / "params.yaml").write_text("paths: {data: data/in}\n")
    with pytest.raises(ConfigError, match=r"\$\{paths.code\} is not a key of params.yaml"):
        resolved_paths("train", "deps", project)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ConfigError) as err:
        dvc_stages(empty)
    assert str(err.value) == f"{empty / 'dvc.yaml'}: not found; run edgelearn from the project root"
    (empty / "dvc.yaml").write_text("stages: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dvc\.yaml: not valid YAML: "):
        dvc_stages(empty)
    (empty / "dvc.yaml").write_text("vars: []\n")
    with pytest.raises(ConfigError) as err:
        dvc_stages(empty)
    assert str(err.value) == f"{empty / 'dvc.yaml'}: no stages"
