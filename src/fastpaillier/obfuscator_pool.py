"""Offline precomputation of Paillier obfuscators, each handed out once.

An obfuscator is the encryption of 0 with fresh randomness (r^n mod n^2, or
h_s^a mod n^2 for DJN randomness), so an online encryption of m costs one
modular multiplication: (1 + m n) * obfuscator mod n^2.  A key keeps one
pool per kind of randomness, so an encryption never mixes the two.
A client fills its pool while it trains; encryption drains the pool first
and computes fresh obfuscators for whatever the pool lacks.  Handed-out
rows are removed from the pool, so no obfuscator is ever used twice.

Where ciphertexts are kept in Montgomery form (PublicKey._mont_target), the
pool converts obfuscators to o R mod n^2 when it computes them, so an online
encryption (1 + m n) o R mod n^2 lands in Montgomery form at no extra cost;
take() converts whatever it hands out to the form the caller asks for.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from . import _native
from .errors import InvalidArgumentError
from .threads import resolve_threads

if TYPE_CHECKING:
    from .keys import PrivateKey, PublicKey


class ObfuscatorPool:
    """A thread-safe store of precomputed obfuscators for one public key."""

    def __init__(self, public_key: "PublicKey", randomness: str = "classic") -> None:
        self._public_key = public_key
        self._randomness = randomness
        self._chunks: list[tuple[np.ndarray, bool]] = []  # (rows, Montgomery form)
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def fill(self, count: int, private_key: "PrivateKey | None", threads: int | None) -> None:
        """Computes `count` obfuscators of this pool's kind (CRT-fast with a private key) and adds them."""
        from .keys import _fresh_obfuscated

        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidArgumentError(f"count must be a non-negative int, got {count!r}")
        t = resolve_threads(threads)
        zeros = np.zeros((count, 1), dtype=np.uint64)
        rows = _fresh_obfuscated(self._public_key, private_key, zeros, self._randomness, t)
        mont = self._public_key._mont_target()
        if mont:
            rows, canonical = self._public_key._convert(rows, False, True, t), rows
            canonical.fill(0)
        with self._lock:
            self._chunks.append((rows, mont))
            self._size += count

    def take(self, count: int, *, mont: bool = False) -> np.ndarray:
        """Removes and returns up to `count` obfuscators as a (k, nsq_limbs) array, k <= count.

        mont: return them in Montgomery form (o R mod n^2) instead of canonical form.
        """
        taken: list[tuple[np.ndarray, bool]] = []
        with self._lock:
            need = count
            while need > 0 and self._chunks:
                chunk, form = self._chunks[0]
                if len(chunk) <= need:
                    taken.append(self._chunks.pop(0))
                    need -= len(chunk)
                else:
                    taken.append((chunk[:need].copy(), form))
                    self._chunks[0] = (chunk[need:].copy(), form)
                    chunk.fill(0)  # the old buffer held secrets now split into two copies
                    need = 0
            self._size -= count - need
        if not taken:
            return np.zeros((0, self._public_key.nsq_limbs), dtype=np.uint64)
        parts = []
        for rows, form in taken:
            if form != mont:
                rows, old = self._public_key._convert(rows, form, mont, 1), rows
                old.fill(0)
            parts.append(rows)
        if len(parts) == 1:
            return parts[0]
        out = np.ascontiguousarray(np.concatenate(parts))
        for rows in parts:
            rows.fill(0)
        return out

    def clear(self) -> None:
        """Drops (and zeroes) every precomputed obfuscator."""
        with self._lock:
            for chunk, _ in self._chunks:
                chunk.fill(0)
            self._chunks.clear()
            self._size = 0
