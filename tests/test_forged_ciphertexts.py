"""A ciphertext that shares a factor with n is refused wherever it enters (issue 10, item 1).

Decrypting c = k n gives the same m* for every k, with m* (p + q) = 1 mod n: one such decryption
factors n.  The loaders (EncryptedArray, from_bytes) reject every c with gcd(c, n) != 1 by a
batched check, and decryption fails closed on such rows without saying which prime divides them.
"""

from __future__ import annotations

import secrets

import gmpy2
import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.testing import array_from_ints, ciphertext_ints


def _forgeries(pk, sk) -> dict[str, int]:
    p, q, n = sk.p, sk.q, pk.n
    r = secrets.randbelow(n - 2) + 2
    return {"k n": (secrets.randbelow(n - 2) + 2) * n, "p r": p * r % pk.nsquare or p,
            "q r": q * r % pk.nsquare or q, "p": p, "q": q, "p^2": p * p, "n - p": pk.nsquare - p}


def test_the_attack_is_real_on_a_reference_decryption(keys_2048):
    # Why the check matters: a textbook CRT decryption of k n reveals p + q.
    pk, sk = keys_2048
    p, q, n = gmpy2.mpz(sk.p), gmpy2.mpz(sk.q), gmpy2.mpz(pk.n)

    def textbook(c):
        mp = (gmpy2.powmod(c, p - 1, p * p) - 1) // p * gmpy2.invert((gmpy2.powmod(n + 1, p - 1, p * p) - 1) // p, p) % p
        mq = (gmpy2.powmod(c, q - 1, q * q) - 1) // q * gmpy2.invert((gmpy2.powmod(n + 1, q - 1, q * q) - 1) // q, q) % q
        return int(mq + q * ((mp - mq) * gmpy2.invert(q, p) % p))

    m_star = textbook(gmpy2.mpz(3 * pk.n))
    assert m_star == textbook(gmpy2.mpz(11 * pk.n))
    assert pow(m_star, -1, pk.n) == sk.p + sk.q


@pytest.mark.parametrize("kind", ["k n", "p r", "q r", "p", "q", "p^2", "n - p"])
def test_loaders_reject_non_units(keys_2048, kind):
    pk, sk = keys_2048
    bad = _forgeries(pk, sk)[kind]
    good = ciphertext_ints(pk.encrypt(np.arange(5)))
    with pytest.raises(fp.InvalidCiphertextError, match=r"ciphertexts\[2\] is not an element of Z\*"):
        array_from_ints(pk, good[:2] + [bad] + good[2:])
    valid = array_from_ints(pk, good)
    blob = bytearray(valid.to_bytes())
    row = _limbs.ints_to_rows([bad], pk.nsq_limbs).astype("<u8").tobytes()
    blob[len(blob) - 3 * len(row):len(blob) - 2 * len(row)] = row  # ciphertext 2 of 5
    with pytest.raises(fp.SerializationError, match="ciphertext 2 is not an element"):
        fp.EncryptedArray.from_bytes(bytes(blob), pk)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batched_check_finds_the_first_bad_row(small_keys, threads):
    pk, sk = small_keys
    before = fp.get_num_threads()
    fp.set_num_threads(threads)
    try:
        good = ciphertext_ints(pk.encrypt(np.arange(100) % 50))
        for where in ([37], [0], [99], [5, 80], [60, 61]):
            cts = list(good)
            for i in where:
                cts[i] = sk.p * (i + 3)
            with pytest.raises(fp.InvalidCiphertextError, match=rf"ciphertexts\[{where[0]}\]"):
                array_from_ints(pk, cts)
        assert np.array_equal(sk.decrypt(array_from_ints(pk, good)), np.arange(100) % 50)
    finally:
        fp.set_num_threads(before)


def test_every_tier_fails_closed_with_one_message(keys_2048):
    pk, sk = keys_2048
    forged = _forgeries(pk, sk)
    for name in fp.available_kernel_tiers():
        fp.set_kernel_tier(name)
        messages = set()
        for kind in ("p r", "q r", "k n"):
            rows = _limbs.ints_to_rows([1, forged[kind]], pk.nsq_limbs)
            with pytest.raises(fp.InvalidCiphertextError) as info:
                _native.decrypt(sk._ctx, rows, 1)
            messages.add(str(info.value))
        assert len(messages) == 1, name  # p or q: the same refusal


def test_sums_and_products_of_valid_ciphertexts_stay_valid(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.arange(20))
    total = fp.sum_arrays([a, a * 3, -a])
    again = array_from_ints(pk, ciphertext_ints(total))  # re-validated: all units
    assert np.array_equal(sk.decrypt(again), 3 * np.arange(20))
