"""Export stage inputs and gates: clear errors that name what is wrong."""

from __future__ import annotations

import pytest

from components.config import params_from_dict
from components.errors import EdgelearnError
from components.export import stage
from components.model.checkpoint import save_subnet
from tests.export import kws


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(EdgelearnError, match=r"models/final\.pt: sub-network file not found"):
        stage.run(params_from_dict({}), tmp_path, {})


def test_missing_prepared_data_is_one_clear_error(tmp_path):
    from components.model.subnet import SubNetwork

    save_subnet(tmp_path / "models/final.pt", SubNetwork(kws.SPACE, kws.WIDTHS))
    with pytest.raises(EdgelearnError, match=r"data/prepared: not a prepared dataset"):
        stage.run(params_from_dict({}), tmp_path, {})
    assert not (tmp_path / "export").exists()


def test_int8_gate_message_names_the_drop_and_the_knob():
    stage.check_int8(90.0, 89.5, 1.0)
    with pytest.raises(stage.ExportCheckError, match=r"int8 test accuracy 87\.00% is 3\.00 points"):
        stage.check_int8(90.0, 87.0, 1.0)
