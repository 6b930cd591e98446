"""Lightning training of the super-network (ordered dropout) and of one fixed network."""

import pytest
import torch

from components.config import SupernetParams
from components.model.subnet import SubNetwork
from components.model.supernet import SuperNet, fixed_widths
from components.training.data import ServerData
from components.training.trainer import KwsModule, fit
from tests.helpers.spaces import SMALL_SPACE as SPACE
from tests.helpers.spaces import randomized_supernet
from tests.helpers.toy_data import banded_tensors


@pytest.mark.slow
def test_supernet_training_lowers_the_loss_and_learns():
    train_x, train_y = banded_tensors(384, 0)
    val_x, val_y = banded_tensors(96, 1)
    data = ServerData(train_x, train_y, val_x, val_y)
    params = SupernetParams(
        epochs=8, batch_size=32, lr=2e-2, eval_subnets=2, recalibration_batches=2
    )
    torch.manual_seed(0)  # the weights' init: fit() seeds only the training itself
    net = SuperNet(SPACE)
    net.norm.set_stats(train_x)
    result = fit(net, params, data, seed=0)
    history = result.module.history
    assert len(history) == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc_full"] > 40.0  # chance is 8.3%
    assert {"val_acc_smallest", "val_acc_median_subnet", "val_acc_subnet1"} <= set(history[-1])


@pytest.mark.slow
def test_same_seed_gives_identical_training():
    train_x, train_y = banded_tensors(128, 0)
    data = ServerData(train_x, train_y, *banded_tensors(48, 1))
    params = SupernetParams(epochs=1, batch_size=32, eval_subnets=1, recalibration_batches=1)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = SuperNet(SPACE)
        net.norm.set_stats(train_x)
        history = fit(net, params, data, seed=3).module.history
        runs.append((history, net.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], v) for k, v in runs[1][1].items())


def test_a_fixed_network_logs_its_own_accuracy_and_the_progress_per_epoch():
    train_x, train_y = banded_tensors(48, 0)
    data = ServerData(train_x, train_y, *banded_tensors(24, 1))
    params = SupernetParams(epochs=2, batch_size=16, recalibration_batches=1)
    torch.manual_seed(0)
    net = SubNetwork(SPACE, [8, 0, 8, 0])
    net.norm.set_stats(train_x)
    reports = []
    result = fit(net, params, data, seed=0, phase="training epoch",
                 progress=lambda *report: reports.append(report))  # fmt: skip
    history = result.module.history
    assert [set(h) for h in history] == [{"epoch", "train_loss", "val_acc_full"}] * 2
    assert [h["epoch"] for h in history] == [0.0, 1.0]
    assert result.steps == 2 * 3  # 48 clips in batches of 16, per epoch
    assert result.seconds > 0 and result.monitor_seconds > 0
    assert [(phase, done, total) for phase, done, total, _ in reports] == [
        ("training epoch", 1, 2), ("training epoch", 2, 2)
    ]  # fmt: skip
    assert set(reports[-1][3]) == {"train_loss", "val_acc_full"}


def test_a_network_handed_over_in_eval_mode_trains_its_batch_norm():
    # Lightning keeps a module's eval mode through fit: a network extracted from an evaluated
    # super-network would otherwise train with frozen batch-norm statistics
    train_x, train_y = banded_tensors(48, 0)
    data = ServerData(train_x, train_y, *banded_tensors(24, 1))
    torch.manual_seed(0)
    net = SubNetwork(SPACE, [8, 0, 8, 0])
    net.norm.set_stats(train_x)
    net.eval()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    modes: list[bool] = []
    net.register_forward_pre_hook(lambda module, _: modes.append(module.training))
    fit(net, SupernetParams(epochs=1, batch_size=16, recalibration_batches=1), data, seed=0)
    assert modes[:3] == [True] * 3  # the training steps (the epoch's scoring comes after)
    assert all(not torch.equal(b, m.running_mean) for b, m in zip(before, norms, strict=True))


def test_distillation_loss_is_zero_when_student_matches_teacher():
    train_x, train_y = banded_tensors(64, 0)
    data = ServerData(train_x, train_y, train_x, train_y)
    net = randomized_supernet(seed=0)  # non-trivial outputs: a random init predicts ~uniformly
    module = KwsModule(net, SupernetParams(distill_weight=0.5), data, total_steps=1, seed=0)
    x = train_x[:8]
    with torch.no_grad():
        same = module._distill(x, net(x))
        other = module._distill(x, net(x, fixed_widths([8, 0, 8, 0], 8)))
    assert abs(float(same)) < 1e-6
    assert float(other) > 1e-3
