"""The aggregation server: selects clients, relays messages and adds ciphertexts with the public key only.

By construction the server never holds a private key: its constructor accepts a
`fastpaillier.PublicKey` and nothing else, this module never touches `PrivateKey`
and does not import the sealing module, and in secure mode the global model it keeps
is an AES-GCM blob that only the clients can open.
"""

from __future__ import annotations

import numpy as np

import fastpaillier as fp

from .errors import ConfigError, ProtocolError
from .fedavg import AVERAGING_MODES, fedavg
from .messages import Message, vector_from_bytes, vector_to_bytes
from .secure_aggregation import ROUNDING_MODES

PRIVACY_MODES = ("paillier", "none", "dp")


def select_clients(num_clients: int, fraction: float, seed: int, round_: int) -> list[int]:
    """The clients of round `round_`: max(1, round(fraction * num_clients)) of them, at random."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    count = max(1, int(np.floor(fraction * num_clients + 0.5)))
    rng = np.random.default_rng([seed, round_, 0x5E1EC7])
    return sorted(int(c) for c in rng.choice(num_clients, size=count, replace=False))


class Server:
    """FedAvg server.  In "paillier" mode it only adds ciphertexts; in "none" and "dp" modes it averages plaintexts."""

    def __init__(self, *, num_clients: int, fraction: float, seed: int, privacy: str, avg: str,
                 value_bits: int, model_size: int, public_key: fp.PublicKey | None,
                 rounding: str = "nearest") -> None:
        if privacy not in PRIVACY_MODES:
            raise ConfigError(f"unknown privacy mode {privacy!r}; choose one of {', '.join(PRIVACY_MODES)}")
        if avg not in AVERAGING_MODES:
            raise ConfigError(f"unknown averaging {avg!r}; choose 'weighted' or 'mean'")
        if rounding not in ROUNDING_MODES:
            raise ConfigError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDING_MODES)}")
        if privacy == "paillier" and type(public_key) is not fp.PublicKey:
            raise ConfigError("the server takes a fastpaillier.PublicKey and nothing else (never a private key)")
        self.num_clients = num_clients
        self.fraction = fraction
        self.seed = seed
        self.privacy = privacy
        self.avg = avg
        self.value_bits = value_bits
        self.rounding = rounding
        self.model_size = model_size
        self.public_key = public_key if privacy == "paillier" else None
        self._global: Message | None = None
        self._round_state: dict = {}
        self.reports: dict[int, bytes | dict] = {}

    @property
    def secure(self) -> bool:
        return self.privacy == "paillier"

    # -- the global model -----------------------------------------------------
    def initialize(self, vector: np.ndarray) -> None:
        """Round 1 of Algorithm 3: the server's freshly initialized model, sent in plain (it is random)."""
        self._global = Message("global", 0, "server", {"model_round": 0}, {"global": vector_to_bytes(vector)})

    def install_global(self, data: bytes) -> None:
        """Stores a 'global' message (plain, or sealed by a client) as the current model."""
        message = Message.from_bytes(data)
        if message.kind != "global":
            raise ProtocolError(f"expected a 'global' message, got {message.kind!r}")
        if self.secure and "sealed_global" not in message.blobs and int(message.get("model_round")) > 0:
            raise ProtocolError("in secure mode a trained global model must arrive sealed")
        self._global = Message("global", message.round, "server", {"model_round": int(message.get("model_round"))},
                               dict(message.blobs))

    def global_message(self) -> bytes:
        """The current global model as the server keeps it (sealed in secure mode), with the round's reports."""
        if self._global is None:
            raise ProtocolError("the server has no global model yet; call initialize() first")
        return self._global.to_bytes()

    @property
    def model_round(self) -> int:
        return int(self._global.get("model_round")) if self._global is not None else -1

    # -- a round --------------------------------------------------------------
    def start_round(self, round_: int) -> dict[int, bytes]:
        """Selects the round's clients and sends each the global model and the round's settings."""
        if self.model_round != round_ - 1:
            raise ProtocolError(f"round {round_} cannot start from a model of round {self.model_round}")
        selected = select_clients(self.num_clients, self.fraction, self.seed, round_)
        self._round_state = {"round": round_, "selected": selected}
        self.reports = {}
        fields = {"model_round": self.model_round, "privacy": self.privacy, "avg": self.avg,
                  "value_bits": self.value_bits, "rounding": self.rounding, "selected": selected, "leader": selected[0]}
        message = Message("round_start", round_, "server", fields, dict(self._global.blobs)).to_bytes()
        return {cid: message for cid in selected}

    def _replies(self, round_: int, replies: dict[int, bytes], kind: str) -> dict[int, Message]:
        selected = self._round_state.get("selected", [])
        if self._round_state.get("round") != round_ or sorted(replies) != selected:
            raise ProtocolError(f"round {round_}: expected {kind!r} replies from clients {selected}, "
                                f"got {sorted(replies)}")
        return {cid: Message.from_bytes(data).expect(kind, round_) for cid, data in replies.items()}

    def _sum(self, blobs: list[bytes]) -> fp.EncryptedArray:
        arrays = [fp.EncryptedArray.from_bytes(b, self.public_key) for b in blobs]
        return fp.sum_arrays(arrays)

    def on_stats(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Secure mode: adds the encrypted counts and per-tensor maxima and returns the sums."""
        messages = self._replies(round_, replies, "stats")
        count = self._sum([m.blob("count") for m in messages.values()])
        maxabs = self._sum([m.blob("maxabs") for m in messages.values()])
        self.reports = {cid: m.blob("report") for cid, m in messages.items()}
        reply = Message("stats_sum", round_, "server", {},
                        {"count": count.to_bytes(), "maxabs": maxabs.to_bytes()}).to_bytes()
        return {cid: reply for cid in messages}

    def on_updates(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Adds the updates: ciphertext chunks (secure; returns decryption requests) or plain FedAvg."""
        messages = self._replies(round_, replies, "update")
        if not self.secure:
            cids = sorted(messages)
            vectors = [vector_from_bytes(messages[c].blob("model"), self.model_size) for c in cids]
            counts = [int(messages[c].get("samples")) for c in cids]
            self.reports = {c: messages[c].get("report") for c in cids}
            current = vector_from_bytes(self._global.blob("global"), self.model_size)
            new = fedavg(current, vectors, counts, self.avg)
            self._global = Message("global", round_, "server", {"model_round": round_},
                                   {"global": vector_to_bytes(new)})
            return {}
        selected = self._round_state["selected"]
        chunks = set()
        for name in {name for m in messages.values() for name in m.blobs}:
            if not (name.startswith("chunk") and name[5:].isdigit() and int(name[5:]) < len(selected)):
                raise ProtocolError(f"unexpected update blob {name!r}")
            chunks.add(int(name[5:]))
        requests = {}
        for j in sorted(chunks):
            total = self._sum([m.blob(f"chunk{j}") for m in messages.values()])
            requests[selected[j]] = Message("decrypt_request", round_, "server", {"chunk": j},
                                            {"aggregate": total.to_bytes()}).to_bytes()
        return requests

    def on_shares(self, round_: int, replies: dict[int, bytes]) -> dict[int, bytes]:
        """Relays the sealed decrypted slices to the round's leader."""
        selected = self._round_state["selected"]
        blobs = {}
        for cid, data in replies.items():
            message = Message.from_bytes(data).expect("share", round_)
            j = int(message.get("chunk"))
            if cid not in selected or selected.index(cid) != j:
                raise ProtocolError(f"client {cid} returned slice {j}, which it was not asked to decrypt")
            blobs[f"share{j}"] = message.blob("share")
        leader = selected[0]
        return {leader: Message("shares", round_, "server", {}, blobs).to_bytes()}

    def on_global(self, round_: int, data: bytes) -> None:
        """Stores the leader's sealed new global model; the round is complete."""
        message = Message.from_bytes(data).expect("global", round_)
        if int(message.get("model_round")) != round_:
            raise ProtocolError("the new global model is labelled with the wrong round")
        self.install_global(data)
