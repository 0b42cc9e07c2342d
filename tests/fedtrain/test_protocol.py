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
    records = run_rounds(ctx)
    ctx.records = records
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
    server._round_state = {"round": 1, "selected": sorted(c for c, _ in updates), "dropped": {}}
    bad = {cid: with_blobs(m, {"chunk\u00b2" if name == "chunk0" else name: blob for name, blob in m.blobs.items()})
           for cid, m in updates}
    with pytest.raises(ProtocolError, match="chunk\u00b2"):
        server.on_updates(1, bad)


def test_server_refuses_an_empty_count_array(secure_round):
    ctx, log = secure_round
    server = ctx.server
    pk = ctx.clients[0]._key.public_key
    stats = replies(log, "stats")
    server._round_state = {"round": 1, "selected": sorted(c for c, _ in stats), "dropped": {}}
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
    assert failure is None, repr(failure)


@pytest.mark.parametrize("blob", [b"", b"garbage", b"FPAR" + bytes(100)])
def test_fastpaillier_errors_become_protocol_errors_at_the_server(secure_round, blob):
    ctx, log = secure_round
    stats = replies(log, "stats")
    ctx.server._round_state = {"round": 1, "selected": sorted(c for c, _ in stats), "dropped": {}}
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
def test_no_malformed_field_makes_a_key_holding_client_raise(secure_round, kind):
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
            assert failure is None, (name, value, repr(failure))
    for name, blob in message.blobs.items():
        for bad in (b"", blob[:-1], blob[:len(blob) // 2], b"\x00" * len(blob)):
            failure = _client_failures(client, with_blobs(message, {**message.blobs, name: bad}))
            assert failure is None, (name, len(bad), repr(failure))
        for renamed in (name + "\u00b2", name.upper(), "chunk01"):
            blobs = {renamed if n == name else n: b for n, b in message.blobs.items()}
            failure = _client_failures(client, with_blobs(message, blobs))
            assert failure is None, (renamed, repr(failure))


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


# -- item 1: one answer per step, no accept/reject oracle --------------------------------------


class ScriptedServer:
    """A malicious server: the honest server's messages, delivered and altered at will, one step at a time."""

    def __init__(self, tmp_path, **changes) -> None:
        self.ctx = setup_run(tiny_config(**changes), tmp_path / "run")
        self.server, self.clients = self.ctx.server, self.ctx.clients
        self.pk = self.clients[0]._key.public_key
        self.sk = self.clients[0]._key  # the test's view of the shared key, to show what replies hold

    def deliver(self, cid: int, data: bytes) -> bytes:
        reply = self.clients[cid].handle(data)  # never raises: that is part of what is tested
        assert reply is not None
        return reply

    def round_start(self, selected: list[int] | None = None) -> dict[int, bytes]:
        outgoing = self.server.start_round(1)
        if selected is not None:
            message = Message.from_bytes(next(iter(outgoing.values())))
            data = with_field(Message(message.kind, 1, "server",
                                      {**message.fields, "leader": selected[0]}, dict(message.blobs)),
                              "selected", selected)
            outgoing = {cid: data for cid in selected}
        return {cid: self.deliver(cid, data) for cid, data in outgoing.items()}

    def stats(self) -> dict[int, bytes]:
        """Runs the honest round up to the 'stats_sum' messages; returns them (undelivered)."""
        return self.server.on_stats(1, self.round_start())

    def updates(self) -> dict[int, bytes]:
        return {cid: self.deliver(cid, data) for cid, data in self.stats().items()}

    def chunks(self, replies: dict[int, bytes]) -> dict[int, list[np.ndarray]]:
        """The plaintext of each client's update chunks (the test holds the key; the server does not)."""
        out = {}
        for cid, data in replies.items():
            message = Message.from_bytes(data)
            out[cid] = [self.sk.decrypt(fp.EncryptedArray.from_bytes(b, self.pk)) for b in message.blobs.values()]
        return out

    def open_share(self, data: bytes, j: int) -> bytes:
        return self.clients[0]._sealing.open(Message.from_bytes(data).blob("share"), f"share:1:{j}")


def forged_count(script: ScriptedServer, total: int, summands: int = 3) -> bytes:
    """Enc(total) carrying `summands` in its metadata: what a server makes from one ciphertext and Enc(0)s."""
    parts = [script.pk.encrypt(np.array([total]))] + [script.pk.encrypt(np.array([0]))] * (summands - 1)
    return fp.sum_arrays(parts).to_bytes()


def test_count_oracle_is_gone(tmp_path):
    """A sum of counts below the client's own count is answered like any other, with zeros."""
    script = ScriptedServer(tmp_path)
    stats_sum = script.stats()
    honest = script.deliver(1, stats_sum[1])
    message = Message.from_bytes(stats_sum[0])
    own = script.clients[0].num_samples
    probe = with_blobs(message, {**message.blobs, "count": forged_count(script, own - 1)})
    reply = script.deliver(0, probe)
    assert len(reply) == len(honest)
    assert all(np.all(c == 0) for c in script.chunks({0: reply})[0])
    assert any(np.any(c != 0) for c in script.chunks({1: honest})[1])
    assert script.clients[0].refusals and "inconsistent" in script.clients[0].refusals[-1][2]


def test_a_step_is_answered_once(tmp_path):
    """Twenty 'stats_sum' queries in one round: the first is answered, the rest get zeros of the same size."""
    script = ScriptedServer(tmp_path)
    stats_sum = script.stats()
    message = Message.from_bytes(stats_sum[0])
    first = script.deliver(0, stats_sum[0])
    assert any(np.any(c != 0) for c in script.chunks({0: first})[0])
    own = script.clients[0].num_samples
    for total in range(own, own + 20):
        reply = script.deliver(0, with_blobs(message, {**message.blobs, "count": forged_count(script, total)}))
        assert len(reply) == len(first)
        assert all(np.all(c == 0) for c in script.chunks({0: reply})[0])
    assert sum("already answered" in why for _, _, why in script.clients[0].refusals) == 20


def _decrypt_requests(script: ScriptedServer):
    updates = script.updates()
    return updates, script.server.on_updates(1, updates)


def test_decrypt_request_answered_once(tmp_path):
    script = ScriptedServer(tmp_path)
    _, requests = _decrypt_requests(script)
    first = script.deliver(1, requests[1])
    again = script.deliver(1, requests[1])
    assert len(first) == len(again)
    assert script.open_share(first, 1)[:1] == b"\x00" and script.open_share(again, 1)[:1] == b"\x01"
    assert set(script.open_share(again, 1)[1:]) <= {0}


def relabel(array: fp.EncryptedArray, summands: int) -> fp.EncryptedArray:
    """The same ciphertexts with another summand count in their metadata (a server can rewrite those bytes)."""
    return fp.EncryptedArray._wrap(array.public_key, array.ciphertexts, array.shape, codec=array.codec,
                                   summands=summands, dtype=array.dtype)


def test_forged_summands_and_routed_ciphertexts_get_a_reply_like_any_other(tmp_path, secure_round):
    """A's own chunk, or random plaintexts, labelled as a 3-client sum and sent to B: a reply of the usual size."""
    honest = {cid: len(m.to_bytes()) for cid, m in replies(secure_round[1], "share")}
    script = ScriptedServer(tmp_path)
    updates, requests = _decrypt_requests(script)
    a_update = Message.from_bytes(updates[0])
    routed = relabel(fp.EncryptedArray.from_bytes(a_update.blob("chunk1"), script.pk), 3)
    reply = script.deliver(1, with_blobs(Message.from_bytes(requests[1]), {"aggregate": routed.to_bytes()}))
    assert len(reply) == honest[1]
    template = fp.EncryptedArray.from_bytes(a_update.blob("chunk2"), script.pk)
    rows = np.random.default_rng(0).integers(0, 2 ** 63, size=(template.ciphertexts.shape[0], script.pk.n_limbs),
                                             dtype=np.uint64)
    rows[:, -1] = 0  # below n
    noise = script.pk.encrypt_limbs(rows)
    forged = fp.EncryptedArray._wrap(script.pk, noise.ciphertexts, template.shape, codec=template.codec,
                                     summands=3, dtype=template.dtype)
    reply = script.deliver(2, with_blobs(Message.from_bytes(requests[2]), {"aggregate": forged.to_bytes()}))
    assert len(reply) == honest[2]
    assert script.open_share(reply, 2)[:1] == b"\x01"  # the leader learns that the round failed; the server not
    for summands in (1, 2):  # a count other than the selection's: refused (the same reply, again)
        request = with_blobs(Message.from_bytes(requests[0]), {"aggregate": relabel(routed, summands).to_bytes()})
        assert len(script.deliver(0, request)) == honest[0]


def test_a_selection_of_one_is_refused_with_decoys_and_the_model_stays(tmp_path):
    """K = 1: the client answers every step with nothing, and as leader returns the old model, flagged."""
    script = ScriptedServer(tmp_path)
    start = Message.from_bytes(script.server.start_round(1)[0])
    initial = script.ctx.evaluator.open(script.server.global_message())[0]
    replies = script.round_start(selected=[0])
    stats = Message.from_bytes(replies[0])
    assert script.sk.decrypt(fp.EncryptedArray.from_bytes(stats.blob("count"), script.pk))[0] == 0
    assert "minimum" in script.clients[0].refusals[0][2]
    sums = script.server  # the honest server refuses K = 1 itself; the scripted one goes on by hand
    one = fp.EncryptedArray.from_bytes(stats.blob("count"), script.pk)
    maxabs = fp.EncryptedArray.from_bytes(stats.blob("maxabs"), script.pk)
    update = script.deliver(0, Message("stats_sum", 1, "server", {},
                                       {"count": one.to_bytes(), "maxabs": maxabs.to_bytes()}).to_bytes())
    chunk = Message.from_bytes(update)
    share = script.deliver(0, Message("decrypt_request", 1, "server", {"chunk": 0},
                                      {"aggregate": chunk.blobs["chunk0"]}).to_bytes())
    glob = script.deliver(0, Message("shares", 1, "server", {}, {"share0": Message.from_bytes(share).blob("share")}
                                     ).to_bytes())
    opened = script.ctx.evaluator.open_model(glob)
    assert opened.refused and opened.model_round == 1
    np.testing.assert_array_equal(opened.vector, initial)
    assert start.get("selected") == [0, 1, 2] and sums is script.server


def test_a_refused_round_completes_with_the_model_unchanged_and_sizes_unchanged(tmp_path, secure_round):
    """One client refuses (its minimum is 4): the run goes on, the model stays, every message keeps its size."""
    honest_ctx, _ = secure_round
    ctx = setup_run(tiny_config(), tmp_path / "run")
    ctx.clients[2].min_clients = 4
    start = ctx.evaluator.open(ctx.server.global_message())[0]
    (record,) = run_rounds(ctx)
    assert record["refused"] is True and set(record["refusals"]) == {"0", "2"}  # client 2, and the leader
    assert "minimum of 4" in record["refusals"]["2"][0] and "chunks [2]" in record["refusals"]["0"][0]
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0], start)
    assert record["bytes"] == honest_ctx.records[0]["bytes"]
    assert honest_ctx.records[0]["refused"] is False and honest_ctx.records[0]["refusals"] == {}


# -- item 3: per-client authentication ----------------------------------------------------------


def _shares_for_leader(script: ScriptedServer) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """(share replies by client, the honest 'shares' message for the leader)."""
    _, requests = _decrypt_requests(script)
    shares = {cid: script.deliver(cid, data) for cid, data in requests.items()}
    return shares, script.server.on_shares(1, shares)


def test_a_share_forged_by_another_client_is_rejected(tmp_path):
    """Client 2 holds the shared sealing key; a share it makes for chunk 1 does not pass as client 1's."""
    from fedtrain.protocol import share_context

    for why in ("signed by client 2", "fails client 1's signature"):
        script = ScriptedServer(tmp_path / why.split()[0])
        _, requests = _decrypt_requests(script)
        shares = {cid: script.deliver(cid, data) for cid, data in requests.items()}
        size = len(script.open_share(shares[1], 1)) - 1
        forged = script.clients[2]._sealing.seal(b"\x00" + bytes(size), share_context(1, 1))
        if why.startswith("fails"):  # the same bytes, claiming that client 1 signed them
            forged = forged[:-68] + (1).to_bytes(4, "little") + forged[-64:]
        bad = {**shares, 1: with_blobs(Message.from_bytes(shares[1]), {"share": forged})}
        # the honest server drops client 1 for it and asks another survivor to decrypt chunk 1
        retry = script.server.on_shares(1, bad)
        assert script.server.retrying and why in script.server.dropped[1]
        (helper, data), = retry.items()
        assert helper != 1 and Message.from_bytes(data).get("retry_for") == 1
        # a leader handed the forgery (by a malicious server) refuses the round
        blobs = {f"share{j}": Message.from_bytes(bad[c]).blob("share") for j, c in enumerate([0, 1, 2])}
        reply = script.deliver(0, Message("shares", 1, "server", {"decryptors": [0, 1, 2], "leader": 0},
                                          blobs).to_bytes())
        assert script.ctx.evaluator.open_model(reply, sealed_by={0}).refused
        assert any(why in reason for _, _, reason in script.clients[0].refusals)


def test_a_global_model_forged_by_a_client_that_did_not_lead_is_rejected(tmp_path):
    """Client 2 seals a global model of round 1 (led by client 0): the server drops the leader that sends it
    and lets the next survivor lead; the evaluator refuses it."""
    from fedtrain.client import OK
    from fedtrain.messages import vector_to_bytes
    from fedtrain.protocol import global_context

    script = ScriptedServer(tmp_path)
    _, to_leader = _shares_for_leader(script)
    (leader, data), = to_leader.items()
    honest = script.deliver(leader, data)
    evil = np.full(script.clients[2].models.layout.size, 7.0, dtype=np.float32)
    blob = script.clients[2]._sealing.seal(OK + vector_to_bytes(evil), global_context(1))
    forged = Message("global", 1, "client:0", {"model_round": 1}, {"sealed_global": blob}).to_bytes()
    before = script.server.global_message()
    handover = script.server.on_global(1, forged)  # the leader's reply fails: dropped, client 1 leads instead
    assert list(handover) == [1] and "signed by client 2" in script.server.dropped[0]
    assert Message.from_bytes(handover[1]).get("leader") == 1 and script.server.global_message() == before
    with pytest.raises(ProtocolError, match="signed by client 2"):
        script.ctx.evaluator.open_model(forged, sealed_by={0})
    script.server._round_state["leader"] = 0
    assert script.server.on_global(1, honest) == {}


def test_a_global_model_forged_by_a_client_outside_the_round_is_refused_by_its_clients(tmp_path):
    """Four clients, three selected: the one left out seals a model of round 1, a malicious server relays it
    to a client of round 1 in round 2's start; that client refuses it (round 1's survivors sign it only)."""
    from fedtrain.client import OK
    from fedtrain.messages import vector_to_bytes
    from fedtrain.protocol import global_context

    script = ScriptedServer(tmp_path, clients=4, fraction=0.75, demo_train_per_class=6)
    _, to_leader = _shares_for_leader(script)
    (leader, data), = to_leader.items()
    assert script.server.on_global(1, script.deliver(leader, data)) == {}
    selected = script.server.participants
    (outsider,) = set(range(4)) - set(selected)
    evil = np.full(script.clients[outsider].models.layout.size, 7.0, dtype=np.float32)
    blob = script.clients[outsider]._sealing.seal(OK + vector_to_bytes(evil), global_context(1))
    starts = script.server.start_round(2)
    member = next(c for c in selected if c in starts)
    reply = script.deliver(member, with_blobs(Message.from_bytes(starts[member]), {"sealed_global": blob}))
    assert Message.from_bytes(reply).kind == "stats"
    assert f"signed by client {outsider}" in script.clients[member].refusals[-1][2]


def test_each_client_holds_only_its_own_signing_key(secure_round):
    from fedtrain.authentication import Signer

    ctx, _ = secure_round
    for cid, client in ctx.clients.items():
        assert client._sealing.signer.cid == cid
        assert not any(isinstance(v, Signer) and v is not client._sealing.signer for v in vars(client).values())
    assert ctx.server.verifiers is not None and not hasattr(ctx.server.verifiers, "sign")
    assert ctx.evaluator.sealing.signer is None


def test_signature_binds_context_and_signer():
    from fedtrain.authentication import derive_all, new_dealer_secret

    signers, verifiers = derive_all(new_dealer_secret(), run_id="r", num_clients=3)
    blob = signers[1].sign(b"payload", "share:1:1")
    assert verifiers.open(blob, "share:1:1", allowed={1}) == (1, b"payload")
    for context, allowed, why in (("share:1:2", None, "fails"), ("share:1:1", {2}, "signed by client 1")):
        with pytest.raises(ProtocolError, match=why):
            verifiers.open(blob, context, allowed=allowed)
    with pytest.raises(ProtocolError, match="too short"):
        verifiers.open(blob[:10], "share:1:1")
    other_signers, _ = derive_all(new_dealer_secret(), run_id="r", num_clients=3)
    with pytest.raises(ProtocolError, match="fails"):
        verifiers.open(other_signers[1].sign(b"payload", "share:1:1"), "share:1:1")


# -- item 5 (first phase): clients dropped before the sums, the round completes with the rest ----------


class FaultyTransport(InProcessTransport):
    """Injects one fault per (round, client) into the client's first reply of that round."""

    def __init__(self, clients, faults: dict[tuple[int, int], str], deadline: float) -> None:
        self.lag = 0.0
        super().__init__(clients, deadline=deadline, clock=lambda: __import__("time").perf_counter() + self.lag)
        self.faults = faults
        self.other_key = fp.generate_keypair(512, insecure=True)[1]

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        message = Message.from_bytes(data)
        fault = self.faults.get((message.round, cid), "")
        if fault.startswith("decrypt:"):
            return self._decrypt_fault(cid, data, message, fault[len("decrypt:"):])
        if fault.startswith("update:") and message.kind == "stats_sum":
            if fault == "update:dies":
                raise ConnectionResetError(f"client {cid} died before sending its update")
            reply = super().deliver(cid, data)
            return None if fault == "update:silent" else with_blobs(Message.from_bytes(reply), {"chunk0": b"x"})
        fault = fault if message.kind == "round_start" else None
        if fault == "dies":
            raise ConnectionResetError(f"client {cid} went away")
        reply = super().deliver(cid, data)
        if fault == "silent":
            return None
        if fault == "late":
            self.lag += 2 * self.deadline  # its reply comes after the deadline
        if fault in ("truncated", "wrong_key"):
            stats = Message.from_bytes(reply)
            count = stats.blob("count")
            bad = count[:-7] if fault == "truncated" else self.other_key.encrypt(np.array([5])).to_bytes()
            reply = with_blobs(stats, {**stats.blobs, "count": bad})
        return reply


    def _decrypt_fault(self, cid: int, data: bytes, message: Message, fault: str) -> bytes | None:
        if message.kind != "decrypt_request":
            return super().deliver(cid, data)
        if fault == "dies":
            raise ConnectionResetError(f"client {cid} died while decrypting")
        reply = super().deliver(cid, data)
        if fault == "silent":
            return None
        share = Message.from_bytes(reply)
        return with_blobs(share, {"share": share.blob("share")[:-5]})  # truncated


SURVIVORS = {1: [0, 1], 2: [0, 2], 3: [1, 2], 4: [0, 1], 5: [0, 2]}
FAULTS = {(1, 2): "silent", (2, 1): "late", (3, 0): "truncated", (4, 2): "wrong_key", (5, 1): "dies"}


def test_dropped_clients_leave_the_model_of_a_run_over_the_survivors(tmp_path, monkeypatch):
    """Five rounds, one fault each (the leader's in round 3): each round completes with the other two."""
    import fedtrain.server as server_module

    config = dict(rounds=5, min_clients=2, deadline=600.0)
    ctx = setup_run(tiny_config(**config), tmp_path / "faulty")
    ctx.transport = FaultyTransport(ctx.clients, FAULTS, deadline=600.0)
    records = run_rounds(ctx)
    for rec in records:
        r = rec["round"]
        (cid, fault), = [(c, f) for (rr, c), f in FAULTS.items() if rr == r]
        assert rec["selected_clients"] == [0, 1, 2] and rec["survivors"] == SURVIVORS[r], r
        assert list(rec["dropped"]) == [str(cid)], (r, rec["dropped"])
        assert rec["refused"] is False
    assert "late" in records[1]["dropped"]["1"] and "went away" in records[4]["dropped"]["1"]
    assert "no reply" in records[0]["dropped"]["2"]
    faulty_model = ctx.evaluator.open(ctx.server.global_message())[0]
    from fedtrain.report import write_report

    report = write_report(ctx.out_dir).read_text()
    dropped = report[report.index("## Dropped clients"):].split("\n## ")[0]
    assert "| 1 | 1 | 2 | no reply |" in dropped and "| 5 | 1 | 1 |" in dropped and "went away" in dropped

    monkeypatch.setattr(server_module, "select_clients", lambda n, f, seed, r, attempt=0: SURVIVORS[r])
    reference = setup_run(tiny_config(**config), tmp_path / "reference")
    reference_records = run_rounds(reference)
    assert all(rec["dropped"] == {} for rec in reference_records)
    np.testing.assert_array_equal(faulty_model, reference.evaluator.open(reference.server.global_message())[0])


def test_a_round_with_fewer_survivors_than_the_minimum_is_tried_again_then_stops_the_run(tmp_path):
    """Client 1 is silent in every try: 3 tries of round 1 (--round-attempts), then one error naming it all."""
    from fedtrain.errors import RoundFailed

    ctx = setup_run(tiny_config(min_clients=3, round_attempts=3), tmp_path / "run")
    ctx.transport = FaultyTransport(ctx.clients, {(1, 1): "silent"}, deadline=600.0)
    with pytest.raises(RoundFailed, match=r"only 2 of the selected clients \[0, 1, 2\] answered well") as info:
        run_rounds(ctx)
    assert "failed 3 times" in str(info.value) and "--resume" in str(info.value) and not info.value.retryable
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()


def test_a_round_below_the_minimum_completes_on_a_new_selection(tmp_path, monkeypatch):
    """Client 0 is gone: the first try ([0, 1, 2], minimum 3) fails, the second ([1, 2, 3]) gives the model of a
    run that selected [1, 2, 3] to begin with; the record names the failed try."""
    import fedtrain.server as server_module

    picks = {0: [0, 1, 2], 1: [1, 2, 3]}
    monkeypatch.setattr(server_module, "select_clients", lambda n, f, seed, r, attempt=0: picks[attempt])
    config = dict(clients=4, fraction=0.75, min_clients=3, demo_train_per_class=6)
    ctx = setup_run(tiny_config(**config), tmp_path / "faulty")
    ctx.transport = FaultyTransport(ctx.clients, {(1, 0): "dies"}, deadline=600.0)
    (record,) = run_rounds(ctx)
    assert record["attempts"] == 2 and record["survivors"] == [1, 2, 3] and record["refused"] is False
    (failed,) = record["failed_attempts"]
    assert failed["selected"] == [0, 1, 2] and "went away" in failed["dropped"]["0"]
    monkeypatch.setattr(server_module, "select_clients", lambda n, f, seed, r, attempt=0: [1, 2, 3])
    reference = setup_run(tiny_config(**config), tmp_path / "reference")
    (ref,) = run_rounds(reference)
    assert ref["attempts"] == 1 and ref["failed_attempts"] == []
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  reference.evaluator.open(reference.server.global_message())[0])


def test_a_round_is_not_tried_again_after_a_decryption(tmp_path):
    """A client whose update was in a decrypted aggregate refuses a new try of that round (two aggregates
    over overlapping selections would tell their difference), with a decoy."""
    script = ScriptedServer(tmp_path)
    _, requests = _decrypt_requests(script)
    script.deliver(1, requests[1])
    message = Message.from_bytes(script.server.start_round(1)[1])
    again = script.deliver(1, with_field(message, "attempt", 1))
    assert Message.from_bytes(again).kind == "stats"
    assert "already in an aggregate that was decrypted" in script.clients[1].refusals[-1][2]
    fresh = script.deliver(2, with_field(message, "attempt", 1))  # client 2 has not decrypted: it takes part
    assert Message.from_bytes(fresh).kind == "stats" and not script.clients[2].refusals
    replay = script.deliver(2, with_field(message, "attempt", 1))  # but each try starts once
    assert "already started" in script.clients[2].refusals[-1][2] and len(replay) == len(fresh)


def test_a_decryptor_lost_mid_decryption_costs_one_retry_not_the_round(tmp_path, secure_round):
    """Three rounds, one decryptor lost in each (dies, silent, truncated slice): the model of an honest run."""
    faults = {(1, 1): "decrypt:dies", (2, 2): "decrypt:silent", (3, 1): "decrypt:truncated"}
    ctx = setup_run(tiny_config(rounds=3), tmp_path / "faulty")
    ctx.transport = FaultyTransport(ctx.clients, faults, deadline=600.0)
    records = run_rounds(ctx)
    for rec, ((_, cid), fault) in zip(records, sorted(faults.items())):
        assert rec["survivors"] == [0, 1, 2] and list(rec["dropped"]) == [str(cid)], rec["dropped"]
        assert "during decryption" in rec["dropped"][str(cid)] or "died" in rec["dropped"][str(cid)]
        assert rec["refused"] is False
    honest = setup_run(tiny_config(rounds=3), tmp_path / "honest")
    run_rounds(honest)
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  honest.evaluator.open(honest.server.global_message())[0])


def _honest_model(tmp_path, **config) -> np.ndarray:
    honest = setup_run(tiny_config(**config), tmp_path / "honest")
    run_rounds(honest)
    return honest.evaluator.open(honest.server.global_message())[0]


def test_a_leader_lost_mid_decryption_hands_over_to_the_next_survivor(tmp_path):
    """Client 0 (first survivor) decrypts nothing in round 1: client 1 decrypts its chunk and leads; round 2,
    which client 0 is back for, starts from client 1's model; both models are those of an honest run."""
    ctx = setup_run(tiny_config(rounds=2), tmp_path / "run")
    ctx.transport = FaultyTransport(ctx.clients, {(1, 0): "decrypt:silent"}, deadline=600.0)
    first, second = run_rounds(ctx)
    assert first["leader"] == 1 and list(first["dropped"]) == ["0"] and first["refused"] is False
    assert second["leader"] == 0 and second["dropped"] == {} and second["refusals"] == {}
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  _honest_model(tmp_path, rounds=2))


class LeaderFaults(FaultyTransport):
    """Also fails the leader's 'global' reply: 'shares:silent' sends nothing, 'shares:garbage' cut bytes."""

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        message = Message.from_bytes(data)
        fault = self.faults.get((message.round, cid), "")
        if message.kind != "shares" or not fault.startswith("shares:"):
            return super().deliver(cid, data)
        reply = InProcessTransport.deliver(self, cid, data)
        return None if fault == "shares:silent" else reply[:-9]


def test_a_leader_lost_while_assembling_the_model_hands_over(tmp_path):
    """The leader takes the slices and goes silent (round 1) or answers garbage (round 2; its successor too):
    the next healthy survivor assembles the model; the run's models are those of an honest run."""
    faults = {(1, 0): "shares:silent", (2, 0): "shares:garbage", (2, 1): "shares:garbage"}
    ctx = setup_run(tiny_config(rounds=2), tmp_path / "run")
    ctx.transport = LeaderFaults(ctx.clients, faults, deadline=600.0)
    first, second = run_rounds(ctx)
    assert first["leader"] == 1 and first["dropped"]["0"] == "during assembly: no reply"
    assert "during assembly" in second["dropped"]["0"] and "during assembly" in second["dropped"]["1"]
    assert second["leader"] == 2 and sorted(second["dropped"]) == ["0", "1"]
    assert first["survivors"] == second["survivors"] == [0, 1, 2] and not first["refused"] and not second["refused"]
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  _honest_model(tmp_path, rounds=2))


def test_two_decryptors_lost_in_one_round_cost_retries_not_the_round(tmp_path):
    """Four clients; two decryptors lost in round 1 (one dies, one's retry for it is cut): the honest model."""
    faults = {(1, 1): "decrypt:dies", (1, 3): "decrypt:truncated"}
    config = dict(clients=4, demo_train_per_class=6)
    ctx = setup_run(tiny_config(**config), tmp_path / "run")
    ctx.transport = FaultyTransport(ctx.clients, faults, deadline=600.0)
    (record,) = run_rounds(ctx)
    assert sorted(record["dropped"]) == ["1", "3"] and record["leader"] == 0 and not record["refused"]
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  _honest_model(tmp_path, **config))


class HangingTransport(InProcessTransport):
    """Client `cid` never answers its decryption request (it blocks until the test ends)."""

    def __init__(self, clients, cid: int, deadline: float) -> None:
        import threading

        super().__init__(clients, deadline=deadline)
        self.cid, self.release = cid, threading.Event()

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        if cid == self.cid and Message.from_bytes(data).kind == "decrypt_request":
            self.release.wait()
        return super().deliver(cid, data)


def test_a_client_that_never_answers_is_dropped_at_the_deadline(tmp_path):
    """In-process too, a client that hangs costs the exchange its --deadline, and the round completes."""
    ctx = setup_run(tiny_config(deadline=8.0), tmp_path / "run")
    ctx.transport = HangingTransport(ctx.clients, 2, deadline=8.0)
    try:
        (record,) = run_rounds(ctx)
    finally:
        ctx.transport.release.set()
    assert "no reply within the 8 s deadline" in record["dropped"]["2"] and not record["refused"]
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0], _honest_model(tmp_path))


def test_a_client_lost_during_the_update_has_the_sums_redone_for_the_survivors(tmp_path, monkeypatch):
    """Three rounds, one client lost after the sums in each: the model of a run over the survivors."""
    import fedtrain.server as server_module

    faults = {(1, 2): "update:silent", (2, 0): "update:dies", (3, 1): "update:garbage"}
    survivors = {1: [0, 1], 2: [1, 2], 3: [0, 2]}
    config = dict(rounds=3, min_clients=2)
    ctx = setup_run(tiny_config(**config), tmp_path / "faulty")
    ctx.transport = FaultyTransport(ctx.clients, faults, deadline=600.0)
    records = run_rounds(ctx)
    for rec in records:
        assert rec["survivors"] == survivors[rec["round"]] and rec["refused"] is False
        (cid,) = rec["dropped"]
        assert "during the update" in rec["dropped"][cid]
    monkeypatch.setattr(server_module, "select_clients", lambda n, f, seed, r, attempt=0: survivors[r])
    reference = setup_run(tiny_config(**config), tmp_path / "reference")
    run_rounds(reference)
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  reference.evaluator.open(reference.server.global_message())[0])


def test_sums_are_redone_only_for_fewer_survivors(tmp_path):
    script = ScriptedServer(tmp_path, min_clients=2)
    stats_sum = script.stats()
    first = script.deliver(0, stats_sum[0])
    redo = script.server._stats_sums(1, [0, 1])
    second = script.deliver(0, redo[0])  # fewer survivors: answered, for them
    assert any(np.any(c != 0) for c in script.chunks({0: second})[0])
    for data in (redo[0], stats_sum[0]):  # the same or more survivors again: decoys
        again = script.deliver(0, data)
        assert all(np.all(c == 0) for c in script.chunks({0: again})[0])
        assert "already answered" in script.clients[0].refusals[-1][2]
    assert len(first) > 0


class SecondUpdateLoss(FaultyTransport):
    """Client `late` answers the first 'stats_sum' of round 1 and is silent on the redone one."""

    def __init__(self, clients, faults, late: int) -> None:
        super().__init__(clients, faults, deadline=600.0)
        self.late, self.sums_seen = late, 0

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        reply = super().deliver(cid, data)
        if cid == self.late and Message.from_bytes(data).kind == "stats_sum":
            self.sums_seen += 1
            return None if self.sums_seen == 2 else reply
        return reply


def test_a_second_loss_during_the_update_has_the_sums_redone_again(tmp_path, monkeypatch):
    """Four clients, minimum 2: client 3 sends no update, then client 2 none for the redone sums; the round
    completes with [0, 1], and its model is that of a run that selected [0, 1]."""
    import fedtrain.server as server_module

    config = dict(clients=4, min_clients=2, demo_train_per_class=6)
    ctx = setup_run(tiny_config(**config), tmp_path / "faulty")
    ctx.transport = SecondUpdateLoss(ctx.clients, {(1, 3): "update:silent"}, late=2)
    (record,) = run_rounds(ctx)
    assert record["survivors"] == [0, 1] and sorted(record["dropped"]) == ["2", "3"] and not record["refused"]
    assert all("during the update" in why for why in record["dropped"].values())
    monkeypatch.setattr(server_module, "select_clients", lambda n, f, seed, r, attempt=0: [0, 1])
    reference = setup_run(tiny_config(**config), tmp_path / "reference")
    run_rounds(reference)
    np.testing.assert_array_equal(ctx.evaluator.open(ctx.server.global_message())[0],
                                  reference.evaluator.open(reference.server.global_message())[0])


def test_a_leader_lost_during_the_update_rejoins_the_next_round(tmp_path):
    """Client 0 leads round 1 and goes silent after the sums: client 1 leads; client 0 accepts its model."""
    ctx = setup_run(tiny_config(rounds=2, min_clients=2), tmp_path / "run")
    ctx.transport = FaultyTransport(ctx.clients, {(1, 0): "update:silent"}, deadline=600.0)
    first, second = run_rounds(ctx)
    assert first["survivors"] == [1, 2] and list(first["dropped"]) == ["0"]
    assert second["survivors"] == [0, 1, 2] and second["refused"] is False and second["refusals"] == {}
