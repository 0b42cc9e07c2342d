"""Paillier key pairs: generation, validation, precomputed contexts, serialization."""

from __future__ import annotations

import math
import os
import secrets
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _keyfile, _limbs, _native, _plaintext, _wire
from .obfuscator_pool import ObfuscatorPool
from .errors import (InsecureKeyError, InvalidArgumentError, InvalidKeyError, KeyMismatchError,
                     PlaintextRangeError, SerializationError)
from .threads import resolve_threads

if TYPE_CHECKING:
    from .encrypted_array import EncryptedArray

MIN_SECURE_BITS = 2048
MAX_KEY_BITS = 16384
_PRIME_CHECK_ROUNDS = 30

CLASSIC = "classic"
DJN = "djn"
RANDOMNESS_KINDS = (CLASSIC, DJN)


def _check_bits(bits: int, insecure: bool, what: str) -> None:
    if bits < MIN_SECURE_BITS and not insecure:
        raise InsecureKeyError(
            f"{what} has {bits} bits; keys below {MIN_SECURE_BITS} bits are refused. "
            "Pass insecure=True only for tests.")
    if bits > MAX_KEY_BITS:
        raise InvalidKeyError(f"{what} has {bits} bits; at most {MAX_KEY_BITS} are supported")


def _require_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _check_randomness_name(randomness: object) -> str:
    if randomness not in RANDOMNESS_KINDS:
        raise InvalidArgumentError(
            f"randomness must be one of {RANDOMNESS_KINDS} (or None for the key's default), got {randomness!r}")
    return str(randomness)


_LEGACY_DJN_PUBLIC = (
    "public key: this DJN key is in format version 1, which carries h_s without h; such an h_s "
    "cannot be checked, and a forged one (for instance 1 + 2^k n) makes every DJN encryption show "
    "plaintext bits in clear. Re-export the public key from its private key "
    "(PrivateKey.load(path).public_key.save(path) writes version 2 with h), or pass "
    "drop_legacy_djn=True to load it as the classic key of the same n (r^n randomness; arrays "
    "saved under the old key load under it)")


def _djn_values(ctx: _native.PublicCtx, n: int, djn_h: object, djn_base: object) -> tuple[int, int] | None:
    """(h, h_s) after checking h and computing h_s = h^n mod n^2, or None for a classic key.

    h must be a unit of Z_n that is not +-1 modulo either prime factor (gcd(h -+ 1, n) = 1,
    checkable without the factors); h_s given as well must equal h^n mod n^2.
    """
    if djn_h is None:
        if djn_base is not None:
            raise InvalidKeyError(
                "djn_base (h_s) was given without djn_h: h_s alone cannot be checked, and a forged h_s "
                "(such as 1 + 2^k n) makes every DJN encryption show plaintext bits. Pass djn_h=h "
                "(h_s = h^n mod n^2), or build the key from its factors with PrivateKey(p, q, "
                "djn_base=h_s), which derives h")
        return None
    h = _require_int(djn_h, "djn_h")
    if not 1 < h < n or math.gcd(h, n) != 1 or math.gcd(h - 1, n) != 1 or math.gcd(h + 1, n) != 1:
        raise InvalidKeyError(
            "djn_h must be a unit of Z_n other than +-1 modulo each prime factor of n (corrupted or made "
            "for another key); create a fresh one with PrivateKey.with_djn()")
    limbs = _limbs.limb_count(n)
    zero = np.zeros((1, limbs), dtype=np.uint64)
    h_s = _limbs.limbs_to_int(_native.encrypt_with_r(ctx, zero, _limbs.int_to_limbs(h, limbs)[None, :], 1)[0])
    if djn_base is not None and _require_int(djn_base, "djn_base") != h_s:
        raise InvalidKeyError(
            "djn_base is not djn_h^n mod n^2 (corrupted, or h and h_s of different keys); "
            "create a fresh pair with PrivateKey.with_djn()")
    return h, h_s


def _read_extensions(reader: _wire.Reader, version: int) -> tuple[int | None, int | None]:
    """(h, h_s) from a key body's extensions: version 2 counted, version 1 up to the end (h_s only)."""
    if version == 1:
        found = reader.legacy_extensions(MAX_KEY_BITS // 4)
    else:
        found = reader.extensions(MAX_KEY_BITS // 4)
        if (_wire.EXT_DJN_H in found) != (_wire.EXT_DJN_BASE in found):
            raise SerializationError(
                f"{reader.what}: a DJN key carries both h and h_s, found only "
                f"{_wire.EXTENSION_NAMES[next(iter(found))]}")
    return found.get(_wire.EXT_DJN_H), found.get(_wire.EXT_DJN_BASE)


class PublicKey:
    """A Paillier public key (n, g = n + 1), optionally with a DJN base h_s, and its native context."""

    __slots__ = ("_n", "_nsquare", "_n_limbs", "_nsq_limbs", "_n_row", "_ctx", "_fingerprint", "_pool",
                 "_djn_h", "_djn_base", "_djn_row", "_djn_ctx", "_djn_pool", "_lock", "_mont_ok")

    def __init__(self, n: int, *, insecure: bool = False, djn_h: int | None = None,
                 djn_base: int | None = None) -> None:
        n = _require_int(n, "n")
        if n < 15 or n % 2 == 0:
            raise InvalidKeyError(f"n must be an odd composite >= 15, got {n}")
        _check_bits(n.bit_length(), insecure, "public key modulus n")
        self._n = n
        self._nsquare = n * n
        self._n_limbs = _limbs.limb_count(n)
        self._nsq_limbs = _limbs.limb_count(self._nsquare)
        self._n_row = _limbs.int_to_limbs(n, self._n_limbs)
        self._ctx = _native.PublicCtx(self._n_row)
        self._mont_ok = bool(self._ctx.mont_supported)
        djn = _djn_values(self._ctx, n, djn_h, djn_base)
        self._djn_h, self._djn_base = (None, None) if djn is None else djn
        self._fingerprint = _wire.key_fingerprint(n, djn)
        self._pool = ObfuscatorPool(self)
        self._djn_row = None if djn is None else _limbs.int_to_limbs(self._djn_base, self._nsq_limbs)
        self._djn_ctx: _native.DjnCtx | None = None
        self._djn_pool = ObfuscatorPool(self, DJN)
        self._lock = threading.Lock()

    @property
    def n(self) -> int:
        """The modulus n = p q."""
        return self._n

    @property
    def nsquare(self) -> int:
        """n^2, the ciphertext modulus."""
        return self._nsquare

    @property
    def g(self) -> int:
        """The generator, always n + 1."""
        return self._n + 1

    @property
    def bits(self) -> int:
        """Bit length of n."""
        return self._n.bit_length()

    @property
    def n_limbs(self) -> int:
        """64-bit limbs per plaintext row."""
        return self._n_limbs

    @property
    def nsq_limbs(self) -> int:
        """64-bit limbs per ciphertext row."""
        return self._nsq_limbs

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 fingerprint identifying the key in serialized data: of n, and of h and h_s for DJN keys."""
        return self._fingerprint

    @property
    def djn_base(self) -> int | None:
        """The DJN value h_s = h^n mod n^2 for fixed-base randomness, or None."""
        return self._djn_base

    @property
    def djn_h(self) -> int | None:
        """The DJN value h = -x^2 mod n that h_s is computed from (and checked against), or None."""
        return self._djn_h

    def without_djn(self) -> "PublicKey":
        """The classic key of the same n (no h_s): its fingerprint is the one of n alone."""
        return PublicKey(self._n, insecure=self.bits < MIN_SECURE_BITS)

    def _djn_fields(self) -> dict[int, int]:
        """The key-body extensions: h_s and h for a DJN key, none for a classic key."""
        if self._djn_base is None:
            return {}
        return {_wire.EXT_DJN_BASE: self._djn_base, _wire.EXT_DJN_H: self._djn_h}

    @property
    def randomness(self) -> str:
        """Default randomness of this key's encryptions: "djn" when it carries h_s, else "classic"."""
        return CLASSIC if self._djn_base is None else DJN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and (other._n, other._djn_base) == (self._n, self._djn_base)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        djn = ", DJN randomness" if self._djn_base is not None else ""
        return f"<PublicKey {self.bits} bits{djn}, fingerprint {self._fingerprint.hex()[:16]}>"

    def encrypt(self, plaintexts: object, *, threads: int | None = None,
                randomness: str | None = None) -> "EncryptedArray":
        """Encrypts integers 0 <= m < n (an int, a numpy integer array or an array of ints).

        randomness: "classic" (r^n), "djn" (h_s^a, needs djn_base) or None for self.randomness.
        """
        rows, shape = _plaintext.integer_rows(self, plaintexts, "plaintexts")
        return self._encrypt_rows(rows, shape, threads, randomness)

    def encrypt_limbs(self, rows: np.ndarray, shape: tuple[int, ...] | None = None, *,
                      threads: int | None = None, randomness: str | None = None) -> "EncryptedArray":
        """Encrypts big-integer plaintexts given as an (N, limbs) uint64 array."""
        rows = _plaintext.limb_rows(self, rows, "rows")
        return self._encrypt_rows(rows, _checked_shape(shape, rows.shape[0]), threads, randomness)

    def _encrypt_rows(self, rows: np.ndarray, shape: tuple[int, ...], threads: int | None,
                      randomness: str | None = None, **meta: Any) -> "EncryptedArray":
        return _encrypt_rows(self, None, rows, shape, threads, randomness, meta)

    def _randomness(self, randomness: object) -> str:
        """Resolves None to the key's default; refuses "djn" on a key without h_s."""
        if randomness is None:
            return self.randomness
        kind = _check_randomness_name(randomness)
        if kind == DJN and self._djn_base is None:
            raise InvalidArgumentError(
                "randomness='djn' needs a key with a DJN base h_s; create one with "
                "generate_keypair(bits, randomness='djn') or private_key.with_djn()")
        return kind

    def _mont_target(self) -> bool:
        """Whether new ciphertexts of this key are kept in Montgomery form (c R mod n^2).

        True where the active kernel tier computes in this key's Montgomery form (IFMA, or
        64-bit limbs on the mulx and portable tiers): a sum of two ciphertexts is then one
        Montgomery product.  Checked at every operation, so switching tiers
        (_native.set_kernel_tier, in tests) switches new results back to canonical form.
        """
        return self._mont_ok and self._ctx.mont_native()

    def _convert(self, rows: np.ndarray, from_mont: bool, to_mont: bool, threads: int) -> np.ndarray:
        """Ciphertext rows converted between canonical and Montgomery form (a new array either way)."""
        return _native.mont_product_of_arrays(self._ctx, [rows], [int(from_mont)], int(to_mont), threads)

    def _djn(self) -> _native.DjnCtx:
        """The native DJN context (its comb table is built on first use)."""
        with self._lock:
            if self._djn_ctx is None:
                self._djn_ctx = _native.DjnCtx(self._ctx, self._djn_row)
            return self._djn_ctx

    def _pool_for(self, randomness: str) -> ObfuscatorPool:
        return self._djn_pool if randomness == DJN else self._pool

    @property
    def obfuscators_available(self) -> int:
        """Precomputed obfuscators waiting in this key's pools (classic and DJN together)."""
        return len(self._pool) + len(self._djn_pool)

    def precompute_obfuscators(self, count: int, *, threads: int | None = None, background: bool = True,
                               randomness: str | None = None) -> threading.Thread | None:
        """Adds `count` obfuscators (encryptions of 0) to the pool that later encryptions drain first.

        randomness picks r^n ("classic") or h_s^a ("djn"); None is self.randomness.  Each kind
        has its own pool, drained only by encryptions of that kind.  With background=True the
        work runs on a daemon thread (returned, so it can be joined) while the caller goes on,
        e.g. training a model.
        """
        kind = self._randomness(randomness)
        return _start_fill(self._pool_for(kind), count, None, threads, background)

    def to_bytes(self) -> bytes:
        """Versioned binary encoding (header, n, extension count[, h_s, h])."""
        return (_wire.header(_wire.KIND_PUBLIC_KEY, self._fingerprint) + _wire.u32_bigint(self._n)
                + _wire.extensions(self._djn_fields()))

    @classmethod
    def from_bytes(cls, data: bytes, *, insecure: bool = False, drop_legacy_djn: bool = False) -> "PublicKey":
        """Parses and validates bytes from to_bytes() (versions 1 and 2).

        A version 1 DJN key (h_s without h) is refused unless drop_legacy_djn=True, which loads
        the classic key of the same n instead.
        """
        reader = _wire.Reader(data, "public key")
        fingerprint, version = reader.header(_wire.KIND_PUBLIC_KEY)
        n = reader.bigint(MAX_KEY_BITS // 8)
        djn_h, djn_base = _read_extensions(reader, version)
        reader.finish()
        if version == 1 and djn_base is not None:
            if not drop_legacy_djn:
                raise SerializationError(_LEGACY_DJN_PUBLIC)
            djn_base = None  # the version 1 fingerprint covers n only: the classic key's
        try:
            key = cls(n, insecure=insecure, djn_h=djn_h, djn_base=djn_base)
        except InsecureKeyError:
            raise
        except InvalidKeyError as exc:
            raise SerializationError(f"public key: {exc}") from exc
        if key.fingerprint != fingerprint:
            raise SerializationError("public key: stored fingerprint does not match the key (corrupted data)")
        return key

    def save(self, path: str | os.PathLike) -> None:
        """Writes to_bytes() to a new file (mode 0644 less the umask) renamed over path, fsynced."""
        _keyfile.write_key_file(path, self.to_bytes(), _keyfile.PUBLIC_KEY_MODE, exact_mode=False)

    @classmethod
    def load(cls, path: str | os.PathLike, *, insecure: bool = False,
             drop_legacy_djn: bool = False) -> "PublicKey":
        """Reads a key written by save() (see from_bytes)."""
        return cls.from_bytes(_keyfile.read_key_file(path, "public key"), insecure=insecure,
                              drop_legacy_djn=drop_legacy_djn)


def _fresh_obfuscated(public_key: PublicKey, private_key: "PrivateKey | None", rows: np.ndarray,
                      randomness: str, threads: int) -> np.ndarray:
    """(1 + m n) * fresh obfuscator mod n^2 for plaintext rows m: classic or DJN, CRT with a private key."""
    if randomness == DJN:
        if private_key is not None:
            return _native.encrypt_djn_crt(private_key._djn_crt(), rows, threads)
        return _native.encrypt_djn(public_key._djn(), rows, threads)
    if private_key is not None:
        return _native.encrypt_private(private_key._ctx, rows, threads)
    return _native.encrypt_public(public_key._ctx, rows, threads)


def _encrypt_rows(public_key: PublicKey, private_key: "PrivateKey | None", rows: np.ndarray,
                  shape: tuple[int, ...], threads: int | None, randomness: str | None,
                  meta: dict) -> "EncryptedArray":
    """Encrypts plaintext rows: pooled obfuscators first (one multiplication each), fresh ones after."""
    from .encrypted_array import EncryptedArray

    kind = public_key._randomness(randomness)
    t = resolve_threads(threads)
    count = rows.shape[0]
    # Montgomery form where the IFMA kernels run (see EncryptedArray): the pool hands out
    # obfuscators already in that form, and (1 + m n) o R mod n^2 is the result's form.
    mont = public_key._mont_target()
    pooled = public_key._pool_for(kind).take(count, mont=mont)
    used = pooled.shape[0]
    parts = []
    canonical = None
    if used:
        parts.append(_native.add_plaintexts(public_key._ctx, pooled, np.ascontiguousarray(rows[:used]), t))
        pooled.fill(0)  # consumed: never reused
    if used < count or count == 0:
        rest = np.ascontiguousarray(rows[used:])
        fresh = _fresh_obfuscated(public_key, private_key, rest, kind, t)
        if mont:  # one Montgomery pass per ciphertext; the canonical rows stay as the array's cache
            canonical = fresh if not used else None
            fresh = public_key._convert(fresh, False, True, t)
        parts.append(fresh)
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return EncryptedArray._wrap(public_key, data, shape, mont=mont, canonical=canonical, **meta)


def _start_fill(pool: ObfuscatorPool, count: int, private_key: "PrivateKey | None",
                threads: int | None, background: bool) -> threading.Thread | None:
    if not background:
        pool.fill(count, private_key, threads)
        return None
    resolve_threads(threads)  # validate before starting the thread
    worker = threading.Thread(target=pool.fill, args=(count, private_key, threads),
                              name="fastpaillier-obfuscators", daemon=True)
    worker.start()
    return worker


def _checked_shape(shape: tuple[int, ...] | None, rows: int) -> tuple[int, ...]:
    if shape is None:
        return (rows,)
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape) or _limbs.shape_size(shape) != rows:
        raise InvalidArgumentError(f"shape {shape} does not hold {rows} rows")
    return shape


class PrivateKey:
    """A Paillier private key (p, q) with CRT constants precomputed once, optionally with a DJN base."""

    __slots__ = ("_p", "_q", "_public_key", "_ctx", "_djn_crt_ctx")

    def __init__(self, p: int, q: int, *, insecure: bool = False, djn_h: int | None = None,
                 djn_base: int | None = None) -> None:
        p = _require_int(p, "p")
        q = _require_int(q, "q")
        if p == q:
            raise InvalidKeyError("p and q must be distinct primes")
        if p < 3 or q < 3:
            raise InvalidKeyError("p and q must be odd primes >= 3")
        if p < q:  # canonical order: p > q
            p, q = q, p
        n = p * q
        _check_bits(n.bit_length(), insecure, "private key modulus n = p*q")
        if not insecure and not (p.bit_length() == q.bit_length() and n.bit_length() == 2 * p.bit_length()):
            raise InvalidKeyError(
                f"p and q must have the same size, half of n's: got {p.bit_length()}-bit and "
                f"{q.bit_length()}-bit primes for a {n.bit_length()}-bit n (a small factor makes n easy to "
                "factor); generate keys with generate_keypair(), or pass insecure=True for tests")
        half_limbs = _limbs.limb_count(p)
        for name, prime in (("p", p), ("q", q)):
            if _native.probable_prime(_limbs.int_to_limbs(prime, half_limbs), _PRIME_CHECK_ROUNDS) == 0:
                raise InvalidKeyError(f"{name} is not prime")
        if math.gcd(n, (p - 1) * (q - 1)) != 1:
            raise InvalidKeyError("gcd(p*q, (p-1)*(q-1)) must be 1 for g = n + 1 Paillier")
        self._p, self._q = p, q
        derived = djn_base is not None and djn_h is None
        if derived:
            djn_h = _derive_djn_h(p, q, djn_base)
        try:
            self._public_key = PublicKey(n, insecure=insecure, djn_h=djn_h, djn_base=djn_base)
        except InvalidKeyError as exc:
            if not derived:
                raise
            raise InvalidKeyError(
                "djn_base is not a nontrivial n-th residue mod n^2 for these primes (corrupted or made "
                "for another key); create a fresh one with with_djn()") from exc
        pk = self._public_key
        self._ctx = _native.PrivateCtx(
            _limbs.int_to_limbs(p, half_limbs), _limbs.int_to_limbs(q, half_limbs),
            pk._n_row, pk.n_limbs, pk.nsq_limbs)
        self._djn_crt_ctx: _native.DjnCrtCtx | None = None

    def _djn_crt(self) -> _native.DjnCrtCtx:
        """The native CRT tables of h_s mod p^2 and q^2 (built on first use)."""
        with self._public_key._lock:
            if self._djn_crt_ctx is None:
                self._djn_crt_ctx = _native.DjnCrtCtx(self._ctx, self._public_key._djn_row)
            return self._djn_crt_ctx

    def with_djn(self) -> "PrivateKey":
        """This key with a fresh DJN base h_s (x uniform in Z_n^* from the OS CSPRNG, then discarded).

        The returned key's public_key carries h_s and encrypts with randomness="djn" by default;
        distribute that public key (to_bytes() includes h_s).  p, q and n are unchanged, so
        ciphertexts made with either key decrypt and combine alike.
        """
        pk = self._public_key
        while True:
            h = _limbs.limbs_to_int(_native.djn_generate_base(pk._ctx))
            # h = +-1 mod p or q needs x^2 = -+1 mod p or q: negligible, but cheap to exclude.
            if math.gcd(h - 1, pk.n) == 1 and math.gcd(h + 1, pk.n) == 1:
                break
        return PrivateKey(self._p, self._q, insecure=pk.bits < MIN_SECURE_BITS, djn_h=h)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public_key

    @property
    def p(self) -> int:
        """The larger prime factor."""
        return self._p

    @property
    def q(self) -> int:
        """The smaller prime factor."""
        return self._q

    def __repr__(self) -> str:
        return f"<PrivateKey for {self._public_key!r}>"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PrivateKey) and (other._p, other._q) == (self._p, self._q)
                and other._public_key == self._public_key)

    def __hash__(self) -> int:
        return hash(self._public_key)

    def encrypt(self, plaintexts: object, *, threads: int | None = None,
                randomness: str | None = None) -> "EncryptedArray":
        """Encrypts integers 0 <= m < n, computing the obfuscator by CRT (classic or DJN, see PublicKey.encrypt)."""
        rows, shape = _plaintext.integer_rows(self._public_key, plaintexts, "plaintexts")
        return self._encrypt_rows(rows, shape, threads, randomness)

    def encrypt_limbs(self, rows: np.ndarray, shape: tuple[int, ...] | None = None, *,
                      threads: int | None = None, randomness: str | None = None) -> "EncryptedArray":
        """Encrypts big-integer plaintexts given as an (N, limbs) uint64 array, by CRT."""
        rows = _plaintext.limb_rows(self._public_key, rows, "rows")
        return self._encrypt_rows(rows, _checked_shape(shape, rows.shape[0]), threads, randomness)

    def _encrypt_rows(self, rows: np.ndarray, shape: tuple[int, ...], threads: int | None,
                      randomness: str | None = None, **meta: Any) -> "EncryptedArray":
        return _encrypt_rows(self._public_key, self, rows, shape, threads, randomness, meta)

    def precompute_obfuscators(self, count: int, *, threads: int | None = None, background: bool = True,
                               randomness: str | None = None) -> threading.Thread | None:
        """As PublicKey.precompute_obfuscators, computed by CRT; the same pools."""
        pk = self._public_key
        return _start_fill(pk._pool_for(pk._randomness(randomness)), count, self, threads, background)

    def decrypt_limbs(self, array: "EncryptedArray", *, threads: int | None = None) -> np.ndarray:
        """Raw plaintexts m mod n as an (N, n_limbs) uint64 array, one row per ciphertext."""
        self._check_array(array)
        return _native.decrypt(self._ctx, array.ciphertexts, resolve_threads(threads))

    def decrypt(self, array: "EncryptedArray", *, threads: int | None = None) -> np.ndarray:
        """Decrypts to an array of the encrypted shape: floats via the array's codec, else int64."""
        rows = self.decrypt_limbs(array, threads=threads)
        if array.codec is not None:
            return array.codec.decode(rows, array.shape, array.summands, array.dtype)
        if rows.shape[1] > 1 and rows[:, 1:].any() or rows.size and rows[:, 0].max() >= 2**63:
            raise PlaintextRangeError(
                "a plaintext does not fit in int64 (for example a negative result, which is "
                "m mod n); use decrypt_limbs(), or a codec for signed values")
        return rows[:, 0].astype(np.int64).reshape(array.shape)

    def _check_array(self, array: "EncryptedArray") -> None:
        from .encrypted_array import EncryptedArray

        if not isinstance(array, EncryptedArray):
            raise InvalidArgumentError(f"array must be an EncryptedArray, got {type(array).__name__}")
        # Decryption needs n only: arrays of the classic and the DJN key of one n both decrypt.
        if array.public_key.n != self._public_key.n:
            raise KeyMismatchError(
                "array was encrypted under a public key with another modulus n than this private key's")

    def to_bytes(self) -> bytes:
        """Versioned binary encoding (header, p, q, extension count[, h_s, h]). Keep it secret."""
        return (_wire.header(_wire.KIND_PRIVATE_KEY, self._public_key.fingerprint)
                + _wire.u32_bigint(self._p) + _wire.u32_bigint(self._q)
                + _wire.extensions(self._public_key._djn_fields()))

    @classmethod
    def from_bytes(cls, data: bytes, *, insecure: bool = False) -> "PrivateKey":
        """Parses and validates bytes from to_bytes() (primality, fingerprint, sizes, h and h_s).

        A version 1 DJN key (h_s without h) loads: with the factors, h is derived from h_s and
        checked, and the key gets the version 2 fingerprint (which covers h and h_s).
        """
        reader = _wire.Reader(data, "private key")
        fingerprint, version = reader.header(_wire.KIND_PRIVATE_KEY)
        p = reader.bigint(MAX_KEY_BITS // 8)
        q = reader.bigint(MAX_KEY_BITS // 8)
        djn_h, djn_base = _read_extensions(reader, version)
        reader.finish()
        if (p * q).bit_length() > MAX_KEY_BITS:
            raise SerializationError(f"private key: modulus exceeds {MAX_KEY_BITS} bits")
        try:
            key = cls(p, q, insecure=insecure, djn_h=djn_h, djn_base=djn_base)
        except InsecureKeyError:
            raise
        except InvalidKeyError as exc:
            raise SerializationError(f"private key: {exc}") from exc
        pk = key.public_key
        expected = pk.fingerprint if version >= 2 else _wire.key_fingerprint(pk.n)
        if expected != fingerprint:
            raise SerializationError("private key: stored fingerprint does not match the key (corrupted data)")
        return key

    def save(self, path: str | os.PathLike) -> None:
        """Writes to_bytes() to a new file readable only by its owner (mode 0600), renamed over path, fsynced."""
        _keyfile.write_key_file(path, self.to_bytes(), _keyfile.PRIVATE_KEY_MODE, exact_mode=True)

    @classmethod
    def load(cls, path: str | os.PathLike, *, insecure: bool = False) -> "PrivateKey":
        """Reads a key written by save()."""
        return cls.from_bytes(_keyfile.read_key_file(path, "private key"), insecure=insecure)


def _derive_djn_h(p: int, q: int, djn_base: object) -> int:
    """h with h^n = h_s mod n^2, from the factors: (h_s mod n)^(n^-1 mod lambda) mod n.

    x -> x^n mod n^2 depends on x mod n only and is a bijection from Z*_n onto the n-th
    residues, so h is unique; PublicKey then checks h^n = h_s.  For loading version 1 keys
    (h_s only).  The exponent is blinded by a random multiple of lambda.
    """
    h_s = _require_int(djn_base, "djn_base")
    n = p * q
    if not 0 < h_s < n * n or math.gcd(h_s, n) != 1:
        raise InvalidKeyError(
            "djn_base must be a unit of Z_{n^2} (corrupted or made for another key); create a fresh one "
            "with PrivateKey.with_djn()")
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    exponent = pow(n, -1, lam) + lam * (secrets.randbits(128) | 1)
    return pow(h_s % n, exponent, n)


def generate_keypair(bits: int = 2048, *, insecure: bool = False,
                     randomness: str = CLASSIC) -> tuple[PublicKey, PrivateKey]:
    """A fresh key pair with n of exactly `bits` bits from two equal-size primes (OS CSPRNG).

    randomness="djn" adds a DJN base h_s (see PrivateKey.with_djn): encryptions under the key
    then use fixed-base randomness h_s^a by default.  "classic" (the default) gives r^n.
    """
    bits = _require_int(bits, "bits")
    randomness = _check_randomness_name(randomness)
    if bits % 2 or bits < 16:
        raise InvalidArgumentError(f"bits must be an even number >= 16, got {bits}")
    _check_bits(bits, insecure, "requested key")
    half = bits // 2
    while True:
        p = _limbs.limbs_to_int(_native.generate_prime(half))
        q = _limbs.limbs_to_int(_native.generate_prime(half))
        if p != q and (p * q).bit_length() == bits and math.gcd(p * q, (p - 1) * (q - 1)) == 1:
            break
    private_key = PrivateKey(p, q, insecure=insecure)
    if randomness == DJN:
        private_key = private_key.with_djn()
    return private_key.public_key, private_key
