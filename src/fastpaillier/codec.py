"""The interface shared by FixedPointCodec and PackedCodec, and their registry."""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .errors import (CodecMismatchError, EncodingOverflowError, InvalidArgumentError, KeyMismatchError,
                     SerializationError, SummandLimitError)

if TYPE_CHECKING:
    from . import _wire
    from .encrypted_array import EncryptedArray
    from .keys import PrivateKey, PublicKey

CODEC_NONE = 0
CODEC_FIXED_POINT = 1
CODEC_PACKED = 2


def real_values(values: object, argname: str) -> tuple[np.ndarray, np.dtype]:
    """(float64 flat copy, output dtype) of a real-valued array; float32 stays float32 on decode."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise InvalidArgumentError(f"{argname} must be a real numeric array, got dtype {arr.dtype}")
    dtype = np.dtype(np.float32) if arr.dtype == np.float32 else np.dtype(np.float64)
    return arr.astype(np.float64).ravel(), dtype


def largest_encodable(max_int: int, frac_bits: int) -> float:
    """The largest float x with round(x * 2^frac_bits) <= max_int."""
    top = float(max_int)
    if int(top) > max_int:  # float(max_int) rounded up
        top = float(np.nextafter(top, 0.0))
    return float(np.ldexp(top, -frac_bits))


def quantize(values: np.ndarray, frac_bits: int, max_int: int, argname: str) -> np.ndarray:
    """round(values * 2^frac_bits) as int64, raising if any |result| > max_int, NaN or inf."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise EncodingOverflowError(f"{argname}[{i}] = {values[i]} is not finite; it cannot be encoded")
    with np.errstate(over="ignore"):  # values too large for a float64 after scaling are caught below (inf)
        scaled = np.rint(np.ldexp(values, frac_bits))
    limit = float(max_int)
    over = np.abs(scaled) > limit
    if not over.any():
        q = scaled.astype(np.int64)
        over = np.abs(q) > max_int  # exact check: float(max_int) may round up
    if over.any():
        i = int(np.argmax(over))
        raise EncodingOverflowError(
            f"{argname}[{i}] = {values[i]!r} is outside the representable range "
            f"+-{math.ldexp(max_int, -frac_bits)!r} (value_bits/frac_bits of the codec); "
            "scale or clip the values, or choose a codec with more integer bits")
    return q


class Codec(abc.ABC):
    """Maps real arrays to Paillier plaintext rows and back, tracking summation headroom."""

    kind: ClassVar[int]
    supports_negation: ClassVar[bool]
    supports_elementwise_scalars: ClassVar[bool]
    supports_axis_sum: ClassVar[bool]

    def __init__(self, public_key: "PublicKey") -> None:
        from .keys import PublicKey

        if not isinstance(public_key, PublicKey):
            raise InvalidArgumentError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        self._public_key = public_key

    @property
    def public_key(self) -> "PublicKey":
        """The key whose plaintext space this codec fills."""
        return self._public_key

    @property
    @abc.abstractmethod
    def max_summands(self) -> int:
        """How many encoded values may be added (or the total scalar weight) before overflow."""

    @abc.abstractmethod
    def rows_for(self, size: int) -> int:
        """Number of ciphertexts that hold `size` values."""

    @abc.abstractmethod
    def encode(self, values: object) -> tuple[np.ndarray, tuple[int, ...], np.dtype]:
        """(plaintext rows (R, n_limbs), shape, dtype) for a real-valued array."""

    @abc.abstractmethod
    def decode(self, rows: np.ndarray, shape: tuple[int, ...], summands: int, dtype: np.dtype) -> np.ndarray:
        """The real array held by decrypted rows that carry `summands` encoded summands."""

    @abc.abstractmethod
    def params(self) -> tuple[int, ...]:
        """The parameters that define the encoding (for equality and serialization)."""

    @abc.abstractmethod
    def _wire_params(self) -> bytes:
        """Serialized parameters."""

    def max_rounding_error(self, summands: int = 1) -> float:
        """Worst-case absolute error of a decoded sum of `summands` encoded values."""
        return summands * 2.0 ** -(self.params_frac_bits() + 1)

    @abc.abstractmethod
    def params_frac_bits(self) -> int:
        """Fractional bits of the fixed-point representation."""

    def check_summands(self, summands: int, what: str) -> int:
        """Returns summands, raising SummandLimitError if it exceeds the headroom."""
        if summands > self.max_summands:
            raise SummandLimitError(
                f"{what} would hold {summands} summands but the codec's headroom allows "
                f"{self.max_summands} (max_summands); decrypt and re-encrypt, or use a codec "
                "with a larger max_summands")
        return summands

    def scaled_summands(self, scalar: int, summands: int) -> int:
        """Summands after multiplying by an integer scalar; raises if not exact."""
        return self.check_summands(summands * abs(scalar), f"multiplying by {scalar}")

    def encrypt(self, values: object, key: "PublicKey | PrivateKey", *, threads: int | None = None,
                randomness: str | None = None) -> "EncryptedArray":
        """Encodes and encrypts a real array; a PrivateKey encrypts faster by CRT.

        randomness: "classic", "djn" or None for the key's default (see PublicKey.encrypt).
        """
        from .keys import PrivateKey, PublicKey

        if not isinstance(key, (PrivateKey, PublicKey)):
            raise InvalidArgumentError(f"key must be a PublicKey or PrivateKey, got {type(key).__name__}")
        pk = key.public_key if isinstance(key, PrivateKey) else key
        if pk != self._public_key:
            if pk.n == self._public_key.n:
                raise KeyMismatchError(
                    "key has the codec's modulus n but another DJN value h_s (a classic and a DJN key of one n "
                    "are different keys, with different fingerprints); make the codec with this key's "
                    "public key")
            raise KeyMismatchError("key does not match the codec's public key")
        rows, shape, dtype = self.encode(values)
        return key._encrypt_rows(rows, shape, threads, randomness, codec=self, summands=1, dtype=dtype)

    def decrypt(self, array: "EncryptedArray", private_key: "PrivateKey", *,
                threads: int | None = None) -> np.ndarray:
        """Decrypts and decodes an array produced with this codec."""
        if array.codec != self:
            raise CodecMismatchError("array was not encoded with this codec")
        return private_key.decrypt(array, threads=threads)

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other.params() == self.params()
                and other._public_key == self._public_key)

    def __hash__(self) -> int:
        return hash((type(self), self.params(), self._public_key))


def codec_from_wire(kind: int, reader: "_wire.Reader", public_key: "PublicKey") -> Codec | None:
    """Reads codec parameters of `kind`; raises SerializationError if they are inconsistent."""
    from .fixed_point import FixedPointCodec
    from .packed import PackedCodec

    try:
        if kind == CODEC_NONE:
            return None
        if kind == CODEC_FIXED_POINT:
            frac_bits, value_bits = reader.unpack("HH")
            return FixedPointCodec(public_key, frac_bits=frac_bits, value_bits=value_bits)
        if kind == CODEC_PACKED:
            value_bits, frac_bits, max_summands = reader.unpack("HHI")
            return PackedCodec(public_key, value_bits=value_bits, max_summands=max_summands,
                               frac_bits=frac_bits)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"encrypted array: inconsistent codec metadata ({exc})") from exc
    raise SerializationError(f"encrypted array: unknown codec kind {kind}")
