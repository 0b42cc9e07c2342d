"""Offline precomputation of Paillier obfuscators, each handed out once.

An obfuscator is the encryption of 0 with fresh randomness (r^n mod n^2, or
h_s^a mod n^2 for DJN randomness), so an online encryption of m costs one
modular multiplication: (1 + m n) * obfuscator mod n^2.  A key keeps one
pool per kind of randomness, so an encryption never mixes the two.
A client fills its pool while it trains; encryption drains the pool first
and computes fresh obfuscators for whatever the pool lacks.  Handed-out
rows are removed from the pool, so no obfuscator is ever used twice.
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
        self._chunks: list[np.ndarray] = []
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
        with self._lock:
            self._chunks.append(rows)
            self._size += count

    def take(self, count: int) -> np.ndarray:
        """Removes and returns up to `count` obfuscators as a (k, nsq_limbs) array, k <= count."""
        taken: list[np.ndarray] = []
        with self._lock:
            need = count
            while need > 0 and self._chunks:
                chunk = self._chunks[0]
                if len(chunk) <= need:
                    taken.append(self._chunks.pop(0))
                    need -= len(chunk)
                else:
                    taken.append(chunk[:need].copy())
                    self._chunks[0] = chunk[need:].copy()
                    chunk.fill(0)  # the old buffer held secrets now split into two copies
                    need = 0
            self._size -= count - need
        if not taken:
            return np.zeros((0, self._public_key.nsq_limbs), dtype=np.uint64)
        return np.ascontiguousarray(np.concatenate(taken)) if len(taken) > 1 else taken[0]

    def clear(self) -> None:
        """Drops (and zeroes) every precomputed obfuscator."""
        with self._lock:
            for chunk in self._chunks:
                chunk.fill(0)
            self._chunks.clear()
            self._size = 0
