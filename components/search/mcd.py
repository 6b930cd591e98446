"""NetAdaptV2's multi-layer coordinate descent (MCD) and the baselines that share its interfaces.

The optimizer sees the network only through two interfaces: a ``LatencyPredictor`` (the device's
lookup table) and an ``AccuracyEvaluator`` (the super-network's inherited weights after batch-norm
recalibration, on a held-out split). It takes an injected ``numpy.random.Generator``, so with stub
interfaces and a seeded generator a run is exact and testable.

One MCD iteration (Yang et al., CVPR 2021; the unpublished details are our reading, see
METHODS.md):

1. set a latency target ``R_t = max(budget, R_{t-1} - dR_t)`` with ``dR_t = step_fraction *
   R_0 * step_decay ** (t - 1)`` (``R_0`` the full network's predicted latency);
2. propose ``J = candidates`` architectures: each picks ``layers_per_candidate`` random layers of
   the current architecture that still have channels and shrinks them, one random layer at a time
   by one width step, until the predicted latency meets the target (when all picked layers are
   at 0, one more random layer joins); then each picked layer takes the largest width, up to
   its current one, that still meets the target (NetAdapt's "largest width that meets the
   constraint": on a real device latency is not monotonic in width); a candidate that cannot
   meet the target is dropped;
3. score every candidate with the evaluator, keep the most accurate (ties: the faster one).

It stops at the first iteration whose kept architecture meets the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from components.errors import EdgelearnError
from components.io import write_json_atomic

if TYPE_CHECKING:
    from components.model.space import SearchSpace

Widths = tuple[int, ...]


class LatencyPredictor(Protocol):
    def predict(self, widths: Sequence[int]) -> float: ...


class AccuracyEvaluator(Protocol):
    def evaluate(self, widths: Sequence[int]) -> float: ...


class SearchError(EdgelearnError):
    """The budget cannot be met in this search space."""


@dataclass(frozen=True)
class MCDConfig:
    candidates: int = 16
    layers_per_candidate: int = 2
    step_fraction: float = 0.1
    step_decay: float = 0.96
    max_iterations: int = 100


@dataclass
class Candidate:
    widths: list[int]
    predicted_ms: float
    accuracy: float
    iteration: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchOutcome:
    """The result of one search method: its winner and every candidate it evaluated.
    ``space``: the winner's own network family where it is not a sub-network of the
    super-network (the uniform multiplier's scaled network; ``widths`` its largest)."""

    method: str
    widths: list[int]
    predicted_ms: float
    accuracy: float
    evaluated: list[Candidate]
    seconds: float
    iterations: list[dict[str, Any]] = field(default_factory=list)
    space: SearchSpace | None = None

    @property
    def candidates_evaluated(self) -> int:
        return len(self.evaluated)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "widths": self.widths,
            "predicted_ms": self.predicted_ms,
            "accuracy": self.accuracy,
            "candidates_evaluated": self.candidates_evaluated,
            "seconds": self.seconds,
            "iterations": self.iterations,
            "evaluated": [c.to_dict() for c in self.evaluated],
            **self.space_record(),
        }

    def space_record(self) -> dict[str, Any]:
        if self.space is None:
            return {}
        return {"stage_channels": [s.channels for s in self.space.stages]}


class CachedEvaluator:
    """Scores each architecture once; ``calls`` counts the distinct evaluations."""

    def __init__(self, evaluator: AccuracyEvaluator) -> None:
        self.evaluator = evaluator
        self.cache: dict[Widths, float] = {}

    def evaluate(self, widths: Sequence[int]) -> float:
        key = tuple(int(w) for w in widths)
        if key not in self.cache:
            self.cache[key] = float(self.evaluator.evaluate(list(key)))
        return self.cache[key]


class SharedScores(CachedEvaluator):
    """One device's scorer in a fleet: ``cache`` holds what this device's searches have
    evaluated (what MCD counts as already seen), and each score comes from ``shared`` (the
    fleet's, keyed by architecture: inherited accuracy does not depend on the device) when any
    device computed it; a new score goes into ``shared`` when ``publish``."""

    def __init__(self, shared: CachedEvaluator, publish: bool = True) -> None:
        super().__init__(shared.evaluator)
        self.shared, self.publish = shared, publish

    def evaluate(self, widths: Sequence[int]) -> float:
        key = tuple(int(w) for w in widths)
        if key not in self.cache:
            if key in self.shared.cache:
                self.cache[key] = self.shared.cache[key]
            elif self.publish:
                self.cache[key] = self.shared.evaluate(key)
            else:
                self.cache[key] = float(self.evaluator.evaluate(list(key)))
        return self.cache[key]


def _shrink_to_target(
    widths: list[int],
    choices: Sequence[Sequence[int]],
    predictor: LatencyPredictor,
    target: float,
    layers: int,
    rng: np.random.Generator,
) -> list[int] | None:
    """One MCD proposal: shrink ``layers`` random layers until ``target`` is met, one width step
    at a time on a layer drawn at random among them (so each layer loses a random number of
    steps)."""
    w = list(widths)
    alive = [i for i, x in enumerate(w) if x > 0]
    if not alive:
        return None
    picked = [int(i) for i in rng.choice(alive, size=min(layers, len(alive)), replace=False)]
    while predictor.predict(w) > target:
        shrinkable = [i for i in picked if w[i] > 0]
        if not shrinkable:
            rest = [i for i, x in enumerate(w) if x > 0 and i not in picked]
            if not rest:
                return None  # every layer removed and still too slow
            picked.append(int(rng.choice(rest)))
            continue
        i = int(rng.choice(shrinkable))
        options = [c for c in choices[i] if c < w[i]]
        w[i] = max(options)
    # each shrunk layer then takes the largest width (up to its current one) that keeps the
    # target: on a real device a narrower layer is not always faster (here a block at full width
    # runs faster than at a quarter, which needs slice and concat), so the random walk down can
    # pass a width that also fits (repeated until stable: a layer made wider can be faster)
    changed = True
    while changed:
        changed = False
        for i in picked:
            for c in sorted((c for c in choices[i] if w[i] < c <= widths[i]), reverse=True):
                if predictor.predict([*w[:i], c, *w[i + 1 :]]) <= target:
                    w[i], changed = c, True
                    break
    return w


def multi_layer_coordinate_descent(
    choices: Sequence[Sequence[int]],
    predictor: LatencyPredictor,
    evaluator: AccuracyEvaluator,
    budget_ms: float,
    rng: np.random.Generator,
    config: MCDConfig = MCDConfig(),
    start: Sequence[int] | None = None,
    history_path: Path | None = None,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
) -> SearchOutcome:
    """Search from ``start`` (default: the largest widths) down to ``budget_ms``.

    After every iteration the history so far is written atomically to ``history_path``.
    """
    t0 = time.perf_counter()
    scorer = evaluator if isinstance(evaluator, CachedEvaluator) else CachedEvaluator(evaluator)
    current = list(start) if start is not None else [max(c) for c in choices]
    r0 = predictor.predict(current)
    latency = r0
    accuracy = scorer.evaluate(current)
    evaluated: list[Candidate] = [Candidate(list(current), latency, accuracy, 0, "mcd")]
    iterations: list[dict[str, Any]] = []
    t = 0
    while latency > budget_ms:
        t += 1
        if t > config.max_iterations:
            raise SearchError(
                f"MCD did not reach the {budget_ms:.4f} ms budget in {config.max_iterations} "
                f"iterations (at {latency:.4f} ms); raise search.max_iterations or step_fraction"
            )
        target = max(budget_ms, latency - config.step_fraction * r0 * config.step_decay ** (t - 1))
        proposals: list[Candidate] = []
        for _ in range(config.candidates):
            w = _shrink_to_target(current, choices, predictor, target, config.layers_per_candidate,
                                  rng)  # fmt: skip
            if w is None:
                continue
            known = tuple(w) in scorer.cache
            cand = Candidate(w, predictor.predict(w), scorer.evaluate(w), t, "mcd")
            proposals.append(cand)
            if not known:
                evaluated.append(cand)
        if not proposals:
            raise SearchError(
                f"no architecture in the space meets {target:.4f} ms "
                f"(smallest predicted: {predictor.predict([0] * len(choices)):.4f} ms)"
            )
        best = max(proposals, key=lambda c: (c.accuracy, -c.predicted_ms))
        current, latency, accuracy = best.widths, best.predicted_ms, best.accuracy
        record = {
            "iteration": t,
            "target_ms": target,
            "proposals": [c.to_dict() for c in proposals],
            "kept": best.to_dict(),
            "seconds": time.perf_counter() - t0,
        }
        iterations.append(record)
        if history_path is not None:
            write_json_atomic(history_path, {"method": "mcd", "budget_ms": budget_ms,
                                             "iterations": iterations})  # fmt: skip
        if on_iteration is not None:
            on_iteration(record)
    return SearchOutcome("mcd", current, latency, accuracy, evaluated,
                         time.perf_counter() - t0, iterations)  # fmt: skip


def random_search(
    choices: Sequence[Sequence[int]],
    predictor: LatencyPredictor,
    evaluator: AccuracyEvaluator,
    budget_ms: float,
    rng: np.random.Generator,
    evaluations: int,
    max_draws: int = 200_000,
) -> SearchOutcome:
    """Baseline: ``evaluations`` distinct architectures drawn uniformly per layer among those
    predicted to meet the budget (rejection sampling); the most accurate wins."""
    t0 = time.perf_counter()
    seen: set[Widths] = set()
    evaluated: list[Candidate] = []
    for _ in range(max_draws):
        if len(evaluated) >= evaluations:
            break
        w = [int(rng.choice(c)) for c in choices]
        if tuple(w) in seen or predictor.predict(w) > budget_ms:
            continue
        seen.add(tuple(w))
        evaluated.append(Candidate(w, predictor.predict(w), evaluator.evaluate(w), 0, "random"))
    if not evaluated:
        raise SearchError(f"random search drew no architecture under {budget_ms:.4f} ms")
    best = max(evaluated, key=lambda c: (c.accuracy, -c.predicted_ms))
    return SearchOutcome("random", best.widths, best.predicted_ms, best.accuracy, evaluated,
                         time.perf_counter() - t0)  # fmt: skip


def best_under(outcome: SearchOutcome, budget_ms: float) -> SearchOutcome:
    """Random search asked again for less: the most accurate of the candidates it already
    evaluated that the table predicts within ``budget_ms`` (no new evaluation, so its count
    stays MCD's); an error when none is."""
    pool = [c for c in outcome.evaluated if c.predicted_ms <= budget_ms]
    if not pool:
        raise SearchError(f"{outcome.method}: no evaluated candidate is predicted under "
                          f"{budget_ms:.4f} ms")  # fmt: skip
    best = max(pool, key=lambda c: (c.accuracy, -c.predicted_ms))
    return replace(outcome, widths=best.widths, predicted_ms=best.predicted_ms,
                   accuracy=best.accuracy)  # fmt: skip
