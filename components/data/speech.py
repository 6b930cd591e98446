"""The speech-engine interface and the audio helpers every engine shares: WAV streams, 16 kHz.

Every engine turns ``(text, voice, rate, pitch)`` into float32 mono 16 kHz audio. ``rate`` is a
speed factor (1.0 the voice's own tempo, 1.25 a quarter faster) and ``pitch`` a shift in
semitones from the voice's own mean F0. Where an engine has a pitch knob it is used (espeak-ng
``-p``; flite ``int_f0_target_mean``; Festival diphone voices' ``int_lr_params``); where it has
none (flite ``rms``, Festival HTS voices) the engine-independent fallback speaks at
``rate / 2**(pitch/12)`` and plays the result ``2**(pitch/12)`` times faster, so the duration is
as asked and pitch and formants move together (``acoustics.resample_by``).
"""

from __future__ import annotations

import math
import shutil
import struct
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import ClassVar

import numpy as np
from scipy.signal import firwin, resample_poly

from components.data import acoustics
from components.errors import EdgelearnError

SAMPLE_RATE = 16000
RATE_RANGE = (0.5, 2.0)
PITCH_RANGE = (-12.0, 12.0)  # semitones
_SILENCE_PEAK = 0.01  # -40 dBFS: flite "says" "..." as 0.2 s peaking at 0.0025
_PLAUSIBLE_S = (0.1, 0.3, 0.9)  # a phrase lasts >= 0.1 s and <= 0.3 s + 0.9 s per word


def parse_wav_stream(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a 16-bit WAV written to a pipe (its size fields may be bogus, so walk the chunks)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("output is not a RIFF/WAVE stream")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            rate = struct.unpack("<I", data[body + 4 : body + 8])[0]
        elif cid == b"data":
            end = min(body + size, len(data))
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.float32) / 32768.0, rate
        pos = body + size + (size % 2)
    raise ValueError("no data chunk")


@lru_cache(maxsize=4)
def _lowpass(up: int, down: int) -> np.ndarray:
    """resample_poly's default anti-alias FIR, designed once per process instead of per call."""
    rate = max(up, down)
    return firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0)).astype(np.float32)


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Band-limited resampling to 16 kHz (resample_poly's Kaiser FIR, designed once)."""
    if sr != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, sr)
        up, down = SAMPLE_RATE // g, sr // g  # 22050 Hz: 320/441
        audio = resample_poly(audio, up, down, window=_lowpass(up, down))
    return np.asarray(audio, dtype=np.float32)


def trim_silence(x: np.ndarray, frame: int = 160, floor_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``floor_db`` below the loudest 10 ms frame."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > max(rms.max() * 10 ** (floor_db / 20), 1e-4))
    if loud.size == 0:
        return x
    start, stop = max(loud[0] - 2, 0) * frame, min(loud[-1] + 4, n) * frame
    return x[start:stop]


def missing_exe(exe: str, engine: str, packages: tuple[str, ...]) -> str | None:
    """None when ``exe`` is on PATH, else the install sentence naming the Debian packages."""
    if shutil.which(exe) is not None:
        return None
    pkgs = " ".join(packages)
    return (f"{engine} is not installed ({exe} is not on PATH): install the Debian package(s) "
            f"{pkgs} (`make install` does, or `apt-get install {pkgs}`)")  # fmt: skip


class SpeechEngine(ABC):
    """One engine: what it needs installed, its voices here, and ``speak``."""

    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # Debian packages that provide the engine itself

    @abstractmethod
    def missing(self) -> str | None:
        """None when installed, else one sentence naming the Debian packages to install."""

    @abstractmethod
    def voices(self) -> tuple[str, ...]:
        """The voices usable on this machine (empty when the engine is missing)."""

    def native_pitch(self, voice: str) -> bool:
        """Whether ``voice`` has a pitch knob of its own (else the resampling fallback is used)."""
        return True

    @abstractmethod
    def _synthesize(
        self, text: str, voice: str, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        """Raw audio and its sample rate; raises ``ValueError`` saying why it failed."""

    def require(self) -> None:
        """Raise ``EdgelearnError`` with the install message when the engine is missing."""
        if (msg := self.missing()) is not None:
            raise EdgelearnError(msg)

    def require_voice(self, voice: str) -> None:
        """Raise ``EdgelearnError`` naming what to install when the engine or ``voice`` is
        missing."""
        self.require()
        self._check_voice(voice)

    def _check_voice(self, voice: str) -> None:
        if voice not in self.voices():
            raise EdgelearnError(
                f"{self.name} has no voice {voice!r} here; available: {', '.join(self.voices())}"
            )

    def speak(self, text: str, voice: str, rate: float = 1.0, pitch: float = 0.0) -> np.ndarray:
        """``text`` spoken by ``voice`` as float32 mono 16 kHz audio; ``EdgelearnError`` naming
        the engine, voice and text when it cannot be spoken."""
        self.require_voice(voice)
        if not (
            RATE_RANGE[0] <= rate <= RATE_RANGE[1] and PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]
        ):
            raise ValueError(f"rate {rate} or pitch {pitch} outside {RATE_RANGE}, {PITCH_RANGE}")
        factor = 1.0 if self.native_pitch(voice) else 2.0 ** (pitch / 12)
        try:
            if not text.strip() or not text.isprintable():
                raise ValueError("empty or unprintable text")
            audio, sr = self._synthesize(text, voice, rate / factor, pitch if factor == 1 else 0.0)
            if audio.size == 0 or float(np.abs(audio).max()) < _SILENCE_PEAK:
                raise ValueError("no audio produced (silence)")
        except ValueError as err:
            raise EdgelearnError(
                f"{self.name} cannot speak {text!r} with voice {voice}: {err}"
            ) from None
        audio = to_16k(audio, sr)
        return acoustics.resample_by(audio, factor) if factor != 1 else audio

    def check_phrase(self, text: str, voice: str) -> None:
        """Raise ``EdgelearnError`` unless ``voice`` says ``text`` as speech of a plausible length
        (not spelled out letter by letter, not silence): used to refuse a keyword it cannot say."""
        audio = trim_silence(self.speak(text, voice))
        seconds, (lo, base, per_word) = len(audio) / SAMPLE_RATE, _PLAUSIBLE_S
        hi = base + per_word * len(text.split())
        if not lo <= seconds <= hi:
            raise EdgelearnError(
                f"{self.name} voice {voice} says {text!r} in {seconds:.2f} s, outside the "
                f"plausible {lo}-{hi:.1f} s (spelled out or garbled?)"
            )

    def can_say(self, text: str, voice: str) -> bool:
        """``check_phrase`` as a yes/no."""
        try:
            self.check_phrase(text, voice)
        except EdgelearnError:
            return False
        return True
