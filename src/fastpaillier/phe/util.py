"""Number-theory helpers with the names and behaviour of python-paillier's ``phe.util`` (1.5).

Written for fastpaillier (python-paillier is GPL; nothing here is copied from it).  As in
phe, gmpy2 is used when it is installed (``HAVE_GMP``) and PyCryptodome's prime generator
when only it is (``HAVE_CRYPTO``); both flags are read at every call, so tests can turn them
off.  Randomness comes from the operating system's CSPRNG (``secrets``), never ``random``.
"""

from __future__ import annotations

import math
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode

try:
    import gmpy2

    HAVE_GMP = True
except ImportError:  # pragma: no cover - gmpy2 is in the test extra
    gmpy2 = None
    HAVE_GMP = False

try:
    from Crypto.Util import number as _crypto_number

    HAVE_CRYPTO = True
except ImportError:
    _crypto_number = None
    HAVE_CRYPTO = False

__all__ = [
    "HAVE_CRYPTO", "HAVE_GMP", "base64_to_int", "base64url_decode", "base64url_encode",
    "extended_euclidean_algorithm", "first_primes", "getprimeover", "improved_i_sqrt", "int_to_base64",
    "invert", "is_prime", "isqrt", "miller_rabin", "mulmod", "powmod",
]

# Below these sizes Python's own arithmetic beats gmpy2's conversion overhead.
_GMP_POWMOD_FROM = 1 << 16
_GMP_MULMOD_FROM = 1 << 1000


def powmod(a: int, b: int, c: int) -> int:
    """a ** b mod c, with gmpy2 when available and worthwhile."""
    if a == 1:
        return 1
    if HAVE_GMP and max(a, b, c) >= _GMP_POWMOD_FROM:
        return int(gmpy2.powmod(a, b, c))
    return pow(a, b, c)


def mulmod(a: int, b: int, c: int) -> int:
    """a * b mod c, with gmpy2 when available and worthwhile."""
    if HAVE_GMP and max(a, b, c) >= _GMP_MULMOD_FROM:
        return int(gmpy2.mpz(a) * b % c)
    return a * b % c


def extended_euclidean_algorithm(a: int, b: int) -> tuple[int, int, int]:
    """(r, s, t) with r = gcd(a, b) = s*a + t*b (the iterative extended Euclid)."""
    old_r, r = a, b
    old_s, s = 1, 0
    old_t, t = 0, 1
    while r:
        quotient = old_r // r
        old_r, r = r, old_r - quotient * r
        old_s, s = s, old_s - quotient * s
        old_t, t = t, old_t - quotient * t
    return old_r, old_s, old_t


def invert(a: int, b: int) -> int:
    """x with a * x = 1 mod b; ZeroDivisionError when no inverse exists."""
    if HAVE_GMP:
        try:
            x = int(gmpy2.invert(a, b))
        except ZeroDivisionError:
            raise ZeroDivisionError("invert() no inverse exists") from None
        if x == 0:
            raise ZeroDivisionError("invert() no inverse exists")
        return x
    r, s, _ = extended_euclidean_algorithm(a, b)
    if r != 1:
        raise ZeroDivisionError("invert() no inverse exists")
    return s % b


def getprimeover(N: int) -> int:
    """A random prime of at least N bits (the next prime after a random N-bit number)."""
    if HAVE_GMP:
        start = secrets.randbits(N) | (1 << (N - 1))
        return int(gmpy2.next_prime(start))
    if HAVE_CRYPTO:
        return int(_crypto_number.getPrime(N, secrets.token_bytes))
    candidate = (secrets.randbits(N) | (1 << (N - 1))) | 1
    while not is_prime(candidate):
        candidate += 2
    return candidate


def isqrt(N: int) -> int:
    """The integer square root floor(sqrt(N))."""
    if HAVE_GMP:
        return int(gmpy2.isqrt(N))
    return improved_i_sqrt(N)


def improved_i_sqrt(n: int) -> int:
    """floor(sqrt(n)) without gmpy2."""
    if n < 0:
        raise AssertionError("improved_i_sqrt needs n >= 0")
    return math.isqrt(n)


# ---- base64url (JWK-style, unpadded) --------------------------------------------------------------

def base64url_encode(payload: bytes | str) -> str:
    """Unpadded URL-safe base64 of bytes (a str is UTF-8 encoded first)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def base64url_decode(payload: str) -> bytes:
    """Inverse of base64url_encode; ValueError for an impossible length."""
    missing = len(payload) % 4
    if missing == 1:
        raise ValueError("Invalid base64 string")
    return urlsafe_b64decode((payload + "=" * (-len(payload) % 4)).encode("ascii"))


def base64_to_int(source: str) -> int:
    """The non-negative int whose big-endian bytes are base64url-encoded in source."""
    return int.from_bytes(base64url_decode(source), "big")


def int_to_base64(source: int) -> str:
    """Minimal big-endian bytes of a positive int, base64url-encoded; AssertionError for 0."""
    if source == 0:
        raise AssertionError("int_to_base64 cannot encode 0")
    return base64url_encode(source.to_bytes((source.bit_length() + 7) // 8, "big"))


# ---- primality -------------------------------------------------------------------------------------

def _small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit - 1) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit, i)))
    return [i for i, flag in enumerate(sieve) if flag]


first_primes = _small_primes(17864)  # the 2048 primes up to 17863, as in phe.util
_LAST_SMALL_PRIME = first_primes[-1]
_SMALL_PRIME_SET = frozenset(first_primes)


def miller_rabin(n: int, k: int) -> bool:
    """Miller-Rabin with k random witnesses (n > 3): False means composite."""
    if n <= 3:
        raise AssertionError("miller_rabin needs n > 3")
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(k):
        a = 2 + secrets.randbelow(n - 3)  # uniform in [2, n - 2]
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def is_prime(n: int, mr_rounds: int = 25) -> bool:
    """Whether n is (probably, with error below 4^-mr_rounds) prime."""
    if n <= _LAST_SMALL_PRIME:
        return n in _SMALL_PRIME_SET
    for p in first_primes:
        if n % p == 0:
            return False
    return miller_rabin(n, mr_rounds)
