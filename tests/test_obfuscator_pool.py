"""The offline obfuscator pool: used once, drained first, falls back when dry."""

from __future__ import annotations

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier.obfuscator_pool import ObfuscatorPool


@pytest.fixture()
def fresh_small_keys(small_primes):
    """A key object of its own, so pools filled here do not leak into other tests."""
    sk = fp.PrivateKey(*small_primes, insecure=True)
    return sk.public_key, sk


def test_pool_never_hands_out_the_same_obfuscator_twice(fresh_small_keys):
    pk, sk = fresh_small_keys
    pool = ObfuscatorPool(pk)
    pool.fill(40, None, threads=2)
    pool.fill(25, sk, threads=1)
    assert len(pool) == 65
    taken = [pool.take(7) for _ in range(9)]  # 63, crossing chunk boundaries
    taken.append(pool.take(10))  # only 2 left
    assert [len(t) for t in taken] == [7] * 9 + [2]
    assert len(pool) == 0 and pool.take(5).shape == (0, pk.nsq_limbs)
    rows = np.concatenate(taken)
    assert len({r.tobytes() for r in rows}) == 65
    # Each obfuscator is an encryption of 0.
    zeros = fp.EncryptedArray(pk, rows)
    assert not sk.decrypt(zeros).any()


@pytest.mark.parametrize("use_private", [False, True])
def test_encryption_drains_the_pool_then_falls_back(use_private, fresh_small_keys):
    pk, sk = fresh_small_keys
    key = sk if use_private else pk
    worker = key.precompute_obfuscators(10, threads=2)
    worker.join()
    assert pk.obfuscators_available == 10
    x = np.arange(25, dtype=np.int64).reshape(5, 5)
    enc = key.encrypt(x)  # 10 pooled + 15 fresh
    assert pk.obfuscators_available == 0
    assert np.array_equal(sk.decrypt(enc), x)
    assert len({r.tobytes() for r in enc.ciphertexts}) == 25


def test_codec_encryption_uses_the_pool(fresh_small_keys):
    pk, sk = fresh_small_keys
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=4, frac_bits=8)
    values = np.linspace(-3, 3, 100)
    sk.precompute_obfuscators(codec.rows_for(values.size), background=False)
    enc = codec.encrypt(values, pk)
    assert pk.obfuscators_available == 0
    assert np.abs(sk.decrypt(enc) - values).max() <= codec.max_rounding_error()


def test_pool_rejects_bad_counts(fresh_small_keys):
    pk, _ = fresh_small_keys
    with pytest.raises(fp.InvalidArgumentError):
        pk.precompute_obfuscators(-1, background=False)
    with pytest.raises(fp.InvalidArgumentError):
        pk.precompute_obfuscators(3, threads=0)
