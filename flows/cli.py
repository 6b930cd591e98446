"""`edgelearn` command line: run the pipeline, one stage, the schedule, or inspect params."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Before Prefect/MLflow/DVC import: a 2-core machine can need more than Prefect's default 20 s to
# start its ephemeral server, and nothing here may phone home (the machine has no network).
ENV_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "FLWR_TELEMETRY_ENABLED": "0",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
for _key, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

from components.errors import EdgelearnError  # noqa: E402

# stage name -> "module:flow" (imported only when that stage runs, to keep start-up short)
STAGES = {
    "corpus": "flows.corpus:corpus_flow",
    "prepare": "flows.prepare:prepare_flow",
    "supernet": "flows.supernet:supernet_flow",
    "search": "flows.search:search_flow",
    "finetune": "flows.finetune:finetune_flow",
    "export": "flows.export:export_flow",
}
USER_ERROR_EXIT = 2
ERROR_FILE_ENV = "EDGELEARN_ERROR_FILE"


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def cmd_params(args: argparse.Namespace) -> int:
    from components.config import load_params, params_json_schema

    if args.schema:
        print(params_json_schema())
        return 0
    print(load_params(args.params).model_dump_json(indent=2))
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    from components.config import load_params

    load_params(args.params)  # a bad file fails here, with its message, before Prefect starts
    if args.name == "supernet" and os.environ.get("LOCAL_RANK", "0") != "0":
        from flows.supernet import ddp_worker  # a DDP process Lightning started by re-running us

        ddp_worker(args.params)
        return 0
    _load(STAGES[args.name])(params_path=args.params)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from components.config import load_params
    from flows.workspace import SMOKE_PARAMS, create_workspace

    if args.smoke:
        workspace = create_workspace(Path.cwd(), Path(args.workspace), Path(SMOKE_PARAMS))
        print(f"smoke run in {workspace} (params: {SMOKE_PARAMS})")
        os.chdir(workspace)
    load_params("params.yaml")
    if args.if_busy == "stop":  # say so at once, before a Prefect server starts
        from flows.lock import ensure_free

        ensure_free(Path("."))
    from flows.pipeline import pipeline_flow

    results = pipeline_flow(params_path="params.yaml", if_busy=args.if_busy)
    print_summary(results)
    return 0


# The figures the end-of-run summary shows per stage: (metrics key, label, unit).
SUMMARY_FIGURES = {
    "corpus": [("num_clips", "clips", "")],
    "prepare": [("num_train", "server train clips", ""), ("num_clients", "clients", "")],
    "supernet": [("val_acc_full", "full network val", "%"),
                 ("val_acc_median_subnet", "median sub-network val", "%")],
    "search": [("aligned_latency_ms", "searched network (aligned)", " ms"),
               ("latency_budget_ms", "budget", " ms"), ("test_acc", "test", "%")],
    "finetune": [("acc_after", "clients' test", "%"),
                 ("upload_reduction_x", "upload reduction", "x")],
    "export": [("fp32_test_acc", "fp32 test", "%"), ("int8_shipped", "int8 shipped", ""),
               ("fp32_latency_ms", "fp32 on device", " ms")],
}  # fmt: skip


def print_summary(results: list[dict]) -> None:
    """What was built, the headline figures, and where to look next."""
    import json

    from components.config import load_params

    params = load_params("params.yaml")
    total = sum(r["seconds"] for r in results)
    print(f"\nedgelearn pipeline finished in {total:.0f} s")
    for r in results:
        state = "ran" if r["ran"] else "up to date"
        path = Path(params.paths.metrics) / f"{r['stage']}.json"
        numbers = json.loads(path.read_text()) if path.is_file() else {}
        shown = ", ".join(
            f"{label} {numbers[key]:g}{unit}"
            for key, label, unit in SUMMARY_FIGURES.get(r["stage"], [])
            if isinstance(numbers.get(key), int | float)
        )
        print(f"  {r['stage']:<9} {state:<10} {r['seconds']:>7.1f} s  {shown}")
    bundle = Path(params.paths.export) / "bundle"
    parent = results[0].get("mlflow_parent_run_id", "") if results else ""
    print("\nwhere to look next:")
    if Path(params.paths.report).is_file():
        print(f"  {params.paths.report:<38}the run's page (figures, tables, links)")
    if bundle.is_dir():
        print(f"  {str(bundle) + '/':<38}the device bundle (edgelearn predict FILE.wav)")
    print(f"  mlflow ui --backend-store-uri {params.base.tracking_uri}")
    print(f"    then open {_experiment_link(params)}")
    print(f"    (this run: {parent}; report.html links it)")
    print("  dvc metrics show                      every stage's numbers")
    print("  prefect server start                  flow runs, logs and the schedule")


def _experiment_link(params) -> str:
    """The experiment's runs table in the model-training view with the headline columns (a new
    browser would otherwise open MLflow's GenAI view: see flows/report.py)."""
    import mlflow

    from flows.report import experiment_url

    mlflow.set_tracking_uri(params.base.tracking_uri)
    experiment = mlflow.get_experiment_by_name(params.base.experiment)
    return experiment_url("http://127.0.0.1:5000", experiment.experiment_id if experiment else "0")


def cmd_serve(args: argparse.Namespace) -> int:
    from prefect.schedules import Cron

    from components.config import load_params
    from flows.pipeline import pipeline_flow

    schedule = load_params(args.params).schedule
    pipeline_flow.serve(
        name="nightly",
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
        parameters={"params_path": args.params},
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from components.config import load_params
    from flows.report import write_report

    path = write_report(load_params(args.params))
    print(f"wrote {path} (open it in a browser)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    # ONNX Runtime and numpy only, as on the device: this path never imports torch.
    from components.export.predict import predict_files

    return predict_files(args.files, args.bundle, args.int8)


def cmd_evaluate(args: argparse.Namespace) -> int:
    # As predict: ONNX Runtime and numpy only, never torch.
    from components.export.evaluate import evaluate_folder

    return evaluate_folder(args.directory, args.bundle, args.int8)


def cmd_listen(args: argparse.Namespace) -> int:
    # As predict: ONNX Runtime and numpy only, never torch.
    from components.export.listen import listen_file

    return listen_file(args.file, args.bundle, args.int8, args.threshold, args.hop_ms,
                       args.smoothing, args.refractory)  # fmt: skip


def cmd_probe_export(args: argparse.Namespace) -> int:
    from components.config import load_params
    from components.search.probe import export_from_params

    out = Path(args.directory)
    probe = export_from_params(load_params(args.params), out, args.profile, args.width_stride)
    graphs = len(probe["files"])
    print(f"wrote {out}/: {graphs} ONNX graphs for {len(probe['entries'])} latency-table entries "
          f"({len(probe['layers'])} layers, width stride {probe['width_stride']}), probe.json "
          f"(timing settings of '{probe['device']['name']}') and measure.py")  # fmt: skip
    print(f"copy {out}/ to the device; there, with numpy and onnxruntime only (no torch):")
    print(f"  cd {out.name} && python measure.py --out lut.json --device-name NAME")
    print("then copy lut.json back here, set `search.lut_import: lut.json` in params.yaml (or, "
          "for a fleet, list it in `search.profiles`) and run `dvc repro`")  # fmt: skip
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgelearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_params(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
        return p

    p = with_params(sub.add_parser("params", help="validate and print the params, or the schema"))
    p.add_argument("--schema", action="store_true", help="print the JSON schema of params.yaml")
    p.set_defaults(func=cmd_params)

    p = with_params(sub.add_parser("stage", help="run one pipeline stage (what dvc.yaml calls)"))
    p.add_argument("name", choices=sorted(STAGES))
    p.set_defaults(func=cmd_stage)

    p = sub.add_parser("run", help="run the whole pipeline as a Prefect flow over `dvc repro`")
    p.add_argument("--smoke", action="store_true", help="tiny configuration in a scratch workspace")
    p.add_argument("--workspace", default=".edgelearn/smoke", help="where --smoke runs")
    p.add_argument(
        "--if-busy",
        choices=("stop", "wait"),
        default="stop",
        help="when another run holds the workspace: stop at once (default) or wait",
    )
    p.set_defaults(func=cmd_run)

    p = with_params(sub.add_parser("serve", help="serve the pipeline on the cron in params.yaml"))
    p.set_defaults(func=cmd_serve)

    p = with_params(sub.add_parser("report", help="write the HTML page of the latest run"))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="label WAV files with the exported ONNX bundle (no torch)")
    p.add_argument("files", nargs="+", metavar="FILE.wav")
    p.add_argument("--bundle", default="export/bundle", help="bundle folder (default: %(default)s)")
    p.add_argument("--int8", action="store_true", help="run the int8 model instead of fp32")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score the bundle on <label>/<file>.wav clips (no torch)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--bundle", default="export/bundle", help="bundle folder (default: %(default)s)")
    p.add_argument("--int8", action="store_true", help="run the int8 model instead of fp32")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("listen", help="keyword events in a long WAV, as a device hears (no torch)")
    p.add_argument("file", metavar="FILE.wav")
    p.add_argument("--bundle", default="export/bundle", help="bundle folder (default: %(default)s)")
    p.add_argument("--int8", action="store_true", help="run the int8 model instead of fp32")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="smoothed posterior that starts an event (default: the bundle's "
        "detection_threshold, else 0.5)",
    )
    p.add_argument("--hop-ms", type=float, default=100.0, help="window hop (default: %(default)g)")
    p.add_argument(
        "--smoothing",
        type=int,
        default=3,
        help="hops averaged to smooth the posteriors (default: %(default)s)",
    )
    p.add_argument(
        "--refractory",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="no new event this long after one (default: %(default)g)",
    )
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("probe", help="measure a device the pipeline cannot reach")
    probe = p.add_subparsers(dest="probe_command", required=True)
    p = with_params(probe.add_parser(
        "export", help="write the table's graphs and a torch-free measure.py for the device",
    ))  # fmt: skip
    p.add_argument("directory", metavar="DIR", help="the probe folder to write (replaced whole)")
    p.add_argument("--profile", default=None,
                   help="device profile whose timing settings the device uses "
                        "(default: the first of search.profiles)")  # fmt: skip
    p.add_argument("--width-stride", type=positive_int, default=None, metavar="K",
                   help="measure every K-th width (default: search.lut_width_stride)")  # fmt: skip
    p.set_defaults(func=cmd_probe_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from flows.logs import quiet_third_party

    quiet_third_party()
    try:
        return int(args.func(args))
    except EdgelearnError as err:  # a stage that failed in a pipeline keeps its exit code
        return fail(f"edgelearn: error: {err}", getattr(err, "returncode", USER_ERROR_EXIT))
    except KeyboardInterrupt:
        return fail("edgelearn: interrupted; outputs of the stage that was running are as before "
                    "it started (run again to finish)", 130)  # fmt: skip
    except Exception as err:
        logging.getLogger("edgelearn").exception("unexpected error")
        return fail(f"edgelearn: error: unexpected {type(err).__name__}: {err} (a bug: the "
                    "traceback is above; please report it)", 1)  # fmt: skip


def fail(line: str, code: int) -> int:
    """Print the one line that says why, last; a pipeline running this stage reads it from
    ``$EDGELEARN_ERROR_FILE`` to end its own output with it."""
    stop_temporary_prefect_server()
    print(line, file=sys.stderr)
    target = os.environ.get(ERROR_FILE_ENV)
    if target:
        # best effort: after Ctrl-C the pipeline that asked for it may already have gone
        with contextlib.suppress(OSError):
            Path(target).write_text(line.removeprefix("edgelearn: error: ") + "\n")
    return code


def stop_temporary_prefect_server() -> None:
    """Stop the temporary Prefect server now rather than at exit, where its goodbye would print
    after the line that says why the command failed."""
    if "prefect" not in sys.modules:
        return
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
