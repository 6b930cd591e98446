"""Scan a folder in Google Speech Commands layout (v0.01/v0.02, or the synthesized corpus)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.data.labels import BACKGROUND_NOISE_DIR, KEYWORDS, folder_name, label_of_word
from components.errors import CorpusError

CLIP_NAME = re.compile(r"^(?P<speaker>[A-Za-z0-9]+)_nohash_(?P<utterance>\d+)\.wav$")
SPEAKERS_FILE = "speakers.json"


@dataclass(frozen=True)
class Clip:
    path: str  # relative to the corpus root, POSIX separators
    label: str
    speaker: str


@dataclass(frozen=True)
class Rejection:
    path: str
    reason: str


@dataclass
class CorpusScan:
    """What a corpus folder holds, before any audio is read."""

    root: Path
    clips: list[Clip]
    noise_files: list[str]
    validation: frozenset[str]
    testing: frozenset[str]
    speaker_pools: dict[str, str]  # speaker -> "server" | "client", only for synthesized corpora
    rejected: list[Rejection] = field(default_factory=list)


def _read_list(root: Path, name: str) -> frozenset[str]:
    path = root / name
    if not path.is_file():
        return frozenset()
    lines = path.read_text(errors="replace").splitlines()
    return frozenset(line.strip().replace("\\", "/") for line in lines if line.strip())


def _read_speaker_pools(root: Path) -> dict[str, str]:
    path = root / SPEAKERS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        pools = {str(s): str(meta["pool"]) for s, meta in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CorpusError(
            f"{path}: expected {{speaker: {{'pool': ...}}}}, could not read it ({err})"
        ) from None
    bad = sorted({p for p in pools.values() if p not in ("server", "client")})
    if bad:
        raise CorpusError(f"{path}: pool must be 'server' or 'client', found {bad}")
    return pools


def scan_corpus(root: Path, keywords: Sequence[str] = KEYWORDS) -> CorpusScan:
    """List the clips of a Speech Commands folder; files that cannot be clips are rejected by name.

    A keyword's clips are in its ``folder_name`` ("hey edge" -> hey_edge/); every other word folder
    is `_unknown_`. Raises ``CorpusError`` naming ``root`` when the folder is missing or is not in
    that layout (no keyword has a folder).
    """
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"{root}: corpus folder does not exist")
    if not root.is_dir():
        raise CorpusError(f"{root}: expected a folder in Speech Commands layout, found a file")
    words = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    folders = [folder_name(k) for k in keywords]
    if not any(p.name in folders for p in words):
        found = ", ".join(p.name for p in words[:8]) or "no word folders"
        expected = ", ".join(f"{f}/" for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
        raise CorpusError(
            f"{root}: unknown layout: expected one folder per word ({expected}) with "
            f"<speaker>_nohash_<n>.wav files; found {found}"
        )
    clips: list[Clip] = []
    rejected: list[Rejection] = []
    for word_dir in words:
        for item in sorted(word_dir.iterdir()):
            rel = item.relative_to(root).as_posix()
            if item.is_dir():
                rejected.append(Rejection(rel, "unexpected folder inside a word folder"))
            elif item.suffix.lower() != ".wav":
                rejected.append(Rejection(rel, "not a .wav file"))
            elif (m := CLIP_NAME.match(item.name)) is None:
                rejected.append(Rejection(rel, "name is not <speaker>_nohash_<n>.wav"))
            else:
                clips.append(Clip(rel, label_of_word(word_dir.name, keywords), m["speaker"]))
    noise_dir = root / BACKGROUND_NOISE_DIR
    noise_files: list[str] = []
    if noise_dir.is_dir():
        for item in sorted(noise_dir.iterdir()):
            rel = item.relative_to(root).as_posix()
            if item.suffix.lower() == ".wav" and item.is_file():
                noise_files.append(rel)
            elif item.name.lower() not in ("readme.md", "readme.txt", "readme"):
                rejected.append(Rejection(rel, "not a .wav file"))
    if not clips:
        raise CorpusError(f"{root}: no <speaker>_nohash_<n>.wav clips in any word folder")
    return CorpusScan(
        root=root,
        clips=clips,
        noise_files=noise_files,
        validation=_read_list(root, "validation_list.txt"),
        testing=_read_list(root, "testing_list.txt"),
        speaker_pools=_read_speaker_pools(root),
        rejected=rejected,
    )
