"""The finetune stage: federated PVT/OMC fine-tuning of the searched network on the client pool.

``run(params, workdir, on_round)`` loads ``paths.searched``, runs the federation on Flower's
simulation engine, measures (accuracy on the clients' test clips and on the server test split,
bytes both ways, client training memory against an all-variable float reference step) and writes
``paths.final``. Per-round accuracy is computed by the server on the pooled test clips of every
client (a simulation can see them; a deployment would run Flower's federated evaluation, which the
stage also does through Flower at the start and the end when ``finetune.federated_eval`` is on).

Devices: one per client speaker, one virtual SuperNode each; or ``finetune.population`` devices
(``data.device_rows``), which the server knows from the prepared data and which
``clients_per_round`` virtual SuperNodes play in turn, every message naming its device. One node
per device made Flower's engine poll thousands of idle nodes every 0.1 s and the server query each
at registration (bench/population.py measured both).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from components.config import Params
from components.data.prepared import check_num_classes, load_prepared
from components.data.splits import CLIENT, SERVER, TEST
from components.errors import ConfigError, CorpusError, EdgelearnError
from components.federated import protocol as P
from components.federated.client_app import make_client_app
from components.federated.data import ClientPool
from components.federated.payload import encode_payload, payload_bytes
from components.federated.sampling import ClientInfo
from components.federated.server_learning import server_learner
from components.federated.simulation import (
    FederationOutcome,
    make_server_app,
    run_federation,
    simulate,
)
from components.federated.strategy import PartialVariableStrategy, arrays_to_numpy, numpy_to_arrays
from components.federated.training import ClientModel, LocalConfig, count_correct, materialize
from components.federated.variables import ModelLayout, layer_name, select_trainable
from components.model.checkpoint import load_subnet_file, save_subnet
from components.model.subnet import SubNetwork
from components.progress import Progress, no_progress

log = logging.getLogger(__name__)
OnRound = Callable[[int, dict[str, float]], None]
# metrics/finetune.json (the rest goes to the details file)
HEADLINE = (
    "rounds", "clients_total", "clients_per_round", "acc_before", "acc_after",
    "server_test_acc_after", "upload_bytes_per_client_round", "full_model_bytes",
    "upload_reduction_x", "client_peak_train_mem_bytes", "client_mem_reduction_x",
    "failed_client_updates", "rejected_client_updates", "stage_seconds",
)  # fmt: skip


@dataclass(frozen=True)
class FinetuneResult:
    model: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]  # one record per round (round 0 = the start)
    reasons: list[str]  # why clients failed or were rejected, per occurrence


def _float_state(net: SubNetwork, layout: ModelLayout) -> dict[str, np.ndarray]:
    state = net.state_dict()
    return {n: state[n].detach().numpy().astype(np.float32).copy() for n in layout.names}


def check_params(params: Params, layout: ModelLayout | None = None) -> None:
    """Problems a user can fix, found before Ray starts (one message naming the key)."""
    p = params.finetune
    if p.min_clients > p.clients_per_round:
        raise ConfigError(
            f"finetune.min_clients={p.min_clients} exceeds finetune.clients_per_round="
            f"{p.clients_per_round}: no round could ever count"
        )
    if layout is not None:
        try:
            pvt = p.pvt
            rng = np.random.default_rng(0)
            select_trainable(layout, pvt.strategy, rng, pvt.trainable_fraction, pvt.min_depth,
                             tuple(pvt.fixed), pvt.budget)  # fmt: skip
        except ValueError as err:
            key = "finetune.pvt.fixed" if p.pvt.strategy == "fixed" else "finetune.pvt.min_depth"
            layers = ", ".join(dict.fromkeys(layer_name(v) for v in layout.variables))
            raise ConfigError(f"{key}: {err} (the model's layers: {layers})") from None


def reference_memory(
    arch: dict[str, Any], state: dict[str, np.ndarray], layout: ModelLayout, x: torch.Tensor,
    y: torch.Tensor, batch_size: int,
) -> dict[str, int]:  # fmt: skip
    """An all-variable float client step (plain FedAvg) on the same engine, profiled alike."""
    tensors = {n: torch.from_numpy(v.copy()) for n, v in state.items()}
    everything = frozenset(layout.variables)
    model = ClientModel(arch, tensors, everything, lr=0.0)
    cfg = LocalConfig(
        steps=1, batch_size=batch_size, lr=0.0, trainable=everything, measure_memory=True
    )
    return model.train(x, y, cfg).memory


def fedavg_upload_bytes(state: dict[str, np.ndarray], layout: ModelLayout) -> int:
    """Measured size of a FedAvg reply: every variable in float32, same records as ours."""
    values = {n: torch.from_numpy(state[n]) for n in layout.variables}
    arrays, record = encode_payload(values, layout)
    metrics = MetricRecord({"client": 0, "num-examples": 1, "loss-first": 0.0, "loss-last": 0.0,
                            "train-seconds": 0.0})  # fmt: skip
    return payload_bytes(RecordDict({P.UPDATE: arrays, P.LAYOUT: record, P.METRICS: metrics}))


def run(
    params: Params,
    workdir: Path = Path("."),
    on_round: OnRound | None = None,
    progress: Progress = no_progress,
) -> FinetuneResult:
    """The stage; ``on_round(round, figures)`` receives every round's record (MLflow logs it),
    ``progress`` one report per round with its accuracy figures."""
    check_params(params)
    p = params.finetune
    started = time.perf_counter()
    torch.manual_seed(params.base.seed)
    init_net, payload = load_subnet_file(workdir / params.paths.searched)
    arch = payload["config"]
    layout = ModelLayout.from_model(init_net)
    check_params(params, layout)
    prepared_dir = (workdir / params.paths.prepared).resolve()
    pool = ClientPool(prepared_dir, p.population, params.base.seed)
    data = load_prepared(prepared_dir)
    check_num_classes(prepared_dir, data.classes, workdir / params.paths.searched,
                      init_net.head.out_features)  # fmt: skip
    server_x, server_y = data.tensors(SERVER, TEST)
    client_x, client_y = data.tensors(CLIENT, TEST)
    if len(client_y) == 0:
        raise CorpusError(f"{prepared_dir}: the clients hold no test clips")
    initial_state = _float_state(init_net, layout)
    learner = server_learner(params, data, prepared_dir, arch)
    # A population's devices are played by ``clients_per_round`` slot nodes (module docstring).
    roster = ([ClientInfo(-1, c, *pool.counts(c)) for c in pool.ids]
              if p.population else None)  # fmt: skip
    nodes = min(len(pool), p.clients_per_round) if roster else len(pool)
    strategy = PartialVariableStrategy(p, arch, layout, params.base.seed, learner, roster)
    history: list[dict[str, float]] = []
    totals = {"up": 0, "down": 0}

    def accuracies(state: dict[str, np.ndarray]) -> tuple[float, float]:
        net = materialize(arch, {n: torch.from_numpy(v) for n, v in state.items()})
        return (100.0 * count_correct(net, client_x, client_y) / len(client_y),
                100.0 * count_correct(net, server_x, server_y) / max(1, len(server_y)))  # fmt: skip

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        client_acc, server_acc = accuracies(arrays_to_numpy(arrays))
        record: dict[str, Any] = {"client_test_acc": client_acc, "server_test_acc": server_acc}
        report = strategy.reports.get(server_round)
        if report is not None:
            totals["up"] += sum(report.bytes_up)
            totals["down"] += sum(report.bytes_down)
            peaks = [m["peak_bytes"] for m in report.memory if "peak_bytes" in m]
            record.update(
                participating=report.sampled, accepted=report.accepted, failed=report.failed,
                rejected=report.rejected, outliers=report.outliers, judged=report.judged,
                faults_reached_model=sum(report.reached.values()), skipped=float(report.skipped),
                bytes_up_per_client=np.mean(report.bytes_up) if report.bytes_up else 0.0,
                bytes_down_per_client=np.mean(report.bytes_down) if report.bytes_down else 0.0,
                cumulative_bytes_up=totals["up"], cumulative_bytes_down=totals["down"],
                train_loss=report.train_loss, trained_variables=report.trained_variables,
                round_seconds=report.seconds,
            )  # fmt: skip
            if peaks:
                record["client_peak_train_mem_bytes"] = max(peaks)
        numbers = {k: float(v) for k, v in record.items()}
        history.append({"round": float(server_round), **numbers})
        if on_round is not None:
            on_round(server_round, numbers)
        shown = {k: round(v, 3) for k, v in numbers.items() if "acc" in k or k == "failed"}
        progress("round", server_round, p.rounds, shown)
        return MetricRecord(dict(numbers))

    initial = numpy_to_arrays(initial_state)
    outcome = FederationOutcome()
    server_app = make_server_app(
        lambda grid: run_federation(grid, strategy, initial, p, nodes, evaluate_fn, outcome)
    )
    client_app = make_client_app(str(prepared_dir), p.simulation.client_threads)
    simulate(server_app, client_app, nodes, p.simulation)
    if outcome.final is None:
        raise EdgelearnError("finetune: the federation ended without a model (see the log above)")
    final_state = arrays_to_numpy(outcome.final)

    # The final model: the init network with the federated float state.
    with torch.no_grad():
        sd = init_net.state_dict()
        for name, value in final_state.items():
            sd[name].copy_(torch.from_numpy(value))
    client_view = materialize(arch, strategy.download(final_state))  # what a client holds (OMC)
    reports = list(strategy.reports.values())
    metrics = _metrics(
        params, strategy, reports, outcome, history, layout, initial_state, pool, arch
    )
    metrics["server_learning_steps"] = learner.batches if learner else 0
    metrics["client_view_acc_after"] = round(
        100.0 * count_correct(client_view, client_x, client_y) / len(client_y), 3
    )
    metrics["stage_seconds"] = round(time.perf_counter() - started, 2)
    out = workdir / params.paths.final
    save_subnet(out, init_net.eval(), {"metrics": metrics, "finetune": p.model_dump(mode="json")})
    reasons = [r for rep in reports for r in rep.reasons]
    return FinetuneResult(out, metrics, history, reasons)


def _metrics(
    params: Params, strategy: PartialVariableStrategy, reports: list, outcome: FederationOutcome,
    history: list[dict[str, float]], layout: ModelLayout, initial_state: dict[str, np.ndarray],
    pool: ClientPool, arch: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    p = params.finetune
    up = [b for r in reports for b in r.bytes_up]
    down = [b for r in reports for b in r.bytes_down]
    probes = [m for r in reports for m in r.memory if "peak_bytes" in m]
    worst = max(probes, key=lambda m: m["peak_bytes"]) if probes else {}
    # The FedAvg reference step on the client with the most training clips (the largest batch).
    biggest = max(outcome.clients, key=lambda c: c.num_train)
    x, y = pool.clips(biggest.client, "train")
    ref = reference_memory(arch, initial_state, layout, x, y, p.batch_size)
    full_bytes = fedavg_upload_bytes(initial_state, layout)
    up_mean = float(np.mean(up)) if up else 0.0
    start, end = history[0], history[-1]
    metrics: dict[str, Any] = {
        "rounds": p.rounds,
        "clients_total": len(outcome.clients),
        "clients_per_round": p.clients_per_round,
        "acc_before": round(start["client_test_acc"], 3),
        "acc_after": round(end["client_test_acc"], 3),
        "server_test_acc_before": round(start["server_test_acc"], 3),
        "server_test_acc_after": round(end["server_test_acc"], 3),
        "upload_bytes_per_client_round": round(up_mean, 1),
        "download_bytes_per_client_round": round(float(np.mean(down)) if down else 0.0, 1),
        "full_model_bytes": full_bytes,
        "upload_reduction_x": round(full_bytes / up_mean, 2) if up_mean else 0.0,
        "client_peak_train_mem_bytes": int(worst.get("peak_bytes", 0)),
        "fedavg_peak_train_mem_bytes": int(ref["peak_bytes"]),
        "client_mem_reduction_x": round(ref["peak_bytes"] / worst["peak_bytes"], 2)
        if worst else 0.0,
        "client_param_bytes": int(worst.get("param_bytes", 0)),
        "fedavg_param_bytes": int(ref["param_bytes"]),
        "param_mem_reduction_pct": round(100 * (1 - worst["param_bytes"] / ref["param_bytes"]), 1)
        if worst else 0.0,
        "client_grad_bytes": int(worst.get("grad_bytes", 0)),
        "client_optimizer_state_bytes": int(worst.get("optimizer_state_bytes", 0)),
        "client_saved_activation_bytes": int(worst.get("saved_activation_bytes", 0)),
        "fedavg_saved_activation_bytes": int(ref["saved_activation_bytes"]),
        "memory_probes": len(probes),
        "failed_client_updates": sum(r.failed for r in reports),
        "rejected_client_updates": sum(r.rejected for r in reports),
        "outlier_client_updates": sum(r.outliers for r in reports),  # of the rejected
        "cohort_judged_updates": sum(r.judged for r in reports),
        "honest_rejected_updates": sum(r.honest_rejected for r in reports),  # handed no fault
        "skipped_rounds": sum(r.skipped for r in reports),
        "injected_faults": sum(sum(r.injected.values()) for r in reports),
        **{f"injected_{kind}": sum(r.injected.get(kind, 0) for r in reports) for kind in P.FAULTS},
        "faults_reached_model": sum(sum(r.reached.values()) for r in reports),
        **{f"reached_model_{kind}": sum(r.reached.get(kind, 0) for r in reports)
           for kind in P.FAULTS},
        "variables_total": len(layout.variables),
        "compressed_variables": len(strategy.compressed),
        "population": p.population,
        "register_seconds": round(outcome.register_seconds, 2),
        "federated_eval_seconds": round(outcome.federated_eval_seconds, 2),
        "train_seconds": round(outcome.rounds_seconds, 2),
        "rounds_per_minute": round(60.0 * p.rounds / outcome.rounds_seconds, 2)
        if outcome.rounds_seconds else 0.0,
    }  # fmt: skip
    for key, value in (("before", outcome.federated_before), ("after", outcome.federated_after)):
        if value is not None:
            correct, clips, reporting = value
            metrics[f"federated_acc_{key}"] = round(100.0 * correct / max(1, clips), 3)
            metrics[f"federated_eval_clients_{key}"] = reporting
    return metrics
