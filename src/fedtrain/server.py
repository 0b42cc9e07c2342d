"""The aggregation server: selects clients, relays messages and adds ciphertexts with the public key only.

By construction the server never holds a private key: its constructor accepts a
`fastpaillier.PublicKey` and nothing else, this module never touches `PrivateKey`
and does not import the sealing module, and in secure mode the global model it keeps
is an AES-GCM blob that only the clients can open.
"""

from __future__ import annotations

import numpy as np

import fastpaillier as fp

from .authentication import Verifiers
from .errors import ConfigError, ProtocolError, RoundFailed
from .fedavg import AVERAGING_MODES, fedavg
from .messages import Message, vector_from_bytes, vector_to_bytes
from .protocol import (DEFAULT_MIN_CLIENTS, MAX_ATTEMPTS, MIN_CLIENTS_FLOOR, PREVIOUS_GLOBAL, SEAL_PREVIOUS, check_array,
                       is_int, global_context, guarded, report_context, share_context, load_array, parse_global,
                       parse_plain_update, parse_secure_update, parse_share, parse_stats)
from .secure_aggregation import ROUNDING_MODES, EncodingPlan, chunk_bounds

PRIVACY_MODES = ("paillier", "none", "dp")


def selection_size(num_clients: int, fraction: float) -> int:
    """How many clients a round selects: max(1, round(fraction * num_clients))."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    return max(1, int(np.floor(fraction * num_clients + 0.5)))


def check_min_clients(min_clients: int, num_clients: int, fraction: float) -> None:
    """ConfigError unless min_clients >= 2 and a round selects at least min_clients clients."""
    if isinstance(min_clients, bool) or not isinstance(min_clients, int) or min_clients < MIN_CLIENTS_FLOOR:
        raise ConfigError(f"--min-clients must be an integer of at least {MIN_CLIENTS_FLOOR}, got {min_clients!r}")
    count = selection_size(num_clients, fraction)
    if count < min_clients:
        raise ConfigError(f"--clients {num_clients} with --fraction {fraction} selects {count} clients per round, "
                          f"fewer than --min-clients {min_clients}: an aggregate of so few updates shows each "
                          "one; add clients, raise --fraction or (never below 2) lower --min-clients")


def select_clients(num_clients: int, fraction: float, seed: int, round_: int, attempt: int = 0) -> list[int]:
    """The clients of round `round_` (try `attempt`): max(1, round(fraction * num_clients)) of them, at random."""
    count = selection_size(num_clients, fraction)
    rng = np.random.default_rng([seed, round_, 0x5E1EC7] + ([attempt] if attempt else []))
    return sorted(int(c) for c in rng.choice(num_clients, size=count, replace=False))


class Server:
    """FedAvg server.  In "paillier" mode it only adds ciphertexts; in "none" and "dp" modes it averages plaintexts."""

    def __init__(self, *, num_clients: int, fraction: float, seed: int, privacy: str, avg: str,
                 value_bits: int, model_size: int, public_key: fp.PublicKey | None,
                 num_tensors: int | None = None, min_clients: int = DEFAULT_MIN_CLIENTS,
                 verifiers: Verifiers | None = None, rounding: str = "nearest") -> None:
        if privacy not in PRIVACY_MODES:
            raise ConfigError(f"unknown privacy mode {privacy!r}; choose one of {', '.join(PRIVACY_MODES)}")
        if avg not in AVERAGING_MODES:
            raise ConfigError(f"unknown averaging {avg!r}; choose 'weighted' or 'mean'")
        if rounding not in ROUNDING_MODES:
            raise ConfigError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDING_MODES)}")
        if privacy == "paillier" and type(public_key) is not fp.PublicKey:
            raise ConfigError("the server takes a fastpaillier.PublicKey and nothing else (never a private key)")
        if privacy == "paillier":
            check_min_clients(min_clients, num_clients, fraction)
        self.min_clients = min_clients
        self.verifiers = verifiers  # the clients' public signature keys: who signed a sealed blob (not its content)
        self.num_clients = num_clients
        self.fraction = fraction
        self.seed = seed
        self.privacy = privacy
        self.avg = avg
        self.value_bits = value_bits
        self.rounding = rounding
        self.model_size = model_size
        self.num_tensors = num_tensors  # checks the shape of the clients' encrypted maxima where given
        self.public_key = public_key if privacy == "paillier" else None
        self._global: Message | None = None
        self._kept: dict[int, Message] = {}  # model round -> its 'global' message, for the last two models kept
        self.sealed_by: dict[int, int] = {}  # model round -> the client that sealed it (secure mode)
        self._pending: dict | None = None  # a round whose model its next round's clients assemble (folded)
        self._round_state: dict = {}
        self.reports: dict[int, bytes | dict] = {}

    @property
    def secure(self) -> bool:
        return self.privacy == "paillier"

    # -- the global model -----------------------------------------------------
    def initialize(self, vector: np.ndarray) -> None:
        """Round 1 of Algorithm 3: the server's freshly initialized model, sent in plain (it is random)."""
        self._global = Message("global", 0, "server", {"model_round": 0}, {"global": vector_to_bytes(vector)})

    @guarded
    def install_global(self, data: bytes) -> None:
        """Stores a 'global' message (plain, or sealed by a client) as the current model."""
        message = Message.from_bytes(data)
        sealed = "sealed_global" in message.blobs
        model_round = parse_global(message, sealed=sealed)
        if self.secure and not sealed and model_round > 0:
            raise ProtocolError("in secure mode a trained global model must arrive sealed")
        if not sealed:
            vector_from_bytes(message.blob("global"), self.model_size)
        elif self.verifiers is not None:
            self.verifiers.open(message.blob("sealed_global"), global_context(model_round))
        self._keep(Message("global", message.round, "server", {"model_round": model_round}, dict(message.blobs)))

    def _keep(self, message: Message) -> None:
        """Makes `message` the current global model and keeps it with the one before."""
        self._global = message
        model_round = int(message.get("model_round"))
        self._kept[model_round] = message
        for old in [r for r in self._kept if r < model_round - 1]:
            del self._kept[old]

    def kept_global(self, model_round: int) -> bytes | None:
        """The 'global' message of the model after `model_round` rounds, if it is the current or the one before."""
        kept = self._kept.get(model_round)
        return None if kept is None else kept.to_bytes()

    def global_message(self) -> bytes:
        """The current global model as the server keeps it (sealed in secure mode), with the round's reports."""
        if self._global is None:
            raise ProtocolError("the server has no global model yet; call initialize() first")
        return self._global.to_bytes()

    @property
    def model_round(self) -> int:
        """The rounds the current global model has seen (a folded round counts once its slices are in)."""
        if self._pending is not None:
            return self._pending["round"]
        return int(self._global.get("model_round")) if self._global is not None else -1

    # -- folding: a round's model assembled by the next round's clients ------
    def can_fold(self, next_round: int) -> bool:
        """Whether the round whose slices are all in can leave its assembly to round `next_round`'s clients.

        Only if every client that round's first try selects is a healthy survivor of this one: each of them
        holds this round's plan and start model, so it assembles the model itself from the slices.
        """
        state = self._round_state
        if not self.secure or state.get("leader") is None or next_round != state.get("round", 0) + 1:
            return False
        upcoming = select_clients(self.num_clients, self.fraction, self.seed, next_round)
        return set(upcoming) <= set(self._healthy())

    def defer_assembly(self) -> None:
        """Leaves the current round's assembly to the next round's clients (after can_fold said it may).

        The next round's 'round_start' carries the sealed slices in place of a model, and one of its clients
        (asked with field 'seal_previous') sends back the model sealed, as the leader would have.
        """
        state = self._round_state
        self._pending = {"round": state["round"], "healthy": self._healthy(), "decryptors": list(state["decryptors"]),
                         "shares": dict(state["collected"]), "asked": []}
        state["leader"] = None

    def awaiting_previous(self, round_: int) -> bool:
        """Whether round `round_` started folded and no client has sent back the previous round's model yet."""
        return self._pending is not None and self._pending["round"] == round_ - 1

    @property
    def previous_asked(self) -> list[int]:
        """The clients asked so far for the folded round's model (in this try of the round after it)."""
        return list(self._pending["asked"]) if self._pending is not None else []

    def ask_previous(self, outgoing: dict[int, bytes]) -> dict[int, bytes]:
        """Asks one client of `outgoing` (one not yet asked) to seal the folded round's model with its reply."""
        pending = self._pending
        if pending is None or pending["round"] != self._round_state.get("round", 0) - 1:
            return outgoing
        for cid in sorted(outgoing):
            if cid not in pending["asked"]:
                message = Message.from_bytes(outgoing[cid])
                message.fields[SEAL_PREVIOUS] = True
                pending["asked"].append(cid)
                pending["waiting"] = cid
                return {**outgoing, cid: message.to_bytes()}
        return outgoing

    def take_previous(self, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Keeps the folded round's model from the reply of the client asked for it; strips it from that reply.

        A missing or badly signed model is not kept (another client is asked in the next exchange); the
        rest of that client's reply is handled as usual.
        """
        pending = self._pending
        cid = None if pending is None else pending.pop("waiting", None)
        if cid is None or cid not in replies:
            return replies
        try:
            message = Message.from_bytes(replies[cid])
        except ProtocolError:
            return replies
        blob = message.blobs.pop(PREVIOUS_GLOBAL, None)
        if blob is None:
            return replies
        r = pending["round"]
        try:
            if self.verifiers is not None:
                self.verifiers.open(blob, global_context(r), allowed={cid})
        except ProtocolError:
            return {**replies, cid: message.to_bytes()}
        self._pending = None
        self._keep(Message("global", r, "server", {"model_round": r}, {"sealed_global": blob}))
        self.sealed_by[r] = cid
        return {**replies, cid: message.to_bytes()}

    # -- a round --------------------------------------------------------------
    def start_round(self, round_: int, attempt: int = 0) -> dict[int, bytes]:
        """Selects the round's clients and sends each the global model and the round's settings.

        `attempt` > 0 starts a round again, with a new selection, after a try that failed before any
        decryption (`RoundFailed.retryable`); clients refuse a new try of a round they decrypted in.
        """
        if self.model_round != round_ - 1:
            raise ProtocolError(f"round {round_} cannot start from a model of round {self.model_round}")
        if not is_int(attempt) or not 0 <= attempt < MAX_ATTEMPTS:
            raise ConfigError(f"attempt must be an integer in [0, {MAX_ATTEMPTS}), got {attempt!r}")
        selected = select_clients(self.num_clients, self.fraction, self.seed, round_, attempt)
        self._round_state = {"round": round_, "selected": selected, "announced": selected, "dropped": {}}
        self.reports = {}
        fields = {"model_round": self.model_round, "attempt": attempt, "privacy": self.privacy, "avg": self.avg,
                  "value_bits": self.value_bits, "rounding": self.rounding, "selected": selected, "leader": selected[0]}
        blobs = dict(self._global.blobs)
        pending = self._pending
        if pending is not None:  # folded: the previous round's slices, for clients that all took part in it
            if not set(selected) <= set(pending["healthy"]):
                raise RoundFailed(f"round {round_}, try {attempt + 1}, selects clients {selected}, not all of them "
                                  f"survivors {pending['healthy']} of round {pending['round']}, whose model no client "
                                  "has sealed yet", retryable=False)
            fields["decryptors"] = pending["decryptors"]
            pending["asked"] = []
            blobs = {f"share{j}": share for j, share in sorted(pending["shares"].items())}
        message = Message("round_start", round_, "server", fields, blobs).to_bytes()
        return {cid: message for cid in selected}

    def _replies(self, round_: int, replies: dict[int, bytes], kind: str,
                 expected: list[int] | None = None) -> dict[int, Message]:
        selected = self._round_state.get("selected", []) if expected is None else expected
        if self._round_state.get("round") != round_ or sorted(replies) != selected:
            raise ProtocolError(f"round {round_}: expected {kind!r} replies from clients {selected}, "
                                f"got {sorted(replies)}")
        return {cid: Message.from_bytes(replies[cid]) for cid in selected}

    def _plan(self) -> tuple[EncodingPlan, list[tuple[int, int]]]:
        """The round's encoding plan and its chunks, as every party derives them."""
        plan = EncodingPlan(self.value_bits, len(self._round_state["selected"]), rounding=self.rounding,
                            weighted=self.avg == "weighted", headroom=self.num_clients)
        slots = plan.update_codec(self.public_key).slots
        return plan, chunk_bounds(self.model_size, plan.summands, slots)

    def _sum(self, blobs: dict[int, bytes], what: str, *, shape: tuple[int, ...] | None,
             codec: fp.PackedCodec | None) -> fp.EncryptedArray:
        """The sum of one encrypted array per client, each checked against the plan."""
        arrays = []
        for cid, blob in blobs.items():
            array = load_array(blob, self.public_key, f"client {cid}'s {what}")
            check_array(array, f"client {cid}'s {what}", shape=array.shape if shape is None else shape,
                        codec=codec, summands=1)
            if arrays and array.shape != arrays[0].shape:
                raise ProtocolError(f"client {cid}'s {what} has shape {array.shape}, others {arrays[0].shape}")
            arrays.append(array)
        try:
            return fp.sum_arrays(arrays)
        except fp.FastPaillierError as exc:
            raise ProtocolError(f"the {what} cannot be added: {exc}") from None

    def _check_stats(self, round_: int, cid: int, data: bytes, codec: fp.PackedCodec,
                     shape: tuple[int, ...] | None) -> dict[str, bytes]:
        """One client's 'stats' reply, checked against the schema, the plan and its signature."""
        blobs = parse_stats(Message.from_bytes(data), round_, cid)
        for name, want_shape, want_codec in (("count", (1,), None), ("maxabs", shape, codec)):
            array = load_array(blobs[name], self.public_key, f"client {cid}'s 'stats' blob {name!r}")
            check_array(array, f"client {cid}'s 'stats' blob {name!r}",
                        shape=array.shape if want_shape is None else want_shape, codec=want_codec, summands=1)
        if self.verifiers is not None:
            self.verifiers.open(blobs["report"], report_context(round_, cid), allowed={cid})
        return blobs

    @guarded
    def on_stats(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Secure mode: adds the encrypted counts and maxima of the clients that answered well; returns the sums.

        A selected client that sent no reply, or one that fails the schema, the plan or its signature, is
        dropped from the round (see `dropped`); the round goes on with the rest if at least min_clients remain,
        and the sums, weights, chunks and decryptors are those of the survivors.
        """
        if self._round_state.get("round") != round_:
            raise ProtocolError(f"'stats' replies of round {round_} arrived outside that round")
        announced = self._round_state["selected"]
        plan, _ = self._plan()
        shape = None if self.num_tensors is None else (self.num_tensors,)
        good: dict[int, dict[str, bytes]] = {}
        dropped: dict[int, str] = {}
        for cid in announced:
            try:
                if cid not in replies:
                    raise ProtocolError("no reply")
                good[cid] = self._check_stats(round_, cid, replies[cid], plan.stats_codec(self.public_key), shape)
                shape = shape or load_array(good[cid]["maxabs"], self.public_key, "maxabs").shape
            except ProtocolError as exc:
                dropped[cid] = str(exc)
        self._round_state["dropped"] = dropped
        if len(good) < self.min_clients:
            raise RoundFailed(f"round {round_}: only {len(good)} of the selected clients {announced} answered "
                              f"well, fewer than --min-clients {self.min_clients} (dropped: {dropped})", retryable=True)
        self._round_state.update(stats=good, stats_shape=shape,
                                 stats_codec=plan.stats_codec(self.public_key))
        return self._stats_sums(round_, sorted(good))

    def _stats_sums(self, round_: int, survivors: list[int]) -> dict[int, bytes]:
        """The 'stats_sum' messages of the survivors: their counts and maxima added, and their names."""
        state = self._round_state
        good = {c: state["stats"][c] for c in survivors}
        count = self._sum({c: m["count"] for c, m in good.items()}, "'stats' blob 'count'", shape=(1,), codec=None)
        maxabs = self._sum({c: m["maxabs"] for c, m in good.items()}, "'stats' blob 'maxabs'",
                           shape=state["stats_shape"], codec=state["stats_codec"])
        state["selected"] = survivors
        self.reports = {cid: m["report"] for cid, m in good.items()}
        reply = Message("stats_sum", round_, "server", {"survivors": survivors},
                        {"count": count.to_bytes(), "maxabs": maxabs.to_bytes()}).to_bytes()
        return {cid: reply for cid in survivors}

    @property
    def redoing_sums(self) -> bool:
        """Whether on_updates last returned new 'stats_sum' messages (deliver them, then call on_updates again).

        Each redo is for strictly fewer survivors, so a round redoes its sums at most K - min_clients times.
        """
        return bool(self._round_state.get("redoing_sums"))

    @property
    def participants(self) -> list[int]:
        """The current round's clients: the selection, less those dropped (the first one leads)."""
        return list(self._round_state.get("selected", []))

    @property
    def announced(self) -> list[int]:
        """The clients the current try of the round selected, before any was dropped."""
        return list(self._round_state.get("announced", []))

    @property
    def dropped(self) -> dict[int, str]:
        """The clients dropped from the current round, with the reason."""
        return dict(self._round_state.get("dropped", {}))

    @guarded
    def on_updates(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Adds the updates: ciphertext chunks (secure; returns decryption requests) or plain FedAvg."""
        if not self.secure:
            messages = self._replies(round_, replies, "update")
            cids = sorted(messages)
            parsed = {c: parse_plain_update(messages[c], round_, c) for c in cids}
            vectors = [vector_from_bytes(parsed[c][0], self.model_size) for c in cids]
            counts = [parsed[c][1] for c in cids]
            self.reports = {c: parsed[c][2] for c in cids}
            current = vector_from_bytes(self._global.blob("global"), self.model_size)
            new = fedavg(current, vectors, counts, self.avg)
            self._global = Message("global", round_, "server", {"model_round": round_},
                                   {"global": vector_to_bytes(new)})
            return {}
        state = self._round_state
        selected = state["selected"]
        plan, bounds = self._plan()
        codec = plan.update_codec(self.public_key)
        chunks = [j for j, (a, b) in enumerate(bounds) if b > a]
        parsed: dict[int, dict[int, fp.EncryptedArray]] = {}
        failed: dict[int, str] = {}
        for cid in selected:  # each client's update on its own: a failing one is dropped, the sums redone
            try:
                if cid not in replies:
                    raise ProtocolError("no reply")
                blobs = parse_secure_update(Message.from_bytes(replies[cid]), round_, cid, chunks)
                arrays = {}
                for j in chunks:
                    what = f"client {cid}'s 'update' blob 'chunk{j}'"
                    arrays[j] = load_array(blobs[j], self.public_key, what)
                    check_array(arrays[j], what, shape=(bounds[j][1] - bounds[j][0],), codec=codec, summands=1)
                parsed[cid] = arrays
            except ProtocolError as exc:
                failed[cid] = str(exc)
        state["redoing_sums"] = False
        if failed:
            survivors = [c for c in selected if c not in failed]
            state["dropped"].update({c: f"during the update: {why}" for c, why in failed.items()})
            if len(survivors) < self.min_clients:
                raise RoundFailed(f"round {round_}: the updates of clients {sorted(failed)} failed ({failed}), "
                                  f"leaving {len(survivors)} survivors, fewer than --min-clients {self.min_clients}",
                                  retryable=True)
            state["redoing_sums"] = True
            return self._stats_sums(round_, survivors)
        requests, aggregates = {}, {}
        for j, (a, b) in enumerate(bounds):  # every client gets a request (an empty chunk's has no aggregate)
            blobs = {}
            if b > a:
                try:
                    total = fp.sum_arrays([parsed[cid][j] for cid in selected])
                except fp.FastPaillierError as exc:
                    raise ProtocolError(f"the 'update' chunks {j} cannot be added: {exc}") from None
                blobs["aggregate"] = total.to_bytes()
            aggregates[j] = blobs
            requests[selected[j]] = Message("decrypt_request", round_, "server", {"chunk": j}, blobs).to_bytes()
        # From here on the survivors' updates are in one aggregate: a failure is no longer retryable.
        self._round_state.update(aggregates=aggregates, decryptors=list(selected), collected={},
                                 asked=set(range(len(selected))), leader=None)
        return requests

    @property
    def retrying(self) -> bool:
        """Whether on_shares last returned decryption retries (deliver them, then call on_shares again)."""
        return bool(self._round_state.get("retrying"))

    @property
    def leader(self) -> int | None:
        """The client that assembles (assembled) this round's global model, once the slices are in."""
        return self._round_state.get("leader")

    def _healthy(self) -> list[int]:
        """The round's survivors that have not been dropped since the sums, in selection order."""
        state = self._round_state
        return [c for c in state["selected"] if c not in state["dropped"]]

    @guarded
    def on_shares(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Relays the sealed decrypted slices to the round's leader, or asks other survivors for those missing.

        A decryptor whose slice is missing or fails its checks is dropped, and its chunk goes to another
        healthy survivor (see `retrying`), as often as survivors remain; the leader is the first healthy
        survivor once every slice is in.
        """
        state = self._round_state
        if state.get("round") != round_ or "decryptors" not in state:
            raise ProtocolError(f"'share' replies of round {round_} arrived outside that round's decryption")
        selected, decryptors, collected = state["selected"], state["decryptors"], state["collected"]
        failed: dict[int, str] = {}
        for j in sorted(state["asked"]):
            cid = decryptors[j]
            try:
                if cid not in replies:
                    raise ProtocolError("no reply")
                chunk, share = parse_share(Message.from_bytes(replies[cid]), round_, cid, len(selected))
                if chunk != j:
                    raise ProtocolError(f"client {cid} returned slice {chunk}, which it was not asked to decrypt")
                if self.verifiers is not None:
                    self.verifiers.open(share, share_context(round_, j), allowed={cid})
                collected[j] = share
            except ProtocolError as exc:
                failed[j] = str(exc)
                state["dropped"].setdefault(cid, f"during decryption: {exc}")
        state["retrying"], state["asked"] = False, set()
        missing = [j for j in range(len(decryptors)) if j not in collected]
        healthy = self._healthy()
        if missing and not healthy:
            raise RoundFailed(f"round {round_}: the decryption of chunks {missing} failed and no survivor is left "
                              f"to decrypt them (dropped: {state['dropped']})", retryable=False)
        if missing:  # one chunk per healthy survivor and exchange; the rest in the next exchange
            requests = {}
            for helper, j in zip(healthy, missing):
                decryptors[j] = helper
                state["asked"].add(j)
                fields = {"chunk": j} if helper == selected[j] else {"chunk": j, "retry_for": selected[j]}
                requests[helper] = Message("decrypt_request", round_, "server", fields,
                                           state["aggregates"][j]).to_bytes()
            state["retrying"] = True
            return requests
        return self._shares_for(healthy[0])

    def _shares_for(self, leader: int) -> dict[int, bytes]:
        """The 'shares' message that makes `leader` assemble the round's global model."""
        state = self._round_state
        state["leader"] = leader
        blobs = {f"share{j}": state["collected"][j] for j in range(len(state["decryptors"]))}
        fields = {"decryptors": list(state["decryptors"]), "leader": leader}
        return {leader: Message("shares", state["round"], "server", fields, blobs).to_bytes()}

    @guarded
    def on_global(self, round_: int, data: bytes | None) -> dict[int, bytes]:
        """Stores the leader's sealed new global model and returns {} (the round is complete).

        A leader that sends nothing (None) or a model that fails its checks is dropped and the next healthy
        survivor gets the slices instead: deliver the returned 'shares' message and call on_global again.
        """
        state = self._round_state
        leader = state.get("leader")
        if state.get("round") != round_ or leader is None:
            raise ProtocolError(f"a global model of round {round_} arrived before that round's slices were in")
        try:
            if data is None:
                raise ProtocolError("no reply")
            message = Message.from_bytes(data)
            if parse_global(message, sealed=True) != round_ or message.sender != f"client:{leader}":
                raise ProtocolError(f"the new global model must come from round {round_}'s leader, client {leader}, "
                                    f"as model_round {round_}; got {message.sender!r}, round {message.round}")
            if self.verifiers is not None:
                self.verifiers.open(message.blob("sealed_global"), global_context(round_), allowed={leader})
            self.install_global(data)
            self.sealed_by[round_] = leader
        except ProtocolError as exc:
            state["dropped"].setdefault(leader, f"during assembly: {exc}")
            healthy = self._healthy()
            if not healthy:
                raise RoundFailed(f"round {round_}: no survivor is left to assemble the model "
                                  f"(dropped: {state['dropped']})", retryable=False) from None
            return self._shares_for(healthy[0])
        return {}
