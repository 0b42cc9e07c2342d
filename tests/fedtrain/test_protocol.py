"""The secure round's protocol under attack: header schemas, one answer per step, group size, authentication."""

from __future__ import annotations

import numpy as np
import pytest

import fastpaillier as fp
from fedtrain.errors import ProtocolError
from fedtrain.messages import Message
from fedtrain.protocol import blob_index, client_ids_field, int_field
from fedtrain.runner import InProcessTransport, RunConfig, run_rounds, setup_run


def tiny_config(**changes) -> RunConfig:
    values = dict(model="smallcnn", image_size=32, demo_train_per_class=4, demo_test_per_class=2, clients=3,
                  key_bits=512, insecure_keys=True, rounds=1, privacy="paillier", seed=0, batch_size=8,
                  device="cpu", run_id="protocol-test")
    values.update(changes)
    return RunConfig(**values)


class RecordingTransport(InProcessTransport):
    """Keeps every (client, server->client bytes, reply bytes)."""

    def __init__(self, clients) -> None:
        super().__init__(clients)
        self.log: list[tuple[int, bytes, bytes | None]] = []

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        reply = super().deliver(cid, data)
        self.log.append((cid, data, reply))
        return reply


@pytest.fixture(scope="module")
def secure_round(tmp_path_factory):
    """One honest secure round of 3 clients, every message recorded."""
    ctx = setup_run(tiny_config(), tmp_path_factory.mktemp("protocol") / "run")
    transport = RecordingTransport(ctx.clients)
    ctx.transport = transport
    run_rounds(ctx)
    return ctx, transport.log


def sent(log, kind: str) -> list[tuple[int, Message, bytes | None]]:
    """The recorded server->client messages of one kind, parsed, with their replies."""
    out = []
    for cid, data, reply in log:
        message = Message.from_bytes(data)
        if message.kind == kind:
            out.append((cid, message, reply))
    return out


def replies(log, kind: str) -> list[tuple[int, Message]]:
    """The recorded client->server replies of one kind, parsed."""
    return [(cid, Message.from_bytes(reply)) for cid, _, reply in log
            if reply is not None and Message.from_bytes(reply).kind == kind]


def with_field(message: Message, name: str, value) -> bytes:
    return Message(message.kind, message.round, message.sender, {**message.fields, name: value},
                   dict(message.blobs)).to_bytes()


def with_blobs(message: Message, blobs: dict) -> bytes:
    return Message(message.kind, message.round, message.sender, dict(message.fields), blobs).to_bytes()


# -- item 4: the header schema ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chunk\u00b2", "chunk\u0663", "chunk01", "chunk-1", "chunk 1", "chunk+1",
                                  "chunk", "chunk1\n", "chunk3", "xchunk0", "chunk0x"])
def test_blob_index_is_ascii_digits_without_leading_zeros(name):
    with pytest.raises(ProtocolError, match="unexpected blob"):
        blob_index(Message("update", 1, "client:0"), name, "chunk", 3)


def test_blob_index_accepts_canonical_names():
    message = Message("update", 1, "client:0")
    assert [blob_index(message, f"chunk{j}", "chunk", 11) for j in (0, 1, 10)] == [0, 1, 10]


@pytest.mark.parametrize("value", [True, False, 1.9, 1.0, "1", None, [1], {"a": 1}])
def test_integer_fields_are_ints_and_not_bools(value):
    with pytest.raises(ProtocolError, match="'chunk' must be an integer"):
        int_field(Message("share", 1, "client:0", {"chunk": value}), "chunk")


@pytest.mark.parametrize("value", [[], [0, 0], [1, 0], [0, True], [0, 1.0], [0, 5], [-1, 0], "0,1", None])
def test_client_id_lists(value):
    with pytest.raises(ProtocolError, match="'selected'"):
        client_ids_field(Message("round_start", 1, "server", {"selected": value}), "selected", 3)


def test_server_refuses_a_superscript_chunk_name_with_a_protocol_error(secure_round):
    ctx, log = secure_round
    server = ctx.server
    updates = replies(log, "update")
    server._round_state = {"round": 1, "selected": sorted(c for c, _ in updates)}
    bad = {cid: with_blobs(m, {"chunk\u00b2" if name == "chunk0" else name: blob for name, blob in m.blobs.items()})
           for cid, m in updates}
    with pytest.raises(ProtocolError, match="chunk\u00b2"):
        server.on_updates(1, bad)


def test_server_refuses_an_empty_count_array(secure_round):
    ctx, log = secure_round
    server = ctx.server
    pk = ctx.clients[0]._key.public_key
    stats = replies(log, "stats")
    server._round_state = {"round": 1, "selected": sorted(c for c, _ in stats)}
    empty = ctx.clients[0]._key.encrypt(np.zeros(0, dtype=np.int64)).to_bytes()
    bad = {cid: with_blobs(m, {**m.blobs, "count": empty}) for cid, m in stats}
    with pytest.raises(ProtocolError, match="count"):
        server.on_stats(1, bad)
    assert pk.fingerprint


def test_client_refuses_an_empty_count_sum(secure_round):
    ctx, log = secure_round
    cid, message, _ = sent(log, "stats_sum")[0]
    empty = ctx.clients[0]._key.encrypt(np.zeros(0, dtype=np.int64)).to_bytes()
    failure = _client_failures(ctx.clients[cid], with_blobs(message, {**message.blobs, "count": empty}))
    assert failure is None or isinstance(failure, ProtocolError), repr(failure)


@pytest.mark.parametrize("blob", [b"", b"garbage", b"FPAR" + bytes(100)])
def test_fastpaillier_errors_become_protocol_errors_at_the_server(secure_round, blob):
    ctx, log = secure_round
    stats = replies(log, "stats")
    ctx.server._round_state = {"round": 1, "selected": sorted(c for c, _ in stats)}
    bad = {cid: with_blobs(m, {**m.blobs, "maxabs": blob}) for cid, m in stats}
    with pytest.raises(ProtocolError, match="maxabs"):
        ctx.server.on_stats(1, bad)


def test_server_refuses_a_fractional_model_round(secure_round):
    ctx, log = secure_round
    (cid, global_reply), = replies(log, "global")
    with pytest.raises(ProtocolError, match="'model_round' must be an integer"):
        ctx.server.install_global(with_field(global_reply, "model_round", 1.9))
    with pytest.raises(ProtocolError, match="'model_round' must be an integer"):
        ctx.server.install_global(with_field(global_reply, "model_round", True))


BAD_VALUES = [True, 1.9, -1, 10 ** 30, "x", None, [], [0, 0], {"a": 1}]


def _client_failures(client, data: bytes) -> Exception | None:
    """What client.handle raised (None if it replied)."""
    try:
        client.handle(data)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


@pytest.mark.parametrize("kind", ["round_start", "stats_sum", "decrypt_request"])
def test_no_malformed_field_makes_a_client_raise_anything_but_a_protocol_error(secure_round, kind):
    ctx, log = secure_round
    cid, message, _ = sent(log, kind)[0]
    client = ctx.clients[cid]
    names = list(message.fields) + ["round", "sender", "extra"]
    for name in names:
        for value in BAD_VALUES:
            if name == "round":
                if not isinstance(value, int) or isinstance(value, bool):
                    continue
                data = Message(message.kind, value, message.sender, dict(message.fields),
                               dict(message.blobs)).to_bytes()
            elif name == "sender":
                data = Message(message.kind, message.round, str(value), dict(message.fields),
                               dict(message.blobs)).to_bytes()
            else:
                data = with_field(message, name, value)
            failure = _client_failures(client, data)
            assert failure is None or isinstance(failure, ProtocolError), (name, value, repr(failure))
    for name, blob in message.blobs.items():
        for bad in (b"", blob[:-1], blob[:len(blob) // 2], b"\x00" * len(blob)):
            failure = _client_failures(client, with_blobs(message, {**message.blobs, name: bad}))
            assert failure is None or isinstance(failure, ProtocolError), (name, len(bad), repr(failure))
        for renamed in (name + "\u00b2", name.upper(), "chunk01"):
            blobs = {renamed if n == name else n: b for n, b in message.blobs.items()}
            failure = _client_failures(client, with_blobs(message, blobs))
            assert failure is None or isinstance(failure, ProtocolError), (renamed, repr(failure))


# -- item 2: the minimum aggregation size -------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"clients": 2}, "selects 2 clients per round, fewer than --min-clients 3"),
    ({"clients": 4, "fraction": 0.5}, "selects 2 clients"),
    ({"clients": 5, "min_clients": 1}, "--min-clients must be an integer of at least 2"),
    ({"clients": 5, "min_clients": True}, "--min-clients must be an integer"),
    ({"clients": 3, "min_clients": 4}, "fewer than --min-clients 4"),
])
def test_config_refuses_rounds_below_the_minimum(changes, message):
    from fedtrain.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny_config(**changes).validate()


def test_minimum_is_3_by_default_and_2_can_be_chosen():
    assert RunConfig().min_clients == 3
    tiny_config(clients=2, min_clients=2).validate()
    tiny_config(clients=2, privacy="none").validate()  # plain modes show every update to the server anyway


def test_server_refuses_a_selection_below_the_minimum(small_keys):
    from fedtrain.errors import ConfigError
    from fedtrain.server import Server

    with pytest.raises(ConfigError, match="min-clients"):
        Server(num_clients=4, fraction=0.25, seed=0, privacy="paillier", avg="weighted", value_bits=16,
               model_size=3, public_key=small_keys[0])


def test_client_refuses_an_announced_selection_below_its_minimum(secure_round):
    ctx, log = secure_round
    cid, message, _ = sent(log, "round_start")[0]
    client = ctx.clients[cid]
    for selected in ([cid], sorted({cid, (cid + 1) % 3})):
        data = Message("round_start", message.round, "server",
                       {**message.fields, "selected": selected, "leader": selected[0]}, dict(message.blobs)).to_bytes()
        with pytest.raises(ProtocolError, match="fewer than this client's minimum of 3"):
            client.handle(data)
