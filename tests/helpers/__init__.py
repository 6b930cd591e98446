"""Builders shared by the test modules (no test module imports another one; they import these).

- ``spaces``: small search spaces and a super-network with non-trivial weights;
- ``toy_data``: a tiny learnable prepared dataset (banded log-mel features), written in ms;
- ``speech_commands``: small Speech Commands folders of tones, with bad files on request;
- ``kws``: keywords spoken by espeak-ng and a tiny network trained on them (export tests);
- ``federated``: a hand-made model layout and a start model for the federated tests;
- ``fake_grid``: an in-process Flower ``Grid``, and the finetune stage run through it (no Ray);
- ``search``: a stub latency measurer over an exact additive table, the search stage's inputs,
  and a quick device profile for the tests that time real models.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project root (dvc.yaml, params.yaml, configs/)
BIN = Path(sys.executable).parent  # this venv's scripts: edgelearn, dvc, prefect
