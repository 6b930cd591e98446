"""Server learning (``components/federated/server_learning.py``): the server's own SGD steps on
its clips, checked against the same steps written out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from components.config import Params, ServerLearningParams
from components.errors import CorpusError
from components.federated.server_learning import ServerLearner, server_learner
from components.federated.training import materialize
from tests.helpers.federated import LAYOUT, NET
from tests.helpers.toy_data import banded

ARCH = NET.config


def state_of(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {n: t.detach().numpy().copy() for n, t in net.state_dict().items()
            if torch.is_floating_point(t)}  # fmt: skip


@pytest.fixture(scope="module")
def clips() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = banded(64, np.random.default_rng(3))
    return torch.from_numpy(x), torch.from_numpy(y).long()


@pytest.fixture(scope="module")
def start(clips) -> dict[str, np.ndarray]:
    """A start state whose batch-norm statistics are not the defaults (so freezing them shows)."""
    net = materialize(ARCH, {n: torch.from_numpy(v) for n, v in state_of(NET).items()})
    net.train()
    with torch.no_grad():
        net(clips[0])
    return state_of(net)


def test_the_steps_are_plain_sgd_on_batches_drawn_from_seed_and_round(clips, start):
    p = ServerLearningParams(steps=3, batch_size=8, lr=0.1)
    got = ServerLearner(p, ARCH, *clips, seed=5).step(start, server_round=4)
    # the same by hand: eval mode (frozen statistics), batches from the generator the doc names
    net = materialize(ARCH, {n: torch.from_numpy(v.copy()) for n, v in start.items()})
    g = torch.Generator().manual_seed(5 * 100_003 + 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        idx = torch.randint(0, len(clips[1]), (8,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(clips[0][idx]), clips[1][idx]).backward()
        opt.step()
    expected = state_of(net)
    assert got.keys() == start.keys()
    params = set(dict(net.named_parameters()))
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-6, err_msg=name)
        if name in params:
            assert not np.array_equal(got[name], start[name]), f"{name} did not move"
        else:  # batch-norm statistics and the input normalization stay as they were
            np.testing.assert_array_equal(got[name], start[name], err_msg=name)


def test_a_round_repeats_and_rounds_differ(clips, start):
    p = ServerLearningParams(steps=2, batch_size=8, lr=0.1)
    learner = ServerLearner(p, ARCH, *clips, seed=1)
    a, b, c = learner.step(start, 1), learner.step(start, 1), learner.step(start, 2)
    name = LAYOUT.variables[-1]
    np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a[name], c[name])
    assert learner.batches == 6
    assert ServerLearner(p, ARCH, *clips, seed=2).step(start, 1)[name].tolist() != a[name].tolist()


def test_the_learning_rate_decays_linearly_to_its_share_in_the_last_round(clips, start):
    p = ServerLearningParams(steps=2, batch_size=8, lr=0.1, lr_decay_to=0.25)
    learner = ServerLearner(p, ARCH, *clips, seed=1, rounds=4)
    # 0.1 in round 1, then down by 0.1 * 0.75 / 3 a round to 0.025 in round 4, and there after
    expected = [0.1, 0.075, 0.05, 0.025, 0.025]
    assert [learner.lr_at(r) for r in range(1, 6)] == pytest.approx(expected, abs=1e-12)
    assert ServerLearner(ServerLearningParams(lr=0.1), ARCH, *clips, seed=1,
                         rounds=4).lr_at(4) == 0.1  # fmt: skip
    # the steps take that rate: round 3 of the decaying learner is round 3 of a constant 0.05
    constant = ServerLearner(ServerLearningParams(steps=2, batch_size=8, lr=0.05), ARCH, *clips,
                             seed=1, rounds=4)  # fmt: skip
    got, want = learner.step(start, 3), constant.step(start, 3)
    for name in start:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-7, err_msg=name)
    # decaying to 0: the last round leaves the state as it was
    to_zero = ServerLearner(ServerLearningParams(steps=2, lr=0.1, lr_decay_to=0.0), ARCH,
                            *clips, seed=1, rounds=4)  # fmt: skip
    last = to_zero.step(start, 4)
    for name in start:
        np.testing.assert_array_equal(last[name], start[name], err_msg=name)


def test_the_state_it_was_given_is_not_changed(clips, start):
    before = {n: v.copy() for n, v in start.items()}
    ServerLearner(ServerLearningParams(steps=2), ARCH, *clips, seed=0).step(start, 1)
    for name, value in before.items():
        np.testing.assert_array_equal(start[name], value)


def test_no_server_clips_is_refused(clips):
    empty = clips[0][:0], clips[1][:0]
    with pytest.raises(ValueError, match="server learning needs server training clips"):
        ServerLearner(ServerLearningParams(), ARCH, *empty, seed=0)


class NoServerClips:
    def tensors(self, pool: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(0, 1, 1), torch.zeros(0, dtype=torch.long)


def test_the_stage_learner_is_off_at_zero_steps_and_names_the_key_without_clips():
    off = Params.model_validate({"finetune": {"server_learning": {"steps": 0}}})
    assert server_learner(off, NoServerClips(), Path("data/prepared"), ARCH) is None  # type: ignore[arg-type]
    on = Params.model_validate({"finetune": {"server_learning": {"steps": 10}}})
    with pytest.raises(CorpusError, match=r"data/prepared: finetune.server_learning.steps=10 "
                       r"needs the server pool's training clips"):  # fmt: skip
        server_learner(on, NoServerClips(), Path("data/prepared"), ARCH)  # type: ignore[arg-type]


def test_noise_mixing_changes_the_steps_only_when_on(clips, start):
    noise = clips[0][:8]
    off = ServerLearningParams(steps=2, batch_size=8, lr=0.1)
    plain = ServerLearner(off, ARCH, *clips, seed=1).step(start, 1)

    def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
        return a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)

    # off: the noise clips are never drawn from; the steps are exactly those without them
    assert same(ServerLearner(off, ARCH, *clips, seed=1, noise=noise).step(start, 1), plain)
    on = off.model_copy(update={"noise_mix": 1.0, "noise_snr_db": (0.0, 0.0)})
    assert not same(ServerLearner(on, ARCH, *clips, seed=1, noise=noise).step(start, 1), plain)
    # on, with no noise clips: nothing to mix
    assert same(ServerLearner(on, ARCH, *clips, seed=1).step(start, 1), plain)


class ThreeClasses:
    classes = ("yes", "_unknown_", "_silence_")

    def tensors(self, pool: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.arange(5.0)[:, None, None].expand(5, 2, 3)
        return x, torch.tensor([2, 0, 1, 2, 0])


def test_the_stage_learner_mixes_the_server_training_splits_silence():
    on = Params.model_validate({"finetune": {"server_learning": {"steps": 1}}})
    learner = server_learner(on, ThreeClasses(), Path("data/prepared"), ARCH)  # type: ignore[arg-type]
    assert learner is not None and learner.noise[:, 0, 0].tolist() == [0.0, 3.0]
