"""The label set: the user's keywords (default the 10 Speech Commands words), unknown, silence.

A keyword is a word or a short phrase (``prepare.keywords``). Its label, in the prepared data and
in the bundle's ``labels.json``, is the phrase as written (runs of spaces made one); its folder
in a corpus is ``folder_name(phrase)``: lower case, spaces as underscores ("Hey Edge" ->
``hey_edge/``).
"""

from __future__ import annotations

from collections.abc import Sequence

KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CLASSES: tuple[str, ...] = (*KEYWORDS, UNKNOWN, SILENCE)  # the default 12 classes
BACKGROUND_NOISE_DIR = "_background_noise_"
PHRASE_FOLDER = "phrases"  # the synthesized corpus's running-speech `_unknown_` clips
RESERVED = (UNKNOWN, SILENCE, BACKGROUND_NOISE_DIR, PHRASE_FOLDER)
MAX_KEYWORD_CHARS = 64

# Non-keywords of Speech Commands v2; the synthesized corpus speaks these as `_unknown_`.
UNKNOWN_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip


def folder_name(keyword: str) -> str:
    """A keyword's corpus folder: lower case, words joined by ``_`` ("Hey Edge" -> hey_edge)."""
    return "_".join(keyword.lower().split())


def classes_of(keywords: Sequence[str]) -> tuple[str, ...]:
    """The classes of a keyword list, in label-index order: the keywords, unknown, silence."""
    return (*keywords, UNKNOWN, SILENCE)


def label_of_word(folder: str, keywords: Sequence[str] = KEYWORDS) -> str:
    """A corpus folder's class: a keyword's folder is that keyword, any other folder unknown."""
    by_folder = {folder_name(k): k for k in keywords}
    return by_folder.get(folder, UNKNOWN)


def class_index(label: str, classes: Sequence[str] = CLASSES) -> int:
    return list(classes).index(label)


def _bad_character(word: str) -> str | None:
    """The first character of ``word`` that a keyword cannot hold, or None. A word is letters or
    digits (any script), with apostrophes and hyphens after its first character ("don't",
    "x-ray"): never a leading ``-`` that an engine would read as an option."""
    if not word[0].isalnum():
        return word[0]
    return next((c for c in word if not (c.isalnum() or c in "'-")), None)


def check_keywords(keywords: Sequence[str]) -> tuple[str, ...]:
    """The keyword list with each phrase's spaces normalized; ``ValueError`` naming the word for a
    list that cannot work: empty, a duplicate (ignoring case and spaces), a reserved class or
    folder name, or a character that cannot be spoken or be part of a folder name."""
    if not keywords:
        raise ValueError("the keyword list is empty: name at least one word or short phrase")
    seen: dict[str, str] = {}
    out: list[str] = []
    for raw in keywords:
        phrase = " ".join(raw.split())
        if raw.strip() in RESERVED or phrase.lower() in RESERVED:
            raise ValueError(f"{raw!r} is a class or folder name of its own "
                             f"({', '.join(RESERVED)}): choose another keyword")  # fmt: skip
        if not phrase:
            raise ValueError(f"{raw!r} is blank: a keyword needs at least one word")
        if len(phrase) > MAX_KEYWORD_CHARS:
            raise ValueError(f"{raw!r} is longer than {MAX_KEYWORD_CHARS} characters: a keyword "
                             "is a word or a short phrase said within one second")  # fmt: skip
        for word in phrase.split():
            bad = _bad_character(word)
            if bad is not None:
                where = " at the start of a word" if bad == word[0] else ""
                raise ValueError(
                    f"{raw!r} has the character {bad!r}{where}, which cannot be spoken or be part "
                    "of a folder name: use letters and digits (apostrophes and hyphens inside "
                    "a word), words separated by spaces"
                )
        key = "".join(phrase.lower().split())
        if key in seen:
            raise ValueError(f"{raw!r} repeats the keyword {seen[key]!r} (keywords are compared "
                             "ignoring case and spaces)")  # fmt: skip
        seen[key] = raw
        out.append(phrase)
    return tuple(out)
