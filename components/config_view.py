"""What one stage may read of the params: the keys its ``dvc.yaml`` entry declares, nothing else.

``restrict`` wraps the frozen ``Params`` in a ``ParamsView`` that raises ``UndeclaredParamError``
(naming the stage and the key) on anything undeclared, so a stage cannot depend on a value that
DVC does not track for it.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel

from components.config import Params
from components.errors import ConfigError


class UndeclaredParamError(ConfigError):
    """A stage read a parameter that its ``dvc.yaml`` entry does not list (DVC would not rerun it
    when that value changes)."""


class ParamsView:
    """``Params`` as one stage may see it: only the declared keys (``"supernet"`` a whole
    section, ``"search.profile"`` one key) can be read; anything else raises
    ``UndeclaredParamError`` naming the key, so a stage cannot depend on a value that
    ``dvc.yaml`` does not track."""

    def __init__(self, obj: Any, declared: frozenset[str], stage: str, prefix: str = "") -> None:
        self._obj, self._declared, self._stage, self._prefix = obj, declared, stage, prefix

    def __getattr__(self, name: str) -> Any:
        key = f"{self._prefix}{name}"
        value = getattr(self._obj, name)
        parts = key.split(".")
        if any(".".join(parts[:i]) in self._declared for i in range(1, len(parts) + 1)):
            return value
        if isinstance(value, BaseModel) and any(d.startswith(f"{key}.") for d in self._declared):
            return ParamsView(value, self._declared, self._stage, f"{key}.")
        raise UndeclaredParamError(
            f"stage {self._stage!r} reads {key}, which its dvc.yaml entry does not list: add it "
            "under the stage's params (or ${...} it in deps/outs), or stop reading it"
        )

    def __repr__(self) -> str:
        return f"ParamsView({self._stage!r}, {sorted(self._declared)})"


def restrict(params: Params, declared: set[str] | frozenset[str], stage: str) -> Params:
    """A view of ``params`` that lets ``stage`` read only ``declared`` keys (see ParamsView)."""
    for key in declared:
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, BaseModel) or part not in type(node).model_fields:
                raise ConfigError(f"dvc.yaml: stage {stage!r} lists {key}, which params has not")
            node = getattr(node, part)
    return cast(Params, ParamsView(params, frozenset(declared), stage))


def declared_values(params: Params, declared: set[str] | frozenset[str]) -> dict[str, Any]:
    """The declared keys' values as a nested dict (what a stage's MLflow run logs as params)."""
    out: dict[str, Any] = {}
    for key in sorted(declared):
        node: Any = params
        for part in key.split("."):
            node = getattr(node, part)
        value = node.model_dump(mode="json") if isinstance(node, BaseModel) else node
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out
