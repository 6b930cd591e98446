"""The search space as the device sees it (issue 16, item 2): does width move latency?

On one device profile, end to end (the search's ``DeviceGraph``: audio in, scores out), with the
super-network of ``params.yaml``'s space (untrained weights: latency does not depend on them):

- the latency table: every searchable layer alone at every width, interleaved; a layer passes when
  its latency does not rise as its width falls by more than the noise (2% of the full network:
  each median is known to +-2%);
- the network with every layer's channels halved (stem, stages, hidden widths) against the full
  one, end to end and without the shared frontend (target: at most 0.6x);
- the number of architectures and of searchable layers;
- one training step (batch 64, forward, backward, AdamW) of the super-network with NetAdaptV2's
  ordered dropout against the same full network trained plainly (target: at most 1.3x).

    python -m bench.space [--profile cpu-1thread] [--block inverted|bypass] [--name space]
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.common import arguments, quiet, save, table
from bench.frontend import frontend_onnx
from components.config import load_params
from components.data.labels import classes_of
from components.export.frontend import ConvLogMelFrontend
from components.features import num_frames
from components.latency import load_profile, measure_many
from components.model.space import SearchSpace, StageSpec, space_from_params
from components.model.subnet import SubNetwork
from components.model.supernet import SuperNet, sample_widths
from components.search.lut import DeviceGraph, build_table_with

# Each table entry's median is known to +-2% (cpu-1thread's precision) of a network of about the
# full one's latency, so the difference of two entries is uncertain to about 2% of the full network.
NOISE = 0.02


def halved(space: SearchSpace) -> SearchSpace:
    """Every layer's channels halved: stem and stages (and with them the hidden widths)."""
    stages = tuple(StageSpec(s.channels // 2, s.blocks, s.stride) for s in space.stages)
    step = space.width_step // 2 if space.width_step % 2 == 0 else space.width_step
    return replace(space, stages=stages, width_step=step)


def step_seconds(step: Any, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def training_steps(
    space: SearchSpace, p: Any, rounds: int = 6, steps: int = 10
) -> dict[str, float]:
    """Median seconds per training step, super-network (ODO widths) vs the full network plainly,
    interleaved in ``rounds`` blocks of ``steps``."""
    torch.manual_seed(0)
    x = torch.randn(64, space.n_mels, space.frames)
    y = torch.randint(space.num_classes, (64,))
    gen = torch.Generator().manual_seed(0)
    supernet, plain = SuperNet(space).train(), SubNetwork(space, space.largest()).train()
    opts = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (supernet, plain)}

    def super_step() -> None:
        widths = sample_widths(space, 64, gen, p.full_fraction, p.smallest_fraction,
                               p.depth_fraction)  # fmt: skip
        loss = F.cross_entropy(supernet(x, widths), y)
        opts[id(supernet)].zero_grad(set_to_none=True)
        loss.backward()
        opts[id(supernet)].step()

    def plain_step() -> None:
        loss = F.cross_entropy(plain(x), y)
        opts[id(plain)].zero_grad(set_to_none=True)
        loss.backward()
        opts[id(plain)].step()

    times: dict[str, list[float]] = {"supernet": [], "plain": []}
    for step in (super_step, plain_step):  # warm-up
        step_seconds(step, 3)
    for _ in range(rounds):
        times["supernet"] += step_seconds(super_step, steps)
        times["plain"] += step_seconds(plain_step, steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = arguments("bench.space", __doc__)
    parser.add_argument("--profile", default="cpu-1thread")
    parser.add_argument(
        "--block",
        choices=["inverted", "bypass"],
        default=None,
        help="another block family than params.yaml's (its stages unchanged)",
    )
    parser.add_argument("--name", default="space", help="bench/results/<name>.json")
    args = parser.parse_args(argv)
    quiet()
    params = load_params(Path("params.yaml"))
    p = params.supernet
    if args.block:
        p = p.model_copy(update={"block": args.block})
    classes = len(classes_of(params.prepare.keywords))
    space = space_from_params(p, params.features.n_mels, num_frames(params.features), classes)
    graph = DeviceGraph(params.features, params.export.opset)
    profile = load_profile(args.profile)
    net = SuperNet(space).eval()
    half_space = halved(space)
    half = SuperNet(half_space).eval()
    archs = math.prod(len(space.width_choices(i)) for i in range(space.num_layers))
    print(
        f"{space.num_layers} searchable layers ({space.block}), {archs:.2e} architectures; "
        f"timing the latency table on '{profile.name}' ...",
        file=sys.stderr,
    )
    table_, _ = build_table_with(net, profile, graph, [], 1)
    # the halved network and the full one, end to end, and the frontend alone, interleaved
    feed = graph.feed()
    frontend = frontend_onnx(ConvLogMelFrontend(params.features), params.features, graph.opset)
    models = {
        "full network": (graph.onnx(net, space.largest()), feed),
        "halved network": (graph.onnx(half, half_space.largest()), feed),
        "all-removed network": (graph.onnx(net, space.smallest()), feed),
        "frontend alone": (frontend, feed),
    }
    lat = measure_many(models, profile)
    full, halfm, base, front = (lat[k].median_ms for k in models)
    rows, verdicts = [], []
    for i in range(space.num_layers):
        ms = table_.layer_ms[i]
        widths = sorted(w for w in ms if w > 0)
        rising = [(a, b) for a, b in itertools.pairwise(widths)
                  if ms[a] > ms[b] + NOISE * table_.info["full_ms"]]  # fmt: skip
        verdicts.append(not rising)
        rows.append([i, space.stage_channels(i), " ".join(f"{w}:{1e3 * ms[w]:.1f}" for w in widths),
                     "yes" if not rising else f"no {rising}"])  # fmt: skip
    print(table(["layer", "channels", "µs added at each width", "falls with width"], rows))
    ratio_e2e, ratio_net = halfm / full, (halfm - front) / (full - front)
    share = (table_.info["full_ms"] - table_.base_ms) / table_.info["full_ms"]
    print(
        f"full network {full:.4f} ms, halved {halfm:.4f} ms: {ratio_e2e:.2f}x end to end, "
        f"{ratio_net:.2f}x without the frontend ({front:.4f} ms; target <= 0.6x); all-removed "
        f"{base:.4f} ms; searchable layers at full width: {share:.0%} of end to end"
    )
    print("training one step (batch 64) ...", file=sys.stderr)
    steps = training_steps(space, p)
    cost = steps["supernet"] / steps["plain"]
    print(
        f"training step: super-network {1e3 * steps['supernet']:.1f} ms, plain "
        f"{1e3 * steps['plain']:.1f} ms: {cost:.2f}x (target <= 1.3x)"
    )
    path = save(args.name, {
        "command": "python -m bench.space " + " ".join(argv or sys.argv[1:]),
        "profile": profile.model_dump(), "space": space.to_dict(),
        "architectures": archs, "searchable_layers": space.num_layers,
        "table": table_.to_dict(), "layers_fall_with_width": verdicts,
        "latency": {k: v.to_dict() for k, v in lat.items()},
        "halved_over_full_end_to_end": ratio_e2e,
        "halved_over_full_without_frontend": ratio_net,
        "searchable_share_at_full_width": share,
        "train_step_seconds": steps, "supernet_step_cost": cost,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
