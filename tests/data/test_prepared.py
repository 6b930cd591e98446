"""``data/prepared/``: written and read by its owner module, every rule of the format checked."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from components.data.prepared import (
    FILES,
    check_num_classes,
    check_prepared,
    load_prepared,
    write_prepared,
)
from components.errors import CorpusError

CLASSES = ["yes", "no", "_silence_"]


def dataset(n: int = 6):
    """``n`` clips: audio row i is all i, features row i all 10 i; labels 0, 1, 2, 0, ...;
    server train, val, test, then client 0 train/test and client 1 test."""
    audio = np.repeat(np.arange(n, dtype=np.int16)[:, None], 4, axis=1)
    features = np.repeat(10.0 * np.arange(n, dtype=np.float32), 2 * 3).reshape(n, 2, 3)
    placement = [("server", "train", -1), ("server", "val", -1), ("server", "test", -1),
                 ("client", "train", 0), ("client", "test", 0), ("client", "test", 1)]  # fmt: skip
    manifest = pd.DataFrame(
        [{"index": i, "path": f"w/{i}.wav", "speaker": f"s{i}", "label": CLASSES[i % 3],
          "label_index": i % 3, "pool": pool, "split": split, "client": client}
         for i, (pool, split, client) in enumerate(placement[:n])]
    )  # fmt: skip
    return audio, features, manifest, {"classes": CLASSES}


def test_round_trip(tmp_path):
    audio, features, manifest, summary = dataset()
    out = write_prepared(tmp_path / "prepared", audio, features, manifest, summary,
                         rejected=[("bad.wav", "empty file (0 bytes)")])  # fmt: skip
    assert out == tmp_path / "prepared"
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "rejected.csv"])
    data = load_prepared(out)
    assert np.array_equal(data.audio, audio) and data.audio.dtype == np.int16
    assert np.array_equal(data.features, features) and data.features.dtype == np.float32
    assert isinstance(data.features, np.memmap)
    pd.testing.assert_frame_equal(data.manifest, manifest)
    assert data.summary == {"classes": CLASSES, "feature_shape": [2, 3]}
    assert data.classes == CLASSES and data.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert (out / "rejected.csv").read_text() == "path,reason\nbad.wav,empty file (0 bytes)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]  # no temporaries left


def test_select_and_tensors(tmp_path):
    data = load_prepared(write_prepared(tmp_path / "p", *dataset()))
    assert data.select("server", "train").tolist() == [0]
    assert data.select("client", "test").tolist() == [4, 5]
    assert data.select("client", "test", client=1).tolist() == [5]
    assert data.select("client", "val").tolist() == []
    x, y = data.tensors("client", "test")
    assert x.dtype == torch.float32 and x.shape == (2, 2, 3)
    assert x[:, 0, 0].tolist() == [40.0, 50.0] and y.tolist() == [1, 2] and y.dtype == torch.int64
    x[:] = -1.0  # a copy: the memory map (opened read-only) is untouched
    assert data.tensors("client", "test")[0][:, 0, 0].tolist() == [40.0, 50.0]
    empty_x, empty_y = data.tensors("client", "val")
    assert empty_x.shape == (0, 2, 3) and empty_y.shape == (0,)
    rows_x, rows_y = data.tensors_at(np.array([3, 0]))
    assert rows_x[:, 0, 0].tolist() == [30.0, 0.0] and rows_y.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, f, m, s: (a, f, m.drop(columns=["pool", "client"]), s),
         "manifest.csv lacks the columns pool, client"),
        (lambda a, f, m, s: (a[:5], f, m, s),
         "manifest.csv has 6 rows but the arrays hold 5 clips of audio and 6 of features"),
        (lambda a, f, m, s: (a.astype(np.float32), f, m, s),
         "audio.npy must be (clips, samples) int16, got float32 (6, 4)"),
        (lambda a, f, m, s: (a[:, :, None], f, m, s),
         "audio.npy must be (clips, samples) int16, got int16 (6, 4, 1)"),
        (lambda a, f, m, s: (a, f.astype(np.float64), m, s),
         "features.npy must be (clips, n_mels, frames) float32, got float64 (6, 2, 3)"),
        (lambda a, f, m, s: (a, f.reshape(6, 6), m, s),
         "features.npy must be (clips, n_mels, frames) float32, got float32 (6, 6)"),
        (lambda a, f, m, s: (a, f, m, {}), "summary.json must name the classes (a non-empty list)"),
        (lambda a, f, m, s: (a, f, m, {"classes": []}),
         "summary.json must name the classes (a non-empty list)"),
        (lambda a, f, m, s: (a, f, m, {"classes": "yes,no"}),
         "summary.json must name the classes (a non-empty list)"),
        (lambda a, f, m, s: (a, f, m.assign(label_index=[0, 1, 2, 3, 0, 1]), s),
         "manifest.csv has label_index outside 0..2"),
        (lambda a, f, m, s: (a, f, m.assign(label_index=[0, -1, 2, 0, 1, 2]), s),
         "manifest.csv has label_index outside 0..2"),
        (lambda a, f, m, s: (a, f, m.assign(index=[0, 1, 2, 3, 5, 4]), s),
         "manifest.csv 'index' must count the rows 0, 1, 2, ..."),
    ],
    ids=["columns", "rows", "audio-dtype", "audio-ndim", "features-dtype", "features-ndim",
         "no-classes", "empty-classes", "classes-not-a-list", "label-too-big", "label-negative",
         "index"],
)  # fmt: skip
def test_every_rule_is_checked_with_its_message(tmp_path, change, message):
    parts = change(*dataset())  # (audio, features, manifest, summary), one rule broken
    with pytest.raises(CorpusError) as err:
        check_prepared("here", *parts)
    assert str(err.value) == f"here: {message}"
    out = tmp_path / "prepared"
    write_prepared(out, *dataset())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(CorpusError) as err:
        write_prepared(out, *parts)  # refused before anything is written
    assert str(err.value) == f"{out}: {message}"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_load_refuses_a_missing_partial_or_malformed_folder(tmp_path):
    with pytest.raises(CorpusError) as err:
        load_prepared(tmp_path / "nothing")
    assert str(err.value) == (
        f"{tmp_path / 'nothing'}: not a prepared dataset (missing audio.npy, features.npy, "
        "manifest.csv, summary.json); run `dvc repro prepare` first"
    )
    out = write_prepared(tmp_path / "prepared", *dataset())
    (out / "summary.json").unlink()
    with pytest.raises(CorpusError, match=r"prepared: not a prepared dataset \(missing summary"):
        load_prepared(out)
    (out / "summary.json").write_text("{not json")
    with pytest.raises(CorpusError, match=r"summary\.json: not valid JSON \("):
        load_prepared(out)
    (out / "summary.json").write_text(json.dumps({"classes": ["yes"]}))  # labels up to 2
    with pytest.raises(CorpusError) as err:
        load_prepared(out)
    assert str(err.value) == f"{out}: manifest.csv has label_index outside 0..0"


def test_a_model_of_another_class_count_is_refused_naming_both():
    check_num_classes("data/prepared", ["yes", "no", "_unknown_", "_silence_"], "m.pt", 4)
    phrases = ["hey edge", "lights on", "_unknown_", "_silence_"]
    with pytest.raises(CorpusError) as err:
        check_num_classes("data/prepared", phrases, "models/final.pt", 12)
    assert str(err.value) == (
        "models/final.pt scores 12 classes but data/prepared has 4 (hey edge, lights on, "
        "_unknown_, _silence_): the keyword list changed since the model was trained; rerun the "
        "stages after prepare (`dvc repro`)"
    )
