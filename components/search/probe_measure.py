"""Measure a latency table on this device: the device side of ``edgelearn probe``.

``edgelearn probe export DIR`` copies this file into DIR as ``measure.py``, next to ``probe.json``
and the ONNX graphs of every table entry. On the device, with only Python 3, numpy and ONNX Runtime
(no torch, nothing of edgelearn), ``python measure.py --out lut.json`` times every graph at batch 1,
interleaved, until each median is known to the profile's precision, and writes the table in the
format the search stage imports (``search.lut_import``). It must stay one self-contained file:
standard library, numpy and onnxruntime only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as _missing:
    sys.exit(f"measure.py: error: {_missing.name} is not installed here; "
             "pip install numpy onnxruntime")  # fmt: skip

PROBE_FORMAT = "edgelearn.probe/1"
LUT_FORMAT = "edgelearn.lut/1"
USER_ERROR_EXIT = 2
NOISY_EXIT = 1
# --quick: a table that only has to be plausible (tests, a first look): few short samples, and a
# figure of any precision is accepted
QUICK = {"warmup": 2, "repeats": 10, "min_sample_ms": 0.2, "min_seconds": 0.0,
         "precision": 0.5, "max_seconds": 5.0, "max_uncertainty": 1.0}  # fmt: skip
TIMING_KEYS = ("warmup", "repeats", "min_sample_ms", "min_seconds", "precision", "max_seconds",
               "max_uncertainty")  # fmt: skip


class ProbeError(Exception):
    """Bad input (a missing or malformed probe, an engine that cannot run it): one line."""


class NoisyError(Exception):
    """The medians were still too uncertain when the time limit ran out."""


@dataclass(frozen=True)
class Probe:
    folder: Path
    data: dict[str, Any]  # probe.json, checked

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.data["entries"])

    def files(self) -> dict[str, Path]:
        """Each distinct graph once, by its file name in the probe."""
        return {e["file"]: self.folder / e["file"] for e in self.entries}


def read_probe(folder: Path) -> Probe:
    """``probe.json`` of ``folder``, checked, with every graph present and intact."""
    path = folder / "probe.json"
    again = "export it again with `edgelearn probe export`"
    if not path.is_file():
        raise ProbeError(f"{path}: not found; run measure.py in the folder `edgelearn probe "
                         "export` wrote (or give it with --probe DIR)")  # fmt: skip
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ProbeError(f"{path}: not valid JSON ({err}); {again}") from None
    if not isinstance(data, dict) or data.get("format") != PROBE_FORMAT:
        raise ProbeError(f"{path}: not an edgelearn probe (format {PROBE_FORMAT}); {again}")
    try:
        _check_fields(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ProbeError(f"{path}: malformed probe ({err!r}); {again}") from None
    probe = Probe(folder, data)
    for name, file in probe.files().items():
        if not file.is_file():
            raise ProbeError(f"{file}: graph missing; copy the whole probe folder")
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest != data["files"][name]:
            raise ProbeError(f"{file}: SHA-256 does not match probe.json (copied incompletely?); "
                             "copy the whole probe folder again")  # fmt: skip
    return probe


def _check_fields(data: dict[str, Any]) -> None:
    """Raise KeyError/TypeError/ValueError on anything ``measure`` and ``assemble_lut`` read."""
    for key, kind in (("space", dict), ("device", dict), ("input", dict), ("layers", list),
                      ("entries", list), ("files", dict), ("width_stride", int)):  # fmt: skip
        _require(data, key, kind)
    _require(data["input"], "name", str)
    _integers(_require(data["input"], "shape", list))
    for key in TIMING_KEYS:
        _require(data["device"], key, (int, float))
    for layer in data["layers"]:
        _require(layer, "layer", int)
        _require(layer, "channels", int)
        _integers(_require(layer, "choices", list))
        _integers(_require(layer, "grid", list))
    roles = [_require(e, "role", str) for e in data["entries"]]
    if roles.count("base") != 1 or roles.count("full") != 1:
        raise ValueError("entries: need exactly one base and one full network")
    known = {"base", "layer", "fit", "full"}
    if not set(roles) <= known:
        raise ValueError(f"entries: unknown roles {sorted(set(roles) - known)}")
    layers = {layer["layer"] for layer in data["layers"]}
    for e in data["entries"]:
        _require(e, "key", str)
        _integers(_require(e, "widths", list))
        if _require(e, "file", str) not in data["files"]:
            raise KeyError(e["file"])
        if e["role"] == "layer" and (_require(e, "layer", int) not in layers
                                     or not isinstance(e.get("width"), int)):  # fmt: skip
            raise ValueError(f"entry {e['key']}: no such layer, or no width")


def _require(d: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(d, dict):
        raise TypeError(f"expected an object holding {key!r}")
    if not isinstance(d[key], kind) or isinstance(d[key], bool):
        raise TypeError(f"{key!r} has the wrong type")
    return d[key]


def _integers(values: list[Any]) -> None:
    if not all(isinstance(v, int) for v in values):
        raise TypeError(f"expected integers, found {values!r}")


OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")  # the profile's names


def open_session(path: Path, threads: int, provider: str, optimization: str = "all") -> Any:
    """One ONNX Runtime session set up as the host's timing harness sets it up."""
    available = ort.get_available_providers()
    if provider not in available:
        raise ProbeError(f"execution provider {provider} is not available here (available: "
                         f"{', '.join(available)}); choose one with --provider")  # fmt: skip
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    try:
        return ort.InferenceSession(str(path), opts, providers=[provider])
    except Exception as err:  # noqa: BLE001 - whatever the engine says, the advice is the same
        raise ProbeError(
            f"{path}: ONNX Runtime {ort.__version__} cannot load it ({err}); the "
            "graphs use ONNX opset 18: install onnxruntime 1.14 or later"
        ) from None


def median_interval(samples: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median (order statistics
    ``n/2 -+ z*sqrt(n)/2``), as the host's harness computes it."""
    s = np.sort(samples)
    n = len(s)
    half = z * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half)), min(n - 1, math.ceil(n / 2 + half))
    return float(s[lo]), float(s[hi])


def summary(times: Sequence[float], runs_per_sample: int) -> dict[str, float]:
    t = np.asarray(times) * 1e3
    median = float(np.median(t))
    lo, hi = median_interval(t)
    return {"median_ms": median, "ci_low_ms": lo, "ci_high_ms": hi, "samples": len(t),
            "runs_per_sample": runs_per_sample,
            "uncertainty": (hi - lo) / 2 / median if median > 0 else math.inf}  # fmt: skip


def time_interleaved(
    runs: dict[str, Callable[[], object]], timing: dict[str, float],
    report: Callable[[int, int, float, float], None],
) -> tuple[dict[str, dict[str, float]], float]:  # fmt: skip
    """Time each callable until every median is known to ``precision``, all interleaved (the
    host's ``components.latency.time_interleaved``): warm-up; samples of back-to-back runs lasting
    ``min_sample_ms``, each after one untimed run; round-robin with the order rotated, so every
    figure spans the same stretch of time; at least ``repeats`` samples and ``min_seconds``. After
    ``max_seconds`` a figure known to ``max_uncertainty`` is accepted, a worse one is an error.
    ``report(pass, samples, seconds, worst)`` is called after each pass."""
    inner: dict[str, int] = {}
    for name, run in runs.items():
        for _ in range(max(1, int(timing["warmup"]))):
            run()
        probes = 20
        start = time.perf_counter()
        for _ in range(probes):
            run()
        single_ms = (time.perf_counter() - start) * 1e3 / probes
        inner[name] = max(1, math.ceil(timing["min_sample_ms"] / max(single_ms, 1e-6)))
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    block = max(10, int(timing["repeats"]) // 4)
    passes = 0
    while True:
        for i in range(block):
            shift = (len(samples[names[0]]) + i) % len(names)  # no graph always follows another
            for name in names[shift:] + names[:shift]:
                run, n = runs[name], inner[name]
                run()
                t0 = time.perf_counter()
                for _ in range(n):
                    run()
                samples[name].append((time.perf_counter() - t0) / n)
        passes += 1
        elapsed = time.perf_counter() - started
        results = {name: summary(samples[name], inner[name]) for name in names}
        worst = max(r["uncertainty"] for r in results.values())
        count = len(samples[names[0]])
        report(passes, count, elapsed, worst)
        enough = count >= timing["repeats"] and elapsed >= timing["min_seconds"]
        if enough and worst <= timing["precision"]:
            return results, elapsed
        if elapsed >= timing["max_seconds"]:
            break
    if worst <= timing["max_uncertainty"]:
        return results, elapsed
    raise NoisyError(
        f"after {elapsed:.0f} s the medians are known only to +-{100 * worst:.1f}% (limit "
        f"{100 * timing['max_uncertainty']:g}%): the device is too busy to time them; close "
        "other apps, or raise device.max_seconds / max_uncertainty in probe.json"
    )


def assemble_lut(
    probe: dict[str, Any], medians: dict[str, float], device: dict[str, Any],
    info: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The table in the pipeline's format (``edgelearn.lut/1``) from each entry's median (ms),
    by entry key: ``base_ms`` and each layer's terms at its grid widths fitted by least squares
    (relative residuals) to every entry's median, linearly interpolated over its width choices
    (width 0 is exactly 0); the full network's median in ``info["full_ms"]``, the base network's
    in ``info["base_measured_ms"]``. The host's ``components.search.lut.table_from_medians``,
    without it."""
    entries = probe["entries"]
    layers_in = sorted(probe["layers"], key=lambda d: int(d["layer"]))
    column = {(int(layer["layer"]), int(w)): 0 for layer in layers_in for w in layer["grid"]}
    for j, key in enumerate(column):
        column[key] = 1 + j
    a = np.zeros((len(entries), 1 + len(column)))
    for n, e in enumerate(entries):
        ms = float(medians[e["key"]])
        if ms <= 0:
            raise ProbeError(f"entry {e['key']}: non-positive median {ms}")
        a[n, 0] = 1.0
        for i, w in enumerate(e["widths"]):
            if w:
                if (i, int(w)) not in column:
                    raise ProbeError(f"entry {e['key']}: layer {i} width {w} is not on its grid")
                a[n, column[(i, int(w))]] = 1.0
        a[n] /= ms
    if np.linalg.matrix_rank(a) < a.shape[1]:
        raise ProbeError("probe.json: its networks do not pin every layer's entry; export it "
                         "again with `edgelearn probe export`")  # fmt: skip
    coef = np.linalg.lstsq(a, np.ones(len(entries)), rcond=None)[0]
    base = float(medians[next(e["key"] for e in entries if e["role"] == "base")])
    full = float(medians[next(e["key"] for e in entries if e["role"] == "full")])
    layers = []
    for layer in layers_in:
        i = int(layer["layer"])
        xs = sorted(int(w) for w in layer["grid"])
        ys = [float(coef[column[(i, w)]]) for w in xs]
        terms = {"0": 0.0}
        for w in (int(c) for c in layer["choices"]):
            if w > 0:
                terms[str(w)] = ys[xs.index(w)] if w in xs else float(np.interp(w, xs, ys))
        layers.append({"layer": i, "channels": int(layer["channels"]), "measured_widths": xs,
                       "ms": terms})  # fmt: skip
    fitted = {"width_stride": probe["width_stride"], "full_ms": full, "base_measured_ms": base,
              "fit_archs": sum(e["role"] == "fit" for e in entries)}  # fmt: skip
    return {"format": LUT_FORMAT, "device": device, "space": probe["space"],
            "base_ms": float(coef[0]), "layers": layers, "info": {**info, **fitted}}  # fmt: skip


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def measure(probe: Probe, args: argparse.Namespace, terminal: bool) -> dict[str, Any]:
    """Time every graph of ``probe`` and return the table (a dict in ``edgelearn.lut/1``)."""
    data = probe.data
    device = dict(data["device"])
    timing = {k: float(device[k]) for k in TIMING_KEYS}
    if args.quick:
        timing.update(QUICK)
    threads = int(args.threads or device.get("threads", 1))
    provider = str(args.provider or device.get("execution_provider", "CPUExecutionProvider"))
    optimization = str(device.get("graph_optimization", "all"))
    if optimization not in OPTIMIZATION_LEVELS:
        raise ProbeError(f"probe.json: device.graph_optimization is {optimization!r}; expected "
                         f"one of {', '.join(OPTIMIZATION_LEVELS)}")  # fmt: skip
    shape = [int(n) for n in data["input"]["shape"]]
    feed = {str(data["input"]["name"]): np.zeros(shape, dtype=np.float32)}
    runs: dict[str, Callable[[], object]] = {}
    for name, file in probe.files().items():
        sess = open_session(file, threads, provider, optimization)
        runs[name] = partial(sess.run, None, feed)
    print(f"measuring {len(runs)} graphs ({len(probe.entries)} table entries) with ONNX Runtime "
          f"{ort.__version__}, {provider}, {threads} thread(s), to +-"
          f"{100 * timing['precision']:g}% (at most {timing['max_seconds']:g} s)",
          file=sys.stderr)  # fmt: skip

    def report(passes: int, count: int, elapsed: float, worst: float) -> None:
        line = (f"pass {passes}: {count} samples per graph, {elapsed:.1f} s, medians known to "
                f"+-{100 * worst:.1f}%")  # fmt: skip
        if terminal:
            print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    try:
        results, seconds = time_interleaved(runs, timing, report)
    finally:
        if terminal:
            print(file=sys.stderr)
    by_key = {e["key"]: results[e["file"]] for e in probe.entries}
    device.update({"threads": threads, "execution_provider": provider})
    if args.device_name:
        device["name"] = args.device_name
        device["description"] = (
            f"measured on {platform.node() or 'the device'} by edgelearn "
            f"probe, with the timing settings of '{data['device']['name']}'"
        )
    info = {
        "measured_by": "edgelearn probe",
        "method": data.get("method", ""),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "host": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "quick": bool(args.quick),
        "seconds": round(seconds, 2),
        "worst_uncertainty": max(r["uncertainty"] for r in results.values()),
        "entries": by_key,  # each entry's median, its 95% interval and sample count
        "probe_created_at": data.get("created_at", ""),
        "probe_created_on": data.get("created_on", ""),
    }
    medians = {key: r["median_ms"] for key, r in by_key.items()}
    return assemble_lut(data, medians, device, info)


def predict_full(lut: dict[str, Any]) -> float:
    """The table's figure for the full network (each layer at its widest)."""
    return float(lut["base_ms"]) + sum(
        float(layer["ms"][str(layer["channels"])]) for layer in lut["layers"]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="measure.py",
        description="Measure this device's latency table for edgelearn's search "
        "(needs only numpy and onnxruntime).",
    )
    here = Path(__file__).resolve().parent
    parser.add_argument(
        "--probe",
        default=str(here),
        metavar="DIR",
        help="the probe folder (default: this script's folder)",
    )
    parser.add_argument("--out", default="lut.json", help="table to write (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="intra-op threads (default: the profile's)",
    )
    parser.add_argument(
        "--provider",
        default=None,
        metavar="NAME",
        help="ONNX Runtime execution provider (default: the profile's)",
    )
    parser.add_argument(
        "--device-name",
        default=None,
        metavar="NAME",
        help="the device's name in the table (default: the profile's)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few samples, any precision: a plausible table, not a careful one",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        print("measure.py: error: --threads must be at least 1", file=sys.stderr)
        return USER_ERROR_EXIT
    try:
        probe = read_probe(Path(args.probe))
        lut = measure(probe, args, terminal=sys.stderr.isatty())
    except ProbeError as err:
        print(f"measure.py: error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except NoisyError as err:
        print(f"measure.py: error: {err}", file=sys.stderr)
        return NOISY_EXIT
    out = Path(args.out)
    write_json_atomic(out, lut)
    print(f"wrote {out}: {lut['device']['name']}, all-removed network {lut['base_ms']:.4f} ms, "
          f"full network {lut['info']['full_ms']:.4f} ms measured, {predict_full(lut):.4f} ms "
          "from the table")  # fmt: skip
    print(f"copy it to the pipeline's workspace and set search.lut_import: {out.name} (or list "
          "it in search.profiles, for a fleet)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
