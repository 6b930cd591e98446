"""The search stage: measure the device's latency table, run MCD and the baselines over the
super-network, check the winner's latency on the device, and train the discovered network.

Outputs (``search/`` is written whole or not at all): ``search/arch.json``, ``search/lut.json``,
``search/history.json``, ``search/pareto.png`` and ``models/searched.pt``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import Params
from components.data.prepared import load_prepared
from components.data.splits import CLIENT, TEST
from components.errors import ConfigError
from components.io import atomic_dir, write_json_atomic
from components.latency import DeviceProfile, Latency, load_profile, median_of
from components.search.lut import (
    LatencyTable,
    build_table,
    build_table_with,
    network_latencies,
)
from components.search.mcd import (
    CachedEvaluator,
    Candidate,
    MCDConfig,
    SearchOutcome,
    multi_layer_coordinate_descent,
    random_search,
    uniform_baseline,
)
from components.search.netadapt import NetAdaptConfig, implant, netadapt_v1
from components.supernet.data import ServerData, load_server_data
from components.supernet.evaluate import accuracy, recalibrate_batch_norm
from components.supernet.model import SuperNet
from components.supernet.space import count_macs
from components.supernet.stage import load_supernet
from components.supernet.subnet import SubNetwork, count_parameters, extract_subnet, save_subnet
from components.supernet.train import fit

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


class SupernetEvaluator:
    """Accuracy (%) of an architecture with the super-network's inherited weights after
    batch-norm recalibration on fixed training batches, on the held-out split (never test)."""

    def __init__(self, net: SuperNet, data: ServerData, calibration: Sequence[torch.Tensor]):
        self.net, self.data, self.calibration = net, data, calibration

    def evaluate(self, widths: Sequence[int]) -> float:
        sub = recalibrate_batch_norm(extract_subnet(self.net, list(widths)), self.calibration)
        return accuracy(sub, self.data.val_x, self.data.val_y)


@dataclass
class TrainedNetwork:
    method: str
    widths: list[int]
    model: SubNetwork
    val_acc: float
    test_acc: float
    client_test_acc: float
    seconds: float
    history: list[dict[str, float]]


@dataclass
class SearchResult:
    metrics: dict[str, Any]
    arch: dict[str, Any]
    outcomes: dict[str, SearchOutcome]
    measured: dict[str, float]  # measured latency per architecture key, for the Pareto plot
    trained: dict[str, TrainedNetwork]
    lut: LatencyTable
    out_dir: Path
    model_path: Path
    history: dict[str, Any] = field(default_factory=dict)


def arch_key(widths: Sequence[int]) -> str:
    return "-".join(str(int(w)) for w in widths)


def resolve_budget(params: Params, profile: DeviceProfile, full_ms: float) -> float:
    s = params.search
    if s.budget_ms is not None and s.budget_fraction is not None:
        raise ConfigError("search: give budget_ms or budget_fraction, not both")
    if s.budget_ms is not None:
        return s.budget_ms
    if s.budget_fraction is not None:
        return s.budget_fraction * full_ms
    return profile.budget.resolve(full_ms)


def client_test_tensors(prepared_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_prepared(prepared_dir)
    idx = data.select(CLIENT, TEST)
    x = torch.from_numpy(np.ascontiguousarray(data.features[idx]))
    return x, torch.from_numpy(data.labels[idx].astype(np.int64))


def train_network(
    method: str,
    widths: list[int],
    net: SuperNet,
    params: Params,
    data: ServerData,
    test: ServerData,
    clients: tuple[torch.Tensor, torch.Tensor],
    progress: bool,
) -> TrainedNetwork:
    """NetAdaptV2's last step: train the discovered architecture from scratch on the server
    training split with the super-network's recipe for ``search.train_epochs`` epochs (the last
    epoch is kept: no selection on validation)."""
    torch.manual_seed(params.base.seed)
    model = SubNetwork(net.space, widths)
    model.norm.load_state_dict(net.norm.state_dict())
    recipe = params.supernet.model_copy(update={"epochs": params.search.train_epochs})
    result = fit(model, recipe, data, params.base.seed, progress=progress)
    model.eval()
    return TrainedNetwork(
        method, widths, model,
        val_acc=accuracy(model, data.val_x, data.val_y),
        test_acc=accuracy(model, test.val_x, test.val_y),
        client_test_acc=accuracy(model, *clients) if len(clients[1]) else float("nan"),
        seconds=result.seconds,
        history=result.module.history,
    )  # fmt: skip


def run(
    params: Params,
    workdir: Path = Path("."),
    progress: Progress | None = None,
    train_progress: bool = False,
    plot: Callable[[SearchResult, Path], None] | None = None,
) -> SearchResult:
    s = params.search
    t_start = time.perf_counter()
    tick = progress or (lambda what, done, total: None)
    net = load_supernet(workdir / params.supernet.out)
    supernet_metrics = torch.load(workdir / params.supernet.out, map_location="cpu",
                                  weights_only=True).get("metrics", {})  # fmt: skip
    prepared = workdir / params.prepare.out_dir
    data = load_server_data(prepared)
    test = load_server_data(prepared, split_eval=TEST)
    clients = client_test_tensors(prepared)
    if s.eval_clips:
        data = ServerData(data.train_x, data.train_y, data.val_x[: s.eval_clips],
                          data.val_y[: s.eval_clips])  # fmt: skip
    profile = load_profile(s.profile)
    space = net.space
    choices = [space.width_choices(i) for i in range(space.num_layers)]
    on_device = s.lut_import is None  # an imported table targets hardware we cannot time here

    full, zeros = space.largest(), space.smallest()

    def timed_many(archs: Sequence[Sequence[int]], prof: DeviceProfile = profile,
                   what: str = "") -> list[float]:  # fmt: skip
        """Whole-network latencies (ms) in the table's conditions: measured interleaved with the
        all-removed and the full network, then ``LatencyTable.align``-ed through those two."""
        report = (lambda d, n: tick(what, d, n)) if what else None
        *lats, low, high = network_latencies(net, [*archs, zeros, full], prof, progress=report)
        return [lut.align(lat.median_ms, low.median_ms, high.median_ms) for lat in lats]

    def timed(widths: Sequence[int]) -> float:
        return timed_many([widths])[0]

    # 1. the latency table
    t0 = time.perf_counter()
    if s.lut_import:
        lut = LatencyTable.load(workdir / s.lut_import, space)
    else:
        lut = build_table(net, profile, s.lut_width_stride,
                          progress=lambda d, n: tick("latency table", d, n))  # fmt: skip
    lut_seconds = time.perf_counter() - t0
    full_ms = lut.info["full_ms"] if on_device else lut.predict(full)
    budget = resolve_budget(params, profile, full_ms)
    log.info("full network %.4f ms; budget %.4f ms", full_ms, budget)

    # 2. MCD on the super-network, measured check, re-search while the device says no
    calibration = data.calibration_batches(params.supernet.recalibration_batches, 128,
                                           params.base.seed)  # fmt: skip
    scorer = CachedEvaluator(SupernetEvaluator(net, data, calibration))
    rng = np.random.default_rng(params.base.seed)
    config = MCDConfig(s.candidates, s.layers_per_candidate, s.step_fraction, s.step_decay,
                       s.max_iterations)  # fmt: skip
    with atomic_dir(workdir / "search") as out:
        t0 = time.perf_counter()
        search_budget, start, rounds = budget, None, []
        iterations: list[dict[str, Any]] = []
        evaluated: list[Candidate] = []
        while True:
            mcd = multi_layer_coordinate_descent(
                choices, lut, scorer, search_budget, rng, config, start=start,
                history_path=out / "history.json",
                on_iteration=lambda r: tick("MCD iterations", r["iteration"], 0),
            )  # fmt: skip
            iterations += mcd.iterations
            evaluated += mcd.evaluated if not evaluated else mcd.evaluated[1:]
            measured_ms = timed(mcd.widths) if on_device else float("nan")
            rounds.append(
                {
                    "search_budget_ms": search_budget,
                    "widths": mcd.widths,
                    "predicted_ms": mcd.predicted_ms,
                    "measured_ms": measured_ms,
                }
            )
            if not on_device or measured_ms <= budget or len(rounds) >= s.max_measure_rounds:
                break
            # the table was optimistic for this architecture: ask for proportionally less
            search_budget = min(search_budget, mcd.predicted_ms) * budget / measured_ms * 0.99
            start = mcd.widths
        mcd = SearchOutcome("mcd", mcd.widths, mcd.predicted_ms, mcd.accuracy, evaluated,
                            time.perf_counter() - t0, iterations)  # fmt: skip
        search_seconds = mcd.seconds

        # 3. baselines, same budget, same evaluator
        outcomes = {"mcd": mcd}
        outcomes["random"] = random_search(choices, lut, scorer, search_budget, rng,
                                           mcd.candidates_evaluated)  # fmt: skip
        fits = (lambda w: timed(w) <= budget) if on_device else None
        outcomes["uniform"] = uniform_baseline(choices, lut, scorer, search_budget,
                                               space.width_step, fits)  # fmt: skip
        if s.netadapt_v1:
            outcomes["netadapt_v1"] = run_netadapt_v1(params, net, lut, data, search_budget,
                                                      choices, tick)  # fmt: skip

        # 4. measured latency of every evaluated candidate (quick timing, for the plot) and a
        #    careful check of the table on winners and random architectures
        measured: dict[str, float] = {}
        # (for the plot only: fewer samples and a looser noise limit than the careful check)
        quick = profile.model_copy(
            update={"repeats": s.pareto_repeats, "max_spread": max(profile.max_spread, 0.5)}
        )
        if on_device:
            points = {arch_key(c.widths): c.widths for o in outcomes.values() for c in o.evaluated}
            quick_ms = timed_many(list(points.values()), quick, "timing candidates")
            measured = dict(zip(points, quick_ms, strict=True))
        remeasure = partial(build_table_with, net, profile, width_stride=s.lut_width_stride)
        lut_check = check_table(lut, remeasure, outcomes, s.lut_check_archs, choices,
                                params.base.seed) if on_device else []  # fmt: skip
        lut_error = median_of([c["error_pct"] for c in lut_check])
        winners_ms = {name: float("nan") for name in outcomes}
        if on_device:  # against the budget: in the table's conditions, like the MCD check
            winners = timed_many([o.widths for o in outcomes.values()])
            winners_ms = dict(zip(outcomes, winners, strict=True))

        # 5. train the discovered network (and the baselines' winners, for equal training)
        to_train = {"mcd": mcd.widths}
        if s.train_baselines:
            to_train.update({k: outcomes[k].widths for k in ("uniform", "random")})
        trained: dict[str, TrainedNetwork] = {}
        done: dict[str, TrainedNetwork] = {}
        for k, (name, widths) in enumerate(to_train.items(), 1):
            tick("training", k - 1, len(to_train))
            key = arch_key(widths)
            trained[name] = done.get(key) or train_network(
                name, widths, net, params, data, test, clients, train_progress
            )
            done[key] = trained[name]
        tick("training", len(to_train), len(to_train))
        searched = trained["mcd"]

        arch = {
            "space": space.to_dict(),
            "widths": mcd.widths,
            "macs": count_macs(space, mcd.widths),
            "params": count_parameters(searched.model),
            "predicted_latency_ms": mcd.predicted_ms,
            "measured_latency_ms": winners_ms["mcd"],
            "latency_budget_ms": budget,
            "device": profile.name if on_device else lut.device.get("name", "imported"),
        }
        write_json_atomic(out / "arch.json", arch)
        lut.info["check"] = lut_check
        lut.info["median_error_pct"] = lut_error
        lut.save(out / "lut.json")
        history = {
            "budget_ms": budget,
            "full_latency_ms": full_ms,
            "measure_rounds": rounds,
            "mcd": mcd.to_dict(),
            **{name: o.to_dict() for name, o in outcomes.items() if name != "mcd"},
            "measured_ms": measured,
            "winners_measured_ms": winners_ms,
            "trained": {
                n: {
                    "widths": t.widths,
                    "val_acc": t.val_acc,
                    "test_acc": t.test_acc,
                    "client_test_acc": t.client_test_acc,
                    "seconds": t.seconds,
                    "curve": t.history,
                }
                for n, t in trained.items()
            },  # fmt: skip
        }
        write_json_atomic(out / "history.json", history)
        supernet_seconds = float(supernet_metrics.get("train_seconds", float("nan")))
        metrics: dict[str, Any] = {
            "latency_budget_ms": round(budget, 5),
            "full_latency_ms": round(full_ms, 5),
            "predicted_latency_ms": round(mcd.predicted_ms, 5),
            "measured_latency_ms": round(winners_ms["mcd"], 5),
            "lut_error_pct": round(lut_error, 3),
            "lut_seconds": round(lut_seconds, 2),
            "inherited_val_acc": round(mcd.accuracy, 3),
            "val_acc": round(searched.val_acc, 3),
            "test_acc": round(searched.test_acc, 3),
            "client_test_acc": round(searched.client_test_acc, 3),
            "candidates_evaluated": mcd.candidates_evaluated,
            "mcd_iterations": len(mcd.iterations),
            "search_seconds": round(search_seconds, 2),
            "supernet_train_seconds": round(supernet_seconds, 2),
            "total_search_seconds": round(supernet_seconds + search_seconds, 2),
            "train_seconds": round(searched.seconds, 2),
            "searched_macs": arch["macs"],
            "searched_params": arch["params"],
        }
        for name in ("uniform", "random"):
            o = outcomes[name]
            t = trained.get(name)
            metrics[f"{name}_baseline_val_acc"] = round(t.val_acc if t else o.accuracy, 3)
            metrics[f"{name}_baseline_inherited_val_acc"] = round(o.accuracy, 3)
            metrics[f"{name}_baseline_measured_latency_ms"] = round(winners_ms[name], 5)
            if t:
                metrics[f"{name}_baseline_client_test_acc"] = round(t.client_test_acc, 3)
        if "netadapt_v1" in outcomes:
            v1 = outcomes["netadapt_v1"]
            metrics["netadapt_v1_seconds"] = round(v1.seconds, 2)
            metrics["netadapt_v1_val_acc"] = round(v1.accuracy, 3)
            metrics["netadapt_v1_measured_latency_ms"] = round(winners_ms["netadapt_v1"], 5)
        metrics["stage_seconds"] = round(time.perf_counter() - t_start, 2)
        result = SearchResult(metrics, arch, outcomes, measured, trained, lut, workdir / "search",
                              workdir / s.out, history)  # fmt: skip
        if plot is not None:
            plot(result, out / "pareto.png")
    save_subnet(workdir / s.out, searched.model, {"metrics": metrics, "arch": arch})
    return result


def check_table(
    lut: LatencyTable,
    remeasure: Callable[[Sequence[Sequence[int]]], tuple[LatencyTable, list[Latency]]],
    outcomes: dict[str, SearchOutcome],
    n_random: int,
    choices: Sequence[Sequence[int]],
    seed: int,
) -> list[dict[str, Any]]:
    """The table's error against whole-network measurements: every method's winner plus
    ``n_random`` random architectures, measured in one interleaved measurement together with the
    table's own entries, and predicted by the table from that same measurement. The host's
    speed drifts between regimes that do not scale all operators alike (a slow stretch here made
    partial-width networks 1.43x slower, the full one 1.31x and the all-removed one 1.48x), so a
    check measured minutes after the table mixes that drift into the error; measured together,
    the error is the additive model's alone. ``search_table_ms`` keeps the search's prediction."""
    rng = np.random.default_rng(seed + 17)
    archs = {arch_key(o.widths): o.widths for o in outcomes.values()}
    while len(archs) < len(outcomes) + n_random:
        w = [int(rng.choice(c)) for c in choices]
        archs.setdefault(arch_key(w), w)
    fresh, latencies = remeasure(list(archs.values()))
    out = []
    for widths, latency in zip(archs.values(), latencies, strict=True):
        measured, predicted = latency.median_ms, fresh.predict(widths)
        out.append({"widths": widths, "predicted_ms": predicted, "measured_ms": measured,
                    "error_pct": abs(predicted - measured) / measured * 100,
                    "search_table_ms": lut.predict(widths)})  # fmt: skip
    return out


def run_netadapt_v1(
    params: Params,
    net: SuperNet,
    lut: LatencyTable,
    data: ServerData,
    budget: float,
    choices: Sequence[Sequence[int]],
    tick: Progress,
) -> SearchOutcome:
    """NetAdapt v1 from scratch: train the full network plainly (its own cost), then search."""
    s = params.search
    t0 = time.perf_counter()
    torch.manual_seed(params.base.seed)
    plain = SubNetwork(net.space, net.space.largest())
    plain.norm.load_state_dict(net.norm.state_dict())
    recipe = params.supernet  # the same epochs as the super-network: a fair seed network
    pretrain = fit(plain, recipe, data, params.base.seed)
    container = SuperNet(net.space)
    implant(container, plain)
    outcome = netadapt_v1(
        container, choices, lut, data, budget, params.base.seed,
        NetAdaptConfig(s.v1_step_fraction, s.step_decay, s.v1_finetune_steps),
        on_iteration=lambda r: tick("NetAdapt v1 iterations", r["iteration"], 0),
    )  # fmt: skip
    outcome.seconds = time.perf_counter() - t0
    outcome.iterations.insert(0, {"pretrain_seconds": pretrain.seconds})
    return outcome
