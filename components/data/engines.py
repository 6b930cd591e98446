"""Speech engines that speak the synthetic corpus (espeak-ng, flite, Festival, MBROLA), by name.

The interface and the shared audio helpers are in ``speech.py``, one module per engine. Only
flite's and Festival's voices are built from recorded human speakers (diphones or statistical
models trained on one person); espeak-ng is formant synthesis.
"""

from __future__ import annotations

from collections.abc import Iterable

from components.data.espeak import EspeakEngine, MbrolaEngine
from components.data.festival import FestivalEngine, close_session
from components.data.flite import FliteEngine
from components.data.speech import SpeechEngine
from components.errors import EdgelearnError

__all__ = [
    "CORPUS_ENGINES", "ENGINES", "EspeakEngine", "FestivalEngine", "FliteEngine", "MbrolaEngine",
    "SpeechEngine", "close_sessions", "get_engine", "missing_engines", "missing_voices",
]  # fmt: skip

CORPUS_ENGINES = ("espeak-ng", "flite", "festival")  # what the default corpus speaks with

ENGINES: dict[str, SpeechEngine] = {
    e.name: e for e in (EspeakEngine(), FliteEngine(), FestivalEngine(), MbrolaEngine())
}


def get_engine(name: str) -> SpeechEngine:
    """The engine called ``name``; ``EdgelearnError`` listing the known ones otherwise."""
    if name not in ENGINES:
        raise EdgelearnError(f"unknown speech engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


def missing_engines(names: Iterable[str] = CORPUS_ENGINES) -> list[str]:
    """The install message of every engine in ``names`` that is missing (empty when all are)."""
    return [msg for n in names if (msg := get_engine(n).missing()) is not None]


def missing_voices(voices: Iterable[tuple[str, str]]) -> list[str]:
    """What to install for every ``(engine, voice)`` that cannot speak here, one message per
    missing engine or voice, in order (empty when every one can)."""
    messages: list[str] = []
    for name, voice in voices:
        try:
            get_engine(name).require_voice(voice)
        except EdgelearnError as err:
            if str(err) not in messages:
                messages.append(str(err))
    return messages


def close_sessions() -> None:
    """End the engine processes this process keeps running (Festival's); a later call to an
    engine starts a fresh one."""
    close_session()
