"""Running the federation: the ServerApp's main loop, and Flower's simulation engine on Ray.

``run_federation`` is the ServerApp's body for any Flower ``Grid``: register the clients, optionally
evaluate the start on every client through Flower, run the strategy's rounds (Flower's own
``Strategy.start`` loop), evaluate the end. ``simulate`` hands a ServerApp and a ClientApp to
``flwr.simulation.run_simulation`` with one virtual SuperNode per client; Ray runs the ClientApps
in ``num_cpus / client_cpus`` worker actors. Moving to a Ray cluster is configuration: set
``finetune.simulation.address`` to ``auto`` (on a cluster node) or ``ray://HEAD:10001``; every
node then needs this package installed and the prepared data at the same path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from components.config import FinetuneParams, SimulationParams
from components.errors import EdgelearnError
from components.federated.sampling import ClientInfo
from components.federated.strategy import PartialVariableStrategy

log = logging.getLogger(__name__)
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray on 127.0.0.1 only
EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]


@dataclass
class FederationOutcome:
    clients: list[ClientInfo] = field(default_factory=list)
    final: ArrayRecord | None = None
    federated_before: tuple[int, int, int] | None = None  # (correct, clips, clients reporting)
    federated_after: tuple[int, int, int] | None = None
    rounds_seconds: float = 0.0
    register_seconds: float = 0.0
    federated_eval_seconds: float = 0.0  # before and after, together


def run_federation(
    grid: Grid,
    strategy: PartialVariableStrategy,
    initial: ArrayRecord,
    params: FinetuneParams,
    expected_clients: int,
    evaluate_fn: EvaluateFn | None,
    outcome: FederationOutcome,
) -> FederationOutcome:
    """The ServerApp's work; fills ``outcome`` as it goes."""
    start = time.perf_counter()
    outcome.clients = strategy.register(grid, expected_clients, max(60.0, params.round_timeout_s))
    outcome.register_seconds = time.perf_counter() - start
    trainable = sum(c.num_train > 0 for c in outcome.clients)
    if trainable < params.min_clients:
        raise EdgelearnError(
            f"finetune: {trainable} clients with training clips registered, "
            f"fewer than finetune.min_clients={params.min_clients}"
        )
    log.info("%d clients registered (%d expected)", len(outcome.clients), expected_clients)
    if params.federated_eval:
        start = time.perf_counter()
        outcome.federated_before = strategy.federated_evaluate(grid, initial)
        outcome.federated_eval_seconds += time.perf_counter() - start
    start = time.perf_counter()
    result = strategy.start(
        grid,
        initial,
        num_rounds=params.rounds,
        timeout=params.round_timeout_s,
        evaluate_fn=evaluate_fn,
    )
    outcome.rounds_seconds = time.perf_counter() - start
    outcome.final = result.arrays if len(result.arrays) else initial
    if params.federated_eval:
        start = time.perf_counter()
        outcome.federated_after = strategy.federated_evaluate(grid, outcome.final)
        outcome.federated_eval_seconds += time.perf_counter() - start
    return outcome


def make_server_app(run: Callable[[Grid], object]) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run(grid)

    return app


def backend_config(sim: SimulationParams) -> dict:
    """Flower's Ray backend settings: worker resources, and how Ray starts or joins a cluster."""
    # The actors' own output (e.g. "Manually terminating ClientAppActor" at shutdown) stays in
    # Ray's session logs; a ClientApp's error reaches the server as its reply and is counted.
    init_args: dict[str, object] = {"include_dashboard": False, "logging_level": "WARNING",
                                    "log_to_driver": False}  # fmt: skip
    if sim.address:
        init_args["address"] = sim.address
    else:
        init_args["num_cpus"] = sim.num_cpus
        init_args["num_gpus"] = 0 if sim.client_gpus == 0 else None
        init_args["object_store_memory"] = 256 * 1024**2  # the payloads are kilobytes
    init_args = {k: v for k, v in init_args.items() if v is not None}
    return {
        "client_resources": {"num_cpus": sim.client_cpus, "num_gpus": sim.client_gpus},
        "init_args": init_args,
    }


def simulate(
    server_app: ServerApp, client_app: ClientApp, num_clients: int, sim: SimulationParams
) -> None:
    """Run Flower's simulation engine (Ray backend) until the ServerApp returns; Ray is shut
    down afterwards (a joined cluster is only disconnected from)."""
    from flwr.simulation import run_simulation

    if not sim.address:
        # A Ray started here serves this process only: keep it on loopback. Ray 2.55 otherwise
        # advertises the machine's interface address and listens on every interface; its
        # single-machine mode (the macOS/Windows default) binds 127.0.0.1. Read when Ray is first
        # imported, i.e. below in a stage process (docs/federated-deployment.md).
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=num_clients,
        backend_name="ray",
        backend_config=backend_config(sim),
    )
