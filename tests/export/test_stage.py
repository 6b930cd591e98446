"""Export stage inputs and gates: clear errors that name what is wrong."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from components.config import params_from_dict
from components.data import real_voices
from components.errors import EdgelearnError
from components.export import stage
from components.export.bundle import SUMS, BundleError, open_bundle, sha256_file
from components.export.evaluate import score_folder
from components.export.gates import SPEED_NOT_CHECKED, ExportCheckError
from components.export.predict import Predictor
from components.model.checkpoint import save_subnet
from tests.export.conftest import FLEET_DEVICE, IMPORTED_DEVICE, IMPORTED_THREADS
from tests.helpers import kws


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(EdgelearnError, match=r"models/final\.pt: sub-network file not found"):
        stage.run(params_from_dict({}), tmp_path, {})


def test_missing_prepared_data_is_one_clear_error(tmp_path):
    from components.model.subnet import SubNetwork

    save_subnet(tmp_path / "models/final.pt", SubNetwork(kws.SPACE, kws.WIDTHS))
    with pytest.raises(EdgelearnError, match=r"data/prepared: not a prepared dataset"):
        stage.run(params_from_dict({}), tmp_path, {})
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_a_refused_int8_ships_a_usable_fp32_bundle_and_says_why(fp32_only):
    m, result = fp32_only.result.metrics, fp32_only.result
    assert m["int8_shipped"] == 0 and result.int8_path is None
    assert m["int8_bytes"] > 0 and math.isfinite(m["int8_latency_ms"])  # built and measured
    out = fp32_only.workdir / "export"
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle", "devices", "model.onnx", "real_voices"
    ]  # fmt: skip
    assert sorted(p.name for p in result.bundle_dir.iterdir()) == sorted(
        ["model.onnx", "labels.json", "metadata.json", SUMS]
    )
    quant = json.loads((result.bundle_dir / "metadata.json").read_text())["quantization"]
    assert quant["shipped"] is False
    # the speed gate refuses it; the accuracy gate may too (a tiny network's int8 drop varies
    # with the CPU and with float rounding in training), and then says so first
    assert any("below export.int8_min_speedup = 1000" in r for r in quant["refused_because"])
    bundle = open_bundle(result.bundle_dir)
    assert not bundle.has_int8
    with pytest.raises(BundleError, match=r"no int8 model \(not shipped: .*int8 runs at .*--int8"):
        bundle.model_path(int8=True)


@pytest.mark.slow
def test_a_fleet_gets_a_checked_bundle_per_device_with_its_own_network(fp32_only):
    """The second device's bundle: its own network (search/devices/<name>/model.pt), timed on
    its own profile, with the same checks and files as the primary's, and said to be trained on
    server data only."""
    work, result, m = fp32_only.workdir, fp32_only.result, fp32_only.result.metrics
    folder = work / "export/devices" / FLEET_DEVICE
    assert result.fleet_bundles[FLEET_DEVICE] == folder / "bundle"
    assert set(result.fleet_bundles) == {FLEET_DEVICE, IMPORTED_DEVICE}
    assert sorted(p.name for p in folder.iterdir()) == ["bundle", "model.onnx", "real_voices"]
    bundle = open_bundle(folder / "bundle")  # every file against its sum
    meta, primary = bundle.metadata, result.metadata
    model = work / f"search/devices/{FLEET_DEVICE}/model.pt"
    assert meta["provenance"]["model_file"] == f"search/devices/{FLEET_DEVICE}/model.pt"
    assert meta["provenance"]["model_sha256"] == sha256_file(model)
    assert primary["provenance"]["model_file"] == "models/final.pt"
    assert meta["latency_ms"]["profile"] == FLEET_DEVICE
    assert primary["latency_ms"]["profile"] == "test-quick"
    assert meta["latency_ms"]["graph_optimization"] == "all" and meta["latency_ms"]["threads"] == 1
    assert meta["mlflow_registered_model"] is None and primary["mlflow_registered_model"]
    assert "server data only" in meta["training"] and "federated" in primary["training"]
    assert (folder / "model.onnx").read_bytes() != (work / "export/model.onnx").read_bytes()
    assert meta["latency_ms"]["measured_here"] is primary["latency_ms"]["measured_here"] is True
    assert m["devices"] == 3 and set(m["fleet"]) == {FLEET_DEVICE, IMPORTED_DEVICE}
    figures = m["fleet"][FLEET_DEVICE]
    assert figures["fp32_test_acc"] == meta["verification"]["fp32_test_acc"]
    assert meta["latency_ms"]["fp32"] == figures["fp32_latency_ms"] > 0


@pytest.mark.slow
def test_a_fleet_device_measured_elsewhere_gets_a_checked_bundle_that_is_not_timed_here(fp32_only):
    """A device whose search.profiles entry is an imported latency table: its bundle has the
    same checks (parity, the int8 accuracy gate, detection, real voices), is named and threaded
    as its table's device record says, and is not timed here: no latency figure, and the int8
    speed gate is said to be not applied (the gate that no model passes in this fixture), so
    int8 ships exactly when its accuracy gate passes."""
    work, m = fp32_only.workdir, fp32_only.result.metrics
    folder = work / "export/devices" / IMPORTED_DEVICE
    assert fp32_only.result.fleet_bundles[IMPORTED_DEVICE] == folder / "bundle"
    meta = open_bundle(folder / "bundle").metadata  # every file against its sum
    assert meta["provenance"]["model_file"] == f"search/devices/{IMPORTED_DEVICE}/model.pt"
    assert meta["latency_ms"] == {"profile": IMPORTED_DEVICE, "threads": IMPORTED_THREADS,
                                  "graph_optimization": "all", "measured_here": False}  # fmt: skip
    figures = m["fleet"][IMPORTED_DEVICE]
    for key in ("fp32_latency_ms", "int8_latency_ms", "torch_latency_ms"):
        assert math.isnan(figures[key]), key
    quant = meta["quantization"]
    assert quant["not_checked"] == [SPEED_NOT_CHECKED]
    drop = figures["fp32_test_acc"] - figures["int8_test_acc"]
    assert quant["shipped"] is (drop <= 1.0) and bool(figures["int8_shipped"]) is quant["shipped"]
    assert all("int8_min_speedup" not in reason for reason in quant["refused_because"])
    assert (folder / "model.int8.onnx").is_file() is quant["shipped"]
    assert figures["fp32_test_acc"] == meta["verification"]["fp32_test_acc"] > 0
    assert math.isfinite(figures["real_voice_acc"])


@pytest.mark.slow
def test_a_fleet_device_without_its_network_stops_before_anything_is_written(fp32_only, tmp_path):
    for rel in ("data/prepared", "models"):
        shutil.copytree(fp32_only.workdir / rel, tmp_path / rel)
    missing = rf"search/devices/{FLEET_DEVICE}/model.pt: device '{FLEET_DEVICE}' of search"
    with pytest.raises(EdgelearnError, match=missing):
        stage.run(fp32_only.params, tmp_path, {})
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_required_int8_that_is_refused_stops_the_stage_and_keeps_the_old_export(fp32_only):
    work = fp32_only.workdir
    before = {p.relative_to(work): p.read_bytes() for p in (work / "export").rglob("*")
              if p.is_file()}  # fmt: skip
    params = fp32_only.params.model_copy(
        update={"export": fp32_only.params.export.model_copy(update={"int8": "required"})}
    )
    with pytest.raises(ExportCheckError, match=r"export\.int8 is 'required' but the int8 model"):
        stage.run(params, work, {})
    after = {p.relative_to(work): p.read_bytes() for p in (work / "export").rglob("*")
             if p.is_file()}  # fmt: skip
    assert after == before
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".export")) == []


@pytest.mark.slow
def test_int8_off_never_quantizes(fp32_only, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("quantize_int8 must not run with export.int8: off")

    monkeypatch.setattr(stage, "quantize_int8", fail)
    params = fp32_only.params.model_copy(
        update={"export": fp32_only.params.export.model_copy(update={"int8": "off"})}
    )
    result = stage.run(params, fp32_only.workdir, {})
    assert result.metrics["int8_shipped"] == 0 and result.metrics["int8_bytes"] == 0
    assert result.metadata["quantization"]["refused_because"] == ["export.int8 is 'off'"]


@pytest.mark.slow
def test_real_voices_are_scored_and_recorded(exported):
    """The human recordings Debian ships are a test set of their own: built next to the bundle,
    scored as `edgelearn evaluate` scores a folder, and summarized in the bundle's metadata."""
    m, result = exported.result.metrics, exported.result
    folder = exported.workdir / "export" / "real_voices"
    manifest = real_voices.read_manifest(folder)
    counts = manifest["counts"]
    assert m["real_voice_clips"] == sum(counts.values())
    assert m["real_voice_unknown_clips"] == counts["_unknown_"]
    assert m["real_voice_keyword_clips"] == sum(n for k, n in counts.items() if k != "_unknown_")
    assert 0 <= m["real_voice_false_accepts"] <= m["real_voice_unknown_clips"]
    device = Predictor(open_bundle(result.bundle_dir))
    again = score_folder(folder, device, result.metadata).figures
    assert m["real_voice_acc"] == round(again["accuracy_pct"], 3)
    assert m["real_voice_false_accepts"] == again["false_accepts"]
    assert result.metadata["real_voices"]["counts"] == counts
