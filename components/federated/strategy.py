"""The server's Flower strategy: the thin wiring of sampling, screening and rounds into Flower.

Flower's built-in strategies average whole ArrayRecords and abort when clients return different
sets of arrays, so PVT needs its own. One round: ``sampling.plan_round`` picks the clients and
what each trains (and, in simulations, which fault it commits); ``configure_train`` sends each the
full model (OMC: compressed entries as codes, rounded to nearest); Flower waits up to
``round_timeout_s``; ``aggregate_train`` screens every sampled client's reply
(``screening.screen_reply``: accepted, failed or rejected), and ``rounds.close_round`` judges the
accepted ones against each other (``cohort.screen_cohort``, ``finetune.screening``), averages the
rest per variable and applies the server optimizer, or skips the round when fewer than
``min_clients`` were accepted; with server learning (``finetune.server_learning``) the server
then takes its own steps on its data (``server_learning``). Every round's ``RoundReport`` stays in
``reports``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from components.config import FinetuneParams
from components.federated import protocol as P
from components.federated.aggregation import ServerOptimizer, model_rms
from components.federated.compression import QuantizedTensor, choose_compressed, quantize
from components.federated.payload import encode_payload, float_values, payload_bytes
from components.federated.rounds import RoundReport, close_round
from components.federated.sampling import (
    Assignment,
    ClientInfo,
    plan_round,
    probes_memory,
    sample_evaluators,
)
from components.federated.screening import screen_reply
from components.federated.server_learning import ServerLearner
from components.federated.variables import ModelLayout

log = logging.getLogger(__name__)


def arrays_to_numpy(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    """The global model as Flower's round loop carries it (one ``Array`` per entry), as numpy."""
    return {name: arrays[name].numpy() for name in arrays}


def numpy_to_arrays(values: dict[str, np.ndarray]) -> ArrayRecord:
    """Inverse of ``arrays_to_numpy``."""
    return ArrayRecord({name: Array(np.ascontiguousarray(v)) for name, v in values.items()})


class PartialVariableStrategy(Strategy):
    """PVT + OMC federated averaging over the clients registered with ``register``."""

    def __init__(
        self, params: FinetuneParams, arch: dict[str, Any], layout: ModelLayout, seed: int,
        server_learner: ServerLearner | None = None, roster: Sequence[ClientInfo] | None = None,
    ):  # fmt: skip
        self.p, self.layout, self.seed = params, layout, seed
        self.server_learner = server_learner
        # A simulated population the server knows from the data (``roster``, node -1): then the
        # nodes are slots that play the devices of each round in turn, named in every message.
        self.roster = None if roster is None else list(roster)
        self.slots: list[int] = []
        self.arch = json.dumps(arch, sort_keys=True)
        shapes = {e.name: e.shape for e in layout.entries if e.trainable}
        omc = params.omc
        self.compressed = (
            choose_compressed(shapes, omc.weight_fraction) if omc.enabled else frozenset()
        )
        sp = params.server
        self.optimizer = ServerOptimizer(sp.optimizer, sp.lr, sp.momentum, tau=sp.tau)
        self.clients: list[ClientInfo] = []
        self.reports: dict[int, RoundReport] = {}
        self._assigned: dict[int, Assignment] = {}
        self._sent: dict[str, np.ndarray] = {}
        self._scale = 1.0
        self._current: dict[str, np.ndarray] = {}
        self._started = 0.0

    # --- registration and evaluation (outside the training rounds) ------------------------
    def pool_config(self, client: int | None = None) -> dict[str, Any]:
        """What every message tells a node about the population: how the client speakers' clips
        are dealt to devices (``data.device_rows``), so that its partition id names a device;
        to a slot node (``roster``), also which device it plays for this message."""
        config: dict[str, Any] = {"population": self.p.population, "pool-seed": self.seed}
        if self.slots and client is not None:
            config["device"] = client
        return config

    def _placed(self, clients: list[Any]) -> list[Any]:
        """ClientInfo/Assignment with their nodes: their own, or the slots in turn."""
        if not self.slots:
            return clients
        return [replace(c, node=self.slots[i % len(self.slots)]) for i, c in enumerate(clients)]

    def register(self, grid: Grid, expected: int, timeout: float) -> list[ClientInfo]:
        """Ask every connected node which client it is and how many clips it holds; with a
        ``roster``, wait for the ``expected`` slot nodes and take the devices from it."""
        deadline = time.monotonic() + timeout
        while len(list(grid.get_node_ids())) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        nodes = sorted(grid.get_node_ids())
        if self.roster is not None:
            self.slots, self.clients = nodes, self.roster
            return self.clients
        messages = [
            Message(
                RecordDict({P.CONFIG: ConfigRecord(self.pool_config())}),
                dst_node_id=n,
                message_type=MessageType.QUERY,
            )
            for n in nodes
        ]
        clients = []
        for reply in grid.send_and_receive(messages, timeout=timeout):
            if reply.has_error():
                log.warning(
                    "node %s did not register: %s", reply.metadata.src_node_id, reply.error.reason
                )
                continue
            m = P.metrics_of(reply.content)
            clients.append(
                ClientInfo(
                    reply.metadata.src_node_id,
                    P.as_int(m["client"]),
                    P.as_int(m["num-train"]),
                    P.as_int(m["num-test"]),
                )
            )
        self.clients = sorted(clients, key=lambda c: c.client)
        return self.clients

    def download(self, current: dict[str, np.ndarray]) -> dict[str, torch.Tensor | QuantizedTensor]:
        """The model as sent to clients: OMC entries compressed (rounded to nearest)."""
        omc = self.p.omc
        out: dict[str, torch.Tensor | QuantizedTensor] = {}
        for name in self.layout.names:
            t = torch.from_numpy(current[name].copy())
            out[name] = quantize(t, omc.bits, omc.transform) if name in self.compressed else t
        return out

    def federated_evaluate(self, grid: Grid, arrays: ArrayRecord) -> tuple[int, int, int]:
        """(correct, clips, clients reporting) over the test clips of every registered client
        that holds some, or of a seeded sample of ``finetune.federated_eval_clients`` of them."""
        model, layout = encode_payload(self.download(arrays_to_numpy(arrays)), self.layout)
        evaluators = sample_evaluators(self.clients, self.p.federated_eval_clients, self.seed)
        messages = [
            Message(RecordDict({P.MODEL: model, P.LAYOUT: layout, P.CONFIG: ConfigRecord(
                        {"arch": self.arch, **self.pool_config(c.client)})}),
                    dst_node_id=c.node, message_type=MessageType.EVALUATE)
            for c in self._placed(evaluators)
        ]  # fmt: skip
        correct = total = reporting = 0
        for reply in grid.send_and_receive(messages, timeout=self.p.round_timeout_s):
            if not reply.has_error():
                m = P.metrics_of(reply.content)
                correct += P.as_int(m["correct"])
                total += P.as_int(m["num-examples"])
                reporting += 1
        return correct, total, reporting

    # --- training rounds -------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._started = time.perf_counter()
        self._current = arrays_to_numpy(arrays)
        download = self.download(self._current)
        self._sent = float_values(download)
        self._scale = model_rms(self._sent, self.layout.variables)
        model, layout = encode_payload(download, self.layout)
        plan = self._placed(plan_round(self.clients, self.p, self.layout, self.seed, server_round))
        report = self.reports[server_round] = RoundReport.planned(server_round, plan)
        measure = probes_memory(server_round, self.p.memory_probe_every)
        names = self.layout.names
        self._assigned = {}
        messages = []
        for a in plan:
            cfg = ConfigRecord(
                {"arch": self.arch, "trainable": [names.index(v) for v in a.trainable],
                 "local-steps": self.p.local_steps, "batch-size": self.p.batch_size,
                 "lr": self.p.client_lr, "seed": a.seed,
                 "stochastic-rounding": self.p.omc.stochastic_rounding,
                 "transform": self.p.omc.transform, "measure-memory": measure, "fault": a.fault,
                 "fault-sleep-s": self.p.round_timeout_s + 2.0, **self.pool_config(a.client)}
            )  # fmt: skip
            content = RecordDict({P.MODEL: model, P.LAYOUT: layout, P.CONFIG: cfg})
            report.bytes_down.append(payload_bytes(content))
            messages.append(Message(content, dst_node_id=a.node, message_type=MessageType.TRAIN))
            self._assigned[a.node] = a
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        report = self.reports[server_round]
        received = {
            r.metadata.src_node_id: r for r in replies if r.metadata.src_node_id in self._assigned
        }
        p = self.p
        verdicts = (
            (a.client, screen_reply(received.get(a.node), a.trainable, self.layout, self._sent,
                                    p.max_update_norm, self._scale, p.round_timeout_s))
            for a in sorted(self._assigned.values(), key=lambda a: a.client)
        )  # fmt: skip
        stepped = close_round(report, verdicts, self._current, self._sent, self.optimizer,
                              p.min_clients, p.screening)  # fmt: skip
        if stepped is not None and self.server_learner is not None:
            stepped = self.server_learner.step(stepped, server_round)
        new = None if stepped is None else numpy_to_arrays(stepped)
        report.seconds = time.perf_counter() - self._started
        return new, MetricRecord(dict(report.counts()))  # a copy typed as MetricRecord wants

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return []  # per-round accuracy is measured by the server's evaluate_fn; see simulation.py

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return None

    def summary(self) -> None:
        log.info(
            "PVT %s (fraction %.2f, min depth %.2f), OMC %s (%d bits, %d compressed variables)",
            self.p.pvt.strategy, self.p.pvt.trainable_fraction, self.p.pvt.min_depth,
            "on" if self.p.omc.enabled else "off", self.p.omc.bits, len(self.compressed),
        )  # fmt: skip
