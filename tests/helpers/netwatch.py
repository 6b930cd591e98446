"""What the processes a deployment test started listen on and talk to, sampled in a thread.

Shared by the Ray-cluster and Flower-deployment tests: both must show that everything they start
binds to loopback and connects only there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable

import psutil

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 right now (held open together, so the
    kernel hands out different ones)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class SocketWatch:
    """Samples, once a second (and on ``sample()``), the TCP sockets of the processes that
    ``members()`` names ({pid: label}): ``listening`` maps (ip, port) to the label of the process
    that listened there, ``remote`` collects the peer addresses of their connections."""

    def __init__(self, members: Callable[[], dict[int, str]]) -> None:
        self.members = members
        self.listening: dict[tuple[str, int], str] = {}
        self.remote: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(1.0)

    def sample(self) -> None:
        names = self.members()
        with contextlib.suppress(psutil.Error):
            for c in psutil.net_connections("tcp"):
                if c.pid not in names:
                    continue
                if c.status == psutil.CONN_LISTEN:
                    self.listening[(c.laddr.ip, c.laddr.port)] = names[c.pid]
                elif c.raddr:
                    self.remote.add(c.raddr.ip)

    def __enter__(self) -> SocketWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
