"""``edgelearn probe export``: what a device the pipeline cannot reach needs to measure its table.

A probe folder holds the ONNX graph of every latency-table entry (``lut.table_entries``: the same
graphs ``build_table`` times on this machine), ``probe.json`` (the search space, the device
profile's timing settings, each entry's widths, role and file) and ``measure.py``, a copy of
``probe_measure.py`` that needs only numpy and ONNX Runtime. Run on the device, it writes the
``lut.json`` that ``search.lut_import`` takes.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.config import Params
from components.errors import ConfigError
from components.io import atomic_dir, write_json_atomic, write_text_atomic
from components.latency import DeviceProfile, fleet_profile, load_profile
from components.model.checkpoint import load_supernet_file
from components.model.space import SearchSpace
from components.model.supernet import SuperNet
from components.search.lut import (
    LUT_FORMAT,
    TABLE_METHOD,
    DeviceGraph,
    measurement_grids,
    table_entries,
)
from components.search.probe_measure import PROBE_FORMAT

MEASURE_SCRIPT = Path(__file__).with_name("probe_measure.py")

README = """\
edgelearn latency probe: measures this device's latency table for the architecture search.

On the device (Python 3 with numpy and onnxruntime; no torch, no edgelearn):

    python measure.py --out lut.json --device-name NAME

Copy lut.json back to the pipeline's workspace, set `search.lut_import: lut.json` in
params.yaml (or, for a fleet of devices, list it in `search.profiles`), and run `dvc repro`.
probe.json says what is measured and how.
"""


def probe_manifest(
    space: SearchSpace,
    profile: DeviceProfile,
    graph: DeviceGraph,
    width_stride: int,
    fit: int = 0,
) -> dict[str, Any]:
    """``probe.json`` without the graphs' checksums: every table entry, with the file its
    graph is in (entries with the same widths share one), and what the device script needs to
    time them and assemble the table."""
    files: dict[str, str] = {}
    entries = []
    for e in table_entries(space, width_stride, fit):
        file = files.setdefault(e.key, f"models/{len(files)}.onnx")
        entries.append({"key": e.key, "role": e.role, "widths": list(e.widths), "layer": e.layer,
                        "width": None if e.layer is None else e.widths[e.layer],
                        "file": file})  # fmt: skip
    grids = measurement_grids(space, width_stride)
    return {
        "format": PROBE_FORMAT,
        "lut_format": LUT_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "created_on": platform.node(),
        "method": TABLE_METHOD,
        "space": space.to_dict(),
        "device": profile.model_dump(),
        "width_stride": width_stride,
        "input": {"name": graph.input_name, "shape": graph.input_shape, "dtype": "float32"},
        "graph": {"opset": graph.opset, "features": graph.features.model_dump()},
        "layers": [
            {"layer": i, "channels": c, "choices": space.width_choices(i), "grid": grids[i]}
            for i, c in enumerate(space.layer_channels)
        ],
        "entries": entries,
    }


def export_probe(
    net: SuperNet, profile: DeviceProfile, graph: DeviceGraph, out_dir: Path,
    width_stride: int = 1, fit: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Write the probe folder ``out_dir`` whole (it replaces an older one only once complete)
    and return its ``probe.json``; ``fit``: the table's random networks (``table_entries``)."""
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir)
    graph.check(net.space)
    manifest = probe_manifest(net.space, profile, graph, width_stride, fit)
    with atomic_dir(out_dir) as tmp:
        (tmp / "models").mkdir()
        checksums: dict[str, str] = {}
        for entry in manifest["entries"]:
            if entry["file"] not in checksums:
                onnx = graph.onnx(net, entry["widths"])
                (tmp / entry["file"]).write_bytes(onnx)
                checksums[entry["file"]] = hashlib.sha256(onnx).hexdigest()
        manifest["files"] = checksums
        write_json_atomic(tmp / "probe.json", manifest)
        shutil.copyfile(MEASURE_SCRIPT, tmp / "measure.py")
        write_text_atomic(tmp / "README.txt", README)
    return manifest


def check_replaceable(out_dir: Path) -> None:
    """The probe replaces its folder whole: refuse a folder that holds anything but a probe."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; give a folder for the probe")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "probe.json").is_file():
        raise ConfigError(f"{out_dir}: exists and is not a probe folder (the probe replaces its "
                          "folder whole); give a new folder")  # fmt: skip


def export_from_params(
    params: Params, out_dir: Path, profile_name: str | None = None,
    width_stride: int | None = None, workdir: Path = Path("."),
) -> dict[str, Any]:  # fmt: skip
    """The probe of the workspace's super-network (``paths.supernet``) with ``search.profiles[0]``'s
    timing settings, ``search.lut_fit_archs`` and ``search.lut_width_stride`` unless given; the
    graphs are the ones the export stage would ship (``features``, ``export.opset``)."""
    profile = (load_profile(profile_name) if profile_name else
               fleet_profile(params.search.profiles[0], workdir))  # fmt: skip
    net, _ = load_supernet_file(workdir / params.paths.supernet)
    stride = width_stride or params.search.lut_width_stride
    graph = DeviceGraph(params.features, params.export.opset)
    return export_probe(net, profile, graph, out_dir, stride, params.search.lut_fit_archs)
