"""Test-only helpers: encryption with caller-chosen randomness (r, or the DJN exponent a) for known-answer tests.

Never use these to encrypt real data: reusing or choosing r breaks semantic security.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _limbs, _native, _plaintext
from .encrypted_array import EncryptedArray
from .errors import InvalidArgumentError, PlaintextRangeError
from .keys import PrivateKey, PublicKey
from .threads import resolve_threads


def encrypt_with_r(key: PublicKey | PrivateKey, plaintexts: object, r: Sequence[int] | int, *,
                   threads: int | None = None) -> EncryptedArray:
    """E(m) = (1 + m n) r^n mod n^2 with the given r (one per plaintext); CRT path for a PrivateKey."""
    pk = key.public_key if isinstance(key, PrivateKey) else key
    if not isinstance(pk, PublicKey):
        raise InvalidArgumentError("key must be a PublicKey or PrivateKey")
    rows, shape = _plaintext.integer_rows(pk, plaintexts, "plaintexts")
    r_values = [int(v) for v in np.asarray(r, dtype=object).ravel()]
    if len(r_values) != rows.shape[0]:
        raise InvalidArgumentError(f"need one r per plaintext: {len(r_values)} r for {rows.shape[0]} plaintexts")
    for i, v in enumerate(r_values):
        if not 0 < v < pk.n:
            raise PlaintextRangeError(f"r[{i}] must satisfy 0 < r < n")
    r_rows = _limbs.ints_to_rows(r_values, pk.n_limbs)
    t = resolve_threads(threads)
    if isinstance(key, PrivateKey):
        data = _native.encrypt_with_r_crt(key._ctx, rows, r_rows, t)
    else:
        data = _native.encrypt_with_r(pk._ctx, rows, r_rows, t)
    return EncryptedArray._wrap(pk, data, shape)


def encrypt_with_a(key: PublicKey | PrivateKey, plaintexts: object, a: Sequence[int] | int, *,
                   threads: int | None = None) -> EncryptedArray:
    """DJN known answer: E(m) = (1 + m n) h_s^a mod n^2 with the given exponents a (one per plaintext).

    A PublicKey uses its comb table mod n^2, a PrivateKey the CRT tables mod p^2 and q^2;
    0 <= a < 2^djn_exponent_bits(key) is required.
    """
    pk = key.public_key if isinstance(key, PrivateKey) else key
    if not isinstance(pk, PublicKey):
        raise InvalidArgumentError("key must be a PublicKey or PrivateKey")
    pk._randomness("djn")  # raises unless the key carries h_s
    rows, shape = _plaintext.integer_rows(pk, plaintexts, "plaintexts")
    a_values = [int(v) for v in np.asarray(a, dtype=object).ravel()]
    if len(a_values) != rows.shape[0]:
        raise InvalidArgumentError(f"need one a per plaintext: {len(a_values)} a for {rows.shape[0]} plaintexts")
    bits = djn_exponent_bits(pk)
    for i, v in enumerate(a_values):
        if not 0 <= v < 1 << bits:
            raise PlaintextRangeError(f"a[{i}] must satisfy 0 <= a < 2^{bits}")
    a_rows = _limbs.ints_to_rows(a_values, (bits + 63) // 64)
    t = resolve_threads(threads)
    if isinstance(key, PrivateKey):
        data = _native.encrypt_djn_crt_with_a(key._djn_crt(), rows, a_rows, t)
    else:
        data = _native.encrypt_djn_with_a(pk._djn(), rows, a_rows, t)
    return EncryptedArray._wrap(pk, data, shape)


def djn_exponent_bits(key: PublicKey | PrivateKey) -> int:
    """Bits of the DJN exponent a for this key's n: ceil(|n| / 2) + 128."""
    pk = key.public_key if isinstance(key, PrivateKey) else key
    return int(_native.djn_exponent_bits(pk.bits))


def ciphertext_ints(array: EncryptedArray) -> list[int]:
    """The ciphertexts as Python ints (for comparisons with reference implementations)."""
    return _limbs.rows_to_ints(array.ciphertexts)


def array_from_ints(public_key: PublicKey, ciphertexts: Sequence[int],
                    shape: Sequence[int] | None = None) -> EncryptedArray:
    """An EncryptedArray from Python-int ciphertexts made elsewhere (e.g. by python-paillier)."""
    rows = _limbs.ints_to_rows([int(c) for c in ciphertexts], public_key.nsq_limbs)
    return EncryptedArray(public_key, rows, shape)
