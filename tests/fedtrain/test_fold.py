"""Folded rounds: a round's model assembled by the next round's clients, one exchange fewer per round.

Each test drives the one round sequence (fedtrain.rounds) over the in-process transport, once folded
and once not, and checks that every round's model is the same bit for bit, and what it cost in exchanges.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedtrain.errors import RoundFailed
from fedtrain.messages import Message
from fedtrain.protocol import PREVIOUS_GLOBAL, SEAL_PREVIOUS
from fedtrain.rounds import run_round_with_retries
from fedtrain.runner import InProcessTransport, setup_run

from test_protocol import FaultyTransport, tiny_config, with_blobs


def drive(ctx, transport, *, fold: bool) -> tuple[list[dict], list]:
    """Runs every round of ctx over `transport`; (records, each round's model as the key holders open it)."""
    server, rounds = ctx.server, ctx.config.rounds
    records, models = [], {}
    for r in range(1, rounds + 1):
        records.append(run_round_with_retries(server, transport, r, 3, "resume", fold_next=fold and r < rounds))
        for m in (r - 1, r):  # a folded round's model comes back during the next round
            kept = server.kept_global(m)
            if m >= 1 and m not in models and kept is not None:
                models[m] = ctx.evaluator.open_model(kept, sealed_by={server.sealed_by[m]})
    assert sorted(models) == list(range(1, rounds + 1))
    return records, [models[r] for r in range(1, rounds + 1)]


def assert_same_models(folded, plain) -> None:
    for r, (a, b) in enumerate(zip(folded, plain), start=1):
        assert a.model_round == b.model_round == r
        assert a.refused == b.refused
        np.testing.assert_array_equal(a.vector, b.vector, err_msg=f"round {r}")


def test_folded_rounds_give_the_same_models_with_one_exchange_fewer_per_round(tmp_path):
    config = tiny_config(rounds=3)
    folded_ctx = setup_run(config, tmp_path / "folded")
    folded, folded_models = drive(folded_ctx, InProcessTransport(folded_ctx.clients), fold=True)
    plain_ctx = setup_run(config, tmp_path / "plain")
    plain, plain_models = drive(plain_ctx, InProcessTransport(plain_ctx.clients), fold=False)
    assert_same_models(folded_models, plain_models)
    assert [r["exchanges"] for r in plain] == [4, 4, 4]
    assert [r["exchanges"] for r in folded] == [3, 3, 4]  # the last round's model still has a leader
    assert [r["folded_start"] for r in folded] == [False, True, True]
    assert [r["assembly_deferred"] for r in folded] == [True, True, False]
    assert [r["leader"] for r in folded] == [None, None, 0]
    # round r's model was sealed by the client of round r + 1 the server asked (the first selected)
    assert folded_ctx.server.sealed_by == {1: 0, 2: 0, 3: 0}
    assert not any(c.refusals for c in folded_ctx.clients.values())


def test_a_folded_start_carries_slices_and_no_model(tmp_path):
    ctx = setup_run(tiny_config(rounds=2), tmp_path / "run")
    log = []

    class Recording(InProcessTransport):
        def deliver(self, cid, data):
            reply = super().deliver(cid, data)
            log.append((cid, Message.from_bytes(data), reply))
            return reply

    drive(ctx, Recording(ctx.clients), fold=True)
    starts = [(cid, m) for cid, m, _ in log if m.kind == "round_start" and m.round == 2]
    assert [cid for cid, _ in starts] == [0, 1, 2]
    for cid, message in starts:
        assert sorted(message.blobs) == ["share0", "share1", "share2"]
        assert message.fields["decryptors"] == [0, 1, 2]
        assert message.fields.get(SEAL_PREVIOUS, False) is (cid == 0)
    stats = {cid: Message.from_bytes(reply) for cid, m, reply in log if m.kind == "round_start" and m.round == 2}
    assert PREVIOUS_GLOBAL in stats[0].blobs and PREVIOUS_GLOBAL not in stats[1].blobs
    assert not [m for _, m, _ in log if m.kind == "shares" and m.round == 1]


def test_folding_waits_for_a_next_selection_of_survivors_only(tmp_path):
    """4 clients, 3 a round: a round is folded only where the next round selects none but its survivors."""
    config = tiny_config(rounds=3, clients=4, fraction=0.75, min_clients=2, seed=1)
    ctx = setup_run(config, tmp_path / "folded")
    folded, folded_models = drive(ctx, InProcessTransport(ctx.clients), fold=True)
    plain_ctx = setup_run(config, tmp_path / "plain")
    _, plain_models = drive(plain_ctx, InProcessTransport(plain_ctx.clients), fold=False)
    assert_same_models(folded_models, plain_models)
    for this, after in zip(folded, folded[1:]):
        assert this["assembly_deferred"] == (set(after["selected_clients"]) <= set(this["survivors"]))
        assert after["folded_start"] == this["assembly_deferred"]
        assert this["exchanges"] == (3 if this["assembly_deferred"] else 4)
    assert {r["assembly_deferred"] for r in folded[:-1]} == {True, False}  # both cases occur with this seed


def test_the_asked_client_lost_at_the_start_another_one_seals_the_model(tmp_path):
    """Client 0, asked for round 1's model in round 2, goes silent: client 1 sends it with its update."""
    config = tiny_config(rounds=2, min_clients=2, deadline=600.0)
    faults = {(2, 0): "silent"}
    ctx = setup_run(config, tmp_path / "folded")
    folded, folded_models = drive(ctx, FaultyTransport(ctx.clients, faults, deadline=600.0), fold=True)
    plain_ctx = setup_run(config, tmp_path / "plain")
    _, plain_models = drive(plain_ctx, FaultyTransport(plain_ctx.clients, faults, deadline=600.0), fold=False)
    assert_same_models(folded_models, plain_models)
    assert ctx.server.sealed_by[1] == 1
    assert folded[1]["survivors"] == [1, 2] and folded[1]["exchanges"] == 4


def test_tampered_slices_in_a_folded_start_leave_the_model_unchanged_and_flagged(tmp_path):
    """Slices swapped by the server: no client uses them; round 1's model is round 0's, flagged refused."""

    class Swapping(InProcessTransport):
        def deliver(self, cid, data):
            message = Message.from_bytes(data)
            if message.kind == "round_start" and "share0" in message.blobs:
                blobs = dict(message.blobs)
                blobs["share0"], blobs["share1"] = blobs["share1"], blobs["share0"]
                data = with_blobs(message, blobs)
            return super().deliver(cid, data)

    ctx = setup_run(tiny_config(rounds=2), tmp_path / "run")
    start = ctx.evaluator.open(ctx.server.global_message())[0]
    _, (first, second) = drive(ctx, Swapping(ctx.clients), fold=True)
    assert first.refused and not second.refused
    np.testing.assert_array_equal(first.vector, start)
    for client in ctx.clients.values():
        assert any("assembling round 1's model" in why for _, _, why in client.refusals)


def test_a_folded_start_to_a_client_outside_the_previous_round_gets_a_decoy(tmp_path):
    ctx = setup_run(tiny_config(rounds=2, clients=4, min_clients=2), tmp_path / "run")
    transport = InProcessTransport(ctx.clients)
    run_round_with_retries(ctx.server, transport, 1, 3, "resume", fold_next=True)
    message = ctx.server.start_round(2)[0]
    outsider = ctx.clients[3]
    outsider._last_start = (0, 0)
    outsider._state = {}
    reply = Message.from_bytes(outsider.handle(message))
    assert reply.kind == "stats"
    assert any("did not decrypt in round 1" in why for _, _, why in outsider.refusals)


def test_a_round_whose_previous_model_nobody_sealed_stops_the_run(tmp_path):
    """Every client asked for round 1's model drops its answer: round 2 cannot keep it and stops."""

    class Stripping(InProcessTransport):
        def deliver(self, cid, data):
            reply = super().deliver(cid, data)
            message = Message.from_bytes(reply)
            if PREVIOUS_GLOBAL in message.blobs:
                blobs = {k: v for k, v in message.blobs.items() if k != PREVIOUS_GLOBAL}
                return with_blobs(message, blobs)
            return reply

    ctx = setup_run(tiny_config(rounds=2), tmp_path / "run")
    transport = Stripping(ctx.clients)
    run_round_with_retries(ctx.server, transport, 1, 3, "resume", fold_next=True)
    with pytest.raises(RoundFailed, match="sent back the model of round 1"):
        run_round_with_retries(ctx.server, transport, 2, 3, "resume")


def test_a_client_that_lost_its_state_returns_no_model_and_the_next_one_asked_does(tmp_path):
    """Client 0 (asked first in round 2) lost its state, as a SuperNode that restarted: client 1 seals round 1."""

    class Forgetting(InProcessTransport):
        def deliver(self, cid, data):
            message = Message.from_bytes(data)
            if cid == 0 and message.kind == "round_start" and message.round == 2:
                self.clients[0]._state = {}
            return super().deliver(cid, data)

    config = tiny_config(rounds=2)
    ctx = setup_run(config, tmp_path / "folded")
    _, (first, _) = drive(ctx, Forgetting(ctx.clients), fold=True)
    plain_ctx = setup_run(config, tmp_path / "plain")
    _, (plain_first, _) = drive(plain_ctx, InProcessTransport(plain_ctx.clients), fold=False)
    assert ctx.server.sealed_by[1] == 1 and not first.refused
    np.testing.assert_array_equal(first.vector, plain_first.vector)
    assert any("did not decrypt in round 1" in why for _, _, why in ctx.clients[0].refusals)
