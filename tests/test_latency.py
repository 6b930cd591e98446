"""Device profiles and the ONNX Runtime timing harness: when sampling stops, and when it refuses."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.latency import (
    NoisyMeasurementError,
    load_profile,
    measure,
    median_interval,
    time_interleaved,
)
from tests.helpers.search import QUICK, onnx_bytes


def test_profiles_registry_and_errors(tmp_path: Path) -> None:
    profile = load_profile("cpu-1thread")
    assert profile.threads == 1 and profile.budget.fraction == 0.75
    assert profile.budget.resolve(2.0) == 1.5
    with pytest.raises(ConfigError, match=r"unknown device profile 'pixel9'.*cpu-1thread"):
        load_profile("pixel9")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nthreads: 0\nbudget: {ms: 1.0, fraction: 0.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid device profile: threads.*budget"):
        load_profile(str(bad))


def test_measure_times_a_real_model_and_refuses_noise() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU())
    example = torch.zeros(1, 16)
    blob = onnx_bytes(model, (example,))
    feed = {"input": example.numpy()}
    result = measure(blob, feed, QUICK)
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms < 50
    assert result.runs_per_sample >= 1
    assert result.ci_low_ms <= result.median_ms <= result.ci_high_ms
    strict = QUICK.model_copy(
        update={"precision": 1e-9, "max_uncertainty": 1e-9, "max_seconds": 0.05}
    )
    with pytest.raises(NoisyMeasurementError, match=r"tiny on 'test': after 0 s the median is"):
        time_interleaved({"tiny": jittery()}, strict)


def jittery():
    """A call whose duration is spread over a millisecond: its median's confidence interval
    shrinks with samples but never collapses to zero width. (A real model on a quiet machine can
    repeat identical timer readings, and then its interval is exactly zero: known to any
    precision.)"""
    rng = np.random.default_rng(0)
    return lambda: time.sleep(float(rng.uniform(0.0, 1e-3)))


def test_median_interval_is_the_binomial_order_statistics() -> None:
    # n = 100: ranks 50 -+ 1.96 * 10 / 2 = 40.2 .. 59.8 -> order statistics 40 and 60 (0-based)
    samples = np.arange(100, dtype=float)[::-1]
    assert median_interval(samples) == (40.0, 60.0)
    assert median_interval(np.full(7, 3.0)) == (3.0, 3.0)


def test_sampling_stops_at_the_precision_or_after_max_seconds() -> None:
    x = torch.zeros(1, 16)
    blob = onnx_bytes(torch.nn.Linear(16, 16), (x,))
    feed = {"input": x.numpy()}
    loose = QUICK.model_copy(update={"repeats": 10, "min_sample_ms": 0.0})
    quick = measure(blob, feed, loose)  # precise enough after a block or a few
    assert quick.repeats >= 10 and quick.repeats % 10 == 0 and quick.uncertainty <= 0.5
    tight = loose.model_copy(update={"precision": 1e-9, "max_seconds": 0.3})
    result = time_interleaved({"jittery": jittery()}, tight)["jittery"]
    # never that precise: sampled until max_seconds, then accepted at max_uncertainty
    assert result.repeats > quick.repeats and result.seconds >= 0.3
    assert 1e-9 < result.uncertainty <= tight.max_uncertainty


def test_interleaved_timing_alternates_models_and_spans_min_seconds() -> None:
    calls: list[str] = []

    def run(name: str, spin: int):
        def call() -> None:
            calls.append(name)
            sum(range(spin))

        return call

    profile = QUICK.model_copy(update={"repeats": 5, "min_sample_ms": 0.0, "min_seconds": 0.05})
    result = time_interleaved({"a": run("a", 10), "b": run("b", 2000)}, profile)
    assert result["a"].median_ms < result["b"].median_ms
    assert result["a"].repeats == result["b"].repeats > 5  # more samples to last 50 ms
    timed = calls[-2 * result["a"].repeats * 2 :]  # each sample: one untimed run + one timed
    assert timed.count("a") == timed.count("b")
    assert max(len(list(g)) for _, g in itertools.groupby(timed)) <= 4  # never long runs of one
    strict = profile.model_copy(
        update={"precision": 1e-9, "max_uncertainty": 1e-9, "max_seconds": 0.06}
    )
    with pytest.raises(NoisyMeasurementError, match="latency of a, b on 'test'"):
        time_interleaved({"a": jittery(), "b": jittery()}, strict)  # both stay uncertain


@pytest.mark.parametrize("level", ["all", "extended", "basic", "disabled"])
def test_a_profiles_graph_optimization_level_reaches_both_harnesses(level: str) -> None:
    """The host's sessions and the probe's torch-free measure.py open graphs the same way."""
    import onnxruntime as ort

    from components.latency import session
    from components.search import probe_measure

    model = onnx_bytes(torch.nn.Linear(4, 2), (torch.zeros(1, 4),))
    expected = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[level]  # fmt: skip
    host = session(model, QUICK.model_copy(update={"graph_optimization": level}))
    assert host.get_session_options().graph_optimization_level == expected
    assert load_profile("cpu-1thread-basic").graph_optimization == "basic"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(model)
        probe = probe_measure.open_session(path, 1, "CPUExecutionProvider", level)
        assert probe.get_session_options().graph_optimization_level == expected
