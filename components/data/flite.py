"""CMU flite's built-in voices, each built from one recorded speaker."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from typing import ClassVar

import numpy as np

from components.data.speech import SpeechEngine, missing_exe, parse_wav_stream


class FliteEngine(SpeechEngine):
    """CMU flite's built-in voices (Debian ships no .flitevox files): kal and kal16 (Kevin Lenzo,
    US male, diphones at 8 and 16 kHz), awb (Alan W Black, Scottish male), rms (US male) and slt
    (US female), the last three statistical voices trained on their recordings. ``awb_time`` says
    only times of day and is left out. rate: ``duration_stretch`` (the voice's own, 1.1 for kal)
    divided by rate; pitch:
    ``int_f0_target_mean`` moved from the voice's own mean (rms ignores it: fallback)."""

    name = "flite"
    packages = ("flite",)
    # The voices' own settings (not printed by flite; found by bisection on the output bytes)
    _F0_MEAN: ClassVar[dict[str, float]] = {"kal": 95.0, "kal16": 95.0, "awb": 132.0, "slt": 172.0}
    _STRETCH: ClassVar[dict[str, float]] = {"kal": 1.1, "kal16": 1.1}
    _LIMITED_DOMAIN = ("awb_time",)

    def missing(self) -> str | None:
        return missing_exe("flite", self.name, self.packages)

    def voices(self) -> tuple[str, ...]:
        return () if self.missing() else _flite_voices(self._LIMITED_DOMAIN)

    def native_pitch(self, voice: str) -> bool:
        return voice in self._F0_MEAN

    def _synthesize(
        self, text: str, voice: str, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        stretch = self._STRETCH.get(voice, 1.0) / rate
        cmd = [shutil.which("flite") or "flite", "-voice", voice,
               "--setf", f"duration_stretch={stretch:.4f}"]  # fmt: skip
        if pitch:
            cmd += ["--setf", f"int_f0_target_mean={self._F0_MEAN[voice] * 2 ** (pitch / 12):.2f}"]
        proc = subprocess.run(
            [*cmd, "-t", text, "-o", "/dev/stdout"], capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise ValueError(
                f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
            )
        return parse_wav_stream(proc.stdout)


@lru_cache(maxsize=1)
def _flite_voices(leave_out: tuple[str, ...]) -> tuple[str, ...]:
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    names = out.split(":", 1)[-1].split()
    return tuple(v for v in names if v not in leave_out)
