"""The cohort check: a round's accepted updates judged against each other, variable by variable.

The absolute checks (``aggregation.validate_update``) see one update at a time and can only refuse
the absurd. This check runs after them, on the updates they accepted, and rejects one whose size
stands out from the round's cohort, the median-based way robust aggregators do.

Per variable, not per client: a client's update norm ``||value - sent||`` is compared with the
other clients' norms *on the same variable*. PVT clients train different subsets of variables,
and honest step sizes differ by orders of magnitude between variables (a conv kernel, a bias
near zero, a norm's scale), so one pooled norm per client would mostly measure which variables
it drew. The same tensor, trained from the same start in the same round, is the one comparable
scale. The price: a variable is judged only when at least ``min_cohort`` accepted clients trained
it, so under sparse PVT many updates are not judged at all (``CohortResult.judged`` counts those
that were).

Norm outlier on a variable: with the cohort's median ``m`` and median absolute deviation ``MAD``,
the norm ``x`` has a modified z-score ``0.6745 (x - m) / MAD`` (Iglewicz and Hoaglin) above
``outlier_z`` AND ``x > outlier_ratio * m``; the ratio keeps a tight cohort (tiny MAD) from
rejecting mild variation. A MAD of zero makes every norm above the median infinitely far; a median
of zero gives no scale, and that variable is not judged. One-sided: a small update only dilutes.

Optional direction check (``min_cosine``): the cosine between a client's update and the cohort's
coordinate-wise median update on the variable; below ``min_cosine`` it is an outlier. A norm check
cannot see a sign-flipped or random update of an honest size; this can, when honest clients agree
on a direction, which non-IID clients need not do (off by default, see docs/federated-screening.md).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from components.config import ScreeningParams
from components.federated.screening import ACCEPTED, REJECTED, Verdict

MAD_SCALE = 0.6745  # makes the MAD of normal data estimate its standard deviation


@dataclass(frozen=True)
class NormOutlier:
    """Why a client's update is a norm outlier: its worst variable against that cohort."""

    variable: str
    norm: float
    median: float
    z: float
    cohort: int  # clients that trained the variable

    @property
    def ratio(self) -> float:
        return self.norm / self.median

    def reason(self) -> str:
        return (f"norm outlier on {self.variable}: {self.ratio:.3g}x the median update norm of "
                f"{self.cohort} clients (modified z {self.z:.3g})")  # fmt: skip


@dataclass(frozen=True)
class DirectionOutlier:
    """Why a client's update is a direction outlier: its least aligned variable."""

    variable: str
    cosine: float
    cohort: int

    def reason(self) -> str:
        return (f"direction outlier on {self.variable}: cosine {self.cosine:.3g} to the median "
                f"update of {self.cohort} clients")  # fmt: skip


def cohorts(trained: Mapping[int, Collection[str]], min_cohort: int) -> dict[str, list[int]]:
    """Per variable trained by at least ``min_cohort`` clients, those clients in the given order."""
    by_variable: dict[str, list[int]] = {}
    for client, names in trained.items():
        for name in names:
            by_variable.setdefault(name, []).append(client)
    return {n: cs for n, cs in sorted(by_variable.items()) if len(cs) >= min_cohort}


def norm_outliers(
    norms: Mapping[int, Mapping[str, float]], min_cohort: int, outlier_z: float,
    outlier_ratio: float,
) -> dict[int, NormOutlier]:  # fmt: skip
    """The clients whose update norm on some variable is an outlier in that variable's cohort
    (``norms[client][variable]``: ``||value - sent||``), each with its largest ratio to the
    median; variables trained by fewer than ``min_cohort`` clients are not judged."""
    found: dict[int, NormOutlier] = {}
    for name, clients in cohorts(norms, min_cohort).items():
        x = np.array([norms[c][name] for c in clients], dtype=np.float64)
        median = float(np.median(x))
        if median <= 0.0:
            continue
        mad = float(np.median(np.abs(x - median)))
        for client, value in zip(clients, x.tolist(), strict=True):
            if value <= outlier_ratio * median:
                continue
            z = MAD_SCALE * (value - median) / mad if mad > 0 else math.inf
            if z <= outlier_z:
                continue
            hit = NormOutlier(name, value, median, z, len(clients))
            if client not in found or hit.ratio > found[client].ratio:
                found[client] = hit
    return found


def direction_outliers(
    deltas: Mapping[int, Mapping[str, np.ndarray]], min_cohort: int, min_cosine: float
) -> dict[int, DirectionOutlier]:
    """The clients whose update on some variable points away from the cohort's coordinate-wise
    median update (cosine below ``min_cosine``), each with its lowest cosine; updates or medians
    of zero norm have no direction and are not judged."""
    found: dict[int, DirectionOutlier] = {}
    for name, clients in cohorts(deltas, min_cohort).items():
        stacked = np.stack([deltas[c][name].astype(np.float64).ravel() for c in clients])
        median = np.median(stacked, axis=0)
        scale = float(np.linalg.norm(median))
        for client, d in zip(clients, stacked, strict=True):
            size = float(np.linalg.norm(d))
            if scale == 0.0 or size == 0.0:
                continue
            cosine = float(d @ median) / (size * scale)
            if cosine < min_cosine and (client not in found or cosine < found[client].cosine):
                found[client] = DirectionOutlier(name, cosine, len(clients))
    return found


@dataclass(frozen=True)
class CohortResult:
    verdicts: list[tuple[int, Verdict]]  # the input's, outliers turned REJECTED
    judged: int  # accepted clients with at least one variable in a judged cohort
    outliers: frozenset[int]  # clients rejected by this check


def screen_cohort(
    verdicts: Sequence[tuple[int, Verdict]], sent: Mapping[str, np.ndarray],
    params: ScreeningParams,
) -> CohortResult:  # fmt: skip
    """Judge the accepted verdicts against each other; an outlier's verdict becomes REJECTED with
    the reason (its upload size kept), every other verdict is returned as it was, in order."""
    if not params.cohort:
        return CohortResult(list(verdicts), 0, frozenset())
    deltas = {
        client: {n: v.astype(np.float64) - sent[n] for n, v in verdict.update.values.items()}
        for client, verdict in verdicts
        if verdict.status == ACCEPTED and verdict.update is not None
    }
    judged_variables = cohorts(deltas, params.min_cohort)
    judged = len({c for cs in judged_variables.values() for c in cs})
    norms = {c: {n: float(np.linalg.norm(d)) for n, d in ds.items()} for c, ds in deltas.items()}
    reasons = {c: o.reason() for c, o in norm_outliers(
        norms, params.min_cohort, params.outlier_z, params.outlier_ratio).items()}  # fmt: skip
    if params.min_cosine is not None:
        for c, d in direction_outliers(deltas, params.min_cohort, params.min_cosine).items():
            reasons.setdefault(c, d.reason())
    out = [
        (c, Verdict(REJECTED, reasons[c], v.bytes_up) if c in reasons else v) for c, v in verdicts
    ]
    return CohortResult(out, judged, frozenset(reasons))
