"""Tests for fedtrain.sealing: AES-GCM among the key-holding clients, keyed from the Paillier private key."""

from __future__ import annotations

import pytest

import fastpaillier as fp
from fedtrain.errors import ProtocolError
from fedtrain.sealing import SealingKey

SMALL_P = 0xF7E75FDC469067FFDC4E847C51F452DF
SMALL_Q = 0xE85CED54AF57E53E092113E62F436F4F


@pytest.fixture(scope="module")
def private_key() -> fp.PrivateKey:
    return fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True)


@pytest.fixture(scope="module")
def other_private_key() -> fp.PrivateKey:
    return fp.generate_keypair(512, insecure=True)[1]


@pytest.fixture
def key(private_key) -> SealingKey:
    return SealingKey(private_key, run_id="run-1")


@pytest.mark.parametrize("plaintext", [b"", b"x", b"global model bytes" * 1000, bytes(range(256))])
def test_round_trip(key, plaintext):
    sealed = key.seal(plaintext, "global:3")
    if len(plaintext) >= 16:  # (a 1-byte plaintext may turn up among random bytes by chance)
        assert plaintext not in sealed
    assert len(sealed) == 12 + len(plaintext) + 16  # nonce + ciphertext + tag
    assert key.open(sealed, "global:3") == plaintext


def test_another_instance_from_the_same_key_and_run_opens_it(private_key, key):
    copy = fp.PrivateKey.from_bytes(private_key.to_bytes(), insecure=True)  # as each client loads it
    assert SealingKey(copy, run_id="run-1").open(key.seal(b"report", "report:1:0"), "report:1:0") == b"report"


@pytest.mark.parametrize("context", ["global:4", "share:3:0", "report:3:1", "", "global:3 "])
def test_wrong_context_fails(key, context):
    sealed = key.seal(b"payload", "global:3")
    with pytest.raises(ProtocolError, match="fails authentication"):
        key.open(sealed, context)


def test_every_flipped_bit_fails(key):
    sealed = key.seal(b"sixteen byte msg", "share:1:0")
    for i in range(len(sealed)):
        for bit in (0, 7):
            tampered = bytearray(sealed)
            tampered[i] ^= 1 << bit
            with pytest.raises(ProtocolError):
                key.open(bytes(tampered), "share:1:0")


def test_truncated_or_extended_blob_fails(key):
    sealed = key.seal(b"payload", "ctx")
    for cut in (0, 1, 12, 27, len(sealed) - 1):
        with pytest.raises(ProtocolError):
            key.open(sealed[:cut], "ctx")
    with pytest.raises(ProtocolError):
        key.open(sealed + b"\x00", "ctx")


def test_key_from_another_private_key_fails(key, other_private_key):
    other = SealingKey(other_private_key, run_id="run-1")
    with pytest.raises(ProtocolError, match="another key"):
        other.open(key.seal(b"payload", "ctx"), "ctx")
    with pytest.raises(ProtocolError):
        key.open(other.seal(b"payload", "ctx"), "ctx")


def test_key_of_another_run_fails(private_key, key):
    with pytest.raises(ProtocolError):
        SealingKey(private_key, run_id="run-2").open(key.seal(b"payload", "ctx"), "ctx")


def test_two_seals_of_the_same_plaintext_differ(key):
    seals = {key.seal(b"same plaintext", "ctx") for _ in range(20)}
    assert len(seals) == 20
    assert len({s[:12] for s in seals}) == 20  # a fresh random nonce each time
    assert all(key.open(s, "ctx") == b"same plaintext" for s in seals)


def test_the_public_key_cannot_make_a_sealing_key(private_key):
    with pytest.raises(TypeError, match="PrivateKey"):
        SealingKey(private_key.public_key, run_id="run-1")
    public_copy = fp.PublicKey.from_bytes(private_key.public_key.to_bytes(), insecure=True)
    with pytest.raises(TypeError, match="PrivateKey"):
        SealingKey(public_copy, run_id="run-1")
