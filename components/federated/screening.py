"""Screening one client's reply to a train message: accepted, failed or rejected, and why.

*Failed*: the client raised, timed out or never answered (nothing to look at). *Rejected*: it
answered, but the update does not decode against the layout, counts no examples, or fails
``aggregation.validate_update`` (variables it was not asked to train, wrong shapes, NaN/Inf, an
absurd norm). The accepted ones are then judged against each other (``cohort.py``); only those
that pass both reach the aggregate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message, MetricRecord

from components.federated import protocol as P
from components.federated.aggregation import validate_update
from components.federated.payload import PayloadError, decode_payload, float_values, payload_bytes
from components.federated.variables import ModelLayout

ACCEPTED, FAILED, REJECTED = "accepted", "failed", "rejected"


@dataclass(frozen=True)
class ClientUpdate:
    """An accepted update: the trained variables' new values, as floats, and what came with them."""

    examples: int
    values: dict[str, np.ndarray]
    loss_last: float
    memory: dict[str, float] = field(default_factory=dict)  # the ``*_bytes`` metrics


@dataclass(frozen=True)
class Verdict:
    """The screening's outcome for one sampled client, as the round report counts it."""

    status: str  # ACCEPTED, FAILED or REJECTED
    reason: str = ""  # why it failed or was rejected
    bytes_up: int | None = None  # measured size of a reply that carried content
    update: ClientUpdate | None = None  # set when accepted


def short_reason(reason: str) -> str:
    """The last line of a client's error (Flower wraps the exception in Ray's traceback text)."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else reason)[:200]


def check_update(
    reply: Message,
    trainable: Collection[str],
    layout: ModelLayout,
    sent: Mapping[str, np.ndarray],
    max_update_norm: float,
    scale: float,
) -> tuple[dict[str, np.ndarray], int, MetricRecord]:
    """The update's float values, its example count and its metrics; raises ``PayloadError``
    with the reason to reject it. ``sent`` is what the client started from, ``scale`` the global
    model's RMS value (``aggregation.model_rms``)."""
    try:
        content = reply.content
        values = decode_payload(
            P.arrays_of(content, P.UPDATE), P.config_of(content, P.LAYOUT), layout
        )
        metrics = P.metrics_of(content)
        examples = P.as_int(metrics["num-examples"])
    except (KeyError, TypeError) as err:
        raise PayloadError(f"malformed reply: {err}") from None
    arrays = float_values(values)
    if examples <= 0:
        raise PayloadError(f"non-positive example count {examples}")
    reason = validate_update(arrays, trainable, sent, max_update_norm, scale)
    if reason:
        raise PayloadError(reason)
    return arrays, examples, metrics


def screen_reply(
    reply: Message | None,
    trainable: Collection[str],
    layout: ModelLayout,
    sent: Mapping[str, np.ndarray],
    max_update_norm: float,
    scale: float,
    timeout_s: float,
) -> Verdict:
    """The verdict on one sampled client's reply (``None``: none arrived within ``timeout_s``).

    An update that passes the checks must also report ``loss-last`` and numeric ``*_bytes``
    metrics; a reply lacking them raises ``KeyError``/``TypeError`` here instead of being
    rejected (our own ClientApp always sends them).
    """
    if reply is None:
        return Verdict(FAILED, f"no reply within {timeout_s} s")
    if reply.has_error():
        return Verdict(FAILED, short_reason(reply.error.reason or ""))
    size = payload_bytes(reply.content)
    try:
        arrays, examples, metrics = check_update(
            reply, trainable, layout, sent, max_update_norm, scale
        )
    except PayloadError as err:
        return Verdict(REJECTED, str(err), size)
    update = ClientUpdate(
        examples,
        arrays,
        P.as_float(metrics["loss-last"]),
        {k: P.as_float(v) for k, v in metrics.items() if k.endswith("_bytes")},
    )
    return Verdict(ACCEPTED, "", size, update)
