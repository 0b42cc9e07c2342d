"""FlowerTransport: each exchange of a round is one round trip of Flower Messages through a Grid.

The ServerApp hands the server's messages (client id -> bytes) to the clients' SuperNodes, one
Message per node, and collects the replies until all are in or the deadline has passed.  A reply
that is missing, late, an Error (the ClientApp raised, or Flower found the node gone) or empty is a
missing reply, recorded in `failures`: the Server then drops that client exactly as in-process.
Torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from ..errors import ProtocolError
from ..messages import kind_of
from .common import ARRAY_KEY, HELLO_KEY, HELLO_TYPE, MESSAGE_TYPE, NODE_CLIENT_ID, RECORD_KEY, STYPE, TIMINGS_KEY

POLL_SECONDS = 0.2  # how often the SuperLink is asked for replies (Grid.send_and_receive waits 3 s)
HELLO_TIMEOUT = 60.0  # seconds a node may take to say which client it is (its first ClientApp process starts)


def pack(data: bytes) -> ArrayRecord:
    """A fedtrain message as an ArrayRecord of one uint8 Array."""
    return ArrayRecord({ARRAY_KEY: Array(dtype="uint8", shape=(len(data),), stype=STYPE, data=bytes(data))})


def unpack(content: RecordDict) -> bytes | None:
    """The fedtrain message a Message's content carries (None if it carries none); ProtocolError if malformed."""
    if RECORD_KEY not in content:
        return None
    record = content[RECORD_KEY]
    if not isinstance(record, ArrayRecord) or ARRAY_KEY not in record:
        raise ProtocolError(f"the Flower record {RECORD_KEY!r} carries no fedtrain message")
    array = record[ARRAY_KEY]
    if array.stype != STYPE or array.dtype != "uint8" or len(array.shape) != 1 or array.shape[0] != len(array.data):
        raise ProtocolError(f"the Flower array {ARRAY_KEY!r} is not a fedtrain message (stype {array.stype!r})")
    return bytes(array.data)


def timings_of(content: RecordDict) -> tuple[dict[str, float], dict[str, float]]:
    """(wall, CPU) seconds per phase a ClientApp reported beside its reply."""
    if TIMINGS_KEY not in content:
        return {}, {}
    record = content[TIMINGS_KEY]
    wall = {k: float(v) for k, v in record.items() if not k.startswith("cpu.")}
    cpu = {k[4:]: float(v) for k, v in record.items() if k.startswith("cpu.")}
    return wall, cpu


class FlowerTransport:
    """rounds.Transport over a Flower Grid; `nodes` maps fedtrain client ids to Flower node ids."""

    def __init__(self, grid: Grid, nodes: dict[int, int], *, deadline: float | None = None,
                 group: Callable[[], str] | None = None, events: Callable[..., None] | None = None,
                 clock: Callable[[], float] = time.monotonic, poll: float = POLL_SECONDS) -> None:
        self.grid = grid
        self.nodes = nodes  # the ServerApp refreshes it between rounds
        self.deadline = deadline
        self.group = group or (lambda: "")
        self.events = events or (lambda *a, **k: None)
        self.clock = clock
        self.poll = poll
        self.sent: dict[int, int] = {}
        self.received: dict[int, int] = {}
        self.failures: dict[int, str] = {}
        self._timings: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
        self.exchanges = 0

    def reset(self) -> None:
        self.sent, self.received, self.failures, self._timings = {}, {}, {}, {}

    def client_timings(self, cid: int) -> tuple[dict[str, float], dict[str, float]]:
        return self._timings.get(cid, ({}, {}))

    def exchange(self, outgoing: dict[int, bytes]) -> dict[int, bytes]:
        """Sends one Message per client and returns the replies that came back before the deadline."""
        self.exchanges += 1
        kinds = sorted({_kind(data) for data in outgoing.values()})
        messages, cids = [], []
        for cid, data in outgoing.items():
            node = self.nodes.get(cid)
            if node is None:
                self.failures[cid] = "no Flower node answered as this client"
                continue
            messages.append(Message(RecordDict({RECORD_KEY: pack(data)}), dst_node_id=node,
                                    message_type=MESSAGE_TYPE, group_id=self.group()))
            cids.append(cid)
            self.received[cid] = self.received.get(cid, 0) + len(data)
        self.events("sent", kinds=kinds, clients=sorted(cids), group=self.group())
        ids = list(self.grid.push_messages(messages)) if messages else []
        pending: dict[str, int] = {}
        for cid, mid in zip(cids, ids):
            if mid:
                pending[mid] = cid
            else:
                self.failures[cid] = "Flower could not deliver the message"
        replies: dict[int, bytes] = {}
        end = None if self.deadline is None else self.clock() + self.deadline
        while pending:
            for reply in self.grid.pull_messages(list(pending)):
                cid = pending.pop(reply.metadata.reply_to_message_id, None)
                if cid is None:
                    continue
                self._take(cid, reply, replies)
            if not pending or (end is not None and self.clock() >= end):
                break
            time.sleep(self.poll)
        for cid in pending.values():
            self.failures[cid] = f"no reply within the {self.deadline:g} s deadline"
        self.events("received", kinds=kinds, clients=sorted(replies),
                    failed={str(c): why for c, why in sorted(self.failures.items()) if c in outgoing})
        return replies

    def _take(self, cid: int, reply: Message, replies: dict[int, bytes]) -> None:
        if reply.has_error():
            self.failures[cid] = f"Flower error {reply.error.code}: {reply.error.reason}"
            return
        try:
            data = unpack(reply.content)
        except ProtocolError as exc:
            self.failures[cid] = str(exc)
            return
        self._timings[cid] = timings_of(reply.content)
        if data is None:
            self.failures[cid] = "no reply"
            return
        self.sent[cid] = self.sent.get(cid, 0) + len(data)
        replies[cid] = data


def _kind(data: bytes) -> str:
    return kind_of(data) or "?"


def discover(grid: Grid, num_clients: int, *, run_id: str, timeout: float,
             events: Callable[..., None] | None = None, known: dict[int, int] | None = None,
             clock: Callable[[], float] = time.monotonic, poll: float = 1.0,
             hello_timeout: float = HELLO_TIMEOUT) -> dict[int, int]:
    """Asks each connected node not yet asked which fedtrain client it is, until all `num_clients` are known
    or `timeout` has passed (a node's answer is awaited up to `hello_timeout` seconds even then).

    Returns {client id: node id}, `known` included.  A client id is a claim, not a credential: a node that
    claims another's id cannot sign as it, and the server drops replies that fail the signatures.  The
    first node to claim an id keeps it (of nodes asked together, the one of the lowest node id).
    """
    events = events or (lambda *a, **k: None)
    found: dict[int, int] = dict(known or {})
    asked: set[int] = set(found.values())
    end = clock() + timeout
    while True:
        new = [n for n in grid.get_node_ids() if n not in asked]
        if new and len(found) < num_clients:
            asked.update(new)
            hello = [Message(RecordDict({HELLO_KEY: ConfigRecord({"run-id": run_id})}), dst_node_id=n,
                             message_type=HELLO_TYPE) for n in new]
            replies = _send_and_receive(grid, hello, max(hello_timeout, end - clock()), clock, min(poll, 0.2))
            for reply in sorted(replies, key=lambda m: m.metadata.src_node_id):
                node = reply.metadata.src_node_id
                cid = _claimed_id(reply, num_clients)
                if cid is None:
                    events("hello refused", node=node, error=_why(reply))
                elif cid in found:
                    events("hello duplicate", node=node, client=cid, kept=found[cid])
                else:
                    found[cid] = node
                    events("hello", node=node, client=cid)
        if len(found) == num_clients or clock() >= end:
            return found
        time.sleep(poll)


def refresh(grid: Grid, nodes: dict[int, int], num_clients: int, *, run_id: str,
            events: Callable[..., None] | None = None) -> None:
    """Before a round: forgets the nodes that left (Flower lists online nodes only), asks new ones who they are.

    A hospital whose SuperNode restarted comes back under a new node id and so takes part again.
    """
    events = events or (lambda *a, **k: None)
    online = set(grid.get_node_ids())
    for cid, node in sorted(nodes.items()):
        if node not in online:
            del nodes[cid]
            events("node gone", node=node, client=cid)
    if len(nodes) < num_clients:
        nodes.update(discover(grid, num_clients, run_id=run_id, timeout=0.0, events=events, known=nodes))


def _send_and_receive(grid: Grid, messages: list[Message], timeout: float, clock: Callable[[], float],
                      poll: float) -> Iterable[Message]:
    ids = {mid for mid in grid.push_messages(messages) if mid}
    end = clock() + timeout
    out = []
    while ids:
        got = list(grid.pull_messages(list(ids)))
        out.extend(got)
        ids.difference_update(m.metadata.reply_to_message_id for m in got)
        if not ids or clock() >= end:
            break
        time.sleep(poll)
    return out


def _claimed_id(reply: Message, num_clients: int) -> int | None:
    if reply.has_error() or HELLO_KEY not in reply.content:
        return None
    value: Any = reply.content[HELLO_KEY].get(NODE_CLIENT_ID)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < num_clients:
        return None
    return int(value)


def _why(reply: Message) -> str:
    if reply.has_error():
        return f"Flower error {reply.error.code}: {reply.error.reason}"
    if HELLO_KEY in reply.content:
        return f"client id {reply.content[HELLO_KEY].get(NODE_CLIENT_ID)!r} is not one of this run's"
    return "no client id in the reply"
