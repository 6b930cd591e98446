"""Export benchmark: model sizes, ONNX Runtime vs PyTorch parity, fp32/int8 accuracy, latency.

Runs the export stage's own code on the trained model and prepared data into a scratch folder
(the stage's outputs under export/ are left alone), then exports the naive graph too (the training
frontend's torch.stft as ONNX's STFT operator) to show why the shipped frontend differs.

    python -m bench.export [--params params.yaml] [--profile cpu-1thread] [--model PATH]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import arguments, quiet, save, table
from components.config import Params, load_params
from components.data.prepared import load_prepared
from components.export import stage
from components.export.graph import AudioClassifier, export_onnx
from components.export.verify import audio_batches, ort_scores, ort_session, parity, torch_scores
from components.features import LogMelFrontend
from components.latency import DeviceProfile, load_profile, measure
from components.model.checkpoint import load_subnet
from flows.tracking import git_commit


def kb(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def naive_stft_graph(
    params: Params, workdir: Path, out: Path, profile: DeviceProfile
) -> dict[str, float]:
    """The training module exported as is: torch.stft -> ONNX STFT."""
    net = load_subnet(workdir / params.paths.final)
    model = AudioClassifier(LogMelFrontend(params.features), net).eval()
    out.write_bytes(export_onnx(model, params.features.clip_samples, params.export.opset)
                    .SerializeToString())  # fmt: skip
    data = load_prepared(workdir / params.paths.prepared)
    rows = np.concatenate(list(stage.test_rows(data).values()))
    got = ort_scores(ort_session(str(out)), audio_batches(data.audio, rows))
    ref = torch_scores(model, audio_batches(data.audio, rows))
    p = parity(got, ref)
    example = next(audio_batches(data.audio, rows[:1]))
    latency = measure(str(out), {"audio": example}, profile, what="ONNX STFT graph")
    return {"parity": p.max_abs_diff, "agree": p.label_agreement_pct,
            "latency_ms": latency.median_ms, "bytes": out.stat().st_size}  # fmt: skip


def main() -> None:
    parser = arguments("bench.export", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--profile", default=None, help="device profile (default: the first of search.profiles)"
    )
    parser.add_argument("--model", default=None, help="sub-network file (default: paths.final)")
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    if args.model:
        params = params.model_copy(
            update={"paths": params.paths.model_copy(update={"final": args.model})}
        )
    profiles = [args.profile] if args.profile else params.search.profiles[:1]  # the primary's
    params = params.model_copy(
        update={"search": params.search.model_copy(update={"profiles": profiles})}
    )
    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="edgelearn-bench-export-") as tmp:
        work = Path(tmp)
        for rel in (params.paths.prepared, params.paths.final):
            if Path(rel).is_absolute():  # read in place (work / rel is rel itself)
                continue
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).symlink_to((root / rel).resolve())
        print(f"exporting {params.paths.final} (profile {params.search.profiles[0]}) ...",
              flush=True)  # fmt: skip
        result = stage.run(params, work, {"git_commit": git_commit(root)["git.commit"]})
        print("exporting the naive torch.stft graph for comparison ...", flush=True)
        profile = load_profile(params.search.profiles[0])
        naive = naive_stft_graph(params, work, work / "naive.onnx", profile)
    m = result.metrics

    print()
    print(table(
        ["model", "bytes", "size"],
        [["ONNX fp32 (model.onnx)", m["onnx_bytes"], kb(m["onnx_bytes"])],
         ["ONNX int8 (model.int8.onnx)", m["int8_bytes"], kb(m["int8_bytes"])],
         ["int8 / fp32", "", f"{m['int8_bytes'] / m['onnx_bytes']:.2f}x"]],
    ))  # fmt: skip
    print()
    print(table(
        ["parity, ONNX Runtime fp32 vs PyTorch", "test clips", "max abs diff logits",
         "max abs diff probabilities", "same label %"],
        [["shipped graph (DFT as Conv)", m["test_clips"],
          f"{m['parity_logits_max_abs_diff']:.2e}",
          f"{m['parity_probabilities_max_abs_diff']:.2e}",
          f"{m['parity_label_agreement_pct']:.2f}"],
         ["naive graph (ONNX STFT op)", m["test_clips"], f"{naive['parity']:.2e}", "",
          f"{naive['agree']:.2f}"]],
    ))  # fmt: skip
    print()
    print(table(
        ["test accuracy %", "all test clips", "server test", "client test"],
        [[name, f"{m[f'{k}_test_acc']:.2f}"]
         + ([f"{m[f'{k}_server_test_acc']:.2f}", f"{m[f'{k}_client_test_acc']:.2f}"]
            if k != "torch" else ["", ""])
         for name, k in (("PyTorch", "torch"), ("ONNX fp32", "fp32"), ("ONNX int8", "int8"))],
    ))  # fmt: skip
    print(f"int8 vs fp32: same label on {m['int8_label_agreement_pct']:.2f}% of test clips, "
          f"{m['int8_test_acc'] - m['fp32_test_acc']:+.2f} points")  # fmt: skip
    print()
    lat = result.latency
    print(table(
        ["batch 1 latency, " + params.search.profiles[0], "median ms", "p10 ms", "p90 ms", "ratio"],
        [["PyTorch eager", f"{lat['torch']['median_ms']:.3f}", f"{lat['torch']['p10_ms']:.3f}",
          f"{lat['torch']['p90_ms']:.3f}", ""],
         ["ONNX fp32", f"{lat['fp32']['median_ms']:.3f}", f"{lat['fp32']['p10_ms']:.3f}",
          f"{lat['fp32']['p90_ms']:.3f}",
          f"{lat['fp32']['median_ms'] / lat['torch']['median_ms']:.2f}x of PyTorch"],
         ["ONNX int8", f"{lat['int8']['median_ms']:.3f}", f"{lat['int8']['p10_ms']:.3f}",
          f"{lat['int8']['p90_ms']:.3f}",
          f"{lat['int8']['median_ms'] / lat['fp32']['median_ms']:.2f}x of fp32"],
         ["ONNX fp32, naive STFT graph", f"{naive['latency_ms']:.3f}", "", "",
          f"{naive['latency_ms'] / lat['fp32']['median_ms']:.2f}x of shipped fp32"]],
    ))  # fmt: skip
    payload = {"metrics": m, "latency": lat, "naive_stft_graph": naive}
    print(f"\nwritten {save('export', payload)}")


if __name__ == "__main__":
    main()
