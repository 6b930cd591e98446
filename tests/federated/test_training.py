import pytest
import torch
import torch.nn.functional as F

from components.federated.compression import QuantizedTensor, dequantize, quantize
from components.federated.training import ClientModel, LocalConfig, materialize
from components.model.subnet import SubNetwork
from tests.helpers.federated import LAYOUT, WIDTHS
from tests.helpers.spaces import SMALL_SPACE
from tests.helpers.toy_data import banded_tensors


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = SubNetwork(SMALL_SPACE, WIDTHS)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    return {n: t.clone() for n, t in net.state_dict().items() if n in LAYOUT.names}


CONFIG = SubNetwork(SMALL_SPACE, WIDTHS).config
X, Y = banded_tensors(12, 0)


def local(trainable, steps=1, lr=0.1, **kw) -> LocalConfig:
    return LocalConfig(steps=steps, batch_size=12, lr=lr, trainable=frozenset(trainable), **kw)


def test_fused_sgd_equals_a_plain_sgd_step():
    state = random_state()
    everything = frozenset(LAYOUT.variables)
    model = ClientModel(CONFIG, state, everything, lr=0.1)
    model.train(X, Y, local(everything))
    ref = materialize(CONFIG, state)
    ref.zero_grad()
    F.cross_entropy(ref(X), Y).backward()
    for name, p in ref.named_parameters():
        expected = p.detach() - 0.1 * p.grad
        assert torch.allclose(model.trained_values()[name], expected, atol=1e-6), name


def test_frozen_variables_stay_and_autograd_starts_at_the_lowest_trainable_layer():
    state = random_state()
    trainable = {"body.2.pw.0.weight", "head.bias"}
    model = ClientModel(CONFIG, state, frozenset(trainable), lr=0.1)
    needs_grad = {}
    for name, module in model.net.named_modules():
        if name in ("stem", "body.0", "body.1", "body.2.dw", "body.2.pw", "head"):
            module.register_forward_hook(
                lambda m, a, out, name=name: needs_grad.__setitem__(name, out.requires_grad)
            )
    result = model.train(X, Y, local(trainable, steps=3))
    assert needs_grad == {"stem": False, "body.0": False, "body.1": False, "body.2.dw": False,
                          "body.2.pw": True, "head": True}  # fmt: skip
    after = dict(model.net.named_parameters())
    for name in LAYOUT.variables:
        changed = not torch.equal(after[name].detach(), state[name])
        assert changed == (name in trainable), name
        assert after[name].grad is None  # gradients never outlive the step
    assert set(result.values) == trainable
    # nothing below body.2.pw is saved for backward: fewer saved bytes than all-variable training
    full = ClientModel(CONFIG, random_state(), frozenset(LAYOUT.variables), lr=0.1)
    saved_all = full.train(X, Y, local(LAYOUT.variables)).memory["saved_activation_bytes"]
    assert 0 < result.memory["saved_activation_bytes"] < saved_all / 2
    assert result.memory["optimizer_state_bytes"] == 0


def compressed_state(names, bits=8):
    state = random_state()
    for n in names:
        state[n] = quantize(state[n], bits)
    return state


def test_omc_update_is_decompress_step_recompress():
    name = "body.2.pw.0.weight"
    state = compressed_state([name])
    before = dequantize(state[name])
    model = ClientModel(CONFIG, state, frozenset([name]), lr=0.5)
    assert name not in dict(model.net.named_parameters())  # no float master copy
    result = model.train(X, Y, local([name], lr=0.5))
    after = result.values[name]
    assert isinstance(after, QuantizedTensor) and after.bits == 8
    ref = materialize(CONFIG, state)
    F.cross_entropy(ref(X), Y).backward()
    grad = dict(ref.named_parameters())[name].grad
    expected = before - 0.5 * grad  # round to nearest (no generator): within half a step
    assert (dequantize(after) - expected).abs().max() <= after.scale / 2 + 1e-6
    assert model.net.get_submodule("body.2.pw.0").weight is None  # the float copy was dropped


def test_omc_training_learns_and_parameter_memory_shrinks():
    weights = [n for n in LAYOUT.variables if len(LAYOUT.entry(n).shape) >= 2]
    everything = frozenset(LAYOUT.variables)
    omc = ClientModel(CONFIG, compressed_state(weights), everything, lr=0.2,
                      rounding=torch.Generator().manual_seed(0))  # fmt: skip
    result = omc.train(X, Y, local(everything, steps=15, lr=0.2))
    assert result.loss_last < result.loss_first
    floats = sum(LAYOUT.entry(n).numel for n in LAYOUT.variables if n not in weights)
    codes = sum(LAYOUT.entry(n).numel for n in weights)
    assert result.memory["param_bytes"] == 4 * floats + codes + 8 * len(weights)
    assert all(isinstance(result.values[n], QuantizedTensor) for n in weights)


def test_measured_peak_covers_what_the_step_holds():
    everything = frozenset(LAYOUT.variables)
    model = ClientModel(CONFIG, random_state(), everything, lr=0.1)
    mem = model.train(X, Y, local(everything, measure_memory=True)).memory
    held = mem["param_bytes"] + mem["saved_activation_bytes"]
    assert held <= mem["peak_bytes"] < 20 * held


def test_bad_state_is_refused():
    state = random_state()
    del state["head.bias"]
    with pytest.raises(ValueError, match=r"missing \['head.bias'\]"):
        ClientModel(CONFIG, state)
    with pytest.raises(ValueError, match="not a variable"):
        ClientModel(CONFIG, random_state(), frozenset(["norm.mean"]))
