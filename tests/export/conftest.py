"""Session fixtures for the export tests: an espeak corpus, a trained network, one real export."""

from __future__ import annotations

import json
import shutil
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from components.config import Params, params_from_dict
from components.export import stage
from components.model.checkpoint import save_subnet
from components.model.subnet import SubNetwork
from tests.helpers import kws

# Timing in tests only has to run: few repeats, and a busy test machine is not an error.
QUICK_PROFILE = """\
name: test-quick
threads: 1
warmup: 3
repeats: 20
min_sample_ms: 0.0
precision: 0.5
max_seconds: 5.0
max_uncertainty: 0.9
budget: {fraction: 0.5}
"""


@dataclass(frozen=True)
class Exported:
    workdir: Path
    params: Params
    result: stage.ExportResult
    net: SubNetwork
    manifest: object


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, espeak):
    workdir = tmp_path_factory.mktemp("export-ws")
    pcm, manifest = kws.build_corpus(espeak)
    features = kws.write_prepared(workdir / "data/prepared", pcm, manifest)
    return workdir, pcm, manifest, features


@pytest.fixture(scope="session")
def trained(corpus):
    workdir, _, manifest, features = corpus
    train = (manifest["split"] == "train").to_numpy()
    net = kws.train_subnet(features[train], manifest["label_index"].to_numpy()[train])
    save_subnet(workdir / "models/final.pt", net)
    return net


def export_once(
    workdir: Path, trained: SubNetwork, manifest: object, fleet: tuple[str, ...] = (),
    imported: tuple[str, ...] = (), **export: object,
) -> Exported:  # fmt: skip
    """The export stage on ``workdir``, with ``fleet``: further devices (quick profiles of those
    names), and ``imported``: further devices measured elsewhere (a latency table of that name,
    ``IMPORTED_THREADS`` threads), whose networks the search stage would have left in
    search/devices/<name>/."""
    profiles = [workdir / "quick.yaml", *(workdir / f"{name}.yaml" for name in fleet)]
    for path in profiles[1:]:
        path.write_text(QUICK_PROFILE.replace("test-quick", path.stem))
    profiles[0].write_text(QUICK_PROFILE)
    for name in imported:  # only the device record matters here (the search stage read the rest)
        table = {"format": "edgelearn.lut/1", "device": {"name": name, "threads": IMPORTED_THREADS,
                 "execution_provider": "XnnpackExecutionProvider", "os": "android"}}  # fmt: skip
        profiles.append(workdir / f"{name}.json")
        profiles[-1].write_text(json.dumps(table))
    params = params_from_dict(
        {"search": {"profiles": [str(p) for p in profiles]},
         "export": {"calibration_clips": 200, "stream_minutes": 1.0, **export}}
    )  # fmt: skip
    result = stage.run(params, workdir, {"git_commit": "test", "mlflow_run_id": "none"})
    return Exported(workdir, params, result, trained, manifest)


@pytest.fixture(scope="session")
def exported(corpus, trained) -> Exported:
    """The export stage run once, for real, on the small corpus, with the int8 gates open (the
    int8 model ships whatever this CPU makes of it: the gates have tests of their own)."""
    workdir, _, manifest, _ = corpus
    return export_once(workdir, trained, manifest, int8_max_acc_drop=100.0, int8_min_speedup=0.0)


@pytest.fixture(scope="session")
def fp32_only(corpus, trained, tmp_path_factory) -> Exported:
    """The export stage with an int8 speed gate no model can pass (1000x faster than fp32): the
    int8 model is built, measured and refused, and the bundle ships fp32 alone. For a fleet of
    three devices: the second's network (``FLEET_DEVICE``) and the third's (``IMPORTED_DEVICE``,
    measured elsewhere) the trained one with other weights (its head scaled), as the search stage
    would leave them."""
    workdir, _, manifest, _ = corpus
    copy = tmp_path_factory.mktemp("export-fp32-only")
    for rel in ("data/prepared", "models"):
        shutil.copytree(workdir / rel, copy / rel)
    for name, scale in ((FLEET_DEVICE, 0.5), (IMPORTED_DEVICE, 0.75)):
        other = deepcopy(trained)
        with torch.no_grad():
            other.head.weight.mul_(scale)
        save_subnet(copy / f"search/devices/{name}/model.pt", other)
    return export_once(copy, trained, manifest, fleet=(FLEET_DEVICE,), imported=(IMPORTED_DEVICE,),
                       int8_min_speedup=1000.0)  # fmt: skip


FLEET_DEVICE = "test-fleet"
IMPORTED_DEVICE = "test-phone"
IMPORTED_THREADS = 4
