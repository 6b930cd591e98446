"""The corpus's speakers: two pools of engine voices; a speaker is one voice at its own rate,
pitch and vocal-tract warp, recorded through its own channel (device and room).

The pools share no recorded person and no espeak-ng accent, so the client pool's domain shift is
a shift in voices and engines as well as in rooms, microphones, codecs and noise. Everything is
drawn in this process from ``base.seed``: the same seed gives the same speakers, whatever the
number of workers that later speak them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from components.config import CorpusParams
from components.data import acoustics
from components.data.acoustics import Channel
from components.data.labels import UNKNOWN_WORDS
from components.errors import EdgelearnError

ESPEAK = "espeak-ng"
# espeak-ng's voice variants: sexes and voice qualities of one accent
VARIANTS = (
    *(f"m{i}" for i in range(1, 8)), *(f"f{i}" for i in range(1, 6)),
    "klatt", "klatt2", "klatt3", "klatt4",
)  # fmt: skip
RATE_RANGE = (0.85, 1.2)  # speed factor of the voice's own tempo
PITCH_RANGE = (-3.0, 3.0)  # semitones from the voice's own mean F0
WARP_RANGE = (0.88, 1.12)  # vocal-tract warp: every frequency times this
PHRASE_WORDS = (3, 5)  # words in a running-speech phrase, inclusive


@dataclass(frozen=True)
class ChannelDraw:
    """How a pool's channels are drawn: the keywords of ``acoustics.draw_channel``."""

    room_prob: float
    rt60_s: tuple[float, float]
    drr_db: tuple[float, float]
    telephone_prob: float
    low_hz: tuple[float, float]
    high_hz: tuple[float, float]
    gain_db: tuple[float, float]
    codecs: Mapping[str, float] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator) -> Channel:
        c = acoustics.draw_channel(rng, **asdict(self))
        return Channel(  # rounded: speakers.json stays readable, nothing audible changes
            rt60_s=None if c.rt60_s is None else round(c.rt60_s, 2), drr_db=round(c.drr_db, 1),
            low_hz=None if c.low_hz is None else float(round(c.low_hz)),
            high_hz=None if c.high_hz is None else float(round(c.high_hz)),
            gain_db=round(c.gain_db, 1), codec=c.codec,
        )  # fmt: skip


@dataclass(frozen=True)
class Pool:
    """One pool's voices (espeak-ng accents, and voices built from recorded people) and channels."""

    name: str
    accents: tuple[str, ...]  # espeak-ng accents, each spoken with a random variant
    recorded: tuple[tuple[str, str], ...]  # (engine, voice)
    channels: ChannelDraw

    def voices(self) -> tuple[tuple[str, str], ...]:
        return (*((ESPEAK, a) for a in self.accents), *self.recorded)


# Deployments as the two sides see them. The server's recordings are mostly clean: a room half
# the time, wide microphone bands, few codecs. The clients are phones and far-field devices:
# rooms most of the time and longer ones, a telephone band for 30%, lossy codecs half the time.
SERVER = Pool(
    "server",
    accents=("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan"),
    recorded=(("flite", "kal16"), ("flite", "awb"), ("flite", "rms"), ("festival", "kal_diphone")),
    channels=ChannelDraw(
        room_prob=0.5, rt60_s=(0.2, 0.6), drr_db=(2.0, 12.0), telephone_prob=0.0,
        low_hz=(40.0, 150.0), high_hz=(5500.0, 8000.0), gain_db=(-6.0, 6.0),
        codecs={"none": 0.8, "mulaw8": 0.1, "g711": 0.05, "pcm8": 0.05},
    ),
)  # fmt: skip
CLIENT = Pool(
    "client",
    accents=("en-029", "en-us-nyc", "en-gb-x-gbcwmd"),
    recorded=(("flite", "slt"), ("festival", "ked_diphone"), ("festival", "cmu_us_slt_arctic_hts")),
    channels=ChannelDraw(
        room_prob=0.8, rt60_s=(0.3, 1.0), drr_db=(-3.0, 9.0), telephone_prob=0.3,
        low_hz=(80.0, 300.0), high_hz=(3400.0, 7000.0), gain_db=(-12.0, 6.0),
        codecs={"none": 0.5, "g711": 0.2, "mulaw8": 0.15, "pcm8": 0.15},
    ),
)  # fmt: skip
POOLS = (SERVER, CLIENT)


@dataclass(frozen=True)
class Speaker:
    index: int
    speaker_id: str
    pool: str
    engine: str
    voice: str  # the engine's voice; espeak-ng's with its variant, "en-us+m3"
    rate: float
    pitch: float
    warp: float
    channel: Channel
    snr_db: tuple[float, float]
    unknown_words: tuple[str, ...]
    near_misses: tuple[str, ...] = ()  # near-misses of the keywords, also `_unknown_`
    phrases: tuple[str, ...] = ()  # running speech, cropped to a second: `_unknown_` too

    def metadata(self) -> dict[str, Any]:
        """This speaker's row of ``speakers.json``."""
        return {
            "pool": self.pool, "engine": self.engine, "voice": self.voice, "rate": self.rate,
            "pitch": self.pitch, "warp": self.warp, "channel": asdict(self.channel),
            "snr_db": list(self.snr_db), "phrases": list(self.phrases),
        }  # fmt: skip


def engine_slots(count: int, espeak_share: float) -> list[bool]:
    """Which of ``count`` speakers are espeak-ng (True), spread evenly: round(count·share) of
    them, never two recorded-voice runs much longer than the others."""
    return [int((i + 1) * espeak_share + 0.5) > int(i * espeak_share + 0.5) for i in range(count)]


def _speaker_id(key: tuple[object, ...]) -> str:
    return hashlib.sha1("|".join(map(str, key)).encode()).hexdigest()[:8]


def make_speakers(
    cfg: CorpusParams, seed: int, unknown_words: Sequence[str] = UNKNOWN_WORDS,
    near_misses: Sequence[str] = (), phrase_words: Sequence[str] = (),
) -> list[Speaker]:  # fmt: skip
    """Draw distinct speakers for the server then the client pool.

    ``cfg.espeak_share`` of each pool speaks with espeak-ng accents (each with a random
    variant), the rest with the pool's recorded voices; accents and voices are cycled so each
    is balanced. Rate, pitch, warp and channel are drawn per speaker, and the speaker id is a
    hash of all of them. Unknown words and near-misses are dealt from shuffled cycles of
    ``unknown_words`` and ``near_misses`` so that every one is used once a pool is large enough;
    the near-misses have a random stream of their own, so nothing else depends on them. Each
    speaker's ``cfg.unknown_phrases_per_speaker`` phrases are ``PHRASE_WORDS`` words drawn from
    ``phrase_words`` (none when it is empty), from a third stream of their own.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    near_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    phrase_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,)))
    counts = {"server": cfg.num_server_speakers, "client": cfg.num_client_speakers}
    snrs = {"server": cfg.server_snr_db, "client": cfg.client_snr_db}
    speakers: list[Speaker] = []
    ids: set[str] = set()
    k, m = cfg.unknown_words_per_speaker, cfg.near_misses_per_speaker
    for pool in POOLS:
        count = counts[pool.name]
        deck = [unknown_words[i] for i in rng.permutation(len(unknown_words))]
        near_deck = [near_misses[i] for i in near_rng.permutation(len(near_misses))]
        slots = engine_slots(count, cfg.espeak_share)
        for i, is_espeak in enumerate(slots):
            j = sum(slots[:i]) if is_espeak else i - sum(slots[:i])
            for _ in range(1000):
                if is_espeak:
                    variant = VARIANTS[int(rng.integers(len(VARIANTS)))]
                    engine, voice = ESPEAK, f"{pool.accents[j % len(pool.accents)]}+{variant}"
                else:
                    engine, voice = pool.recorded[j % len(pool.recorded)]
                rate = round(float(rng.uniform(*RATE_RANGE)), 2)
                pitch = round(float(rng.uniform(*PITCH_RANGE)), 1)
                warp = round(float(rng.uniform(*WARP_RANGE)), 2)
                channel = pool.channels.draw(rng)
                sid = _speaker_id((engine, voice, rate, pitch, warp, *asdict(channel).values()))
                if sid not in ids:
                    break
            else:
                raise EdgelearnError(f"corpus: cannot draw {count} distinct {pool.name} speakers")
            ids.add(sid)
            unknown = tuple(deck[(i * k + n) % len(deck)] for n in range(k * bool(deck)))
            near = tuple(
                near_deck[(i * m + n) % len(near_deck)] for n in range(m * bool(near_deck))
            )
            phrases = tuple(
                " ".join(phrase_words[int(n)] for n in phrase_rng.integers(
                    len(phrase_words), size=int(phrase_rng.integers(PHRASE_WORDS[0],
                                                                    PHRASE_WORDS[1] + 1))))
                for _ in range(cfg.unknown_phrases_per_speaker * bool(phrase_words))
            )  # fmt: skip
            speakers.append(Speaker(len(speakers), sid, pool.name, engine, voice, rate, pitch,
                                    warp, channel, snrs[pool.name], unknown, near,
                                    phrases))  # fmt: skip
    return speakers


def voices_used(speakers: Iterable[Speaker]) -> list[tuple[str, str]]:
    """The distinct ``(engine, voice)`` the speakers use, espeak-ng's without their variant
    (a variant changes the voice's quality, not what it pronounces), in order of first use."""
    return list(dict.fromkeys((s.engine, s.voice.partition("+")[0]) for s in speakers))


def clip_counts(speakers: Iterable[Speaker], keyword_clips: int) -> dict[str, int]:
    """Clips per pool, per engine and per pool and engine (``server``, ``espeak-ng``,
    ``server/espeak-ng``), each speaker saying ``keyword_clips`` keywords, its own words and
    its phrases."""
    counts: Counter[str] = Counter()
    for s in speakers:
        n = keyword_clips + len(s.unknown_words) + len(s.near_misses) + len(s.phrases)
        counts.update({s.pool: n, s.engine: n, f"{s.pool}/{s.engine}": n})
    return dict(sorted(counts.items()))
