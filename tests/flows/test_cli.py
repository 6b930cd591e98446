"""The ``edgelearn`` command line: params printing, the exit code of bad input, the stages."""

import json

import yaml

from flows.cli import STAGES, USER_ERROR_EXIT, main
from tests.helpers import ROOT


def test_params_schema_prints_json(capsys):
    assert main(["params", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "supernet" in schema["properties"]


def test_params_prints_the_resolved_file(capsys, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("base:\n  seed: 9\n")
    assert main(["params", "--params", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["base"]["seed"] == 9


def test_bad_params_exit_2_with_one_message(capsys, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("base:\n  sed: 9\n")
    assert main(["params", "--params", str(path)]) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith(f"edgelearn: error: {path}: invalid parameters")
    assert "base.sed: unknown key" in err


def test_every_dvc_stage_has_a_cli_stage():
    assert set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) == set(STAGES)


def test_a_smoke_run_outside_the_project_says_where_to_run_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--smoke"]) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith(f"edgelearn: error: {tmp_path / 'dvc.yaml'}: not found")
    assert "run this in the project's directory" in err and "a bug" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
