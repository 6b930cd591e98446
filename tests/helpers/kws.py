"""A small keyword corpus spoken by espeak-ng and a tiny network trained on it, for export tests.

Real speech through the real synthesizer, so the device-side test can check the labels of clearly
spoken keywords; small enough to build and train in seconds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.config import FeatureParams
from components.data import prepared
from components.data.labels import CLASSES, KEYWORDS, SILENCE, UNKNOWN, class_index
from components.data.noise import hum, running_tap
from components.data.synthesize import espeak, trim_silence
from components.features import compute_features
from components.model.space import SearchSpace, StageSpec
from components.model.subnet import SubNetwork

RATE = 16000
VOICES = (
    ("en-us", "m3"), ("en-gb", "f4"), ("en-us", "f2"), ("en-gb", "m1"),
    ("en-gb-scotland", "m5"), ("en-gb-x-rp", "f1"), ("en-us", "m7"), ("en-gb-x-gbclan", "f3"),
)  # fmt: skip
TRAIN_PROSODY = ((135, 35), (175, 65))  # (words per minute, pitch) of the training takes
TEST_PROSODY = (155, 50)  # an unheard speed and pitch, spoken clearly (no noise)
TEST_VOICES = VOICES[:2]
UNKNOWN_TRAIN = ("bed", "cat", "house", "tree", "happy", "seven")
UNKNOWN_TEST = ("bird", "dog")
SPACE = SearchSpace(stem_stride=(2, 4), stages=(StageSpec(16, 1, 1), StageSpec(32, 2, 2)))
WIDTHS = [16, 32, 32]


def speak(exe: str, word: str, voice: tuple[str, str, int, int]) -> np.ndarray:
    """A clearly spoken, trimmed utterance at -20 dBFS RMS (``exe``: the espeak-ng binary, from
    the ``espeak`` fixture)."""
    x = trim_silence(espeak(exe, word, *voice))
    return (x * (0.1 / max(float(np.sqrt(np.mean(x**2))), 1e-9))).astype(np.float32)


def place(word: np.ndarray, rng: np.random.Generator, snr_db: float | None) -> np.ndarray:
    """Centre a word in a 1 s clip with a random shift, and white noise at ``snr_db``."""
    x = word[:RATE]
    start = int(np.clip((RATE - len(x)) // 2 + rng.integers(-1600, 1601), 0, RATE - len(x)))
    clip = np.zeros(RATE, dtype=np.float64)
    clip[start : start + len(x)] = x
    if snr_db is not None:
        clip += rng.standard_normal(RATE) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
    return clip


def background(rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(3)
    n = RATE
    x = hum(rng, n) if kind == 0 else running_tap(rng, n) if kind == 1 else rng.standard_normal(n)
    return x / np.sqrt(np.mean(x**2)) * 10 ** (rng.uniform(-45, -25) / 20)


def build_corpus(exe: str, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """int16 clips and a prepare-style manifest: server train (8 voices at 2 speeds and pitches,
    a clean and a noisy take of each word) and server/client test (2 of the voices at an unheard
    speed and pitch, a clean take and two at 30 dB SNR)."""
    rng = np.random.default_rng(seed)
    jobs = [
        (w, (*v, *p), "train") for v in VOICES for p in TRAIN_PROSODY
        for w in (*KEYWORDS, *UNKNOWN_TRAIN)
    ]  # fmt: skip
    jobs += [
        (w, (*v, *TEST_PROSODY), "test") for v in TEST_VOICES for w in (*KEYWORDS, *UNKNOWN_TEST)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        words = list(pool.map(lambda job: speak(exe, job[0], job[1]), jobs))
    clips, rows = [], []
    for (word, voice, split), audio in zip(jobs, words, strict=True):
        label = word if word in KEYWORDS else UNKNOWN
        for take in range(2 if split == "train" else 3):
            snr = None if take == 0 else float(rng.uniform(15, 45) if split == "train" else 30)
            clips.append(place(audio, rng, snr))
            rows.append((f"{label}/{voice[0]}_{voice[1]}.wav", f"{voice[0]}+{voice[1]}", label,
                         split))  # fmt: skip
    for split, count in (("train", 40), ("test", 6)):
        for i in range(count):
            clips.append(background(rng))
            rows.append((f"_background_noise_/{split}{i}.wav", "", SILENCE, split))
    pcm = np.round(np.clip(np.stack(clips), -1.0, 32767 / 32768) * 32768).astype(np.int16)
    manifest = pd.DataFrame(rows, columns=["path", "speaker", "label", "split"])
    manifest.insert(0, "index", range(len(manifest)))
    manifest["label_index"] = [class_index(label) for label in manifest["label"]]
    test = manifest["split"] == "test"
    # Half the unseen-voice clips stand in for the client pool's test clips.
    manifest["pool"] = np.where(test & (manifest["index"] % 2 == 1), "client", "server")
    manifest["client"] = np.where(manifest["pool"] == "client", 0, -1)
    return pcm, manifest


def write_prepared(out: Path, pcm: np.ndarray, manifest: pd.DataFrame) -> np.ndarray:
    """A ``data/prepared`` folder as the prepare stage writes it; returns the features."""
    features = compute_features(torch.from_numpy(pcm.astype(np.float32) / 32768.0), FeatureParams())
    prepared.write_prepared(out, pcm, features.numpy(), manifest, {"classes": list(CLASSES)})
    return features.numpy()


def train_subnet(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> SubNetwork:
    """A small DS-CNN trained with Adam on the given log-mel features (a few seconds on CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: a second thread costs more than it gives
    try:
        return _train(features, labels, seed)
    finally:
        torch.set_num_threads(threads)


def _train(features: np.ndarray, labels: np.ndarray, seed: int) -> SubNetwork:
    torch.manual_seed(seed)
    x, y = torch.from_numpy(features), torch.from_numpy(labels.astype(np.int64))
    net = SubNetwork(SPACE, WIDTHS)
    net.norm.set_stats(x)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=30 * 14)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(30):
        order = torch.randperm(len(y), generator=g)
        for batch in order.split(len(y) // 14 + 1):
            shift = int(torch.randint(-6, 7, (1,), generator=g))
            loss = torch.nn.functional.cross_entropy(net(x[batch].roll(shift, dims=2)), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()
