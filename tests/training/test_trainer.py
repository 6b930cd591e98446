import pytest
import torch

from components.config import SupernetParams
from components.errors import EdgelearnError
from components.model.checkpoint import load_supernet, save_supernet
from components.model.supernet import SuperNet, fixed_widths
from components.training.data import ServerData
from components.training.trainer import fit
from tests.supernet.test_model import SPACE


def banded_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel-like inputs whose class is which band of 3 mel bins is loud."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % SPACE.num_classes
    x = torch.randn(n, SPACE.n_mels, SPACE.frames, generator=g) - 4.0
    for i, label in enumerate(y.tolist()):
        x[i, 3 * label : 3 * label + 3, 20:80] += 4.0
    return x, y


@pytest.mark.slow
def test_supernet_training_lowers_the_loss_and_learns():
    train_x, train_y = banded_data(384, 0)
    val_x, val_y = banded_data(96, 1)
    data = ServerData(train_x, train_y, val_x, val_y)
    params = SupernetParams(
        epochs=8, batch_size=32, lr=2e-2, eval_subnets=2, recalibration_batches=2
    )
    net = SuperNet(SPACE)
    net.norm.set_stats(train_x)
    result = fit(net, params, data, seed=0)
    history = result.module.history
    assert len(history) == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc_full"] > 40.0  # chance is 8.3%
    assert {"val_acc_smallest", "val_acc_median_subnet", "val_acc_subnet1"} <= set(history[-1])


def test_checkpoint_round_trip_and_errors(tmp_path):
    net = SuperNet(SPACE)
    net.norm.set_stats(torch.randn(8, SPACE.n_mels, SPACE.frames))
    save_supernet(tmp_path / "m" / "supernet.ckpt", net, {"metrics": {"a": 1}})
    loaded = load_supernet(tmp_path / "m" / "supernet.ckpt")
    x = torch.randn(2, SPACE.n_mels, SPACE.frames)
    widths = fixed_widths([8, 0, 16, 8], 2)
    assert torch.equal(loaded(x, widths), net.eval()(x, widths))
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["supernet.ckpt"]
    with pytest.raises(EdgelearnError, match=r"nope\.ckpt: super-network checkpoint not found"):
        load_supernet(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(
        EdgelearnError, match=r"junk\.ckpt: not a readable super-network checkpoint"
    ):
        load_supernet(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(EdgelearnError, match=r"other\.ckpt: not an edgelearn super-network"):
        load_supernet(tmp_path / "other.ckpt")


@pytest.mark.slow
def test_same_seed_gives_identical_training():
    train_x, train_y = banded_data(128, 0)
    data = ServerData(train_x, train_y, *banded_data(48, 1))
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


def test_distillation_loss_is_zero_when_student_matches_teacher():
    from components.training.trainer import KwsModule

    train_x, train_y = banded_data(64, 0)
    data = ServerData(train_x, train_y, train_x, train_y)
    net = SuperNet(SPACE).eval()
    module = KwsModule(net, SupernetParams(distill_weight=0.5), data, total_steps=1, seed=0)
    x = train_x[:8]
    with torch.no_grad():
        same = module._distill(x, net(x))
        other = module._distill(x, net(x, fixed_widths([8, 0, 8, 0], 8)))
    assert abs(float(same)) < 1e-6
    assert float(other) > 1e-4
