"""The Flower ClientApp: one client speaker's device. Thin: the ML lives in training.py.

Every message carries what the client needs (architecture, full model state, its trainable
variables), so the client keeps nothing between rounds but its own clips. Which clips: the node's
``partition-id`` (Flower's node config) picks the client of the prepared dataset in ``data-dir``.

Simulation: ``make_client_app(data_dir)`` is what ``simulation.py`` hands to Flower's simulation
engine (one Ray actor per worker runs it for many clients in turn).

Real deployment (the same handlers): this module's ``app`` reads ``data-dir`` (a folder in the
layout of ``data/prepared``; ``partition-id`` picks the client there) and ``threads`` from the
SuperNode's node config, e.g. ``--node-config "partition-id=0 data-dir='data/prepared'"``. The
Flower App that names it is ``deploy/flower``; docs/federated-deployment.md has the SuperLink,
SuperNode and ``flwr run`` commands and the TLS and authentication settings a real deployment
needs (tests/integration/test_flower_deployment.py runs them on 127.0.0.1).
"""

from __future__ import annotations

import json
import logging
import time

import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from components.federated import protocol as P
from components.federated.compression import QuantizedTensor, quantize
from components.federated.data import ClientPool, open_pool
from components.federated.faults import forge_update
from components.federated.payload import Value, decode_payload, encode_payload, float_values
from components.federated.training import ClientModel, LocalConfig, count_correct, materialize
from components.federated.variables import ModelLayout
from components.model.subnet import build_subnet

log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """A failure the simulation asked this client to commit."""


_LAYOUTS: dict[str, ModelLayout] = {}


def _layout(arch: str) -> ModelLayout:
    if arch not in _LAYOUTS:
        _LAYOUTS[arch] = ModelLayout.from_model(build_subnet(json.loads(arch)))
    return _LAYOUTS[arch]


def _state(msg: Message, layout: ModelLayout) -> dict[str, Value]:
    content = msg.content
    return decode_payload(P.arrays_of(content, P.MODEL), P.config_of(content, P.LAYOUT), layout)


def _corrupt(
    values: dict[str, Value], fault: str, received: dict[str, Value], seed: int, transform: str
) -> None:
    """Damage the upload the way a broken or malicious client would: NaN, a 1e4 scale, or an
    update forged from the honest one (``faults.forge_update``; OMC entries are compressed again,
    rounded to nearest, so the upload looks like an honest one on the wire)."""
    if fault in P.FORGED:
        forged = forge_update(
            fault, float_values({n: received[n] for n in values}), float_values(values), seed
        )
        for n, v in values.items():
            t = torch.from_numpy(forged[n])
            values[n] = quantize(t, v.bits, transform) if isinstance(v, QuantizedTensor) else t
        return
    name = sorted(values)[0]
    v = values[name]
    if fault == P.NAN:
        if isinstance(v, QuantizedTensor):
            values[name] = QuantizedTensor(v.codes, float("nan"), v.offset, v.bits, v.shape)
        else:
            v[(0,) * v.dim()] = float("nan")  # any memory order (CONV_LAYOUT)
    elif fault == P.HUGE_NORM:
        for n, v in values.items():
            if isinstance(v, QuantizedTensor):
                values[n] = QuantizedTensor(v.codes, v.scale * 1e4, v.offset * 1e4, v.bits, v.shape)
            else:
                v.mul_(1e4)


def _truncate(arrays: ArrayRecord) -> None:
    """A wrong-shape upload: one value short of what the layout declares."""
    for key in ("float", "codes"):
        if key in arrays:
            arrays[key] = Array(arrays[key].numpy()[:-1].copy())
            return


def _device(msg: Message, context: Context, data_dir: str) -> tuple[ClientPool, int]:
    """The pool (split into the server's ``population``) and the device this message is for:
    the one the message names (a simulation's slot node plays many), else the node's own
    (its ``partition-id``)."""
    cfg = P.config_of(msg.content)
    population, seed = P.as_int(cfg.get("population", 0)), P.as_int(cfg.get("pool-seed", 0))
    pool = open_pool(data_dir, population, seed)
    if "device" in cfg:
        return pool, pool.device(P.as_int(cfg["device"]))
    return pool, pool.client_id(int(context.node_config["partition-id"]))


def handle_train(msg: Message, context: Context, data_dir: str, threads: int) -> Message:
    torch.set_num_threads(threads)
    cfg = P.config_of(msg.content)
    fault = str(cfg.get("fault", ""))
    if fault == P.CRASH:
        raise InjectedFault("injected fault: client crashed")
    if fault == P.TIMEOUT:
        time.sleep(P.as_float(cfg["fault-sleep-s"]))  # the reply arrives after the round's deadline
    pool, client = _device(msg, context, data_dir)
    layout = _layout(str(cfg["arch"]))
    state = _state(msg, layout)
    trainable = frozenset(layout.names[i] for i in P.as_ints(cfg["trainable"]))
    seed = P.as_int(cfg["seed"])
    stochastic = bool(cfg["stochastic-rounding"])
    local = LocalConfig(
        steps=P.as_int(cfg["local-steps"]),
        batch_size=P.as_int(cfg["batch-size"]),
        lr=P.as_float(cfg["lr"]),
        trainable=trainable,
        stochastic_rounding=stochastic,
        transform=str(cfg["transform"]),
        seed=seed,
        measure_memory=bool(cfg["measure-memory"]),
    )
    rounding = torch.Generator().manual_seed(seed + 1) if stochastic else None
    model = ClientModel(
        json.loads(str(cfg["arch"])), state, trainable, local.lr, local.transform, rounding
    )
    x, y = pool.clips(client, "train")
    result = model.train(x, y, local)
    values = result.values
    if fault in (P.NAN, P.HUGE_NORM, *P.FORGED):
        _corrupt(values, fault, state, seed, local.transform)
    arrays, layout_record = encode_payload(values, layout)
    if fault == P.BAD_SHAPE:
        _truncate(arrays)
    metrics = MetricRecord(
        {"client": client, "num-examples": result.examples, "loss-first": result.loss_first,
         "loss-last": result.loss_last, "train-seconds": result.seconds, **result.memory}
    )  # fmt: skip
    content = RecordDict({P.UPDATE: arrays, P.LAYOUT: layout_record, P.METRICS: metrics})
    return Message(content, reply_to=msg)


def handle_evaluate(msg: Message, context: Context, data_dir: str, threads: int) -> Message:
    torch.set_num_threads(threads)
    cfg = P.config_of(msg.content)
    pool, client = _device(msg, context, data_dir)
    layout = _layout(str(cfg["arch"]))
    state = _state(msg, layout)
    net = materialize(json.loads(str(cfg["arch"])), state)
    x, y = pool.clips(client, "test")
    metrics = MetricRecord(
        {"client": client, "num-examples": len(y), "correct": count_correct(net, x, y)}
    )
    return Message(RecordDict({P.METRICS: metrics}), reply_to=msg)


def handle_query(msg: Message, context: Context, data_dir: str) -> Message:
    pool, client = _device(msg, context, data_dir)
    n_train, n_test = pool.counts(client)
    metrics = MetricRecord({"client": client, "num-train": n_train, "num-test": n_test})
    return Message(RecordDict({P.METRICS: metrics}), reply_to=msg)


def make_client_app(data_dir: str, threads: int = 1) -> ClientApp:
    """The ClientApp for simulations: every node reads its clips from ``data_dir``."""
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return handle_query(msg, context, data_dir)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return handle_train(msg, context, data_dir, threads)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return handle_evaluate(msg, context, data_dir, threads)

    return app


# Deployment: each SuperNode names its data folder in its node config (see the module docstring).
app = ClientApp()


def _node_dir(context: Context) -> str:
    return str(context.node_config.get("data-dir", "data/prepared"))


@app.query()
def _query(msg: Message, context: Context) -> Message:
    return handle_query(msg, context, _node_dir(context))


@app.train()
def _train(msg: Message, context: Context) -> Message:
    return handle_train(
        msg, context, _node_dir(context), int(context.node_config.get("threads", 1))
    )


@app.evaluate()
def _evaluate(msg: Message, context: Context) -> Message:
    return handle_evaluate(
        msg, context, _node_dir(context), int(context.node_config.get("threads", 1))
    )
