"""Diagnostic behind docs/federated-screening.md (not part of `make bench`): the finetune stage
run for real with a spy on the cohort check, recording every judged update's norm ratio to its
cohort's median, modified z-score and cosine to the median update, per injected fault kind.

    SCREENING_WORKDIR=DIR python bench/screening_check.py LABEL PVT FAULT_P ROUNDS SEED [off]

DIR holds data/prepared and models/searched.pt of a pipeline run; PVT is default, all or a
fraction; FAULT_P the probability of each of sign_flip, scaled and random; `off` turns the cohort
check off. Each run writes /tmp/fedcheck/LABEL.json; bench/screening_analyse.py tabulates them.
Summaries of the runs quoted in the docs: bench/results/screening.json.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components.config import FaultParams, PvtParams, load_params
from components.federated import rounds, stage, strategy
from components.federated.cohort import MAD_SCALE, cohorts
from components.federated.screening import ACCEPTED

label, pvt, faults, rounds_n, seed = (
    sys.argv[1],
    sys.argv[2],
    float(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
)
rows = []
original = rounds.screen_cohort
current = {}


def spy(verdicts, sent, params):
    deltas = {
        c: {n: v.astype(np.float64) - sent[n] for n, v in vd.update.values.items()}
        for c, vd in verdicts
        if vd.status == ACCEPTED and vd.update is not None
    }
    for name, clients in cohorts(deltas, params.min_cohort).items():
        x = np.array([np.linalg.norm(deltas[c][name]) for c in clients])
        med = np.median(x)
        mad = np.median(np.abs(x - med))
        stacked = np.stack([deltas[c][name].ravel() for c in clients])
        mdelta = np.median(stacked, axis=0)
        for c, xi, d in zip(clients, x, stacked, strict=False):
            z = MAD_SCALE * (xi - med) / mad if mad > 0 else (np.inf if xi > med else 0.0)
            cos = float(d @ mdelta / (np.linalg.norm(d) * np.linalg.norm(mdelta) + 1e-30))
            rows.append(
                {
                    "round": current["round"],
                    "fault": current["faults"].get(c, ""),
                    "client": c,
                    "var": name,
                    "n": len(clients),
                    "ratio": float(xi / med),
                    "z": float(z),
                    "cos": cos,
                }
            )
    return original(verdicts, sent, params)


rounds.screen_cohort = spy
original_close = strategy.close_round


def close_spy(report, *args, **kwargs):
    current["round"], current["faults"] = report.round, dict(report.faults)
    return original_close(report, *args, **kwargs)


strategy.close_round = close_spy
params = load_params("params.yaml")
ft = params.finetune
upd = {"rounds": rounds_n}
if pvt == "all":
    upd["pvt"] = PvtParams(strategy="all")
elif pvt != "default":
    upd["pvt"] = ft.pvt.model_copy(update={"trainable_fraction": float(pvt)})
if len(sys.argv) > 6 and sys.argv[6] == "off":
    upd["screening"] = ft.screening.model_copy(update={"cohort": False})
if faults:
    upd["faults"] = FaultParams(sign_flip=faults, scaled=faults, random=faults)
params = params.model_copy(
    update={
        "finetune": ft.model_copy(update=upd),
        "base": params.base.model_copy(update={"seed": seed}),
    }
)
t = time.time()
res = stage.run(params, Path(os.environ.get("SCREENING_WORKDIR", "/tmp/fedcheck/work")))
m = res.metrics
keys = [
    "acc_before",
    "acc_after",
    "server_test_acc_after",
    "rejected_client_updates",
    "outlier_client_updates",
    "cohort_judged_updates",
    "honest_rejected_updates",
    "injected_faults",
    "faults_reached_model",
]
keys += [k for k in m if k.startswith(("injected_", "reached_model_")) and m[k]]
out = {"label": label, "seconds": round(time.time() - t, 1), **{k: m[k] for k in keys}}
out["reasons"] = res.reasons
out["rows"] = rows
Path(f"/tmp/fedcheck/{label}.json").write_text(json.dumps(out))
print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
