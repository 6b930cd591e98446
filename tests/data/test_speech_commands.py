import pytest

from components.data.labels import UNKNOWN
from components.data.speech_commands import scan_corpus
from components.errors import CorpusError
from tests.helpers.speech_commands import BAD_FILES, write_speech_commands


def test_scan_maps_words_and_speakers(tmp_path):
    speakers = write_speech_commands(tmp_path, num_speakers=3, lists=True)
    scan = scan_corpus(tmp_path)
    assert len(scan.clips) == 3 * 12
    assert {c.speaker for c in scan.clips} == set(speakers)
    assert {c.label for c in scan.clips if c.path.startswith(("bed/", "cat/"))} == {UNKNOWN}
    assert {c.label for c in scan.clips if c.path.startswith("yes/")} == {"yes"}
    assert scan.noise_files == ["_background_noise_/white_noise.wav"]
    assert len(scan.validation) == 12 and len(scan.testing) == 12
    assert scan.rejected == []  # the noise folder's README is not a rejection


def test_scan_rejects_non_clips_by_name(tmp_path):
    write_speech_commands(tmp_path, num_speakers=2, bad_files=True)
    rejected = {r.path: r.reason for r in scan_corpus(tmp_path).rejected}
    assert rejected == {
        "go/notes.txt": BAD_FILES["go/notes.txt"],
        "go/take1.wav": BAD_FILES["go/take1.wav"],
    }


def test_missing_folder(tmp_path):
    with pytest.raises(CorpusError, match=r"nowhere: corpus folder does not exist"):
        scan_corpus(tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "sc.tar.gz").write_bytes(b"x")
    with pytest.raises(CorpusError, match=r"sc\.tar\.gz: expected a folder .* found a file"):
        scan_corpus(tmp_path / "sc.tar.gz")


def test_unknown_layout(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "clip.wav").write_bytes(b"x")
    with pytest.raises(CorpusError, match=r"unknown layout: expected one folder per word"):
        scan_corpus(tmp_path)


def test_empty_word_folders(tmp_path):
    (tmp_path / "yes").mkdir()
    with pytest.raises(CorpusError, match=r"no <speaker>_nohash_<n>\.wav clips"):
        scan_corpus(tmp_path)


def test_bad_speakers_json(tmp_path):
    write_speech_commands(tmp_path, num_speakers=2)
    (tmp_path / "speakers.json").write_text('{"a0000000": {"pool": "edge"}}')
    with pytest.raises(CorpusError, match=r"speakers\.json: pool must be 'server' or 'client'"):
        scan_corpus(tmp_path)


def test_a_keyword_list_names_the_folders_and_every_other_word_is_unknown(tmp_path):
    write_speech_commands(tmp_path, num_speakers=2, words=("hey_edge", "marvin", "yes", "bed"))
    scan = scan_corpus(tmp_path, keywords=("hey edge", "marvin"))
    labels = {c.path.split("/")[0]: c.label for c in scan.clips}
    assert labels == {"hey_edge": "hey edge", "marvin": "marvin", "yes": UNKNOWN, "bed": UNKNOWN}


def test_unknown_layout_names_the_keyword_folders_it_looked_for(tmp_path):
    write_speech_commands(tmp_path, num_speakers=1, words=("yes", "bed"))
    with pytest.raises(CorpusError, match=r"unknown layout: expected one folder per word "
                       r"\(hey_edge/, lights_on/\) with <speaker>_nohash_<n>\.wav files; "
                       r"found bed, yes"):  # fmt: skip
        scan_corpus(tmp_path, keywords=("hey edge", "lights on"))
    with pytest.raises(CorpusError, match=r"\(yes/, no/, up/, \.\.\.\)"):
        scan_corpus(tmp_path / "_background_noise_")
