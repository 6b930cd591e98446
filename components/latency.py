"""Latency measured on the target device: device profiles and the ONNX Runtime timing harness.

A device profile (``configs/devices/<name>.yaml``) says how to measure: engine, execution
provider, threads, warm-up and repeat counts, the noise limit and the latency budget. ``measure``
times an ONNX model at batch 1 and refuses to return a figure whose spread says the machine was
too busy.
"""

from __future__ import annotations

import io
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.errors import ConfigError, EdgelearnError

PACKAGE_DEVICES_DIR = Path(__file__).resolve().parent.parent / "configs" / "devices"


def devices_dir() -> Path:
    """The profile registry: ``configs/devices/`` of the project being run (the working
    directory, as DVC runs stages there), else the one shipped next to the package."""
    local = Path("configs") / "devices"
    return local if local.is_dir() else PACKAGE_DEVICES_DIR


class NoisyMeasurementError(EdgelearnError):
    """The timings of every attempt spread too widely to be trusted."""


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ms: Annotated[float, Field(gt=0.0)] | None = None
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Budget:
        if (self.ms is None) == (self.fraction is None):
            raise ValueError("give exactly one of `ms` or `fraction`")
        return self

    def resolve(self, full_latency_ms: float) -> float:
        return self.ms if self.ms is not None else float(self.fraction or 0.0) * full_latency_ms


class DeviceProfile(BaseModel):
    """How to measure latency on one device; see ``configs/devices/``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    description: str = ""
    engine: Literal["onnxruntime"] = "onnxruntime"
    execution_provider: str = "CPUExecutionProvider"
    threads: Annotated[int, Field(ge=1)] = 1
    warmup: Annotated[int, Field(ge=0)] = 50
    repeats: Annotated[int, Field(ge=5)] = 200
    min_sample_ms: Annotated[float, Field(ge=0.0)] = 1.0  # batch runs into samples this long
    min_seconds: Annotated[float, Field(ge=0.0)] = 0.0  # more samples until an attempt lasts this
    max_spread: Annotated[float, Field(gt=0.0)] = 0.1
    retries: Annotated[int, Field(ge=0)] = 4
    retry_wait_s: Annotated[float, Field(ge=0.0)] = 0.0  # pause before a retry, doubling each time
    budget: Budget = Budget(fraction=0.5)


def known_profiles(directory: Path | None = None) -> list[str]:
    directory = directory or devices_dir()
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str, directory: Path | None = None) -> DeviceProfile:
    """A profile by registry name (``configs/devices/<name>.yaml``) or by path to a YAML file."""
    directory = directory or devices_dir()
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(known_profiles(directory)) or "(none)"
            raise ConfigError(
                f"search.profile: unknown device profile '{name_or_path}'; known profiles: {known} "
                f"(in {directory}), or give a path to a profile YAML"
            )
    try:
        data = yaml.safe_load(path.read_text())
        return DeviceProfile.model_validate(data)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: {e['msg']}"
            for e in err.errors()
        )
        raise ConfigError(f"{path}: invalid device profile: {problems}") from None


@dataclass(frozen=True)
class Latency:
    """Batch-1 latency of one model: median and spread over ``repeats`` timed runs."""

    median_ms: float
    p10_ms: float
    p25_ms: float
    p75_ms: float
    p90_ms: float
    repeats: int
    runs_per_sample: int
    attempts: int

    @property
    def spread(self) -> float:
        """Interquartile range over the median: robust to the few runs another process preempts,
        but large when the machine is busy for a good part of the measurement."""
        return (self.p75_ms - self.p25_ms) / self.median_ms

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "spread": self.spread}


def onnx_bytes(model: Any, example: tuple[Any, ...], opset: int = 18) -> bytes:
    """Serialize a torch module to ONNX in memory (TorchScript exporter: ~0.1 s for a subnet,
    versus ~2 s with dynamo; the export stage uses dynamo for the shipped graph)."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), example, buf,  # type: ignore[arg-type]  # file objects work
            dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"],
        )  # fmt: skip
    return buf.getvalue()


def session(model: bytes | str | Path, profile: DeviceProfile) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = profile.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    available = ort.get_available_providers()
    if profile.execution_provider not in available:
        raise ConfigError(
            f"device profile '{profile.name}': execution provider {profile.execution_provider} "
            f"is not available here (available: {', '.join(available)})"
        )
    return ort.InferenceSession(source, opts, providers=[profile.execution_provider])


def measure(
    model: bytes | str | Path,
    feed: dict[str, np.ndarray],
    profile: DeviceProfile,
    what: str = "model",
) -> Latency:
    """Time ``model`` on ``feed`` (batch 1): warm-up, then ``repeats`` timed samples.

    Each sample times enough back-to-back runs to last ``min_sample_ms`` and divides. Returns the
    median and percentiles per run. When (p75 - p25) / median exceeds the profile's
    ``max_spread`` the attempt is repeated up to ``retries`` times; if no attempt is quiet enough,
    raises ``NoisyMeasurementError`` rather than report a figure that cannot be trusted.
    """
    return measure_many({what: (model, feed)}, profile)[what]


def measure_many(
    models: Mapping[str, tuple[bytes | str | Path, dict[str, np.ndarray]]], profile: DeviceProfile
) -> dict[str, Latency]:
    """Time several models interleaved (see ``time_interleaved``): figures that will be added,
    subtracted or compared with each other are measured under the same machine conditions."""
    runs = {}
    for what, (model, feed) in models.items():
        sess = session(model, profile)
        runs[what] = partial(sess.run, None, feed)
    return time_interleaved(runs, profile)


def time_callable(run: Callable[[], object], profile: DeviceProfile, what: str) -> Latency:
    """The timing loop behind ``measure``, for anything callable (e.g. a PyTorch model)."""
    return time_interleaved({what: run}, profile)[what]


def time_interleaved(runs: Mapping[str, Callable[[], object]], profile: DeviceProfile
                     ) -> dict[str, Latency]:  # fmt: skip
    """Time each callable: warm-up, then ``repeats`` samples of enough back-to-back runs to last
    ``min_sample_ms`` (timing a 20 us run alone mostly measures timer and scheduler jitter),
    preceded by one untimed run (so a sample never pays for caches another model evicted).

    Samples of the different callables are interleaved round-robin, so every figure spans the
    same stretch of time, and the number of samples grows until one attempt lasts the profile's
    ``min_seconds``. On a shared host the speed of a core drifts between regimes for 0.3 s to tens
    of seconds at a time (a busy SMT sibling here makes the same network 25-50% slower): timing
    one model for 0.2 s after another lets one land in a slow stretch and the next in a fast one,
    and their difference (a latency-table entry) is then mostly noise. Interleaved, both see the
    same mix of regimes.

    When any figure's (p75 - p25) / median exceeds ``max_spread``, all of them are measured again
    (figures from different attempts would not share conditions), up to ``retries`` times, after
    pauses of ``retry_wait_s``, doubling (busy stretches here last up to tens of seconds);
    ``NoisyMeasurementError`` names the figures still too noisy in the last attempt.
    """
    inner: dict[str, int] = {}
    sample_ms: dict[str, float] = {}  # one sample, its untimed run included
    for what, run in runs.items():
        for _ in range(max(1, profile.warmup)):
            run()
        probes = 20
        start = time.perf_counter()
        for _ in range(probes):
            run()
        single_ms = (time.perf_counter() - start) * 1e3 / probes
        inner[what] = max(1, math.ceil(profile.min_sample_ms / max(single_ms, 1e-6)))
        sample_ms[what] = (inner[what] + 1) * single_ms
    names = list(runs)
    cycle_ms = sum(sample_ms.values())
    repeats = max(profile.repeats, math.ceil(profile.min_seconds * 1e3 / max(cycle_ms, 1e-6)))
    spreads: dict[str, list[float]] = {what: [] for what in runs}
    noisy: list[str] = []
    for attempt in range(1, profile.retries + 2):
        if attempt > 1 and profile.retry_wait_s:
            time.sleep(profile.retry_wait_s * 2 ** (attempt - 2))  # let a burst of load pass
        times = {what: np.empty(repeats) for what in names}
        for i in range(repeats):
            shift = i % len(names)  # rotate the order: no model always follows the same one
            for what in names[shift:] + names[:shift]:
                run, n = runs[what], inner[what]
                run()
                start = time.perf_counter()
                for _ in range(n):
                    run()
                times[what][i] = (time.perf_counter() - start) / n
        results = {}
        for what in names:
            p10, p25, median, p75, p90 = (
                float(v) * 1e3 for v in np.percentile(times[what], [10, 25, 50, 75, 90])
            )
            results[what] = Latency(median, p10, p25, p75, p90, repeats, inner[what], attempt)
        noisy = [what for what in names if results[what].spread > profile.max_spread]
        if not noisy:
            return results
        for what in noisy:
            spreads[what].append(results[what].spread)
    worst = max(noisy, key=lambda what: len(spreads[what]))
    raise NoisyMeasurementError(
        f"latency of {', '.join(noisy[:3])}{' ...' if len(noisy) > 3 else ''} on "
        f"'{profile.name}': timings too noisy to trust ((p75-p25)/median of {worst} = "
        f"{', '.join(f'{s:.2f}' for s in spreads[worst])} over {profile.retries + 1} attempts, "
        f"limit {profile.max_spread}); is something else running?"
    )


def median_of(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
