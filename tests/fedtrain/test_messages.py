"""Tests for fedtrain.messages: the byte format client and server exchange, and its parse errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from fedtrain.errors import ProtocolError
from fedtrain.messages import MAGIC, MAX_HEADER, VERSION, Message, vector_from_bytes, vector_to_bytes

HEAD = struct.Struct("<4sHI")


def sample_message() -> Message:
    return Message("update", 3, "client:1", {"chunk": 2, "model_round": 2, "names": ["a", "b"], "x": 1.5},
                   {"chunk0": b"\x00\x01\x02", "empty": b"", "chunk1": bytes(range(256))})


def raw(header: object, body: bytes = b"", *, magic: bytes = MAGIC, version: int = VERSION,
        head_len: int | None = None) -> bytes:
    """Hand-built message bytes: header is JSON-encoded unless it is already bytes."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return HEAD.pack(magic, version, len(head) if head_len is None else head_len) + head + body


def good_header(**changes: object) -> dict:
    header = {"kind": "stats", "round": 1, "sender": "client:0", "fields": {}, "blobs": [["a", 2]]}
    header.update(changes)
    return header


# -- round trip -----------------------------------------------------------------


def test_round_trip_keeps_fields_blobs_and_their_order():
    message = sample_message()
    data = message.to_bytes()
    assert isinstance(data, bytes) and data[:4] == MAGIC
    back = Message.from_bytes(data)
    assert back == message
    assert list(back.blobs) == ["chunk0", "empty", "chunk1"]
    assert back.get("names") == ["a", "b"] and back.blob("empty") == b""
    assert Message.from_bytes(bytearray(data)) == message
    assert Message.from_bytes(memoryview(data)) == message


def test_round_trip_without_fields_or_blobs():
    message = Message("shares", 7, "server")
    assert Message.from_bytes(message.to_bytes()) == message


def test_get_and_blob_name_what_is_missing():
    message = sample_message()
    with pytest.raises(ProtocolError, match="'samples' field"):
        message.get("samples")
    with pytest.raises(ProtocolError, match="'model' blob"):
        message.blob("model")


def test_expect_checks_kind_and_round():
    message = sample_message()
    assert message.expect("update", 3) is message
    with pytest.raises(ProtocolError, match="expected a 'stats' message of round 3"):
        message.expect("stats", 3)
    with pytest.raises(ProtocolError, match="round 4"):
        message.expect("update", 4)


def test_to_bytes_refuses_nan_fields():
    with pytest.raises(ValueError):
        Message("x", 1, "s", {"loss": float("nan")}).to_bytes()


# -- parse errors -----------------------------------------------------------------


def test_hand_built_good_message_parses():
    message = Message.from_bytes(raw(good_header(), b"xy"))
    assert message.kind == "stats" and message.blobs == {"a": b"xy"}


def test_bad_magic():
    data = bytearray(sample_message().to_bytes())
    data[0:4] = b"NOPE"
    with pytest.raises(ProtocolError, match="magic"):
        Message.from_bytes(bytes(data))


@pytest.mark.parametrize("version", [0, VERSION + 1, 0xFFFF])
def test_unsupported_version(version):
    with pytest.raises(ProtocolError, match="version"):
        Message.from_bytes(raw(good_header(), b"xy", version=version))


def test_every_truncation_is_a_protocol_error():
    data = Message("update", 1, "client:0", {"chunk": 0}, {"a": b"abc", "b": b"defg"}).to_bytes()
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            Message.from_bytes(data[:cut])


@pytest.mark.parametrize("extra", [b"\x00", b"trailing", bytes(100)])
def test_trailing_bytes(extra):
    with pytest.raises(ProtocolError, match="trailing"):
        Message.from_bytes(sample_message().to_bytes() + extra)


@pytest.mark.parametrize("head_len", [MAX_HEADER + 1, 0xFFFFFFFF])
def test_header_length_out_of_bounds(head_len):
    with pytest.raises(ProtocolError, match="out of bounds"):
        Message.from_bytes(raw(good_header(), b"xy", head_len=head_len))


@pytest.mark.parametrize("head", [
    b"{not json", b"", b"\xff\xfe\xfd", b'{"kind": "x"', b"[1, 2, 3]", b'"a string"', b"null", b"42",
    json.dumps({"round": 1, "sender": "s", "fields": {}, "blobs": []}).encode(),  # no kind
    json.dumps({"kind": "x", "round": 1, "sender": "s", "fields": {}}).encode(),  # no blobs
])
def test_malformed_json_header(head):
    with pytest.raises(ProtocolError):
        Message.from_bytes(raw(head))


def test_deeply_nested_header_is_a_protocol_error_not_a_recursion_error():
    head = (b'{"kind":"x","round":1,"sender":"s","fields":{"a":' + b"[" * 200_000 + b"]" * 200_000
            + b'},"blobs":[]}')
    assert len(head) < MAX_HEADER
    with pytest.raises(ProtocolError):
        Message.from_bytes(raw(head))


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_constants_are_rejected(constant):
    head = b'{"kind":"x","round":1,"sender":"s","fields":{"a":' + constant + b'},"blobs":[]}'
    with pytest.raises(ProtocolError):
        Message.from_bytes(raw(head))


@pytest.mark.parametrize("changes", [
    {"fields": []}, {"fields": "x"}, {"fields": None}, {"fields": [["a", 1]]},
    {"kind": 1}, {"kind": None}, {"round": "1"}, {"round": 1.0}, {"round": True}, {"round": None},
    {"sender": 5}, {"blobs": {"a": 2}}, {"blobs": "a"},
])
def test_header_fields_of_the_wrong_type(changes):
    with pytest.raises(ProtocolError):
        Message.from_bytes(raw(good_header(**changes), b"xy"))


@pytest.mark.parametrize("blobs, body", [
    ([["a", 3]], b"xy"),                      # claims more bytes than there are
    ([["a", 1]], b"xy"),                      # claims fewer: trailing byte
    ([["a", 1], ["b", 5]], b"xy"),            # the second blob runs past the end
    ([["a", 1], ["a", 1]], b"xy"),            # repeated name
    ([["a", -1]], b"xy"),                     # negative size
    ([["a", 2.0]], b"xy"),                    # float size
    ([["a", True], ["b", 1]], b"xy"),         # bool size
    ([["a"]], b"xy"),                         # no size
    ([["a", 2, 3]], b"xy"),                   # too many items
    ([[2, "a"]], b"xy"),                      # swapped
    ([{"name": "a", "size": 2}], b"xy"),      # not a pair
    (["a"], b"xy"),
    ([], b"xy"),                              # no table, but bytes
])
def test_blob_table_that_lies(blobs, body):
    with pytest.raises(ProtocolError):
        Message.from_bytes(raw(good_header(blobs=blobs), body))


# -- vectors ----------------------------------------------------------------------


def test_vector_round_trip_is_little_endian_float32():
    vector = np.array([0.0, -1.5, 3.25, 1e-8, 6.5e4], dtype=np.float64)
    data = vector_to_bytes(vector)
    assert data == vector.astype("<f4").tobytes()
    back = vector_from_bytes(data, vector.size)
    assert back.dtype == np.float32 and back.flags.writeable
    np.testing.assert_array_equal(back, vector.astype(np.float32))


@pytest.mark.parametrize("size", [0, 3, 5, 100])
def test_vector_of_wrong_length(size):
    data = vector_to_bytes(np.ones(4, dtype=np.float32))
    with pytest.raises(ProtocolError, match="expected"):
        vector_from_bytes(data, size)
    with pytest.raises(ProtocolError):
        vector_from_bytes(data + b"\x00", 4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_vector_with_non_finite_values(bad):
    vector = np.array([1.0, bad, 2.0], dtype=np.float32)
    with pytest.raises(ProtocolError, match="NaN or infinite"):
        vector_from_bytes(vector_to_bytes(vector), 3)


def test_kind_of_reads_the_header_only():
    from fedtrain.messages import kind_of

    data = Message("round_start", 3, "server", {"a": 1}, {"global": b"x" * 100}).to_bytes()
    assert kind_of(data) == "round_start"
    assert kind_of(data[:-10]) == "round_start"  # a truncated blob is from_bytes' to refuse, not the header's
    assert kind_of(b"not a message") is None and kind_of(data[:8]) is None
