"""The real ClientApp called in-process (no Ray) with the messages the real strategy builds.

``ClientApp.__call__(message, context)`` routes a message by its type to our handlers, as Flower's
runtimes do; a ``Context`` with the node config ``partition-id`` is all a node needs. The replies
are then screened by the server's own ``screen_reply``, faults included.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType

from components.config import FaultParams, load_params
from components.federated import protocol as P
from components.federated.aggregation import model_rms
from components.federated.client_app import InjectedFault, make_client_app
from components.federated.compression import QuantizedTensor, dequantize, packed_length, quantize
from components.federated.data import ClientPool
from components.federated.faults import forge_update
from components.federated.payload import decode_payload, float_values
from components.federated.sampling import ClientInfo, plan_round
from components.federated.screening import ACCEPTED, REJECTED, Verdict, screen_reply
from components.federated.simulation import FederationOutcome, run_federation
from components.federated.strategy import (
    PartialVariableStrategy,
    arrays_to_numpy,
    numpy_to_arrays,
)
from components.federated.training import count_correct, materialize
from components.federated.variables import ModelLayout
from components.model.checkpoint import load_subnet_file
from tests.helpers import ROOT
from tests.helpers.fake_grid import FakeGrid
from tests.helpers.federated import write_start_model
from tests.helpers.toy_data import write_prepared

CLIENTS, SEED = 3, 7


class Federation:
    """Three real client nodes (partitions 0-2 of a tiny prepared dataset) and the server side:
    the smoke configuration with PVT on (random variables per client round) and OMC."""

    def __init__(self, prepared: Path, start: Path, nodes: int = CLIENTS, **finetune) -> None:
        self.prepared = prepared
        net, payload = load_subnet_file(start)
        self.arch, self.layout = payload["config"], ModelLayout.from_model(net)
        state = net.state_dict()
        self.initial = {n: state[n].numpy().copy() for n in self.layout.names}
        smoke = load_params(ROOT / "configs/smoke.yaml").finetune
        pvt = smoke.pvt.model_copy(update={"strategy": "random"})
        omc = smoke.omc.model_copy(update={"enabled": True})
        self.params = smoke.model_copy(update={"pvt": pvt, "omc": omc, **finetune})
        self.pool = ClientPool(self.prepared, self.params.population, SEED)
        self.app = make_client_app(str(self.prepared))
        self.contexts = {
            100 + k: Context(1, 100 + k, {"partition-id": k}, RecordDict(), {})
            for k in range(nodes)
        }
        self.grid = FakeGrid({n: self.node(n) for n in self.contexts})
        self.strategy = PartialVariableStrategy(self.params, self.arch, self.layout, SEED)

    def node(self, node: int):
        return lambda msg: self.app(msg, self.contexts[node])

    def call(self, msg: Message) -> Message:
        """The ClientApp's handling of one message, called directly."""
        return self.app(msg, self.contexts[msg.metadata.dst_node_id])

    def screen(self, reply: Message, trainable: tuple[str, ...]) -> Verdict:
        sent = float_values(self.strategy.download(self.initial))
        scale = model_rms(sent, self.layout.variables)
        return screen_reply(reply, trainable, self.layout, sent, self.params.max_update_norm,
                            scale, self.params.round_timeout_s)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("client_app")
    prepared = write_prepared(root / "prepared", clients=CLIENTS)
    return prepared, write_start_model(root / "start.pt", prepared, steps=5)


@pytest.fixture(scope="module")
def fed(built):
    fed = Federation(*built)
    fed.strategy.register(fed.grid, CLIENTS, 1.0)
    return fed


def with_config(msg: Message, **changes) -> Message:
    """The same train message with some config values changed (what a fault assignment does)."""
    c = msg.content
    cfg = ConfigRecord({**P.config_of(c), **changes})
    content = RecordDict({P.MODEL: P.arrays_of(c, P.MODEL), P.LAYOUT: P.config_of(c, P.LAYOUT),
                          P.CONFIG: cfg})  # fmt: skip
    return Message(content, dst_node_id=msg.metadata.dst_node_id, message_type=MessageType.TRAIN)


def train_messages(fed: Federation, server_round: int = 1) -> list[Message]:
    """The strategy's train messages for the start model."""
    arrays = numpy_to_arrays(fed.initial)
    return list(fed.strategy.configure_train(server_round, arrays, ConfigRecord(), fed.grid))


def test_query_reports_the_client_and_its_clip_counts(fed):
    ids = [fed.pool.client_id(k) for k in range(CLIENTS)]
    assert fed.strategy.clients == [ClientInfo(100 + k, c, *fed.pool.counts(c))
                                    for k, c in enumerate(ids)]  # fmt: skip
    assert fed.pool.counts(ids[0]) == (10, 6)


def test_train_reply_is_an_update_of_the_assigned_variables(fed):
    messages = train_messages(fed)
    plan = plan_round(fed.strategy.clients, fed.params, fed.layout, SEED, 1)
    assert len(plan) == CLIENTS
    for msg, a in zip(messages, plan, strict=True):
        reply = fed.call(msg)
        assert reply.metadata.src_node_id == a.node and not reply.has_error()
        c = reply.content
        update = decode_payload(P.arrays_of(c, P.UPDATE), P.config_of(c, P.LAYOUT), fed.layout)
        assert set(update) == set(a.trainable)  # only what it trained travels back
        compressed = {n for n, v in update.items() if isinstance(v, QuantizedTensor)}
        assert compressed == set(a.trainable) & fed.strategy.compressed  # OMC both ways
        metrics = P.metrics_of(c)
        assert (metrics["client"], metrics["num-examples"]) == (a.client, 10)
        assert {"peak_bytes", "param_bytes", "loss-first", "loss-last"} <= set(metrics)
        verdict = fed.screen(reply, a.trainable)
        assert verdict.status == ACCEPTED and verdict.update is not None
        again = P.arrays_of(fed.call(msg).content, P.UPDATE)  # seeded: the same update again
        first = P.arrays_of(c, P.UPDATE)
        assert list(again) == list(first)
        for name in first:
            np.testing.assert_array_equal(again[name].numpy(), first[name].numpy())


@pytest.mark.parametrize("server_round", [1, 2])  # the draws: weights (OMC codes), then floats
def test_injected_faults_are_caught_by_the_server(fed, server_round):
    msg = train_messages(fed, server_round)[0]
    a = plan_round(fed.strategy.clients, fed.params, fed.layout, SEED, server_round)[0]
    with pytest.raises(InjectedFault, match="injected fault: client crashed"):
        fed.call(with_config(msg, fault=P.CRASH))
    late = fed.call(with_config(msg, fault=P.TIMEOUT, **{"fault-sleep-s": 0.0}))
    assert fed.screen(late, a.trainable).status == ACCEPTED  # late, but an ordinary update
    nan = fed.screen(fed.call(with_config(msg, fault=P.NAN)), a.trainable)
    assert (nan.status, nan.reason) == (REJECTED, f"non-finite values in {sorted(a.trainable)[0]}")
    short = fed.screen(fed.call(with_config(msg, fault=P.BAD_SHAPE)), a.trainable)
    numels = {n: fed.layout.entry(n).numel for n in a.trainable}
    floats = sum(k for n, k in numels.items() if n not in fed.strategy.compressed)
    codes = sum(packed_length(k, fed.params.omc.bits) for n, k in numels.items()
                if n in fed.strategy.compressed)  # fmt: skip
    assert bool(floats) == (server_round == 2) and bool(codes) == (server_round == 1)
    reason = (f"float values: {floats - 1} numbers for entries holding {floats}" if floats
              else f"codes: {codes - 1} bytes for entries holding {codes}")  # fmt: skip
    assert (short.status, short.reason) == (REJECTED, reason)
    huge = fed.screen(fed.call(with_config(msg, fault=P.HUGE_NORM)), a.trainable)
    assert huge.status == REJECTED
    assert re.fullmatch(r"update RMS \S+ above the limit \S+", huge.reason)


@pytest.mark.parametrize("server_round", [1, 2])  # compressed weights, then floats
def test_forged_updates_are_what_the_server_receives_and_pass_the_absolute_checks(
    fed, server_round
):
    msg = train_messages(fed, server_round)[0]
    a = plan_round(fed.strategy.clients, fed.params, fed.layout, SEED, server_round)[0]
    sent = float_values(fed.strategy.download(fed.initial))
    honest = fed.screen(fed.call(msg), a.trainable).update
    assert honest is not None
    seed, omc = P.as_int(P.config_of(msg.content)["seed"]), fed.params.omc
    for kind in P.FORGED:
        verdict = fed.screen(fed.call(with_config(msg, fault=kind)), a.trainable)
        # one update alone: shapes, values and norm all plausible (even 20x an honest step)
        assert verdict.status == ACCEPTED and verdict.update is not None, kind
        forged = forge_update(kind, sent, honest.values, seed)
        for name in a.trainable:
            expected = forged[name]
            if name in fed.strategy.compressed:  # compressed again, as an honest upload is
                qt = quantize(torch.from_numpy(expected), omc.bits, omc.transform)
                expected = dequantize(qt).numpy()
            np.testing.assert_array_equal(verdict.update.values[name], expected, err_msg=kind)


def test_evaluate_counts_the_clients_correct_test_clips(fed):
    correct, clips, reporting = fed.strategy.federated_evaluate(
        fed.grid, numpy_to_arrays(fed.initial)
    )
    net = materialize(fed.arch, fed.strategy.download(fed.initial))  # what a client holds
    expected = 0
    for info in fed.strategy.clients:
        x, y = fed.pool.clips(info.client, "test")
        expected += count_correct(net, x, y)
    assert (correct, clips, reporting) == (expected, 6 * CLIENTS, CLIENTS)


def test_an_in_process_federation_counts_its_faults(built):
    """Three rounds through ``run_federation`` with the real ClientApp; with seed 7 the fault
    draws are, per round (clients 0, 1, 2): (huge_norm, -, -), (nan, huge_norm, huge_norm),
    (huge_norm, crash, crash), so only round 1 counts."""
    faults = FaultParams(crash=0.2, nan=0.2, bad_shape=0.2, huge_norm=0.2)
    fed = Federation(*built, rounds=3, clients_per_round=CLIENTS, min_clients=1,
                     memory_probe_every=0, federated_eval=False, faults=faults)  # fmt: skip
    outcome = run_federation(fed.grid, fed.strategy, numpy_to_arrays(fed.initial), fed.params,
                             CLIENTS, None, FederationOutcome())  # fmt: skip
    reports = [fed.strategy.reports[r] for r in (1, 2, 3)]
    assert [(r.accepted, r.rejected, r.failed, r.skipped) for r in reports] == [
        (2, 1, 0, False), (0, 3, 0, True), (0, 1, 2, True)]  # fmt: skip
    assert [r.injected for r in reports] == [{"huge_norm": 1}, {"nan": 1, "huge_norm": 2},
                                             {"huge_norm": 1, "crash": 2}]  # fmt: skip
    crash = (
        "<class 'components.federated.client_app.InjectedFault'>:<'injected fault: client crashed'>"
    )
    assert reports[2].reasons[1:] == [f"client 1: {crash}", f"client 2: {crash}"]
    final = arrays_to_numpy(outcome.final)
    changed = {n for n in fed.layout.names if not np.array_equal(final[n], fed.initial[n])}
    round_one = plan_round(fed.strategy.clients, fed.params, fed.layout, SEED, 1)
    assert changed == {n for a in round_one if not a.fault for n in a.trainable}
    assert all(np.isfinite(v).all() for v in final.values())
