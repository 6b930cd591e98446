"""The real PartialVariableStrategy and run loop against a fake Flower grid of hand-made clients.

With the server optimizer at plain averaging (sgd, lr 1, no momentum) and OMC off, each round's new
global model must be exactly, per variable, the example-weighted average of the accepted clients'
uploads, with rejected and failed clients left out and variables nobody trained unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType

from components.config import (
    FaultParams,
    FinetuneParams,
    OmcParams,
    PvtParams,
    ServerOptimizerParams,
)
from components.errors import EdgelearnError
from components.federated import protocol as P
from components.federated.compression import QuantizedTensor, dequantize, quantize
from components.federated.faults import forge_update
from components.federated.payload import decode_payload, encode_payload, float_values
from components.federated.sampling import ClientInfo, client_seed, plan_round
from components.federated.simulation import FederationOutcome, run_federation
from components.federated.strategy import (
    PartialVariableStrategy,
    arrays_to_numpy,
    numpy_to_arrays,
)
from tests.helpers.fake_grid import FakeGrid
from tests.helpers.federated import TOY_LAYOUT, toy_model

F32 = np.float32
SEED = 7
FEDAVG = ServerOptimizerParams(optimizer="sgd", lr=1.0, momentum=0.0)
PARAMS = FinetuneParams(
    rounds=2, clients_per_round=10, min_clients=2, round_timeout_s=5.0, memory_probe_every=0,
    federated_eval=False, server=FEDAVG, omc=OmcParams(enabled=False),
    pvt=PvtParams(strategy="random", trainable_fraction=0.4, min_depth=0.0),
)  # fmt: skip


class ToyClient:
    """A client speaker's node that trains nothing: it answers with hand-made values (what it
    received plus ``step``, by default ``0.25 * (client + 1)``, on the variables it was told to
    train) and keeps them. Told to commit a forged-update fault, it forges from those values.

    ``behaviour``: ``ok``, ``nan`` (a NaN in its first variable), ``raise`` (an exception in the
    ClientApp), ``silent`` (no reply: a timeout); ``fail_query`` / ``fail_eval`` raise there.
    """

    def __init__(self, client: int, num_train: int, behaviour: str = "ok", num_test: int = 4,
                 correct: int = 0, step: float | None = None) -> None:  # fmt: skip
        self.client, self.num_train, self.num_test = client, num_train, num_test
        self.behaviour, self.correct = behaviour, correct
        self.step = 0.25 * (client + 1) if step is None else step
        self.received: list[dict[str, np.ndarray]] = []  # the model of every train message
        self.uploads: list[dict[str, np.ndarray]] = []
        self.evaluated: list[dict[str, np.ndarray]] = []

    def __call__(self, msg: Message) -> Message | None:
        kind = msg.metadata.message_type
        if kind == MessageType.QUERY:
            if self.behaviour == "fail_query":
                raise RuntimeError("no such partition")
            counts = {"client": self.client, "num-train": self.num_train,
                      "num-test": self.num_test}  # fmt: skip
            return reply_to(msg, RecordDict({P.METRICS: MetricRecord(counts)}))
        if kind == MessageType.EVALUATE:
            self.evaluated.append(model_of(msg))
            if self.behaviour == "fail_eval":
                raise RuntimeError("out of memory")
            metrics = {"num-examples": self.num_test, "correct": self.correct}
            return reply_to(msg, RecordDict({P.METRICS: MetricRecord(metrics)}))
        assert kind == MessageType.TRAIN
        state = model_of(msg)
        self.received.append(state)
        if self.behaviour == "raise":
            raise RuntimeError("battery died")
        if self.behaviour == "silent":
            return None
        names = trainable_of(msg)
        values = {n: state[n] + F32(self.step) for n in names}
        if self.behaviour == "nan":
            values[names[0]].flat[0] = np.nan
        cfg = P.config_of(msg.content)
        if cfg["fault"] in P.FORGED:
            values = forge_update(str(cfg["fault"]), state, values, P.as_int(cfg["seed"]))
        self.uploads.append(values)
        arrays, layout = encode_payload({n: torch.from_numpy(v) for n, v in values.items()},
                                        TOY_LAYOUT)  # fmt: skip
        metrics = MetricRecord({"client": self.client, "num-examples": self.num_train,
                                "loss-first": 2.0, "loss-last": float(self.client)})  # fmt: skip
        return reply_to(msg, RecordDict({P.UPDATE: arrays, P.LAYOUT: layout, P.METRICS: metrics}))


def reply_to(msg: Message, content: RecordDict) -> Message:
    return Message(content, reply_to=msg)


def model_of(msg: Message) -> dict[str, np.ndarray]:
    """The model a client holds after decoding a train or evaluate message."""
    c = msg.content
    return float_values(
        decode_payload(P.arrays_of(c, P.MODEL), P.config_of(c, P.LAYOUT), TOY_LAYOUT)
    )


def trainable_of(msg: Message) -> list[str]:
    return [TOY_LAYOUT.names[i] for i in P.as_ints(P.config_of(msg.content)["trainable"])]


def weighted_average(pairs: list[tuple[int, np.ndarray]]) -> np.ndarray:
    total = sum(w * v.astype(np.float64) for w, v in pairs)
    return (total / sum(w for w, _ in pairs)).astype(F32)


def federation(
    clients: dict[int, ToyClient], params: FinetuneParams = PARAMS, learner: Any = None
):  # fmt: skip
    """Run ``run_federation`` over the fake grid; the models after each round, as evaluated."""
    grid = FakeGrid(dict(clients))
    strategy = PartialVariableStrategy(params, {"toy": True}, TOY_LAYOUT, SEED, learner)
    initial = numpy_to_arrays(toy_model())
    models: dict[int, dict[str, np.ndarray]] = {}

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> None:
        models[server_round] = arrays_to_numpy(arrays)

    outcome = run_federation(grid, strategy, initial, params, len(clients), evaluate_fn,
                             FederationOutcome())  # fmt: skip
    return grid, strategy, outcome, models


def mixed_clients() -> dict[int, ToyClient]:
    """Nodes numbered against the client order; three good clients, one of each fault, and one
    without training clips."""
    spec = [(10, "ok"), (30, "ok"), (20, "ok"), (10, "nan"), (10, "raise"), (10, "silent"),
            (0, "ok")]  # fmt: skip
    return {40 - c: ToyClient(c, n, b) for c, (n, b) in enumerate(spec)}


def test_new_global_model_is_the_weighted_average_of_the_accepted_updates():
    clients = mixed_clients()
    _grid, strategy, outcome, models = federation(clients)
    by_id = {c.client: c for c in clients.values()}
    assert outcome.clients == [ClientInfo(40 - c, c, by_id[c].num_train, 4) for c in range(7)]
    expected = toy_model()
    shared: dict[int, int] = {}  # per round, the most accepted clients one variable had
    kept: set[tuple[int, str]] = set()  # (round, variable) trained by no accepted client
    assert set(models) == {0, 1, 2}
    for name, value in expected.items():
        np.testing.assert_array_equal(models[0][name], value)
    for r in (1, 2):
        for c in range(6):
            assert by_id[c].received[r - 1].keys() == expected.keys()
            for name, value in expected.items():  # every client got the current global model
                np.testing.assert_array_equal(by_id[c].received[r - 1][name], value)
        good = [by_id[c] for c in (0, 1, 2)]
        new = dict(expected)
        for name in TOY_LAYOUT.variables:
            pairs = [(c.num_train, c.uploads[r - 1][name]) for c in good
                     if name in c.uploads[r - 1]]  # fmt: skip
            shared[r] = max(shared.get(r, 0), len(pairs))
            if pairs:
                new[name] = weighted_average(pairs)
            else:
                kept.add((r, name))
        for name, value in new.items():
            np.testing.assert_array_equal(models[r][name], value, err_msg=f"round {r} {name}")
        report = strategy.reports[r]
        assert (report.sampled, report.accepted, report.rejected, report.failed) == (6, 3, 1, 2)
        assert not report.skipped
        assert report.trained_variables == len(set().union(*(c.uploads[r - 1] for c in good)))
        assert report.train_loss == 1.0  # mean of the good clients' loss-last: 0, 1, 2
        assert len(report.bytes_down) == 6 and len(report.bytes_up) == 4
        nan_var = next(iter(by_id[3].uploads[r - 1]))
        assert report.reasons == [f"client 3: rejected, non-finite values in {nan_var}",
                                  "client 4: <class 'RuntimeError'>:<'battery died'>",
                                  "client 5: no reply within 5.0 s"]  # fmt: skip
        expected = new
    for name, value in expected.items():
        np.testing.assert_array_equal(arrays_to_numpy(outcome.final)[name], value)
    assert by_id[6].received == []  # no training clips: never sampled
    # the draws (seed 7) make the test bite: variables averaged over two clients of different
    # weights, and one trained only by the rejected and failed clients in round 2
    assert shared == {1: 2, 2: 2}
    assert kept == {(2, "body.0.weight")}


def test_forged_updates_meet_the_cohort_check_and_those_accepted_are_counted():
    """Every client trains every variable, honest steps 0.25-0.30; seed 7 draws, per round,
    random, sign_flip and scaled, then scaled and two random. Only the scaled updates stand
    out by their norm: they are rejected, the others reach the model and are counted."""
    rates = FaultParams(sign_flip=0.25, scaled=0.25, random=0.25)
    params = PARAMS.model_copy(update={"pvt": PvtParams(strategy="all"), "faults": rates})
    clients = {10 + c: ToyClient(c, 10 + 5 * c, step=0.25 + 0.01 * c) for c in range(6)}
    _, strategy, outcome, models = federation(clients, params)
    expected, drawn = toy_model(), set()
    for r in (1, 2):
        faults = {a.client: a.fault for a in plan_round(strategy.clients, params, TOY_LAYOUT,
                                                        SEED, r)}  # fmt: skip
        drawn |= set(faults.values())
        kept = [c for c in clients.values() if faults[c.client] != P.SCALED]
        new = {n: weighted_average([(c.num_train, c.uploads[r - 1][n]) for c in kept])
               for n in TOY_LAYOUT.variables}  # fmt: skip
        for name in TOY_LAYOUT.variables:
            np.testing.assert_array_equal(models[r][name], new[name], err_msg=f"{r} {name}")
        report = strategy.reports[r]
        scaled = sorted(c for c, f in faults.items() if f == P.SCALED)
        assert (report.accepted, report.rejected, report.outliers) == (5, 1, 1) and len(scaled) == 1
        assert report.reasons[0].startswith(f"client {scaled[0]}: rejected, norm outlier on ")
        assert report.judged == 6 and report.honest_rejected == 0
        reached: dict[str, int] = {}
        for f in faults.values():
            if f and f != P.SCALED:
                reached[f] = reached.get(f, 0) + 1
        assert report.reached == reached
        expected = {**expected, **new}
    assert drawn == {"", *P.FORGED}
    for name, value in expected.items():
        np.testing.assert_array_equal(arrays_to_numpy(outcome.final)[name], value)


def test_train_messages_carry_the_plan():
    clients = mixed_clients()
    grid, strategy, _, _ = federation(clients)
    train = grid.sent_of_type(MessageType.TRAIN)
    assert len(train) == 12
    for r, sent in ((1, train[:6]), (2, train[6:])):
        plan = plan_round(strategy.clients, PARAMS, TOY_LAYOUT, SEED, r)
        assert [m.metadata.dst_node_id for m in sent] == [a.node for a in plan]
        for msg, a in zip(sent, plan, strict=True):
            cfg = P.config_of(msg.content)
            assert trainable_of(msg) == list(a.trainable) and len(a.trainable) == 2
            assert (cfg["seed"], cfg["fault"], cfg["measure-memory"]) == (
                client_seed(SEED, r, a.client), "", False)  # fmt: skip
            assert (cfg["local-steps"], cfg["batch-size"], cfg["lr"]) == (10, 16, 0.05)
            assert cfg["fault-sleep-s"] == 7.0 and cfg["arch"] == '{"toy": true}'


def test_sampling_is_seeded_and_repeats():
    params = PARAMS.model_copy(update={"clients_per_round": 2, "rounds": 3})
    runs = []
    for _ in range(2):
        clients = {10 + c: ToyClient(c, 10) for c in range(5)}
        grid, strategy, _, models = federation(clients, params)
        sent = grid.sent_of_type(MessageType.TRAIN)
        assert len(sent) == 6
        for r in (1, 2, 3):
            plan = plan_round(strategy.clients, params, TOY_LAYOUT, SEED, r)
            assert [m.metadata.dst_node_id for m in sent[2 * r - 2 : 2 * r]] == [
                a.node for a in plan
            ]
        runs.append(([(m.metadata.dst_node_id, trainable_of(m)) for m in sent], models[3]))
    assert runs[0][0] == runs[1][0]
    for name in TOY_LAYOUT.names:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])


def test_a_round_with_too_few_accepted_updates_keeps_the_model():
    clients = mixed_clients()
    params = PARAMS.model_copy(update={"min_clients": 4})
    _, strategy, outcome, models = federation(clients, params)
    initial = toy_model()
    for r in (1, 2):
        assert strategy.reports[r].skipped and strategy.reports[r].accepted == 3
        assert strategy.reports[r].trained_variables == 0
        for name, value in initial.items():
            np.testing.assert_array_equal(models[r][name], value)
            np.testing.assert_array_equal(clients[40].received[r - 1][name], value)
    for name, value in initial.items():
        np.testing.assert_array_equal(arrays_to_numpy(outcome.final)[name], value)


class MarkingLearner:
    """Server learning as the strategy sees it: adds ``100 * round`` to every entry it is given
    and records the rounds and the states it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, np.ndarray]]] = []

    def step(self, state: dict[str, np.ndarray], server_round: int) -> dict[str, np.ndarray]:
        self.calls.append((server_round, {n: v.copy() for n, v in state.items()}))
        return {n: v + F32(100 * server_round) for n, v in state.items()}


def test_server_learning_steps_the_aggregated_model_of_every_counted_round():
    """The learner gets exactly the aggregated model (what the round would have ended with) and
    its result is the new global model, the one the next round's clients receive."""
    clients = mixed_clients()
    _, plain_strategy, _, plain = federation(mixed_clients())
    learner = MarkingLearner()
    _, strategy, outcome, models = federation(clients, learner=learner)
    assert [r for r, _ in learner.calls] == [1, 2]
    # round 1 starts from the same model as without the learner: the aggregate is the same
    for name in TOY_LAYOUT.names:
        np.testing.assert_array_equal(learner.calls[0][1][name], plain[1][name])
        np.testing.assert_array_equal(models[1][name], plain[1][name] + F32(100))
        np.testing.assert_array_equal(clients[40].received[1][name], models[1][name])
    # round 2 aggregates updates made from the learner's model, then the learner steps that
    by_id = {c.client: c for c in clients.values()}
    good = [by_id[c] for c in (0, 1, 2)]
    for name in TOY_LAYOUT.variables:
        pairs = [(c.num_train, c.uploads[1][name]) for c in good if name in c.uploads[1]]
        aggregated = weighted_average(pairs) if pairs else models[1][name]
        np.testing.assert_array_equal(learner.calls[1][1][name], aggregated)
        np.testing.assert_array_equal(models[2][name], aggregated + F32(200))
    np.testing.assert_array_equal(arrays_to_numpy(outcome.final)["head.bias"],
                                  models[2]["head.bias"])  # fmt: skip
    assert plain_strategy.reports[1].accepted == strategy.reports[1].accepted == 3


def test_server_learning_skips_a_skipped_round():
    learner = MarkingLearner()
    params = PARAMS.model_copy(update={"min_clients": 4})
    _, _, outcome, _ = federation(mixed_clients(), params, learner)
    assert learner.calls == []
    for name, value in toy_model().items():
        np.testing.assert_array_equal(arrays_to_numpy(outcome.final)[name], value)


def test_round_metrics_reported_to_flower():
    clients = mixed_clients()
    grid = FakeGrid(dict(clients))
    strategy = PartialVariableStrategy(PARAMS, {}, TOY_LAYOUT, SEED)
    strategy.register(grid, len(clients), 1.0)
    result = strategy.start(grid, numpy_to_arrays(toy_model()), num_rounds=1, timeout=5.0)
    assert dict(result.train_metrics_clientapp[1]) == {"accepted": 3, "failed": 2, "rejected": 1,
                                                       "outliers": 0}  # fmt: skip
    assert len(result.arrays) == len(TOY_LAYOUT.names)


def test_omc_clients_start_from_the_compressed_download():
    params = PARAMS.model_copy(
        update={"rounds": 1, "omc": OmcParams(enabled=True, bits=3, transform="minmax")}
    )
    clients = {10 + c: ToyClient(c, 10 * (c + 1)) for c in range(3)}
    grid, strategy, _outcome, models = federation(clients, params)
    assert strategy.compressed == {"stem.weight", "body.0.weight", "head.weight"}
    msg = grid.sent_of_type(MessageType.TRAIN)[0]
    c = msg.content
    wire = decode_payload(P.arrays_of(c, P.MODEL), P.config_of(c, P.LAYOUT), TOY_LAYOUT)
    assert {n for n, v in wire.items() if isinstance(v, QuantizedTensor)} == strategy.compressed
    current, sent = toy_model(), clients[10].received[0]
    for name in TOY_LAYOUT.names:
        start = current[name]
        if name in strategy.compressed:  # 3-bit codes, rounded to nearest
            start = dequantize(quantize(torch.from_numpy(start), 3, "minmax")).numpy()
        np.testing.assert_array_equal(sent[name], start)
    assert not np.array_equal(sent["head.weight"], current["head.weight"])
    for name in TOY_LAYOUT.variables:
        pairs = [(k.num_train, k.uploads[0][name]) for k in clients.values()
                 if name in k.uploads[0]]  # fmt: skip
        if not pairs:
            np.testing.assert_array_equal(models[1][name], current[name])
            continue
        # FedAvg on the pseudo-gradient: current + (average - sent), no quantization error kept
        delta = (weighted_average(pairs) - sent[name]).astype(np.float64)
        np.testing.assert_array_equal(models[1][name], (current[name] + delta).astype(F32))


def test_registration_and_federated_evaluation():
    clients = {
        10: ToyClient(0, 10, num_test=5, correct=3),
        11: ToyClient(1, 10, num_test=0, correct=0),  # no test clips: not asked
        12: ToyClient(2, 10, "fail_eval", num_test=6, correct=6),  # reports nothing
        13: ToyClient(3, 10, "fail_query"),  # never registers, never sampled
        14: ToyClient(4, 10, num_test=7, correct=1),
    }
    params = PARAMS.model_copy(update={"rounds": 1, "federated_eval": True})
    _grid, _strategy, outcome, models = federation(clients, params)
    assert [c.client for c in outcome.clients] == [0, 1, 2, 4]
    assert outcome.federated_before == outcome.federated_after == (4, 12, 2)
    assert [len(clients[n].evaluated) for n in (10, 11, 12, 13, 14)] == [2, 0, 2, 0, 2]
    for name, value in toy_model().items():
        np.testing.assert_array_equal(clients[10].evaluated[0][name], value)
        np.testing.assert_array_equal(clients[10].evaluated[1][name], models[1][name])
    assert clients[13].received == []


def test_too_few_clients_with_training_clips_stop_before_any_round():
    clients = {10: ToyClient(0, 10), 11: ToyClient(1, 0)}
    with pytest.raises(EdgelearnError, match=r"1 clients with training clips registered, "
                       r"fewer than finetune\.min_clients=2"):  # fmt: skip
        federation(clients)
