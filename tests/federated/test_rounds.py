"""How a round ends: verdicts counted into the report, the model averaged, or the round skipped."""

import math

import numpy as np

from components.federated.aggregation import ServerOptimizer
from components.federated.rounds import RoundReport, close_round
from components.federated.sampling import Assignment
from components.federated.screening import ACCEPTED, FAILED, REJECTED, ClientUpdate, Verdict

F32 = np.float32
CURRENT = {"w": np.array([1.0, 2.0], F32), "b": np.array([0.5], F32), "h": np.array([7.0], F32)}


def accepted(examples: int, loss: float, size: int = 100, **values) -> Verdict:
    update = ClientUpdate(examples, {n: np.array(v, F32) for n, v in values.items()}, loss,
                          {"peak_bytes": 1000.0 * examples})  # fmt: skip
    return Verdict(ACCEPTED, "", size, update)


def fedavg() -> ServerOptimizer:
    return ServerOptimizer("sgd", lr=1.0, momentum=0.0)


def test_planned_report_counts_the_sample_and_the_faults_handed_out():
    plan = [Assignment(10 + c, c, ("w",), fault, 0) for c, fault in
            enumerate(["", "nan", "crash", "nan", ""])]  # fmt: skip
    report = RoundReport.planned(3, plan)
    assert (report.round, report.sampled, report.injected) == (3, 5, {"nan": 2, "crash": 1})
    assert (report.accepted, report.failed, report.rejected, report.skipped) == (0, 0, 0, False)


def test_record_counts_each_verdict_with_its_reason_size_and_memory():
    report = RoundReport(1)
    report.record(4, Verdict(FAILED, "no reply within 8.0 s"))
    report.record(2, Verdict(REJECTED, "non-finite values in w", 120))
    report.record(7, accepted(3, 0.5, size=90, w=[1.0, 1.0]))
    assert report.counts() == {"accepted": 1, "failed": 1, "rejected": 1}
    assert report.reasons == ["client 4: no reply within 8.0 s",
                              "client 2: rejected, non-finite values in w"]  # fmt: skip
    assert report.bytes_up == [120, 90]  # every reply that carried an update, screened or not
    assert report.memory == [{"peak_bytes": 3000.0}]  # accepted clients only


def test_counted_round_is_the_example_weighted_average_per_variable():
    verdicts = [
        (0, accepted(1, 0.25, w=[3.0, 6.0], b=[1.5])),
        (1, Verdict(REJECTED, "update RMS 1e+04 above the limit 20", 80)),
        (2, accepted(3, 1.0, w=[7.0, 2.0])),
        (3, Verdict(FAILED, "battery died")),
    ]
    report = RoundReport(2, sampled=4)
    new = close_round(report, verdicts, CURRENT, CURRENT, fedavg(), min_clients=2)
    assert new is not None and set(new) == {"w", "b", "h"}
    assert new["w"].tolist() == [6.0, 3.0]  # (1*[3, 6] + 3*[7, 2]) / 4
    assert new["b"].tolist() == [1.5]  # only client 0 trained it
    assert new["h"] is CURRENT["h"]  # nobody trained it: the very same array
    assert CURRENT["w"].tolist() == [1.0, 2.0]  # the input is not modified
    assert (report.accepted, report.rejected, report.failed, report.skipped) == (2, 1, 1, False)
    assert report.trained_variables == 2
    assert report.train_loss == 0.625  # mean last loss of the accepted clients
    assert report.reasons == ["client 1: rejected, update RMS 1e+04 above the limit 20",
                              "client 3: battery died"]  # fmt: skip


def test_the_pseudo_gradient_is_taken_from_what_was_sent():
    # with OMC the clients start from the dequantized download, not the global model itself
    sent = {**CURRENT, "w": np.array([1.25, 2.0], F32)}
    new = close_round(RoundReport(1), [(0, accepted(2, 0.0, w=[2.0, 3.0]))], CURRENT, sent,
                      fedavg(), min_clients=1)  # fmt: skip
    assert new is not None
    assert new["w"].tolist() == [1.75, 3.0]  # current + (average - sent)
    momentum = ServerOptimizer("sgd", lr=0.5, momentum=0.9)
    new = close_round(RoundReport(1), [(0, accepted(2, 0.0, w=[2.0, 3.0]))], CURRENT, sent,
                      momentum, min_clients=1)  # fmt: skip
    assert new is not None and new["w"].tolist() == [1.375, 2.5]  # current + 0.5 * delta


def test_too_few_accepted_updates_skip_the_round_and_keep_the_model():
    optimizer = ServerOptimizer("sgd", lr=1.0, momentum=0.9)
    report = RoundReport(5, sampled=3)
    verdicts = [(0, accepted(4, 2.0, w=[9.0, 9.0])), (1, Verdict(FAILED, "no reply within 1 s")),
                (2, Verdict(REJECTED, "empty update", 40))]  # fmt: skip
    assert close_round(report, verdicts, CURRENT, CURRENT, optimizer, min_clients=2) is None
    assert report.skipped and report.accepted == 1 and report.trained_variables == 0
    assert report.train_loss == 2.0 and report.memory == [{"peak_bytes": 4000.0}]
    assert optimizer.m == {}  # no server optimizer state advanced
    assert CURRENT["w"].tolist() == [1.0, 2.0]


def test_a_round_with_no_accepted_update_is_skipped_even_with_min_clients_one():
    report = RoundReport(1, sampled=1)
    new = close_round(report, [(0, Verdict(FAILED, "x"))], CURRENT, CURRENT, fedavg(), 1)
    assert new is None and report.skipped and math.isnan(report.train_loss)
    assert report.counts() == {"accepted": 0, "failed": 1, "rejected": 0}
