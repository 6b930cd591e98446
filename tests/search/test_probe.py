"""The device probe: the folder ``edgelearn probe export`` writes, and its ``measure.py`` run where
torch cannot load, writing a table the search stage imports."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from components.latency import Latency
from components.model.checkpoint import save_supernet
from components.model.space import SearchSpace, StageSpec
from components.model.supernet import SuperNet
from components.search import probe_measure
from components.search.lut import (
    DeviceGraph,
    LatencyTable,
    build_table,
    table_entries,
    table_from_medians,
)
from components.search.probe import MEASURE_SCRIPT, export_probe, probe_manifest
from flows.cli import USER_ERROR_EXIT, main
from tests.helpers.search import QUICK
from tests.helpers.spaces import TINY_FEATURES
from tests.helpers.spaces import TINY_SPACE as SPACE
from tests.helpers.torchless import no_torch_env

GRAPH = DeviceGraph(TINY_FEATURES, 18)

# Two layers, 32 and 16 channels in steps of 8: with width stride 2 layer 0 measures 8, 24 and 32
# and interpolates 16.
STRIDED_SPACE = SearchSpace(n_mels=8, frames=12, num_classes=3, stem_stride=(2, 2), width_step=8,
                            stages=(StageSpec(32, 1, 1), StageSpec(16, 1, 2)))  # fmt: skip


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("host") / "probe"
    export_probe(SuperNet(SPACE).eval(), QUICK, GRAPH, out, width_stride=1)
    return out


def test_the_probe_folder_holds_every_table_entry(probe_dir: Path) -> None:
    manifest = json.loads((probe_dir / "probe.json").read_text())
    entries = table_entries(SPACE, 1)
    assert [e["key"] for e in manifest["entries"]] == [e.key for e in entries]
    assert [e["role"] for e in manifest["entries"]] == ["base"] + ["layer"] * 6 + ["full"]
    assert manifest["entries"][4] == {"key": "widths [0, 16, 0]", "role": "layer", "layer": 1,
                                      "width": 16, "widths": [0, 16, 0],
                                      "file": "models/4.onnx"}  # fmt: skip
    assert manifest["input"] == {"name": "audio", "shape": [1, 1760], "dtype": "float32"}
    assert manifest["graph"] == {"opset": 18, "features": TINY_FEATURES.model_dump()}
    assert manifest["device"] == QUICK.model_dump()
    assert SearchSpace.from_dict(manifest["space"]) == SPACE
    assert sorted(p.name for p in probe_dir.iterdir()) == ["README.txt", "measure.py", "models",
                                                           "probe.json"]  # fmt: skip
    assert len(list((probe_dir / "models").glob("*.onnx"))) == 8 == len(manifest["files"])
    assert (probe_dir / "measure.py").read_bytes() == MEASURE_SCRIPT.read_bytes()


def test_entries_with_the_same_widths_share_one_graph() -> None:
    one_layer = SearchSpace(n_mels=8, frames=12, num_classes=3, stem_stride=(2, 2), width_step=8,
                            stages=(StageSpec(16, 1, 1),))  # fmt: skip
    entries = probe_manifest(one_layer, QUICK, GRAPH, 1)["entries"]
    assert [(e["role"], e["file"]) for e in entries] == [
        ("base", "models/0.onnx"), ("layer", "models/1.onnx"), ("layer", "models/2.onnx"),
        ("full", "models/2.onnx"),  # the full network is layer 0 at 16
    ]  # fmt: skip


def test_the_probe_graphs_are_the_graphs_the_table_times(probe_dir: Path) -> None:
    timed: dict[str, bytes] = {}

    def measurer(models, profile) -> dict[str, Latency]:
        timed.update({key: model for key, (model, _feed) in models.items()})
        return {key: Latency(1.0, 1, 1, 1, 1, 10, 1, 1, 1, 0.0) for key in models}

    build_table(SuperNet(SPACE).eval(), QUICK, GRAPH, 1, measurer)
    manifest = json.loads((probe_dir / "probe.json").read_text())
    assert {e["key"] for e in manifest["entries"]} == set(timed)
    for entry in manifest["entries"]:
        ours = onnx.load(probe_dir / entry["file"]).graph
        host = onnx.load_from_string(timed[entry["key"]]).graph
        assert [n.op_type for n in ours.node] == [n.op_type for n in host.node], entry["key"]
        for mine, theirs in ((ours.input, host.input), (ours.output, host.output)):
            assert [(v.name, v.type.tensor_type.shape) for v in mine] == [
                (v.name, v.type.tensor_type.shape) for v in theirs
            ]


def test_the_device_assembles_the_table_as_the_host_does() -> None:
    manifest = probe_manifest(STRIDED_SPACE, QUICK, GRAPH, 2, fit=3)
    assert [layer["grid"] for layer in manifest["layers"]] == [[8, 24, 32], [8, 16]]
    roles = [e["role"] for e in manifest["entries"]]
    assert roles == ["base", *["layer"] * 5, *["fit"] * 3, "full"]
    # any medians (here no additive device): the device's least squares are the host's
    medians = {e["key"]: 1.0 + 0.1 * n for n, e in enumerate(manifest["entries"])}
    device = probe_measure.assemble_lut(manifest, medians, {"name": "phone"}, {"seconds": 3.0})
    host = table_from_medians(STRIDED_SPACE, {"name": "phone"}, medians, 2, {"seconds": 3.0}, 3)
    assert LatencyTable.from_dict(device).to_dict() == host.to_dict()
    assert host.info == {"seconds": 3.0, "width_stride": 2, "full_ms": pytest.approx(1.9),
                         "base_measured_ms": 1.0, "fit_archs": 3}  # fmt: skip
    # an additive device: both recover it exactly, interpolated between grid widths
    costs = ({8: 0.1, 24: 0.2, 32: 0.3}, {8: 0.05, 16: 0.25})
    additive = {e["key"]: 1.0 + sum(costs[i][w] for i, w in enumerate(e["widths"]) if w)
                for e in manifest["entries"]}  # fmt: skip
    device = probe_measure.assemble_lut(manifest, additive, {"name": "phone"}, {})
    host = table_from_medians(STRIDED_SPACE, {"name": "phone"}, additive, 2, None, 3)
    assert device["base_ms"] == pytest.approx(1.0) == host.base_ms
    assert host.layer_ms[0] == {0: 0.0, 8: pytest.approx(0.1), 16: pytest.approx(0.15),
                                24: pytest.approx(0.2), 32: pytest.approx(0.3)}  # fmt: skip
    assert device["layers"][1]["ms"] == {"0": 0.0, "8": pytest.approx(0.05),
                                         "16": pytest.approx(0.25)}  # fmt: skip


def test_measure_py_writes_an_importable_table_where_torch_cannot_load(probe_dir, tmp_path):
    env = no_torch_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert blocked.returncode != 0 and b"blocked by the test" in blocked.stderr
    device = shutil.copytree(probe_dir, tmp_path / "on-the-device")
    proc = subprocess.run(
        [sys.executable, "measure.py", "--quick", "--out", "lut.json", "--device-name", "phone"],
        cwd=device, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, *passes = proc.stderr.splitlines()
    assert first.startswith("measuring 8 graphs (8 table entries) with ONNX Runtime")
    assert passes and all(re.fullmatch(r"pass \d+: \d+ samples per graph, .*", p) for p in passes)
    assert proc.stdout.startswith("wrote lut.json: phone, all-removed network")

    table = LatencyTable.load(device / "lut.json", SPACE)  # as the search stage imports it
    for i in range(SPACE.num_layers):
        assert sorted(table.layer_ms[i]) == SPACE.width_choices(i)
    assert table.base_ms > 0
    assert table.device["name"] == "phone" and table.device["repeats"] == QUICK.repeats
    info = table.info
    assert info["measured_by"] == "edgelearn probe" and info["width_stride"] == 1
    assert info["quick"] is True and info["method"].startswith("least-squares fit")
    # plausible, not timed: the host is noisy, so only a loose factor
    assert 0.5 * info["full_ms"] <= table.predict(SPACE.largest()) <= 2 * info["full_ms"]
    medians = {key: entry["median_ms"] for key, entry in info["entries"].items()}
    again = table_from_medians(SPACE, table.device, medians, 1, info)
    assert again.to_dict() == table.to_dict()


def refused(folder: Path, capsys) -> str:
    assert probe_measure.main(["--probe", str(folder), "--quick"]) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.removeprefix("measure.py: error: ").rstrip("\n")


def test_measure_py_refuses_a_missing_malformed_or_damaged_probe(probe_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refused(empty, capsys).startswith(f"{empty / 'probe.json'}: not found; run measure.py")

    bad = shutil.copytree(probe_dir, tmp_path / "bad")
    manifest = bad / "probe.json"
    good = json.loads(manifest.read_text())
    manifest.write_text("{not json")
    assert refused(bad, capsys).startswith(f"{manifest}: not valid JSON")
    manifest.write_text(json.dumps({**good, "format": "edgelearn.probe/0"}))
    assert refused(bad, capsys).startswith(f"{manifest}: not an edgelearn probe (format "
                                           "edgelearn.probe/1)")  # fmt: skip
    del good["entries"][2]["file"]
    manifest.write_text(json.dumps(good))
    assert refused(bad, capsys).startswith(f"{manifest}: malformed probe (KeyError('file'))")
    good = json.loads((probe_dir / "probe.json").read_text())
    manifest.write_text(json.dumps({**good, "input": {"name": "audio", "shape": "1x1760"}}))
    assert refused(bad, capsys).startswith(f"{manifest}: malformed probe (TypeError(\"'shape'")

    manifest.write_text(json.dumps(good))
    graph = bad / "models/5.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])
    assert refused(bad, capsys).startswith(f"{graph}: SHA-256 does not match probe.json")
    graph.unlink()
    assert refused(bad, capsys) == f"{graph}: graph missing; copy the whole probe folder"


def test_measure_py_alone_says_which_file_is_missing(tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(MEASURE_SCRIPT, alone / "measure.py")
    proc = subprocess.run([sys.executable, "measure.py"], cwd=alone, env=no_torch_env(tmp_path),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == USER_ERROR_EXIT and proc.stdout == ""
    assert proc.stderr.startswith(f"measure.py: error: {alone / 'probe.json'}: not found")
    assert proc.stderr.count("\n") == 1 and not (alone / "lut.json").exists()


def test_measure_py_imports_only_the_standard_library_numpy_and_onnxruntime() -> None:
    tree = ast.parse(MEASURE_SCRIPT.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    assert imported - set(sys.stdlib_module_names) == {"numpy", "onnxruntime"}


def test_cli_exports_the_workspace_supernet(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("search:\n  profiles: [cpu-1thread-quick]\n")  # 40 x 101
    assert main(["probe", "export", "probe"]) == USER_ERROR_EXIT
    assert capsys.readouterr().err == (
        "edgelearn: error: models/supernet.ckpt: super-network checkpoint not found; run the "
        "stage that writes it\n"
    )
    assert not Path("probe").exists()

    save_supernet(Path("models/supernet.ckpt"), SuperNet(SPACE))
    assert main(["probe", "export", "probe"]) == USER_ERROR_EXIT
    assert capsys.readouterr().err == (
        "edgelearn: error: features: make 40 mels x 101 frames, the super-network takes 8 x 12; "
        "use the features it was trained on\n"
    )
    Path("params.yaml").write_text("search:\n  profiles: [cpu-1thread-quick]\n"
                                   "features:\n  clip_samples: 1760\n  n_mels: 8\n")  # fmt: skip
    assert main(["probe", "export", "probe", "--width-stride", "2"]) == 0
    out = capsys.readouterr().out
    # 8 entries of the layers, base and full, and search.lut_fit_archs' 8 random networks
    assert out.startswith("wrote probe/: 16 ONNX graphs for 16 latency-table entries (3 layers, "
                          "width stride 2), probe.json (timing settings of "
                          "'cpu-1thread-quick')")  # fmt: skip
    assert "  cd probe && python measure.py --out lut.json --device-name NAME\n" in out
    manifest = json.loads(Path("probe/probe.json").read_text())
    assert manifest["device"]["name"] == "cpu-1thread-quick" and manifest["width_stride"] == 2
    assert [e["role"] for e in manifest["entries"]].count("fit") == 8

    Path("models/notes.txt").write_text("mine")
    assert main(["probe", "export", "models"]) == USER_ERROR_EXIT
    assert "is not a probe folder" in capsys.readouterr().err
    assert Path("models/notes.txt").read_text() == "mine"
