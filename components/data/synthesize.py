"""Synthesize a keyword-spotting corpus in Speech Commands layout with espeak-ng."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from scipy.signal import firwin, resample_poly

from components.config import CorpusParams
from components.data import noise
from components.data.labels import BACKGROUND_NOISE_DIR, KEYWORDS, UNKNOWN_WORDS
from components.data.wav import read_wav, write_wav
from components.errors import EdgelearnError
from components.io import atomic_dir

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
# Domain shift: client accents are never heard by the server.
SERVER_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan")
CLIENT_VOICES = ("en-029", "en-us-nyc", "en-gb-x-gbcwmd")
VARIANTS = (
    *(f"m{i}" for i in range(1, 8)), *(f"f{i}" for i in range(1, 6)),
    "klatt", "klatt2", "klatt3", "klatt4",
)  # fmt: skip
RATE_RANGE = (120, 200)  # words per minute, inclusive
PITCH_RANGE = (20, 80)  # espeak-ng pitch 0-99, inclusive
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
class Speaker:
    index: int
    speaker_id: str
    pool: str
    voice: str
    variant: str
    rate: int
    pitch: int
    snr_db: tuple[float, float]
    unknown_words: tuple[str, ...]


@dataclass(frozen=True)
class _Task:
    speaker: Speaker
    out_dir: Path
    exe: str
    seed: int
    keyword_repeats: int
    max_shift_s: float
    noise_names: tuple[str, ...]


def _parse_espeak_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Decode espeak-ng's streamed WAV (its size fields are bogus, so walk the chunks)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("output is not a RIFF/WAVE stream")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            rate = struct.unpack("<I", data[body + 4 : body + 8])[0]
        elif cid == b"data":
            end = min(body + size, len(data))
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.float32) / 32768.0, rate
        pos = body + size + (size % 2)
    raise ValueError("no data chunk")


@lru_cache(maxsize=4)
def _lowpass(up: int, down: int) -> np.ndarray:
    """resample_poly's default anti-alias FIR, designed once per process instead of per call."""
    rate = max(up, down)
    return firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0)).astype(np.float32)


def espeak(exe: str, text: str, voice: str, variant: str, rate: int, pitch: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return it as float32 audio resampled to 16 kHz."""
    cmd = [exe, "--stdout", "-v", f"{voice}+{variant}", "-s", str(rate), "-p", str(pitch), text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    try:
        if proc.returncode != 0:
            raise ValueError(f"exit status {proc.returncode}")
        audio, sr = _parse_espeak_wav(proc.stdout)
        if audio.size == 0 or not np.any(audio):
            raise ValueError("no audio produced")
    except ValueError as err:
        stderr = proc.stderr.decode(errors="replace").strip() or "(no stderr)"
        raise EdgelearnError(
            f"espeak-ng failed for voice {voice}+{variant}, word {text!r}: {err}; stderr: {stderr}"
        ) from None
    if sr != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, sr)
        up, down = SAMPLE_RATE // g, sr // g  # 22050 Hz: 320/441
        audio = resample_poly(audio, up, down, window=_lowpass(up, down))
    return audio.astype(np.float32)


def trim_silence(x: np.ndarray, frame: int = 160, floor_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``floor_db`` below the loudest 10 ms frame."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > max(rms.max() * 10 ** (floor_db / 20), 1e-4))
    if loud.size == 0:
        return x
    start, stop = max(loud[0] - 2, 0) * frame, min(loud[-1] + 4, n) * frame
    return x[start:stop]


def render_clip(
    word: np.ndarray, noises: list[np.ndarray], snr_range: tuple[float, float], max_shift_s: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Turn a raw 16 kHz utterance into a noisy 1 s clip: trim, level, shift, add noise at SNR."""
    x = trim_silence(word)
    x = x * (10 ** (rng.uniform(*SPEECH_RMS_DB) / 20) / max(np.sqrt(np.mean(x**2)), 1e-9))
    x = x * min(1.0, 0.9 / max(float(np.abs(x).max()), 1e-9))
    if len(x) > CLIP_SAMPLES:  # keep the middle second of an overlong word
        cut = (len(x) - CLIP_SAMPLES) // 2
        x = x[cut : cut + CLIP_SAMPLES]
    center = (CLIP_SAMPLES - len(x)) / 2
    shift = rng.uniform(-max_shift_s, max_shift_s) * SAMPLE_RATE
    start = int(np.clip(round(center + shift), 0, CLIP_SAMPLES - len(x)))
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    clip[start : start + len(x)] = x
    bg = noises[int(rng.integers(len(noises)))]
    offset = int(rng.integers(0, len(bg) - CLIP_SAMPLES + 1))
    seg = bg[offset : offset + CLIP_SAMPLES].astype(np.float64)
    snr = rng.uniform(*snr_range)
    p_speech, p_noise = float(np.mean(x**2)), max(float(np.mean(seg**2)), 1e-12)
    clip += seg * math.sqrt(p_speech / (p_noise * 10 ** (snr / 10)))
    return clip * min(1.0, 0.99 / max(float(np.abs(clip).max()), 1e-9))


def _synthesize_speaker(task: _Task, noise_by_name: dict[str, np.ndarray]) -> int:
    """Write every clip of one speaker; returns the number of clips written."""
    spk = task.speaker
    rng = np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=(2, spk.index)))
    noises = [noise_by_name[name] for name in task.noise_names]
    words = [w for w in KEYWORDS for _ in range(task.keyword_repeats)] + list(spk.unknown_words)
    counts: dict[str, int] = {}
    for word in words:
        n = counts[word] = counts.get(word, -1) + 1
        raw = espeak(task.exe, word, spk.voice, spk.variant, spk.rate, spk.pitch)
        clip = render_clip(raw, noises, spk.snr_db, task.max_shift_s, rng)
        write_wav(task.out_dir / word / f"{spk.speaker_id}_nohash_{n}.wav", clip, SAMPLE_RATE)
    return len(words)


def _init_worker(noise_dir: Path) -> None:
    """Pool initializer: read the background noises once per worker process."""
    for path in sorted(noise_dir.glob("*.wav")):
        _WORKER_NOISE[path.name] = read_wav(path, SAMPLE_RATE)


def _run_in_worker(task: _Task) -> int:
    return _synthesize_speaker(task, _WORKER_NOISE)


def make_speakers(cfg: CorpusParams, seed: int) -> list[Speaker]:
    """Draw distinct (voice, variant, rate, pitch) speakers for the server then the client pool.

    Voices cycle through each pool's accent list so accents are balanced; unknown words are dealt
    from a shuffled cycle of UNKNOWN_WORDS so that every one is used once a pool is large enough.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    pools = (
        ("server", cfg.num_server_speakers, SERVER_VOICES, cfg.server_snr_db),
        ("client", cfg.num_client_speakers, CLIENT_VOICES, cfg.client_snr_db),
    )
    speakers: list[Speaker] = []
    seen: set[tuple[str, str, int, int]] = set()
    ids: set[str] = set()
    k = cfg.unknown_words_per_speaker
    for pool, count, voices, snr in pools:
        deck = [UNKNOWN_WORDS[i] for i in rng.permutation(len(UNKNOWN_WORDS))]
        for i in range(count):
            voice = voices[i % len(voices)]
            for _ in range(10_000):
                key = (
                    voice,
                    VARIANTS[int(rng.integers(len(VARIANTS)))],
                    int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
                    int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                )
                sid = hashlib.sha1("|".join(map(str, key)).encode()).hexdigest()[:8]
                if key not in seen and sid not in ids:
                    break
            else:
                raise EdgelearnError(f"corpus: cannot draw {count} distinct {pool} speakers")
            seen.add(key)
            ids.add(sid)
            unknown = tuple(deck[(i * k + j) % len(deck)] for j in range(k))
            speakers.append(Speaker(len(speakers), sid, pool, *key, snr, unknown))
    return speakers


def _write_metadata(root: Path, cfg: CorpusParams, speakers: list[Speaker], seed: int) -> None:
    table = {
        s.speaker_id: {
            "pool": s.pool, "voice": s.voice, "variant": s.variant, "rate": s.rate,
            "pitch": s.pitch, "snr_db": list(s.snr_db),
        }
        for s in sorted(speakers, key=lambda s: s.speaker_id)
    }  # fmt: skip
    (root / "speakers.json").write_text(json.dumps(table, indent=2) + "\n")
    (root / "README.md").write_text(
        "# Synthetic keyword-spotting corpus\n\n"
        "Synthesized with espeak-ng (seed "
        f"{seed}): {cfg.num_server_speakers} server and {cfg.num_client_speakers} client speakers,"
        " each a distinct espeak-ng voice+variant, speaking rate and pitch (see `speakers.json`).\n"
        "Every word was trimmed, levelled, shifted at random inside a 1 s window and mixed with a\n"
        f"segment of `{BACKGROUND_NOISE_DIR}/` at a random SNR. Client speakers use accents\n"
        f"({', '.join(CLIENT_VOICES)}) and a babble noise that server speakers never get.\n\n"
        "Layout follows Google Speech Commands: `<word>/<speaker>_nohash_<n>.wav`, 16 kHz mono\n"
        "16-bit PCM, 1 s each. There are no validation/testing lists; splits are made later.\n"
    )


def synthesize_corpus(
    cfg: CorpusParams, out_dir: Path, seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusSummary:  # fmt: skip
    """Synthesize the whole corpus into ``out_dir`` (replacing it atomically) and summarize it.

    The same ``cfg`` and ``seed`` give byte-identical files whatever the number of workers.
    ``progress(done, total)`` is called in this process as speakers finish.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EdgelearnError(
            "espeak-ng is needed to synthesize the corpus but is not on PATH; install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
        )
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        speakers = make_speakers(cfg, seed)
        log.info("synthesizing %d speakers into %s", len(speakers), out_dir)
        noise_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        noises = noise.make_noises(noise_rng, cfg.noise_seconds, partial(espeak, exe))
        for name, audio in noises.items():
            write_wav(tmp / BACKGROUND_NOISE_DIR / name, audio, SAMPLE_RATE)
        everything = tuple(sorted(noises))
        server_noise = tuple(n for n in everything if n != noise.BABBLE_FILE)
        tasks = [
            _Task(s, tmp, exe, seed, cfg.keyword_repeats, cfg.max_shift_s,
                  server_noise if s.pool == "server" else everything)
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
        else:
            noise_dir = tmp / BACKGROUND_NOISE_DIR
            # forkserver, not fork: the stage runs inside Prefect and MLflow, whose threads may
            # hold a lock at the moment of a fork, and a forked worker then waits on it forever
            context = mp.get_context("forkserver")
            with context.Pool(workers, initializer=_init_worker, initargs=(noise_dir,)) as pool:
                for done, n in enumerate(pool.imap_unordered(_run_in_worker, tasks), 1):
                    num_clips += n
                    if progress:
                        progress(done, len(tasks))
        _write_metadata(tmp, cfg, speakers, seed)
    seconds = time.perf_counter() - t0
    log.info("wrote %d clips from %d speakers in %.1f s", num_clips, len(speakers), seconds)
    return CorpusSummary(
        out_dir=out_dir,
        num_clips=num_clips,
        num_speakers=len(speakers),
        num_server_speakers=cfg.num_server_speakers,
        num_client_speakers=cfg.num_client_speakers,
        num_noise_files=len(noises),
        seconds=seconds,
    )
