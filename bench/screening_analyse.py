"""Tabulates bench/screening_check.py runs, one group per argument:

python bench/screening_analyse.py LABEL,LABEL ...
"""

import json
import sys
from collections import defaultdict

import numpy as np

Z = 3.5


def load(label):
    return json.load(open(f"/tmp/fedcheck/{label}.json"))


groups = sys.argv[1:]
for group in groups:
    labels = group.split(",")
    per = defaultdict(lambda: {"ratios": [], "cos": []})
    meta = defaultdict(int)
    for label in labels:
        d = load(label)
        for k in (
            "injected_faults",
            "faults_reached_model",
            "cohort_judged_updates",
            "honest_rejected_updates",
            "outlier_client_updates",
            "injected_scaled",
            "reached_model_scaled",
            "injected_sign_flip",
            "injected_random",
            "reached_model_sign_flip",
            "reached_model_random",
        ):
            meta[k] += d.get(k, 0)
        meta["updates"] += 200
        for r in d["rows"]:
            u = per[(label, r["round"], r["client"], r["fault"])]
            u["ratios"].append((r["ratio"], r["z"]))
            u["cos"].append(r["cos"])
    kinds = defaultdict(list)
    for (_label, _rnd, _c, f), u in per.items():
        kinds[f or "honest"].append(u)
    print(f"== {group}: {dict(meta)}")
    for kind, us in sorted(kinds.items()):
        maxr = np.array([max((r for r, z in u["ratios"] if z > Z), default=0.0) for u in us])
        mincos = np.array([min(u["cos"]) for u in us])
        line = f"  {kind:9s} judged {len(us):4d} | max-ratio(z>{Z}) max {maxr.max():6.3g}"
        line += " | rejected at ratio " + " ".join(
            f"{t}:{int((maxr > t).sum())}" for t in (2, 3, 4, 5)
        )
        line += f" | min cos: min {mincos.min():.3g} max {mincos.max():.3g} | cos< " + " ".join(
            f"{t}:{int((mincos < t).sum())}" for t in (0.0, -0.2, -0.5)
        )
        print(line)
