"""One pipeline run per workspace at a time: a second waits for the first or stops, by choice."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from components.errors import EdgelearnError

log = logging.getLogger(__name__)
LOCK_FILE = Path(".edgelearn") / "run.lock"


class WorkspaceBusy(EdgelearnError):
    """Another pipeline run holds this workspace."""


@contextmanager
def workspace_lock(
    workdir: Path = Path("."), if_busy: Literal["stop", "wait"] = "stop"
) -> Iterator[Path]:
    """Hold an exclusive lock on ``workdir`` for the duration (``flock``: the kernel releases it
    when the holder exits, even on SIGKILL, so a killed run never leaves the workspace locked).
    With ``if_busy="stop"`` a second run stops at once naming the holder; with ``"wait"`` it
    waits for the holder to finish."""
    path = workdir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            if if_busy == "stop":
                raise _busy(workdir, holder) from None
            log.info("waiting for the edgelearn run (%s) that holds this workspace", holder)
            started = time.monotonic()
            fcntl.flock(f, fcntl.LOCK_EX)
            log.info("the workspace is free after %.0f s", time.monotonic() - started)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_free(workdir: Path = Path(".")) -> None:
    """Raise ``WorkspaceBusy`` at once when a run holds ``workdir`` (the CLI checks this before it
    starts a Prefect server; the pipeline flow still takes the lock itself)."""
    path = workdir / LOCK_FILE
    if not path.is_file():
        return
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(workdir, f.read().strip() or "another process") from None
        fcntl.flock(f, fcntl.LOCK_UN)


def _busy(workdir: Path, holder: str) -> WorkspaceBusy:
    return WorkspaceBusy(
        f"{workdir.resolve()}: another edgelearn run ({holder}) is using this workspace; wait "
        "for it to finish, or run with --if-busy wait"
    )
