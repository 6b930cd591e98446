"""The corpus stage when the corpus is the user's own: a note in place of the synthesized audio."""

from components import corpus
from components.config import params_from_dict


def test_real_data_leaves_only_a_note_and_replaces_the_old_corpus(tmp_path):
    old = tmp_path / "data/corpus"
    (old / "yes").mkdir(parents=True)
    (old / "yes/a0000000_nohash_0.wav").write_bytes(b"RIFF")  # a previous synthesized corpus
    params = params_from_dict(
        {"prepare": {"source": "speech_commands", "speech_commands_dir": "/data/sc"}}
    )
    result = corpus.run(params, tmp_path)
    assert result.out_dir == old
    assert result.metrics == {"num_clips": 0, "num_speakers": 0, "seconds": 0.0}
    assert [p.name for p in old.iterdir()] == ["README.md"]
    assert (old / "README.md").read_text() == (
        "No audio here on purpose: prepare.source is 'speech_commands', so the\n"
        "prepare stage reads /data/sc instead of a synthesized corpus.\n"
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus"]  # no temporaries
