"""Session fixtures of the data tests: the speech engines the default corpus speaks with."""

from __future__ import annotations

import pytest

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
