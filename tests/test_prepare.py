import csv
import json

import numpy as np
import pytest
import torch

from components import prepare
from components.config import params_from_dict
from components.data.labels import CLASSES, SILENCE, UNKNOWN
from components.data.prepared import load_prepared
from components.errors import CorpusError
from components.features import compute_features
from tests.helpers.speech_commands import BAD_FILES, write_speech_commands


def sc_params(corpus, out_dir="data/prepared", **prepare_overrides):
    return params_from_dict(
        {
            "paths": {"prepared": out_dir},
            "prepare": {
                "source": "speech_commands",
                "speech_commands_dir": str(corpus),
                "client_fraction": 0.4,
                "min_client_clips": 4,
                **prepare_overrides,
            },
        }
    )


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "sc"
    write_speech_commands(root, num_speakers=10, lists=True, bad_files=True)
    return root


def test_prepare_on_speech_commands_folder(tmp_path, corpus):
    result = prepare.run(sc_params(corpus), tmp_path)
    m = result.metrics
    # 10 speakers x 12 words; speakers 0/1 are the official val/test lists -> server
    assert m["num_clients"] == 4 and m["num_speakers"] == 10
    assert m["num_rejected_files"] == len(BAD_FILES)
    assert m["num_classes"] == 12
    with open(result.out_dir / "rejected.csv") as f:
        rejected = {row["path"]: row["reason"] for row in csv.DictReader(f)}
    assert set(rejected) == set(BAD_FILES)
    for path, reason in BAD_FILES.items():
        assert rejected[path].startswith(reason)

    data = load_prepared(result.out_dir)
    man = data.manifest
    assert len(man) == len(data.audio) == len(data.features)
    assert m["num_train"] + m["num_val"] + m["num_test"] + m["num_client_train"] + m[
        "num_client_test"
    ] == len(man)
    speech = man[man["label"] != SILENCE]
    assert speech.groupby("speaker")["pool"].nunique().max() == 1
    assert speech.groupby("speaker")["client"].nunique().max() == 1
    validation = set((corpus / "validation_list.txt").read_text().split())
    testing = set((corpus / "testing_list.txt").read_text().split())
    assert not man[(man["split"] == "train") & man["path"].isin(validation | testing)].shape[0]
    assert set(man.loc[man["path"].isin(validation), "split"]) == {"val"}
    assert set(man["label"]) == set(CLASSES)
    # unknown capped at 2x a mean keyword class per group; silence cut from the noise file
    for _, group in speech.groupby(["pool", "split", "client"]):
        n_kw = (group["label"] != UNKNOWN).sum()
        assert (group["label"] == UNKNOWN).sum() <= np.ceil(2.0 * n_kw / 10)
    assert set(man.loc[man["label"] == SILENCE, "path"]) == {"_background_noise_/white_noise.wav"}
    # features are the frontend applied to the stored int16 audio
    audio = torch.from_numpy(np.asarray(data.audio[:4], dtype=np.float32) / 32768.0)
    expected = compute_features(audio, sc_params(corpus).features)
    assert np.allclose(data.features[:4], expected.numpy(), atol=1e-5)
    # content hashes are of the source files
    row = speech.iloc[0]
    import hashlib

    assert row["sha256"] == hashlib.sha256((corpus / row["path"]).read_bytes()).hexdigest()
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["official_lists"] is True and summary["counts"] == m


def test_prepare_is_deterministic(tmp_path, corpus):
    a = prepare.run(sc_params(corpus, out_dir="out_a"), tmp_path)
    b = prepare.run(sc_params(corpus, out_dir="out_b"), tmp_path)
    for name in ("audio.npy", "features.npy", "manifest.csv", "summary.json"):
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes()


def test_failed_run_keeps_previous_output(tmp_path, corpus):
    first = prepare.run(sc_params(corpus), tmp_path)
    before = {p.name: p.read_bytes() for p in first.out_dir.iterdir()}
    with pytest.raises(CorpusError, match="does not exist"):
        prepare.run(sc_params(tmp_path / "gone"), tmp_path)
    assert {p.name: p.read_bytes() for p in first.out_dir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sc"]


def test_all_files_bad_is_one_clear_error(tmp_path):
    root = tmp_path / "sc"
    (root / "yes").mkdir(parents=True)
    for i in range(3):
        (root / "yes" / f"abcdef0{i}_nohash_0.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match=r"sc: no usable clips; 3 files rejected"):
        prepare.run(sc_params(root), tmp_path)


def test_too_few_speakers_is_one_clear_error(tmp_path):
    root = tmp_path / "sc"
    write_speech_commands(root, num_speakers=1)
    with pytest.raises(CorpusError, match=r"too few for train/val/test splits"):
        prepare.run(sc_params(root, client_fraction=0.0), tmp_path)


def test_load_prepared_names_missing_folder(tmp_path):
    with pytest.raises(CorpusError, match=r"nothing: not a prepared dataset .*dvc repro prepare"):
        load_prepared(tmp_path / "nothing")


def test_prepare_with_a_keyword_list_of_its_own(tmp_path):
    root = tmp_path / "sc"
    words = ("hey_edge", "marvin", "yes", "bed", "no", "cat")
    write_speech_commands(root, num_speakers=10, words=words)
    params = sc_params(root, keywords=["hey edge", "marvin"], unknown_ratio=2.0)
    result = prepare.run(params, tmp_path)
    data = load_prepared(result.out_dir)
    assert data.classes == ["hey edge", "marvin", UNKNOWN, SILENCE]
    assert result.metrics["num_classes"] == 4
    man = data.manifest
    folder = man["path"].str.split("/").str[0]
    assert set(man.loc[folder == "hey_edge", "label"]) == {"hey edge"}
    assert set(man.loc[folder.isin(words[2:]), "label"]) == {UNKNOWN}
    assert (man["label_index"] == [data.classes.index(x) for x in man["label"]]).all()
    # the cap on unknown clips follows the keyword count: unknown_ratio 2 x a mean keyword class,
    # here as many as the keyword clips (of twice as many) in each server split (whole speakers)
    speech = man[(man["label"] != SILENCE) & (man["pool"] == "server")]
    for _, group in speech.groupby("split"):
        assert (group["label"] == UNKNOWN).sum() == (group["label"] != UNKNOWN).sum()
