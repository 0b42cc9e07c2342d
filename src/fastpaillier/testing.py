"""Test-only helpers: encryption with caller-chosen randomness for known-answer tests.

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


def ciphertext_ints(array: EncryptedArray) -> list[int]:
    """The ciphertexts as Python ints (for comparisons with reference implementations)."""
    return _limbs.rows_to_ints(array.ciphertexts)


def array_from_ints(public_key: PublicKey, ciphertexts: Sequence[int],
                    shape: Sequence[int] | None = None) -> EncryptedArray:
    """An EncryptedArray from Python-int ciphertexts made elsewhere (e.g. by python-paillier)."""
    rows = _limbs.ints_to_rows([int(c) for c in ciphertexts], public_key.nsq_limbs)
    return EncryptedArray(public_key, rows, shape)
