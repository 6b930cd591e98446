"""Atomic writes: a stage's outputs are either the old ones or the complete new ones, never half.

A process killed half-way (SIGKILL, power loss) leaves only a temporary sibling, which the next
write of the same path removes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary siblings (``.NAME.tmp<pid>``, ``.NAME.tmp-<pid>``, ``.NAME.old-<pid>``)
    that a killed process left next to ``path``; those of live processes stay."""
    removed = []
    for sibling in path.parent.glob(f".{path.name}.*"):
        tail = sibling.name.removeprefix(f".{path.name}.")
        for prefix in ("tmp-", "old-", "tmp"):
            if tail.startswith(prefix) and tail[len(prefix) :].isdigit():
                if not _pid_alive(int(tail[len(prefix) :])):
                    if sibling.is_dir() and not sibling.is_symlink():
                        shutil.rmtree(sibling, ignore_errors=True)
                    else:
                        sibling.unlink(missing_ok=True)
                    removed.append(sibling)
                break
    return removed


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path of ``path`` to write; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def copy_atomic(src: Path, dst: Path) -> None:
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``path``; on success it replaces ``path`` whole.

    On an exception the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    had_old = path.exists() or path.is_symlink()
    if had_old:
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        if had_old:
            os.replace(old, path)  # put the previous output back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.is_symlink() or old.is_file():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)
