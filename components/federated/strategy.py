"""The server's Flower strategy: per-client PVT assignments, OMC downloads, screening, partial
aggregation with a server optimizer. Flower's built-in strategies average whole ArrayRecords and
abort when clients return different sets of arrays, so PVT needs its own.

One round: sample ``clients_per_round`` registered clients (seeded by round, by client id, so runs
repeat); give each its trainable variables (``variables.select_trainable``) and, in simulations,
maybe a fault to commit; send the full model (OMC: compressed entries as codes, rounded to nearest);
wait up to ``round_timeout_s``; count as *failed* every client that raised, timed out or never
answered, and as *rejected* every update that does not decode or fails ``validate_update``; if at
least ``min_clients`` updates are accepted, average each variable over the clients that trained it
and apply the server optimizer, else keep the global model as it was (the round is *skipped*).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from components.config import FinetuneParams
from components.federated import protocol as P
from components.federated.aggregation import (
    ServerOptimizer,
    aggregate_partial_updates,
    model_rms,
    validate_update,
)
from components.federated.compression import (
    QuantizedTensor,
    choose_compressed,
    dequantize,
    quantize,
)
from components.federated.payload import PayloadError, decode_payload, encode_payload, payload_bytes
from components.federated.variables import ModelLayout, select_trainable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientInfo:
    node: int
    client: int
    num_train: int
    num_test: int


@dataclass(frozen=True)
class Assignment:
    client: int
    trainable: tuple[str, ...]
    fault: str


@dataclass
class RoundReport:
    round: int
    sampled: int = 0
    accepted: int = 0
    failed: int = 0  # raised, timed out or never answered
    rejected: int = 0  # answered with an update that failed screening
    skipped: bool = False  # fewer than min_clients accepted: global model unchanged
    bytes_down: list[int] = field(default_factory=list)  # per sampled client
    bytes_up: list[int] = field(default_factory=list)  # per reply that carried an update
    memory: list[dict[str, float]] = field(default_factory=list)  # per accepted client
    trained_variables: int = 0  # variables the aggregate changed
    train_loss: float = float("nan")  # mean last local loss of the accepted clients
    injected: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0


def arrays_to_numpy(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: arrays[name].numpy() for name in arrays}


def numpy_to_arrays(values: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(v)) for name, v in values.items()})


class PartialVariableStrategy(Strategy):
    """PVT + OMC federated averaging over the clients registered with ``register``."""

    def __init__(
        self, params: FinetuneParams, arch: dict[str, Any], layout: ModelLayout, seed: int
    ):
        self.p, self.layout, self.seed = params, layout, seed
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
    def register(self, grid: Grid, expected: int, timeout: float) -> list[ClientInfo]:
        """Ask every connected node which client it is and how many clips it holds."""
        deadline = time.monotonic() + timeout
        while len(list(grid.get_node_ids())) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        nodes = sorted(grid.get_node_ids())
        messages = [
            Message(
                RecordDict({P.CONFIG: ConfigRecord()}),
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
        """(correct, clips, clients reporting) over every registered client's test clips."""
        model, layout = encode_payload(self.download(arrays_to_numpy(arrays)), self.layout)
        config = ConfigRecord({"arch": self.arch})
        messages = [
            Message(RecordDict({P.MODEL: model, P.LAYOUT: layout, P.CONFIG: config}),
                    dst_node_id=c.node, message_type=MessageType.EVALUATE)
            for c in self.clients if c.num_test > 0
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
    def _sample(self, server_round: int) -> list[ClientInfo]:
        eligible = [c for c in self.clients if c.num_train > 0]
        k = min(self.p.clients_per_round, len(eligible))
        rng = np.random.default_rng([self.seed, server_round, 1])
        picks = sorted(rng.choice(len(eligible), size=k, replace=False).tolist())
        return [eligible[i] for i in picks]

    def _fault(self, server_round: int, client: int) -> str:
        u = np.random.default_rng([self.seed, server_round, client, 2]).random()
        edge = 0.0
        for kind in P.FAULTS:
            edge += getattr(self.p.faults, kind)
            if u < edge:
                return kind
        return ""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._started = time.perf_counter()
        self._current = arrays_to_numpy(arrays)
        download = self.download(self._current)
        self._sent = {
            n: (dequantize(v) if isinstance(v, QuantizedTensor) else v).numpy()
            for n, v in download.items()
        }
        self._scale = model_rms(self._sent, self.layout.variables)
        model, layout = encode_payload(download, self.layout)
        report = self.reports[server_round] = RoundReport(server_round)
        probe = self.p.memory_probe_every
        measure = probe > 0 and (server_round - 1) % probe == 0
        pvt, names = self.p.pvt, self.layout.names
        self._assigned = {}
        messages = []
        for info in self._sample(server_round):
            rng = np.random.default_rng([self.seed, server_round, info.client, 3])
            trainable = select_trainable(
                self.layout,
                pvt.strategy,
                rng,
                pvt.trainable_fraction,
                pvt.min_depth,
                tuple(pvt.fixed),
                pvt.budget,
            )
            fault = self._fault(server_round, info.client)
            client_seed = self.seed * 1_000_003 + server_round * 1009 + info.client
            if fault:
                report.injected[fault] = report.injected.get(fault, 0) + 1
            cfg = ConfigRecord(
                {"arch": self.arch, "trainable": [names.index(v) for v in trainable],
                 "local-steps": self.p.local_steps, "batch-size": self.p.batch_size,
                 "lr": self.p.client_lr, "seed": client_seed,
                 "stochastic-rounding": self.p.omc.stochastic_rounding,
                 "transform": self.p.omc.transform, "measure-memory": measure, "fault": fault,
                 "fault-sleep-s": self.p.round_timeout_s + 2.0}
            )  # fmt: skip
            content = RecordDict({P.MODEL: model, P.LAYOUT: layout, P.CONFIG: cfg})
            report.bytes_down.append(payload_bytes(content))
            messages.append(Message(content, dst_node_id=info.node, message_type=MessageType.TRAIN))
            self._assigned[info.node] = Assignment(info.client, tuple(trainable), fault)
        report.sampled = len(messages)
        return messages

    def _screen(
        self, reply: Message, assignment: Assignment
    ) -> tuple[dict[str, np.ndarray], int, Any]:
        """Decode and check one update; raises ``PayloadError`` with the reason to reject it."""
        try:
            content = reply.content
            values = decode_payload(
                P.arrays_of(content, P.UPDATE), P.config_of(content, P.LAYOUT), self.layout
            )
            metrics = P.metrics_of(content)
            examples = P.as_int(metrics["num-examples"])
        except (KeyError, TypeError) as err:
            raise PayloadError(f"malformed reply: {err}") from None
        arrays = {
            n: (dequantize(v) if isinstance(v, QuantizedTensor) else v).numpy()
            for n, v in values.items()
        }
        if examples <= 0:
            raise PayloadError(f"non-positive example count {examples}")
        reason = validate_update(
            arrays, assignment.trainable, self._sent, self.p.max_update_norm, self._scale
        )
        if reason:
            raise PayloadError(reason)
        return arrays, examples, metrics

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        report = self.reports[server_round]
        received = {
            r.metadata.src_node_id: r for r in replies if r.metadata.src_node_id in self._assigned
        }
        updates, losses = [], []
        for node in sorted(self._assigned, key=lambda n: self._assigned[n].client):
            a = self._assigned[node]
            reply = received.get(node)
            if reply is None:
                report.failed += 1
                report.reasons.append(
                    f"client {a.client}: no reply within {self.p.round_timeout_s} s"
                )
                continue
            if reply.has_error():
                report.failed += 1
                report.reasons.append(f"client {a.client}: {_short(reply.error.reason or '')}")
                continue
            report.bytes_up.append(payload_bytes(reply.content))
            try:
                arrays, examples, metrics = self._screen(reply, a)
            except PayloadError as err:
                report.rejected += 1
                report.reasons.append(f"client {a.client}: rejected, {err}")
                continue
            updates.append((float(examples), arrays))
            losses.append(P.as_float(metrics["loss-last"]))
            report.memory.append(
                {k: P.as_float(v) for k, v in metrics.items() if k.endswith("_bytes")}
            )
        report.accepted = len(updates)
        report.train_loss = float(np.mean(losses)) if losses else float("nan")
        new = None
        if report.accepted < max(1, self.p.min_clients):
            report.skipped = True
            log.warning("round %d: %d updates accepted (< %d): model unchanged",
                        server_round, report.accepted, self.p.min_clients)  # fmt: skip
        else:
            averaged = aggregate_partial_updates(updates)
            deltas = {n: v - self._sent[n] for n, v in averaged.items()}
            stepped = self.optimizer.step(self._current, deltas)
            report.trained_variables = len(stepped)
            new = numpy_to_arrays({n: stepped.get(n, v) for n, v in self._current.items()})
        report.seconds = time.perf_counter() - self._started
        summary = MetricRecord(
            {"accepted": report.accepted, "failed": report.failed, "rejected": report.rejected}
        )
        return new, summary

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


def _short(reason: str) -> str:
    """The last line of a client's error (Flower wraps the exception in Ray's traceback text)."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else reason)[:200]
