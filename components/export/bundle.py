"""The device bundle: models, labels, metadata and their SHA-256 sums; read back only if intact.

Imports nothing but the standard library, so the device side (``edgelearn predict``) loads
without torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import EdgelearnError

FORMAT = "edgelearn.bundle/1"
SUMS = "SHA256SUMS"
FP32_MODEL, INT8_MODEL = "model.onnx", "model.int8.onnx"
LABELS, METADATA = "labels.json", "metadata.json"
REQUIRED = (FP32_MODEL, LABELS, METADATA)  # model.int8.onnx only when int8 passed its gates


class BundleError(EdgelearnError):
    """The bundle is missing, incomplete, or its files do not match their checksums."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(directory: Path, names: list[str]) -> None:
    """``SHA256SUMS`` in ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` verifies it too."""
    lines = [f"{sha256_file(directory / n)}  {n}\n" for n in sorted(names)]
    (directory / SUMS).write_text("".join(lines))


def read_sums(directory: Path) -> dict[str, str]:
    path = directory / SUMS
    if not path.is_file():
        raise BundleError(f"{path}: checksum file missing; refusing an unverifiable bundle")
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name or name.startswith("."):
            raise BundleError(f"{path}:{number}: not a '<sha256>  <file>' line")
        sums[name] = digest.lower()
    return sums


@dataclass(frozen=True)
class Bundle:
    directory: Path
    metadata: dict[str, Any]
    labels: list[str]

    @property
    def has_int8(self) -> bool:
        return bool(self.metadata.get("models", {}).get("int8"))

    def model_path(self, int8: bool = False) -> Path:
        if int8 and not self.has_int8:
            why = "; ".join(self.metadata.get("quantization", {}).get("refused_because", []))
            raise BundleError(
                f"{self.directory}: this bundle has no int8 model"
                + (f" (not shipped: {why})" if why else "")
                + "; run the fp32 model (without --int8)"
            )
        return self.directory / (INT8_MODEL if int8 else FP32_MODEL)


def open_bundle(directory: Path) -> Bundle:
    """Verify every file against ``SHA256SUMS``, then read labels and metadata.

    Refuses (``BundleError`` naming the file) a missing folder, a missing sums file, a required
    file that the sums do not list or that is missing, and any file whose hash differs.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: bundle folder not found (run `dvc repro export`)")
    sums = read_sums(directory)
    for name in REQUIRED:
        if name not in sums:
            raise BundleError(f"{directory / SUMS}: does not list {name}; refusing the bundle")
    for name, expected in sums.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in {SUMS} but missing")
        if sha256_file(path) != expected:
            raise BundleError(
                f"{path}: SHA-256 does not match {SUMS}; the bundle is corrupt or was modified"
            )
    try:
        metadata = json.loads((directory / METADATA).read_text())
        labels = json.loads((directory / LABELS).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # consistent with its sum, yet bad
        raise BundleError(f"{directory}: unreadable labels or metadata ({err})") from None
    if metadata.get("format") != FORMAT:
        raise BundleError(f"{directory / METADATA}: not an {FORMAT} bundle")
    int8 = metadata.get("models", {}).get("int8")
    if int8 and int8 not in sums:
        raise BundleError(f"{directory / SUMS}: does not list {int8}; refusing the bundle")
    return Bundle(directory, metadata, list(labels))
