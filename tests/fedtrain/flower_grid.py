"""An in-process Flower Grid for the tests: the real ClientApp per node, every message through Flower's serialization.

Flower's simulation engine needs Ray (flwr[simulation]), which the pinned extra does not install; this
Grid runs fedtrain's ServerApp (`serve`) and ClientApp (Flower's ClientApp object, its action routing
and its Context) in this process instead.  Each message is deflated to Flower's object contents and
inflated again, as the SuperLink does, and each node's Context persists between messages as on a
SuperNode, while the ClientApp rebuilds its Client for each message as in a fresh ClientApp process.
"""

from __future__ import annotations

import copy
from uuid import uuid4

import tomllib

from flwr.app import Context, Error, Message, RecordDict
from flwr.app.message import message as flwr_message
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.task_identity import TaskIdentity

from fedtrain.messages import Message as FedMessage
from fedtrain.runner import InProcessTransport

SERVER_NODE_ID = 1 << 60


def over_the_wire(obj):
    """obj deflated to Flower's object contents and inflated again (what a SuperLink transfer does)."""
    objects = get_all_nested_objects(obj)
    contents = {oid: o.deflate() for oid, o in objects.items()}
    return inflate_object_from_contents(obj.object_id, contents)


def app_run_config(app_dir) -> dict:
    """The run config of a Flower App folder, flattened as Flower does ([tool.flwr.app.config])."""
    with open(app_dir / "pyproject.toml", "rb") as fh:
        return dict(tomllib.load(fh)["tool"]["flwr"]["app"]["config"])


class LocalGrid(Grid):
    """Nodes run `app` in this process; `silent(node, message)` True makes a node never answer that message."""

    def __init__(self, app, node_configs: dict[int, dict], run_config: dict, silent=None) -> None:
        self.app = app
        self.contexts = {nid: Context(run_id=7, node_id=nid, node_config=cfg, state=RecordDict(),
                                      run_config=dict(run_config)) for nid, cfg in node_configs.items()}
        self.silent = silent or (lambda node, message: False)
        self.replies: dict[str, Message] = {}
        self.delivered: list[tuple[int, str]] = []  # (node, message type) in order
        self._run = None

    def set_run(self, run):
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            mid = uuid4().hex
            msg.metadata.__dict__["_message_id"] = mid
            ids.append(mid)
            node = msg.metadata.dst_node_id
            self.delivered.append((node, msg.metadata.message_type))
            if self.silent(node, msg):
                continue
            delivered = flwr_message.make_message(copy.copy(msg.metadata), over_the_wire(msg.content))
            TaskIdentity.node_id = node
            try:
                reply = self.app(delivered, self.contexts[node])
            except Exception as exc:  # the ClientApp runtime turns an exception into an error reply
                reply = Message(Error(code=1, reason=f"{type(exc).__name__}: {exc}"), reply_to=delivered)
            finally:
                TaskIdentity.node_id = SERVER_NODE_ID
            if reply.has_content():
                reply = flwr_message.make_message(reply.metadata, over_the_wire(reply.content))
            self.replies[mid] = reply
        return ids

    def pull_messages(self, message_ids):
        return [self.replies.pop(mid) for mid in list(message_ids) if mid in self.replies]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(messages))


class LosingTransport(InProcessTransport):
    """In-process transport on which `cid` goes away at message `kind` of round `round_` (and stays away)."""

    def __init__(self, clients, cid: int, round_: int, kind: str) -> None:
        super().__init__(clients)
        self.lost, self.at, self.gone = cid, (round_, kind), False

    def deliver(self, cid, data):
        message = FedMessage.from_bytes(data)
        if cid == self.lost and (self.gone or (message.round, message.kind) == self.at):
            self.gone = True
            raise ConnectionError("went away")
        return super().deliver(cid, data)


# What a Flower run's metrics must share with the in-process run of the same seed.
COMPARED = ("accuracy", "macro_f1", "train_loss", "test_loss", "survivors", "leader", "selected_clients",
            "dropped", "attempts", "refused", "bytes", "confusion_matrix")


def assert_same_record(ours: dict, theirs: dict) -> None:
    """A Flower round's record against the in-process (unfolded) one of the same round.

    A folded round differs in what folding changes only: no leader of its own and one exchange fewer
    (its model comes back in the next round), and other bytes where its start carried slices.
    """
    folded = ours.get("assembly_deferred") or ours.get("folded_start")
    keys = [k for k in COMPARED if not (folded and k in ("leader", "bytes"))]
    assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}, ours["round"]
    assert ours["exchanges"] == theirs["exchanges"] - (1 if ours.get("assembly_deferred") else 0), ours["round"]
