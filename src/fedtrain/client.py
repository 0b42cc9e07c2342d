"""A hospital's side of the protocol: trains locally, encrypts its update, decrypts its slice of the sum.

Clients hold the shared Paillier key pair (the paper's setting), the AES-GCM
sealing key derived from it, and each its own signing key.  They speak to the
server only through `handle`, which takes a message's bytes and returns the
reply's bytes; a key-holding client answers each step of a round at most once
and every refused step with a decoy of the same size (see `handle`).

torch is imported when the model is first needed (training, the local update): a client built with
its model's layout and no data (Flower's ClientApp for the steps after training) never imports it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

import fastpaillier as fp

from .authentication import Signer, Verifiers
from .config import DPConfig, LocalTrainingConfig
from .errors import ConfigError, FedTrainError, ProtocolError
from .fedavg import ModelLayout, TensorSlot, apply_delta, clamp_variances, flatten_state, unflatten_into
from .messages import Message, vector_from_bytes, vector_to_bytes
from .progress import PhaseEnd, PhaseHook, step_name
from .protocol import (DEFAULT_MIN_CLIENTS, MIN_CLIENTS_FLOOR, PREVIOUS_GLOBAL, SEAL_PREVIOUS, check_array,
                       decryptors_of, global_context, guarded, int_field, is_int, load_array, parse_decrypt_request,
                       parse_global, parse_round_start, parse_shares, parse_stats_sum, report_context, share_context,
                       shares_of)
from .sealing import SealingKey, SignedSealing
from .secure_aggregation import (EncodingPlan, chunk_bounds, quantize, rounding_bound, rounding_rng,
                                 scale_statistics, scaled_update, scales_from_statistics, tensor_max_abs, unscale)

if TYPE_CHECKING:
    import torch

    from .data import ImageSet

ProgressFactory = Callable[[int, int], Callable[[int, int, int], None] | None]


def _ciphertexts(array: fp.EncryptedArray) -> int:
    """How many ciphertexts an encrypted array holds (a packed codec puts several values in each)."""
    return array.nbytes // (8 * array.public_key.nsq_limbs)


def _now() -> tuple[float, float]:
    """(wall clock, CPU time of this process's threads) in seconds."""
    return time.perf_counter(), time.process_time()


REPORT_BYTES = 512  # sealed training reports are padded to this size, so that a refusal's has the same size
OK, REFUSED = b"\x00", b"\x01"  # first byte of a sealed share or global model: the round went well, or not


def pad_report(report: dict) -> bytes:
    """A training report as JSON padded with spaces to REPORT_BYTES."""
    data = json.dumps(report).encode()
    if len(data) > REPORT_BYTES:
        raise ProtocolError(f"a training report of {len(data)} bytes exceeds {REPORT_BYTES}")
    return data.ljust(REPORT_BYTES)


@dataclass(frozen=True)
class GlobalModel:
    """An opened global model: its vector, the rounds it has seen, and whether its last round was refused."""

    vector: np.ndarray
    model_round: int
    refused: bool = False


class ModelCodec:
    """Turns the shared model architecture into flat vectors and back."""

    def __init__(self, model_name: str, num_classes: int, *, dp_compatible: bool = False) -> None:
        from .models import build_model

        self.model = build_model(model_name, num_classes=num_classes, dp_compatible=dp_compatible)
        self.template = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.layout = ModelLayout.of(self.template)

    def load(self, vector: np.ndarray) -> torch.nn.Module:
        """The model with its floating-point state set from `vector`."""
        self.model.load_state_dict(unflatten_into(self.template, self.layout, vector))
        return self.model

    def vector(self) -> np.ndarray:
        """The model's current floating-point state as a float32 vector."""
        return flatten_state(self.model.state_dict(), self.layout)


def layout_to_json(layout: ModelLayout) -> str:
    """A model layout as JSON (what a Flower ClientApp keeps in its node's Context between messages)."""
    return json.dumps([[s.name, list(s.shape), s.offset, s.size] for s in layout.slots])


def layout_from_json(text: str) -> ModelLayout:
    """The layout layout_to_json wrote."""
    return ModelLayout(tuple(TensorSlot(str(n), tuple(int(d) for d in shape), int(o), int(z))
                             for n, shape, o, z in json.loads(text)))


def open_global(message: Message, sealing: SignedSealing | None, size: int) -> tuple[np.ndarray, int]:
    """(global model vector, rounds it has seen) from a message carrying it plainly or sealed."""
    opened = open_global_model(message, sealing, size)
    return opened.vector, opened.model_round


def open_global_model(message: Message, sealing: SignedSealing | None, size: int, *,
                      sealed_by: set[int] | None = None) -> GlobalModel:
    """The global model of a message carrying it plainly or sealed (signed by a client in `sealed_by`)."""
    sealed = "sealed_global" in message.blobs
    if message.kind == "global":
        model_round = parse_global(message, sealed=sealed)
    else:  # a round_start message carries the global model's blob and round (parse_round_start checked them)
        model_round = int_field(message, "model_round", low=0)
    if sealed:
        if sealing is None:
            raise ProtocolError("received a sealed global model but holds no sealing key")
        data = sealing.open(message.blob("sealed_global"), global_context(model_round), allowed=sealed_by)
        if data[:1] not in (OK, REFUSED):
            raise ProtocolError(f"sealed global model of round {model_round} has an unknown status byte")
        return GlobalModel(vector_from_bytes(data[1:], size), model_round, data[:1] == REFUSED)
    return GlobalModel(vector_from_bytes(message.blob("global"), size), model_round)


class Client:
    """One federated client: its data, its model replica, and (secure mode) the shared keys."""

    def __init__(self, cid: int, data: ImageSet | None, *, model_name: str, num_classes: int,
                 training: LocalTrainingConfig, device: torch.device, seed: int,
                 private_key: fp.PrivateKey | None, run_id: str, precompute: bool = False,
                 progress: ProgressFactory | None = None, dp: DPConfig | None = None,
                 total_epochs: int = 1, num_clients: int | None = None,
                 min_clients: int = DEFAULT_MIN_CLIENTS, signer: Signer | None = None,
                 verifiers: Verifiers | None = None, on_phase: PhaseHook | None = None,
                 layout: ModelLayout | None = None) -> None:
        if data is None and layout is None:
            raise ConfigError(f"client {cid} needs its training images, or its model's layout for the steps "
                              "after training")
        if data is not None and len(data) == 0:
            raise ConfigError(f"client {cid} has no training images; use fewer clients")
        self.cid = cid
        self.num_clients = num_clients if num_clients is not None else cid + 1 + (1 << 20)
        self._headroom = num_clients  # fixes the statistics grid for every round (see EncodingPlan.headroom)
        if isinstance(min_clients, bool) or not isinstance(min_clients, int) or min_clients < MIN_CLIENTS_FLOOR:
            raise ConfigError(f"min_clients must be an integer of at least {MIN_CLIENTS_FLOOR}, got {min_clients!r}")
        self.min_clients = min_clients
        self.data = data
        self.training = training
        self.device = device
        self.seed = seed
        self._model_spec = (model_name, num_classes, dp is not None)
        self._models: ModelCodec | None = None
        self._layout = layout
        if dp is not None and data is None:
            raise ConfigError(f"a DP-SGD client {cid} needs its training images")
        if dp is not None:
            from .differential_privacy import DPTrainer

            self.dp = DPTrainer(dp, samples=len(data), batch_size=training.batch_size, total_epochs=total_epochs)
        else:
            self.dp = None
        if layout is None:
            self._layout = self.models.layout
        self._key = private_key
        if private_key is not None and (signer is None or signer.cid != cid or verifiers is None):
            raise ConfigError(f"client {cid} holds the Paillier key but not its own signing key and the "
                              "verification table; make them with fedtrain.authentication.derive_all")
        self._sealing = SignedSealing(SealingKey(private_key, run_id=run_id), verifiers, signer) \
            if private_key is not None else None
        # round -> the survivors that may sign its model (one of them leads), for rounds this client decrypted in
        self._signers: dict[int, set[int]] = {}
        self._precompute = precompute
        self._progress = progress
        self._on_phase = on_phase  # told as each step of a round ends (train, encrypt, decrypt)
        self._made = 0  # ciphertexts encrypted since the last step ended
        self._step: tuple[int, str] = (0, "")  # round and kind of the message being handled
        self._state: dict = {}
        self._last_start = (0, 0)  # (round, attempt) last started: each starts once, and in order
        self._last_global: np.ndarray | None = None
        # (round, model, status byte) this client assembled from a folded start's slices (reused by a new try)
        self._assembled: tuple[int, np.ndarray, bytes] | None = None
        self.refusals: list[tuple[int, str, str]] = []  # (round, message kind, reason), kept by the client only
        self.timings: dict[str, float] = {}
        self.cpu_timings: dict[str, float] = {}  # CPU seconds of this process (all threads), per phase

    @property
    def num_samples(self) -> int:
        if self.data is None:
            raise ProtocolError(f"client {self.cid} was built without its training data (steps after training only)")
        return len(self.data)

    @property
    def models(self) -> ModelCodec:
        """The model replica (built, and torch imported, on first use)."""
        if self._models is None:
            name, num_classes, dp_compatible = self._model_spec
            self._models = ModelCodec(name, num_classes, dp_compatible=dp_compatible)
            if self._layout is not None and self._models.layout != self._layout:
                raise ConfigError(f"client {self.cid}: the model's layout differs from the one it was given")
        return self._models

    @property
    def layout(self) -> ModelLayout:
        """Which tensors the flat model vector holds, and where."""
        return self._layout

    # -- dispatch -------------------------------------------------------------
    def handle(self, data: bytes) -> bytes | None:
        """Processes one message from the server and returns the reply (None if there is none).

        A key-holding client answers each step of a round at most once, and answers every failure
        with a decoy of the reply's size and timing class (no accept/reject oracle; the reason is kept
        in `refusals`).  A client without a key (plain modes) raises ProtocolError instead.
        """
        try:
            message = Message.from_bytes(data)
        except ProtocolError as exc:
            if self._key is None:
                raise
            self.refusals.append((-1, "?", str(exc)))
            return None  # not even a message: its sender knows that, and learns nothing from silence
        self._step = (message.round, message.kind)  # names the steps in the phase events (progress only)
        seal_previous = message.fields.pop(SEAL_PREVIOUS, None) is True and self._key is not None
        handler = {"round_start": self._on_round_start, "stats_sum": self._on_stats_sum,
                   "decrypt_request": self._on_decrypt_request, "shares": self._on_shares}.get(message.kind)
        if handler is None:
            if self._key is None:
                raise ProtocolError(f"client {self.cid} got an unexpected {message.kind!r} message")
            self.refusals.append((message.round, message.kind, "unexpected message kind"))
            return None
        try:
            reply = guarded(handler)(message)
        except ProtocolError as exc:
            if self._key is None:
                raise
            reply = guarded(self._decoy)(message, str(exc))
        sealed = self._seal_start_model(message.round) if reply is not None and seal_previous else None
        if sealed is not None:
            reply.blobs[PREVIOUS_GLOBAL] = sealed
        return None if reply is None else reply.to_bytes()

    def _seal_start_model(self, r: int) -> bytes | None:
        """The model this client started round r from, sealed as round r - 1's global model (folded rounds).

        The server asks one client of a folded round for it, to keep the previous round's model.  It is
        the assembled model, or (slices refused) the model round r - 1 started from, flagged REFUSED, as a
        leader would have sealed it.  None where this client did not start round r: every such failure is
        of public data (the messages the server sent, this client's own lost state), so leaving the blob
        out tells the server nothing it could not know, and it asks another client.
        """
        state = self._state if self._state.get("round") == r else {}
        if state.get("global") is None:
            return None
        status = REFUSED if state.get("start_refused") else OK
        return self._sealing.seal(status + vector_to_bytes(state["global"]), global_context(r - 1))

    # -- refusals: decoys of the size and timing class of the real reply ------
    def _refuse(self, r: int, kind: str, reason: str) -> None:
        """Records a refusal and marks round r failed, so that its later steps are refused too."""
        self.refusals.append((r, kind, reason))
        if self._state.get("round") == r and not self._state.get("failed"):
            self._state["failed"] = reason

    def _decoy(self, message: Message, reason: str) -> Message:
        """The reply to a refused message: same kind and size as a real one, carrying nothing."""
        r = message.round
        self._refuse(r, message.kind, reason)
        state = self._state if self._state.get("round") == r else {}
        plan = state.get("plan") or EncodingPlan(16, self.min_clients)
        if plan.summands < MIN_CLIENTS_FLOOR:  # a round too small to have codecs at all: a valid plan instead
            plan = dataclasses.replace(plan, summands=self.min_clients)
        pk = self._key.public_key
        if message.kind == "round_start":
            zeros = np.zeros(self.layout.num_tensors)
            return self._stats_reply(r, plan, 0, zeros, {"client": self.cid, "refused": True})
        if message.kind == "stats_sum":
            return self._update_reply(r, plan, np.zeros(self.layout.size), len(state.get("selected", ())))
        if message.kind == "decrypt_request":
            selected = state.get("selected") or [self.cid]
            j = selected.index(self.cid) if self.cid in selected else 0
            asked = message.fields.get("chunk")
            if isinstance(asked, int) and not isinstance(asked, bool) and 0 <= asked < len(selected):
                j = asked  # a decoy of the size of the slice asked for
            a, b = chunk_bounds(self.layout.size, len(selected), plan.update_codec(pk).slots)[j]
            return self._share_reply(r, j, REFUSED, np.zeros(b - a, dtype=plan.relay_dtype()))
        previous = state.get("global", self._last_global)
        if previous is None:
            previous = np.zeros(self.layout.size, dtype=np.float32)
        return self._global_reply(r, REFUSED, previous)

    def _stats_reply(self, r: int, plan: EncodingPlan, count: int, maxima: np.ndarray, report: dict) -> Message:
        stats_codec = plan.stats_codec(self._key.public_key)
        enc_count = self._key.encrypt(np.array([count], dtype=np.int64))
        enc_max = stats_codec.encrypt(maxima, self._key)
        self._made += _ciphertexts(enc_count) + _ciphertexts(enc_max)
        sealed = self._sealing.seal(pad_report(report), report_context(r, self.cid))
        return self._reply("stats", r, {}, {"count": enc_count.to_bytes(), "maxabs": enc_max.to_bytes(),
                                            "report": sealed})

    def _update_reply(self, r: int, plan: EncodingPlan, x: np.ndarray, parts: int) -> Message:
        codec = plan.update_codec(self._key.public_key)
        blobs = {}
        for j, (a, b) in enumerate(chunk_bounds(x.size, max(parts, 1), codec.slots)):
            if b > a:
                chunk = codec.encrypt(x[a:b], self._key)
                self._made += _ciphertexts(chunk)
                blobs[f"chunk{j}"] = chunk.to_bytes()
        return self._reply("update", r, {}, blobs)

    def _share_reply(self, r: int, j: int, status: bytes, values: np.ndarray) -> Message:
        sealed = self._sealing.seal(status + values.tobytes(), share_context(r, j))
        return self._reply("share", r, {"chunk": j}, {"share": sealed})

    def _global_reply(self, r: int, status: bytes, vector: np.ndarray) -> Message:
        sealed = self._sealing.seal(status + vector_to_bytes(vector), global_context(r))
        return self._reply("global", r, {"model_round": r}, {"sealed_global": sealed})

    def _tick(self, phase: str, start: tuple[float, float]) -> None:
        """Adds a step's time to its phase, and tells `on_phase` that the step has ended."""
        wall, cpu = _now()
        self.timings[phase] = self.timings.get(phase, 0.0) + wall - start[0]
        self.cpu_timings[phase] = self.cpu_timings.get(phase, 0.0) + cpu - start[1]
        made, self._made = self._made, 0
        if self._on_phase is not None:
            round_, kind = self._step
            self._on_phase(PhaseEnd(self.cid, round_, phase, wall - start[0], made if phase == "encrypt" else 0,
                                    step_name(kind, phase)))

    def _reply(self, kind: str, round_: int, fields: dict | None = None, blobs: dict | None = None) -> Message:
        return Message(kind, round_, f"client:{self.cid}", fields or {}, blobs or {})

    # -- phase 1: train -------------------------------------------------------
    def _on_round_start(self, message: Message) -> Message:
        r = message.round
        attempt = message.fields.get("attempt")
        start_key = (r, attempt if is_int(attempt) else 0)
        if start_key <= self._last_start:
            raise ProtocolError(f"'round_start' message of round {r}, attempt {attempt!r}: round "
                                f"{self._last_start[0]}, attempt {self._last_start[1]} was already started (each "
                                "try of a round starts once, in order)")
        if r in self._signers:  # a second aggregate with this update in it would tell the two apart
            raise ProtocolError(f"'round_start' message field 'attempt' = {attempt!r}: this client's update of round "
                                f"{r} was already in an aggregate that was decrypted; a round restarts only before "
                                "decryption")
        self._last_start = start_key
        previous, self._state = self._state, {"round": r, "answered": {"round_start"}}
        settings = parse_round_start(message, self.num_clients)
        plan = EncodingPlan(settings.value_bits, len(settings.selected), rounding=settings.rounding,
                            weighted=settings.avg == "weighted", headroom=self._headroom)
        self._state.update(plan=plan, stats_plan=plan, selected=list(settings.selected))
        if self.cid not in settings.selected:
            raise ProtocolError(f"'round_start' message field 'selected' = {list(settings.selected)} does not "
                                f"include client {self.cid}")
        self.timings, self.cpu_timings = {}, {}
        start = _now()
        if self._key is not None and settings.privacy != "paillier":
            raise ProtocolError(f"'round_start' message field 'privacy' = {settings.privacy!r}: a key-holding client "
                                "sends its update encrypted only")
        status = OK
        if settings.decryptors is not None:  # folded: this client assembles round r - 1's model from its slices
            if self._key is None:
                raise ProtocolError("a folded 'round_start' carries sealed slices, but this client holds no key")
            global_vector, status = self._assemble_folded(message, settings, previous)
            model_round = settings.model_round
        else:
            if self._key is not None and settings.model_round > 0 and "sealed_global" not in message.blobs:
                raise ProtocolError("'round_start' message lacks the 'sealed_global' blob: a trained model must "
                                    "arrive sealed")
            opened = open_global_model(message, self._sealing, self.layout.size,
                                       sealed_by=self._signers.get(settings.model_round))
            global_vector, model_round = opened.vector, opened.model_round
        if model_round != r - 1:
            raise ProtocolError(f"round {r} started from a model of round {model_round}")
        self._last_global = global_vector
        secure = settings.privacy == "paillier"
        if secure and self._key is None:
            raise ProtocolError("'round_start' message field 'privacy' = 'paillier', but this client holds no key")
        if secure and len(settings.selected) < self.min_clients:
            raise ProtocolError(f"'round_start' message field 'selected' names {len(settings.selected)} clients, "
                                f"fewer than this client's minimum of {self.min_clients}")
        if secure and self._precompute:
            self._start_precompute(plan)
        if self.data is None:
            raise ProtocolError(f"client {self.cid} was built without its training data and cannot train")
        from .training import local_rng, train_local

        model = self.models.load(global_vector)
        bar = self._progress(self.cid, r) if self._progress else None
        with local_rng(self.seed, r, self.cid, device=self.device) as generator:
            if self.dp is not None:
                loss = self.dp.train(model, self.data, self.training, device=self.device, generator=generator,
                                     progress=bar)
            else:
                loss = train_local(model, self.data, self.training, device=self.device, generator=generator,
                                   progress=bar)
        model.to("cpu")
        local = self.models.vector()
        self._tick("train", start)
        report = {"client": self.cid, "train_loss": loss, "samples": self.num_samples}
        if self.dp is not None:
            report["epsilon"] = self.dp.epsilon()
        if not secure:
            return self._reply("update", r, {"samples": self.num_samples, "report": report},
                               {"model": vector_to_bytes(local)})
        start = _now()
        delta = local.astype(np.float64) - global_vector.astype(np.float64)
        count = self.num_samples if settings.avg == "weighted" else 1
        try:
            stats = scale_statistics(tensor_max_abs(delta, self.layout), count, plan)
        except FedTrainError as exc:  # training diverged: take part with nothing (timing as usual)
            self._refuse(r, "round_start", str(exc))
            count, stats, report = 0, np.zeros(self.layout.num_tensors), {"client": self.cid,
                                                                                 "refused": True}
        self._state.update({"global": global_vector, "start_refused": status == REFUSED, "delta": delta, "count": count})
        reply = self._stats_reply(r, plan, count, stats, report)
        self._tick("encrypt", start)
        return reply

    def _start_precompute(self, plan: EncodingPlan) -> None:
        """Fills the key's obfuscator pool in the background while the model trains."""
        codec = plan.update_codec(self._key.public_key)
        needed = codec.rows_for(self.layout.size) + len(self.layout.slots) + 1
        needed -= self._key.public_key.obfuscators_available
        if needed > 0:
            self._key.precompute_obfuscators(needed, background=True)

    # -- phase 2: encrypt the scaled update -----------------------------------
    def _on_stats_sum(self, message: Message) -> Message:
        r = message.round
        count_blob, maxabs_blob, survivors = parse_stats_sum(message, r, self.num_clients)
        state = self._state
        step = "stats_sum"
        if state.get("round") == r and "stats_sum" in state.get("answered", ()):
            # sums redone without a client lost during the update: answered once more, for fewer survivors only
            if len(survivors) >= len(state["selected"]) or "decrypt_request" in state["answered"]:
                raise ProtocolError(f"client {self.cid} already answered round {r}'s 'stats_sum' step")
            step = f"stats_sum/{len(survivors)}"
        state = self._require_state(r, step)
        start = _now()
        pk = self._key.public_key
        if not set(survivors) <= set(state["selected"]) or self.cid not in survivors \
                or len(survivors) < self.min_clients:
            raise ProtocolError(f"'stats_sum' message field 'survivors' = {survivors} must be at least "
                                f"{self.min_clients} of the selected clients {state['selected']}, this one included")
        k = len(survivors)
        enc_total = load_array(count_blob, pk, "'stats_sum' blob 'count'")
        check_array(enc_total, "'stats_sum' blob 'count'", shape=(1,), codec=None, summands=k)
        enc_scales = load_array(maxabs_blob, pk, "'stats_sum' blob 'maxabs'")
        check_array(enc_scales, "'stats_sum' blob 'maxabs'", shape=(self.layout.num_tensors,),
                    codec=state["stats_plan"].stats_codec(pk), summands=k)
        # The round goes on with the survivors: chunks, decryptors, leader and codec are theirs from here on.
        state.update(selected=survivors, plan=dataclasses.replace(state["plan"], summands=k))
        total = int(self._key.decrypt(enc_total)[0])
        summed = self._key.decrypt(enc_scales).astype(np.float64)
        scales = scales_from_statistics(summed, total) if total > 0 else np.full(summed.shape, np.nan)
        self._tick("decrypt", start)
        start = _now()
        plan: EncodingPlan = state["plan"]
        # The checks below depend on secrets: a failure sends zeros, encrypted as usual (no oracle).
        x = np.zeros(self.layout.size)
        if not (state["count"] <= total and np.all(np.isfinite(scales)) and np.all(scales >= 0)):
            self._refuse(r, "stats_sum", "aggregated statistics are inconsistent with this client's own")
        else:
            x = scaled_update(state["delta"], state["count"] / total, scales, self.layout)
            if not np.all(np.abs(x) <= 1.0):
                self._refuse(r, "stats_sum", "the aggregated maxima do not bound this client's update")
                x = np.zeros(self.layout.size)
            else:
                x = quantize(x, plan, rounding_rng(self.seed, r, self.cid))
        state["scales"] = scales
        reply = self._update_reply(r, plan, x, len(state["selected"]))
        self._tick("encrypt", start)
        return reply

    # -- phase 3: decrypt one slice of the aggregate -------------------------
    def _on_decrypt_request(self, message: Message) -> Message:
        r = message.round
        asked = message.fields.get("chunk")
        step = f"decrypt_retry/{asked}" if "retry_for" in message.fields else "decrypt_request"
        state = self._require_state(r, step)
        self._signers[r] = set(state["selected"])  # final now: round r's model must be signed by one of them
        start = _now()
        selected, plan = state["selected"], state["plan"]
        j, blob, retry_for = parse_decrypt_request(message, r, len(selected), self.num_clients)
        owner = self.cid if retry_for is None else retry_for
        if owner not in selected or j != selected.index(owner) or (retry_for is not None and retry_for == self.cid):
            raise ProtocolError(f"'decrypt_request' message field 'chunk' = {j}: client {self.cid} decrypts chunk "
                                f"{selected.index(self.cid)}, and once each the chunks of survivors that dropped")
        codec = plan.update_codec(self._key.public_key)
        a, b = chunk_bounds(self.layout.size, len(selected), codec.slots)[j]
        if (blob is None) != (b == a):
            raise ProtocolError(f"'decrypt_request' message {'lacks' if blob is None else 'has'} an 'aggregate' "
                                f"blob, but chunk {j} of the round's plan is {'not ' if blob is None else ''}empty")
        status, decoded = OK, np.zeros(b - a, dtype=plan.relay_dtype())
        if blob is not None:
            aggregate = load_array(blob, self._key.public_key, "'decrypt_request' blob 'aggregate'")
            check_array(aggregate, "'decrypt_request' blob 'aggregate'", shape=(b - a,), codec=codec,
                        summands=len(selected))
            try:  # whether decoding succeeds depends on the plaintext: a failure is answered like a success
                decoded = self._key.decrypt(aggregate).astype(plan.relay_dtype())
            except fp.FastPaillierError:
                self._refuse(r, "decrypt_request", f"aggregate chunk {j} does not decode")
                status = REFUSED
        if state.get("failed"):
            status, decoded = REFUSED, np.zeros(b - a, dtype=plan.relay_dtype())
        reply = self._share_reply(r, j, status, decoded)
        self._tick("decrypt", start)
        return reply

    # -- phase 4 (round leader): assemble the new global model --------------
    def _on_shares(self, message: Message) -> Message:
        r = message.round
        state = self._require_state(r, "shares")
        start = _now()
        shares, decryptors, leader = parse_shares(message, r, state["selected"])
        if leader != self.cid:
            raise ProtocolError(f"'shares' message field 'leader' = {leader}: it was sent to client {self.cid}")
        reply = self._global_reply(r, OK, self._assemble(state, r, shares, decryptors))
        self._tick("decrypt", start)
        return reply

    def _assemble_folded(self, message: Message, settings, previous: dict) -> tuple[np.ndarray, bytes]:
        """(round r - 1's model, status byte) from a folded start's slices and this client's round r - 1 state.

        Whatever fails here is answered as the leader of an unfolded round answers it: the round's start
        model, flagged REFUSED (the caller trains from it).  A new try of the round reuses the first result.
        """
        prior = settings.model_round
        if self._assembled is not None and self._assembled[0] == prior:
            return self._assembled[1], self._assembled[2]
        if previous.get("round") != prior or "decrypt_request" not in previous.get("answered", ()) \
                or "shares" in previous.get("answered", ()):
            raise ProtocolError(f"a folded 'round_start' of round {settings.round} went to client {self.cid}, "
                                f"which did not decrypt in round {prior} (or assembled its model already)")
        try:
            if previous.get("failed"):
                raise ProtocolError(f"round {prior} was refused: {previous['failed']}")
            survivors = previous["selected"]
            decryptors = decryptors_of(message, survivors)
            vector, status = self._assemble(previous, prior, shares_of(message, survivors), decryptors), OK
        except ProtocolError as exc:
            self.refusals.append((prior, "round_start", f"assembling round {prior}'s model: {exc}"))
            vector = previous.get("global", self._last_global)
            if vector is None:
                vector = np.zeros(self.layout.size, dtype=np.float32)
            status = REFUSED
        previous["answered"].add("shares")
        self._assembled = (prior, vector, status)
        return vector, status

    def _assemble(self, state: dict, r: int, shares: dict[int, bytes], decryptors: list[int]) -> np.ndarray:
        """Round r's new global model from its sealed slices (each signed by its decryptor) and the round's state."""
        plan: EncodingPlan = state["plan"]
        size = self.layout.size
        codec = plan.update_codec(self._key.public_key)
        decoded = np.empty(size, dtype=np.float64)
        bounds = chunk_bounds(size, len(state["selected"]), codec.slots)
        refused = []
        for j, (a, b) in enumerate(bounds):
            raw = self._sealing.open(shares[j], share_context(r, j), allowed={decryptors[j]})
            part = np.frombuffer(raw[1:], dtype=plan.relay_dtype())
            if part.size != b - a:
                raise ProtocolError(f"share {j} holds {part.size} values, expected {b - a}")
            if raw[:1] != OK:
                refused.append(j)
            decoded[a:b] = part
        if refused:  # a client refused a step: the round leaves the model as it was, flagged
            raise ProtocolError(f"the clients decrypting chunks {refused} refused round {r}")
        delta = unscale(decoded, state["scales"], self.layout)
        new_global = clamp_variances(apply_delta(state["global"], delta), self.layout)
        if not np.all(np.isfinite(new_global)):
            raise ProtocolError(f"the decrypted slices of round {r} give a model with NaN or infinite values")
        return new_global

    def rounding_bound(self) -> np.ndarray | None:
        """Per-position bound on the codec's error in this client's last secure round (None before one)."""
        state = self._state
        if "scales" not in state:
            return None
        return rounding_bound(state["scales"], state["plan"], len(state["selected"]), self.layout)

    def _require_state(self, r: int, step: str) -> dict:
        """The state of round r, for a step answered at most once; ProtocolError otherwise."""
        if self._state.get("round") != r or "plan" not in self._state:
            raise ProtocolError(f"client {self.cid} got a round-{r} {step!r} message out of order")
        if step in self._state["answered"]:
            raise ProtocolError(f"client {self.cid} already answered round {r}'s {step!r} step")
        self._state["answered"].add(step)
        if self._state.get("failed") and step not in ("decrypt_request", "decrypt_retry"):
            raise ProtocolError(f"round {r} was refused: {self._state['failed']}")
        return self._state

    # -- what a client carries from one message to the next ------------------
    def export_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The client's state between messages: (JSON-able fields, named arrays); no key material.

        A Flower ClientApp handles each message in a fresh process: it keeps this in its Context's
        state (held by the hospital's SuperNode, never sent to the SuperLink) and hands it to
        `restore_state` of the client it builds for the next message.  Covers the round in progress
        (plan, survivors, steps answered, the local update), the rounds this client decrypted in, the
        last round started, the refusals and the round's timings.  DP-SGD's accountant is not covered.
        """
        if self.dp is not None:
            raise ConfigError("a DP-SGD client's accountant cannot be carried between messages; "
                              "use privacy 'paillier'")
        fields: dict[str, list] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, value in self._state.items():
            if isinstance(value, np.ndarray):
                arrays[f"state.{name}"] = value
            elif isinstance(value, EncodingPlan):
                fields[name] = ["plan", dataclasses.asdict(value)]
            elif isinstance(value, (set, frozenset)):
                fields[name] = ["set", sorted(value)]
            else:
                fields[name] = ["value", list(value) if isinstance(value, tuple) else value]
        if self._last_global is not None:
            arrays["last_global"] = self._last_global
        if self._assembled is not None:
            arrays["assembled"] = self._assembled[1]
        meta = {"assembled": None if self._assembled is None else [self._assembled[0], self._assembled[2].hex()],
                "state": fields, "signers": {str(r): sorted(c) for r, c in self._signers.items()},
                "last_start": list(self._last_start), "refusals": [list(r) for r in self.refusals],
                "timings": dict(self.timings), "cpu_timings": dict(self.cpu_timings)}
        return json.loads(json.dumps(meta)), arrays

    def restore_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Takes up the state export_state() gave (of this client, in this run)."""
        state: dict = {}
        for name, (tag, value) in meta["state"].items():
            state[name] = EncodingPlan(**value) if tag == "plan" else set(value) if tag == "set" else value
        for key, array in arrays.items():
            if key.startswith("state."):
                state[key[len("state."):]] = np.array(array, copy=True)
        self._state = state
        self._last_global = np.array(arrays["last_global"], copy=True) if "last_global" in arrays else None
        made = meta.get("assembled")
        self._assembled = None if made is None else (int(made[0]), np.array(arrays["assembled"], copy=True),
                                                     bytes.fromhex(made[1]))
        self._signers = {int(r): set(c) for r, c in meta["signers"].items()}
        self._last_start = (int(meta["last_start"][0]), int(meta["last_start"][1]))
        self.refusals = [(int(r), str(k), str(why)) for r, k, why in meta["refusals"]]
        self.timings, self.cpu_timings = dict(meta["timings"]), dict(meta["cpu_timings"])

    def seal_global(self, vector: np.ndarray, model_round: int) -> bytes:
        """A 'global' message for the server holding `vector` sealed (used when resuming a run)."""
        return self._global_reply(model_round, OK, vector).to_bytes()
