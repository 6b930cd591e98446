import numpy as np
import pytest

from components.data.wav import WavRejected, read_wav, write_wav
from tests.helpers.speech_commands import BAD_FILES, write_bad_files


def test_roundtrip_is_exact_for_pcm16(tmp_path):
    audio = (np.arange(-8, 8, dtype=np.int16) * 2000).astype(np.int16)
    write_wav(tmp_path / "a.wav", audio)
    back = read_wav(tmp_path / "a.wav")
    assert np.array_equal(np.round(back * 32768).astype(np.int16), audio)


def test_write_clips_out_of_range_audio(tmp_path):
    write_wav(tmp_path / "a.wav", np.array([2.0, -2.0, 0.5], dtype=np.float32))
    assert read_wav(tmp_path / "a.wav").tolist() == [32767 / 32768, -1.0, 0.5]


@pytest.mark.parametrize(
    "rel", [p for p in BAD_FILES if p.endswith(".wav") and "_nohash_" in p and "left/" not in p]
)
def test_each_bad_file_has_its_reason(tmp_path, rel):
    write_bad_files(tmp_path)
    with pytest.raises(WavRejected) as why:
        read_wav(tmp_path / rel)
    assert str(why.value).startswith(BAD_FILES[rel])
