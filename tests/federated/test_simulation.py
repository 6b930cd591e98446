"""One real Flower simulation (Ray backend) on the smoke configuration, faults injected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from components.config import load_params
from components.data.prepared import load_prepared
from components.data.splits import CLIENT, TEST
from components.federated import stage
from components.model.checkpoint import load_subnet_file
from tests.helpers import ROOT
from tests.helpers.federated import write_start_model
from tests.helpers.toy_data import write_prepared

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Forged updates that reach the model here: all three. Each client trains one variable, so no
# variable has the three clients the cohort check needs (tests/federated/test_strategy.py has
# every client train every variable, and there the scaled ones are rejected).
REACHED = {"sign_flip": 1, "random": 1, "scaled": 1}


def client_test_loss(model: Path, work: Path) -> float:
    """Mean cross-entropy of a saved model on the clients' test clips of the prepared data."""
    x, y = load_prepared(work / "data/prepared").tensors(CLIENT, TEST)
    net, _ = load_subnet_file(model)
    with torch.no_grad():
        return F.cross_entropy(net.eval()(x), y).item()


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    work = tmp_path_factory.mktemp("finetune")
    prepared = write_prepared(work / "data/prepared")
    write_start_model(work / "models/searched.pt", prepared, steps=80)
    params = load_params(ROOT / "configs/smoke.yaml")
    ft = params.finetune.model_copy(
        update={
            "clients_per_round": 6,
            "round_timeout_s": 8.0,
            # PVT (random variables in the top half) and OMC on, no server learning, which would
            # change every variable: what moved must be what the clients trained
            "pvt": params.finetune.pvt.model_copy(update={"strategy": "random"}),
            "omc": params.finetune.omc.model_copy(update={"enabled": True}),
            "server_learning": params.finetune.server_learning.model_copy(update={"steps": 0}),
            # with seed 7 these rates make clients commit each fault (draws are per round/client)
            "faults": params.finetune.faults.model_copy(
                update={
                    "crash": 0.05,
                    "timeout": 0.08,
                    "nan": 0.1,
                    "bad_shape": 0.05,
                    "huge_norm": 0.05,
                    # the forged updates: one each (rounds 2, 1, 2), on clients that were honest
                    "sign_flip": 0.30,
                    "scaled": 0.07,
                    "random": 0.03,
                }
            ),
        }
    )
    params = params.model_copy(update={"finetune": ft})
    rounds = []
    result = stage.run(params, work, on_round=lambda r, rec: rounds.append((r, rec)))
    return work, params, result, rounds


def test_metrics_and_model(finetuned):
    work, _params, result, _rounds = finetuned
    m = result.metrics
    assert {"rounds", "clients_total", "clients_per_round", "acc_before", "acc_after",
            "upload_bytes_per_client_round", "full_model_bytes", "upload_reduction_x",
            "client_peak_train_mem_bytes", "client_mem_reduction_x", "failed_client_updates",
            "rejected_client_updates"} <= set(m)  # fmt: skip
    assert (m["rounds"], m["clients_total"], m["clients_per_round"]) == (3, 6, 6)
    # the model adapts to the clients: their test clips' cross-entropy drops (4.97 -> 4.17 here).
    # Not accuracy: on 36 toy clips 3 rounds of PVT (1 variable per client) move it by a clip or
    # two either way (the same commit passed on one machine and failed on another); the bench
    # measures accuracy on the real corpus.
    before, after = (client_test_loss(work / f"models/{n}.pt", work) for n in ("searched", "final"))
    assert after < 0.9 * before
    # Flower's federated evaluation (clients hold the OMC-compressed download) agrees with the
    # server's count on the same compressed model
    assert m["federated_acc_after"] == m["client_view_acc_after"]
    assert m["federated_eval_clients_after"] == 6
    assert m["upload_reduction_x"] > 3 and m["client_mem_reduction_x"] > 1.2
    assert m["client_param_bytes"] < 0.5 * m["fedavg_param_bytes"]  # OMC, 8 bits
    net, payload = load_subnet_file(work / "models/final.pt")
    assert payload["metrics"]["acc_after"] == m["acc_after"]
    start, _ = load_subnet_file(work / "models/searched.pt")
    changed = [n for n, t in net.state_dict().items() if not torch.equal(t, start.state_dict()[n])]
    assert changed and all(n.startswith(("body.2", "body.3", "head")) for n in changed)  # depth


def test_faults_are_counted_and_the_absurd_ones_never_reach_the_model(finetuned):
    _, _, result, rounds = finetuned
    m = result.metrics
    assert [r for r, _ in rounds] == [0, 1, 2, 3]
    injected = {k.removeprefix("injected_"): v for k, v in m.items() if k.startswith("injected_")}
    reached = {k.removeprefix("reached_model_"): v for k, v in m.items()
               if k.startswith("reached_model_")}  # fmt: skip
    assert injected == {"faults": 9, "crash": 1, "timeout": 1, "nan": 1, "bad_shape": 2,
                        "huge_norm": 1, "sign_flip": 1, "scaled": 1, "random": 1}  # fmt: skip
    assert m["failed_client_updates"] == injected["crash"] + injected["timeout"]
    assert m["honest_rejected_updates"] == 0  # no honest client is rejected
    assert m["rejected_client_updates"] == (
        injected["nan"] + injected["bad_shape"] + injected["huge_norm"]
        + m["outlier_client_updates"]
    )  # fmt: skip
    # a norm check cannot see the sign-flipped and the random update (an honest norm): they
    # reach the model; the scaled one does too unless enough clients trained its variable
    assert {k: v for k, v in reached.items() if v} == REACHED
    assert m["faults_reached_model"] == sum(REACHED.values())
    assert m["outlier_client_updates"] == m["cohort_judged_updates"] == 0
    reasons = "\n".join(result.reasons)
    for text in ("injected fault: client crashed", "no reply within 8.0 s", "non-finite values",
                 "float values:", "above the limit"):  # fmt: skip
        assert text in reasons
    for _, rec in rounds[1:]:
        assert rec["participating"] == rec["accepted"] + rec["failed"] + rec["rejected"]
        assert rec["client_test_acc"] == rec["client_test_acc"]  # never NaN
