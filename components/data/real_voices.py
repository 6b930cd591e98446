"""Real human speech that Debian packages ship, as a labelled ``<label>/<file>.wav`` test set.

Every figure the pipeline reports on synthesized voices can also be read on real ones: this module
turns the few recordings of real people that Debian packages install into a folder that
``edgelearn evaluate DIR`` and the export stage's ``score_folder`` read (one folder per keyword,
``_unknown_/`` for speech that is no keyword), 16 kHz mono 16-bit PCM, with ``manifest.json``
saying where each clip comes from. Nothing is downloaded or committed: the packages are installed
(``scripts/install-real-voices.sh``) and read where they put their files.

The recordings, all at 16 kHz or more; what each says comes from the package (its file names,
or the transcripts it ships), checked against pocketsphinx's recognizer:

===========================  =====  =========  ==============================================
package (speaker id)         files  rate       what is said
===========================  =====  =========  ==============================================
alsa-utils (``alsa``)        8      48 kHz     the channel names "front left" ... "side right"
neverball-common             18     44.1 kHz   the game's announcer: "go", "ready", "set",
(``neverball``)                                "game over", "player one" ... "hole in one"
pocketsphinx-testdata        1      16 kHz     "go forward ten meters" (the turtle example)
(``psturtle``)
pocketsphinx-testdata        5      16 kHz     playing cards: "ten of clubs", "five five", ...
(``pscards``)
pocketsphinx-testdata        5      16 kHz     LibriVox, *Sense and Sensibility* ch. 1: five
(``librivox``)                                 sentences (public domain)
===========================  =====  =========  ==============================================

A speaker id is one recording set: two sets could be the same person (``psturtle`` and
``pscards``, both low male voices, may be), so the ids count speakers at most. Neverball's
announcer clips are decoded from Ogg Vorbis with ``oggdec`` (Debian package vorbis-tools).

**Labels are honest.** A clip is a keyword clip only when all it says is that keyword; a clip is
``_unknown_`` only when it says no keyword at all. Recordings where a keyword is one word of a
phrase ("front left", "go forward ten meters") are cut into their words: the energy of 25 ms frames
(10 ms hop) is compared with the recording's loudest frame, frames more than ``below_db`` under it
are silence, and the ``n - 1`` longest silences between the first and the last sound are the
boundaries between the ``n`` parts the table names (``"front | left"``). The build stops, naming
the recording, when a chosen silence is shorter than 50 ms, a part shorter than 0.1 s or a keyword
part longer than the model's 1 s clip: the recordings are fixed, so that means a package changed
them, and the set is not silently made smaller. Each part keeps up to 0.1 s of the silence around
it (at most half of the silence it shares with the next part). The cuts are unambiguous and were
checked by an ear proxy when the table was made: ALSA's speaker pauses 0.17-0.35 s between the two
words, and no other silence in those recordings is longer than 0.13 s; the turtle's "go" is 0.16 s
of sound before a 0.12 s dip (the next longest is 0.09 s); and pocketsphinx's en-us recognizer,
free to hear any English word, hears each of the 8 keyword clips as exactly its keyword. A part
that holds a keyword inside a longer phrase (keyword ``ten`` and the part "ten meters") is neither,
and is left out with its reason in the manifest's ``skipped``; so is a part of a keyword phrase
spread over several parts.

With the default keywords (the ten Speech Commands words) the set is, per label:

- ``left``: 3 clips, 1 speaker (alsa)
- ``right``: 3 clips, 1 speaker (alsa)
- ``go``: 2 clips, 2 speakers (neverball, psturtle)
- ``_unknown_``: 39 clips, 5 speakers (alsa 10: front, rear, side, center; neverball 17;
  psturtle 2: "forward", "ten meters"; pscards 5; librivox 5 sentences of 3-7 s, scored on their
  loudest second like any long clip)

and no clip of yes, no, up, down, on, off or stop: no Debian package that was searched ships a
real voice saying one of them alone at 16 kHz or more. That is the honest size of this set: it
checks that a model hears real voices at all and counts false accepts on 39 real non-keyword
clips; it is not a benchmark of its own.

Looked at and left out: sound-theme-freedesktop's ``audio-channel-*.oga`` (the same ALSA
recordings again); asterisk-core-sounds-en-wav (Allison Smith says "no", "zero" ... "nine",
"hello", but at 8 kHz: the device refuses audio below the model's rate, so upsampled telephone
speech would not be scored as the device scores it); pocketsphinx-testdata's ``something.raw``
("go somewhere and do something": no silence separates "go"), ``numbers.raw`` (no transcript
shipped) and ``tidigits/dhd.2934z.raw`` (a TIDIGITS utterance, an LDC corpus); neverball's
``time.ogg`` (perhaps "time's up", with the keyword at its end), ``fall.ogg`` (its words are
unclear), ``goal.ogg`` (a chime)
and ``snd/gd/`` (heavily processed, unused by the game); pingus-data (pitched cartoon voices at
11-44 kHz), hedgewars-data (acted, partly pitch-shifted character voices, 145 MB), kanagram's
``right.wav`` (a chime); codec2-examples, linphone-common and puredata-doc (speech with no
transcript shipped).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.data.labels import KEYWORDS, UNKNOWN, check_keywords, folder_name
from components.data.wav import write_wav
from components.errors import EdgelearnError
from components.export.audio import Audio, AudioRejected, read_wav, resample, to_mono
from components.io import atomic_dir

SAMPLE_RATE = 16000
MANIFEST = "manifest.json"
FORMAT = "edgelearn.real_voices/1"
INSTALL_SCRIPT = "scripts/install-real-voices.sh"

FRAME_S, HOP_S = 0.025, 0.010  # energy frames of the word cutter
MIN_GAP_S = 0.05  # a boundary between two parts is at least this much silence
MIN_PART_S = 0.1  # and no part is shorter
PAD_S = 0.1  # silence kept around a cut part
MAX_KEYWORD_S = 1.0  # a keyword clip fits the model's clip
SILENT_DB = -90.0  # a recording whose loudest frame is under this holds no sound
PART = " | "  # separates the parts of a transcript that are cut apart
SPEAKER_ID = re.compile(r"^[A-Za-z0-9]+$")  # as Speech Commands' <speaker>_nohash_<n>.wav

# Decoders of compressed sources: suffix -> (Debian package, command).
DECODERS: dict[str, tuple[str, str]] = {".ogg": ("vorbis-tools", "oggdec")}

# The counts the docstring states for the default keywords (the tests hold the set to them).
DEFAULT_COUNTS: dict[str, int] = {"left": 3, "right": 3, "go": 2, UNKNOWN: 39}
DEFAULT_SPEAKERS: dict[str, tuple[str, ...]] = {
    "left": ("alsa",),
    "right": ("alsa",),
    "go": ("neverball", "psturtle"),
    UNKNOWN: ("alsa", "librivox", "neverball", "pscards", "psturtle"),
}


class RealVoicesError(EdgelearnError):
    """A package the real-voice set reads is not installed, or a recording cannot be used."""


@dataclass(frozen=True)
class Recording:
    """One file a package installs: who says what, and how to cut it into parts."""

    package: str
    path: str  # absolute, where the package installs it
    said: str  # lower-case words; PART separates the parts cut apart
    speaker: str  # [A-Za-z0-9]+, the <speaker> of <speaker>_nohash_<n>.wav
    below_db: float | None = None  # the cutter's silence threshold under the loudest frame

    @property
    def parts(self) -> list[str]:
        return [" ".join(p.split()) for p in self.said.split(PART.strip())]


_ALSA = "/usr/share/sounds/alsa"
_NEVERBALL = "/usr/share/games/neverball/snd"
_PS = "/usr/share/pocketsphinx/test/data"
_LIBRIVOX = f"{_PS}/librivox/sense_and_sensibility_01_austen_64kb"

RECORDINGS: tuple[Recording, ...] = (
    *(
        Recording("alsa-utils", f"{_ALSA}/{a.title()}_{b.title()}.wav", f"{a} | {b}", "alsa", 40)
        for a, b in (("front", "left"), ("front", "right"), ("front", "center"),
                     ("rear", "left"), ("rear", "right"), ("rear", "center"),
                     ("side", "left"), ("side", "right"))
    ),
    *(
        Recording("neverball-common", f"{_NEVERBALL}/{name}.ogg", said, "neverball")
        for name, said in (("go", "go"), ("ready", "ready"), ("set", "set"),
                           ("over", "game over"), ("record", "new record"), ("select", "select"),
                           ("success", "success"), ("penalty", "penalty"),
                           ("player1", "player one"), ("player2", "player two"),
                           ("player3", "player three"), ("player4", "player four"),
                           ("birdie", "birdie"), ("bogey", "bogey"), ("double", "double bogey"),
                           ("eagle", "eagle"), ("par", "par"), ("one", "hole in one"))
    ),
    Recording("pocketsphinx-testdata", f"{_PS}/goforward.raw", "go | forward | ten meters",
              "psturtle", 20),
    *(
        Recording("pocketsphinx-testdata", f"{_PS}/cards/{n:03d}.wav", said, "pscards")
        for n, said in ((1, "ten of clubs"), (2, "four queen of clubs"), (3, "seven of clubs"),
                        (4, "five five"), (5, "eight of spades four of clubs seven of hearts"))
    ),
    *(
        Recording("pocketsphinx-testdata", f"{_LIBRIVOX}-{n}.wav", said, "librivox")
        for n, said in (
            ("0870", "and mister john dashwood had then leisure to consider how much there might "
                     "be prudently in his power to do for them"),
            ("0880", "he was not an ill disposed young man"),
            ("0890", "unless to be rather cold hearted and rather selfish is to be ill disposed"),
            ("0920", "had he married a more a amiable woman he might have been made still more "
                     "respectable than he was"),
            ("0930", "he might even have been made amiable himself"),
        )
    ),
)  # fmt: skip

PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(r.package for r in RECORDINGS))


# ---------------------------------------------------------------------------------------------
# What is on this machine


@dataclass(frozen=True)
class Source:
    """A package the set reads, as found on this machine."""

    package: str
    files: int  # how many of its recordings the set uses
    missing: tuple[str, ...]  # those not on this machine
    decoder: tuple[str, str] | None = None  # (command, its package) when the command is missing
    version: str | None = None  # dpkg's, when dpkg knows the package

    @property
    def found(self) -> bool:
        return not self.missing and self.decoder is None

    @property
    def to_install(self) -> list[str]:
        """The Debian packages that would make this source usable."""
        return [self.package] * bool(self.missing) + ([self.decoder[1]] if self.decoder else [])

    def describe(self) -> str:
        if self.found:
            return f"{self.package} {self.version or '(version unknown)'}: {self.files} recordings"
        why = []
        if self.missing:
            why.append(f"{len(self.missing)} of its {self.files} recordings are not on this "
                       f"machine (first: {self.missing[0]})")  # fmt: skip
        if self.decoder:
            why.append(f"its clips need {self.decoder[0]}, which is not on the PATH")
        return f"{self.package}: {'; '.join(why)}: install {' and '.join(self.to_install)}"


def _on_disk(path: str, root: Path) -> Path:
    return Path(root) / path.lstrip("/")


def _decoder(path: str) -> tuple[str, str] | None:
    return DECODERS.get(Path(path).suffix.lower())


def _dpkg_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    status, _, version = done.stdout.partition("\t")
    return version if done.returncode == 0 and status.endswith("installed") and version else None


def find_sources(root: Path = Path("/")) -> list[Source]:
    """Each package the set reads, in ``PACKAGES`` order, with what of it is on this machine
    (``root`` is where the packages' absolute paths start: ``/`` but in tests)."""
    sources = []
    for package in PACKAGES:
        recordings = [r for r in RECORDINGS if r.package == package]
        missing = tuple(r.path for r in recordings if not _on_disk(r.path, root).is_file())
        decoders = {d for r in recordings if (d := _decoder(r.path)) is not None}
        absent = next(((cmd, pkg) for pkg, cmd in sorted(decoders) if shutil.which(cmd) is None),
                      None)  # fmt: skip
        version = _dpkg_version(package) if Path(root) == Path("/") else None
        sources.append(Source(package, len(recordings), missing, absent, version))
    return sources


def missing_message(sources: Sequence[Source]) -> str | None:
    """One message naming every package to install, or None when all are there."""
    absent = [s for s in sources if not s.found]
    if not absent:
        return None
    packages = list(dict.fromkeys(p for s in absent for p in s.to_install))
    broken = [s.package for s in absent if s.missing and s.version]  # installed, files gone
    fresh = [p for p in packages if p not in broken]
    commands = [f"`apt-get install {' '.join(fresh)}`"] * bool(fresh) + [
        f"`apt-get install --reinstall {' '.join(broken)}`"
    ] * bool(broken)
    lines = "\n".join(f"  - {s.describe()}" for s in absent)
    return (f"the real-voice test set reads recordings that Debian packages ship, and some are "
            f"not installed:\n{lines}\ninstall them with {' and '.join(commands)} "
            f"(bash {INSTALL_SCRIPT} installs all it needs)")  # fmt: skip


def check_sources(root: Path = Path("/")) -> list[Source]:
    """``find_sources``, or ``RealVoicesError`` naming the Debian packages to install."""
    sources = find_sources(root)
    message = missing_message(sources)
    if message:
        raise RealVoicesError(message)
    return sources


# ---------------------------------------------------------------------------------------------
# Labels: decided from the transcripts alone


@dataclass(frozen=True)
class PlannedClip:
    recording: Recording
    part: int | None  # which part of a cut recording; None: the recording whole
    said: str
    label: str


def _occurrences(words: Sequence[str], phrase: Sequence[str]) -> list[tuple[int, int]]:
    n = len(phrase)
    return [(i, i + n) for i in range(len(words) - n + 1) if list(words[i : i + n]) == list(phrase)]


def plan(keywords: Sequence[str] = KEYWORDS) -> tuple[list[PlannedClip], list[dict[str, str]]]:
    """The clips the set holds for ``keywords``, and the parts left out with the reason.

    A recording whose whole phrase is a keyword is one keyword clip, never cut. Otherwise each of
    its parts is a keyword clip when the part is exactly a keyword, ``_unknown_`` when it shares
    no word with any keyword said in the recording, and left out when it holds a keyword inside
    a longer phrase or a piece of a keyword phrase spread over several parts."""
    keywords = check_keywords(keywords)
    clips: list[PlannedClip] = []
    skipped: list[dict[str, str]] = []
    for rec in RECORDINGS:
        parts = rec.parts
        words = " ".join(parts).lower().split()
        whole = " ".join(parts)
        exact = next((k for k in keywords if k.lower().split() == words), None)
        if exact is not None:
            clips.append(PlannedClip(rec, None, whole, exact))
            continue
        found = [(k, span) for k in keywords for span in _occurrences(words, k.lower().split())]
        start = 0
        for i, part in enumerate(parts):
            span = (start, start + len(part.split()))
            start = span[1]
            label: str | None = UNKNOWN
            for keyword, (a, b) in found:
                if (a, b) == span:
                    label = keyword
                elif a < span[1] and span[0] < b:  # overlaps a keyword without being it
                    why = (f"holds (part of) the keyword {keyword!r} said in {whole!r}: "
                           f"neither a keyword clip nor {UNKNOWN}")  # fmt: skip
                    skipped.append({"source": rec.path, "said": part, "reason": why})
                    label = None
                    break
            if label is not None:
                clips.append(PlannedClip(rec, i if len(parts) > 1 else None, part, label))
    return clips, skipped


# ---------------------------------------------------------------------------------------------
# Audio: decoding and the word cutter


def _decode(path: Path, command: str) -> Audio:
    """A compressed file decoded to WAV by ``command`` (oggdec's options), then read."""
    with tempfile.TemporaryDirectory(prefix="real-voices-") as tmp:
        wav = Path(tmp) / "decoded.wav"
        argv = [command, "-Q", "-o", str(wav), str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0 or not wav.is_file():
            why = done.stderr.strip() or f"exit status {done.returncode}"
            raise RealVoicesError(f"{path}: {command} could not decode it ({why})")
        return read_wav(wav)


def load_recording(rec: Recording, root: Path = Path("/")) -> tuple[np.ndarray, int]:
    """The recording as mono float32 at ``SAMPLE_RATE``, and the rate it was recorded at."""
    path = _on_disk(rec.path, root)
    if path.suffix == ".raw":  # pocketsphinx's test audio: headerless 16 kHz 16-bit LE mono
        return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0, 16000
    decoder = _decoder(rec.path)
    try:
        audio = to_mono(_decode(path, decoder[1]) if decoder else read_wav(path))
    except AudioRejected as err:
        raise RealVoicesError(f"{path}: {err}") from None
    if audio.rate < SAMPLE_RATE:
        raise RealVoicesError(f"{path}: {audio.rate} Hz is below {SAMPLE_RATE} Hz")
    return resample(audio.samples, audio.rate, SAMPLE_RATE), audio.rate


def frame_db(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Energy in dB of ``FRAME_S`` frames every ``HOP_S``."""
    frame, hop = round(FRAME_S * rate), round(HOP_S * rate)
    n = 1 + max(0, (len(x) - frame) // hop)
    power = np.cumsum(np.concatenate([[0.0], x.astype(np.float64) ** 2]))
    starts = np.arange(n) * hop
    ends = np.minimum(starts + frame, len(x))
    mean = (power[ends] - power[starts]) / np.maximum(ends - starts, 1)
    return 10.0 * np.log10(mean + 1e-12)


def cut_parts(
    x: np.ndarray, parts: int, below_db: float, rate: int = SAMPLE_RATE
) -> list[tuple[int, int]]:
    """Sample ranges of the ``parts`` spoken parts of ``x``: frames within ``below_db`` of the
    loudest are sound, the ``parts - 1`` longest silences between the first and the last sound
    are the boundaries. ``ValueError`` when that does not give ``parts`` believable parts."""
    frame, hop = round(FRAME_S * rate), round(HOP_S * rate)
    db = frame_db(x, rate)
    if len(x) < frame or db.max() < SILENT_DB:
        raise ValueError("no sound")
    sound = db > db.max() - below_db
    on = np.flatnonzero(sound)
    first, last = int(on[0]), int(on[-1])
    step = np.diff(sound[first : last + 1].astype(np.int8))
    gaps = list(zip((np.flatnonzero(step == -1) + 1 + first).tolist(),
                    (np.flatnonzero(step == 1) + 1 + first).tolist(), strict=True))  # fmt: skip
    if len(gaps) < parts - 1:
        raise ValueError(f"sound within {below_db:g} dB of the loudest frame falls into "
                         f"{len(gaps) + 1} part(s), expected {parts}")  # fmt: skip
    chosen = sorted(sorted(gaps, key=lambda g: g[0] - g[1])[: parts - 1])  # longest first
    short = [(g[1] - g[0]) * HOP_S for g in chosen if (g[1] - g[0]) * HOP_S < MIN_GAP_S]
    if short:
        raise ValueError(f"a boundary of {short[0] * 1000:.0f} ms of silence, less than "
                         f"{MIN_GAP_S * 1000:.0f} ms")  # fmt: skip
    bounds = [first, *(f for g in chosen for f in g), last + 1]  # sound frames [a, b)
    spans = [(bounds[2 * i] * hop, min((bounds[2 * i + 1] - 1) * hop + frame, len(x)))
             for i in range(parts)]  # fmt: skip
    for a, b in spans:
        if (b - a) / rate < MIN_PART_S:
            raise ValueError(f"a part of {(b - a) / rate:.2f} s, less than {MIN_PART_S:g} s")
    pad = round(PAD_S * rate)
    out = []
    for i, (a, b) in enumerate(spans):
        before = a - spans[i - 1][1] if i else 2 * a
        after = spans[i + 1][0] - b if i + 1 < len(spans) else 2 * (len(x) - b)
        out.append((a - min(pad, before // 2), b + min(pad, after // 2)))
    return out


# ---------------------------------------------------------------------------------------------
# The folder


def build(
    out_dir: Path, keywords: Sequence[str] = KEYWORDS, root: Path = Path("/")
) -> dict[str, Any]:
    """Write the set for ``keywords`` to ``out_dir`` (replaced whole, atomically) and return its
    manifest. ``RealVoicesError`` naming the Debian packages to install when one is missing."""
    sources = check_sources(root)
    keywords = check_keywords(keywords)
    planned, skipped = plan(keywords)
    by_recording: dict[Recording, list[PlannedClip]] = {}
    for clip in planned:
        by_recording.setdefault(clip.recording, []).append(clip)
    entries: list[dict[str, Any]] = []
    numbers: Counter[tuple[str, str]] = Counter()
    with atomic_dir(Path(out_dir)) as staging:
        for rec, clips in by_recording.items():
            audio, source_rate = load_recording(rec, root)
            spans: list[tuple[int, int]] = [(0, len(audio))]
            if any(c.part is not None for c in clips):
                try:
                    spans = cut_parts(audio, len(rec.parts), float(rec.below_db or 0.0))
                except ValueError as err:
                    raise RealVoicesError(f"{rec.path}: cannot cut {rec.said!r} into its "
                                          f"{len(rec.parts)} parts: {err}") from None  # fmt: skip
            for clip in clips:
                a, b = spans[clip.part] if clip.part is not None else spans[0]
                seconds = (b - a) / SAMPLE_RATE
                if clip.label != UNKNOWN and seconds > MAX_KEYWORD_S:
                    raise RealVoicesError(f"{rec.path}: the keyword part {clip.said!r} is "
                                          f"{seconds:.2f} s, longer than the model's "
                                          f"{MAX_KEYWORD_S:g} s clip")  # fmt: skip
                folder = UNKNOWN if clip.label == UNKNOWN else folder_name(clip.label)
                n = numbers[(folder, rec.speaker)]
                numbers[(folder, rec.speaker)] += 1
                name = f"{folder}/{rec.speaker}_nohash_{n}.wav"
                write_wav(staging / name, audio[a:b], SAMPLE_RATE)
                entries.append({
                    "file": name, "label": clip.label, "said": clip.said,
                    "speaker": rec.speaker, "package": rec.package, "source": rec.path,
                    "source_said": " ".join(rec.parts), "source_rate": source_rate,
                    "start_s": round(a / SAMPLE_RATE, 3), "end_s": round(b / SAMPLE_RATE, 3),
                    "duration_s": round(seconds, 3), "cut": clip.part is not None,
                })  # fmt: skip
        manifest = summary(entries, skipped, keywords, sources)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def summary(
    entries: list[dict[str, Any]], skipped: list[dict[str, str]], keywords: Sequence[str],
    sources: Sequence[Source],
) -> dict[str, Any]:  # fmt: skip
    labels = [*keywords, UNKNOWN]
    counts = {label: sum(e["label"] == label for e in entries) for label in labels}
    speakers = {label: sorted({e["speaker"] for e in entries if e["label"] == label})
                for label in labels}  # fmt: skip
    return {
        "format": FORMAT,
        "sample_rate": SAMPLE_RATE,
        "keywords": list(keywords),
        "counts": counts,
        "speakers": speakers,
        "packages": {s.package: s.version for s in sources},
        "clips": sorted(entries, key=lambda e: e["file"]),
        "skipped": skipped,
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RealVoicesError(f"{path}: not a real-voice manifest ({err})") from None
    if manifest.get("format") != FORMAT:
        raise RealVoicesError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m components.data.real_voices OUT [KEYWORD ...]``: list the sources, build."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m components.data.real_voices OUT_DIR [KEYWORD ...]",
              file=sys.stderr)  # fmt: skip
        return 2
    for source in find_sources():
        print(("found " if source.found else "MISSING ") + source.describe())
    try:
        manifest = build(Path(args[0]), args[1:] or KEYWORDS)
    except (RealVoicesError, ValueError) as err:
        print(f"edgelearn: error: {err}", file=sys.stderr)
        return 1
    for label, n in manifest["counts"].items():
        who = ", ".join(manifest["speakers"][label]) or "-"
        print(f"{label}: {n} clips ({who})")
    print(f"wrote {len(manifest['clips'])} clips to {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
