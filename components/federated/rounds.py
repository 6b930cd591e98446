"""One training round's report, and how the round ends: the verdicts counted, the model stepped.

The updates that passed the absolute checks are judged against each other first
(``cohort.screen_cohort``); its outliers are rejected like any other update, and counted apart.
A round counts only if at least ``min_clients`` updates were accepted (and always needs one);
otherwise it is *skipped* and the global model stays as it was. A counted round averages each
variable over the accepted clients that trained it (``aggregation.aggregate_partial_updates``)
and lets the server optimizer apply ``average - sent``. In simulations the report also knows which
clients were told to commit a fault, so it counts the faulty updates that reached the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from components.config import ScreeningParams
from components.federated.aggregation import Arrays, ServerOptimizer, aggregate_partial_updates
from components.federated.cohort import screen_cohort
from components.federated.sampling import Assignment
from components.federated.screening import FAILED, REJECTED, ClientUpdate, Verdict

log = logging.getLogger(__name__)


@dataclass
class RoundReport:
    """What happened in one round, as the finetune stage logs and sums it."""

    round: int
    sampled: int = 0
    accepted: int = 0
    failed: int = 0  # raised, timed out or never answered
    rejected: int = 0  # answered with an update that failed screening (outliers included)
    outliers: int = 0  # of the rejected: by the cohort check
    judged: int = 0  # updates the cohort check could judge (a variable with a cohort)
    honest_rejected: int = 0  # rejected, though handed no fault (simulations: false rejections)
    skipped: bool = False  # fewer than min_clients accepted: global model unchanged
    bytes_down: list[int] = field(default_factory=list)  # per sampled client
    bytes_up: list[int] = field(default_factory=list)  # per reply that carried an update
    memory: list[dict[str, float]] = field(default_factory=list)  # per accepted client
    trained_variables: int = 0  # variables the aggregate changed
    train_loss: float = float("nan")  # mean last local loss of the accepted clients
    injected: dict[str, int] = field(default_factory=dict)  # faults handed out, by kind
    reached: dict[str, int] = field(default_factory=dict)  # ... and accepted into the average
    faults: dict[int, str] = field(default_factory=dict)  # client -> the fault it was handed
    reasons: list[str] = field(default_factory=list)  # "client K: ..." per failure/rejection
    seconds: float = 0.0

    @classmethod
    def planned(cls, server_round: int, plan: Iterable[Assignment]) -> RoundReport:
        """A fresh report for a round about to be sent: clients sampled, faults handed out."""
        report = cls(server_round)
        for a in plan:
            report.sampled += 1
            if a.fault:
                report.injected[a.fault] = report.injected.get(a.fault, 0) + 1
                report.faults[a.client] = a.fault
        return report

    def record(self, client: int, verdict: Verdict) -> None:
        """Count one client's verdict (its reason, its upload size, its memory probe)."""
        if verdict.bytes_up is not None:
            self.bytes_up.append(verdict.bytes_up)
        if verdict.status == FAILED:
            self.failed += 1
            self.reasons.append(f"client {client}: {verdict.reason}")
        elif verdict.status == REJECTED:
            self.rejected += 1
            self.honest_rejected += int(client not in self.faults)
            self.reasons.append(f"client {client}: rejected, {verdict.reason}")
        else:
            assert verdict.update is not None, "an accepted verdict carries its update"
            self.accepted += 1
            self.memory.append(dict(verdict.update.memory))
            fault = self.faults.get(client)
            if fault:
                self.reached[fault] = self.reached.get(fault, 0) + 1

    def counts(self) -> dict[str, int]:
        """The round's outcome in numbers (Flower logs them as the train metrics)."""
        return {"accepted": self.accepted, "failed": self.failed, "rejected": self.rejected,
                "outliers": self.outliers}  # fmt: skip


def close_round(
    report: RoundReport,
    verdicts: Iterable[tuple[int, Verdict]],
    current: Arrays,
    sent: Arrays,
    optimizer: ServerOptimizer,
    min_clients: int,
    screening: ScreeningParams | None = None,
) -> dict[str, np.ndarray] | None:
    """Record ``(client, verdict)`` pairs in ``report`` and return the new global model (every
    entry of ``current``), or None when the round is skipped.

    ``sent`` is the model the clients started from (with OMC, the dequantized download), so the
    pseudo-gradient ``average - sent`` carries no download quantization error into ``current``.
    ``screening`` None: no cohort check (``screening.cohort`` false does the same).
    """
    judged = list(verdicts)
    if screening is not None:
        cohort = screen_cohort(judged, sent, screening)
        judged, report.judged = cohort.verdicts, cohort.judged
        report.outliers = len(cohort.outliers)
    updates: list[ClientUpdate] = []
    for client, verdict in judged:
        report.record(client, verdict)
        if verdict.update is not None:
            updates.append(verdict.update)
    losses = [u.loss_last for u in updates]
    report.train_loss = float(np.mean(losses)) if losses else float("nan")
    if report.accepted < max(1, min_clients):
        report.skipped = True
        log.warning("round %d: %d updates accepted (< %d): model unchanged",
                    report.round, report.accepted, min_clients)  # fmt: skip
        return None
    averaged = aggregate_partial_updates([(float(u.examples), u.values) for u in updates])
    deltas = {n: v - sent[n] for n, v in averaged.items()}
    stepped = optimizer.step(current, deltas)
    report.trained_variables = len(stepped)
    return {n: stepped.get(n, v) for n, v in current.items()}
