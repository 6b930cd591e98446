"""Latency measured on the target device: device profiles and the ONNX Runtime timing harness.

A device profile (``configs/devices/<name>.yaml``) says how to measure: engine, execution
provider, threads, warm-up, how precise a figure must be and the latency budget. ``measure``
times an ONNX model at batch 1: it keeps sampling until the median is known to the profile's
precision (the uncertainty of an estimate shrinks with more samples; the spread of single runs on
a shared machine does not), and refuses only when a bounded time was not enough.
"""

from __future__ import annotations

import json
import math
import statistics
import time
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
    """The median was still too uncertain when the profile's time limit ran out."""


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
    # ONNX Runtime's graph optimizations: "all" (the default, with layout and fused kernels),
    # or "basic" (constant folding and redundant-node removal only: what an ORT-format model for
    # the mobile runtime is usually saved with), "extended", "disabled"
    graph_optimization: Literal["all", "extended", "basic", "disabled"] = "all"
    warmup: Annotated[int, Field(ge=0)] = 50
    repeats: Annotated[int, Field(ge=5)] = 200  # at least this many samples per model
    min_sample_ms: Annotated[float, Field(ge=0.0)] = 1.0  # batch runs into samples this long
    min_seconds: Annotated[float, Field(ge=0.0)] = 0.0  # and sample for at least this long
    # Stop when every median's 95% confidence interval is within +-precision of it ...
    precision: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01
    # ... or after max_seconds, accepting a figure known to +-max_uncertainty, refusing worse.
    max_seconds: Annotated[float, Field(gt=0.0)] = 60.0
    max_uncertainty: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    budget: Budget = Budget(fraction=0.5)

    @model_validator(mode="after")
    def _limits_ordered(self) -> DeviceProfile:
        if self.max_uncertainty < self.precision:
            raise ValueError("max_uncertainty must be at least precision")
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be at least min_seconds")
        return self


# A fleet (search.profiles beyond the first): each further device's search outputs and trained
# network go to <paths.search>/devices/<name>/ (the network: model.pt), its bundle to
# <paths.export>/devices/<name>/.
DEVICES_DIR = "devices"
DEVICE_MODEL = "model.pt"


def is_imported_table(entry: str) -> bool:
    """A ``search.profiles`` entry is a profile (a registry name or a profile YAML: the device is
    measured here) or, ending in ``.json``, a latency table measured on a device the pipeline
    cannot reach (``edgelearn probe``'s ``lut.json``: nothing is timed here for it)."""
    return Path(entry).suffix == ".json"


def imported_record(path: Path) -> tuple[DeviceProfile, dict[str, Any]]:
    """The profile a latency table measured elsewhere was measured with (its ``device`` record,
    named as ``measure.py --device-name`` named it; its name, threads and budget are the fleet
    entry's) and the table's JSON, read once."""
    if not path.is_file():
        raise ConfigError(
            f"search.profiles: {path}: no such latency table (a lut.json written by the "
            "measure.py of `edgelearn probe export`)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable JSON latency table ({err})") from None
    device = data.get("device") if isinstance(data, dict) else None
    if not isinstance(device, dict):
        raise ConfigError(
            f"{path}: no `device` record; expected a latency table written by edgelearn "
            "(measure.py or the search stage)"
        )
    known = {k: v for k, v in device.items() if k in DeviceProfile.model_fields}
    try:
        return DeviceProfile.model_validate(known, strict=False), data
    except ValidationError as err:
        problems = "; ".join(
            f"device.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{path}: invalid device record: {problems}") from None


def imported_profile(path: Path) -> DeviceProfile:
    """``imported_record``'s profile."""
    return imported_record(path)[0]


def fleet_profile(entry: str, workdir: Path = Path(".")) -> DeviceProfile:
    """The profile of one ``search.profiles`` entry: a registered or YAML profile, or an imported
    table's (a path relative to ``workdir``, ``is_imported_table``)."""
    return imported_profile(workdir / entry) if is_imported_table(entry) else load_profile(entry)


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
                f"search.profiles: unknown device profile '{name_or_path}'; known profiles: "
                f"{known} (in {directory}), or give a path to a profile YAML"
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
    """Batch-1 latency of one model: the median over ``repeats`` timed samples, its 95%
    confidence interval, and the spread of the samples themselves."""

    median_ms: float
    p10_ms: float
    p25_ms: float
    p75_ms: float
    p90_ms: float
    repeats: int
    runs_per_sample: int
    ci_low_ms: float
    ci_high_ms: float
    seconds: float  # wall time of the measurement this figure came from

    @property
    def spread(self) -> float:
        """Interquartile range over the median: how much single samples vary (it does not
        shrink with more samples; the uncertainty of the median does)."""
        return (self.p75_ms - self.p25_ms) / self.median_ms

    @property
    def uncertainty(self) -> float:
        """Half-width of the median's 95% confidence interval, relative to the median."""
        return (self.ci_high_ms - self.ci_low_ms) / 2 / self.median_ms

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "spread": self.spread, "uncertainty": self.uncertainty}


def median_interval(samples: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median: the order statistics
    ``n/2 -+ z*sqrt(n)/2`` (the binomial count of samples below the median). It needs no
    assumption on the shape of the timing distribution, which on a shared machine has a long
    right tail and several modes."""
    s = np.sort(samples)
    n = len(s)
    half = z * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half)), min(n - 1, math.ceil(n / 2 + half))
    return float(s[lo]), float(s[hi])


OPTIMIZATION_LEVELS = {
    "all": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": lambda ort: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def session(model: bytes | str | Path, profile: DeviceProfile) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = profile.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.graph_optimization_level = OPTIMIZATION_LEVELS[profile.graph_optimization](ort)
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
    """Time ``model`` on ``feed`` (batch 1) until its median is known to the profile's
    precision (see ``time_interleaved``)."""
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
    """Time each callable until its median is known precisely, all of them interleaved.

    Warm-up, then samples of enough back-to-back runs to last ``min_sample_ms`` (timing a 20 us
    run alone mostly measures timer and scheduler jitter), each preceded by one untimed run (so a
    sample never pays for caches another model evicted). Samples of the different callables are
    interleaved round-robin with the order rotated, so every figure spans the same stretch of
    time: on a shared host a core's speed drifts between regimes for seconds at a time, and
    figures that are compared or subtracted (a latency-table entry) must see the same mix.

    Sampling goes on until there are ``repeats`` samples, ``min_seconds`` have passed and every
    median's 95% confidence interval (``median_interval``) is within ``precision`` of it; the
    median is robust to the runs another process preempts, and its interval shrinks as samples
    accumulate even when single runs spread widely. After ``max_seconds`` a figure known to
    ``max_uncertainty`` is accepted; a worse one raises ``NoisyMeasurementError`` saying what to
    do.
    """
    inner: dict[str, int] = {}
    for what, run in runs.items():
        for _ in range(max(1, profile.warmup)):
            run()
        probes = 20
        start = time.perf_counter()
        for _ in range(probes):
            run()
        single_ms = (time.perf_counter() - start) * 1e3 / probes
        inner[what] = max(1, math.ceil(profile.min_sample_ms / max(single_ms, 1e-6)))
    names = list(runs)
    samples: dict[str, list[float]] = {what: [] for what in names}
    started = time.perf_counter()
    block = max(10, profile.repeats // 4)
    while True:
        for i in range(block):
            shift = (len(samples[names[0]]) + i) % len(names)  # no model always follows another
            for what in names[shift:] + names[:shift]:
                run, n = runs[what], inner[what]
                run()
                t0 = time.perf_counter()
                for _ in range(n):
                    run()
                samples[what].append((time.perf_counter() - t0) / n)
        elapsed = time.perf_counter() - started
        results = {what: _summary(np.asarray(samples[what]), inner[what], elapsed)
                   for what in names}  # fmt: skip
        worst = max(results.values(), key=lambda r: r.uncertainty).uncertainty
        enough = len(samples[names[0]]) >= profile.repeats and elapsed >= profile.min_seconds
        if enough and worst <= profile.precision:
            return results
        if elapsed >= profile.max_seconds:
            break
    if worst <= profile.max_uncertainty:
        return results
    noisy = [w for w in names if results[w].uncertainty > profile.max_uncertainty]
    raise NoisyMeasurementError(
        f"latency of {', '.join(noisy[:3])}{' ...' if len(noisy) > 3 else ''} on "
        f"'{profile.name}': after {elapsed:.0f} s the median is known only to "
        f"+-{100 * worst:.1f}% (limit {100 * profile.max_uncertainty:g}%): the machine is too busy "
        f"to time it; stop what else is running, or raise max_seconds / max_uncertainty in the "
        f"device profile"
    )


def _summary(times: np.ndarray, runs_per_sample: int, seconds: float) -> Latency:
    p10, p25, median, p75, p90 = (
        float(v) * 1e3 for v in np.percentile(times, [10, 25, 50, 75, 90])
    )
    lo, hi = median_interval(times)
    return Latency(median, p10, p25, p75, p90, len(times), runs_per_sample, lo * 1e3, hi * 1e3,
                   seconds)  # fmt: skip


def median_of(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
