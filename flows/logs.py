"""Quiet logs: third-party chatter that a user of the CLI cannot act on is turned down here."""

from __future__ import annotations

import logging
import warnings

# Loggers that narrate routine work at INFO (HTTP calls, migrations, device summaries).
# Flower's own per-round summary repeats what the finetune stage logs for every round.
CHATTY = ("httpx", "httpcore", "alembic", "urllib3", "lightning", "lightning.pytorch",
          "lightning.fabric", "pytorch_lightning", "flwr")  # fmt: skip


def quiet_third_party() -> None:
    """Warnings and above only from chatty libraries, each line once (Lightning adds its own
    handler besides the root one, which printed every line twice), no deprecation chatter of the
    pinned dependencies, no profiler trace lines."""
    for name in CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.handlers.clear()
        logger.propagate = True
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
