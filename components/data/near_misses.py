"""Near-misses of the keywords: words that sound almost like one, where real detectors fail.

Three kinds, from phonemes (espeak-ng's IPA, one phoneme a token, stress marks dropped):

- *inside*: the keyword's phonemes inside a word of more syllables ("yes" -> yesterday, "up" ->
  upper, "down" -> download), those that start with it first;
- *rhyme*: the same phonemes from the keyword's last vowel on ("yes" -> less, "stop" -> top);
- *onset*: the same phonemes up to and including its first vowel ("yes" -> yet, "left" -> less).

A word is of one kind per keyword (in that order). The candidates are a vocabulary of common
English words shipped in ``vocabulary.txt``; never a keyword, a word holding a keyword as a whole
word, or a homophone of one ("know" for "no": the same sound under another label teaches nothing).
Within a kind the closest come first (same syllable count, more phonemes shared, similar length),
then the more common, then a seeded order: the same inputs always give the same lists.
``find_near_misses`` is pure: phonemes come in as a table (``espeak_phonemes`` makes one).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from components.data.labels import folder_name
from components.errors import EdgelearnError

Phonemes = tuple[str, ...]
KINDS = ("inside", "rhyme", "onset")
VOCABULARY_FILE = Path(__file__).with_name("vocabulary.txt")
PHONEME_VOICE = "en-us"
# IPA vowel letters (espeak-ng's English output and more); a token holding one is a syllable
# nucleus, as is a syllabic consonant (U+0329 below it).
VOWELS = frozenset("aeiouyæɑɒɔəɚɛɜɝɞɪʊʌɐɘɵɤɯøœɶɨʉᵻ\u0329")
STRESS = "ˈˌ"


@dataclass(frozen=True)
class NearMisses:
    """A keyword's near-misses of each kind, closest first."""

    inside: tuple[str, ...]
    rhyme: tuple[str, ...]
    onset: tuple[str, ...]

    def words(self) -> tuple[str, ...]:
        return (*self.inside, *self.rhyme, *self.onset)


def load_vocabulary(path: Path = VOCABULARY_FILE) -> dict[str, int]:
    """``word -> commonness tier`` (0 the most common) from ``word tier`` lines; ``#`` comments."""
    vocabulary: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            word, tier = line.split()
            vocabulary[word] = int(tier)
    return vocabulary


def parse_phonemes(line: str) -> Phonemes:
    """espeak-ng's ``--ipa --sep=' '`` output of one text as phoneme tokens, without stress
    marks; the words of a phrase run together."""
    tokens = (t.strip(STRESS) for t in line.replace("\u200d", "").split())
    return tuple(t for t in tokens if t)


def is_vowel(phoneme: str) -> bool:
    return any(c in VOWELS for c in phoneme)


def syllables(ph: Phonemes) -> int:
    return sum(is_vowel(p) for p in ph)


def rhyme_part(ph: Phonemes) -> Phonemes:
    """From the last vowel to the end ("yes" j ɛ s -> ɛ s); all of it without a vowel."""
    last = max((i for i, p in enumerate(ph) if is_vowel(p)), default=0)
    return ph[last:]


def onset_part(ph: Phonemes) -> Phonemes:
    """From the start to the first vowel, inclusive ("stop" s t ɑː p -> s t ɑː)."""
    first = next((i for i, p in enumerate(ph) if is_vowel(p)), len(ph) - 1)
    return ph[: first + 1]


def common_prefix(a: Phonemes, b: Phonemes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def common_suffix(a: Phonemes, b: Phonemes) -> int:
    return common_prefix(a[::-1], b[::-1])


def find(seq: Phonemes, part: Phonemes) -> int:
    """Where ``part`` first occurs in ``seq`` as a contiguous run, or -1."""
    for i in range(len(seq) - len(part) + 1):
        if seq[i : i + len(part)] == part:
            return i
    return -1


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.split(r"[\s-]+", text.lower().strip()))


def holds_keyword(word: str, keyword: str) -> bool:
    """Whether ``word`` is ``keyword`` or holds it as whole words ("yes-man" holds "yes")."""
    return _holds(_words(word), _words(keyword))


def _holds(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    return any(outer[i : i + len(inner)] == inner for i in range(len(outer) - len(inner) + 1))


class _Exclusion:
    """``excluded`` with the keywords' folders, words and sounds worked out once."""

    def __init__(self, keywords: Sequence[str], phonemes: Mapping[str, Phonemes]) -> None:
        self.folders = {folder_name(k) for k in keywords}
        self.words = [_words(k) for k in keywords]
        self.sounds = {phonemes[k] for k in keywords if k in phonemes}
        self.phonemes = phonemes

    def __call__(self, word: str) -> bool:
        if folder_name(word) in self.folders:
            return True
        outer = _words(word)
        return any(_holds(outer, inner) for inner in self.words) or (
            self.phonemes.get(word) in self.sounds
        )


def excluded(word: str, keywords: Sequence[str], phonemes: Mapping[str, Phonemes]) -> bool:
    """A keyword itself, a word holding one as a whole word, or a homophone of one."""
    return _Exclusion(keywords, phonemes)(word)


def without_keywords(
    words: Iterable[str], keywords: Sequence[str], phonemes: Mapping[str, Phonemes]
) -> tuple[str, ...]:
    """``words`` less those that ``excluded`` refuses (the generic unknown words go through it)."""
    refuse = _Exclusion(keywords, phonemes)
    return tuple(w for w in words if not refuse(w))


def _seeded(word: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{word}".encode()).hexdigest()


@dataclass(frozen=True)
class _Target:
    """A keyword's phonemes with its rhyme and onset parts worked out once."""

    ph: Phonemes
    syllables: int
    rhyme: Phonemes
    onset: Phonemes

    @classmethod
    def of(cls, ph: Phonemes) -> _Target:
        return cls(ph, syllables(ph), rhyme_part(ph), onset_part(ph))

    def kind_and_rank(self, cand: Phonemes, sylls: int) -> tuple[str, tuple[int, ...]] | None:
        """The kind of near-miss ``cand`` (of ``sylls`` syllables) is to the keyword (None: not
        one), and how close it is (less is closer)."""
        ph, length, more = self.ph, abs(len(cand) - len(self.ph)), sylls - self.syllables
        at = find(cand, ph)
        if at >= 0 and more > 0:  # a longer word, not one syllable with a consonant more ("nose")
            return "inside", (int(at > 0), length)
        if len(cand) >= len(self.rhyme) and cand[len(cand) - len(self.rhyme) :] == self.rhyme:
            return "rhyme", (abs(more), -common_suffix(cand, ph), length)
        if cand[: len(self.onset)] == self.onset:
            return "onset", (abs(more), -common_prefix(cand, ph), length)
        return None


def find_near_misses(
    keywords: Sequence[str],
    vocabulary: Mapping[str, int],
    phonemes: Mapping[str, Phonemes],
    per_kind: int,
    seed: int = 0,
) -> dict[str, NearMisses]:
    """Up to ``per_kind`` near-misses of each kind for every keyword, closest first.

    ``vocabulary`` maps each candidate word to its commonness tier (0 the most common);
    ``phonemes`` must hold every keyword and candidate (a candidate it lacks is skipped).
    """
    missing = [k for k in keywords if not phonemes.get(k)]
    if missing:
        raise EdgelearnError(f"near-misses: no phonemes for the keyword {missing[0]!r}")
    refuse = _Exclusion(keywords, phonemes)
    candidates = [
        (w, phonemes[w], syllables(phonemes[w]))
        for w in sorted(vocabulary)
        if phonemes.get(w) and not refuse(w)
    ]
    table: dict[str, NearMisses] = {}
    for keyword in keywords:
        target = _Target.of(phonemes[keyword])
        ranked: dict[str, list[tuple[tuple[int, ...], int, str, str]]] = {k: [] for k in KINDS}
        for word, cand, sylls in candidates:
            found = target.kind_and_rank(cand, sylls)
            if found is not None:
                kind, rank = found
                ranked[kind].append((rank, vocabulary[word], _seeded(word, seed), word))
        table[keyword] = NearMisses(
            *(tuple(r[-1] for r in sorted(ranked[kind])[:per_kind]) for kind in KINDS)
        )
    return table


def near_miss_words(table: Mapping[str, NearMisses]) -> tuple[str, ...]:
    """Every near-miss of every keyword once, sorted."""
    return tuple(sorted({w for misses in table.values() for w in misses.words()}))


def _espeak_batch(exe: str, texts: Sequence[str], voice: str) -> list[Phonemes]:
    # One clause per line: each text ends in a full stop, so espeak-ng prints one line for it.
    cmd = [exe, "-q", "--ipa", "--sep= ", "-v", voice]
    stdin = "".join(f"{t}.\n" for t in texts)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != len(texts):
        if len(texts) > 1:  # a text that breaks the one-line-per-text rule: one call each
            return [p for t in texts for p in _espeak_batch(exe, [t], voice)]
        stderr = proc.stderr.strip() or "(no stderr)"
        raise EdgelearnError(
            f"espeak-ng printed no phonemes for {texts[0]!r} (voice {voice}); stderr: {stderr}"
        )
    return [parse_phonemes(line) for line in lines]


def espeak_phonemes(
    exe: str, texts: Iterable[str], voice: str = PHONEME_VOICE, jobs: int | None = None
) -> dict[str, Phonemes]:
    """Phonemes of every text from espeak-ng, in a few batched calls (one call per word costs
    ~10 ms; 10,000 words in one call take seconds), run side by side on ``jobs`` processes."""
    unique = sorted(set(texts))
    if not unique:
        return {}
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(unique)))
    chunks = [unique[i::jobs] for i in range(jobs)]
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda chunk: _espeak_batch(exe, chunk, voice), chunks))
    return {t: p for chunk, res in zip(chunks, results, strict=True)
            for t, p in zip(chunk, res, strict=True)}  # fmt: skip


@lru_cache(maxsize=2)
def vocabulary_phonemes(exe: str, voice: str = PHONEME_VOICE) -> Mapping[str, Phonemes]:
    """Phonemes of the shipped vocabulary, worked out once per process (seconds of espeak-ng)."""
    return MappingProxyType(espeak_phonemes(exe, load_vocabulary(), voice))
