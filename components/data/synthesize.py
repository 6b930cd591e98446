"""Synthesize a keyword-spotting corpus in Speech Commands layout with several speech engines.

Each word goes: engine (``engines``) -> vocal-tract warp -> the speaker's channel, with a fresh
room tail per clip (``acoustics``) -> a 1 s clip at a random level and shift, mixed with
background noise at a random SNR. Speakers come from ``speakers.make_speakers``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.util import Finalize
from pathlib import Path

import numpy as np

from components.config import CorpusParams
from components.data import acoustics, noise
from components.data.engines import close_sessions, get_engine, missing_voices
from components.data.espeak import espeak, find_espeak
from components.data.labels import (
    BACKGROUND_NOISE_DIR,
    KEYWORDS,
    PHRASE_FOLDER,
    UNKNOWN_WORDS,
    folder_name,
)
from components.data.speakers import POOLS, Speaker, make_speakers, voices_used
from components.data.speech import trim_silence
from components.data.wav import read_wav, write_wav
from components.errors import EdgelearnError
from components.io import atomic_dir

__all__ = ["CorpusSummary", "espeak", "render_clip", "speak_word", "synthesize_corpus",
           "trim_silence"]  # fmt: skip

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
SPEECH_RMS_DB = (-26.0, -14.0)  # random level of the word before noise is added

# Noise loaded once per pool worker by `_init_worker`: a per-process cache, unused in the parent.
_WORKER_NOISE: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class CorpusSummary:
    out_dir: Path
    num_clips: int
    num_speakers: int
    num_server_speakers: int
    num_client_speakers: int
    num_noise_files: int
    seconds: float  # wall-clock time the synthesis took


@dataclass(frozen=True)
class _Task:
    speaker: Speaker
    out_dir: Path
    seed: int
    keyword_repeats: int
    max_shift_s: float
    noise_names: tuple[str, ...]
    keywords: tuple[str, ...] = KEYWORDS


def speak_word(spk: Speaker, word: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``word`` as ``spk`` says it into its channel: the engine's audio, trimmed, warped, padded
    with room for the reverberation tail and passed through the channel (``rng`` draws the room's
    tail). Returns the audio and the length of the word itself, before its tail."""
    raw = get_engine(spk.engine).speak(word, spk.voice, spk.rate, spk.pitch)
    dry = acoustics.vocal_tract_warp(trim_silence(raw), spk.warp)
    tail = round(spk.channel.rt60_s * SAMPLE_RATE) if spk.channel.rt60_s else 0
    wet = acoustics.apply_channel(np.pad(dry, (0, tail)), spk.channel, rng)
    return wet, len(dry)


def render_clip(
    x: np.ndarray, word_len: int, noises: list[np.ndarray], snr_range: tuple[float, float],
    max_shift_s: float, rng: np.random.Generator, random_crop: bool = False,
) -> np.ndarray:  # fmt: skip
    """A 1 s clip of a word (``x[:word_len]``, then its room tail): a random level and shift,
    noise at a random SNR. Level and SNR are measured over the word, not its tail; the tail runs
    to the end of the clip at most, and an overlong word keeps its middle second (a random second
    with ``random_crop``: running speech, as a device hears it between keywords)."""
    if word_len > CLIP_SAMPLES:
        middle = (word_len - CLIP_SAMPLES) // 2
        cut = int(rng.integers(0, word_len - CLIP_SAMPLES + 1)) if random_crop else middle
        x, word_len = x[cut : cut + CLIP_SAMPLES], CLIP_SAMPLES
    x = np.asarray(x, np.float64)
    x = x * (10 ** (rng.uniform(*SPEECH_RMS_DB) / 20) / max(np.sqrt(np.mean(x[:word_len] ** 2)),
                                                            1e-9))  # fmt: skip
    x = x * min(1.0, 0.9 / max(float(np.abs(x).max()), 1e-9))
    center = (CLIP_SAMPLES - word_len) / 2
    shift = rng.uniform(-max_shift_s, max_shift_s) * SAMPLE_RATE
    start = int(np.clip(round(center + shift), 0, CLIP_SAMPLES - word_len))
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    end = min(start + len(x), CLIP_SAMPLES)
    clip[start:end] = x[: end - start]
    bg = noises[int(rng.integers(len(noises)))]
    offset = int(rng.integers(0, len(bg) - CLIP_SAMPLES + 1))
    seg = bg[offset : offset + CLIP_SAMPLES]
    snr = rng.uniform(*snr_range)
    clip = acoustics.mix_at_snr(clip, seg, snr, speech_power=float(np.mean(x[:word_len] ** 2)))
    return acoustics.fit_peak(clip)


def _synthesize_speaker(task: _Task, noise_by_name: dict[str, np.ndarray]) -> int:
    """Write every clip of one speaker from its own random stream; the number of clips."""
    spk = task.speaker
    rng = np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=(2, spk.index)))
    noises = [noise_by_name[name] for name in task.noise_names]
    words = [w for w in task.keywords for _ in range(task.keyword_repeats)]
    words += [*spk.unknown_words, *spk.near_misses]
    # a keyword phrase's folder: "hey edge" -> hey_edge; running speech goes to phrases/
    said = [(w, folder_name(w), False) for w in words]
    said += [(p, PHRASE_FOLDER, True) for p in spk.phrases]
    counts: dict[str, int] = {}
    for text, folder, running in said:
        n = counts[folder] = counts.get(folder, -1) + 1
        x, word_len = speak_word(spk, text, rng)
        clip = render_clip(x, word_len, noises, spk.snr_db, task.max_shift_s, rng,
                           random_crop=running)  # fmt: skip
        write_wav(task.out_dir / folder / f"{spk.speaker_id}_nohash_{n}.wav", clip, SAMPLE_RATE)
    return len(said)


def _init_worker(noise_dir: Path) -> None:
    """Pool initializer: read the background noises once per worker process, and end the
    worker's engine processes (Festival) when it exits after the pool is closed."""
    for path in sorted(noise_dir.glob("*.wav")):
        _WORKER_NOISE[path.name] = read_wav(path, SAMPLE_RATE)
    Finalize(None, close_sessions, exitpriority=10)


def _run_in_worker(task: _Task) -> int:
    return _synthesize_speaker(task, _WORKER_NOISE)


def require_voices(speakers: Sequence[Speaker]) -> None:
    """One ``EdgelearnError`` naming the Debian packages to install when an engine or a voice
    the speakers use is missing here."""
    if missing := missing_voices(voices_used(speakers)):
        raise EdgelearnError("the corpus cannot be spoken here: " + "; ".join(missing))


def _voice_list(speakers: Sequence[Speaker], pool: str) -> str:
    used = [(s.engine, s.voice.partition("+")[0]) for s in speakers if s.pool == pool]
    counts = {v: used.count(v) for v in dict.fromkeys(used)}
    return ", ".join(f"{engine} {voice} ({n})" for (engine, voice), n in counts.items())


def _write_metadata(root: Path, cfg: CorpusParams, speakers: list[Speaker], seed: int) -> None:
    table = {s.speaker_id: s.metadata() for s in sorted(speakers, key=lambda s: s.speaker_id)}
    (root / "speakers.json").write_text(json.dumps(table, indent=2) + "\n")
    near = sorted({w for s in speakers for w in s.near_misses})
    pools = "".join(
        f"- {p.name} ({sum(s.pool == p.name for s in speakers)} speakers, SNR "
        f"{getattr(cfg, p.name + '_snr_db')[0]:g} to {getattr(cfg, p.name + '_snr_db')[1]:g} dB, "
        f"rooms {p.channels.room_prob:.0%} at RT60 {p.channels.rt60_s[0]:g}-"
        f"{p.channels.rt60_s[1]:g} s, telephone band {p.channels.telephone_prob:.0%}, codecs "
        f"{', '.join(f'{c} {w:.0%}' for c, w in p.channels.codecs.items())}):\n"
        f"  {_voice_list(speakers, p.name)}\n"
        for p in POOLS
    )
    (root / "README.md").write_text(
        "# Synthetic keyword-spotting corpus\n\n"
        f"Synthesized with espeak-ng, flite and Festival (seed {seed}): "
        f"{cfg.num_server_speakers} server and {cfg.num_client_speakers} client speakers. A\n"
        "speaker is an engine voice (espeak-ng's with a variant) at its own rate, pitch and\n"
        "vocal-tract warp, recorded through its own channel: a room (a fresh reverberation tail\n"
        "per clip), a microphone band, a gain and a codec (see `speakers.json`). "
        f"{cfg.espeak_share:.0%} of each pool\n"
        "speaks with espeak-ng, the rest with voices built from recorded people; no person and\n"
        "no accent is in both pools. Voices per pool (speakers):\n\n"
        f"{pools}\n"
        "Every word was trimmed, warped, passed through the channel, levelled, shifted at random\n"
        f"inside a 1 s window and mixed with a segment of `{BACKGROUND_NOISE_DIR}/` at a random\n"
        "SNR; client speakers also get a babble noise that server speakers never get.\n\n"
        "Layout follows Google Speech Commands: `<word>/<speaker>_nohash_<n>.wav`, 16 kHz mono\n"
        "16-bit PCM, 1 s each. There are no validation/testing lists; splits are made later.\n"
        + (
            f"\nNear-misses of the keywords, spoken as unknown words: {', '.join(near)}.\n"
            if near
            else ""
        )
        + (
            f"\n`{PHRASE_FOLDER}/` holds running speech, also unknown: each speaker says "
            f"{cfg.unknown_phrases_per_speaker} phrases of common words (never a keyword), and "
            "each clip is a random second of one.\n"
            if any(s.phrases for s in speakers)
            else ""
        )
    )


def synthesize_corpus(
    cfg: CorpusParams, out_dir: Path, seed: int,
    progress: Callable[[int, int], None] | None = None, *, keywords: Sequence[str] = KEYWORDS,
    unknown_words: Sequence[str] = UNKNOWN_WORDS, near_misses: Sequence[str] = (),
    phrase_words: Sequence[str] = (), speakers: Sequence[Speaker] | None = None,
) -> CorpusSummary:  # fmt: skip
    """Synthesize the whole corpus into ``out_dir`` (replacing it atomically) and summarize it.

    Each speaker (``speakers``, default ``make_speakers`` of the arguments) says every keyword
    (a phrase into its ``folder_name``), its share of ``unknown_words`` and of ``near_misses``
    (the caller leaves out any that clash with a keyword), and its running-speech phrases of
    ``phrase_words`` into ``PHRASE_FOLDER``. The same arguments give
    byte-identical files whatever the number of workers. ``progress(done, total)`` is called in
    this process as speakers finish. Missing engines or voices stop it before anything starts.
    """
    exe = find_espeak()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    spk = list(speakers) if speakers is not None else make_speakers(
        cfg, seed, unknown_words, near_misses, phrase_words)  # fmt: skip
    require_voices(spk)
    try:
        with atomic_dir(out_dir) as tmp:
            num_clips, num_noises = _synthesize_into(tmp, cfg, spk, seed, exe, keywords, progress)
            _write_metadata(tmp, cfg, spk, seed)
    finally:
        close_sessions()  # the in-process path's Festival
    seconds = time.perf_counter() - t0
    log.info("wrote %d clips from %d speakers in %.1f s", num_clips, len(spk), seconds)
    return CorpusSummary(
        out_dir=out_dir,
        num_clips=num_clips,
        num_speakers=len(spk),
        num_server_speakers=sum(s.pool == "server" for s in spk),
        num_client_speakers=sum(s.pool == "client" for s in spk),
        num_noise_files=num_noises,
        seconds=seconds,
    )


def _synthesize_into(
    tmp: Path, cfg: CorpusParams, speakers: list[Speaker], seed: int, exe: str,
    keywords: Sequence[str], progress: Callable[[int, int], None] | None,
) -> tuple[int, int]:  # fmt: skip
    """Write the noises and every speaker's clips into ``tmp``; (clips, noise files)."""
    log.info("synthesizing %d speakers into %s", len(speakers), tmp)
    noise_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    noises = noise.make_noises(noise_rng, cfg.noise_seconds, partial(espeak, exe))
    for name, audio in noises.items():
        write_wav(tmp / BACKGROUND_NOISE_DIR / name, audio, SAMPLE_RATE)
    everything = tuple(sorted(noises))
    server_noise = tuple(n for n in everything if n != noise.BABBLE_FILE)
    tasks = [
        _Task(s, tmp, seed, cfg.keyword_repeats, cfg.max_shift_s,
              server_noise if s.pool == "server" else everything, tuple(keywords))
        for s in speakers
    ]  # fmt: skip
    workers = min(cfg.workers or os.cpu_count() or 1, len(tasks))
    num_clips = 0
    if progress:
        progress(0, len(tasks))
    if workers <= 1:
        loaded = {name: read_wav(tmp / BACKGROUND_NOISE_DIR / name) for name in everything}
        for done, task in enumerate(tasks, 1):
            num_clips += _synthesize_speaker(task, loaded)
            if progress:
                progress(done, len(tasks))
        return num_clips, len(noises)
    # forkserver, not fork: the stage runs inside Prefect and MLflow, whose threads may hold a
    # lock at the moment of a fork, and a forked worker then waits on it forever
    context = mp.get_context("forkserver")
    noise_dir = tmp / BACKGROUND_NOISE_DIR
    with context.Pool(workers, initializer=_init_worker, initargs=(noise_dir,)) as pool:
        for done, n in enumerate(pool.imap_unordered(_run_in_worker, tasks), 1):
            num_clips += n
            if progress:
                progress(done, len(tasks))
        pool.close()  # workers exit normally, so their finalizers end their Festival processes
        pool.join()
    return num_clips, len(noises)
