"""Fixtures of the data tests: the speech engines the default corpus speaks with, and a Festival
that garbles what follows the last phone, as it sometimes does."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from components.data import festival
from components.data.engines import CORPUS_ENGINES, ENGINES, SpeechEngine, missing_engines


@pytest.fixture(scope="session")
def speech_engines() -> dict[str, SpeechEngine]:
    """espeak-ng, flite and Festival with their voices. Like the ``espeak`` fixture, a test that
    needs them fails, never skips, when one is missing (make install installs them all)."""
    if missing := missing_engines():
        pytest.fail(
            "the default corpus speaks with engines that are missing:\n" + "\n".join(missing)
        )
    return {name: ENGINES[name] for name in CORPUS_ENGINES}


@pytest.fixture
def garble_festival(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make Festival what it sometimes is: what a diphone voice says after the last
    phone comes from memory read past the last diphone (see ``festival``'s docstring). From then
    on, the last 500 samples of every diphone voice's wave, well inside the second half of the
    final pause, are loud noise; everything else is Festival's own (HTS voices: all of it)."""
    real_run = festival._FestivalSession.run
    noise = np.random.default_rng(0).integers(-30000, 30000, 500).astype("<i2").tobytes()

    def garbling_run(self: festival._FestivalSession, form: str) -> bytes:
        out = real_run(self, form)  # a wave, when there is one, is the last thing printed
        diphones = "_diphone)" in form and b"RIFF" in out
        return out[: -len(noise)] + noise if diphones else out

    return lambda: monkeypatch.setattr(festival._FestivalSession, "run", garbling_run)
