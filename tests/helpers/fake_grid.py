"""An in-process Flower ``Grid`` for tests: each node is a function that answers messages.

It implements every abstract method of ``flwr.serverapp.Grid``; the strategy and
``run_federation`` call ``get_node_ids`` and ``send_and_receive``. Messages are handed over as
Python objects (no serialization). A node that returns ``None`` sends no reply (a client that
timed out); one that raises gets Flower's error reply, with the reason Flower's runtimes write
(``"<class 'T'>:<'message'>"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flwr.app import Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run

Node = Callable[[Message], Message | None]


class FakeGrid(Grid):
    def __init__(self, nodes: dict[int, Node]) -> None:
        self.nodes = nodes
        self.sent: list[Message] = []  # every message pushed, in order
        self._run = Run.create_empty(run_id=1)
        self._replies: dict[str, Message] = {}
        self._next_id = 0

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            self._next_id += 1
            # the metadata a SuperLink fills in (as Flower's InMemoryGrid does)
            msg.metadata.__dict__["_run_id"] = self._run.run_id
            msg.metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
            msg.metadata.__dict__["_message_id"] = f"m{self._next_id}"
            self.sent.append(msg)
            try:
                reply = self.nodes[msg.metadata.dst_node_id](msg)
            except Exception as ex:  # noqa: BLE001 - Flower's runtimes report any error to the server
                reason = str(type(ex)) + ":<'" + str(ex) + "'>"
                reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=msg)
            if reply is not None:
                self._replies[msg.metadata.message_id] = reply
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))

    def sent_of_type(self, message_type: str) -> list[Message]:
        return [m for m in self.sent if m.metadata.message_type == message_type]


def simulate_in_process(monkeypatch) -> None:
    """Make ``components.federated.stage.run`` run its federation here, without Ray: the
    ServerApp's body gets a ``FakeGrid`` whose node ``100 + k`` is the real ClientApp with
    ``partition-id`` k, as Flower's simulation engine would give it."""
    from flwr.app import Context, RecordDict

    from components.federated import stage

    def simulate(server_main, client_app, num_clients, sim) -> None:
        contexts = {100 + k: Context(1, 100 + k, {"partition-id": k}, RecordDict(), {})
                    for k in range(num_clients)}  # fmt: skip
        server_main(FakeGrid({n: (lambda msg, n=n: client_app(msg, contexts[n]))
                              for n in contexts}))  # fmt: skip

    monkeypatch.setattr(stage, "make_server_app", lambda main: main)
    monkeypatch.setattr(stage, "simulate", simulate)
