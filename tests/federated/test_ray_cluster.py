"""The finetune stage on a Ray cluster it did not start: a Ray head started here with
``ray start --head`` (on 127.0.0.1, in its own temp dir), the stage run against it through
``finetune.simulation.address``, then the head's processes killed.

Proof that the rounds ran on that head: its GCS lists the stage's process as a finished driver
(job), and the stage's ClientApp actors as that job's actors, running as worker processes of the
head. What the head and the stage listened on is sampled throughout and must be loopback only.

On binding: Ray 2.55 replaces ``--node-ip-address=127.0.0.1`` by the machine's own interface
address, advertises that and listens on all interfaces. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
(Ray's single-machine mode, the default on macOS and Windows) keeps the node address at 127.0.0.1
and its servers on loopback; the driver needs it too, or it waits for a raylet at the interface
address (it hangs). Hence the stage runs in a child process with that variable set.

``ray stop`` would stop every Ray on this machine (it cannot be scoped), so it is never called:
the head is started in a new session and exactly that session's processes are killed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import torch

from components.model.checkpoint import load_subnet_file
from tests.helpers import BIN
from tests.helpers.federated import WIDTHS, write_start_model
from tests.helpers.netwatch import HOST, SocketWatch, free_ports, is_loopback
from tests.helpers.toy_data import write_prepared

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FINETUNE = {"rounds": 2, "clients_per_round": 2, "min_clients": 1, "local_steps": 2,
            "round_timeout_s": 120.0}  # fmt: skip
# The stage, in a child process: params as JSON, the workdir, where to write the result.
STAGE = """
import json, sys
from pathlib import Path
from components.config import Params
from components.federated import stage
result = stage.run(Params.model_validate(json.loads(sys.argv[1])), Path(sys.argv[2]))
Path(sys.argv[3]).write_text(json.dumps({"metrics": result.metrics, "history": result.history,
                                         "reasons": result.reasons}))
"""
# What the head's GCS knows: every job (driver) and every actor, dead ones included. Ray's public
# state API (ray.util.state, `ray list`) goes through the dashboard, which is off here.
CLUSTER_STATE = """
import json, sys
import ray
from ray._private import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps({"jobs": state.jobs(), "actors": list(state.actors().values())}, default=str))
ray.shutdown()
"""


def session_members(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (children keep their parent's session)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def kill_sessions(sids: list[int]) -> None:
    """SIGTERM every process of these sessions, SIGKILL what is left after 5 s (the GCS server
    and the autoscaler monitor outlast a SIGTERM by more than 15 s here; ``ray stop --force``
    sends SIGKILL too)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        procs = [p for sid in sids for p in session_members(sid)]
        if not procs:
            return
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        psutil.wait_procs(procs, timeout=grace)
    left = [(p.pid, p.name()) for sid in sids for p in session_members(sid)]
    assert not left, f"processes left after SIGKILL: {left}"


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_") and not k.upper().endswith("_PROXY")}  # fmt: skip
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
               FLWR_TELEMETRY_ENABLED="0")  # fmt: skip
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Head:
    address: str
    sid: int  # the session of `ray start` and of every process it started
    temp_dir: Path
    sessions: list[int] = field(default_factory=list)  # all sessions killed at the end


@pytest.fixture
def ray_head() -> Iterator[Head]:
    # Short, own temp dir: Ray's socket paths under it must fit in 107 bytes, and the default
    # /tmp/ray belongs to whatever else runs Ray here (ray_current_cluster is written there too).
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-el-", dir="/tmp"))
    # Free ports for the GCS and for the two whose defaults are fixed (Ray Client 10001, dashboard
    # agent 52365), which another Ray on this machine may hold; the others are picked by Ray.
    port, client_port, agent_port = free_ports(3)
    cmd = [str(BIN / "ray"), "start", "--head", f"--node-ip-address={HOST}", f"--port={port}",
           "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp_dir}", f"--ray-client-server-port={client_port}",
           f"--dashboard-agent-listen-port={agent_port}"]  # fmt: skip
    start = subprocess.Popen(cmd, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)  # fmt: skip
    head = Head(f"{HOST}:{port}", start.pid, temp_dir, [start.pid])
    try:
        out, _ = start.communicate(timeout=180)
        assert start.returncode == 0, out
        assert (temp_dir / "ray_current_cluster").read_text().strip() == head.address, out
        yield head
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            start.communicate(timeout=1)
        if start.poll() is None:
            start.kill()
        kill_sessions(head.sessions)
        shutil.rmtree(temp_dir, ignore_errors=True)


class SessionWatch(SocketWatch):
    """The sockets of every process of some sessions, and which processes each session held."""

    def __init__(self, sessions: list[int]) -> None:
        super().__init__(self._members)
        self.sessions = sessions
        self.pids: dict[int, dict[int, str]] = {}  # session -> {pid: label}
        self.seen: collections.Counter[int] = collections.Counter()  # pid -> samples it was in

    def _members(self) -> dict[int, str]:
        names: dict[int, str] = {}
        for sid in self.sessions:
            for p in session_members(sid):
                with contextlib.suppress(psutil.Error):
                    names[p.pid] = self.pids.setdefault(sid, {})[p.pid] = label(p)
                    self.seen[p.pid] += 1
        return names


def label(proc: psutil.Process) -> str:
    """The process name; for Python, also the script or module it runs (Ray's helpers)."""
    name = proc.name()
    if not name.startswith("python"):
        return name
    args = proc.cmdline()[1:]
    for i, arg in enumerate(args):
        if arg in ("-m", "-c"):
            return f"{name} {arg} {args[i + 1][:40].strip() if arg == '-m' else '...'}"
        if arg.endswith(".py"):
            return f"{name} {Path(arg).name}"
    return name


def run_python(script: str, *args: str, cwd: Path, timeout: float) -> str:
    proc = subprocess.run([sys.executable, "-c", script, *args], env=ray_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_the_stage_runs_its_rounds_on_an_external_ray_head(ray_head: Head, tmp_path: Path):
    prepared = write_prepared(tmp_path / "data/prepared", clients=2)
    write_start_model(tmp_path / "models/searched.pt", prepared, steps=5)
    simulation = {"address": ray_head.address, "client_cpus": 1.0}
    params = {"finetune": {**FINETUNE, "simulation": simulation}}
    out = tmp_path / "result.json"
    log = open(tmp_path / "stage.log", "w")  # noqa: SIM115 - the child owns it
    stage = subprocess.Popen(
        [sys.executable, "-c", STAGE, json.dumps(params), str(tmp_path), str(out)],
        env=ray_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    ray_head.sessions.append(stage.pid)  # killed with the head if anything goes wrong
    with SessionWatch([ray_head.sid, stage.pid]) as watch:
        try:
            stage.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("the stage ran 300 s:\n" + (tmp_path / "stage.log").read_text()[-5000:])
        watch.sample()
    assert stage.returncode == 0, (tmp_path / "stage.log").read_text()[-5000:]

    # The stage completed: final model written, two rounds over two clients, all accepted.
    result = json.loads(out.read_text())
    m = result["metrics"]
    assert (m["rounds"], m["clients_total"], m["failed_client_updates"]) == (2, 2, 0)
    assert m["federated_eval_clients_before"] == m["federated_eval_clients_after"] == 2
    assert [h.get("accepted") for h in result["history"]] == [None, 2.0, 2.0]
    assert result["reasons"] == []
    net, payload = load_subnet_file(tmp_path / "models/final.pt")
    start, _ = load_subnet_file(tmp_path / "models/searched.pt")
    assert net.widths == WIDTHS and payload["metrics"]["acc_after"] == m["acc_after"]
    assert any(not torch.equal(t, start.state_dict()[n]) for n, t in net.state_dict().items())

    # ...on the head: the stage's process was a driver of the head, now finished, and its
    # ClientApp actors ran there, in worker processes of the head (not of the stage).
    cluster = json.loads(run_python(CLUSTER_STATE, ray_head.address, cwd=tmp_path, timeout=120))
    jobs = [j for j in cluster["jobs"] if j["DriverPid"] == stage.pid]
    assert len(jobs) == 1 and jobs[0]["IsDead"] and jobs[0]["DriverIPAddress"] == HOST, cluster
    actors = [a for a in cluster["actors"] if a["JobID"] == jobs[0]["JobID"]]
    assert [a["ActorClassName"] for a in actors] == ["ClientAppActor"] * 2, actors
    head_pids = watch.pids[ray_head.sid]
    assert all(a["Pid"] in head_pids and a["Address"]["IPAddress"] == HOST for a in actors)
    # The stage started no Ray of its own: no Ray server and no Python process (Ray's workers and
    # helpers are Python) other than the stage ran in its session. Libraries' short-lived shell
    # probes (``sh -c "... | grep ..."``) may show up in a sample and are not Ray; nor is such a
    # probe caught between its fork and its exec (on a busy host): one sample, the stage's own
    # command line. Ray's processes live for the whole run, so every sample sees them.
    own = watch.pids.get(stage.pid, {}).get(stage.pid)
    others = {pid: name for pid, name in watch.pids[stage.pid].items()
              if pid != stage.pid and not (name == own and watch.seen[pid] == 1)}  # fmt: skip
    ray_like = {pid: name for pid, name in others.items()
                if name.startswith("python") or "ray" in name or name == "gcs_server"}  # fmt: skip
    seen = {pid: (name, watch.seen[pid]) for pid, name in watch.pids[stage.pid].items()}
    assert stage.pid in watch.pids[stage.pid] and not ray_like, seen  # {pid: (label, samples)}

    # Everything listened on loopback and talked to loopback only.
    listening = sorted(watch.listening.items())
    print("listening:", listening, "remote:", sorted(watch.remote))
    assert set(watch.listening.values()) >= {"gcs_server", "raylet"}
    assert all(is_loopback(ip) for ip, _ in watch.listening), listening
    assert all(is_loopback(ip) for ip in watch.remote), sorted(watch.remote)
