"""Who is sampled in a round and what each client is told: exact, seeded, independent draws."""

import numpy as np
import pytest

from components.config import FaultParams, FinetuneParams, PvtParams
from components.federated import protocol as P
from components.federated.sampling import (
    Assignment,
    ClientInfo,
    assign_trainable,
    client_seed,
    draw_fault,
    plan_round,
    probes_memory,
    sample_clients,
)
from components.federated.variables import select_trainable
from tests.helpers.federated import TOY_LAYOUT

# nodes 100.., client ids 0..7; client 3 holds no training clips
CLIENTS = [ClientInfo(100 + i, i, 0 if i == 3 else 10, 5) for i in range(8)]
RANDOM = PvtParams(strategy="random", trainable_fraction=0.4, min_depth=0.0)


def ids(clients):
    return [c.client for c in clients]


def test_the_same_seed_and_round_give_the_same_sample():
    # numpy's seeded streams: if these change, every seeded run changes (and this test says so)
    assert [ids(sample_clients(CLIENTS, 3, 7, r)) for r in (1, 2, 3)] == [
        [0, 5, 7],
        [1, 2, 4],
        [1, 4, 6],
    ]
    assert sample_clients(CLIENTS, 3, 7, 2) == sample_clients(CLIENTS, 3, 7, 2)
    assert ids(sample_clients(CLIENTS, 3, 8, 1)) != [0, 5, 7]  # another seed, another sample


def test_only_clients_with_training_clips_are_sampled_in_the_given_order():
    everyone = sample_clients(CLIENTS, 100, 7, 1)
    assert ids(everyone) == [0, 1, 2, 4, 5, 6, 7]  # capped at the 7 eligible, client 3 left out
    for r in range(1, 20):
        picked = ids(sample_clients(CLIENTS, 4, 7, r))
        assert len(picked) == 4 and 3 not in picked and picked == sorted(picked)
    assert sample_clients([ClientInfo(1, 0, 0, 5)], 2, 7, 1) == []


def test_fault_is_one_uniform_draw_against_the_stacked_rates():
    rates = FaultParams(crash=0.2, timeout=0.2, nan=0.2, bad_shape=0.2, huge_norm=0.1)
    got = [draw_fault(rates, 7, 1, c) for c in range(10)]
    assert got == ["bad_shape", "", "", "crash", "huge_norm", "timeout", "crash", "nan", "",
                   "bad_shape"]  # fmt: skip
    for c in range(50):  # the draw is seeded by (seed, round, client, stream 2)
        u = np.random.default_rng([7, 1, c, 2]).random()
        bucket = int(u / 0.2)
        assert draw_fault(rates, 7, 1, c) == (P.FAULTS[bucket] if u < 0.9 else "")
    assert {draw_fault(FaultParams(), 7, 1, c) for c in range(50)} == {""}
    assert {draw_fault(FaultParams(nan=1.0), 7, 1, c) for c in range(50)} == {P.NAN}


def test_trainable_variables_are_seeded_by_round_and_client():
    got = [assign_trainable(TOY_LAYOUT, RANDOM, 7, 1, c) for c in range(3)]
    assert got == [
        ("stem.bias", "head.weight"),
        ("stem.weight", "body.0.weight"),
        ("body.0.weight", "head.bias"),
    ]  # round(0.4 * 5) = 2 variables each, in layout order
    rng = np.random.default_rng([7, 4, 2, 3])
    assert assign_trainable(TOY_LAYOUT, RANDOM, 7, 4, 2) == tuple(
        select_trainable(TOY_LAYOUT, "random", rng, 0.4, 0.0)
    )
    assert assign_trainable(TOY_LAYOUT, PvtParams(strategy="all"), 7, 1, 0) == tuple(
        TOY_LAYOUT.variables
    )
    fixed = PvtParams(strategy="fixed", fixed=["head.*"])
    assert assign_trainable(TOY_LAYOUT, fixed, 7, 1, 0) == ("head.weight", "head.bias")
    deep = PvtParams(strategy="random", trainable_fraction=1.0, min_depth=0.5)
    assert assign_trainable(TOY_LAYOUT, deep, 7, 1, 0) == (
        "body.0.weight",
        "head.weight",
        "head.bias",
    )


def test_client_seed_and_memory_probe_rounds():
    assert client_seed(7, 2, 5) == 7 * 1_000_003 + 2 * 1009 + 5 == 7_002_044
    assert [r for r in range(1, 13) if probes_memory(r, 5)] == [1, 6, 11]
    assert all(probes_memory(r, 1) for r in range(1, 5))
    assert not any(probes_memory(r, 0) for r in range(1, 5))


def test_round_plan_combines_the_draws_in_sample_order():
    params = FinetuneParams(clients_per_round=3, pvt=RANDOM, faults=FaultParams(crash=0.5))
    plan = plan_round(CLIENTS, params, TOY_LAYOUT, 7, 1)
    assert [(a.node, a.client) for a in plan] == [(100, 0), (105, 5), (107, 7)]
    for a in plan:
        assert a == Assignment(
            100 + a.client,
            a.client,
            assign_trainable(TOY_LAYOUT, RANDOM, 7, 1, a.client),
            draw_fault(params.faults, 7, 1, a.client),
            client_seed(7, 1, a.client),
        )
    assert [a.fault for a in plan] == ["", "crash", "crash"]


def test_a_clients_assignment_does_not_depend_on_who_else_takes_part():
    params = FinetuneParams(clients_per_round=10, pvt=RANDOM, faults=FaultParams(nan=0.5))
    alone = plan_round(CLIENTS[5:6], params, TOY_LAYOUT, 7, 2)
    crowd = {a.client: a for a in plan_round(CLIENTS, params, TOY_LAYOUT, 7, 2)}
    assert alone == [crowd[5]]


@pytest.mark.parametrize("server_round", [1, 2])
def test_rounds_differ(server_round):
    params = FinetuneParams(clients_per_round=10, pvt=RANDOM)
    one = plan_round(CLIENTS, params, TOY_LAYOUT, 7, server_round)
    other = plan_round(CLIENTS, params, TOY_LAYOUT, 7, server_round + 1)
    assert [a.trainable for a in one] != [a.trainable for a in other]
    assert {a.seed for a in one}.isdisjoint({a.seed for a in other})
