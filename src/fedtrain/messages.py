"""The only thing client and server exchange: a self-describing byte message (JSON header + binary blobs).

Layout: b"FTMS" | u16 version | u32 header length | header (UTF-8 JSON) | blobs back to back.
The header holds the kind, round, sender, scalar fields and the names and sizes of
the blobs.  Nothing is pickled, so a message from an untrusted peer can only fail
to parse (ProtocolError), never run code.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ProtocolError

MAGIC = b"FTMS"
VERSION = 1
_HEAD = struct.Struct("<4sHI")
MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class Message:
    """A protocol message: kind, round, sender, JSON-able fields and named binary blobs."""

    kind: str
    round: int
    sender: str
    fields: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Serializes the message."""
        header = {
            "kind": self.kind, "round": self.round, "sender": self.sender, "fields": self.fields,
            "blobs": [[name, len(data)] for name, data in self.blobs.items()],
        }
        head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
        return b"".join([_HEAD.pack(MAGIC, VERSION, len(head)), head, *self.blobs.values()])

    @classmethod
    def from_bytes(cls, data: bytes) -> "Message":
        """Parses and validates a message; any defect raises ProtocolError."""
        view = memoryview(data)
        kind, rnd, sender, fields, blob_sizes, pos = _parse_header(view)
        blobs: dict[str, bytes] = {}
        for entry in blob_sizes:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                    and _is_int(entry[1]) and entry[1] >= 0):
                raise ProtocolError("message blob table is malformed")
            name, size = entry
            if pos + size > len(view) or name in blobs:
                raise ProtocolError(f"message blob {name!r} is truncated or repeated")
            blobs[name] = bytes(view[pos:pos + size])
            pos += size
        if pos != len(view):
            raise ProtocolError(f"message has {len(view) - pos} trailing bytes")
        return cls(kind, rnd, sender, fields, blobs)

    def expect(self, kind: str, round_: int) -> "Message":
        """Returns self, raising ProtocolError unless it is a `kind` message of round `round_`."""
        if self.kind != kind or self.round != round_:
            raise ProtocolError(f"expected a {kind!r} message of round {round_}, got {self.kind!r} of round "
                                f"{self.round}")
        return self

    def blob(self, name: str) -> bytes:
        """The blob `name`; ProtocolError if absent."""
        try:
            return self.blobs[name]
        except KeyError:
            raise ProtocolError(f"{self.kind!r} message lacks the {name!r} blob") from None

    def get(self, name: str) -> Any:
        """The field `name`; ProtocolError if absent."""
        try:
            return self.fields[name]
        except KeyError:
            raise ProtocolError(f"{self.kind!r} message lacks the {name!r} field") from None


def _parse_header(view: memoryview) -> tuple[str, int, str, dict, list, int]:
    """(kind, round, sender, fields, blob table, offset of the first blob) of a message; ProtocolError if bad."""
    if len(view) < _HEAD.size:
        raise ProtocolError(f"message of {len(view)} bytes is shorter than its {_HEAD.size}-byte header")
    magic, version, head_len = _HEAD.unpack_from(view)
    if magic != MAGIC:
        raise ProtocolError("not a fedtrain message (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"message version {version} is not supported (this fedtrain speaks {VERSION})")
    if head_len > MAX_HEADER or _HEAD.size + head_len > len(view):
        raise ProtocolError("message header length is out of bounds")
    try:
        header = json.loads(bytes(view[_HEAD.size:_HEAD.size + head_len]), parse_constant=_no_constant)
        kind, rnd, sender = header["kind"], header["round"], header["sender"]
        fields, blob_sizes = header["fields"], header["blobs"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"message header is malformed: {exc}") from None
    if not (isinstance(kind, str) and _is_int(rnd) and isinstance(sender, str)
            and isinstance(fields, dict) and isinstance(blob_sizes, list)):
        raise ProtocolError("message header has fields of the wrong type")
    return kind, rnd, sender, fields, blob_sizes, _HEAD.size + head_len


def kind_of(data: bytes) -> str | None:
    """The kind in a message's header, read without copying its blobs (None where the header is not valid)."""
    try:
        return _parse_header(memoryview(data))[0]
    except ProtocolError:
        return None


def _is_int(value: Any) -> bool:
    """A JSON integer (json parses true/false as bools, which are ints to isinstance)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _no_constant(name: str) -> Any:
    """json's hook for NaN/Infinity: refused, as to_bytes refuses them (allow_nan=False)."""
    raise ValueError(f"non-finite number {name} in message header")


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """A float32 vector as little-endian bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes, size: int) -> np.ndarray:
    """Parses a float32 vector of exactly `size` values."""
    if len(data) != 4 * size:
        raise ProtocolError(f"model vector has {len(data)} bytes, expected {4 * size}")
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise ProtocolError("model vector holds NaN or infinite values")
    return vector
