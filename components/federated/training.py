"""Local training on one client: PVT's frozen variables, OMC's compressed stores, fused SGD.

The client optimizer is plain SGD applied per variable as soon as its gradient exists (a
post-accumulate-grad hook, or the backward of the decompression for OMC variables), so no
gradient outlives its variable's update and there is no optimizer state; the same engine serves
FedAvg, PVT and OMC so that their memory differs only by what the methods change:

- PVT: a frozen variable has ``requires_grad=False``, so autograd records nothing for it, and
  since the input needs no gradient the graph starts at the lowest trainable layer: nothing below
  it saves activations (tests check this against the saved-tensor count).
- OMC: a compressed variable is not an ``nn.Parameter`` at all; its module's forward pre-hook
  decompresses it, the forward hook drops the copy, and a saved-tensors hook stores a reference to
  the compressed store instead of the float weight, decompressing again in backward. The backward
  of the decompression applies the SGD step to a fresh float copy and recompresses at once (with
  stochastic rounding by default): the client never holds an fp32 master copy. BatchNorm runs with
  frozen running statistics (eval mode): a client's ~20 clips are too few to estimate them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.federated.compression import QuantizedTensor, dequantize, quantize
from components.federated.memory import measure_peak_bytes
from components.model.subnet import SubNetwork, build_subnet

Value = torch.Tensor | QuantizedTensor


@dataclass(frozen=True)
class LocalConfig:
    steps: int
    batch_size: int
    lr: float
    trainable: frozenset[str]
    stochastic_rounding: bool = True
    transform: str = "minmax"
    seed: int = 0
    measure_memory: bool = False  # profile the first step (costs ~0.3 s)


@dataclass
class LocalResult:
    values: dict[str, Value]  # the trained variables as the client stores them (what it uploads)
    examples: int
    loss_first: float
    loss_last: float
    seconds: float
    memory: dict[str, int] = field(default_factory=dict)


class _Slot:
    """One compressed variable: packed codes and its transform, nothing in float."""

    def __init__(self, qt: QuantizedTensor, trainable: bool, owner: ClientModel) -> None:
        self.qt, self.trainable, self.owner = qt, trainable, owner

    def decompress(self) -> torch.Tensor:
        return dequantize(self.qt)

    @torch.no_grad()
    def apply_gradient(self, grad: torch.Tensor) -> None:
        self.owner.note_gradient(grad)
        w = dequantize(self.qt)
        w.add_(grad, alpha=-self.owner.lr)
        self.qt = quantize(w, self.qt.bits, self.owner.transform, self.owner.rounding)


class _Decompress(torch.autograd.Function):
    """``anchor`` (a scalar leaf) puts the decompression in the graph; its backward is the
    variable's optimizer step, so the gradient is consumed where it is produced."""

    @staticmethod
    def forward(ctx: Any, anchor: torch.Tensor, slot: _Slot) -> torch.Tensor:
        ctx.slot = slot
        return slot.decompress()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None]:
        ctx.slot.apply_gradient(grad)
        return None, None


@dataclass(frozen=True)
class _Token:
    """What autograd keeps of a decompressed weight: where to decompress it again."""

    slot: _Slot
    size: torch.Size
    stride: tuple[int, ...]
    offset: int


class ClientModel:
    """A sub-network built from the server's message, with its variables in float or OMC stores."""

    def __init__(
        self,
        config: Mapping[str, Any],
        state: Mapping[str, Value],
        trainable: frozenset[str] = frozenset(),
        lr: float = 0.0,
        transform: str = "minmax",
        rounding: torch.Generator | None = None,
    ) -> None:
        self.net: SubNetwork = build_subnet(dict(config)).eval()
        self.lr, self.transform, self.rounding = lr, transform, rounding
        params = dict(self.net.named_parameters())
        floats = {n: t for n, t in self.net.state_dict().items() if torch.is_floating_point(t)}
        if set(state) != set(floats):
            missing, extra = sorted(set(floats) - set(state)), sorted(set(state) - set(floats))
            raise ValueError(f"model state mismatch: missing {missing[:3]}, unknown {extra[:3]}")
        unknown = trainable - set(params)
        if unknown:
            raise ValueError(f"asked to train what is not a variable: {sorted(unknown)[:3]}")
        self.slots: dict[str, _Slot] = {}
        self._module_slots: dict[nn.Module, list[tuple[str, _Slot]]] = {}
        with torch.no_grad():
            for name, value in state.items():
                if isinstance(value, QuantizedTensor):
                    if name not in params:
                        raise ValueError(f"{name}: only variables can arrive compressed")
                    self._detach_parameter(name, _Slot(value, name in trainable, self))
                else:
                    floats[name].copy_(value.reshape(floats[name].shape))
        self.float_trainable = [
            p for n, p in params.items() if n in trainable and n not in self.slots
        ]
        for name, p in params.items():
            p.requires_grad_(name in trainable and name not in self.slots)
        for p in self.float_trainable:
            p.register_post_accumulate_grad_hook(self._sgd_step)
        self.trainable = trainable
        self._anchor = torch.zeros((), requires_grad=True)
        self._live: dict[int, _Slot] = {}
        self._saved: dict[int, int] | None = None
        self._grad_peak = 0

    # --- OMC plumbing ---------------------------------------------------------------------
    def _detach_parameter(self, name: str, slot: _Slot) -> None:
        module_name, attr = name.rsplit(".", 1)
        module = self.net.get_submodule(module_name)
        del module._parameters[attr]
        setattr(module, attr, None)
        self.slots[name] = slot
        if module not in self._module_slots:
            self._module_slots[module] = []
            module.register_forward_pre_hook(self._materialize)
            module.register_forward_hook(self._release)
        self._module_slots[module].append((attr, slot))

    def _materialize(self, module: nn.Module, args: Any) -> None:
        for attr, slot in self._module_slots[module]:
            w = _Decompress.apply(self._anchor, slot) if slot.trainable else slot.decompress()
            setattr(module, attr, w)
            self._live[w.untyped_storage().data_ptr()] = slot

    def _release(self, module: nn.Module, args: Any, output: Any) -> None:
        for attr, _ in self._module_slots[module]:
            w = getattr(module, attr)
            self._live.pop(w.untyped_storage().data_ptr(), None)
            setattr(module, attr, None)  # the float copy dies here unless autograd holds a view

    def _pack(self, t: torch.Tensor) -> Any:
        ptr = t.untyped_storage().data_ptr()
        slot = self._live.get(ptr)
        if slot is not None:
            return _Token(slot, t.size(), t.stride(), int(t.storage_offset()))
        if self._saved is not None and ptr not in self._state_ptrs:
            self._saved[ptr] = t.untyped_storage().nbytes()
        return t

    @staticmethod
    def _unpack(x: Any) -> torch.Tensor:
        if isinstance(x, _Token):
            return x.slot.decompress().as_strided(x.size, x.stride, x.offset)
        return x

    # --- training -------------------------------------------------------------------------
    def note_gradient(self, grad: torch.Tensor) -> None:
        self._grad_peak = max(self._grad_peak, grad.untyped_storage().nbytes())

    @torch.no_grad()
    def _sgd_step(self, p: torch.Tensor) -> None:
        assert p.grad is not None
        self.note_gradient(p.grad)
        p.add_(p.grad, alpha=-self.lr)
        p.grad = None

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            loss = F.cross_entropy(self.net(x), y)
        if loss.requires_grad:
            loss.backward()
        return float(loss.detach())

    def train(self, x: torch.Tensor, y: torch.Tensor, cfg: LocalConfig) -> LocalResult:
        """``cfg.steps`` SGD steps on mini-batches drawn epoch by epoch from ``(x, y)``."""
        start = time.perf_counter()
        g = torch.Generator().manual_seed(cfg.seed)
        n, bs = len(y), min(cfg.batch_size, len(y))
        order: list[int] = []
        losses = []
        memory: dict[str, int] = {}
        for step in range(cfg.steps):
            while len(order) < bs:
                order += torch.randperm(n, generator=g).tolist()
            idx, order = order[:bs], order[bs:]
            xb, yb = x[idx], y[idx]
            if step == 0:
                self._state_ptrs = {
                    t.untyped_storage().data_ptr() for t in self.net.state_dict().values()
                }
                self._saved, self._grad_peak = {}, 0
                if cfg.measure_memory:
                    loss, memory["peak_bytes"] = measure_peak_bytes(partial(self._step, xb, yb))
                else:
                    loss = self._step(xb, yb)
                memory.update(self.memory_breakdown())
                self._saved = None
            else:
                loss = self._step(xb, yb)
            losses.append(loss)
        return LocalResult(
            values=self.trained_values(),
            examples=n,
            loss_first=losses[0] if losses else float("nan"),
            loss_last=losses[-1] if losses else float("nan"),
            seconds=time.perf_counter() - start,
            memory=memory,
        )

    def memory_breakdown(self) -> dict[str, int]:
        """Bytes by kind, from the tensors themselves (the first step's saved activations)."""
        params = dict(self.net.named_parameters())
        buffers = [t for t in self.net.buffers() if torch.is_floating_point(t)]
        return {
            "param_bytes": sum(p.untyped_storage().nbytes() for p in params.values())
            + sum(s.qt.nbytes for s in self.slots.values()),
            "buffer_bytes": sum(b.untyped_storage().nbytes() for b in buffers),
            "grad_bytes": self._grad_peak,  # fused SGD: one variable's gradient at a time
            "optimizer_state_bytes": 0,  # plain SGD keeps none
            "saved_activation_bytes": sum((self._saved or {}).values()),
        }

    def trained_values(self) -> dict[str, Value]:
        params = dict(self.net.named_parameters())
        out: dict[str, Value] = {}
        for name in sorted(self.trainable):
            out[name] = self.slots[name].qt if name in self.slots else params[name].detach().clone()
        return out


@torch.no_grad()
def materialize(config: Mapping[str, Any], state: Mapping[str, Value]) -> SubNetwork:
    """A plain float sub-network (eval mode) holding ``state``, compressed entries decompressed."""
    net = build_subnet(dict(config))
    floats = {n: t for n, t in net.state_dict().items() if torch.is_floating_point(t)}
    for name, value in state.items():
        v = dequantize(value) if isinstance(value, QuantizedTensor) else value
        floats[name].copy_(v.reshape(floats[name].shape))
    return net.eval()


@torch.no_grad()
def count_correct(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> int:
    net.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct
