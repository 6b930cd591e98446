"""Server-side PVT aggregation, update screening and the server optimizer (pure numpy).

Partial aggregation, our reading of PVT: a client uploads only the variables it trained; the server
averages each variable over the clients that trained it, weighted by their example counts, and
leaves a variable nobody trained unchanged. The server optimizer then treats ``average - sent`` as
a pseudo-gradient (Reddi et al., "Adaptive Federated Optimization"): ``sgd`` with ``lr=1`` and no
momentum is FedAvg, momentum gives FedAvgM, ``adam`` gives FedAdam. Its state advances only for the
variables trained in the round. ``sent`` is what the clients started from (with OMC the dequantized
download), so the download's quantization error never enters the global model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

Arrays = Mapping[str, np.ndarray]


def model_rms(reference: Arrays, names: Collection[str]) -> float:
    """Root-mean-square value over the named variables: the scale ``validate_update`` uses."""
    total = sum(float(np.sum(reference[n].astype(np.float64) ** 2)) for n in names)
    count = sum(reference[n].size for n in names)
    return float(np.sqrt(total / max(1, count)))


def validate_update(
    values: Arrays, assigned: Collection[str], reference: Arrays, max_relative_norm: float,
    scale: float,
) -> str | None:  # fmt: skip
    """Why an uploaded update must be rejected, or None if it may be aggregated.

    Rejects: nothing uploaded, variables it was not asked to train or missing ones, wrong shapes,
    NaN/Inf, and an absurd norm: the update's root-mean-square change ``rms(values - reference)``
    above ``max_relative_norm * scale``, where ``scale`` is the global model's RMS value
    (``model_rms``). A whole-model scale, not the uploaded variables' own: a PVT client may train
    only a bias that sits near zero, and a legitimate step on it is large relative to itself.
    """
    names, expected = set(values), set(assigned)
    if not names:
        return "empty update"
    if names - expected:
        return f"variables it was not asked to train: {sorted(names - expected)[:3]}"
    if expected - names:
        return f"missing trained variables: {sorted(expected - names)[:3]}"
    delta_sq, count = 0.0, 0
    for name in sorted(names):
        value, ref = values[name], reference[name]
        if value.shape != ref.shape:
            return f"wrong shape for {name}: {tuple(value.shape)}, expected {tuple(ref.shape)}"
        if not np.all(np.isfinite(value)):
            return f"non-finite values in {name}"
        delta_sq += float(np.sum((value.astype(np.float64) - ref) ** 2))
        count += value.size
    rms, limit = np.sqrt(delta_sq / max(1, count)), max_relative_norm * scale
    if rms > limit:
        return f"update RMS {rms:.3g} above the limit {limit:.3g}"
    return None


def aggregate_partial_updates(updates: Sequence[tuple[float, Arrays]]) -> dict[str, np.ndarray]:
    """Per variable, the example-weighted mean over the updates that contain it.

    ``updates`` holds ``(num_examples, {variable: value})``; a variable absent from every update is
    absent from the result (the caller leaves it unchanged).
    """
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    for weight, values in updates:
        if weight <= 0:
            raise ValueError(f"example weight must be positive, got {weight}")
        for name, value in values.items():
            term = weight * value.astype(np.float64)
            sums[name] = sums[name] + term if name in sums else term
            weights[name] = weights.get(name, 0.0) + weight
    return {name: (sums[name] / weights[name]).astype(np.float32) for name in sums}


class ServerOptimizer:
    """Applies aggregated pseudo-gradients ``delta = average - sent`` to the global variables."""

    def __init__(
        self,
        kind: str = "sgd",
        lr: float = 1.0,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
        tau: float = 1e-3,
    ) -> None:
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown server optimizer {kind!r}")
        self.kind, self.lr, self.momentum, self.betas, self.tau = kind, lr, momentum, betas, tau
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, current: Arrays, deltas: Arrays) -> dict[str, np.ndarray]:
        """New values for the variables in ``deltas``; the others are not touched."""
        out = {}
        for name, delta in deltas.items():
            d = delta.astype(np.float64)
            if self.kind == "sgd":
                if self.momentum:
                    m = self.momentum * self.m.get(name, 0.0) + d
                    self.m[name] = m
                    d = m
                step = self.lr * d
            else:
                b1, b2 = self.betas
                m = b1 * self.m.get(name, 0.0) + (1 - b1) * d
                v = b2 * self.v.get(name, 0.0) + (1 - b2) * d * d
                self.m[name], self.v[name] = m, v
                step = self.lr * m / (np.sqrt(v) + self.tau)
            out[name] = (current[name].astype(np.float64) + step).astype(np.float32)
        return out
