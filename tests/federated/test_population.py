"""``finetune.population``: the client speakers' clips dealt to many devices, and what a server
asks of a population (registration, federated evaluation on a sample)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord

from components.data.splits import CLIENT, TEST, TRAIN
from components.errors import ConfigError, CorpusError
from components.federated import protocol as P
from components.federated.data import ClientPool, allot_devices
from components.federated.sampling import ClientInfo, plan_round, sample_evaluators
from components.federated.strategy import PartialVariableStrategy, numpy_to_arrays
from tests.federated.test_client_app import (  # noqa: F401 - built is a fixture
    SEED,
    Federation,
    built,
    with_config,
)
from tests.helpers.toy_data import write_prepared

SPEAKERS, TRAIN_CLIPS, TEST_CLIPS = 3, 10, 6


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("population") / "prepared", clients=SPEAKERS,
                          train=TRAIN_CLIPS, test=TEST_CLIPS)  # fmt: skip


def test_devices_go_to_the_speakers_with_the_most_clips_per_device():
    assert allot_devices([10, 10, 10], 3) == [1, 1, 1]
    assert allot_devices([10, 10, 10], 7) == [3, 2, 2]  # ties: the earlier speaker
    assert allot_devices([2, 12, 4], 6) == [1, 4, 1]  # 2, 3 and 4 clips per device
    assert allot_devices([1, 3], 4) == [1, 3]  # never more devices than clips
    counts = [19, 20, 27, 3, 8]
    for n in range(5, sum(counts) + 1):
        devices = allot_devices(counts, n)
        assert sum(devices) == n and all(1 <= d <= c for d, c in zip(devices, counts, strict=True))


def test_population_zero_is_one_device_per_speaker(prepared):
    pool = ClientPool(prepared)
    assert len(pool) == SPEAKERS and pool.ids == [0, 1, 2]
    for c in pool.ids:
        _, y = pool.clips(c, TRAIN)
        rows = pool.data.select(CLIENT, TRAIN, c)
        assert np.array_equal(y.numpy(), pool.data.labels[rows])
        assert pool.counts(c) == (TRAIN_CLIPS, TEST_CLIPS)


def test_a_population_deals_every_clip_once_to_devices_of_one_speaker(prepared):
    pool = ClientPool(prepared, population=7, seed=SEED)
    assert len(pool) == 7 and pool.ids == list(range(7))
    speaker = pool.data.manifest["client"].to_numpy()
    # speaker 0 has 3 devices, speakers 1 and 2 two each, in speaker order
    owners = [set(speaker[np.concatenate(r)]) for r in pool.rows]
    assert owners == [{0}, {0}, {0}, {1}, {1}, {2}, {2}]
    assert [pool.counts(d)[0] for d in pool.ids] == [4, 3, 3, 5, 5, 5, 5]
    for split, k in ((TRAIN, 0), (TEST, 1)):
        dealt = np.sort(np.concatenate([r[k] for r in pool.rows]))
        every = np.sort(np.concatenate([pool.data.select(CLIENT, split, c) for c in range(3)]))
        assert np.array_equal(dealt, every)
    x, y = pool.clips(3, TRAIN)
    assert x.shape[0] == len(y) == 5
    assert np.array_equal(y.numpy(), pool.data.labels[pool.rows[3][0]])
    # the deal is the seed's: repeatable, and another seed deals otherwise
    again, other = ClientPool(prepared, 7, SEED), ClientPool(prepared, 7, SEED + 1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pool.rows, again.rows, strict=True))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(pool.rows, other.rows, strict=True))


@pytest.mark.parametrize("population", [2, SPEAKERS * TRAIN_CLIPS + 1])
def test_a_population_that_cannot_be_dealt_is_refused_naming_the_key(prepared, population):
    with pytest.raises(ConfigError, match=rf"finetune.population={population}: .* 3 client "
                       r"speakers with 30 training clips; use 0 .* from 3 to 30"):  # fmt: skip
        ClientPool(prepared, population, SEED)


def test_federated_evaluation_samples_the_same_clients_each_time():
    clients = [ClientInfo(100 + k, k, 5, k % 3) for k in range(30)]  # every third has no test
    with_test = [c for c in clients if c.num_test > 0]
    assert sample_evaluators(clients, 0, SEED) == with_test
    assert sample_evaluators(clients, 50, SEED) == with_test
    picked = sample_evaluators(clients, 5, SEED)
    assert len(picked) == 5 and picked == sample_evaluators(clients, 5, SEED)
    assert picked == sorted(picked, key=lambda c: c.client) and set(picked) <= set(with_test)
    assert picked != sample_evaluators(clients, 5, SEED + 1)


def test_nodes_of_a_population_register_train_and_evaluate_as_their_device(built):  # noqa: F811
    fed = Federation(*built, nodes=7, population=7, clients_per_round=7, federated_eval_clients=4)
    clients = fed.strategy.register(fed.grid, 7, 1.0)
    assert [(c.node, c.client) for c in clients] == [(100 + k, k) for k in range(7)]
    assert [(c.num_train, c.num_test) for c in clients] == [fed.pool.counts(k) for k in range(7)]
    assert sum(c.num_train for c in clients) == 30 and min(c.num_train for c in clients) >= 3
    arrays = numpy_to_arrays(fed.initial)
    for msg in fed.strategy.configure_train(1, arrays, ConfigRecord(), fed.grid):
        device = msg.metadata.dst_node_id - 100
        reply = fed.call(msg)
        assert not reply.has_error(), reply.error
        m = P.metrics_of(reply.content)
        assert (m["client"], m["num-examples"]) == (device, fed.pool.counts(device)[0])
    correct, clips, reporting = fed.strategy.federated_evaluate(fed.grid, arrays)
    picked = sample_evaluators(clients, 4, SEED)
    assert reporting == 4 and clips == sum(c.num_test for c in picked)
    assert 0 <= correct <= clips


def test_slot_nodes_play_the_devices_the_server_samples(built):  # noqa: F811
    """A simulated population: 3 slot nodes, 7 devices the server knows from the data; every
    message names its device and the reply is that device's (its clips, its id)."""
    fed = Federation(*built, nodes=3, population=7, clients_per_round=3, federated_eval_clients=0)
    roster = [ClientInfo(-1, d, *fed.pool.counts(d)) for d in fed.pool.ids]
    strategy = PartialVariableStrategy(fed.params, fed.arch, fed.layout, SEED, roster=roster)
    assert strategy.register(fed.grid, 3, 1.0) == roster and strategy.slots == [100, 101, 102]
    arrays = numpy_to_arrays(fed.initial)
    seen = set()
    for server_round in (1, 2, 3):
        plan = plan_round(roster, fed.params, fed.layout, SEED, server_round)
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), fed.grid))
        assert [m.metadata.dst_node_id for m in messages] == [100, 101, 102]
        for msg, a in zip(messages, plan, strict=True):
            assert P.config_of(msg.content)["device"] == a.client
            m = P.metrics_of(fed.call(msg).content)
            assert (m["client"], m["num-examples"]) == (a.client, fed.pool.counts(a.client)[0])
            seen.add(a.client)
    assert len(seen) > 3  # the slots played more devices than there are slots
    _, clips, reporting = strategy.federated_evaluate(fed.grid, arrays)
    assert reporting == 7 and clips == sum(c.num_test for c in roster) == 18
    with pytest.raises(CorpusError, match="no device 7 in this population"):
        fed.call(with_config(messages[0], device=7))
