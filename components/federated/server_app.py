"""The Flower ServerApp for a real deployment: same strategy and round loop as the simulation.

The finetune stage builds its own ServerApp around ``run_federation`` for Flower's simulation
engine (stage.py). On a real federation (docs/federated-deployment.md; the Flower App is
``deploy/flower``) this module's ``app`` runs instead: it reads the params file named by the run
config key ``params`` (default ``params.yaml``), waits for ``clients`` SuperNodes (run config,
default ``finetune.clients_per_round``), runs ``finetune.rounds`` rounds and writes ``paths.final``.
With ``finetune.server_learning.steps`` the server needs its own prepared clips at
``paths.prepared`` (the server pool's training split), as the pipeline's server has them.
Per-round accuracy needs the clients' test clips, so here it comes only from Flower's federated
evaluation at the start and the end (``finetune.federated_eval``), logged by Flower.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from components.config import load_params
from components.data.prepared import load_prepared
from components.federated.server_learning import server_learner
from components.federated.simulation import FederationOutcome, run_federation
from components.federated.strategy import (
    PartialVariableStrategy,
    arrays_to_numpy,
    numpy_to_arrays,
)
from components.federated.variables import ModelLayout
from components.model.checkpoint import load_subnet_file, save_subnet

log = logging.getLogger(__name__)
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    params = load_params(str(context.run_config.get("params", "params.yaml")))
    p = params.finetune
    net, payload = load_subnet_file(Path(params.paths.searched))
    layout = ModelLayout.from_model(net)
    state = net.state_dict()
    initial = numpy_to_arrays({n: state[n].numpy().copy() for n in layout.names})
    prepared = Path(params.paths.prepared)
    learner = server_learner(params, load_prepared(prepared), prepared, payload["config"])
    strategy = PartialVariableStrategy(p, payload["config"], layout, params.base.seed, learner)
    expected = int(context.run_config.get("clients", p.clients_per_round))
    outcome = run_federation(grid, strategy, initial, p, expected, None, FederationOutcome())
    assert outcome.final is not None
    with torch.no_grad():
        for name, value in arrays_to_numpy(outcome.final).items():
            state[name].copy_(torch.from_numpy(value))
    save_subnet(Path(params.paths.final), net.eval(), {"finetune": p.model_dump(mode="json")})
    log.info("federated accuracy before %s, after %s (correct, clips, clients); wrote %s",
             outcome.federated_before, outcome.federated_after, params.paths.final)  # fmt: skip
