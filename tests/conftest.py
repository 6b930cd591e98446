"""Session fixtures: the espeak-ng binary, a real Prefect API server, and the environment that
CLI and DVC subprocesses run in."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.helpers import BIN

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "FLWR_TELEMETRY_ENABLED": "0",
}


# Fixtures that start a Prefect server or hand tests an environment for CLI/DVC subprocesses:
# a test that uses one is slow (it must be marked so; `make test-fast` leaves it out).
SUBPROCESS_FIXTURES = ("prefect_api", "stage_env")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if set(SUBPROCESS_FIXTURES) & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]  # fmt: skip
    if unmarked:
        raise pytest.UsageError(f"these start Prefect or DVC subprocesses but are not marked "
                                f"slow: {', '.join(unmarked)}")  # fmt: skip


@pytest.fixture(scope="session")
def espeak() -> str:
    """The espeak-ng binary. Every test that speaks (the synthesized corpus, the export tests'
    keywords) takes it from here, and fails, never skips, when it is missing."""
    path = shutil.which("espeak-ng")
    if path is None:
        pytest.fail("espeak-ng is missing: the synthesized corpus and the export tests' keywords "
                    "are spoken by it (make install installs it)")  # fmt: skip
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory) -> str:
    """One real Prefect server for the whole session (start-up costs ~20 s on 2 cores)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Prefect server did not start: {(home / 'server.log').read_text()}")
        time.sleep(1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def stage_env(prefect_api, tmp_path_factory) -> dict[str, str]:
    """Environment for CLI/DVC subprocesses: this venv first, the session's Prefect server."""
    env = {**os.environ, **QUIET_ENV}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_API_URL"] = prefect_api
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-client"))
    env.pop("EDGELEARN_PARENT_RUN_ID", None)
    return env
