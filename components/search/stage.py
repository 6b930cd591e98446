"""The search stage: measure the device's latency table, run MCD and the baselines over the
super-network, check the winners' latency on the device, and train the discovered network.

Outputs (``paths.search`` is written whole or not at all): ``arch.json``, ``lut.json``,
``history.json``, ``pareto.png`` there, and ``paths.searched`` (the trained network), for the
primary device (the first of ``search.profiles``). A fleet (more profiles) searches the same
super-network once per device: each further device's four files and its trained network
(``model.pt``) go to ``paths.search/devices/<name>/``, its metrics to the stage's ``fleet``.

Latency figures, by name. ``lut_error_pct``: the median error of the table the search uses
against whole networks measured in the same measurement as that table. ``measured_*``: a
network's own median in the run that timed it (ms, no mapping). ``aligned_*``: that figure
mapped onto the table's conditions through the all-removed and full networks timed in the same
run (``LatencyTable.align``). The budget is judged on the measured figure: a check accepts a
network when the upper end of its measured ratio to the full network fits
(``RunLatency.fits_confidently``), and the winners are reported by their medians
(``RunLatency.fits``, ``fits_budget``).
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import Params
from components.data.prepared import check_num_classes, load_prepared
from components.data.splits import CLIENT, TEST
from components.errors import ConfigError
from components.io import atomic_dir, write_json_atomic
from components.latency import (
    DEVICE_MODEL,
    DEVICES_DIR,
    DeviceProfile,
    imported_record,
    is_imported_table,
    load_profile,
)
from components.model.checkpoint import load_supernet_file, save_subnet
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork
from components.model.supernet import SuperNet
from components.progress import Progress, no_progress
from components.search import report
from components.search.figures import pareto_figure
from components.search.lut import DeviceGraph, LatencyTable
from components.search.mcd import (
    CachedEvaluator,
    MCDConfig,
    SearchError,
    SearchOutcome,
    SharedScores,
    best_under,
    multi_layer_coordinate_descent,
    random_search,
)
from components.search.measure import (
    LatencyMeasurer,
    OnnxRuntimeMeasurer,
    RunLatency,
    imported_error,
    measure_table,
)
from components.search.netadapt import NetAdaptConfig, implant, netadapt_v1
from components.search.records import SearchResult, TrainedNetwork, arch_key
from components.search.training import SupernetEvaluator, long_term_finetune, train_network
from components.search.uniform import uniform_multiplier
from components.training.data import ServerData, load_server_data
from components.training.trainer import fit

log = logging.getLogger(__name__)
NAN = float("nan")


@dataclass
class Inputs:
    net: SuperNet
    supernet_seconds: float
    data: ServerData  # server train + the split candidates are scored on (val)
    test: ServerData  # server train + test
    clients: tuple[torch.Tensor, torch.Tensor]  # every client's test clips


def resolve_budget(params: Params, profile: DeviceProfile, full_ms: float) -> float:
    s = params.search
    if s.budget_ms is not None and s.budget_fraction is not None:
        raise ConfigError("search: give budget_ms or budget_fraction, not both")
    if s.budget_ms is not None:
        return s.budget_ms
    if s.budget_fraction is not None:
        return s.budget_fraction * full_ms
    return profile.budget.resolve(full_ms)


def load_inputs(params: Params, workdir: Path) -> Inputs:
    net, payload = load_supernet_file(workdir / params.paths.supernet)
    prepared = workdir / params.paths.prepared
    data = load_server_data(prepared)
    check_num_classes(
        prepared, data.classes, workdir / params.paths.supernet, net.space.num_classes
    )
    if params.search.eval_clips:
        n = params.search.eval_clips
        data = replace(data, val_x=data.val_x[:n], val_y=data.val_y[:n])
    seconds = float(payload.get("metrics", {}).get("train_seconds", NAN))
    return Inputs(net, seconds, data, load_server_data(prepared, split_eval=TEST),
                  load_prepared(prepared).tensors(CLIENT, TEST))  # fmt: skip


def round_record(search_budget: float, mcd: SearchOutcome, measured: RunLatency | None,
                 budget: float, full_ms: float) -> dict[str, Any]:  # fmt: skip
    """One measure round of ``search_until_measured``: the winner's figures and the verdict."""
    if measured is None:
        return {"search_budget_ms": search_budget, "widths": mcd.widths,
                "predicted_ms": mcd.predicted_ms, "measured_ms": NAN, "aligned_ms": NAN,
                "measured_full_ms": NAN, "run_budget_ms": NAN, "ratio_high": NAN, "fits": None,
                "fits_confidently": None}  # fmt: skip
    return {"search_budget_ms": search_budget, "widths": mcd.widths,
            "predicted_ms": mcd.predicted_ms, "measured_ms": measured.raw_ms,
            "aligned_ms": measured.aligned_ms, "measured_full_ms": measured.run_full_ms,
            "run_budget_ms": measured.run_budget_ms(budget, full_ms),
            "ratio_high": measured.ratio_high, "fits": measured.fits(budget, full_ms),
            "fits_confidently": measured.fits_confidently(budget, full_ms)}  # fmt: skip


@dataclass
class Baselines:
    """``run_baselines``' result: every method's outcome (MCD's first), the uniform network's
    figures from the run that chose it, NetAdapt v1's long-term fine-tuned network, and why a
    baseline is missing."""

    outcomes: dict[str, SearchOutcome]
    plain: dict[str, RunLatency]
    tuned: dict[str, TrainedNetwork]
    missing: dict[str, str]


def until_measured(
    search: Callable[[float, SearchOutcome | None], SearchOutcome], lut: LatencyTable,
    budget: float, measure: LatencyMeasurer | None, max_rounds: int,
) -> tuple[list[SearchOutcome], float, list[dict[str, Any]]]:  # fmt: skip
    """A search, then its winner measured on the device; until the winner fits the budget by
    the rule of ``RunLatency.fits_confidently`` (the upper bound of its measured ratio to the
    full network in the same run at most ``budget / table full``), the search again
    (``search(budget, previous)``) for proportionally less (by how far that bound is over), up
    to ``max_rounds``. A re-search the table cannot satisfy (it asks for less than the table's
    smallest network: on a noisy host, or a table far off this device) keeps the previous
    round's winner, reported as missing the budget (``re_search_stopped`` in the last round),
    instead of failing the stage. Returns every round's outcome, the budget the table was last
    asked for, and the rounds."""
    full_ms = lut.info["full_ms"] if measure else NAN
    search_budget, previous = budget, None
    outcomes: list[SearchOutcome] = []
    rounds: list[dict[str, Any]] = []
    while True:
        try:
            outcome = search(search_budget, previous)
        except SearchError as err:
            if previous is None:
                raise
            log.warning("the measured check asked the table for %.4f ms, which it cannot meet "
                        "(%s): keeping the previous winner, measured over the budget",
                        search_budget, err)  # fmt: skip
            rounds[-1]["re_search_stopped"] = str(err)
            return outcomes, rounds[-1]["search_budget_ms"], rounds
        outcomes.append(outcome)
        measured = measure.latencies(lut, [outcome.widths])[0] if measure else None
        rounds.append(round_record(search_budget, outcome, measured, budget, full_ms))
        if (measured is None or measured.fits_confidently(budget, full_ms)
                or len(rounds) >= max_rounds):  # fmt: skip
            break
        search_budget = (min(search_budget, outcome.predicted_ms) * budget / full_ms
                         / measured.ratio_high * 0.99)  # fmt: skip
        previous = outcome
    return outcomes, search_budget, rounds


def search_until_measured(
    params: Params, choices: list[list[int]], lut: LatencyTable, scorer: CachedEvaluator,
    budget: float, rng: np.random.Generator, measure: LatencyMeasurer | None, history: Path,
    progress: Progress,
) -> tuple[SearchOutcome, float, list[dict[str, Any]]]:  # fmt: skip
    """MCD with the measured check (``until_measured``); a second round searches on from the
    first's winner. Returns the outcome over all rounds, the budget the table was last asked
    for, and the rounds."""
    s = params.search
    config = MCDConfig(s.candidates, s.layers_per_candidate, s.step_fraction, s.step_decay,
                       s.max_iterations)  # fmt: skip
    t0 = time.perf_counter()

    def mcd(search_budget: float, previous: SearchOutcome | None) -> SearchOutcome:
        return multi_layer_coordinate_descent(
            choices, lut, scorer, search_budget, rng, config,
            start=None if previous is None else previous.widths, history_path=history,
            on_iteration=lambda r: progress("MCD iteration", r["iteration"], 0,
                                            {"target_ms": r["target_ms"],
                                             "val_acc": r["kept"]["accuracy"]}),
        )  # fmt: skip

    runs, search_budget, rounds = until_measured(mcd, lut, budget, measure, s.max_measure_rounds)
    evaluated = [c for i, r in enumerate(runs) for c in (r.evaluated if i == 0 else
                                                         r.evaluated[1:])]  # fmt: skip
    last = runs[-1]
    outcome = SearchOutcome("mcd", last.widths, last.predicted_ms, last.accuracy, evaluated,
                            time.perf_counter() - t0,
                            [it for r in runs for it in r.iterations])  # fmt: skip
    return outcome, search_budget, rounds


def random_until_measured(
    params: Params, choices: list[list[int]], lut: LatencyTable, scorer: CachedEvaluator,
    budget: float, rng: np.random.Generator, measure: LatencyMeasurer | None, evaluations: int,
) -> tuple[SearchOutcome, list[dict[str, Any]]]:  # fmt: skip
    """Random search with MCD's number of evaluations and the same measured check. A second
    round takes the best of the candidates already evaluated under the smaller budget
    (``best_under``: no new evaluation); where none is under it, it draws as many new ones under
    the smaller budget (as MCD's second round evaluates new candidates too), and the outcome
    holds every candidate evaluated. Its rounds go to the outcome's ``iterations``."""
    t0 = time.perf_counter()

    def draw(search_budget: float, previous: SearchOutcome | None) -> SearchOutcome:
        if previous is None:
            return random_search(choices, lut, scorer, search_budget, rng, evaluations)
        if any(c.predicted_ms <= search_budget for c in previous.evaluated):
            return best_under(previous, search_budget)
        fresh = random_search(choices, lut, scorer, search_budget, rng, evaluations)
        return replace(fresh, evaluated=previous.evaluated + fresh.evaluated)

    runs, _, rounds = until_measured(draw, lut, budget, measure, params.search.max_measure_rounds)
    outcome = replace(runs[-1], seconds=time.perf_counter() - t0, iterations=rounds)
    return outcome, rounds


def run_baselines(
    params: Params, inputs: Inputs, choices: list[list[int]], lut: LatencyTable,
    scorer: CachedEvaluator, budget: float, rng: np.random.Generator, mcd: SearchOutcome,
    measure: LatencyMeasurer | None, v1_seed: V1Seed | None, progress: Progress,
) -> Baselines:  # fmt: skip
    """The baselines, for the same budget: random search (as many evaluations as MCD, scored by
    the same evaluator, the same measured check and re-search); the uniform multiplier (a plain
    network with every layer's channels scaled, the widest that fits by measurement; none with
    an imported table, where nothing can be measured); and, with ``v1_seed``, NetAdapt v1
    (from its own pre-training, the same measured check, long-term fine-tuning).
    A baseline that cannot be built (no uniform multiplier meets the budget; random search
    draws nothing under it) is left out with its reason in ``missing``: it does not stop the
    search."""
    outcomes = {"mcd": mcd}
    plain: dict[str, RunLatency] = {}
    tuned: dict[str, TrainedNetwork] = {}
    missing: dict[str, str] = {}
    try:
        outcomes["random"], _ = random_until_measured(
            params, choices, lut, scorer, budget, rng, measure, mcd.candidates_evaluated
        )
    except SearchError as err:
        log.warning("random search baseline: %s", err)
        missing["random"] = str(err)
    if measure is not None:
        try:
            outcomes["uniform"], plain["uniform"] = uniform_multiplier(
                inputs.net.space,
                lambda spaces: measure.plain_latencies(lut, spaces, "timing uniform multipliers",
                                                       progress),
                budget, lut.info["full_ms"],
            )  # fmt: skip
        except SearchError as err:
            log.warning("uniform baseline: %s", err)
            missing["uniform"] = str(err)
    if v1_seed is not None:
        outcomes["netadapt_v1"], tuned["netadapt_v1"] = run_netadapt_v1(
            params, inputs, v1_seed, lut, budget, choices, measure, progress
        )
    return Baselines(outcomes, plain, tuned, missing)


def train_winners(
    params: Params,
    inputs: Inputs,
    outcomes: dict[str, SearchOutcome],
    progress: Progress,
    done: dict[str, TrainedNetwork] | None = None,
) -> dict[str, TrainedNetwork]:
    """Train the discovered network, and the baselines' winners (random, uniform) with the same
    recipe and epochs (an architecture two methods, or two devices through ``done``, share is
    trained once: the training is deterministic). ``search.train_from`` inherited: the
    super-network's architectures start from its weights; the uniform baseline, another
    network, from scratch."""
    names = ["mcd"]
    if params.search.train_baselines:
        names += [k for k in report.BASELINES if k in outcomes]
    trained: dict[str, TrainedNetwork] = {}
    done = {} if done is None else done
    for k, name in enumerate(names, 1):
        o = outcomes[name]
        space = o.space or inputs.net.space
        key = f"{[s.channels for s in space.stages]}:{arch_key(o.widths)}"
        if key not in done:
            done[key] = train_winner(params, inputs, name, o.widths, o.space)
        trained[name] = done[key]
        progress("training", k, len(names), {f"{name}_val_acc": trained[name].val_acc})
    return trained


def train_winner(
    params: Params, inputs: Inputs, name: str, widths: list[int],
    space: SearchSpace | None = None, start: str | None = None,
) -> TrainedNetwork:  # fmt: skip
    """One winner trained for ``search.train_epochs`` with the super-network's recipe, from
    ``start`` (default ``search.train_from``): ``inherited`` goes on from the super-network's
    weights; an architecture of another ``space`` (the uniform baseline's) has none and always
    starts from scratch."""
    recipe = params.supernet.model_copy(update={"epochs": params.search.train_epochs})
    args = (recipe, params.base.seed, inputs.data, inputs.test, inputs.clients)
    if (start or params.search.train_from) == "inherited" and space is None:
        return long_term_finetune(inputs.net, widths, *args, method=name).network
    return train_network(name, widths, inputs.net, *args, space)


@dataclass(frozen=True)
class Device:
    """One device of ``search.profiles``: its profile, where its outputs go under
    ``paths.search`` ("" for the primary device, ``devices/<name>`` for the others), and its
    measurer, or (``measure`` None) its table measured elsewhere: an entry that is a ``lut.json``,
    or the primary device's ``search.lut_import``."""

    profile: DeviceProfile
    subdir: str
    measure: LatencyMeasurer | None
    table: LatencyTable | None = None

    @property
    def name(self) -> str:
        return self.profile.name


def fleet(
    params: Params, workdir: Path, net: SuperNet, graph: DeviceGraph,
    measurer: LatencyMeasurer | None,
    fleet_measurer: Callable[[DeviceProfile], LatencyMeasurer] | None,
) -> list[Device]:  # fmt: skip
    """The devices of ``search.profiles``, the primary first; every profile and imported table is
    loaded (a table for another space, a name that cannot be a folder, or one used twice,
    refused) before anything is measured."""
    s = params.search
    if s.lut_import is not None and is_imported_table(s.profiles[0]):
        raise ConfigError(
            f"search.lut_import ({s.lut_import}) and search.profiles' first entry "
            f"({s.profiles[0]}) both import the primary device's table; give one"
        )
    profiles: list[DeviceProfile] = []
    tables: list[LatencyTable | None] = []
    for k, entry in enumerate(s.profiles):
        if is_imported_table(entry):  # its profile is the table's device record: read once
            profile, data = imported_record(workdir / entry)
            profiles.append(profile)
            tables.append(LatencyTable.parse(data, workdir / entry, net.space))
        else:
            profiles.append(load_profile(entry))
            primary_import = k == 0 and s.lut_import is not None
            tables.append(LatencyTable.load(workdir / str(s.lut_import), net.space)
                          if primary_import else None)  # fmt: skip
    resolve_budget(params, profiles[0], 1.0)  # both budget keys given: refused before any work
    if len(profiles) > 1 and s.budget_ms is not None:
        raise ConfigError(
            f"search.budget_ms ({s.budget_ms}) is in one device's milliseconds; with several "
            "search.profiles give search.budget_fraction (of each device's full network) or set "
            "each profile's budget"
        )
    for entry, p in zip(s.profiles[1:], profiles[1:], strict=True):
        if not DEVICE_NAME.fullmatch(p.name):
            raise ConfigError(
                f"search.profiles: {entry}: the profile's name {p.name!r} must start with a letter "
                "or digit and hold only letters, digits, '.', '_' or '-' (it names the device's "
                "folder)"
            )
    seen: dict[str, str] = {}
    for entry, p in zip(s.profiles, profiles, strict=True):
        if p.name.lower() in seen:
            raise ConfigError(
                f"search.profiles: {seen[p.name.lower()]} and {entry} are both named "
                f"{p.name!r}; every device needs a name of its own"
            )
        seen[p.name.lower()] = entry
    exported: dict[str, bytes] = {}  # the graphs do not depend on the device: exported once

    def ort(profile: DeviceProfile) -> LatencyMeasurer:
        m = OnnxRuntimeMeasurer(net, profile, graph, s.lut_width_stride, max(s.pareto_repeats, 5),
                                s.lut_fit_archs)  # fmt: skip
        m.exported = exported
        return m

    primary = None if tables[0] is not None else (measurer or ort(profiles[0]))
    devices = [Device(profiles[0], "", primary, tables[0])]
    for p, t in zip(profiles[1:], tables[1:], strict=True):
        measure = None if t is not None else (fleet_measurer or ort)(p)
        devices.append(Device(p, f"{DEVICES_DIR}/{p.name}", measure, t))
    return devices


DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run(
    params: Params,
    workdir: Path = Path("."),
    progress: Progress = no_progress,
    measurer: LatencyMeasurer | None = None,
    fleet_measurer: Callable[[DeviceProfile], LatencyMeasurer] | None = None,
) -> SearchResult:
    """The stage, for every device of ``search.profiles`` from the one super-network.
    ``measurer`` defaults to ONNX Runtime on the primary device's profile, ``fleet_measurer``
    (a profile -> measurer) on every other one's (tests inject them). A device whose entry is a
    ``lut.json`` (or the primary device, with ``search.lut_import``) was measured elsewhere:
    its table is imported and nothing is measured for it here (its winners are predictions).
    Candidates' inherited accuracies are device-independent: scored once, shared by every
    device's search. NetAdapt v1 (``search.netadapt_v1``) pre-trains once and adapts per device.
    Returns the primary device's result; the others' are in ``result.devices``."""
    s = params.search
    t_start = time.perf_counter()
    inputs = load_inputs(params, workdir)
    net, space = inputs.net, inputs.net.space
    choices = [space.width_choices(i) for i in range(space.num_layers)]
    graph = DeviceGraph(params.features, params.export.opset)  # what the export stage ships
    graph.check(space)
    devices = fleet(params, workdir, net, graph, measurer, fleet_measurer)
    calibration = inputs.data.calibration_batches(params.supernet.recalibration_batches, 128,
                                                  params.base.seed)  # fmt: skip
    scorer = CachedEvaluator(SupernetEvaluator(net, inputs.data, calibration))
    v1_seed = pretrain_v1(params, inputs, progress) if s.netadapt_v1 else None
    trained_once: dict[str, TrainedNetwork] = {}
    results: list[SearchResult] = []
    with atomic_dir(workdir / params.paths.search) as out:
        for k, device in enumerate(devices):
            say = progress
            if len(devices) > 1:
                log.info("device %d of %d: %s", k + 1, len(devices), device.name)
                say = partial(_named, progress, device.name)
            rng = np.random.default_rng(params.base.seed if k == 0 else [params.base.seed, k])
            results.append(search_device(params, workdir, inputs, device, choices, scorer, rng,
                                         v1_seed, trained_once, out / device.subdir,
                                         say))  # fmt: skip
        primary = results[0]
        primary.metrics["devices"] = len(devices)
        primary.metrics["stage_seconds"] = round(time.perf_counter() - t_start, 2)
        primary.devices = {d.name: r for d, r in zip(devices[1:], results[1:], strict=True)}
        if primary.devices:
            primary.metrics["fleet"] = {name: r.metrics for name, r in primary.devices.items()}
        for device, result in zip(devices[1:], results[1:], strict=True):
            save_subnet(out / device.subdir / DEVICE_MODEL, result.trained["mcd"].model,
                        {"metrics": result.metrics, "arch": result.arch})  # fmt: skip
    save_subnet(workdir / params.paths.searched, primary.trained["mcd"].model,
                {"metrics": {k: v for k, v in primary.metrics.items() if k != "fleet"},
                 "arch": primary.arch})  # fmt: skip
    return primary


def _named(progress: Progress, device: str, phase: str, done: int, total: int,
           figures: dict[str, float] | None = None) -> None:  # fmt: skip
    progress(f"{device}: {phase}", done, total, figures)


def search_device(
    params: Params, workdir: Path, inputs: Inputs, device: Device, choices: list[list[int]],
    shared: CachedEvaluator, rng: np.random.Generator, v1_seed: V1Seed | None,
    trained_once: dict[str, TrainedNetwork], out: Path, progress: Progress,
) -> SearchResult:  # fmt: skip
    """One device's search, its outputs written to ``out`` (arch.json, lut.json, history.json,
    pareto.png): its table, budget, MCD with the measured check, the baselines, the winners
    timed in one run, and the networks trained (``trained_once`` shares a network two devices
    both chose)."""
    s = params.search
    space, measure = inputs.net.space, device.measure
    out.mkdir(parents=True, exist_ok=True)

    # 1. the latency table (checked against whole networks measured with it) and the budget
    t0 = time.perf_counter()
    if measure is None:
        assert device.table is not None  # a device without a measurer has its table (fleet())
        lut = device.table
        full_ms = lut.predict(space.largest())
        lut_error = imported_error(lut)
        lut_error_source = "none" if math.isnan(lut_error) else "imported"
    else:
        lut, lut_error = measure_table(measure, space, s.lut_check_archs, s.lut_width_stride,
                                       params.base.seed, progress, s.lut_fit_archs)  # fmt: skip
        full_ms = lut.info["full_ms"]
        lut_error_source = "measured with the table" if lut.info["check"] else "none"
    lut_seconds = time.perf_counter() - t0
    budget = resolve_budget(params, device.profile, full_ms)
    log.info("%s: full network %.4f ms; budget %.4f ms; table error %.2f%% (%s)", device.name,
             full_ms, budget, lut_error, lut_error_source)  # fmt: skip

    # 2. MCD with the measured check; 3. the baselines, same budget and scorer. Scores are the
    #    fleet's (``shared``): MCD reuses any device's and adds its own; the random baseline
    #    reuses them but keeps its own to itself (a later device's MCD never gains from it)
    mcd, _, rounds = search_until_measured(
        params, choices, lut, SharedScores(shared), budget, rng, measure, out / "history.json",
        progress,
    )  # fmt: skip
    baselines = run_baselines(params, inputs, choices, lut, SharedScores(shared, publish=False),
                              budget, rng, mcd, measure, v1_seed, progress)  # fmt: skip
    outcomes = baselines.outcomes

    # 4. with search.pareto_repeats, every evaluated candidate timed quickly (aligned, for the
    #    plot), and the sub-network winners timed carefully in one run (measured, aligned, and
    #    judged by RunLatency.fits; the uniform network's figures are from the run that chose it)
    quick_aligned: dict[str, float] = {}
    winners: dict[str, RunLatency | None] = dict.fromkeys(outcomes)
    winners.update(baselines.plain)
    if measure is not None:
        if s.pareto_repeats:
            points = {arch_key(c.widths): c.widths
                      for o in outcomes.values() for c in o.evaluated}  # fmt: skip
            quick = measure.latencies(lut, list(points.values()), quick=True,
                                      phase="timing candidates", progress=progress)  # fmt: skip
            quick_aligned = {k: q.aligned_ms for k, q in zip(points, quick, strict=True)}
        subnets = [k for k, o in outcomes.items() if o.space is None]
        runs = measure.latencies(lut, [outcomes[k].widths for k in subnets])
        winners.update(zip(subnets, runs, strict=True))

    # 5. train the discovered network (and the baselines' winners, for equal training)
    trained = {**train_winners(params, inputs, outcomes, progress, trained_once),
               **baselines.tuned}  # fmt: skip

    name = device.name if measure is not None else lut.device.get("name", "imported")
    arch = report.arch_record(space, mcd, trained["mcd"], winners["mcd"], budget, name)
    write_json_atomic(out / "arch.json", arch)
    lut.save(out / "lut.json")
    history = report.history_record(budget, full_ms, rounds, outcomes, quick_aligned, winners,
                                    trained)  # fmt: skip
    history["missing_baselines"] = baselines.missing
    write_json_atomic(out / "history.json", history)
    metrics = report.stage_metrics(arch, full_ms, lut_error, lut_error_source, lut_seconds,
                                   outcomes, trained, winners, inputs.supernet_seconds)  # fmt: skip
    model_path = (workdir / params.paths.searched if not device.subdir else
                  workdir / params.paths.search / device.subdir / DEVICE_MODEL)  # fmt: skip
    result = SearchResult(metrics, arch, outcomes, quick_aligned, trained, lut,
                          workdir / params.paths.search / device.subdir, model_path,
                          history)  # fmt: skip
    pareto_figure(result).savefig(out / "pareto.png", dpi=110)
    return result


@dataclass
class V1Seed:
    """NetAdapt v1's starting point: the full network pre-trained conventionally (in super-network
    form), and the pre-training's seconds without and with its monitoring."""

    container: SuperNet
    seconds: float
    monitor_seconds: float
    wall_seconds: float  # with monitoring, what the outcome's ``seconds`` counts


def pretrain_v1(params: Params, inputs: Inputs, progress: Progress) -> V1Seed:
    """NetAdapt v1's pre-training: the full network trained conventionally with the
    super-network's recipe and epochs (a fair seed network). It does not depend on the device:
    done once for a fleet (each device's adaptation starts from a copy)."""
    net = inputs.net
    t0 = time.perf_counter()
    torch.manual_seed(params.base.seed)
    plain = SubNetwork(net.space, net.space.largest())
    plain.norm.load_state_dict(net.norm.state_dict())
    pretrain = fit(plain, params.supernet, inputs.data, params.base.seed, progress=progress,
                   phase="NetAdapt v1 pre-training epoch")  # fmt: skip
    container = SuperNet(net.space)
    implant(container, plain)
    return V1Seed(container, pretrain.seconds, pretrain.monitor_seconds,
                  time.perf_counter() - t0)  # fmt: skip


def run_netadapt_v1(
    params: Params, inputs: Inputs, seed: V1Seed, lut: LatencyTable, budget: float,
    choices: Sequence[Sequence[int]], measure: LatencyMeasurer | None, progress: Progress,
) -> tuple[SearchOutcome, TrainedNetwork]:  # fmt: skip
    """NetAdapt v1 as published, from its pre-trained network (``pretrain_v1``): adapt a copy of
    it to the budget (one layer per proposal, largest-L2-norm hidden channels kept, short-term
    fine-tuning; with the same measured check and re-search as MCD, going on from its result),
    then long-term fine-tune the result (``search.train_epochs`` of the same recipe, from its
    adapted weights) and score it like the others. The outcome's ``iterations`` start with the
    three phases' seconds (each training phase without its monitoring; ``pretrain_seconds`` is
    the one pre-training's, whichever device this is) and its ``seconds`` count all three, as
    wall time."""
    s, data = params.search, inputs.data
    container = copy.deepcopy(seed.container)
    config = NetAdaptConfig(s.v1_step_fraction, s.step_decay, s.v1_finetune_steps)
    t1 = time.perf_counter()

    def adapt(search_budget: float, previous: SearchOutcome | None) -> SearchOutcome:
        return netadapt_v1(
            container, choices, lut, data, search_budget, params.base.seed, config,
            start=None if previous is None else previous.widths,
            on_iteration=lambda r: progress("NetAdapt v1 iteration", r["iteration"], 0),
        )  # fmt: skip

    runs, _, rounds = until_measured(adapt, lut, budget, measure, s.max_measure_rounds)
    search_seconds = time.perf_counter() - t1
    last = runs[-1]
    recipe = params.supernet.model_copy(update={"epochs": s.train_epochs})
    tuned = long_term_finetune(container, last.widths, recipe, params.base.seed, data,
                               inputs.test, inputs.clients)  # fmt: skip
    phases = {"pretrain_seconds": seed.seconds, "search_seconds": search_seconds,
              "long_term_seconds": tuned.seconds,
              "monitor_seconds": seed.monitor_seconds + tuned.monitor_seconds,
              "measure_rounds": rounds}  # fmt: skip
    outcome = SearchOutcome("netadapt_v1", last.widths, last.predicted_ms, last.accuracy,
                            [c for r in runs for c in r.evaluated],
                            seed.wall_seconds + time.perf_counter() - t1,
                            [phases, *(it for r in runs for it in r.iterations)])  # fmt: skip
    return outcome, tuned.network
