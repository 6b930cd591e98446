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

MODEL, LAYOUT, CONFIG, UPDATE, METRICS = "model", "layout", "config", "update", "metrics"

# Faults a simulated client can be told to commit (never sent outside simulations).
CRASH, TIMEOUT, NAN, BAD_SHAPE, HUGE_NORM = "crash", "timeout", "nan", "bad_shape", "huge_norm"
FAULTS = (CRASH, TIMEOUT, NAN, BAD_SHAPE, HUGE_NORM)
