"""The 12-class Speech Commands label set (10 keywords, unknown, silence)."""

KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CLASSES: tuple[str, ...] = (*KEYWORDS, UNKNOWN, SILENCE)
BACKGROUND_NOISE_DIR = "_background_noise_"

# Non-keywords of Speech Commands v2; the synthesized corpus speaks these as `_unknown_`.
UNKNOWN_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip


def label_of_word(word: str) -> str:
    """Map a Speech Commands folder name to its class: keywords are themselves, the rest unknown."""
    return word if word in KEYWORDS else UNKNOWN


def class_index(label: str) -> int:
    return CLASSES.index(label)
