"""How a round ends: verdicts counted into the report, the model averaged, or the round skipped."""

import math

import numpy as np

from components.config import ScreeningParams
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
    assert report.counts() == {"accepted": 1, "failed": 1, "rejected": 1, "outliers": 0}
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
    assert report.counts() == {"accepted": 0, "failed": 1, "rejected": 0, "outliers": 0}


def cohort_round(with_outlier: bool):
    """Five clients train ``w`` (one of them 10x too far) under FedAdam; clients 0 and 1 also
    ``b``. Returns the report and the new model; the optimizer is fresh each time."""
    verdicts = [
        (0, accepted(3, 0.5, w=[1.5, 2.0], b=[0.75])),
        (1, accepted(5, 0.5, w=[1.0, 2.25], b=[0.25])),
        (2, accepted(2, 0.5, w=[1.0, 2.5])),
        (3, accepted(7, 0.5, w=[4.0, 6.0])),  # |delta| 5 against 0.5: the outlier
        (4, accepted(4, 0.5, w=[0.75, 2.0])),
        (5, Verdict(FAILED, "no reply within 8.0 s")),
    ]
    if not with_outlier:
        verdicts = [(c, v) for c, v in verdicts if c != 3]
    report = RoundReport(1, sampled=len(verdicts))
    optimizer = ServerOptimizer("adam", lr=0.01, tau=1e-3)
    new = close_round(report, verdicts, CURRENT, CURRENT, optimizer, 2, ScreeningParams())
    return report, new


def test_a_round_with_an_outlier_gives_exactly_the_model_without_that_client():
    report, new = cohort_round(with_outlier=True)
    clean_report, clean = cohort_round(with_outlier=False)
    assert new is not None and clean is not None
    for name in CURRENT:
        np.testing.assert_array_equal(new[name], clean[name])
    assert not np.array_equal(new["w"], CURRENT["w"])  # the round counted
    assert (report.accepted, report.rejected, report.outliers, report.failed) == (4, 1, 1, 1)
    assert (clean_report.accepted, clean_report.rejected, clean_report.outliers) == (4, 0, 0)
    assert report.judged == 5 and clean_report.judged == 4  # b had two clients: not judged
    assert report.reasons == [
        "client 3: rejected, norm outlier on w: 10x the median update norm of 5 clients "
        "(modified z 12.1)",
        "client 5: no reply within 8.0 s",
    ]
    assert report.bytes_up == [100] * 5 and len(report.memory) == 4


def test_the_cohort_check_off_lets_the_outlier_in():
    report = RoundReport(1)
    verdicts = [(c, accepted(1, 0.0, w=[1.0 + d, 2.0])) for c, d in enumerate([0.5, 0.5, 0.5, 5])]
    new = close_round(report, verdicts, CURRENT, CURRENT, fedavg(), 2,
                      ScreeningParams(cohort=False))  # fmt: skip
    assert new is not None and new["w"].tolist() == [2.625, 2.0]  # 1 + mean(0.5, 0.5, 0.5, 5)
    assert (report.accepted, report.outliers, report.judged) == (4, 0, 0)


def test_the_report_counts_the_injected_faults_that_reached_the_model():
    plan = [Assignment(10 + c, c, ("w",), fault, 0) for c, fault in
            enumerate(["", "sign_flip", "scaled", "", "random", "nan", ""])]  # fmt: skip
    report = RoundReport.planned(4, plan)
    verdicts = [
        (0, accepted(1, 0.0, w=[1.5, 2.0])),
        (1, accepted(1, 0.0, w=[0.5, 2.0])),  # sign-flipped: an honest norm
        (2, accepted(1, 0.0, w=[11.0, 2.0])),  # scaled 20x: the outlier
        (3, accepted(1, 0.0, w=[1.0, 2.5])),
        (4, accepted(1, 0.0, w=[1.0, 1.5])),  # random: an honest norm
        (5, Verdict(REJECTED, "non-finite values in w", 50)),
        (6, Verdict(REJECTED, "empty update", 10)),  # honest, rejected all the same
    ]
    assert close_round(report, verdicts, CURRENT, CURRENT, fedavg(), 2, ScreeningParams())
    assert report.faults == {1: "sign_flip", 2: "scaled", 4: "random", 5: "nan"}
    assert report.injected == {"sign_flip": 1, "scaled": 1, "random": 1, "nan": 1}
    assert report.reached == {"sign_flip": 1, "random": 1}
    assert (report.accepted, report.rejected, report.outliers) == (4, 3, 1)
    assert report.honest_rejected == 1  # client 6
