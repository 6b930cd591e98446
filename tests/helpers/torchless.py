"""A process that cannot import torch, as on a device: the bundle's commands must run there."""

from __future__ import annotations

import os
from pathlib import Path


def no_torch_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import torch: a ``torch`` package first on the path
    that raises ImportError, the way a device without torch would fail."""
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError('torch is not installed on this device (blocked by the test)')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(blocker.parent)
    return env
