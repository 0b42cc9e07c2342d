"""The secure round's message schemas: every field and blob name is checked here before anything uses it.

Each `parse_*` function takes a parsed `Message` and the facts the receiver
already knows (its round, the number of clients, the round's plan) and returns
typed values, or raises `ProtocolError` naming the message kind and the field.
Unknown fields and blobs are refused, so a new field must be added here first.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import fastpaillier as fp

from .errors import ProtocolError
from .messages import Message
from .secure_aggregation import ROUNDING_MODES

_INDEX = re.compile(r"(?:0|[1-9][0-9]*)")  # ASCII digits, no leading zeros ("chunk²" and "chunk01" fail)
MIN_CLIENTS_FLOOR = 2  # no configuration may aggregate fewer updates than this
DEFAULT_MIN_CLIENTS = 3
MAX_ATTEMPTS = 10  # tries of one round (a new selection each) that a client takes part in
T = TypeVar("T")


def global_context(model_round: int) -> str:
    """Associated data (seal and signature) of the global model after `model_round` rounds."""
    return f"global:{model_round}"


def share_context(round_: int, chunk: int) -> str:
    """Associated data of the decrypted slice `chunk` of round `round_`."""
    return f"share:{round_}:{chunk}"


def report_context(round_: int, cid: int) -> str:
    """Associated data of client `cid`'s training report of round `round_`."""
    return f"report:{round_}:{cid}"


def is_int(value: Any) -> bool:
    """A JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_names(message: Message, *, fields: Iterable[str] = (), blobs: Iterable[str] = ()) -> None:
    """Refuses a message whose field or blob names differ from the expected ones."""
    for what, expected, present in (("field", set(fields), set(message.fields)),
                                    ("blob", set(blobs), set(message.blobs))):
        extra, missing = sorted(present - expected), sorted(expected - present)
        if extra:
            raise ProtocolError(f"{message.kind!r} message has unexpected {what} {extra[0]!r}")
        if missing:
            raise ProtocolError(f"{message.kind!r} message lacks the {missing[0]!r} {what}")


def check_header(message: Message, kind: str, round_: int, sender: str) -> None:
    """Refuses a message of another kind, round or sender."""
    if message.kind != kind:
        raise ProtocolError(f"field 'kind': expected {kind!r}, got {message.kind!r}")
    if message.round != round_:
        raise ProtocolError(f"{kind!r} message field 'round': expected {round_}, got {message.round}")
    if message.sender != sender:
        raise ProtocolError(f"{kind!r} message field 'sender': expected {sender!r}, got {message.sender!r}")


def int_field(message: Message, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """The integer field `name` (not a bool, not a float), within [low, high] where given."""
    value = message.get(name)
    if not is_int(value):
        raise ProtocolError(f"{message.kind!r} message field {name!r} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ProtocolError(f"{message.kind!r} message field {name!r} = {value} is outside [{low}, {high}]")
    return value


def choice_field(message: Message, name: str, choices: Iterable[str]) -> str:
    """The string field `name`, one of `choices`."""
    value, allowed = message.get(name), tuple(choices)
    if not isinstance(value, str) or value not in allowed:
        raise ProtocolError(f"{message.kind!r} message field {name!r} must be one of {allowed}, got {value!r}")
    return value


def client_ids_field(message: Message, name: str, num_clients: int) -> list[int]:
    """The field `name`: a non-empty, strictly increasing list of client ids below `num_clients`."""
    value = message.get(name)
    if not (isinstance(value, list) and value and all(is_int(c) and 0 <= c < num_clients for c in value)
            and all(a < b for a, b in zip(value, value[1:]))):
        raise ProtocolError(f"{message.kind!r} message field {name!r} must be a sorted list of distinct client "
                            f"ids in [0, {num_clients}), got {value!r}")
    return list(value)


def blob_index(message: Message, name: str, prefix: str, limit: int) -> int:
    """j for a blob named prefix + j (ASCII digits, no leading zeros) with j < limit."""
    digits = name[len(prefix):] if name.startswith(prefix) else None
    if digits is None or not _INDEX.fullmatch(digits) or int(digits) >= limit:
        raise ProtocolError(f"{message.kind!r} message has unexpected blob {name!r} (expected {prefix}0 .. "
                            f"{prefix}{limit - 1})")
    return int(digits)


def client_id_of(sender: str, num_clients: int) -> int:
    """The id in a sender string 'client:<id>'."""
    digits = sender[len("client:"):] if sender.startswith("client:") else ""
    if not _INDEX.fullmatch(digits) or int(digits) >= num_clients:
        raise ProtocolError(f"field 'sender' must be 'client:<id>' with id < {num_clients}, got {sender!r}")
    return int(digits)


def load_array(data: bytes, public_key: fp.PublicKey, what: str) -> fp.EncryptedArray:
    """Parses ciphertexts; any fastpaillier error becomes a ProtocolError naming `what`."""
    try:
        return fp.EncryptedArray.from_bytes(data, public_key)
    except fp.FastPaillierError as exc:
        raise ProtocolError(f"{what} is not a valid encrypted array: {exc}") from None


def check_array(array: fp.EncryptedArray, what: str, *, shape: tuple[int, ...],
                codec: fp.PackedCodec | None, summands: int) -> None:
    """Refuses an encrypted array whose shape, codec or summand count differs from the round's plan."""
    if array.shape != shape:
        raise ProtocolError(f"{what} has shape {array.shape}, the round's plan says {shape}")
    if (array.codec is None) != (codec is None) or (
            codec is not None and (type(array.codec) is not type(codec) or array.codec.params() != codec.params())):
        raise ProtocolError(f"{what} uses codec {array.codec!r}, the round's plan says {codec!r}")
    if array.summands != summands:
        raise ProtocolError(f"{what} sums {array.summands} encryptions, the round's plan says {summands}")


# -- server -> client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundStart:
    """The settings of a round as announced by the server, validated."""

    round: int
    model_round: int
    attempt: int
    privacy: str
    avg: str
    value_bits: int
    rounding: str
    selected: tuple[int, ...]
    leader: int
    # A folded start (Server.defer_assembly): who decrypted each chunk of round model_round, whose sealed
    # slices the message carries instead of a model; None when it carries the model itself.
    decryptors: tuple[int, ...] | None = None


ROUND_START_FIELDS = ("model_round", "attempt", "privacy", "avg", "value_bits", "rounding", "selected", "leader")
SEAL_PREVIOUS = "seal_previous"  # field of any server message of a folded round: seal its start model too
PREVIOUS_GLOBAL = "previous_global"  # blob of the reply to it: that model, sealed as global_context(round - 1)


def parse_round_start(message: Message, num_clients: int) -> RoundStart:
    """Validates a 'round_start' message (its global model blob is checked by whoever opens it)."""
    check_header(message, "round_start", message.round, "server")
    if not is_int(message.round) or message.round < 1:
        raise ProtocolError(f"'round_start' message field 'round' must be a positive integer, got {message.round}")
    folded = "decryptors" in message.fields
    if folded:  # the slices of the previous round, which each client assembles itself (no leader exchange)
        decryptors = message.get("decryptors")
        if not (isinstance(decryptors, list) and decryptors and all(is_int(c) and 0 <= c < num_clients
                                                                    for c in decryptors)):
            raise ProtocolError(f"'round_start' message field 'decryptors' must list a client id per chunk, "
                                f"got {decryptors!r}")
        check_names(message, fields=ROUND_START_FIELDS + ("decryptors",),
                    blobs=[f"share{j}" for j in range(len(decryptors))])
    else:
        check_names(message, fields=ROUND_START_FIELDS,
                    blobs=["sealed_global"] if "sealed_global" in message.blobs else ["global"])
    model_round = int_field(message, "model_round", low=0, high=message.round - 1)
    if folded and model_round != message.round - 1:
        raise ProtocolError(f"a folded 'round_start' of round {message.round} must carry the slices of round "
                            f"{message.round - 1}, not of round {model_round}")
    attempt = int_field(message, "attempt", low=0, high=MAX_ATTEMPTS - 1)
    privacy = choice_field(message, "privacy", ("paillier", "none", "dp"))
    avg = choice_field(message, "avg", ("weighted", "mean"))
    value_bits = int_field(message, "value_bits", low=4, high=40)
    rounding = choice_field(message, "rounding", ROUNDING_MODES)
    selected = client_ids_field(message, "selected", num_clients)
    leader = int_field(message, "leader", low=0, high=num_clients - 1)
    if leader != selected[0]:
        raise ProtocolError(f"'round_start' message field 'leader' = {leader} is not the first selected client "
                            f"{selected[0]}")
    return RoundStart(message.round, model_round, attempt, privacy, avg, value_bits, rounding, tuple(selected), leader,
                      tuple(message.get("decryptors")) if folded else None)


def parse_stats_sum(message: Message, round_: int, num_clients: int) -> tuple[bytes, bytes, list[int]]:
    """(encrypted count sum, encrypted maxima sum, the clients they sum) of a 'stats_sum' message."""
    check_header(message, "stats_sum", round_, "server")
    check_names(message, fields=("survivors",), blobs=("count", "maxabs"))
    survivors = client_ids_field(message, "survivors", num_clients)
    return message.blob("count"), message.blob("maxabs"), survivors


def parse_decrypt_request(message: Message, round_: int, parts: int,
                          num_clients: int) -> tuple[int, bytes | None, int | None]:
    """(chunk index, its aggregate or None for an empty chunk, the dropped client it stands in for or None)."""
    check_header(message, "decrypt_request", round_, "server")
    retry = "retry_for" in message.fields
    check_names(message, fields=("chunk", "retry_for") if retry else ("chunk",),
                blobs=("aggregate",) if "aggregate" in message.blobs else ())
    chunk = int_field(message, "chunk", low=0, high=parts - 1)
    retry_for = int_field(message, "retry_for", low=0, high=num_clients - 1) if retry else None
    return chunk, message.blobs.get("aggregate"), retry_for


def parse_shares(message: Message, round_: int,
                 survivors: list[int]) -> tuple[dict[int, bytes], list[int], int]:
    """(the sealed slice of each chunk j, who decrypted it, who assembles the model) of a 'shares' message."""
    check_header(message, "shares", round_, "server")
    check_names(message, fields=("decryptors", "leader"), blobs=[f"share{j}" for j in range(len(survivors))])
    leader = message.get("leader")
    if not (is_int(leader) and leader in survivors):
        raise ProtocolError(f"'shares' message field 'leader' must be one of the survivors {survivors}, "
                            f"got {leader!r}")
    return shares_of(message, survivors), decryptors_of(message, survivors), leader


def decryptors_of(message: Message, survivors: list[int]) -> list[int]:
    """The field 'decryptors' of a message carrying slices: one of the round's `survivors` per chunk."""
    decryptors = message.get("decryptors")
    if not (isinstance(decryptors, list) and len(decryptors) == len(survivors)
            and all(is_int(c) and c in survivors for c in decryptors)):
        raise ProtocolError(f"{message.kind!r} message field 'decryptors' must list one of the survivors "
                            f"{survivors} per chunk, got {decryptors!r}")
    return list(decryptors)


def shares_of(message: Message, survivors: list[int]) -> dict[int, bytes]:
    """The sealed slice of each chunk j (blob 'share<j>') of a message carrying a round's slices."""
    return {j: message.blob(f"share{j}") for j in range(len(survivors))}


# -- client -> server ---------------------------------------------------------------------------


def parse_stats(message: Message, round_: int, cid: int) -> dict[str, bytes]:
    """The blobs of a client's 'stats' reply."""
    check_header(message, "stats", round_, f"client:{cid}")
    check_names(message, blobs=("count", "maxabs", "report"))
    return dict(message.blobs)


def parse_secure_update(message: Message, round_: int, cid: int, chunks: Iterable[int]) -> dict[int, bytes]:
    """The ciphertext chunks of a client's secure 'update' reply: exactly 'chunk<j>' for each planned j."""
    check_header(message, "update", round_, f"client:{cid}")
    expected = sorted(chunks)
    for name in message.blobs:
        blob_index(message, name, "chunk", max(expected, default=-1) + 1)
    check_names(message, blobs=[f"chunk{j}" for j in expected])
    return {j: message.blob(f"chunk{j}") for j in expected}


def parse_plain_update(message: Message, round_: int, cid: int) -> tuple[bytes, int, dict]:
    """(model vector bytes, sample count, report) of a plain 'update' reply."""
    check_header(message, "update", round_, f"client:{cid}")
    check_names(message, fields=("samples", "report"), blobs=("model",))
    samples = int_field(message, "samples", low=1)
    report = message.get("report")
    if not (isinstance(report, dict) and is_int(report.get("samples")) and report["samples"] >= 1
            and isinstance(report.get("train_loss"), (int, float)) and not isinstance(report["train_loss"], bool)):
        raise ProtocolError("'update' message field 'report' must hold integer 'samples' and numeric 'train_loss'")
    return message.blob("model"), samples, report


def parse_share(message: Message, round_: int, cid: int, parts: int) -> tuple[int, bytes]:
    """(chunk index, sealed slice) of a client's 'share' reply."""
    check_header(message, "share", round_, f"client:{cid}")
    check_names(message, fields=("chunk",), blobs=("share",))
    return int_field(message, "chunk", low=0, high=parts - 1), message.blob("share")


def parse_global(message: Message, *, sealed: bool) -> int:
    """The model round of a 'global' message (whose blob is 'sealed_global', or 'global' for a plain model)."""
    if message.kind != "global":
        raise ProtocolError(f"field 'kind': expected 'global', got {message.kind!r}")
    blob = "sealed_global" if sealed else "global"
    check_names(message, fields=("model_round",), blobs=(blob,))
    model_round = int_field(message, "model_round", low=0)
    if model_round != message.round:
        raise ProtocolError(f"'global' message field 'model_round' = {model_round} differs from its round "
                            f"{message.round}")
    return model_round


def guarded(handler: Callable[..., T]) -> Callable[..., T]:
    """Wraps a message handler so that any failure leaves it as a ProtocolError (fastpaillier's included)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return handler(*args, **kwargs)
        except ProtocolError:
            raise
        except Exception as exc:  # noqa: BLE001 - the contract: nothing else leaves a handler
            raise ProtocolError(f"{handler.__name__}: {type(exc).__name__}: {exc}") from exc

    return wrapper
