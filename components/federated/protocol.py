"""What the server and the clients put in Flower messages (record names, config keys, faults).

Train message (server -> client): ``model`` + ``layout`` (the full float state, OMC entries as
codes; see payload.py) and ``config``: ``arch`` (the sub-network's JSON config), ``trainable``
(layout indices of the variables this client trains), ``local-steps``, ``batch-size``, ``lr``,
``seed``, ``stochastic-rounding``, ``transform``, ``measure-memory`` and, in simulations only,
``fault`` / ``fault-sleep-s``. Reply: ``update`` + ``layout`` (the trained variables only) and
``metrics`` (``num-examples``, losses, seconds, memory). Evaluate message: ``model`` + ``layout`` +
``config`` (``arch``); reply ``metrics`` (``num-examples``, ``correct``). Query: reply ``metrics``
(``client``, ``num-train``, ``num-test``).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

MODEL, LAYOUT, CONFIG, UPDATE, METRICS = "model", "layout", "config", "update", "metrics"

# Faults a simulated client can be told to commit (never sent outside simulations): absurd ones,
# then realistic bad updates (faults.py); ``sampling.draw_fault`` stacks the rates in this order.
CRASH, TIMEOUT, NAN, BAD_SHAPE, HUGE_NORM = "crash", "timeout", "nan", "bad_shape", "huge_norm"
SIGN_FLIP, SCALED, RANDOM = "sign_flip", "scaled", "random"
FAULTS = (CRASH, TIMEOUT, NAN, BAD_SHAPE, HUGE_NORM, SIGN_FLIP, SCALED, RANDOM)
FORGED = (SIGN_FLIP, SCALED, RANDOM)  # an update made from the honest one


def arrays_of(content: RecordDict, name: str) -> ArrayRecord:
    return content.array_records[name]


def config_of(content: RecordDict, name: str = CONFIG) -> ConfigRecord:
    return content.config_records[name]


def metrics_of(content: RecordDict) -> MetricRecord:
    return content.metric_records[METRICS]


def as_int(value: object) -> int:
    """A record value that must be a number, as int (TypeError otherwise: a malformed message)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return int(value)


def as_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def as_ints(value: object) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise TypeError("expected a list of integers")
    return [int(v) for v in value]
