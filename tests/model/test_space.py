"""The search space: widths, validation, serialization and multiply-accumulate counts."""

import pytest

from components.config import SupernetParams
from components.model.space import (
    SearchSpace,
    StageSpec,
    count_macs,
    layer_macs,
    random_architectures,
    space_from_params,
)
from tests.helpers.spaces import INVERTED_SPACE, SMALL_SPACE, TINY_SPACE


def test_layers_and_width_choices():
    assert SMALL_SPACE.layer_channels == [16, 16, 24, 24]
    assert SMALL_SPACE.num_layers == 4
    assert SMALL_SPACE.width_choices(2) == [0, 8, 16, 24]
    assert (SMALL_SPACE.largest(), SMALL_SPACE.smallest()) == ([16, 16, 24, 24], [0, 0, 0, 0])


def test_space_rejects_bad_widths_and_channels():
    with pytest.raises(ValueError, match="expected 4 widths"):
        SMALL_SPACE.validate([8, 8])
    with pytest.raises(ValueError, match=r"layer 1: width 12 not in \[0, 8, 16\]"):
        SMALL_SPACE.validate([8, 12, 8, 8])
    with pytest.raises(ValueError, match="layer width 12 not a multiple of 8"):
        SearchSpace(stages=(StageSpec(12, 1),))
    with pytest.raises(ValueError, match="layer width 36 not a multiple of 8"):
        SearchSpace(stages=(StageSpec(12, 1),), block="inverted", expand=3)
    with pytest.raises(ValueError, match="block 'dense' is not one of bypass, inverted"):
        SearchSpace(block="dense")
    with pytest.raises(ValueError, match="expand applies to inverted blocks only"):
        SearchSpace(expand=2)


def test_space_round_trips_through_a_dict():
    assert SearchSpace.from_dict(SMALL_SPACE.to_dict()) == SMALL_SPACE
    assert TINY_SPACE.to_dict()["stem_stride"] == [2, 2]  # lists: JSON has no tuples


def test_layer_macs_exact():
    # TINY_SPACE: 8 x 12 input; the (5, 3) stem at stride 2 gives 4 x 6 x 16 channels
    macs = layer_macs(TINY_SPACE, [8, 0, 16])
    assert macs == {
        "stem": 4 * 6 * 16 * 5 * 3,  # 5760
        "block0": 4 * 6 * (16 * 9 + 16 * 8),  # depthwise 3x3 + pointwise to 8 channels: 6528
        "block1": 0,  # removed
        "transition1": 2 * 3 * (16 * 9 + 16 * 16),  # stride 2: 2 x 3, 2400
        "block2": 2 * 3 * (16 * 9 + 16 * 16),  # 2400
        "head": 16 * 3,
    }
    assert count_macs(TINY_SPACE, [8, 0, 16]) == 17136


def test_random_architectures_are_seeded_and_valid():
    archs = random_architectures(SMALL_SPACE, 20, seed=3)
    assert archs == random_architectures(SMALL_SPACE, 20, seed=3)
    assert archs != random_architectures(SMALL_SPACE, 20, seed=4)
    assert all(SMALL_SPACE.validate(a) == a for a in archs)


def test_space_from_params_takes_the_stages_and_the_input_shape():
    p = SupernetParams.model_validate(
        {"stages": [{"channels": 16, "blocks": 2}, {"channels": 24, "blocks": 2, "stride": 2}],
         "stem_stride": [2, 4], "block": "bypass", "width_step": 8}
    )  # fmt: skip
    assert space_from_params(p, 40, 101, 12) == SMALL_SPACE
    inverted = p.model_copy(update={"block": "inverted", "expand": 2})
    assert space_from_params(inverted, 40, 101, 12) == INVERTED_SPACE
    assert INVERTED_SPACE.layer_channels == [32, 32, 48, 48]
    assert INVERTED_SPACE.stage_channels(2) == 24
