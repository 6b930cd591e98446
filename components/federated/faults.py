"""Realistic bad updates a simulated client can upload, forged from its honest one (pure numpy).

Per trained variable, ``delta = value - sent`` is the honest update (``sent``: what the client
received, ``value``: what it trained). ``sign_flip`` uploads ``sent - delta`` (gradient ascent:
an honest norm, the opposite direction); ``scaled`` uploads ``sent + k * delta`` with one ``k``
drawn uniformly in ``SCALE_RANGE`` from the client's seed (a boosted update, as model-replacement
attacks send); ``random`` uploads ``sent + noise``, Gaussian noise rescaled per variable to the
norm of ``delta`` (an honest size that carries nothing). Only ``scaled`` has an unusual norm, so
only ``scaled`` can be caught by a norm check (see docs/federated-screening.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from components.federated import protocol as P

SCALE_RANGE = (5.0, 20.0)


def forge_update(
    kind: str, sent: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray], seed: int
) -> dict[str, np.ndarray]:
    """The float32 upload of a client committing fault ``kind`` (one of ``protocol.FORGED``)
    instead of uploading its honest ``values``; seeded by the client's local ``seed``, so a run
    repeats. Computed in float64, one rounding to float32 at the end."""
    if kind not in P.FORGED:
        raise ValueError(f"not a forged-update fault: {kind!r}")
    rng = np.random.default_rng(seed)  # the noise of ``random``
    k = scale_of(seed) if kind == P.SCALED else 1.0
    out = {}
    for name in sorted(values):
        start = sent[name].astype(np.float64)
        delta = values[name].astype(np.float64) - start
        if kind == P.SIGN_FLIP:
            forged = start - delta
        elif kind == P.SCALED:
            forged = start + k * delta
        else:
            noise = rng.standard_normal(delta.shape)
            size = float(np.linalg.norm(noise))
            forged = start + noise * (float(np.linalg.norm(delta)) / size if size else 0.0)
        out[name] = forged.astype(np.float32)
    return out


def scale_of(seed: int) -> float:
    """The ``k`` a ``scaled`` client with this local seed multiplies its update by."""
    return float(np.random.default_rng(seed).uniform(*SCALE_RANGE))
