"""The server pool's tensors: the splits that training and search read, and the BN batches."""

import pytest
import torch

from components.errors import CorpusError
from components.training.data import ServerData, load_server_data
from tests.helpers.toy_data import write_prepared


def test_load_server_data_takes_the_server_train_and_eval_splits(tmp_path):
    root = write_prepared(tmp_path / "prepared", clients=2, val=12)
    data = load_server_data(root)
    assert (len(data.train_y), len(data.val_y)) == (48, 12)
    assert data.train_x.shape == (48, 40, 101) and data.train_y.dtype == torch.int64
    test = load_server_data(root, split_eval="test")
    assert torch.equal(test.train_x, data.train_x) and len(test.val_y) == 24
    # the class names the prepared data gives: what sizes the network's head
    assert data.classes == tuple(str(c) for c in range(12))


def test_a_missing_split_is_one_clear_error(tmp_path):
    root = write_prepared(tmp_path / "prepared", clients=1)  # no server validation clips
    with pytest.raises(CorpusError) as err:
        load_server_data(root)
    assert str(err.value) == f"{root}: the server pool has no 'val' clips"


def test_calibration_batches_are_fixed_training_batches():
    x = torch.arange(10.0)[:, None, None].expand(10, 2, 3)
    data = ServerData(x, torch.zeros(10), x[:2], torch.zeros(2))
    batches = data.calibration_batches(3, 4, seed=5)
    assert [len(b) for b in batches] == [4, 4]  # only two whole batches of 4 in 10 clips
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    assert [b[:, 0, 0].tolist() for b in batches] == [order[:4].tolist(), order[4:8].tolist()]
    again = data.calibration_batches(3, 4, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert [len(b) for b in data.calibration_batches(2, 32, seed=5)] == [10]  # at least one


def test_noise_clips_are_the_training_splits_silence():
    x = torch.arange(6.0)[:, None, None].expand(6, 2, 3)
    y = torch.tensor([0, 2, 1, 2, 0, 1])
    data = ServerData(x, y, x[:1], y[:1], ("yes", "_unknown_", "_silence_"))
    assert data.noise_clips()[:, 0, 0].tolist() == [1.0, 3.0]
    assert len(ServerData(x, y, x[:1], y[:1], ("yes", "no", "_unknown_")).noise_clips()) == 0
