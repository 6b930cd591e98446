"""The device bundle: its files and metadata, and refusal of anything that fails its checksums."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from components.data.labels import CLASSES
from components.export.bundle import SUMS, BundleError, open_bundle

pytestmark = pytest.mark.slow


def test_bundle_holds_models_labels_metadata_and_sums(exported):
    bundle = exported.result.bundle_dir
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["model.onnx", "model.int8.onnx", "labels.json", "metadata.json", SUMS]
    )
    # The graphs at the top of export/ are the same files as the bundle's.
    for name in ("model.onnx", "model.int8.onnx"):
        assert (exported.workdir / "export" / name).read_bytes() == (bundle / name).read_bytes()
    # Standard tools verify it too.
    check = subprocess.run(["sha256sum", "-c", SUMS], cwd=bundle, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads((bundle / "labels.json").read_text()) == list(CLASSES)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["sample_rate"] == 16000 and meta["clip_samples"] == 16000
    assert meta["input"]["name"] == "audio" and meta["input"]["shape"] == ["batch", 16000]
    assert [o["name"] for o in meta["outputs"]] == ["logits", "probabilities"]
    assert meta["opset"]["ai.onnx"] == 18
    assert meta["architecture"]["widths"] == exported.net.config["widths"]
    assert meta["architecture"]["parameters"] > 0
    assert meta["provenance"]["git_commit"] == "test"
    assert meta["provenance"]["mlflow_run_id"] == "none"
    assert len(meta["provenance"]["model_sha256"]) == 64
    assert meta["verification"]["parity_max_abs_diff"] <= 1e-4


@pytest.fixture
def bundle_copy(exported, tmp_path):
    return shutil.copytree(exported.result.bundle_dir, tmp_path / "bundle")


def test_open_bundle_accepts_the_intact_bundle(bundle_copy):
    bundle = open_bundle(bundle_copy)
    assert bundle.labels == list(CLASSES)
    assert bundle.model_path(int8=True).name == "model.int8.onnx"


def test_a_modified_model_is_refused_by_name(bundle_copy):
    model = bundle_copy / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.int8\.onnx: SHA-256 does not match SHA256SUMS"):
        open_bundle(bundle_copy)


def test_missing_or_incomplete_sums_are_refused(bundle_copy):
    sums = bundle_copy / SUMS
    lines = sums.read_text().splitlines()
    sums.write_text("\n".join(line for line in lines if "labels.json" not in line) + "\n")
    with pytest.raises(BundleError, match=r"does not list labels\.json"):
        open_bundle(bundle_copy)
    sums.write_text("not a checksum line\n")
    with pytest.raises(BundleError, match=r"SHA256SUMS:1: not a '<sha256>  <file>' line"):
        open_bundle(bundle_copy)
    sums.unlink()
    with pytest.raises(BundleError, match="checksum file missing"):
        open_bundle(bundle_copy)
    (bundle_copy / "metadata.json").unlink()
    with pytest.raises(BundleError, match="bundle folder not found"):
        open_bundle(bundle_copy / "nope")
