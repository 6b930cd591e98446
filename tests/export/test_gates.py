"""The export gates: parity stops the stage; int8 ships only when accurate and faster."""

from __future__ import annotations

import math

import pytest

from components.export.gates import (
    SPEED_NOT_CHECKED,
    ExportCheckError,
    Int8Decision,
    check_parity,
    decide_int8,
    refused,
    require_int8,
)
from components.export.verify import Parity


def test_int8_ships_when_within_the_drop_and_faster():
    assert decide_int8(90.0, 89.5, 1.0, 0.8, 1.0, 1.0) == Int8Decision(True, ())
    assert decide_int8(90.0, 89.0, 1.0, 1.0, 1.0, 1.0).shipped  # both limits are inclusive


def test_int8_refused_for_accuracy_names_the_drop_and_the_knob():
    d = decide_int8(90.0, 87.0, 1.0, 0.5, 1.0, 1.0)
    assert not d.shipped and len(d.reasons) == 1
    assert d.reasons[0] == (
        "int8 test accuracy 87.00% is 3.00 points below fp32 (90.00%), more than "
        "export.int8_max_acc_drop = 1"
    )


def test_int8_refused_for_speed_and_for_both():
    d = decide_int8(90.0, 90.0, 1.0, 1.25, 1.0, 1.0)
    assert d.reasons == (
        "int8 runs at 0.80x the speed of fp32 on the device profile (1.2500 vs 1.0000 ms), "
        "below export.int8_min_speedup = 1",
    )
    assert len(decide_int8(90.0, 80.0, 0.5, 0.6, 1.0, 1.0).reasons) == 2


def test_nan_figures_are_refusals():
    assert not decide_int8(90.0, math.nan, 1.0, 0.5, 1.0, 1.0).shipped
    assert not decide_int8(90.0, 90.0, 1.0, 0.0, 1.0, 1.0).shipped


def test_a_device_measured_elsewhere_gets_the_accuracy_gate_only_and_is_told_so():
    nan = math.nan
    d = decide_int8(90.0, 89.5, nan, nan, 1.0, 1000.0, timed=False)
    assert d == Int8Decision(True, (), (SPEED_NOT_CHECKED,))
    assert d.to_dict() == {"shipped": True, "refused_because": [],
                           "not_checked": [SPEED_NOT_CHECKED]}  # fmt: skip
    refused_for_accuracy = decide_int8(90.0, 87.0, nan, nan, 1.0, 1.0, timed=False)
    assert not refused_for_accuracy.shipped and len(refused_for_accuracy.reasons) == 1
    assert "int8_max_acc_drop" in refused_for_accuracy.reasons[0]
    assert decide_int8(90.0, 89.5, 1.0, 0.8, 1.0, 1.0).to_dict()["not_checked"] == []


def test_required_int8_stops_only_when_refused():
    require_int8(Int8Decision(True, ()), "required")
    require_int8(refused("slow"), "auto")
    with pytest.raises(ExportCheckError, match=r"export\.int8 is 'required' but .* refused: slow"):
        require_int8(refused("slow"), "required")


def test_parity_gate_names_both_limits():
    check_parity(Parity(5e-5, 5e-5, 1e-6, 100.0, 10), 1e-4, 99.9)
    with pytest.raises(ExportCheckError, match=r"max \|difference\| of the scores 0.002 "):
        check_parity(Parity(2e-3, 2e-3, 1e-4, 100.0, 10), 1e-4, 99.9)
    with pytest.raises(ExportCheckError, match=r"same label on 90.00%"):
        check_parity(Parity(5e-5, 5e-5, 1e-6, 90.0, 10), 1e-4, 99.9)
