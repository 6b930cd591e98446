"""A real Flower federation on this machine: one SuperLink and two SuperNodes on 127.0.0.1 (no
TLS), the deployment app (``deploy/flower``) submitted with ``flwr run``, the result read back:
the run's status, what each SuperNode did, and the model the ServerApp wrote.

Every process is started in its own process group (the SuperLink's and SuperNodes' SuperExec,
ServerApp and ClientApp children stay in it) and every group is killed at the end. Each process
gets its own ``FLWR_HOME`` under ``tmp_path``, so the user's Flower config is not touched.
docs/federated-deployment.md describes the same commands for a real deployment.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.model.checkpoint import load_subnet_file
from tests.helpers import BIN, ROOT
from tests.helpers.federated import WIDTHS, write_start_model
from tests.helpers.netwatch import HOST, SocketWatch, free_ports, is_loopback
from tests.helpers.toy_data import write_prepared

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = ROOT / "deploy" / "flower"
FINETUNE = {"rounds": 2, "clients_per_round": 2, "min_clients": 1, "local_steps": 2,
            "round_timeout_s": 120.0}  # fmt: skip


class Processes:
    """Processes started in their own process groups, output to ``logs/NAME.log``; ``close``
    kills every group (SIGTERM, then SIGKILL) and waits until none of its members is left."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{self.log(name)[-3000:]}"

    def members(self) -> list[psutil.Process]:
        """Every live process in one of our groups (the started ones and their children)."""
        groups = {p.pid for p in self.procs.values()}
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) in groups and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def close(self) -> None:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + grace
            while self.members() and time.monotonic() < deadline:
                time.sleep(0.2)
            for proc in self.procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.1)
            if not self.members():
                break
        left = [(p.pid, p.name()) for p in self.members()]
        assert not left, f"processes left after SIGKILL: {left}"


def member_names(procs: Processes) -> dict[int, str]:
    names = {}
    for p in procs.members():
        with contextlib.suppress(psutil.Error):
            names[p.pid] = p.name()
    return names


def wait_for_port(port: int, procs: Processes, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        procs.alive(name)
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        assert time.monotonic() < deadline, f"{name} is not listening on {port}:\n{procs.log(name)}"
        time.sleep(0.5)


def flwr(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> Any:
    """``flwr ARGS --format json``: its answer, which must say success (a failure exits 0)."""
    proc = subprocess.run([str(BIN / "flwr"), *args, "--format", "json"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"flwr {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    answer = json.loads(proc.stdout)
    assert answer["success"], f"flwr {' '.join(args)}: {answer}"
    return answer


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """Toy prepared data (two clients), a start model and a params.yaml with absolute paths."""
    prepared = write_prepared(tmp_path / "data/prepared", clients=2)
    write_start_model(tmp_path / "models/searched.pt", prepared, steps=5)
    params = {
        "finetune": FINETUNE,
        "paths": {
            "prepared": str(prepared),
            "searched": str(tmp_path / "models/searched.pt"),
            "final": str(tmp_path / "models/final.pt"),
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path, prepared


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path / "logs")
    try:
        yield procs
    finally:
        procs.close()


def flower_env(home: Path) -> dict[str, str]:
    """This venv's scripts first on PATH (the SuperLink and SuperNodes start ``flower-superexec``
    by name), a private FLWR_HOME, no telemetry, no proxy (everything is on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("FLWR_", "RAY_"))}  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", FLWR_HOME=str(home),
               FLWR_TELEMETRY_ENABLED="0", PYTHONUNBUFFERED="1")  # fmt: skip
    return env


def test_flwr_run_on_a_local_superlink_and_two_supernodes(
    workspace: tuple[Path, Path], processes: Processes
) -> None:
    work, prepared = workspace
    serverappio, fleet, control, node0, node1 = free_ports(5)
    processes.start(
        "superlink",
        [str(BIN / "flower-superlink"), "--insecure",
         "--serverappio-api-address", f"{HOST}:{serverappio}",
         "--fleet-api-address", f"{HOST}:{fleet}",
         "--control-api-address", f"{HOST}:{control}",
         "--disable-runtime-dependency-installation"],
        flower_env(work / "flwr/superlink"), work,
    )  # fmt: skip
    with SocketWatch(lambda: member_names(processes)) as watch:
        wait_for_port(fleet, processes, "superlink")
        wait_for_port(control, processes, "superlink")
        for k, port in enumerate((node0, node1)):
            processes.start(
                f"supernode{k}",
                [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"{HOST}:{fleet}",
                 "--clientappio-api-address", f"{HOST}:{port}",
                 "--node-config", f"partition-id={k} data-dir='{prepared}'"],
                flower_env(work / f"flwr/supernode{k}"), work,
            )  # fmt: skip
        for k, port in enumerate((node0, node1)):
            wait_for_port(port, processes, f"supernode{k}")

        cli_home = work / "flwr/cli"
        cli_env = flower_env(cli_home)
        (cli_home / "config.toml").write_text(
            '[superlink]\ndefault = "edgelearn-test"\n\n[superlink.edgelearn-test]\n'
            f'address = "{HOST}:{control}"\ninsecure = true\n'
        )
        run_config = f"params='{work / 'params.yaml'}' clients=2"
        started = flwr(["run", str(APP), "edgelearn-test", "--run-config", run_config], cli_env,
                       work)  # fmt: skip
        assert started["fab-name"] == "edgelearn-federated", started
        run_id = started["run-id"]

        # The ServerApp writes paths.final as its last act; the run is then finished.
        final = work / "models/final.pt"
        deadline = time.monotonic() + 300
        status = ""
        while not status.startswith("finished"):
            assert time.monotonic() < deadline, (
                f"run {run_id} still {status!r} after 300 s\n" + processes.log("superlink")[-4000:]
            )
            for name in processes.procs:
                processes.alive(name)
            time.sleep(5)
            listed = flwr(["ls", "edgelearn-test", "--run-id", str(run_id)], cli_env, work)
            status = listed["runs"][0]["status"]
        logs = subprocess.run(
            [str(BIN / "flwr"), "log", str(run_id), "edgelearn-test", "--show"], env=cli_env,
            cwd=work, capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        (processes.logs / "run.log").write_text(logs)
        watch.sample()

    assert status == "finished:completed", f"{status}\n{logs[-4000:]}"
    # The ServerApp's log, as the SuperLink returns it: two rounds, both clients' updates accepted.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", logs)
    accepted = "Aggregated MetricRecord: {'accepted': 2, 'failed': 0, 'rejected': 0"
    assert plain.count(accepted) == 2, plain[-4000:]
    # Each SuperNode answered the registration query, the federated evaluations at the start and
    # the end, and both rounds' training (two clients per round: every node trains every round).
    for k in (0, 1):
        text = processes.log(f"supernode{k}")
        kinds = ("query", "train", "evaluate")
        replies = {kind: text.count(f"Sending: {kind} message") for kind in kinds}
        assert replies == {"query": 1, "train": 2, "evaluate": 2}, text[-3000:]
    # What the ServerApp wrote: the start network with federated weights.
    assert final.is_file(), logs[-4000:]
    net, payload = load_subnet_file(final)
    start, _ = load_subnet_file(work / "models/searched.pt")
    assert net.widths == WIDTHS
    assert payload["finetune"]["rounds"] == 2 and payload["finetune"]["local_steps"] == 2
    state = net.state_dict()
    changed = [n for n, t in state.items() if not torch.equal(t, start.state_dict()[n])]
    assert changed, "the final model equals the start model: no update reached it"
    assert all(torch.isfinite(state[n]).all() for n in changed)
    # Everything we started listened on 127.0.0.1 only, on the ports we gave it.
    listening = sorted(watch.listening.items())
    print("listening:", listening)
    assert {port for _, port in watch.listening} == {serverappio, fleet, control, node0, node1}
    assert all(is_loopback(ip) for ip, _ in watch.listening), listening


def write_credentials(root: Path) -> dict[str, Path]:
    """A throwaway CA (``ca.crt``), a certificate for 127.0.0.1 signed by it (``server.pem``,
    ``server.key``) and two SuperNode key pairs (``nodeK``, ``nodeK.pub``: EC P-384 in OpenSSH
    format, as ``ssh-keygen -t ecdsa -b 384`` writes them)."""
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    pem, openssh = serialization.Encoding.PEM, serialization.Encoding.OpenSSH
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgelearn test CA")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> bytes:
        ca = subject == ca_name
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(pem)

    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    files = {
        "ca.crt": certificate(ca_name, ca_key),
        "server.pem": certificate(server_name, server_key),
        "server.key": server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for node in ("node0", "node1"):
        key = ec.generate_private_key(ec.SECP384R1())
        files[node] = key.private_bytes(
            pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        files[f"{node}.pub"] = key.public_key().public_bytes(
            openssh, serialization.PublicFormat.OpenSSH
        )
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in files}


def test_tls_and_supernode_authentication_on_localhost(
    tmp_path: Path, processes: Processes
) -> None:
    """The settings docs/federated-deployment.md gives for a real deployment, on 127.0.0.1: the
    SuperLink serves TLS and admits only SuperNodes whose public key was registered with
    ``flwr supernode register``; the CLI and the SuperNodes trust the CA. No run (no ClientApp):
    the registered SuperNode comes online, the unregistered one is refused."""
    creds = write_credentials(tmp_path / "certificates")
    serverappio, fleet, control, node0, node1 = free_ports(5)
    processes.start(
        "superlink",
        [str(BIN / "flower-superlink"),
         "--ssl-ca-certfile", str(creds["ca.crt"]), "--ssl-certfile", str(creds["server.pem"]),
         "--ssl-keyfile", str(creds["server.key"]), "--enable-supernode-auth",
         "--serverappio-api-address", f"{HOST}:{serverappio}",
         "--fleet-api-address", f"{HOST}:{fleet}",
         "--control-api-address", f"{HOST}:{control}",
         "--disable-runtime-dependency-installation"],
        flower_env(tmp_path / "flwr/superlink"), tmp_path,
    )  # fmt: skip
    wait_for_port(fleet, processes, "superlink")
    wait_for_port(control, processes, "superlink")
    cli_home = tmp_path / "flwr/cli"
    cli_env = flower_env(cli_home)
    (cli_home / "config.toml").write_text(
        '[superlink]\ndefault = "edgelearn-test"\n\n[superlink.edgelearn-test]\n'
        f'address = "{HOST}:{control}"\nroot-certificates = "{creds["ca.crt"]}"\n'
    )
    registered = flwr(["supernode", "register", str(creds["node0.pub"]), "edgelearn-test"],
                      cli_env, tmp_path)  # fmt: skip
    node_id = str(registered["node-id"])
    for k, port in enumerate((node0, node1)):
        processes.start(
            f"supernode{k}",
            [str(BIN / "flower-supernode"), "--superlink", f"{HOST}:{fleet}",
             "--root-certificates", str(creds["ca.crt"]),
             "--auth-supernode-private-key", str(creds[f"node{k}"]),
             "--clientappio-api-address", f"{HOST}:{port}",
             "--node-config", f"partition-id={k} data-dir='{tmp_path}'"],
            flower_env(tmp_path / f"flwr/supernode{k}"), tmp_path,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    nodes: list[dict] = []
    while not any(n["status"] == "online" for n in nodes):
        assert time.monotonic() < deadline, f"{nodes}\n{processes.log('supernode0')[-3000:]}"
        time.sleep(2)
        nodes = flwr(["supernode", "ls", "edgelearn-test"], cli_env, tmp_path)["nodes"]
    assert [(n["node-id"], n["status"]) for n in nodes] == [(node_id, "online")], nodes
    # The SuperNode whose key was not registered is refused on its first request and exits.
    refused = processes.procs["supernode1"]
    with contextlib.suppress(subprocess.TimeoutExpired):
        refused.wait(timeout=60)
    text = processes.log("supernode1")
    assert refused.returncode not in (None, 0), text[-3000:]
    assert "No SuperNode found with the given public key." in text, text[-3000:]
    processes.alive("supernode0")
    # The Fleet and Control APIs speak TLS with the server certificate, verified against the CA.
    context = ssl.create_default_context(cafile=str(creds["ca.crt"]))
    context.set_alpn_protocols(["h2"])
    for port in (fleet, control):
        with (
            socket.create_connection((HOST, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            assert tls.selected_alpn_protocol() == "h2" and tls.getpeercert(), port
