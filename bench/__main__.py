"""``python -m bench``: list the benchmarks and how to run one."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHES = {"common", "__main__"}


def summary(name: str) -> str:
    """The first sentence of a bench module's docstring, read without importing it (no torch)."""
    doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name not in NOT_BENCHES)
    width = max(map(len, names))
    print("usage: python -m bench.NAME [--help]   (writes bench/results/NAME.json)\n")
    for name in names:
        print(f"  {name.ljust(width)}  {summary(name)}")


if __name__ == "__main__":
    main()
