"""MLflow provenance: flattened params, DVC hashes of a stage's inputs and outputs, the commit,
and the experiment made once in a temporary store."""

from __future__ import annotations

import subprocess

import mlflow
import pytest

from components.config import BaseParams
from flows.tracking import (
    close_killed_runs,
    configure,
    flatten,
    git_commit,
    process_tags,
    stage_input_hashes,
    stage_output_hashes,
)


def test_flatten_exact():
    tree = {"base": {"seed": 7, "experiment": "e"}, "search": {"budget_ms": None},
            "supernet": {"stem_stride": [2, 4], "stages": [{"channels": 16}]},
            "finetune": {"pvt": {"fixed": ("head.*",), "min_depth": 0.5}}, "top": True}  # fmt: skip
    assert flatten(tree) == {
        "base.seed": 7,
        "base.experiment": "e",
        "search.budget_ms": None,
        "supernet.stem_stride": "[2, 4]",  # lists and tuples as JSON
        "supernet.stages": '[{"channels": 16}]',
        "finetune.pvt.fixed": '["head.*"]',
        "finetune.pvt.min_depth": 0.5,
        "top": True,
    }
    assert flatten({}) == {}


DVC_YAML = """\
stages:
  prepare:
    cmd: edgelearn stage prepare
    deps: [components/prepare.py]
    outs:
      - ${paths.prepared}:
          persist: true
  train:
    cmd: edgelearn stage train
    deps:
      - ${paths.prepared}
      - ${paths.external}
      - components/train.py
    outs:
      - ${paths.model}
    metrics:
      - ${paths.metrics}/train.json:
          cache: false
"""
PARAMS_YAML = """\
paths: {prepared: data/prepared, external: data/external, model: models/m.pt, metrics: metrics}
"""
DVC_LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: edgelearn stage prepare
    deps:
      - path: components/prepare.py
        md5: 1111
    outs:
      - path: data/prepared
        md5: aaaa.dir
        size: 10
  train:
    cmd: edgelearn stage train
    deps:
      - path: data/prepared
        md5: aaaa.dir
    outs:
      - path: models/m.pt
        md5: bbbb
      - path: metrics/train.json
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text(PARAMS_YAML)
    (tmp_path / "dvc.lock").write_text(DVC_LOCK)
    return tmp_path


def test_output_hashes_are_dvc_locks_outs(project):
    assert stage_output_hashes("prepare", project) == {"dvc.out.data/prepared": "aaaa.dir"}
    # an out without an md5 (not cached) is left out
    assert stage_output_hashes("train", project) == {"dvc.out.models/m.pt": "bbbb"}
    assert stage_output_hashes("export", project) == {}


def test_input_hashes_are_the_deps_an_upstream_stage_wrote(project):
    # ${paths.prepared} resolves to data/prepared, which prepare wrote; data/external and the
    # code are nobody's output
    assert stage_input_hashes("train", project) == {"dvc.in.data/prepared": "aaaa.dir"}
    assert stage_input_hashes("prepare", project) == {}


def test_no_lock_yet_means_no_hashes(project):
    (project / "dvc.lock").unlink()
    assert stage_output_hashes("train", project) == {}
    assert stage_input_hashes("train", project) == {}


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)  # fmt: skip


def test_git_commit_outside_and_inside_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above it
    outside = tmp_path / "outside"
    outside.mkdir()
    assert git_commit(outside) == {"git.commit": "unknown", "git.dirty": "unknown"}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert git_commit(repo) == {"git.commit": head, "git.dirty": "False"}
    (repo / "a.txt").write_text("changed")
    assert git_commit(repo) == {"git.commit": head, "git.dirty": "True"}


def test_configure_creates_the_experiment_once(tmp_path):
    base = BaseParams(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_root=str(tmp_path / "artifacts"),
        experiment="edgelearn-test",
    )
    try:
        first = configure(base, tmp_path)
        again = configure(base, tmp_path)
        assert first == again
        assert mlflow.get_tracking_uri() == base.tracking_uri
        client = mlflow.MlflowClient(base.tracking_uri)
        named = [e for e in client.search_experiments() if e.name == "edgelearn-test"]
        assert [e.experiment_id for e in named] == [first]
        assert named[0].artifact_location == (tmp_path / "artifacts").resolve().as_uri()
        assert (tmp_path / "artifacts").is_dir()
    finally:
        mlflow.set_tracking_uri(None)


def test_runs_of_killed_processes_are_marked_killed(tmp_path):
    base = BaseParams(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_root=str(tmp_path / "artifacts"),
        experiment="edgelearn-test",
    )
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    try:
        experiment_id = configure(base, tmp_path)
        client = mlflow.MlflowClient(base.tracking_uri)
        tags = process_tags()

        def running(pid: int, host: str = tags["edgelearn.host"]) -> str:
            run_tags = {"edgelearn.host": host, "edgelearn.pid": str(pid)}
            return client.create_run(experiment_id, tags=run_tags).info.run_id

        killed, alive = running(gone.pid), running(int(tags["edgelearn.pid"]))
        elsewhere = running(gone.pid, host="another-machine")  # its process is not ours to judge
        finished = running(gone.pid)
        client.set_terminated(finished, "FINISHED")
        assert close_killed_runs(experiment_id) == [killed]
        status = {r: client.get_run(r).info.status for r in (killed, alive, elsewhere, finished)}
        assert status == {killed: "KILLED", alive: "RUNNING", elsewhere: "RUNNING",
                          finished: "FINISHED"}  # fmt: skip
        assert close_killed_runs(experiment_id) == []
    finally:
        mlflow.set_tracking_uri(None)
