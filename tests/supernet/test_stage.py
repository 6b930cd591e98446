"""The supernet stage on the toy data: its metrics, the checkpoint it writes, when it monitors."""

from __future__ import annotations

import pytest
import torch

from components.config import params_from_dict
from components.model.checkpoint import SUPERNET_FORMAT, load_supernet_file
from components.supernet import stage
from tests.helpers.spaces import STAGE_SPACE, STAGE_SUPERNET
from tests.helpers.toy_data import write_prepared

METRIC_KEYS = {
    "val_acc_full", "val_acc_smallest", "val_acc_median_subnet", "epochs", "train_seconds",
    "monitor_seconds", "supernet_params", "full_macs", "smallest_macs",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("supernet")
    write_prepared(workdir / "data/prepared", clients=1, val=24)
    params = params_from_dict(
        {"supernet": {**STAGE_SUPERNET, "epochs": 3, "monitor_every": 2}, "base": {"seed": 3}}
    )
    reports = []
    result = stage.run(params, workdir, progress=lambda *r: reports.append(r))
    return workdir, params, result, reports


def test_metrics_and_timings(trained):
    _, _, result, _ = trained
    m = result.metrics
    assert set(m) == METRIC_KEYS
    assert m["epochs"] == 3
    assert m["train_seconds"] > 0 and m["monitor_seconds"] > 0  # scoring is timed apart
    assert m["full_macs"] > m["smallest_macs"] > 0
    assert all(0.0 <= m[k] <= 100.0 for k in ("val_acc_full", "val_acc_smallest",
                                              "val_acc_median_subnet"))  # fmt: skip
    assert result.steps == 3 * 3  # 48 training clips in batches of 16


def test_checkpoint_is_the_supernet_format_and_loads(trained):
    workdir, params, result, _ = trained
    assert result.checkpoint == workdir / params.paths.supernet == workdir / "models/supernet.ckpt"
    raw = torch.load(result.checkpoint, weights_only=True)
    assert raw["format"] == SUPERNET_FORMAT == "edgelearn.supernet/1"
    net, payload = load_supernet_file(result.checkpoint)
    assert net.space == STAGE_SPACE  # the params' stages over the data's 40 x 101 x 12 classes
    assert payload["metrics"] == result.metrics and payload["history"] == result.history
    assert [p.name for p in result.checkpoint.parent.iterdir()] == ["supernet.ckpt"]


def test_subnets_are_scored_every_monitor_every_epochs_and_at_the_last(trained):
    _, _, result, reports = trained
    history = result.history
    assert [h["epoch"] for h in history] == [0.0, 1.0, 2.0]
    # epoch 1: the loss only; epoch 2 (monitor_every 2) and epoch 3 (the last): every score
    assert ["val_acc_median_subnet" in h for h in history] == [False, True, True]
    assert set(history[0]) == {"epoch", "train_loss"}
    scored = {"epoch", "train_loss", "val_acc_full", "val_acc_smallest", "val_acc_median_subnet",
              "val_acc_subnet0", "val_acc_subnet1"}  # fmt: skip
    assert set(history[1]) == set(history[2]) == scored  # eval_subnets 2
    last = {k: round(history[2][k], 3) for k in ("val_acc_full", "val_acc_median_subnet")}
    assert last == {k: result.metrics[k] for k in last}  # the stage reports the last epoch
    assert [(phase, done, total) for phase, done, total, _ in reports] == [
        ("epoch", 1, 3), ("epoch", 2, 3), ("epoch", 3, 3)
    ]  # fmt: skip


def test_sampled_subnets_cover_uniform_and_random_widths(trained):
    _, _, result, _ = trained
    uniform = [s["widths"] for s in result.subnets if s["kind"] == "uniform"]
    assert uniform == [[0, 0], [8, 8], [16, 16]]
    widths = [tuple(s["widths"]) for s in result.subnets]
    assert len(widths) == len(set(widths)) <= 3 + 2  # report_subnets 2, duplicates scored once
    for s in result.subnets:
        assert set(s) == {"widths", "macs", "params", "val_acc", "kind"}
