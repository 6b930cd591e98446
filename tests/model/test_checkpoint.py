"""The two model files: the format tag, round trips, atomic writes and the clear errors."""

import re

import pytest
import torch

from components.errors import EdgelearnError
from components.model.checkpoint import (
    SUBNET_FORMAT,
    SUPERNET_FORMAT,
    load_subnet,
    load_subnet_file,
    load_supernet,
    load_supernet_file,
    save_subnet,
    save_supernet,
)
from components.model.subnet import extract_subnet
from components.model.supernet import fixed_widths
from tests.helpers.spaces import SMALL_SPACE as SPACE
from tests.helpers.spaces import randomized_supernet

X = torch.randn(2, SPACE.n_mels, SPACE.frames, generator=torch.Generator().manual_seed(0))


def test_supernet_round_trip_keeps_the_function_and_the_extras(tmp_path):
    net = randomized_supernet()
    save_supernet(tmp_path / "m" / "supernet.ckpt", net, {"metrics": {"a": 1}})
    loaded, payload = load_supernet_file(tmp_path / "m" / "supernet.ckpt")
    widths = fixed_widths([8, 0, 16, 8], 2)
    assert not loaded.training and loaded.space == SPACE
    assert torch.equal(loaded(X, widths), net(X, widths))
    assert payload["metrics"] == {"a": 1}
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["supernet.ckpt"]  # no temporaries


def test_files_are_plain_tagged_dicts_that_load_without_pickled_classes(tmp_path):
    net = randomized_supernet()
    save_supernet(tmp_path / "s.ckpt", net, {"history": [{"epoch": 0.0}]})
    save_subnet(tmp_path / "n.pt", extract_subnet(net, [8, 0, 16, 8]), {"arch": {"x": 1}})
    supernet = torch.load(tmp_path / "s.ckpt", weights_only=True)
    subnet = torch.load(tmp_path / "n.pt", weights_only=True)
    assert SUPERNET_FORMAT == "edgelearn.supernet/1" and SUBNET_FORMAT == "edgelearn.subnet/1"
    assert set(supernet) == {"format", "space", "state_dict", "history"}
    assert supernet["format"] == SUPERNET_FORMAT and supernet["space"] == SPACE.to_dict()
    assert set(subnet) == {"format", "config", "state_dict", "arch"}
    assert subnet["format"] == SUBNET_FORMAT
    assert subnet["config"] == {"space": SPACE.to_dict(), "widths": [8, 0, 16, 8]}


def test_subnet_round_trip(tmp_path):
    sub = extract_subnet(randomized_supernet(), [8, 0, 16, 8]).eval()
    save_subnet(tmp_path / "searched.pt", sub, {"metrics": {"val_acc": 50.0}})
    loaded, payload = load_subnet_file(tmp_path / "searched.pt")
    assert loaded.widths == [8, 0, 16, 8] and not loaded.training
    assert torch.equal(loaded(X), sub(X))
    assert payload["metrics"] == {"val_acc": 50.0}
    assert torch.equal(load_subnet(tmp_path / "searched.pt")(X), sub(X))


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    net = randomized_supernet()
    path = tmp_path / "supernet.ckpt"
    save_supernet(path, net)
    before = path.read_bytes()
    with pytest.raises(Exception, match="pickle"):
        save_supernet(path, net, {"not data": lambda: 0})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["supernet.ckpt"]


def test_missing_unreadable_and_foreign_files_are_one_clear_error(tmp_path):
    with pytest.raises(EdgelearnError) as err:
        load_supernet(tmp_path / "nope.ckpt")
    assert str(err.value) == (
        f"{tmp_path / 'nope.ckpt'}: super-network checkpoint not found; "
        "run the stage that writes it"
    )
    with pytest.raises(EdgelearnError, match=r"nope\.pt: sub-network file not found"):
        load_subnet(tmp_path / "nope.pt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(
        EdgelearnError, match=r"junk\.ckpt: not a readable super-network checkpoint \("
    ):
        load_supernet(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(EdgelearnError) as err:
        load_supernet(tmp_path / "other.ckpt")
    assert str(err.value) == (
        f"{tmp_path / 'other.ckpt'}: not an edgelearn super-network checkpoint "
        "(format edgelearn.supernet/1, found None)"
    )
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(
        EdgelearnError, match=re.escape("(format edgelearn.subnet/1, found 'list')")
    ):
        load_subnet(tmp_path / "list.pt")


def test_a_subnet_file_is_not_a_supernet_checkpoint(tmp_path):
    save_subnet(tmp_path / "final.pt", extract_subnet(randomized_supernet(), [8, 0, 16, 8]))
    with pytest.raises(EdgelearnError, match=re.escape("found 'edgelearn.subnet/1')")):
        load_supernet(tmp_path / "final.pt")
    save_supernet(tmp_path / "supernet.ckpt", randomized_supernet())
    with pytest.raises(EdgelearnError, match=r"not an edgelearn sub-network file .*supernet/1'"):
        load_subnet(tmp_path / "supernet.ckpt")
