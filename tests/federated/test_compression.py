import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.federated.compression import (
    QuantizedTensor,
    choose_compressed,
    dequantize,
    pack_bits,
    packed_length,
    quantize,
    unpack_bits,
)


def test_two_bit_codes_are_exact_and_packed_msb_first():
    qt = quantize(torch.tensor([0.0, 1.0, 2.0, 3.0, 1.4]), bits=2)
    assert (qt.offset, qt.scale, qt.bits, qt.shape) == (0.0, 1.0, 2, (5,))
    # codes 0,1,2,3,1 -> 00 01 10 11 | 01 00 00 00
    assert qt.codes.tolist() == [0b00011011, 0b01000000]
    assert qt.nbytes == 2 + 8
    assert dequantize(qt).tolist() == [0.0, 1.0, 2.0, 3.0, 1.0]


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_unpack_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    codes = torch.randint(0, 2**bits, (37,), generator=g)
    packed = pack_bits(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == packed_length(37, bits)
    assert torch.equal(unpack_bits(packed, bits, 37), codes)


def test_nearest_rounding_error_is_at_most_half_a_step():
    w = torch.linspace(-1.0, 2.0, 301)
    for bits in (2, 4, 8):
        qt = quantize(w, bits)
        assert qt.scale == pytest.approx(3.0 / (2**bits - 1), rel=1e-6)
        err = (dequantize(qt) - w).abs().max().item()
        assert err <= qt.scale / 2 + 1e-6


def test_stochastic_rounding_is_within_one_step_and_unbiased():
    w = torch.full((20000,), 0.3)
    w[0], w[1] = 0.0, 1.0  # range [0, 1], 1 bit: levels 0 and 1
    qt = quantize(w, 1, generator=torch.Generator().manual_seed(0))
    values = dequantize(qt)
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert (values - w).abs().max().item() <= qt.scale
    assert values[2:].mean().item() == pytest.approx(0.3, abs=0.01)  # E[q] = w
    nearest = dequantize(quantize(w, 1))
    assert nearest[2:].unique().tolist() == [0.0]  # a small value is lost without it


def test_mse_transform_never_reconstructs_worse_than_minmax():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2000, generator=g)
    w[0] = 12.0  # one outlier stretches the min/max range
    errs = {t: float(((dequantize(quantize(w, 4, t)) - w) ** 2).sum()) for t in ("minmax", "mse")}
    assert errs["mse"] < errs["minmax"]


def test_constant_tensor_and_bad_arguments():
    qt = quantize(torch.full((3, 2), 0.5), 8)
    assert dequantize(qt).tolist() == [[0.5, 0.5]] * 3
    with pytest.raises(ValueError, match=r"bits must be in 1\.\.8"):
        quantize(torch.zeros(3), 9)
    with pytest.raises(ValueError, match="unknown transform"):
        quantize(torch.zeros(3), 8, "log")


def test_choose_compressed_takes_the_largest_weight_matrices_only():
    shapes = {"a.weight": (4, 4), "a.bias": (4,), "b.weight": (8, 4, 1, 1), "c.weight": (2, 2),
              "n.weight": (32,)}  # fmt: skip
    assert choose_compressed(shapes, 1.0) == {"a.weight", "b.weight", "c.weight"}
    assert choose_compressed(shapes, 0.5) == {"b.weight", "a.weight"}  # round(1.5) = 2
    assert choose_compressed(shapes, 0.0) == frozenset()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=64),
    st.integers(1, 8),
)
def test_error_bound_holds_for_any_tensor(values, bits):
    w = torch.tensor(values, dtype=torch.float32)
    qt = quantize(w, bits)
    assert isinstance(qt, QuantizedTensor)
    bound = qt.scale / 2 + 1e-5 * max(1.0, w.abs().max().item())
    assert (dequantize(qt) - w).abs().max().item() <= bound
