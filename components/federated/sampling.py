"""Who takes part in a round and what each is told: clients sampled, PVT variables, faults, seeds.

Every draw has its own generator seeded by ``(seed, round[, client], stream)``, so a client's
variables, fault and local seed in a round do not depend on which other clients were sampled, and
a run repeats exactly. Streams: 1 = the sample, 2 = the fault, 3 = the PVT variables, 4 = the
clients of federated evaluation (round 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.config import FaultParams, FinetuneParams, PvtParams
from components.federated import protocol as P
from components.federated.variables import ModelLayout, select_trainable

SAMPLE_STREAM, FAULT_STREAM, PVT_STREAM, EVAL_STREAM = 1, 2, 3, 4


@dataclass(frozen=True)
class ClientInfo:
    """A registered client: its Flower node and how many clips it holds."""

    node: int
    client: int
    num_train: int
    num_test: int


@dataclass(frozen=True)
class Assignment:
    """What one sampled client is asked to do in a round."""

    node: int
    client: int
    trainable: tuple[str, ...]  # layout order
    fault: str  # one of ``protocol.FAULTS``, or "" (simulations only)
    seed: int  # the client's local training seed


def sample_clients(
    clients: Sequence[ClientInfo], per_round: int, seed: int, server_round: int
) -> list[ClientInfo]:
    """Up to ``per_round`` of the clients holding training clips, in the order given, drawn
    without replacement from a generator seeded by the round."""
    eligible = [c for c in clients if c.num_train > 0]
    k = min(per_round, len(eligible))
    rng = np.random.default_rng([seed, server_round, SAMPLE_STREAM])
    picks = sorted(rng.choice(len(eligible), size=k, replace=False).tolist())
    return [eligible[i] for i in picks]


def sample_evaluators(clients: Sequence[ClientInfo], k: int, seed: int) -> list[ClientInfo]:
    """The clients that evaluate a model through Flower: every one holding test clips (``k`` 0),
    or ``k`` of them drawn once per run (the same before and after training), in order."""
    eligible = [c for c in clients if c.num_test > 0]
    if k == 0 or k >= len(eligible):
        return eligible
    rng = np.random.default_rng([seed, 0, EVAL_STREAM])
    return [eligible[i] for i in sorted(rng.choice(len(eligible), size=k, replace=False).tolist())]


def draw_fault(faults: FaultParams, seed: int, server_round: int, client: int) -> str:
    """The fault a simulated client commits this round ("" for none): one uniform draw against
    the rates stacked in ``protocol.FAULTS`` order."""
    u = np.random.default_rng([seed, server_round, client, FAULT_STREAM]).random()
    edge = 0.0
    for kind in P.FAULTS:
        edge += getattr(faults, kind)
        if u < edge:
            return kind
    return ""


def assign_trainable(
    layout: ModelLayout, pvt: PvtParams, seed: int, server_round: int, client: int
) -> tuple[str, ...]:
    """The variables one client trains this round (``variables.select_trainable``)."""
    rng = np.random.default_rng([seed, server_round, client, PVT_STREAM])
    return tuple(
        select_trainable(layout, pvt.strategy, rng, pvt.trainable_fraction, pvt.min_depth,
                         tuple(pvt.fixed), pvt.budget)
    )  # fmt: skip


def client_seed(seed: int, server_round: int, client: int) -> int:
    """The seed of one client's local training in one round (batches, stochastic rounding)."""
    return seed * 1_000_003 + server_round * 1009 + client


def probes_memory(server_round: int, every: int) -> bool:
    """Whether clients profile their training memory this round: rounds 1, 1 + every, ...;
    never when ``every`` is 0."""
    return every > 0 and (server_round - 1) % every == 0


def plan_round(
    clients: Sequence[ClientInfo],
    params: FinetuneParams,
    layout: ModelLayout,
    seed: int,
    server_round: int,
) -> list[Assignment]:
    """One assignment per sampled client, in sample order."""
    return [
        Assignment(
            info.node,
            info.client,
            assign_trainable(layout, params.pvt, seed, server_round, info.client),
            draw_fault(params.faults, seed, server_round, info.client),
            client_seed(seed, server_round, info.client),
        )
        for info in sample_clients(clients, params.clients_per_round, seed, server_round)
    ]
