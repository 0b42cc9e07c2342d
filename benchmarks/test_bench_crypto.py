"""The operations of bench_crypto.py as pytest-benchmark benchmarks, with phe 1.5 as the reference.

    pytest benchmarks/test_bench_crypto.py --benchmark-only [--bench-bits 2048] [--bench-threads 1]

One key of --bench-bits bits per session; every fastpaillier call gets threads=--bench-threads.
phe 1.5 (pure Python on gmpy2, 1 thread: it holds the GIL) uses the same n, p, q.  A table holds
the benchmarks of one operation on one batch size, so their times compare directly; extra_info
holds the time per ciphertext (or per value, for the packed tables).  Every result is checked
after it is timed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier.testing import ciphertext_ints

# (test id, attribute of the Keys fixture, what it computes)
ENCRYPTIONS = [
    ("fastpaillier-public", "pk", "classic randomness r^n mod n^2, public key"),
    ("fastpaillier-private-crt", "sk", "classic randomness r^n, computed by CRT (private key)"),
    ("fastpaillier-public-djn", "djn_pk", "DJN fixed-base randomness h_s^a (comb table mod n^2), public key"),
    ("fastpaillier-private-djn-crt", "djn_sk", "DJN randomness h_s^a by CRT (tables mod p^2, q^2), private key"),
]


@dataclass
class Work:
    """The inputs of every benchmark, built once per module outside the timed calls."""

    plaintexts: np.ndarray         # encrypt_batch int64 values below 2^62
    encrypted: fp.EncryptedArray   # decrypt_batch encryptions
    add_a: fp.EncryptedArray       # addition operands, add_batch each, as encrypt() returns them
    add_b: fp.EncryptedArray
    mul_in: fp.EncryptedArray      # multiply_batch encryptions
    scalar: int                    # a random 32-bit scalar
    codec: fp.PackedCodec
    packed_values: np.ndarray      # float32 in [-1, 1), packed_ciphertexts ciphertexts' worth
    packed: fp.EncryptedArray      # their packed encryption


@pytest.fixture(scope="module")
def work(settings: Any, fp_keys: Any) -> Work:
    rng = np.random.default_rng()
    sk, djn_sk = fp_keys.sk, fp_keys.djn_sk
    all_cores = os.cpu_count() or 1

    def values(count: int) -> np.ndarray:
        return rng.integers(0, 2**62, size=count, dtype=np.int64)

    codec = fp.PackedCodec(fp_keys.pk, value_bits=16, max_summands=8)
    packed_values = rng.uniform(-1, 1, size=codec.slots * settings.packed_ciphertexts).astype(np.float32)
    return Work(
        plaintexts=values(settings.encrypt_batch),
        encrypted=sk.encrypt(values(settings.decrypt_batch), threads=all_cores),
        add_a=djn_sk.encrypt(values(settings.add_batch), threads=all_cores),
        add_b=djn_sk.encrypt(values(settings.add_batch), threads=all_cores),
        mul_in=sk.encrypt(values(settings.multiply_batch), threads=all_cores),
        scalar=secrets.randbits(31) | (1 << 31),
        codec=codec, packed_values=packed_values, packed=codec.encrypt(packed_values, sk, threads=all_cores))


@dataclass
class PheKeys:
    pk: Any
    sk: Any
    version: str


@pytest.fixture(scope="module")
def phe_keys(fp_keys: Any) -> PheKeys:
    """phe 1.5 on the session key's n, p, q (skipped where phe is not installed)."""
    phe = pytest.importorskip("phe")
    from phe import paillier

    pk = paillier.PaillierPublicKey(fp_keys.pk.n)
    return PheKeys(pk, paillier.PaillierPrivateKey(pk, fp_keys.sk.p, fp_keys.sk.q), phe.__version__)


def phe_numbers(phe_keys: PheKeys, array: fp.EncryptedArray) -> list:
    """fastpaillier ciphertexts as phe EncryptedNumbers (integers, exponent 0): the same ciphertexts."""
    from phe import paillier

    return [paillier.EncryptedNumber(phe_keys.pk, c, 0) for c in ciphertext_ints(array)]


def plaintext_ints(sk: fp.PrivateKey, array: fp.EncryptedArray) -> list[int]:
    """Decryptions m mod n as Python ints."""
    return [int.from_bytes(row.tobytes(), "little") for row in sk.decrypt_limbs(array)]


# ---- encryption, decryption -------------------------------------------------------------------

@pytest.mark.parametrize("key, setting", [(key, setting) for _, key, setting in ENCRYPTIONS],
                         ids=[test_id for test_id, _, _ in ENCRYPTIONS])
def test_encrypt(measure, settings, fp_keys, work, key, setting):
    encrypt_key = getattr(fp_keys, key)
    out = measure(lambda: encrypt_key.encrypt(work.plaintexts, threads=settings.threads),
                  group=settings.group("encrypt"), items=work.plaintexts.size, setting=setting)
    assert np.array_equal(fp_keys.sk.decrypt(out), work.plaintexts)


def test_encrypt_phe(measure, settings, fp_keys, work, phe_keys):
    ints = [int(m) for m in work.plaintexts]
    out = measure(lambda: [phe_keys.pk.encrypt(m) for m in ints], group=settings.group("encrypt"),
                  items=len(ints), library=f"phe {phe_keys.version}", setting="phe.encrypt(int), r^n via gmpy2",
                  threads=1)
    assert [phe_keys.sk.decrypt(c) for c in out[:4]] == ints[:4]


def test_decrypt(measure, settings, fp_keys, work):
    expected = fp_keys.sk.decrypt(work.encrypted)
    out = measure(lambda: fp_keys.sk.decrypt(work.encrypted, threads=settings.threads),
                  group=settings.group("decrypt"), items=work.encrypted.size, setting="CRT decryption to int64")
    assert np.array_equal(out, expected)


def test_decrypt_phe(measure, settings, fp_keys, work, phe_keys):
    numbers = phe_numbers(phe_keys, work.encrypted)
    out = measure(lambda: [phe_keys.sk.decrypt(c) for c in numbers], group=settings.group("decrypt"),
                  items=len(numbers), library=f"phe {phe_keys.version}", setting="phe CRT decryption", threads=1)
    assert out == fp_keys.sk.decrypt(work.encrypted).tolist()


# ---- homomorphic operations -------------------------------------------------------------------

def test_add(measure, settings, fp_keys, work):
    n = fp_keys.pk.n
    out = measure(lambda: work.add_a.add(work.add_b, threads=settings.threads), group=settings.group("add"),
                  items=work.add_a.size, unit="pairs", setting="a + b on two arrays returned by encrypt()")
    a, b, total = (plaintext_ints(fp_keys.sk, x) for x in (work.add_a, work.add_b, out))
    assert total == [(x + y) % n for x, y in zip(a, b)]


def test_add_phe(measure, settings, fp_keys, work, phe_keys):
    a, b = phe_numbers(phe_keys, work.add_a), phe_numbers(phe_keys, work.add_b)
    out = measure(lambda: [x + y for x, y in zip(a, b)], group=settings.group("add"), items=len(a), unit="pairs",
                  library=f"phe {phe_keys.version}", setting="EncryptedNumber + EncryptedNumber", threads=1)
    n = fp_keys.pk.n
    assert [phe_keys.sk.raw_decrypt(c.ciphertext(False)) for c in out[:4]] == \
        [(x + y) % n for x, y in zip(plaintext_ints(fp_keys.sk, work.add_a)[:4],
                                     plaintext_ints(fp_keys.sk, work.add_b)[:4])]


def test_multiply(measure, settings, fp_keys, work):
    k, n = work.scalar, fp_keys.pk.n
    out = measure(lambda: work.mul_in.multiply(k, threads=settings.threads), group=settings.group("multiply"),
                  items=work.mul_in.size, setting="ciphertext * random 32-bit scalar", scalar=k)
    assert plaintext_ints(fp_keys.sk, out) == [m * k % n for m in plaintext_ints(fp_keys.sk, work.mul_in)]


def test_multiply_phe(measure, settings, fp_keys, work, phe_keys):
    k = work.scalar
    numbers = phe_numbers(phe_keys, work.mul_in)
    out = measure(lambda: [c * k for c in numbers], group=settings.group("multiply"), items=len(numbers),
                  library=f"phe {phe_keys.version}", setting="EncryptedNumber * int", threads=1, scalar=k)
    assert phe_keys.sk.decrypt(out[0]) == plaintext_ints(fp_keys.sk, work.mul_in)[0] * k


# ---- packed values ----------------------------------------------------------------------------

@pytest.mark.parametrize("key, setting", [(key, setting) for _, key, setting in ENCRYPTIONS],
                         ids=[test_id for test_id, _, _ in ENCRYPTIONS])
def test_packed_encrypt(measure, settings, fp_keys, work, key, setting):
    encrypt_key = getattr(fp_keys, key)
    values = work.packed_values
    public = encrypt_key.public_key if isinstance(encrypt_key, fp.PrivateKey) else encrypt_key
    # A DJN key has its own fingerprint (h_s included), so it gets its own codec of the same parameters.
    codec = work.codec if public == work.codec.public_key else fp.PackedCodec(public, value_bits=16, max_summands=8)
    out = measure(lambda: codec.encrypt(values, encrypt_key, threads=settings.threads),
                  group=settings.group("packed encrypt", values=values.size), items=values.size, unit="values",
                  setting=f"{codec!r}; {setting}")
    assert np.abs(fp_keys.sk.decrypt(out) - values).max() <= codec.max_rounding_error(1)


def test_packed_decrypt(measure, settings, fp_keys, work):
    codec, values = work.codec, work.packed_values
    out = measure(lambda: fp_keys.sk.decrypt(work.packed, threads=settings.threads),
                  group=settings.group("packed decrypt", values=values.size), items=values.size, unit="values",
                  setting=f"{codec!r}; CRT decryption and decoding")
    assert np.abs(out - values).max() <= codec.max_rounding_error(1)
