import numpy as np
import pytest
import torch
from flwr.app import Array, ConfigRecord, RecordDict

from components.federated.compression import QuantizedTensor, quantize
from components.federated.payload import (
    PayloadError,
    decode_payload,
    encode_payload,
    payload_bytes,
)
from tests.helpers.federated import LAYOUT, NET


def full_state() -> dict[str, torch.Tensor]:
    return {n: t.clone() for n, t in NET.state_dict().items() if n in LAYOUT.names}


def test_round_trip_float_and_compressed():
    state = full_state()
    state["body.1.pw.0.weight"] = quantize(state["body.1.pw.0.weight"], 4)
    state["head.weight"] = quantize(state["head.weight"], 4)
    arrays, record = encode_payload(state, LAYOUT)
    assert set(arrays) == {"float", "codes"}
    assert arrays["codes"].numpy().size == (8 * 16 + 12 * 24) // 2  # 4 bits: two codes a byte
    back = decode_payload(arrays, record, LAYOUT)
    assert set(back) == set(state)
    for name, value in state.items():
        if isinstance(value, QuantizedTensor):
            assert torch.equal(back[name].codes, value.codes) and back[name].scale == value.scale
        else:
            assert torch.equal(back[name], value)


def test_partial_payload_and_measured_size():
    values = {"head.bias": torch.arange(12.0)}
    arrays, record = encode_payload(values, LAYOUT)
    assert record["float_ids"] == [LAYOUT.index("head.bias")] and record["code_ids"] == []
    size = payload_bytes(RecordDict({"u": arrays, "l": record}))
    bigger = payload_bytes(
        RecordDict(dict(zip("ul", encode_payload(full_state(), LAYOUT), strict=True)))
    )
    full_floats = 4 * sum(e.numel for e in LAYOUT.entries)
    assert 48 < size < 1500  # 48 bytes of values plus Flower's framing
    assert full_floats < bigger < full_floats + 1500


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a, r: a.__setitem__("float", Array(a["float"].numpy()[:-1].copy())),
         "float values: 11 numbers for entries holding 12"),
        (lambda a, r: r.__setitem__("float_ids", [999]), "must list entry indices"),
        (lambda a, r: r.__setitem__("float_ids", [3, 3]), "an entry appears twice"),
        (lambda a, r: a.__setitem__("float", Array(np.zeros(12, np.float64))),
         "'float' must be a flat float32 array"),
        (lambda a, r: a.__setitem__("codes", Array(np.zeros(3, np.uint8))),
         "codes: 3 bytes but no compressed entry listed"),
    ],
)  # fmt: skip
def test_inconsistent_payloads_are_refused(damage, message):
    arrays, record = encode_payload({"head.bias": torch.zeros(12)}, LAYOUT)
    damage(arrays, record)
    with pytest.raises(PayloadError, match=message.replace("(", r"\(")):
        decode_payload(arrays, record, LAYOUT)


def test_compressed_entry_needs_its_transform():
    arrays, record = encode_payload({"head.weight": quantize(torch.ones(12, 24), 8)}, LAYOUT)
    bad = ConfigRecord({**record, "scale": []})
    with pytest.raises(PayloadError, match="one scale and one offset per compressed entry"):
        decode_payload(arrays, bad, LAYOUT)
    with pytest.raises(PayloadError, match=r"bits must be in 1\.\.8"):
        decode_payload(arrays, ConfigRecord({**record, "bits": 12}), LAYOUT)
