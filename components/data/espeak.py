"""espeak-ng (formant synthesis, many English accents) and MBROLA voices spoken through it."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from typing import ClassVar

import numpy as np

from components.data.speech import SAMPLE_RATE, SpeechEngine, missing_exe, parse_wav_stream, to_16k
from components.errors import EdgelearnError

DEFAULT_RATE_WPM = 175  # espeak-ng's own speed: rate factor 1.0


def find_espeak() -> str:
    """The espeak-ng executable; an ``EdgelearnError`` saying how to install it when missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EdgelearnError(
            "espeak-ng is needed to synthesize the corpus but is not on PATH; install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
        )
    return exe


def espeak(exe: str, text: str, voice: str, variant: str, rate: int, pitch: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng (``rate`` in words per minute, ``pitch`` its 0-99 ``-p``)
    and return it as float32 audio resampled to 16 kHz."""
    cmd = [exe, "--stdout", "-v", f"{voice}+{variant}", "-s", str(rate), "-p", str(pitch), text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    try:
        if proc.returncode != 0:
            raise ValueError(f"exit status {proc.returncode}")
        audio, sr = parse_wav_stream(proc.stdout)
        if audio.size == 0 or not np.any(audio):
            raise ValueError("no audio produced")
    except ValueError as err:
        stderr = proc.stderr.decode(errors="replace").strip() or "(no stderr)"
        raise EdgelearnError(
            f"espeak-ng failed for voice {voice}+{variant}, word {text!r}: {err}; stderr: {stderr}"
        ) from None
    return to_16k(audio, sr)


@lru_cache(maxsize=8)
def _espeak_list(kind: str) -> tuple[tuple[str, str], ...]:
    """(language, file) rows of ``espeak-ng --voices=<kind>``."""
    out = subprocess.run(["espeak-ng", f"--voices={kind}"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        files = [c for c in cols[3:] if "/" in c]  # cols[2] is Age/Gender, "--/M"
        if len(cols) > 2 and files:
            rows.append((cols[1], files[0]))
    return tuple(rows)


class EspeakEngine(SpeechEngine):
    """espeak-ng's English accents; a voice may carry a variant, ``en-us+f2``.
    rate: 175·rate words per minute; pitch: ``-p`` 50 + 4.8 per semitone (measured: the F0 of
    en-us rises ~5.2 semitones per 25 steps of -p), clipped to 0-99."""

    name = "espeak-ng"
    packages: ClassVar[tuple[str, ...]] = ("espeak-ng",)

    def missing(self) -> str | None:
        return missing_exe("espeak-ng", self.name, self.packages)

    def voices(self) -> tuple[str, ...]:
        if self.missing():
            return ()
        return tuple(lang for lang, f in _espeak_list("en") if f.startswith("gmw/"))

    def variants(self) -> tuple[str, ...]:
        return (
            tuple(f.removeprefix("!v/") for _, f in _espeak_list("variant"))
            if not self.missing()
            else ()
        )

    def _check_voice(self, voice: str) -> None:
        base, _, variant = voice.partition("+")
        super()._check_voice(base)
        if variant and variant not in self.variants():
            raise EdgelearnError(
                f"espeak-ng has no variant {variant!r}; available: {', '.join(self.variants())}"
            )

    def _synthesize(
        self, text: str, voice: str, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        base, _, variant = voice.partition("+")
        wpm, p = round(DEFAULT_RATE_WPM * rate), int(np.clip(round(50 + 4.8 * pitch), 0, 99))
        try:
            audio = espeak(shutil.which("espeak-ng") or "espeak-ng", text, base, variant, wpm, p)
        except EdgelearnError as err:
            raise ValueError(str(err)) from None
        return audio, SAMPLE_RATE


class MbrolaEngine(EspeakEngine):
    """MBROLA diphone voices (recorded speakers) spoken through espeak-ng (``mb-us1`` ...).
    Not in Debian main: only usable where contrib/non-free provide mbrola and its voices."""

    name = "mbrola"
    packages = ("espeak-ng", "mbrola", "mbrola-us1", "mbrola-us2", "mbrola-us3", "mbrola-en1")
    _VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")

    def missing(self) -> str | None:
        if shutil.which("espeak-ng") and shutil.which("mbrola") and self.voices():
            return None
        return ("mbrola is not installed: it needs the Debian packages "
                f"{' '.join(self.packages)} (contrib/non-free, not in Debian main)")  # fmt: skip

    def voices(self) -> tuple[str, ...]:
        return tuple(
            v for v in self._VOICES if os.path.exists(f"/usr/share/mbrola/{v[3:]}/{v[3:]}")
        )

    def _check_voice(self, voice: str) -> None:
        SpeechEngine._check_voice(self, voice)
