"""One run per workspace: the lock between two real processes, and what the second one is told."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.lock import LOCK_FILE, WorkspaceBusy, ensure_free, workspace_lock

HOLD = """
import sys, time
from pathlib import Path
from flows.lock import workspace_lock
with workspace_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(workdir: Path, seconds: float) -> subprocess.Popen:
    """Another process holding ``workdir``'s lock for ``seconds`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir), str(seconds)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_stops_naming_the_holder(tmp_path):
    ensure_free(tmp_path)  # no lock file yet
    holder = hold(tmp_path, 30)
    try:
        with pytest.raises(WorkspaceBusy, match=rf"pid {holder.pid}, since .*--if-busy wait"):
            ensure_free(tmp_path)
        with pytest.raises(WorkspaceBusy, match=r"another edgelearn run"), workspace_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    ensure_free(tmp_path)  # the kernel released a killed holder's lock
    with workspace_lock(tmp_path) as path:
        assert path == tmp_path / LOCK_FILE
        assert path.read_text().startswith(f"pid {os.getpid()}, since ")
    assert path.read_text() == ""  # released and cleared


def test_a_waiting_run_starts_when_the_holder_ends(tmp_path):
    holder = hold(tmp_path, 1.5)
    started = time.monotonic()
    with workspace_lock(tmp_path, "wait"):
        waited = time.monotonic() - started
    assert waited > 1.0  # it got the lock only once the holder had let it go
    assert holder.wait(timeout=30) == 0
