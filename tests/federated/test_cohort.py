"""The cohort check on hand-made norms and updates: who is an outlier, on which variable, why."""

import math

import numpy as np
import pytest

from components.config import ScreeningParams
from components.federated.cohort import (
    MAD_SCALE,
    DirectionOutlier,
    NormOutlier,
    cohorts,
    direction_outliers,
    norm_outliers,
    screen_cohort,
)
from components.federated.screening import ACCEPTED, FAILED, REJECTED, ClientUpdate, Verdict

F32 = np.float32


def outliers(norms, min_cohort=3, z=3.5, ratio=3.0):
    return norm_outliers(norms, min_cohort, z, ratio)


def on(variable: str, values: dict[int, float]) -> dict[int, dict[str, float]]:
    return {c: {variable: x} for c, x in values.items()}


def test_a_far_norm_is_an_outlier_against_the_median_and_the_mad():
    # median 2, absolute deviations 1 0 0 1 18: MAD 1
    found = outliers(on("w", {0: 1.0, 1: 2.0, 2: 2.0, 3: 3.0, 4: 20.0}))
    assert found == {4: NormOutlier("w", 20.0, 2.0, MAD_SCALE * 18.0, 5)}
    assert found[4].ratio == 10.0
    assert found[4].reason() == (
        "norm outlier on w: 10x the median update norm of 5 clients (modified z 12.1)"
    )


def test_both_bounds_are_strict():
    norms = on("w", {0: 1.0, 1: 2.0, 2: 2.0, 3: 3.0, 4: 20.0})
    z = MAD_SCALE * 18.0
    assert outliers(norms, z=z) == {}  # z must exceed outlier_z
    assert set(outliers(norms, z=np.nextafter(z, 0.0))) == {4}
    assert outliers(norms, ratio=10.0) == {}  # ... and the norm exceed ratio x median
    assert set(outliers(norms, ratio=9.999)) == {4}


def test_a_tight_cohort_does_not_reject_mild_variation():
    # MAD 0: every norm above the median is infinitely far in z; the ratio alone decides
    found = outliers(on("w", {0: 1.0, 1: 1.0, 2: 1.0, 3: 2.9}))
    assert found == {}
    found = outliers(on("w", {0: 1.0, 1: 1.0, 2: 1.0, 3: 3.5}))
    assert found == {3: NormOutlier("w", 3.5, 1.0, math.inf, 4)}
    assert "(modified z inf)" in found[3].reason()


def test_spread_honest_norms_raise_the_bar():
    # median 6, MAD 4: 20 is 3.3x the median, but its modified z-score is only 2.36
    assert outliers(on("w", {0: 1.0, 1: 2.0, 2: 4.0, 3: 8.0, 4: 10.0, 5: 20.0})) == {}
    assert set(outliers(on("w", {0: 1.0, 1: 2.0, 2: 4.0, 3: 8.0, 4: 10.0, 5: 20.0}), z=2.3)) == {5}


def test_variables_with_fewer_than_min_cohort_clients_are_not_judged():
    norms = {0: {"w": 1.0, "b": 1.0}, 1: {"w": 1.0, "b": 100.0}, 2: {"w": 1.0}}
    assert cohorts(norms, 3) == {"w": [0, 1, 2]}
    assert outliers(norms) == {}  # b: two clients, however far apart
    assert set(outliers(norms, min_cohort=2)) == set()  # two norms: the ratio to their median < 2
    norms[3] = {"b": 1.0}
    assert outliers(norms) == {1: NormOutlier("b", 100.0, 1.0, math.inf, 3)}


def test_disjoint_pvt_subsets_are_judged_each_against_its_own_cohort():
    # honest step sizes differ 100x between variables: a per-client pooled norm would reject
    # clients 3-5 for what they drew; per variable nobody is out of line
    norms = {**on("bias", {0: 0.01, 1: 0.012, 2: 0.011}),
             **on("kernel", {3: 1.0, 4: 1.2, 5: 0.9})}  # fmt: skip
    norms[6] = {"bias": 0.01, "kernel": 1.1}
    assert outliers(norms) == {}
    norms[7] = {"bias": 0.2}  # 20x the bias cohort's median, a normal size for a kernel
    found = outliers(norms)
    assert list(found) == [7] and found[7].variable == "bias"
    assert found[7].ratio == pytest.approx(0.2 / 0.011)


def test_a_client_is_reported_with_its_worst_variable():
    norms = {0: {"a": 1.0, "b": 1.0}, 1: {"a": 1.0, "b": 1.0}, 2: {"a": 1.0, "b": 1.0},
             3: {"a": 5.0, "b": 8.0}, 4: {"a": 6.0}}  # fmt: skip
    # a: 1 1 1 5 6 (median 1, MAD 0), b: 1 1 1 8; client 3 is out of line on both, worst on b
    assert outliers(norms) == {3: NormOutlier("b", 8.0, 1.0, math.inf, 4),
                               4: NormOutlier("a", 6.0, 1.0, math.inf, 5)}  # fmt: skip


def test_a_zero_median_gives_no_scale_and_is_not_judged():
    assert outliers(on("w", {0: 0.0, 1: 0.0, 2: 0.0, 3: 5.0})) == {}


def test_direction_against_the_coordinate_wise_median_update():
    deltas = {0: {"w": np.array([1.0, 0.0])}, 1: {"w": np.array([1.0, 0.5])},
              2: {"w": np.array([2.0, -0.5])}, 3: {"w": np.array([-1.0, 0.0])},
              4: {"w": np.zeros(2)}}  # fmt: skip
    # median update [1, 0]: cosines 1, 0.894, 0.970, -1; a zero update has no direction
    assert direction_outliers(deltas, 3, 0.0) == {3: DirectionOutlier("w", -1.0, 5)}
    found = direction_outliers(deltas, 3, 0.95)
    assert set(found) == {1, 3} and found[1].cosine == pytest.approx(2 / math.sqrt(5))
    assert found[3].reason() == (
        "direction outlier on w: cosine -1 to the median update of 5 clients"
    )
    assert direction_outliers(deltas, 6, 0.95) == {}  # too few clients


def accepted(client_values: dict[str, list[float]], examples: int = 10, size: int = 100):
    values = {n: np.array(v, F32) for n, v in client_values.items()}
    return Verdict(ACCEPTED, "", size, ClientUpdate(examples, values, 0.5))


SENT = {"w": np.array([1.0, 1.0], F32), "b": np.array([0.0], F32)}


def test_screen_cohort_turns_outliers_into_rejections_and_keeps_the_rest_in_order():
    verdicts = [
        (0, accepted({"w": [1.5, 1.0]})),  # |delta| 0.5
        (1, Verdict(FAILED, "no reply within 8.0 s")),
        (2, accepted({"w": [1.0, 1.5], "b": [0.25]})),  # 0.5
        (3, accepted({"w": [1.0, 6.0], "b": [0.5]}, size=120)),  # w: 10x the median 0.5
        (4, Verdict(REJECTED, "non-finite values in w", 80)),
        (5, accepted({"w": [0.5, 1.0]})),  # 0.5
        (6, accepted({"b": [-9.0]})),  # b: 0.25 0.5 9, 18x the median
    ]
    result = screen_cohort(verdicts, SENT, ScreeningParams())
    assert result.judged == 5 and result.outliers == {3, 6}
    got = dict(result.verdicts)
    assert [c for c, _ in result.verdicts] == [0, 1, 2, 3, 4, 5, 6]
    for c in (0, 1, 2, 4, 5):
        assert got[c] is dict(verdicts)[c]
    assert got[3] == Verdict(REJECTED, "norm outlier on w: 10x the median update norm of 4 "
                             "clients (modified z inf)", 120)  # fmt: skip
    assert got[6] == Verdict(REJECTED, "norm outlier on b: 18x the median update norm of 3 "
                             "clients (modified z 22.9)", 100)  # fmt: skip
    off = screen_cohort(verdicts, SENT, ScreeningParams(cohort=False))
    assert off.verdicts == verdicts and off.judged == 0 and off.outliers == frozenset()


def test_screen_cohort_direction_check_is_off_unless_asked():
    verdicts = [(c, accepted({"w": [1.0 + d, 1.0]})) for c, d in enumerate([0.5, 0.6, 0.4, -0.5])]
    assert screen_cohort(verdicts, SENT, ScreeningParams()).outliers == frozenset()
    flipped = screen_cohort(verdicts, SENT, ScreeningParams(min_cosine=0.0))
    assert flipped.outliers == {3}
    assert dict(flipped.verdicts)[3].reason == (
        "direction outlier on w: cosine -1 to the median update of 4 clients"
    )
