"""``edgelearn predict``: the bundle on WAV files, as the device runs it, without torch."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from components.data.labels import KEYWORDS
from components.data.wav import write_wav
from components.export.audio import fit_length
from components.export.bundle import BundleError
from components.export.predict import predict_files
from tests.helpers import BIN, kws
from tests.helpers.torchless import no_torch_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spoken(tmp_path_factory, espeak):
    """Each keyword spoken clearly by a voice at a speed and pitch the model never heard,
    as a trimmed (shorter than 1 s) 16 kHz mono WAV."""
    out = tmp_path_factory.mktemp("spoken")
    voice = (*kws.TEST_VOICES[0], 165, 45)
    for word in KEYWORDS:
        write_wav(out / f"{word}.wav", kws.speak(espeak, word, voice))
    return out


def run(paths, bundle, int8=False) -> tuple[int, list[list[str]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = predict_files([str(p) for p in paths], str(bundle), int8, out=out, err=err)
    return code, [line.split("\t") for line in out.getvalue().splitlines()], err.getvalue()


# int8 arithmetic differs between CPUs (rounding, saturation without VNNI), and the fixture's
# int8 model ships whatever its accuracy: it must label most, not all, clear keywords right.
INT8_MIN_RIGHT = 8


def right(labels: list[str]) -> int:
    return sum(a == b for a, b in zip(labels, KEYWORDS, strict=True))


def test_keywords_get_their_labels_with_fp32_and_int8(exported, spoken):
    files = [spoken / f"{w}.wav" for w in KEYWORDS]
    for int8 in (False, True):
        code, rows, err = run(files, exported.result.bundle_dir, int8)
        assert code == 0, err
        labels = [r[1] for r in rows]
        assert right(labels) >= (INT8_MIN_RIGHT if int8 else len(KEYWORDS)), labels
        assert all(0.0 < float(r[2]) <= 1.0 for r in rows)
        assert "padded" in err  # trimmed words are shorter than the 1 s clip


def test_int8_flag_on_a_bundle_without_int8_says_why(fp32_only, spoken):
    with pytest.raises(BundleError, match=r"no int8 model \(not shipped: .*\); run the fp32"):
        run([spoken / "yes.wav"], fp32_only.result.bundle_dir, int8=True)
    code, rows, _ = run([spoken / "yes.wav"], fp32_only.result.bundle_dir)
    assert code == 0 and rows[0][1] == "yes"


def stereo_44k(src, dst) -> None:
    """The same utterance as a 44.1 kHz stereo 16-bit file (left louder than right)."""
    from scipy.signal import resample_poly

    with wave.open(str(src), "rb") as f:
        x = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64)
    y = resample_poly(x, 441, 160)
    frames = np.round(np.stack([y, 0.5 * y], 1)).clip(-32768, 32767).astype("<i2")
    with wave.open(str(dst), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(44100)
        f.writeframes(frames.tobytes())


def test_stereo_wrong_rate_long_short_and_corrupt_files(exported, spoken, tmp_path):
    stereo_44k(spoken / "stop.wav", tmp_path / "stop_44k_stereo.wav")
    with wave.open(str(spoken / "left.wav"), "rb") as f:
        left = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    long = np.zeros(3 * 16000, dtype="<i2")
    long[20000 : 20000 + len(left)] = left
    write_wav(tmp_path / "left_3s.wav", long)
    write_wav(tmp_path / "yes_8k.wav", np.zeros(8000, dtype=np.int16), sample_rate=8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    files = [
        tmp_path / "stop_44k_stereo.wav",
        tmp_path / "broken.wav",
        tmp_path / "left_3s.wav",
        tmp_path / "yes_8k.wav",
        tmp_path / "missing.wav",
        spoken / "go.wav",
    ]
    code, rows, err = run(files, exported.result.bundle_dir)
    assert code == 1  # some files failed ...
    # ... the others were scored as what they hold: the 16 kHz mono clip, the loudest second of
    # the long one (fit_length, tested on its own). Compared with the bundle's own labels for
    # those clips, not with the words: this tiny network need not get every word right.
    crop, _ = fit_length(long.astype(np.float32), 16000)
    write_wav(tmp_path / "left_crop.wav", crop.astype(np.int16))
    _, reference, _ = run([spoken / "stop.wav", tmp_path / "left_crop.wav", spoken / "go.wav"],
                          exported.result.bundle_dir)  # fmt: skip
    assert {r[0].rsplit("/", 1)[1]: r[1] for r in rows} == {
        "stop_44k_stereo.wav": reference[0][1],
        "left_3s.wav": reference[1][1],
        "go.wav": reference[2][1],
    }
    assert "stop_44k_stereo.wav: downmixed 2 channels to mono" in err
    assert "stop_44k_stereo.wav: resampled 44100 Hz to 16000 Hz" in err
    assert "left_3s.wav: kept the loudest 16000 of 48000 samples" in err
    assert f"error: {tmp_path / 'broken.wav'}: corrupt WAV: no fmt chunk" in err
    assert f"error: {tmp_path / 'yes_8k.wav'}: sample rate 8000 Hz is below the model's" in err
    assert f"error: {tmp_path / 'missing.wav'}: unreadable: No such file or directory" in err
    assert "3 of 6 files could not be scored" in err


def test_a_bundle_that_fails_its_checksum_is_refused(exported, spoken, tmp_path):
    bundle = shutil.copytree(exported.result.bundle_dir, tmp_path / "bundle")
    (bundle / "labels.json").write_text((bundle / "labels.json").read_text().replace("yes", "no"))
    with pytest.raises(BundleError, match=r"labels\.json: SHA-256 does not match"):
        run([spoken / "yes.wav"], bundle)


def test_cli_in_a_process_that_cannot_import_torch(exported, spoken, tmp_path):
    env = no_torch_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"blocked by the test" in probe.stderr
    files = [str(spoken / f"{w}.wav") for w in KEYWORDS]
    bundle = str(exported.result.bundle_dir)
    for extra in ([], ["--int8"]):
        proc = subprocess.run(
            [str(BIN / "edgelearn"), "predict", *files, "--bundle", bundle, *extra],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        labels = [line.split("\t")[1] for line in proc.stdout.splitlines()]
        assert right(labels) >= (INT8_MIN_RIGHT if extra else len(KEYWORDS)), proc.stdout

    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes() + b"\0")
    proc = subprocess.run(
        [str(BIN / "edgelearn"), "predict", files[0], "--bundle", str(tampered)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"edgelearn: error: {tampered / 'model.onnx'}: SHA-256 does not")
