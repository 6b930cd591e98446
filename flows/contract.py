"""What a stage may read: the params its ``dvc.yaml`` entry lists and the ``${...}`` it uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from components.config import read_yaml
from components.errors import ConfigError

TEMPLATE = re.compile(r"\$\{\s*([\w.]+)\s*\}")


def dvc_stages(workdir: Path = Path(".")) -> dict[str, Any]:
    """The ``stages`` mapping of ``dvc.yaml``, in file order (upstream first)."""
    path = workdir / "dvc.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run edgelearn from the project root")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    stages = data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise ConfigError(f"{path}: no stages")
    return stages


def _templates(node: Any) -> set[str]:
    if isinstance(node, str):
        return set(TEMPLATE.findall(node))
    if isinstance(node, dict):
        return set().union(*(_templates(k) | _templates(v) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(*(_templates(v) for v in node))
    return set()


def declared_keys(stage: str, workdir: Path = Path(".")) -> set[str]:
    """Dotted params keys ``stage`` may read: its ``params`` list (params.yaml entries only) and
    every ``${key}`` in its entry (its paths)."""
    stages = dvc_stages(workdir)
    if stage not in stages:
        raise ConfigError(f"{workdir / 'dvc.yaml'}: no stage {stage!r} (has {', '.join(stages)})")
    entry = stages[stage]
    keys: set[str] = set()
    for item in entry.get("params", []):
        if isinstance(item, str):
            keys.add(item)
        elif isinstance(item, dict) and "params.yaml" in item:
            keys.update(item["params.yaml"] or [])
    return keys | _templates(entry)


def _lookup(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"dvc.yaml: ${{{key}}} is not a key of params.yaml")
        node = node[part]
    return node


def resolve(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with every ``${key}`` replaced by its value in ``values`` (as DVC does)."""
    if isinstance(node, str):
        return TEMPLATE.sub(lambda m: str(_lookup(values, m.group(1))), node)
    if isinstance(node, dict):
        return {resolve(k, values): resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, values) for v in node]
    return node


def resolved_paths(stage: str, field: str, workdir: Path = Path(".")) -> list[str]:
    """The paths of ``stage``'s ``deps``/``outs``/``metrics`` with the templates resolved from
    ``params.yaml`` (DVC's own default params file)."""
    params_file = workdir / "params.yaml"
    values = (read_yaml(params_file.read_text()) or {}) if params_file.is_file() else {}
    entries = dvc_stages(workdir).get(stage, {}).get(field, [])
    out = []
    for entry in entries:
        path = next(iter(entry)) if isinstance(entry, dict) else entry
        out.append(str(resolve(path, values)))
    return out
