"""python-paillier's ``phe.paillier`` API (1.5) on fastpaillier's native core.

The classes, attributes, exceptions and numbers are phe's: for the same key and inputs the
encodings, fixed-r ciphertexts and homomorphic results are the same integers, and phe's own
test suite passes against this module.  Encryption and decryption run on fastpaillier's native
core (see ``_engine`` for the paths lone values take); homomorphic + and * stay Python ints
(gmpy2 when installed), as in phe, since one multiplication mod n^2 costs less than a call.

Differences from phe, all deliberate:

* keys of any size are accepted, as phe does; fastpaillier's own API refuses keys below 2048
  bits unless insecure=True, and this module passes insecure=True for you, so nothing stops a
  toy key here: use n_length >= 2048 (the default is phe's 3072);
* a ciphertext outside Z*_{n^2} (0, or sharing a factor with n) is refused on decryption with
  ``fastpaillier.InvalidCiphertextError`` (a ValueError): phe decrypts it to a value that
  gives the factors of n away to whoever sent it.  Keys that the native core refuses (p or q
  not prime, n below 15, ...) decrypt in Python, without this check, exactly as phe;
* additions: DJN fixed-base randomness (``generate_paillier_keypair(djn=True)``,
  ``PaillierPrivateKey.with_djn()``), CRT encryption with the private key
  (``PaillierPrivateKey.encrypt``), batches (``encrypt_many``, ``decrypt_many``),
  obfuscator precomputation, and conversion to and from ``fastpaillier.EncryptedArray``.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Sequence

import fastpaillier as fp

from . import _engine, util
from .encoding import EncodedNumber

__all__ = [
    "DEFAULT_KEYSIZE", "EncryptedNumber", "PaillierPrivateKey", "PaillierPrivateKeyring", "PaillierPublicKey",
    "from_encrypted_array", "generate_paillier_keypair", "to_encrypted_array",
]

DEFAULT_KEYSIZE = 3072
"""phe's default key size in bits."""

_NATIVE_PRIME_BITS = 32  # below this, primes come from util.getprimeover as in phe


def _prime(bits: int) -> int:
    if bits >= _NATIVE_PRIME_BITS:
        return _engine.ints_from_rows(fp._native.generate_prime(bits).reshape(1, -1))[0]
    return util.getprimeover(bits)


def generate_paillier_keypair(private_keyring: "PaillierPrivateKeyring | None" = None,
                              n_length: int = DEFAULT_KEYSIZE, *,
                              djn: bool = False) -> "tuple[PaillierPublicKey, PaillierPrivateKey]":
    """A new key pair with an n of n_length bits from the native core's CSPRNG-drawn primes.

    Adds the private key to private_keyring when given.  djn=True (not in phe) adds a DJN
    base h_s: the public key then encrypts with fixed-base randomness h_s^a, 10-40x faster,
    and its ciphertexts decrypt with any Paillier implementation of the same key.
    """
    if isinstance(n_length, bool) or not isinstance(n_length, int) or n_length < 4 or n_length % 2:
        # phe loops forever on these (two n_length // 2-bit primes never give an odd-length n)
        raise ValueError("n_length must be an even number of bits >= 4, got %r" % (n_length,))
    while True:
        p = _prime(n_length // 2)
        q = p
        while q == p:
            q = _prime(n_length // 2)
        if (p * q).bit_length() == n_length:
            break
    public_key = PaillierPublicKey(p * q)
    private_key = PaillierPrivateKey(public_key, p, q)
    if djn:
        private_key = private_key.with_djn()
        public_key = private_key.public_key
    if private_keyring is not None:
        private_keyring.add(private_key)
    return public_key, private_key


class PaillierPublicKey:
    """A Paillier public key n (g = n + 1), optionally with a DJN base, encrypting natively.

    Attributes as phe: g, n, nsquare, max_int (the largest encodable magnitude, n // 3 - 1).
    """

    def __init__(self, n: int, djn_base: int | None = None, djn_h: int | None = None) -> None:
        """n as phe; a DJN key also takes h (djn_h) and optionally h_s (djn_base), checked as h_s = h^n."""
        self.g = n + 1
        self.n = n
        self.nsquare = n * n
        self.max_int = n // 3 - 1
        self._engine = _engine.PublicEngine.create(n, djn_h, djn_base) if isinstance(n, int) else None

    @classmethod
    def from_fastpaillier(cls, key: fp.PublicKey) -> "PaillierPublicKey":
        """This API over an existing fastpaillier PublicKey (sharing its obfuscator pool and h_s)."""
        if not isinstance(key, fp.PublicKey):
            raise TypeError("key should be a fastpaillier.PublicKey, not %s" % type(key))
        self = cls.__new__(cls)
        self.g, self.n, self.nsquare, self.max_int = key.n + 1, key.n, key.nsquare, key.n // 3 - 1
        self._engine = _engine.PublicEngine(key)
        return self

    @property
    def fastpaillier_key(self) -> fp.PublicKey | None:
        """The fastpaillier PublicKey doing the work (None for an n the native core refuses)."""
        return None if self._engine is None else self._engine.key

    @property
    def djn_base(self) -> int | None:
        """The DJN base h_s this key encrypts with, or None for classic r^n randomness."""
        return None if self._engine is None else self._engine.key.djn_base

    @property
    def djn_h(self) -> int | None:
        """The DJN value h (h_s = h^n mod n^2), or None for classic r^n randomness."""
        return None if self._engine is None else self._engine.key.djn_h

    def __repr__(self) -> str:
        return "<PaillierPublicKey {}>".format(hex(hash(self))[2:][:10])

    def __eq__(self, other: object) -> bool:
        n = getattr(other, "n", None)
        if n is None:
            return NotImplemented
        return self.n == n

    def __hash__(self) -> int:
        return hash(self.n)

    def __reduce__(self):
        return (PaillierPublicKey, (self.n, self.djn_base, self.djn_h))

    def raw_encrypt(self, plaintext: int, r_value: int | None = None) -> int:
        """The Paillier ciphertext (an int) of the integer plaintext, reduced mod n.

        r_value: the obfuscator's r (ciphertext (1 + m n) r^n mod n^2, for known-answer tests);
        by default fresh randomness from the native core.  TypeError unless plaintext is an int.
        """
        if not isinstance(plaintext, int):
            raise TypeError("Expected int type plaintext but got: %s" % type(plaintext))
        if r_value:
            nude = (self.n * plaintext + 1) % self.nsquare
            return util.mulmod(nude, util.powmod(r_value, self.n, self.nsquare), self.nsquare)
        if self._engine is None:
            nude = (self.n * plaintext + 1) % self.nsquare
            r_pow_n = util.powmod(self.get_random_lt_n(), self.n, self.nsquare)
            return util.mulmod(nude, r_pow_n, self.nsquare)
        return self._engine.encrypt(plaintext % self.n)

    def get_random_lt_n(self) -> int:
        """A random int in [1, n) from the operating system's CSPRNG."""
        return 1 + secrets.randbelow(self.n - 1)

    def encrypt(self, value: Any, precision: float | None = None,
                r_value: int | None = None) -> "EncryptedNumber":
        """Encodes (see EncodedNumber.encode) and encrypts an int, float or EncodedNumber."""
        if isinstance(value, EncodedNumber):
            encoding = value
        else:
            encoding = EncodedNumber.encode(self, value, precision)
        return self.encrypt_encoded(encoding, r_value)

    def encrypt_encoded(self, encoding: EncodedNumber, r_value: int | None) -> "EncryptedNumber":
        """Encrypts an EncodedNumber: obfuscated unless r_value is given."""
        if r_value is not None:
            ciphertext = self.raw_encrypt(encoding.encoding, r_value=r_value or 1)
            return EncryptedNumber(self, ciphertext, encoding.exponent)
        ciphertext = self.raw_encrypt(encoding.encoding)
        return EncryptedNumber._make(self, ciphertext, encoding.exponent, True)

    # ---- fastpaillier additions ---------------------------------------------------------------

    def encrypt_many(self, values: Iterable[Any], precision: float | None = None, *,
                     threads: int | None = None) -> "list[EncryptedNumber]":
        """encrypt() of each value (ints, floats or EncodedNumbers) in one native batch."""
        encodings = _encode_all(self, values, precision)
        ciphertexts = self._encrypt_ints([e.encoding for e in encodings], threads)
        return [EncryptedNumber._make(self, c, e.exponent, True) for c, e in zip(ciphertexts, encodings)]

    def _encrypt_ints(self, plaintexts: Sequence[int], threads: int | None) -> list[int]:
        if self._engine is None:
            return [self.raw_encrypt(m) for m in plaintexts]
        return self._engine.encrypt_batch([m % self.n for m in plaintexts], threads)

    def precompute_obfuscators(self, count: int, *, background: bool = True,
                               threads: int | None = None) -> threading.Thread | None:
        """Computes count obfuscators ahead (on a daemon thread by default, returned for join()).

        Later encryptions with this key use each one once: an online encryption is then one
        multiplication mod n^2.  See fastpaillier.PublicKey.precompute_obfuscators.
        """
        return self._native_key("precompute obfuscators").precompute_obfuscators(
            count, threads=threads, background=background)

    def _native_key(self, what: str) -> fp.PublicKey:
        if self._engine is None:
            raise ValueError(f"cannot {what}: fastpaillier's native core does not support n = {self.n}")
        return self._engine.key


class PaillierPrivateKey:
    """A Paillier private key p < q (phe's order) decrypting by CRT on the native core.

    Attributes as phe: public_key, p, q, psquare, qsquare, p_inverse (p^-1 mod q), hp, hq.
    """

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        if not p * q == public_key.n:
            raise ValueError("given public key does not match the given p and q.")
        if p == q:
            raise ValueError("p and q have to be different")
        self.public_key = _own_public_key(public_key)
        self.p, self.q = (q, p) if q < p else (p, q)
        self.psquare = self.p * self.p
        self.qsquare = self.q * self.q
        self.p_inverse = util.invert(self.p, self.q)
        # h(x) = L_x(g^(x-1) mod x^2)^-1 mod x; with g = n + 1 that is ((x - 1) * (n / x))^-1 mod x.
        if self.public_key.g == self.public_key.n + 1:
            self.hp = util.invert((self.p - 1) * self.q % self.p, self.p)
            self.hq = util.invert((self.q - 1) * self.p % self.q, self.q)
        else:
            self.hp = self.h_function(self.p, self.psquare)
            self.hq = self.h_function(self.q, self.qsquare)
        self._engine_state: list = []  # [engine or None] once built (lazily: primality checks cost)
        self._lock = threading.Lock()

    @staticmethod
    def from_totient(public_key: PaillierPublicKey, totient: int) -> "PaillierPrivateKey":
        """The private key of public_key whose (p - 1)(q - 1) is totient; ValueError otherwise."""
        p_plus_q = public_key.n - totient + 1
        p_minus_q = util.isqrt(p_plus_q * p_plus_q - public_key.n * 4)
        q = (p_plus_q - p_minus_q) // 2
        p = p_plus_q - q
        if not p * q == public_key.n:
            raise ValueError("given public key and totient do not match.")
        return PaillierPrivateKey(public_key, p, q)

    def _engine(self) -> "_engine.PrivateEngine | None":
        state = self._engine_state
        if not state:
            with self._lock:
                if not state:
                    djn = self.public_key.djn_base
                    state.append(_engine.PrivateEngine.create(self.q, self.p, djn)
                                 if isinstance(self.p, int) and isinstance(self.q, int) else None)
        return state[0]

    @property
    def fastpaillier_key(self) -> fp.PrivateKey | None:
        """The fastpaillier PrivateKey doing the work (None for p, q the native core refuses)."""
        engine = self._engine()
        return None if engine is None else engine.key

    def __repr__(self) -> str:
        return "<PaillierPrivateKey for {}>".format(repr(self.public_key))

    def __eq__(self, other: object) -> bool:
        if not hasattr(other, "p") or not hasattr(other, "q"):
            return NotImplemented
        return self.p == other.p and self.q == other.q

    def __hash__(self) -> int:
        return hash((self.p, self.q))

    def __reduce__(self):
        return (PaillierPrivateKey, (self.public_key, self.p, self.q))

    def decrypt(self, encrypted_number: "EncryptedNumber") -> int | float:
        """The decrypted and decoded int or float; TypeError/ValueError as phe."""
        return self.decrypt_encoded(encrypted_number).decode()

    def decrypt_encoded(self, encrypted_number: "EncryptedNumber", Encoding: type | None = None) -> EncodedNumber:
        """The decrypted EncodedNumber (or Encoding instance) of encrypted_number."""
        encrypted_number = self._own(encrypted_number)
        encoded = self.raw_decrypt(encrypted_number.ciphertext(be_secure=False))
        return (Encoding or EncodedNumber)(self.public_key, encoded, encrypted_number.exponent)

    def _own(self, encrypted_number: Any) -> "EncryptedNumber":
        if not isinstance(encrypted_number, EncryptedNumber):
            foreign = _from_foreign_number(encrypted_number)
            if foreign is None:
                raise TypeError("Expected encrypted_number to be an EncryptedNumber not: %s"
                                % type(encrypted_number))
            encrypted_number = foreign
        if self.public_key != encrypted_number.public_key:
            raise ValueError("encrypted_number was encrypted against a different key!")
        return encrypted_number

    def raw_decrypt(self, ciphertext: int) -> int:
        """The raw plaintext 0 <= m < n of an int ciphertext; TypeError unless it is an int."""
        if not isinstance(ciphertext, int):
            raise TypeError("Expected ciphertext to be an int, not: %s" % type(ciphertext))
        engine = self._engine()
        if engine is not None:
            return engine.decrypt(ciphertext)
        return self._python_decrypt(ciphertext)

    def _python_decrypt(self, ciphertext: int) -> int:
        """phe's CRT decryption in Python ints, for keys the native core refuses."""
        mp = util.mulmod(self.l_function(util.powmod(ciphertext, self.p - 1, self.psquare), self.p),
                         self.hp, self.p)
        mq = util.mulmod(self.l_function(util.powmod(ciphertext, self.q - 1, self.qsquare), self.q),
                         self.hq, self.q)
        return self.crt(mp, mq)

    def h_function(self, x: int, xsquare: int) -> int:
        """h(x) = L_x(g^(x-1) mod x^2)^-1 mod x, from 'Decryption using Chinese-remaindering'."""
        return util.invert(self.l_function(util.powmod(self.public_key.g, x - 1, xsquare), x), x)

    def l_function(self, x: int, p: int) -> int:
        """L(x, p) = (x - 1) // p."""
        return (x - 1) // p

    def crt(self, mp: int, mq: int) -> int:
        """The m mod n = p q with m = mp mod p and m = mq mod q."""
        u = util.mulmod(mq - mp, self.p_inverse, self.q)
        return mp + u * self.p

    # ---- fastpaillier additions ---------------------------------------------------------------

    def decrypt_many(self, encrypted_numbers: Iterable["EncryptedNumber"], *,
                     threads: int | None = None) -> list[int | float]:
        """decrypt() of each number in one native batch."""
        numbers = [self._own(x) for x in encrypted_numbers]
        ciphertexts = [x.ciphertext(be_secure=False) for x in numbers]
        engine = self._engine()
        if engine is None:
            plaintexts = [self._python_decrypt(c) for c in ciphertexts]
        else:
            plaintexts = engine.decrypt_batch(ciphertexts, threads)
        return [EncodedNumber(self.public_key, m, x.exponent).decode() for m, x in zip(plaintexts, numbers)]

    def encrypt(self, value: Any, precision: float | None = None) -> "EncryptedNumber":
        """As PaillierPublicKey.encrypt, with the obfuscator computed by CRT (several times faster)."""
        encoding = value if isinstance(value, EncodedNumber) else EncodedNumber.encode(
            self.public_key, value, precision)
        engine = self._engine()
        if engine is None:
            return self.public_key.encrypt_encoded(encoding, None)
        ciphertext = engine.encrypt(encoding.encoding % self.public_key.n)
        return EncryptedNumber._make(self.public_key, ciphertext, encoding.exponent, True)

    def encrypt_many(self, values: Iterable[Any], precision: float | None = None, *,
                     threads: int | None = None) -> "list[EncryptedNumber]":
        """encrypt() of each value in one native batch, by CRT."""
        pk = self.public_key
        encodings = _encode_all(pk, values, precision)
        engine = self._engine()
        if engine is None:
            ciphertexts = pk._encrypt_ints([e.encoding for e in encodings], threads)
        else:
            ciphertexts = engine.encrypt_batch([e.encoding % pk.n for e in encodings], threads)
        return [EncryptedNumber._make(pk, c, e.exponent, True) for c, e in zip(ciphertexts, encodings)]

    def precompute_obfuscators(self, count: int, *, background: bool = True,
                               threads: int | None = None) -> threading.Thread | None:
        """Obfuscators computed ahead by CRT for this private key's encrypt()/encrypt_many()."""
        key = self.fastpaillier_key
        if key is None:
            raise ValueError("cannot precompute obfuscators: fastpaillier's native core does not support this key")
        return key.precompute_obfuscators(count, threads=threads, background=background)

    def with_djn(self) -> "PaillierPrivateKey":
        """This key with a fresh DJN base h_s; its public_key encrypts with h_s^a (same n, p, q)."""
        key = self.fastpaillier_key
        if key is None:
            raise ValueError("DJN randomness needs a key that fastpaillier's native core supports")
        djn_key = key.with_djn()
        public_key = PaillierPublicKey.from_fastpaillier(djn_key.public_key)
        private_key = PaillierPrivateKey(public_key, self.p, self.q)
        private_key._engine_state.append(_engine.PrivateEngine(djn_key))
        return private_key


class PaillierPrivateKeyring(Mapping):
    """Private keys by public key: a read-only mapping with add(), del and decrypt()."""

    def __init__(self, private_keys: Iterable[PaillierPrivateKey] | None = None) -> None:
        self.__keyring = {key.public_key: key for key in (private_keys or [])}

    def __getitem__(self, key: PaillierPublicKey) -> PaillierPrivateKey:
        return self.__keyring[key]

    def __len__(self) -> int:
        return len(self.__keyring)

    def __iter__(self) -> Iterator[PaillierPublicKey]:
        return iter(self.__keyring)

    def __delitem__(self, public_key: PaillierPublicKey) -> None:
        del self.__keyring[public_key]

    def add(self, private_key: PaillierPrivateKey) -> None:
        """Adds a private key; TypeError for anything else."""
        if not isinstance(private_key, PaillierPrivateKey):
            raise TypeError("private_key should be of type PaillierPrivateKey, not %s" % type(private_key))
        self.__keyring[private_key.public_key] = private_key

    def decrypt(self, encrypted_number: "EncryptedNumber") -> int | float:
        """Decrypts with the key of encrypted_number.public_key; KeyError when it is not held."""
        return self.__keyring[encrypted_number.public_key].decrypt(encrypted_number)


class EncryptedNumber:
    """The Paillier encryption of an encoded int or float: ciphertext (int) and exponent.

    Sums and products are not obfuscated (one multiplication mod n^2 each); ciphertext()
    obfuscates on first call with be_secure=True, as phe.
    """

    def __init__(self, public_key: PaillierPublicKey, ciphertext: int, exponent: int = 0) -> None:
        if isinstance(ciphertext, EncryptedNumber):
            raise TypeError("ciphertext should be an integer")
        if not isinstance(public_key, PaillierPublicKey):
            converted = _from_foreign_key(public_key)
            if converted is None:
                raise TypeError("public_key should be a PaillierPublicKey")
            public_key = converted
        self.public_key = public_key
        self.__ciphertext = ciphertext
        self.exponent = exponent
        self.__is_obfuscated = False

    @classmethod
    def _make(cls, public_key: PaillierPublicKey, ciphertext: int, exponent: int,
              obfuscated: bool) -> "EncryptedNumber":
        self = cls.__new__(cls)
        self.public_key = public_key
        self.__ciphertext = ciphertext
        self.exponent = exponent
        self.__is_obfuscated = obfuscated
        return self

    def __repr__(self) -> str:
        return "<EncryptedNumber exponent={} key={!r}>".format(self.exponent, self.public_key)

    def __add__(self, other: Any) -> "EncryptedNumber":
        """E(a + b) for an int, float, EncodedNumber or EncryptedNumber b."""
        if isinstance(other, EncryptedNumber):
            return self._add_encrypted(other)
        if isinstance(other, EncodedNumber):
            return self._add_encoded(other)
        foreign = _from_foreign_number(other)
        if foreign is not None:
            return self._add_encrypted(foreign)
        return self._add_scalar(other)

    def __radd__(self, other: Any) -> "EncryptedNumber":
        return self.__add__(other)

    def __mul__(self, other: Any) -> "EncryptedNumber":
        """E(a * b) for an int, float or EncodedNumber b."""
        if isinstance(other, EncryptedNumber) or _from_foreign_number(other) is not None:
            raise NotImplementedError("Good luck with that...")
        encoding = other if isinstance(other, EncodedNumber) else EncodedNumber.encode(self.public_key, other)
        product = self._raw_mul(encoding.encoding)
        return EncryptedNumber._make(self.public_key, product, self.exponent + encoding.exponent, False)

    def __rmul__(self, other: Any) -> "EncryptedNumber":
        return self.__mul__(other)

    def __sub__(self, other: Any) -> "EncryptedNumber":
        return self + (other * -1)

    def __rsub__(self, other: Any) -> "EncryptedNumber":
        return other + (self * -1)

    def __truediv__(self, scalar: Any) -> "EncryptedNumber":
        return self.__mul__(1 / scalar)

    def ciphertext(self, be_secure: bool = True) -> int:
        """The ciphertext int; with be_secure (the default) obfuscated first if not yet done."""
        if be_secure and not self.__is_obfuscated:
            self.obfuscate()
        return self.__ciphertext

    def decrease_exponent_to(self, new_exp: int) -> "EncryptedNumber":
        """The same value at the lower exponent new_exp; ValueError if new_exp is higher."""
        if new_exp > self.exponent:
            raise ValueError("New exponent %i should be more negative than old exponent %i"
                             % (new_exp, self.exponent))
        multiplied = self * pow(EncodedNumber.BASE, self.exponent - new_exp)
        multiplied.exponent = new_exp
        return multiplied

    def obfuscate(self) -> None:
        """Multiplies the ciphertext by a fresh encryption of 0 (r^n, or h_s^a on a DJN key)."""
        pk = self.public_key
        engine = pk._engine
        if engine is None:
            r_pow_n = util.powmod(pk.get_random_lt_n(), pk.n, pk.nsquare)
            self.__ciphertext = util.mulmod(self.__ciphertext, r_pow_n, pk.nsquare)
        else:
            self.__ciphertext = engine.arith.mul(self.__ciphertext, engine.obfuscator())
        self.__is_obfuscated = True

    def _add_scalar(self, scalar: Any) -> "EncryptedNumber":
        encoded = EncodedNumber.encode(self.public_key, scalar, max_exponent=self.exponent)
        return self._add_encoded(encoded)

    def _add_encoded(self, encoded: EncodedNumber) -> "EncryptedNumber":
        if self.public_key != encoded.public_key:
            raise ValueError("Attempted to add numbers encoded against different public keys!")
        a, b = self, encoded
        if a.exponent > b.exponent:
            a = self.decrease_exponent_to(b.exponent)
        elif a.exponent < b.exponent:
            b = b.decrease_exponent_to(a.exponent)
        pk = a.public_key
        plain = (pk.n * b.encoding + 1) % pk.nsquare  # E(b) with r = 1
        return EncryptedNumber._make(pk, a._raw_add(a.ciphertext(False), plain), a.exponent, False)

    def _add_encrypted(self, other: "EncryptedNumber") -> "EncryptedNumber":
        if self.public_key is not other.public_key and self.public_key != other.public_key:
            raise ValueError("Attempted to add numbers encrypted against different public keys!")
        a, b = self, other
        if a.exponent > b.exponent:
            a = self.decrease_exponent_to(b.exponent)
        elif a.exponent < b.exponent:
            b = b.decrease_exponent_to(a.exponent)
        return EncryptedNumber._make(a.public_key, a._raw_add(a.ciphertext(False), b.ciphertext(False)),
                                     a.exponent, False)

    def _raw_add(self, e_a: int, e_b: int) -> int:
        """E(a + b) = E(a) E(b) mod n^2, as an int."""
        engine = self.public_key._engine
        if engine is None:
            return util.mulmod(e_a, e_b, self.public_key.nsquare)
        return engine.arith.mul(e_a, e_b)

    def _raw_mul(self, plaintext: int) -> int:
        """E(a * plaintext) = E(a)^plaintext mod n^2, as an int, for 0 <= plaintext < n."""
        if not isinstance(plaintext, int):
            raise TypeError("Expected ciphertext to be int, not %s" % type(plaintext))
        pk = self.public_key
        if plaintext < 0 or plaintext >= pk.n:
            raise ValueError("Scalar out of bounds: %i" % plaintext)
        engine = pk._engine
        if engine is None:
            if pk.n - pk.max_int <= plaintext:  # a negative scalar: invert, then a short exponent
                neg_c = util.invert(self.ciphertext(False), pk.nsquare)
                return util.powmod(neg_c, pk.n - plaintext, pk.nsquare)
            return util.powmod(self.ciphertext(False), plaintext, pk.nsquare)
        arith = engine.arith
        if pk.n - pk.max_int <= plaintext:
            return arith.pow(arith.inverse(self.ciphertext(False)), pk.n - plaintext)
        return arith.pow(self.ciphertext(False), plaintext)


# ---- batches and EncryptedArray ------------------------------------------------------------------

def _encode_all(public_key: PaillierPublicKey, values: Iterable[Any], precision: float | None) -> list[EncodedNumber]:
    encode = EncodedNumber.encode
    return [v if isinstance(v, EncodedNumber) else encode(public_key, v, precision) for v in values]


def to_encrypted_array(encrypted_numbers: Sequence[EncryptedNumber],
                       exponent: int | None = None) -> "tuple[fp.EncryptedArray, int]":
    """(array, exponent): the numbers as one raw-integer fastpaillier.EncryptedArray.

    Every number is first brought to one exponent (the lowest among them, or `exponent`) with
    decrease_exponent_to; the array holds the encodings mod n.  Add such arrays (with the same
    exponent) with fastpaillier.sum_arrays or +, multiply them by int scalars, then turn the
    result back with from_encrypted_array(array, exponent).
    """
    numbers = list(encrypted_numbers)
    if not numbers:
        raise ValueError("to_encrypted_array needs at least one EncryptedNumber")
    numbers = [x if isinstance(x, EncryptedNumber) else _from_foreign_number(x) or x for x in numbers]
    for i, x in enumerate(numbers):
        if not isinstance(x, EncryptedNumber):
            raise TypeError("encrypted_numbers[%d] is %s, not an EncryptedNumber" % (i, type(x)))
    pk = numbers[0].public_key
    key = pk._native_key("build an EncryptedArray")
    for x in numbers[1:]:
        if x.public_key != pk:
            raise ValueError("Attempted to combine numbers encrypted against different public keys!")
    target = min(x.exponent for x in numbers) if exponent is None else exponent
    aligned = [x if x.exponent == target else x.decrease_exponent_to(target) for x in numbers]
    rows = _engine.rows_from_ints([x.ciphertext(be_secure=False) % pk.nsquare for x in aligned], key.nsq_limbs)
    return fp.EncryptedArray(key, rows), target


def from_encrypted_array(array: fp.EncryptedArray, exponent: int = 0,
                         public_key: PaillierPublicKey | None = None) -> list[EncryptedNumber]:
    """EncryptedNumbers (not yet obfuscated) of a raw-integer array's ciphertexts at `exponent`.

    public_key: the PaillierPublicKey to attach (default: one over array.public_key).
    """
    if not isinstance(array, fp.EncryptedArray):
        raise TypeError("array should be a fastpaillier.EncryptedArray, not %s" % type(array))
    if array.codec is not None:
        raise ValueError("from_encrypted_array takes raw-integer arrays (codec None), not %r" % array.codec)
    if public_key is None:
        public_key = PaillierPublicKey.from_fastpaillier(array.public_key)
    elif public_key.n != array.public_key.n:
        raise ValueError("array was encrypted against a different key!")
    return [EncryptedNumber._make(public_key, c, exponent, False) for c in _engine.ints_from_rows(array.ciphertexts)]


# ---- objects from python-paillier itself ---------------------------------------------------------

_FOREIGN_KEYS: "weakref.WeakValueDictionary[int, PaillierPublicKey]" = weakref.WeakValueDictionary()


def _own_public_key(public_key: Any) -> PaillierPublicKey:
    if isinstance(public_key, PaillierPublicKey):
        return public_key
    converted = _from_foreign_key(public_key)
    if converted is None:
        raise TypeError("public_key should be a PaillierPublicKey")
    return converted


def _from_foreign_key(key: Any) -> PaillierPublicKey | None:
    """Ours for a python-paillier PaillierPublicKey (anything with int n and g = n + 1), else None."""
    n = getattr(key, "n", None)
    if type(key).__name__ != "PaillierPublicKey" or not isinstance(n, int) or getattr(key, "g", None) != n + 1:
        return None
    ours = _FOREIGN_KEYS.get(n)
    if ours is None:
        ours = PaillierPublicKey(n)
        _FOREIGN_KEYS[n] = ours
    return ours


def _from_foreign_number(x: Any) -> EncryptedNumber | None:
    """Ours for a python-paillier EncryptedNumber (same ciphertext, exponent and n), else None."""
    if type(x).__name__ != "EncryptedNumber" or not callable(getattr(x, "ciphertext", None)):
        return None
    key = _from_foreign_key(getattr(x, "public_key", None))
    if key is None:
        return None
    obfuscated = bool(getattr(x, "_EncryptedNumber__is_obfuscated", False))
    return EncryptedNumber._make(key, x.ciphertext(be_secure=False), x.exponent, obfuscated)
