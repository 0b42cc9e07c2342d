"""The bridge from python-paillier's one-int-at-a-time API to fastpaillier's batched native core.

Each drop-in key owns a fastpaillier key (``fastpaillier.PublicKey`` / ``PrivateKey``, built
with insecure=True since phe allows any size) and talks to it only through its public API:
``encrypt_limbs``, ``decrypt_limbs``, ``EncryptedArray`` and ``precompute_obfuscators``.
Python ints cross over as rows of little-endian 64-bit limbs.

Lone values and the IFMA kernels: the AVX-512 IFMA tier computes 8 ciphertexts side by side,
so one value costs as much as 8.  Where that holds (DJN randomness, and CRT encryption with
the private key), a lone encryption computes 8 obfuscators in one call, uses one and keeps 7
in a per-key reserve for the next encryptions: (1 + m n) * obfuscator mod n^2 is then one
multiplication.  Every reserved obfuscator is used once and the reserve is dropped in a forked
child (it would otherwise reuse the parent's randomness).  An obfuscator pool filled on
purpose (``precompute_obfuscators``) is drained first, by fastpaillier itself.

Classic r^n obfuscators with the public key (the exponent n is public) are made the way that
measured fastest for the key, in the process (ClassicObfuscators): 8 per call of the ifma or avx2
lane kernels, one native call (GMP's mpz_powm), or gmpy2's powmod; which wins depends on the CPU
and on the GMP builds.
Decryption always runs natively: on the IFMA tier one or two ciphertexts go through the one-row
kernels, so a lone decryption is as fast as on the mulx tier and keeps the native core's
constant-time CRT and its refusal of forged ciphertexts.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import weakref
from typing import Sequence

import numpy as np

import fastpaillier as fp

try:
    import gmpy2
except ImportError:  # pragma: no cover - gmpy2 is in the test extra
    gmpy2 = None

_LANES = 8  # ciphertexts per IFMA kernel call


def rows_from_ints(values: Sequence[int], limbs: int) -> np.ndarray:
    """An (N, limbs) uint64 array from N non-negative ints below 2^(64 limbs)."""
    width = 8 * limbs
    raw = b"".join(v.to_bytes(width, "little") for v in values)
    return np.frombuffer(raw, dtype=np.uint64).reshape(len(values), limbs)


def ints_from_rows(rows: np.ndarray) -> list[int]:
    """The ints held by the rows of an (N, limbs) uint64 array."""
    raw = np.ascontiguousarray(rows, dtype=np.uint64).tobytes()
    width = 8 * rows.shape[1]
    return [int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)]


def lanes_shared() -> bool:
    """Whether the active kernel tier computes several ciphertexts per call for the price of one."""
    return fp.kernel_tier() == "ifma"


def lane_kernels() -> bool:
    """Whether the active tier computes 8 ciphertexts per call with its lane kernels (ifma, avx2)."""
    return fp.kernel_tier() in ("ifma", "avx2")


CLASSIC_ENV = "FASTPAILLIER_PHE_CLASSIC"  # lanes | native | gmpy2: force how lone r^n obfuscators are made
CLASSIC_SOURCES = ("lanes", "native", "gmpy2")


class ClassicObfuscators:
    """Makes lone classic r^n obfuscators the way that measured fastest for this key in this process.

    The candidates (each a function returning a list of fresh obfuscators): "lanes", 8 per native
    call where the ifma or avx2 tier computes 8 with its lane kernels; "native", one native call (GMP's
    mpz_powm as fastpaillier links it); "gmpy2", gmpy2's powmod (phe's own way, with gmpy2's GMP).
    Which wins depends on the CPU and on the two GMP builds, so the first ``SAMPLES`` calls of each
    candidate are timed, round robin; every obfuscator made while timing is handed out like any
    other (none is dropped, none used twice).  After that the candidate with the lowest time per
    obfuscator (best sample) makes them all.  FASTPAILLIER_PHE_CLASSIC names one candidate instead.
    Not thread safe on its own: the key's _Reserve calls make() under its lock.
    """

    SAMPLES = 2

    def __init__(self, candidates: dict, clock=time.perf_counter) -> None:
        forced = os.environ.get(CLASSIC_ENV, "")
        if forced and forced not in CLASSIC_SOURCES:
            raise fp.InvalidArgumentError(
                f"{CLASSIC_ENV}={forced!r}: use one of {', '.join(CLASSIC_SOURCES)}, or unset it to measure")
        if forced in candidates:
            candidates = {forced: candidates[forced]}
        self._candidates = candidates
        self._clock = clock
        self._best: dict[str, float] = {}  # name -> best seconds per obfuscator so far
        self._runs = 0
        self.chosen: str | None = next(iter(candidates)) if len(candidates) == 1 else None

    def make(self, _count: int = 0) -> list[int]:
        """Fresh obfuscators from the chosen candidate, or from the next one still being timed."""
        if self.chosen is not None:
            return self._candidates[self.chosen]()
        names = list(self._candidates)
        name = names[self._runs % len(names)]
        start = self._clock()
        made = self._candidates[name]()
        per_value = (self._clock() - start) / len(made)
        self._best[name] = min(per_value, self._best.get(name, per_value))
        self._runs += 1
        if self._runs == self.SAMPLES * len(names):
            self.chosen = min(self._best, key=self._best.__getitem__)
        return made


class ModN2:
    """Lone products and powers mod n^2: gmpy2 when installed, else one native call each.

    (Python's own ints take about 35 us for one 4096-bit product mod n^2, gmpy2 6 us, a native
    call with its conversions about 9 us; a native power also beats Python's pow.)
    """

    def __init__(self, n: int) -> None:
        self.modulus = n * n
        self.mpz = None if gmpy2 is None else gmpy2.mpz(self.modulus)
        self._ctx = None
        if self.mpz is None:
            self._ctx = fp._native.PublicCtx(rows_from_ints([n], max(1, (n.bit_length() + 63) // 64))[0])
            self._limbs = self._ctx.nsq_limbs

    def mul(self, a: int, b: int) -> int:
        """a * b mod n^2."""
        if self.mpz is not None:
            return int(gmpy2.mpz(a) * b % self.mpz)
        m = self.modulus
        rows = rows_from_ints([a % m, b % m], self._limbs)
        return ints_from_rows(fp._native.mul_ciphertexts(self._ctx, rows[:1], rows[1:], 1))[0]

    def pow(self, a: int, k: int) -> int:
        """a ** k mod n^2 for k >= 0."""
        if self.mpz is not None:
            return int(gmpy2.powmod(a, k, self.mpz))
        row = rows_from_ints([a % self.modulus], self._limbs)
        exps = rows_from_ints([k], max(1, (k.bit_length() + 63) // 64))
        out, _ = fp._native.pow_ciphertexts(self._ctx, row, exps, np.zeros(1, dtype=np.uint8), 1)
        return ints_from_rows(out)[0]

    def inverse(self, a: int) -> int:
        """a^-1 mod n^2; ZeroDivisionError when a is not a unit."""
        if self.mpz is not None:
            try:
                return int(gmpy2.invert(a, self.mpz))
            except ZeroDivisionError:
                raise ZeroDivisionError("invert() no inverse exists") from None
        try:
            return pow(a, -1, self.modulus)
        except ValueError:
            raise ZeroDivisionError("invert() no inverse exists") from None


_ENGINES: "weakref.WeakSet[_Reserve]" = weakref.WeakSet()


class _Reserve:
    """Obfuscators computed ahead (8 per lane-kernel call), each handed out once, per process."""

    def __init__(self) -> None:
        self._items: list[int] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _ENGINES.add(self)

    def take(self, refill) -> int:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: never reuse the parent's randomness
                self._items.clear()
                self._pid = os.getpid()
            if not self._items:
                self._items = refill(_LANES)
            return self._items.pop()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._items)


def _clear_all_reserves() -> None:
    for reserve in list(_ENGINES):
        reserve._items.clear()
        reserve._pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clear_all_reserves)


class PublicEngine:
    """Native encryption for one public key n (optionally with a DJN base h_s)."""

    def __init__(self, key: fp.PublicKey) -> None:
        self.key = key
        self.n = key.n
        self.nsquare = key.nsquare
        self.arith = ModN2(self.n)
        self.nsq_mpz = self.arith.mpz
        self.n_mpz = None if gmpy2 is None else gmpy2.mpz(self.n)
        self.reserve = _Reserve()
        self.classic: ClassicObfuscators | None = None  # made on the first lone classic encryption
        self._classic_tier = ""

    @classmethod
    def create(cls, n: int, djn_h: int | None, djn_base: int | None) -> "PublicEngine | None":
        """The engine for n, or None where fastpaillier refuses n (phe accepts any int).

        A DJN key needs h (h_s alone cannot be checked); h and h_s are refused, not dropped.
        """
        try:
            return cls(fp.PublicKey(n, insecure=True, djn_h=djn_h, djn_base=djn_base))
        except (fp.InvalidKeyError, fp.InvalidArgumentError):
            if djn_base is not None or djn_h is not None:
                raise
            return None

    @property
    def djn(self) -> bool:
        return self.key.djn_base is not None

    def encrypt_batch(self, plaintexts: Sequence[int], threads: int | None = None) -> list[int]:
        """Ciphertexts of plaintexts 0 <= m < n: the pool first, then fresh native randomness."""
        rows = rows_from_ints(plaintexts, self.key.n_limbs)
        return ints_from_rows(self.key.encrypt_limbs(rows, threads=threads).ciphertexts)

    def _zeros(self, count: int) -> list[int]:
        return self.encrypt_batch([0] * count, threads=1)

    def obfuscator(self) -> int:
        """A fresh encryption of 0: r^n or h_s^a mod n^2."""
        if self.key.obfuscators_available:
            return self._zeros(1)[0]
        if self.djn:
            if lanes_shared():
                return self.reserve.take(self._zeros)
            return self._zeros(1)[0]
        tier = fp.kernel_tier()
        if self.classic is None or self._classic_tier != tier:  # timed again on another tier
            self.classic, self._classic_tier = ClassicObfuscators(self._classic_candidates()), tier
        return self.reserve.take(self.classic.make)

    def _classic_candidates(self) -> dict:
        candidates = {}
        if lane_kernels() or os.environ.get(CLASSIC_ENV) == "lanes":  # elsewhere: 8 rows, one call
            candidates["lanes"] = lambda: self._zeros(_LANES)
        candidates["native"] = lambda: self._zeros(1)
        if self.nsq_mpz is not None:
            candidates["gmpy2"] = lambda: [int(gmpy2.powmod(self._random_unit(), self.n_mpz, self.nsq_mpz))]
        return candidates

    def _random_unit(self) -> int:
        n = self.n
        while True:
            r = 1 + secrets.randbelow(n - 1)
            if math.gcd(r, n) == 1:
                return r

    def encrypt(self, m: int) -> int:
        """One ciphertext of 0 <= m < n."""
        if self.key.obfuscators_available or (self.djn and not lanes_shared()):
            return self.encrypt_batch([m], threads=1)[0]
        return self.arith.mul(self.obfuscator(), self.n * m + 1)


class PrivateEngine:
    """Native CRT decryption (and CRT encryption) for one private key p, q."""

    def __init__(self, key: fp.PrivateKey) -> None:
        self.key = key
        self.public = PublicEngine(key.public_key)
        p, q = key.p, key.q
        self.n = p * q
        self.reserve = _Reserve()

    @classmethod
    def create(cls, p: int, q: int, djn_base: int | None) -> "PrivateEngine | None":
        """The engine for p, q, or None where fastpaillier refuses them (not prime, ...)."""
        try:
            return cls(fp.PrivateKey(p, q, insecure=True, djn_base=djn_base))
        except (fp.InvalidKeyError, fp.InvalidArgumentError):
            return None

    def decrypt_batch(self, ciphertexts: Sequence[int], threads: int | None = None) -> list[int]:
        """Plaintexts m mod n; InvalidCiphertextError for a value outside Z*_{n^2}."""
        pk = self.key.public_key
        nsq = pk.nsquare
        rows = rows_from_ints([c % nsq for c in ciphertexts], pk.nsq_limbs)
        array = fp.EncryptedArray(pk, rows)
        return ints_from_rows(self.key.decrypt_limbs(array, threads=threads))

    def decrypt(self, c: int) -> int:
        """One plaintext m mod n, natively (constant-time CRT, forged ciphertexts refused) on every tier."""
        return self.decrypt_batch([c], threads=1)[0]

    def encrypt_batch(self, plaintexts: Sequence[int], threads: int | None = None) -> list[int]:
        """Ciphertexts with obfuscators computed by CRT (the pool of this key first)."""
        rows = rows_from_ints(plaintexts, self.key.public_key.n_limbs)
        return ints_from_rows(self.key.encrypt_limbs(rows, threads=threads).ciphertexts)

    def _zeros(self, count: int) -> list[int]:
        return self.encrypt_batch([0] * count, threads=1)

    def encrypt(self, m: int) -> int:
        """One ciphertext of 0 <= m < n, by CRT."""
        if self.key.public_key.obfuscators_available or not lanes_shared():
            return self.encrypt_batch([m], threads=1)[0]
        pub = self.public
        return pub.arith.mul(self.reserve.take(self._zeros), pub.n * m + 1)
