"""The corpus stage: synthesize the default corpus, or leave a note when real data is used."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from components.config import Params
from components.data.engines import close_sessions, get_engine
from components.data.espeak import find_espeak
from components.data.labels import UNKNOWN_WORDS
from components.data.near_misses import (
    NearMisses,
    espeak_phonemes,
    find_near_misses,
    load_vocabulary,
    near_miss_words,
    vocabulary_phonemes,
    without_keywords,
)
from components.data.speakers import clip_counts, make_speakers, voices_used
from components.data.synthesize import require_voices, synthesize_corpus
from components.errors import ConfigError, EdgelearnError
from components.io import atomic_dir
from components.progress import Progress, no_progress

log = logging.getLogger(__name__)

REAL_DATA_NOTE = """No audio here on purpose: prepare.source is '{source}', so the
prepare stage reads {path} instead of a synthesized corpus.
"""


HEADLINE = ("num_clips", "num_speakers", "seconds")  # metrics/corpus.json

CanSpeak = Callable[[str, str, str], bool]  # (engine, voice, text): does the voice say it?


@dataclass(frozen=True)
class CorpusResult:
    out_dir: Path
    metrics: dict[str, float]


def engine_can_speak(engine: str, voice: str, text: str) -> bool:
    """The default ``can_speak``: the voice says ``text`` as speech of a plausible length (not
    silence, not spelled out letter by letter); why it does not goes to the log."""
    try:
        get_engine(engine).check_phrase(text, voice)
    except EdgelearnError as err:
        log.warning("%s", err)
        return False
    return True


def check_speakable(
    keywords: Sequence[str], voices: Sequence[tuple[str, str]], can_speak: CanSpeak
) -> None:
    """Ask ``can_speak`` about every keyword in every ``(engine, voice)`` (a few threads: the
    engines are processes), then stop with one ``ConfigError`` naming the first keyword that a
    voice cannot say, that voice and its engine (before any synthesis)."""
    asks = [(keyword, engine, voice) for keyword in keywords for engine, voice in voices]
    with ThreadPoolExecutor(max_workers=4) as pool:
        said = list(pool.map(lambda a: can_speak(a[1], a[2], a[0]), asks))
    refused = [a for a, ok in zip(asks, said, strict=True) if not ok]
    if refused:
        keyword, engine, voice = refused[0]
        others = [f"{e} {v}" for k, e, v in refused[1:] if k == keyword]
        also = f"; nor can {len(others)} other voice(s): {', '.join(others)}" if others else ""
        raise ConfigError(
            f"prepare.keywords: {engine} voice {voice} cannot say {keyword!r} (no audio, or not "
            f"as a word: spelled out or garbled){also}; choose another word or spelling"
        )


def unknown_vocabulary(
    keywords: Sequence[str], per_kind: int, seed: int, exe: str, phrases: bool = False
) -> tuple[tuple[str, ...], dict[str, NearMisses], tuple[str, ...]]:
    """The generic unknown words that do not clash with a keyword, each keyword's near-misses
    (none when ``per_kind`` is 0) and, with ``phrases``, the words running-speech phrases are
    made of: the most common tier of the vocabulary less the keywords, words holding one, their
    homophones and the near-misses (the vocabulary is phonemized only when either is wanted)."""
    vocabulary = load_vocabulary() if per_kind or phrases else {}
    phonemes = {
        **(vocabulary_phonemes(exe) if vocabulary else {}),
        **espeak_phonemes(exe, [*keywords, *UNKNOWN_WORDS]),
    }
    generic = without_keywords(UNKNOWN_WORDS, keywords, phonemes)
    table = find_near_misses(keywords, vocabulary, phonemes, per_kind, seed)
    near = set(near_miss_words(table))
    common = [w for w, tier in vocabulary.items() if tier == 0 and w not in near] if phrases else []
    return generic, table, without_keywords(sorted(common), keywords, phonemes)


def run(
    params: Params, workdir: Path = Path("."), progress: Progress = no_progress,
    can_speak: CanSpeak | None = None,
) -> CorpusResult:  # fmt: skip
    """Write ``paths.corpus``: the synthesized corpus when ``prepare.source`` is ``synthetic``,
    otherwise only a README saying where the real corpus is read from.

    First, in this process: every engine and voice the speakers use must be installed (one
    error naming the Debian packages), and every keyword must be said by every one of those
    voices (``can_speak``, default ``engine_can_speak``; a ``ConfigError`` names the keyword,
    engine and voice). The metrics count the clips per pool, per engine and per both.
    """
    out_dir = workdir / params.paths.corpus
    if params.prepare.source != "synthetic":
        with atomic_dir(out_dir) as tmp:
            note = REAL_DATA_NOTE.format(source=params.prepare.source,
                                         path=params.prepare.speech_commands_dir)  # fmt: skip
            (tmp / "README.md").write_text(note)
        return CorpusResult(out_dir, {"num_clips": 0, "num_speakers": 0, "seconds": 0.0})
    keywords, cfg, seed = params.prepare.keywords, params.corpus, params.base.seed
    exe = find_espeak()
    voiced = make_speakers(cfg, seed, unknown_words=())  # which voices: not what they say
    require_voices(voiced)
    try:
        check_speakable(keywords, voices_used(voiced), can_speak or engine_can_speak)
    finally:
        close_sessions()  # the check's Festival: the workers start their own
    per_kind = cfg.near_misses_per_kind if cfg.near_misses_per_speaker else 0
    generic, table, phrase_words = unknown_vocabulary(
        keywords, per_kind, seed, exe, phrases=cfg.unknown_phrases_per_speaker > 0
    )
    for keyword, misses in table.items():
        log.info("near-misses of %r: inside %s, rhymes %s, onsets %s", keyword,
                 list(misses.inside), list(misses.rhyme), list(misses.onset))  # fmt: skip
    near = near_miss_words(table)
    speakers = make_speakers(cfg, seed, generic, near, phrase_words)
    summary = synthesize_corpus(
        cfg, out_dir, seed, progress=lambda done, total: progress("speakers", done, total),
        keywords=keywords, speakers=speakers,
    )  # fmt: skip
    counts = clip_counts(speakers, len(keywords) * cfg.keyword_repeats)
    return CorpusResult(out_dir, {
        "num_clips": summary.num_clips,
        "num_speakers": summary.num_speakers,
        "num_server_speakers": summary.num_server_speakers,
        "num_client_speakers": summary.num_client_speakers,
        "num_noise_files": summary.num_noise_files,
        "num_near_miss_words": len(near),
        "num_phrases": sum(len(s.phrases) for s in speakers),
        "num_phrase_words": len(phrase_words),
        **{f"num_clips_{key.replace('-', '_').replace('/', '_')}": n
           for key, n in counts.items()},
        "seconds": round(summary.seconds, 2),
    })  # fmt: skip
