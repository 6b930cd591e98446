"""The two model files every stage hands on: the super-network checkpoint and a sub-network file.

Both are plain dicts saved with ``torch.save`` (loadable with ``weights_only=True``, no Lightning,
no pickled classes) and carry a ``format`` tag that the loader checks:

- ``edgelearn.supernet/1`` (``models/supernet.ckpt``): ``{"format", "space", "state_dict", ...}``
- ``edgelearn.subnet/1`` (``models/searched.pt``, ``models/final.pt``):
  ``{"format", "config", "state_dict", ...}`` where ``config`` is ``SubNetwork.config``.

Extra keys (metrics, history, the architecture record) ride along and are returned as loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from components.errors import EdgelearnError
from components.io import atomic_file
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork, build_subnet
from components.model.supernet import SuperNet

SUPERNET_FORMAT = "edgelearn.supernet/1"
SUBNET_FORMAT = "edgelearn.subnet/1"
_WHAT = {SUPERNET_FORMAT: "super-network checkpoint", SUBNET_FORMAT: "sub-network file"}


def save_payload(path: Path, fmt: str, payload: dict[str, Any]) -> None:
    """Write ``{"format": fmt, **payload}`` atomically (temp file, then rename)."""
    with atomic_file(Path(path)) as tmp:
        torch.save({"format": fmt, **payload}, tmp)


def load_payload(path: Path, fmt: str) -> dict[str, Any]:
    """Read a file written by ``save_payload``; a missing, unreadable or foreign file is one
    clear error naming it."""
    path = Path(path)
    what = _WHAT.get(fmt, fmt)
    if not path.is_file():
        raise EdgelearnError(f"{path}: {what} not found; run the stage that writes it")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise EdgelearnError(f"{path}: not a readable {what} ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise EdgelearnError(f"{path}: not an edgelearn {what} (format {fmt}, found {found!r})")
    return payload


def save_supernet(path: Path, net: SuperNet, extra: dict[str, Any] | None = None) -> None:
    payload = {"space": net.space.to_dict(), "state_dict": net.state_dict(), **(extra or {})}
    save_payload(path, SUPERNET_FORMAT, payload)


def load_supernet_file(path: Path) -> tuple[SuperNet, dict[str, Any]]:
    """The super-network (eval mode) and the whole payload (metrics, history)."""
    payload = load_payload(path, SUPERNET_FORMAT)
    net = SuperNet(SearchSpace.from_dict(payload["space"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval(), payload


def load_supernet(path: Path) -> SuperNet:
    return load_supernet_file(path)[0]


def save_subnet(path: Path, model: SubNetwork, extra: dict[str, Any] | None = None) -> None:
    payload = {"config": model.config, "state_dict": model.state_dict(), **(extra or {})}
    save_payload(path, SUBNET_FORMAT, payload)


def load_subnet_file(path: Path) -> tuple[SubNetwork, dict[str, Any]]:
    """The sub-network (eval mode) and the whole payload."""
    payload = load_payload(path, SUBNET_FORMAT)
    model = build_subnet(payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


def load_subnet(path: Path) -> SubNetwork:
    return load_subnet_file(path)[0]
