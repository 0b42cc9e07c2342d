"""The sequence of exchanges of one round, over any transport (in-process, or Flower's Message API).

A transport delivers the server's messages (client id -> bytes) and returns the replies that came
back in time; the rest go to its `failures`, and the server drops those clients exactly as it drops
one whose reply is malformed.  `run_round` is the one implementation of the round's sequence that
`fedtrain run` (runner.InProcessTransport) and the Flower ServerApp (flower.transport.FlowerTransport)
share.  This module imports no torch: the Flower ServerApp runs it with the public key only.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from .errors import ProtocolError, RoundFailed
from .server import Server

log = logging.getLogger("fedtrain")

PHASES = ("train", "encrypt", "decrypt")


class Transport(Protocol):
    """What run_round needs of a transport."""

    sent: dict[int, int]  # bytes each client sent this round (its replies)
    received: dict[int, int]  # bytes each client received this round
    failures: dict[int, str]  # this round's clients whose reply was dropped, and why

    def reset(self) -> None:
        """Clears the byte counts and failures (at the start of each try of a round)."""

    def exchange(self, outgoing: dict[int, bytes]) -> dict[int, bytes]:
        """Delivers each message and returns the replies that came back in time (the rest in `failures`)."""

    def client_timings(self, cid: int) -> tuple[dict[str, float], dict[str, float]]:
        """(wall seconds, CPU seconds) per phase of client `cid` in its current round, as it last reported."""


def drop_reason(server_reason: str, transport_reason: str | None) -> str:
    """Why a client was dropped: the transport's reason where it has one, with the server's phase."""
    if transport_reason is None:
        return server_reason
    phase = server_reason.split(": ", 1)[0] + ": " if server_reason.startswith("during ") else ""
    return phase + transport_reason


def dropped_clients(server: Server, transport: Transport) -> dict[str, str]:
    """The clients dropped from the current try of the round (id as a string), each with phase and reason."""
    return {str(c): drop_reason(why, transport.failures.get(c)) for c, why in sorted(server.dropped.items())}


def run_round(server: Server, transport: Transport, round_: int, attempt: int = 0, *,
              fold_next: bool = False) -> dict[str, Any]:
    """One try of a round of Algorithms 3-4 over the transport; returns per-phase timings and bytes.

    Secure mode: four exchanges (statistics, update, decryption, the leader's assembly), more where clients
    are lost.  `fold_next` (a next round follows): where every client of the next round is a healthy
    survivor of this one, the assembly is left to them (Server.defer_assembly): the next round's start
    carries this round's sealed slices, one exchange fewer per round.  The record's 'exchanges' counts them.
    """
    transport.reset()
    server_time, server_cpu = 0.0, 0.0
    exchanges = 0

    def send(outgoing: dict[int, bytes]) -> dict[int, bytes]:
        nonlocal exchanges
        exchanges += 1
        return server.take_previous(transport.exchange(server.ask_previous(outgoing)))

    t0 = time.perf_counter()
    outgoing = server.start_round(round_, attempt)
    selected = sorted(outgoing)
    folded_start = server.awaiting_previous(round_)
    replies = send(outgoing)

    def serve(step, *args):
        nonlocal server_time, server_cpu
        t, c = time.perf_counter(), time.process_time()
        out = step(*args)
        server_time += time.perf_counter() - t
        server_cpu += time.process_time() - c
        return out

    try:
        if server.secure:
            replies = send(serve(server.on_stats, round_, replies))
            outgoing = serve(server.on_updates, round_, replies)
            while server.redoing_sums:  # clients lost during the update: the survivors' sums again
                outgoing = serve(server.on_updates, round_, send(outgoing))
            outgoing = serve(server.on_shares, round_, send(outgoing))
            while server.retrying:  # decryptors lost: other survivors decrypt their chunks
                outgoing = serve(server.on_shares, round_, send(outgoing))
            if server.awaiting_previous(round_):
                raise RoundFailed(f"round {round_}: none of the clients asked ({server.previous_asked}) sent back "
                                  f"the model of round {round_ - 1}, which this round's clients assembled",
                                  retryable=False)
            if fold_next and server.can_fold(round_ + 1):
                server.defer_assembly()
                outgoing = {}
            while outgoing:  # the leader assembles the model; a lost leader hands over to the next survivor
                (leader, data), = outgoing.items()
                outgoing = serve(server.on_global, round_, send(outgoing).get(leader))
        else:
            serve(server.on_updates, round_, replies)
    except ProtocolError as exc:
        if not transport.failures:
            raise
        message = f"{exc} (replies dropped by the transport: {transport.failures})"
        if isinstance(exc, RoundFailed):
            raise RoundFailed(message, retryable=exc.retryable) from exc
        raise ProtocolError(message) from exc
    wall = time.perf_counter() - t0
    reported = {c: transport.client_timings(c) for c in selected}
    totals = {p: sum(reported[c][0].get(p, 0.0) for c in selected) for p in PHASES}
    slowest = {p: max(reported[c][0].get(p, 0.0) for c in selected) for p in PHASES}
    cpu = {p: sum(reported[c][1].get(p, 0.0) for c in selected) for p in PHASES}
    return {
        "selected_clients": selected,
        "timings": {"train": totals["train"], "encrypt": totals["encrypt"], "aggregate": server_time,
                    "decrypt": totals["decrypt"]},
        "critical_path": {**slowest, "aggregate": server_time,
                          "round": sum(slowest.values()) + server_time},
        "cpu_seconds": {**cpu, "aggregate": server_cpu},
        "round_wall": wall,
        "survivors": server.participants if server.secure else selected,
        "leader": server.leader if server.secure else None,
        "exchanges": exchanges,
        "folded_start": folded_start,  # this round's start carried the previous round's slices
        "assembly_deferred": server.awaiting_previous(round_ + 1),  # the next round's clients assemble this model
        "dropped": dropped_clients(server, transport) if server.secure else {},
        "bytes": {"sent_per_client": {str(c): transport.sent.get(c, 0) for c in selected},
                  "received_per_client": {str(c): transport.received.get(c, 0) for c in selected}},
    }


def run_round_with_retries(server: Server, transport: Transport, r: int, attempts: int,
                           resume_hint: str, *, fold_next: bool = False) -> dict[str, Any]:
    """Round r, tried again with a new selection (up to `attempts`) while it fails before decryption.

    `resume_hint` (how to continue the run) ends the error of a round that cannot be completed.
    """
    failures: list[dict[str, Any]] = []
    for attempt in range(attempts):
        try:
            result = run_round(server, transport, r, attempt, fold_next=fold_next)
        except RoundFailed as exc:
            failures.append({"attempt": attempt, "selected": server.announced,
                             "dropped": dropped_clients(server, transport),
                             "error": str(exc)})
            if not exc.retryable:
                raise RoundFailed(f"{exc}; the run stops after round {r - 1} ({resume_hint})",
                                  retryable=False) from exc
            log.warning("round %d, try %d of %d failed: %s", r, attempt + 1, attempts, exc)
            continue
        result["attempts"], result["failed_attempts"] = attempt + 1, failures
        return result
    raise RoundFailed(f"round {r} failed {len(failures)} times (--round-attempts {attempts}), last: "
                      f"{failures[-1]['error']}; the run stops after round {r - 1} ({resume_hint})",
                      retryable=False)
