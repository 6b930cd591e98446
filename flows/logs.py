"""Quiet logs: third-party chatter that a user of the CLI cannot act on is turned down here."""

from __future__ import annotations

import logging
import warnings

# Loggers that narrate routine work at INFO (HTTP calls, migrations, device summaries).
# Flower's own per-round summary repeats what the finetune stage logs for every round.
CHATTY = ("httpx", "httpcore", "alembic", "urllib3", "lightning", "lightning.pytorch",
          "lightning.fabric", "pytorch_lightning", "flwr", "mlflow.store.db.utils",
          "onnxscript", "onnx_ir", "onnxruntime.quantization")  # fmt: skip


class FirstLineOnly(logging.Filter):
    """Keep the first line of a multi-line record of ``logger`` (Prefect follows "Starting
    temporary server on ..." with a link to its docs on every start)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\n" in message:
            record.msg, record.args = message.split("\n", 1)[0], None
        return True


class UserErrorsWithoutTraceback(logging.Filter):
    """A user error (``EdgelearnError``: bad input, a missing file) is not a bug: the CLI ends
    with its one-line message and the fix, so Prefect's report of it (a traceback, then the
    failed state repeating the message) is dropped. Tracebacks of anything else stay."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        from components.errors import EdgelearnError

        if record.exc_info and isinstance(record.exc_info[1], EdgelearnError):
            self.messages.add(str(record.exc_info[1]))
            return False
        message = record.getMessage()
        return not any(m in message for m in self.messages)


class DropAdverts(logging.Filter):
    """Flower announces on every simulation that its API is deprecated in favour of its CLI (a
    choice edgelearn made knowingly: the simulation runs inside the stage's own process)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("DEPRECATED FEATURE")


_HINTS = FirstLineOnly()
_ADVERTS = DropAdverts()
_USER_ERRORS = UserErrorsWithoutTraceback()


def quiet_third_party() -> None:
    """Warnings and above only from chatty libraries, each line once (Lightning adds its own
    handler besides the root one, which printed every line twice), no deprecation chatter of the
    pinned dependencies, no profiler trace lines."""
    for name in CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.handlers.clear()
        logger.propagate = True
    # Prefect's event queue announces, while a failed run exits, that it is still sending
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
    # the dynamo exporter warns on every export that torchvision's operators are not registered
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    server_logger = logging.getLogger("prefect")
    if _HINTS not in server_logger.filters:
        server_logger.addFilter(_HINTS)
    if _ADVERTS not in logging.getLogger("flwr").filters:
        logging.getLogger("flwr").addFilter(_ADVERTS)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        if _USER_ERRORS not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_USER_ERRORS)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
