"""Super-network training with Lightning DDP on two CPU processes, as `supernet.strategy: ddp`
runs it: the checkpoint it leaves is one the search stage loads and slices sub-networks from.

Lightning's DDP starts the other process by running the launching script again, so the stage runs
in a script of its own here (run inside pytest, the second process would run pytest again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import mlflow
import pytest
import torch
import yaml

from components.config import params_from_dict
from components.model.evaluate import recalibrate_batch_norm
from components.model.subnet import extract_subnet
from components.model.supernet import fixed_widths
from components.search.stage import load_inputs
from flows.workspace import SMOKE_PARAMS, create_workspace
from tests.conftest import QUIET_ENV
from tests.helpers import BIN, ROOT
from tests.helpers.spaces import STAGE_SPACE, STAGE_SUPERNET
from tests.helpers.toy_data import write_prepared

pytestmark = pytest.mark.slow

# 48 server training clips in batches of 8: 24 clips, 3 steps for each of the 2 processes
SUPERNET = {**STAGE_SUPERNET, "batch_size": 8, "epochs": 1, "strategy": "ddp", "devices": 2,
            "accelerator": "cpu", "num_threads": 1}  # fmt: skip
STEPS_PER_PROCESS = 3

# Runs the supernet stage; every process (the launcher, rank 0, and the one Lightning starts by
# running this script again, rank 1) prints one JSON line about what it did.
DRIVER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    from components.config import params_from_dict
    from components.supernet import stage

    workdir, params = Path(sys.argv[1]), params_from_dict(json.loads(sys.argv[2]))
    fits, saved, reports = [], [], []
    fit, save = stage.fit, stage.save_supernet
    stage.fit = lambda *a, **k: fits.append(fit(*a, **k)) or fits[-1]
    stage.save_supernet = lambda *a, **k: saved.append(1) or save(*a, **k)
    result = stage.run(params, workdir, progress=lambda *r: reports.append(r))
    module = fits[0].module
    schedule = module.trainer.lr_scheduler_configs[0].scheduler
    record = {
        "rank": module.global_rank, "world": module.trainer.world_size, "steps": result.steps,
        "schedule_steps": schedule.total_steps, "schedule_done": schedule.last_epoch,
        "saved": len(saved), "history": result.history, "progress": reports,
    }
    # a file per process, not the shared stdout pipe, where two processes' lines can interleave
    out = workdir / f"rank{module.global_rank}.json"
    out.with_suffix(".tmp").write_text(json.dumps(record))
    out.with_suffix(".tmp").replace(out)
""")


def _ranks(workdir) -> list:
    """What each process recorded (``rank<N>.json``), by rank."""
    records = [json.loads(p.read_text()) for p in workdir.glob("rank*.json")]
    return sorted(records, key=lambda r: r["rank"])


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ddp")
    write_prepared(workdir / "data/prepared", clients=1, val=24)
    raw = {"supernet": SUPERNET, "base": {"seed": 5}}
    driver = workdir / "train_supernet.py"
    driver.write_text(DRIVER)
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
    for name in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK"):
        env.pop(name, None)  # Lightning picks 127.0.0.1 and a free port itself
    proc = subprocess.run([sys.executable, str(driver), str(workdir), json.dumps(raw)], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir, params_from_dict(raw), proc


def test_two_processes_each_train_their_shard_and_agree(ddp_run):
    workdir, _, proc = ddp_run
    ranks = _ranks(workdir)
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)], (
        proc.stdout[-2000:] + proc.stderr[-3000:]
    )
    for r in ranks:
        assert r["steps"] == STEPS_PER_PROCESS
        # the one-cycle schedule spans this process's steps, not the single-process count
        assert r["schedule_steps"] == r["schedule_done"] == STEPS_PER_PROCESS
    # the loss is averaged over both shards, the scores come from the same weights
    assert ranks[0]["history"] == ranks[1]["history"]
    assert len(ranks[0]["history"]) == 1 and "val_acc_full" in ranks[0]["history"][0]
    assert [r["saved"] for r in ranks] == [1, 0]  # rank 0 alone writes the checkpoint
    assert [len(r["progress"]) for r in ranks] == [1, 0]  # rank 0 reports the one epoch


def test_checkpoint_loads_as_the_search_stage_loads_it(ddp_run):
    workdir, params, _ = ddp_run
    inputs = load_inputs(params, workdir)  # what the search stage starts from
    net = inputs.net
    assert net.space == STAGE_SPACE and not net.training
    assert inputs.supernet_seconds > 0  # the checkpoint's metrics ride along
    x = inputs.data.val_x
    for widths in ([16, 8], [8, 0], STAGE_SPACE.largest()):
        sub = extract_subnet(net, widths).eval()
        with torch.no_grad():
            # inherited weights: the compact sub-network is the masked super-network
            assert torch.allclose(sub(x), net(x, fixed_widths(widths, len(x))), atol=1e-5)
        recalibrate_batch_norm(sub, inputs.data.calibration_batches(1, 16, 0))
        with torch.no_grad():
            scores = sub(x)
        assert scores.shape == (len(x), 12) and torch.isfinite(scores).all()


def test_the_stage_command_under_ddp_makes_one_stage_run(tmp_path, stage_env):
    """`edgelearn stage supernet` with `strategy: ddp`: Lightning re-runs the command for rank 1,
    which trains its shard only, so the store holds one supernet run (rank 0's), not two."""
    store = tmp_path / "mlruns"
    uri = f"sqlite:///{store}/mlflow.db"
    ws = create_workspace(ROOT, tmp_path / "ws", ROOT / SMOKE_PARAMS, uri, str(store / "art"))
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["supernet"].update(SUPERNET)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_prepared(ws / "data/prepared", clients=1, val=24)
    env = {k: v for k, v in stage_env.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    proc = subprocess.run([str(BIN / "edgelearn"), "stage", "supernet"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("edgelearn")
    runs = client.search_runs([experiment.experiment_id], "tags.`edgelearn.stage` = 'supernet'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.metrics["epochs"] == 1
    assert (ws / "models/supernet.ckpt").is_file()
