"""EncryptedArray: a batch of Paillier ciphertexts as one contiguous (N, limbs) uint64 array."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import _limbs, _native, _plaintext, _wire
from .codec import CODEC_NONE, Codec, codec_from_wire
from .errors import (CodecMismatchError, InvalidArgumentError, InvalidCiphertextError, KeyMismatchError,
                     SerializationError, ShapeMismatchError)
from .threads import resolve_threads

if TYPE_CHECKING:
    from .keys import PrivateKey, PublicKey

_DTYPE_CODES = {np.dtype(np.int64): 0, np.dtype(np.float32): 1, np.dtype(np.float64): 2}
_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_MAX_NDIM = 32
# Bounds on shapes, checked wherever an array is made (constructor, from_bytes, encryption, reshape,
# sums): every dimension, and the product of the non-zero dimensions, is at most MAX_VALUES; an array
# that holds no values (a dimension is 0) has no ciphertexts to back its other dimensions, so their
# product is at most MAX_EMPTY_VALUES.  A sum over an empty axis then makes at most 2^8 ciphertexts
# (E(0) each), whatever a serialized header says, so neither their memory nor decrypting them grows
# with what a short header claims (256 decryptions: 0.27 s at 2048 bits on the ifma tier, 1.0 s on mulx).
MAX_VALUES = 2**48
MAX_EMPTY_VALUES = 2**8
_MAX_DIM = MAX_VALUES


class EncryptedArray:
    """Ciphertexts of an array of any shape under one public key, optionally encoded by a codec.

    `ciphertexts` is a read-only C-contiguous uint64 array of shape
    (rows, public_key.nsq_limbs): one ciphertext per value without a codec or
    with FixedPointCodec, ceil(size / slots) with PackedCodec.  `summands`
    counts the encoded values (or total scalar weight) summed into each slot,
    so the codec can refuse an operation that would overflow its headroom.
    Results of homomorphic operations are not rerandomized: call
    rerandomize() before handing a result to a party that saw its inputs.

    Internally the rows may be held in Montgomery form, c R mod n^2 with
    R = 2^(52 D) (D radix-2^52 digits of n^2), where the AVX-512 IFMA kernels
    are enabled: encryptions convert their results (one Montgomery pass), and
    a sum of ciphertexts is then one Montgomery product per ciphertext
    instead of a GMP multiply-and-reduce.  `ciphertexts`, to_bytes() and
    decryption always see canonical values (converted on first use and
    cached).  Arrays built from canonical rows (the constructor, from_bytes)
    start canonical; operations accept any mix of forms.
    """

    __slots__ = ("_public_key", "_data", "_shape", "_codec", "_summands", "_dtype", "_mont", "_canonical")

    # numpy defers to our reflected operators (ndarray + EncryptedArray) instead of looping over elements.
    __array_ufunc__ = None

    def __init__(self, public_key: "PublicKey", ciphertexts: np.ndarray, shape: Sequence[int] | None = None,
                 *, codec: Codec | None = None, summands: int = 1, dtype: object = None) -> None:
        from .keys import PublicKey

        if not isinstance(public_key, PublicKey):
            raise InvalidArgumentError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        if (not isinstance(ciphertexts, np.ndarray) or ciphertexts.dtype != np.uint64
                or ciphertexts.ndim != 2 or ciphertexts.shape[1] != public_key.nsq_limbs):
            raise InvalidArgumentError(
                f"ciphertexts must be a uint64 array of shape (N, {public_key.nsq_limbs}) for this key")
        data = np.array(ciphertexts, dtype=np.uint64, order="C", copy=True)  # owned, made read-only
        shape = (data.shape[0],) if shape is None else tuple(int(d) for d in shape)
        if codec is not None and codec.public_key != public_key:
            raise KeyMismatchError("codec belongs to a different public key")
        dtype = np.dtype(np.int64 if codec is None else np.float64) if dtype is None else np.dtype(dtype)
        _check_layout(public_key, data.shape[0], shape, codec, summands, dtype, InvalidArgumentError)
        bad = _native.find_invalid_ciphertext(public_key._ctx, data, resolve_threads(None))
        if bad >= 0:
            raise InvalidCiphertextError(
                f"ciphertexts[{bad}] is not an element of Z*_(n^2): it is 0, not below n^2, or shares a "
                "factor with n (no encryption produces such a value)")
        self._init(public_key, data, shape, codec, summands, dtype)

    def _init(self, public_key: "PublicKey", data: np.ndarray, shape: tuple[int, ...],
              codec: Codec | None, summands: int, dtype: np.dtype, mont: bool = False,
              canonical: np.ndarray | None = None) -> None:
        check_shape(shape, InvalidArgumentError)
        data.setflags(write=False)
        if canonical is not None:
            canonical.setflags(write=False)
        self._public_key = public_key
        self._data = data  # rows in canonical form, or in Montgomery form when self._mont
        self._shape = shape
        self._codec = codec
        self._summands = summands
        self._dtype = dtype
        self._mont = bool(mont)
        self._canonical = None if not mont else canonical  # cached canonical rows of a Montgomery array

    @classmethod
    def _wrap(cls, public_key: "PublicKey", data: np.ndarray, shape: tuple[int, ...], *,
              codec: Codec | None = None, summands: int = 1, dtype: np.dtype | None = None,
              mont: bool = False, canonical: np.ndarray | None = None) -> "EncryptedArray":
        """Internal constructor for kernel outputs: no copies, no checks.

        mont: data holds the Montgomery form c R mod n^2; canonical: the same ciphertexts in
        canonical form if the caller has them (kept as the cache of `ciphertexts`).
        """
        self = cls.__new__(cls)
        if dtype is None:
            dtype = np.dtype(np.int64) if codec is None else np.dtype(np.float64)
        self._init(public_key, data, tuple(shape), codec, summands, np.dtype(dtype), mont, canonical)
        return self

    # ---- properties -------------------------------------------------------

    @property
    def public_key(self) -> "PublicKey":
        """The key the ciphertexts belong to."""
        return self._public_key

    @property
    def ciphertexts(self) -> np.ndarray:
        """The read-only (rows, nsq_limbs) uint64 ciphertext array (canonical values c < n^2)."""
        return self._canonical_rows()

    def _canonical_rows(self, threads: int | None = None) -> np.ndarray:
        if not self._mont:
            return self._data
        canonical = self._canonical
        if canonical is None:  # racing threads compute the same rows; either result is kept
            canonical = self._public_key._convert(self._data, True, False, resolve_threads(threads))
            canonical.setflags(write=False)
            self._canonical = canonical
        return canonical

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the encrypted (logical) array."""
        return self._shape

    @property
    def size(self) -> int:
        """Number of encrypted values."""
        return _limbs.shape_size(self._shape)

    @property
    def ndim(self) -> int:
        """Number of logical dimensions."""
        return len(self._shape)

    @property
    def codec(self) -> Codec | None:
        """The codec that encoded the values, or None for raw integers."""
        return self._codec

    @property
    def summands(self) -> int:
        """Encoded summands (total scalar weight) accumulated in each value."""
        return self._summands

    @property
    def dtype(self) -> np.dtype:
        """dtype that decrypt() returns."""
        return self._dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the ciphertexts."""
        return self._data.nbytes

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d EncryptedArray")
        return self._shape[0]

    def __repr__(self) -> str:
        codec = "raw integers" if self._codec is None else repr(self._codec)
        return (f"<EncryptedArray shape={self._shape} ciphertexts={self._data.shape[0]} "
                f"{codec} summands={self._summands} key={self._public_key.fingerprint.hex()[:16]}>")

    def reshape(self, *shape: int) -> "EncryptedArray":
        """The same ciphertexts under a new logical shape of equal size (-1 allowed once)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        new_shape = _reshaped(self.size, shape)
        return self._like(self._data, new_shape, self._summands, mont=self._mont, canonical=self._canonical)

    def _like(self, data: np.ndarray, shape: tuple[int, ...], summands: int,
              dtype: np.dtype | None = None, *, mont: bool, canonical: np.ndarray | None = None) -> "EncryptedArray":
        return EncryptedArray._wrap(self._public_key, data, shape, codec=self._codec, summands=summands,
                                    dtype=self._dtype if dtype is None else dtype, mont=mont, canonical=canonical)

    # ---- homomorphic operations ------------------------------------------

    def _check_compatible(self, other: "EncryptedArray") -> None:
        if other._public_key != self._public_key:
            raise KeyMismatchError("operands are encrypted under different public keys")
        if other._shape != self._shape:
            raise ShapeMismatchError(f"operand shapes differ: {self._shape} and {other._shape}")
        if other._codec != self._codec:
            raise CodecMismatchError(f"operands use different codecs: {self._codec!r} and {other._codec!r}")

    def _summands_after_add(self, other_summands: int) -> int:
        total = self._summands + other_summands
        if self._codec is not None:
            self._codec.check_summands(total, "the sum")
        return total

    def add(self, other: object, *, threads: int | None = None) -> "EncryptedArray":
        """Homomorphic addition of another EncryptedArray or of plaintext values."""
        t = resolve_threads(threads)
        ctx = self._public_key._ctx
        if isinstance(other, EncryptedArray):
            self._check_compatible(other)
            summands = self._summands_after_add(other._summands)
            data, mont = _product(self._public_key, [self, other], t)
            return self._like(data, self._shape, summands, np.result_type(self._dtype, other._dtype), mont=mont)
        if self._codec is None:
            rows, _ = _plaintext.integer_rows(
                self._public_key, broadcast_plaintext(_as_int_array(other), self._shape), "other")
            summands = self._summands
        else:
            rows = self._codec.encode_scalar_rows(other, self._shape)
            summands = self._summands_after_add(1)
        # c R^f (1 + m n) mod n^2 is E(x + m) in the same form f as the input.
        data = _native.add_plaintexts(ctx, self._data, np.ascontiguousarray(rows), t)
        return self._like(data, self._shape, summands, mont=self._mont)

    def multiply(self, scalar: object, *, threads: int | None = None) -> "EncryptedArray":
        """Homomorphic multiplication by integer scalars (one int, or an int array of this shape)."""
        t = resolve_threads(threads)
        exps, neg, max_abs = self._scalar_rows(scalar)
        summands = self._summands
        if self._codec is not None:
            summands = self._codec.scaled_summands(max_abs, self._summands)
        data, bad = _native.pow_ciphertexts(self._public_key._ctx, self._canonical_rows(t), exps, neg, t)
        if bad >= 0:
            raise InvalidCiphertextError(f"ciphertext {bad} is not invertible mod n^2")
        return self._like(data, self._shape, summands, mont=False)

    def _scalar_rows(self, scalar: object) -> tuple[np.ndarray, np.ndarray, int]:
        """(|k| limb rows, sign flags, max |k|) for an int or an int array of this shape."""
        n = self._public_key.n
        if isinstance(scalar, (int, np.integer)) and not isinstance(scalar, (bool, np.bool_)):
            k = int(scalar)
            if self._codec is not None and not self._codec.supports_negation and k < 0:
                raise CodecMismatchError(
                    f"{type(self._codec).__name__} arrays cannot be multiplied by a negative scalar "
                    f"({k}): slots would borrow from each other")
            mag = abs(k) % n if self._codec is None else abs(k)
            if mag >= n:
                raise InvalidArgumentError(f"scalar {k} is too large for the key")
            row = _limbs.int_to_limbs(mag, _limbs.limb_count(mag))[None, :]
            return row, np.array([k < 0], dtype=np.uint8), abs(k)
        arr = np.asarray(scalar)
        if arr.dtype.kind not in "iu":
            raise InvalidArgumentError(
                f"scalar must be an int or an integer array, got dtype {arr.dtype}; "
                "scale real values before encoding instead")
        if self._codec is not None and not self._codec.supports_elementwise_scalars:
            raise CodecMismatchError(
                f"{type(self._codec).__name__} arrays take a single int scalar, not one per value")
        if arr.shape != self._shape:
            try:
                arr = np.broadcast_to(arr, self._shape)
            except ValueError:
                raise ShapeMismatchError(f"scalar shape {arr.shape} does not broadcast to {self._shape}") from None
        flat = np.ascontiguousarray(arr.ravel())
        if flat.dtype.kind == "u":
            neg = np.zeros(flat.size, dtype=np.uint8)
            mag = flat.astype(np.uint64)
        else:
            flat = flat.astype(np.int64)
            neg = (flat < 0).astype(np.uint8)
            mag = np.where(flat < 0, (~flat).astype(np.uint64) + np.uint64(1), flat.astype(np.uint64))
        max_abs = int(mag.max()) if mag.size else 0
        if max_abs >= n:
            raise InvalidArgumentError("a scalar is not below n in magnitude")
        return np.ascontiguousarray(mag.reshape(-1, 1)), neg, max_abs

    def negate(self, *, threads: int | None = None) -> "EncryptedArray":
        """Homomorphic negation: E(-x)."""
        if self._codec is not None and not self._codec.supports_negation:
            raise CodecMismatchError(f"{type(self._codec).__name__} arrays cannot be negated")
        t = resolve_threads(threads)
        data, bad = _native.invert_ciphertexts(self._public_key._ctx, self._canonical_rows(t), t)
        if bad >= 0:
            raise InvalidCiphertextError(f"ciphertext {bad} is not invertible mod n^2")
        return self._like(data, self._shape, self._summands, mont=False)

    def subtract(self, other: object, *, threads: int | None = None) -> "EncryptedArray":
        """Homomorphic subtraction of another EncryptedArray or of plaintext values."""
        if isinstance(other, EncryptedArray):
            self._check_compatible(other)
            return self.add(other.negate(threads=threads), threads=threads)
        if self._codec is None:
            rows, _ = _plaintext.integer_rows(
                self._public_key, broadcast_plaintext(_as_int_array(other), self._shape), "other")
            n = self._public_key.n
            negated = _limbs.ints_to_rows(((n - m) % n for m in _limbs.rows_to_ints(rows)),
                                          self._public_key.n_limbs)
            data = _native.add_plaintexts(self._public_key._ctx, self._data, negated, resolve_threads(threads))
            return self._like(data, self._shape, self._summands, mont=self._mont)
        return self.add(-np.asarray(other, dtype=np.float64), threads=threads)

    def sum(self, axis: int | None = None, *, threads: int | None = None) -> "EncryptedArray":
        """Homomorphic sum over one axis, or over all values when axis is None."""
        if self._codec is not None and not self._codec.supports_axis_sum:
            raise CodecMismatchError(
                f"{type(self._codec).__name__} arrays pack several values per ciphertext and cannot be "
                "summed along an axis; add whole arrays with sum_arrays() instead")
        t = resolve_threads(threads)
        ctx = self._public_key._ctx
        if axis is None:
            group, out_shape, gathered = self._data.shape[0], (), self._data
        else:
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
                raise InvalidArgumentError(f"axis must be an int or None, got {axis!r}")
            if not -self.ndim <= axis < self.ndim:
                raise InvalidArgumentError(f"axis {axis} is out of range for shape {self._shape}")
            axis = int(axis) % self.ndim
            group = self._shape[axis]
            out_shape = self._shape[:axis] + self._shape[axis + 1 :]
            order = np.moveaxis(np.arange(self._data.shape[0]).reshape(self._shape), axis, -1).ravel()
            gathered = np.ascontiguousarray(self._data[order])
        summands = self._summands * group
        if self._codec is not None:
            self._codec.check_summands(summands, "the sum")
        mont = False
        if group == 0 or not gathered.shape[0]:  # an empty group, or no groups at all
            data = np.zeros((_limbs.shape_size(out_shape), self._public_key.nsq_limbs), dtype=np.uint64)
            data[:, 0] = 1  # the empty sum: 1 = E(0) with r = 1
        elif self._mont or self._public_key._mont_target():
            data, mont = _group_product(self._public_key, gathered, self._mont, group, t)
        else:
            data = _native.product_of_groups(ctx, gathered, group, t)
        return self._like(data, out_shape, summands, mont=mont)

    def rerandomize(self, key: "PublicKey | PrivateKey | None" = None, *, threads: int | None = None,
                    randomness: str | None = None) -> "EncryptedArray":
        """Multiplies every ciphertext by a fresh encryption of 0 (CRT-fast with a PrivateKey).

        randomness: "classic", "djn" or None for the key's default (key None: the array's key).
        """
        from .keys import DJN, PrivateKey, PublicKey

        t = resolve_threads(threads)
        if key is None or isinstance(key, PublicKey):
            if key is not None and key != self._public_key:
                raise KeyMismatchError("key does not match the array's public key")
            pk = self._public_key if key is None else key
            if pk._randomness(randomness) == DJN:
                data = _native.rerandomize_djn(pk._djn(), self._data, t)
            else:
                data = _native.rerandomize_public(pk._ctx, self._data, t)
        elif isinstance(key, PrivateKey):
            if key.public_key != self._public_key:
                raise KeyMismatchError("key does not match the array's public key")
            if key.public_key._randomness(randomness) == DJN:
                data = _native.rerandomize_djn_crt(key._djn_crt(), self._data, t)
            else:
                data = _native.rerandomize_private(key._ctx, self._data, t)
        else:
            raise InvalidArgumentError(f"key must be a PublicKey, PrivateKey or None, got {type(key).__name__}")
        # c R^f times a fresh encryption of 0, mod n^2: the same form f as the input.
        return self._like(data, self._shape, self._summands, mont=self._mont)

    def __add__(self, other: object) -> "EncryptedArray":
        return self.add(other)

    __radd__ = __add__

    def __sub__(self, other: object) -> "EncryptedArray":
        return self.subtract(other)

    def __rsub__(self, other: object) -> "EncryptedArray":
        return self.negate().add(other)

    def __mul__(self, scalar: object) -> "EncryptedArray":
        if isinstance(scalar, EncryptedArray):
            raise InvalidArgumentError("Paillier cannot multiply two ciphertexts; multiply by a plaintext int")
        return self.multiply(scalar)

    __rmul__ = __mul__

    def __neg__(self) -> "EncryptedArray":
        return self.negate()

    # ---- serialization ----------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned binary encoding with key fingerprint, shape, codec metadata and ciphertexts."""
        # Refuse here whatever from_bytes() would refuse (an oversized summands count, more than
        # _MAX_NDIM dimensions, ...), so that bytes written by to_bytes() always load again.
        try:
            _check_layout(self._public_key, self._data.shape[0], self._shape, self._codec, self._summands,
                          self._dtype, SerializationError)
        except SerializationError as exc:
            raise SerializationError(f"encrypted array cannot be serialized: {exc}") from None
        codec_kind = CODEC_NONE if self._codec is None else self._codec.kind
        parts = [
            _wire.header(_wire.KIND_ENCRYPTED_ARRAY, self._public_key.fingerprint),
            struct.pack("<BBBB", codec_kind, _DTYPE_CODES[self._dtype], self.ndim, 0),
            struct.pack(f"<{self.ndim}Q", *self._shape),
            b"" if self._codec is None else self._codec._wire_params(),
            _wire.u32_bigint(self._summands),
            struct.pack("<QI", self._data.shape[0], self._data.shape[1]),
            self._canonical_rows().astype("<u8", copy=False).reshape(-1).view(np.uint8).data,  # copied once, by join
        ]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, public_key: "PublicKey") -> "EncryptedArray":
        """Parses bytes from to_bytes(), checking the key fingerprint, metadata and every ciphertext."""
        from .keys import PublicKey

        if not isinstance(public_key, PublicKey):
            raise InvalidArgumentError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
        reader = _wire.Reader(data, "encrypted array")
        fingerprint, _ = reader.header(_wire.KIND_ENCRYPTED_ARRAY)
        if fingerprint != public_key.fingerprint:
            raise KeyMismatchError(
                f"encrypted array belongs to the key with fingerprint {_wire.fingerprint_hex(fingerprint)}, "
                f"not to the given key (fingerprint {_wire.fingerprint_hex(public_key.fingerprint)}); "
                "load it with the key it was encrypted under")
        codec_kind, dtype_code, ndim, reserved = reader.unpack("BBBB")
        if reserved != 0 or ndim > _MAX_NDIM or dtype_code not in _DTYPES:
            raise SerializationError("encrypted array: invalid header fields (dtype, ndim or reserved byte)")
        shape = reader.unpack(f"{ndim}Q") if ndim else ()
        codec = codec_from_wire(codec_kind, reader, public_key)
        summands = reader.bigint(_wire.MAX_SUMMANDS_BYTES)
        rows, limbs = reader.unpack("QI")
        if limbs != public_key.nsq_limbs:
            raise SerializationError(
                f"encrypted array: {limbs} limbs per ciphertext, the key needs {public_key.nsq_limbs}")
        _check_layout(public_key, rows, shape, codec, summands, _DTYPES[dtype_code], SerializationError)
        if reader.remaining() != rows * limbs * 8:
            raise SerializationError(
                f"encrypted array: expected {rows * limbs * 8} bytes of ciphertexts, got {reader.remaining()}")
        payload = np.frombuffer(reader.take(rows * limbs * 8), dtype="<u8").astype(np.uint64)
        payload = payload.reshape(rows, limbs)
        bad = _native.find_invalid_ciphertext(public_key._ctx, payload, resolve_threads(None))
        if bad >= 0:
            raise SerializationError(
                f"encrypted array: ciphertext {bad} is not an element of Z*_(n^2) (0, not below n^2, or "
                "sharing a factor with n)")
        return cls._wrap(public_key, payload, tuple(shape), codec=codec, summands=summands,
                         dtype=_DTYPES[dtype_code])


def _check_layout(public_key: "PublicKey", rows: int, shape: tuple[int, ...], codec: Codec | None,
                  summands: int, dtype: np.dtype, error: type[Exception]) -> None:
    """Raises `error` unless rows, shape, codec, summands and dtype are mutually consistent."""
    if len(shape) > _MAX_NDIM:
        raise error(f"invalid shape {tuple(shape)}: {len(shape)} dimensions, at most {_MAX_NDIM} are supported")
    check_shape(shape, error)
    size = _limbs.shape_size(shape)
    expected_rows = size if codec is None else codec.rows_for(size)
    if rows != expected_rows:
        raise error(f"{rows} ciphertexts cannot hold shape {shape} (expected {expected_rows})")
    if isinstance(summands, bool) or not isinstance(summands, int) or summands < 0:
        shown = "a negative int" if isinstance(summands, int) and summands.bit_length() > 64 else repr(summands)
        raise error(f"summands must be a non-negative int, got {shown}")
    if summands.bit_length() > 8 * _wire.MAX_SUMMANDS_BYTES:
        # (no str(summands) in messages: ints of over 4300 digits refuse conversion)
        raise error(
            f"summands is a {summands.bit_length()}-bit count; at most {8 * _wire.MAX_SUMMANDS_BYTES} bits "
            "are supported (the serialized format's limit). For raw integer arrays the count only "
            "records how many values were added: rebuild the array with EncryptedArray(public_key, "
            "array.ciphertexts, array.shape, summands=...) and a smaller count")
    if codec is None:
        if dtype != np.int64:
            raise error(f"raw integer arrays have dtype int64, not {dtype}")
    else:
        if dtype not in (np.float32, np.float64):
            raise error(f"codec arrays have dtype float32 or float64, not {dtype}")
        if summands > codec.max_summands:
            raise error(f"summands {summands} exceed the codec's max_summands {codec.max_summands}")


def check_shape(shape: Sequence[int], error: type[Exception]) -> None:
    """Raises `error` unless every dimension and the product of the non-zero ones are within the bounds."""
    if any(d < 0 for d in shape):
        raise error(f"invalid shape {tuple(shape)}: dimensions must be non-negative")
    nonzero = 1
    for d in shape:
        if d > MAX_VALUES:
            raise error(f"invalid shape {tuple(shape)}: a dimension is above 2^48, the largest supported")
        if d:
            nonzero *= d
    if nonzero > MAX_VALUES:
        raise error(f"shape {tuple(shape)} has {nonzero} values; at most 2^48 are supported")
    if nonzero > MAX_EMPTY_VALUES and 0 in shape:
        raise error(
            f"shape {tuple(shape)} holds no values, but its non-zero dimensions multiply to {nonzero}; an "
            f"array without values may have at most {MAX_EMPTY_VALUES} (2^8) there, so that a sum over "
            "its empty axis makes at most 2^8 ciphertexts")


def _reshaped(size: int, shape: Sequence[object]) -> tuple[int, ...]:
    """`shape` with its -1 (at most one) filled in, checked to hold exactly `size` values."""
    dims = []
    for d in shape:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise InvalidArgumentError(f"reshape takes int dimensions, got {d!r}")
        dims.append(int(d))
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise InvalidArgumentError(f"invalid shape {tuple(dims)}: dimensions are >= 0, with at most one -1")
    known = _limbs.shape_size(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or size % known:
            raise ShapeMismatchError(f"cannot reshape {size} values into shape {tuple(dims)}")
        dims[dims.index(-1)] = size // known
    elif known != size:
        raise ShapeMismatchError(f"cannot reshape {size} values into shape {tuple(dims)}")
    shape_out = tuple(dims)
    check_shape(shape_out, InvalidArgumentError)
    return shape_out


def _product(public_key: "PublicKey", arrays: Sequence[EncryptedArray], threads: int) -> tuple[np.ndarray, bool]:
    """Row-wise product of the arrays' ciphertexts (their homomorphic sum) and whether it is in Montgomery form.

    Where the IFMA kernels run, the product is computed and kept in Montgomery form: one
    Montgomery pass per operand beyond the first when all are in Montgomery form, plus one
    correction pass otherwise.  Elsewhere canonical operands take GMP's multiply-and-reduce as
    before, and Montgomery operands (made before IFMA was switched off) are converted on the way.
    """
    target = public_key._mont_target()
    forms = [a._mont for a in arrays]
    ctx = public_key._ctx
    if not target and not any(forms):
        if len(arrays) == 2:
            return _native.mul_ciphertexts(ctx, arrays[0]._data, arrays[1]._data, threads), False
        return _native.product_of_arrays(ctx, [a._data for a in arrays], threads), False
    return _native.mont_product_of_arrays(ctx, [a._data for a in arrays], [int(f) for f in forms], int(target),
                                          threads), target


_LANE_PARTS = 16  # partial products per group when there are few groups (8 IFMA lanes x 2 threads)


def _group_product(public_key: "PublicKey", gathered: np.ndarray, mont: bool, group: int,
                   threads: int) -> tuple[np.ndarray, bool]:
    """Products of consecutive groups of `group` rows (in form `mont`), in the key's target form.

    The IFMA kernel works on 8 groups side by side; fewer, longer groups (a sum over all
    values) are first split into _LANE_PARTS partial products, padded with E(0) = 1.
    """
    target = public_key._mont_target()
    ctx = public_key._ctx
    groups = gathered.shape[0] // group
    if target and groups < 8 and group >= 4 * _LANE_PARTS:
        sub = -(-group // _LANE_PARTS)
        pad = _LANE_PARTS * sub - group
        if pad:
            one = np.zeros((1, public_key.nsq_limbs), dtype=np.uint64)
            one[0, 0] = 1
            if mont:
                one = public_key._convert(one, False, True, 1)
            blocks = gathered.reshape(groups, group, -1)
            filler = np.broadcast_to(one, (groups, pad, one.shape[1]))
            gathered = np.ascontiguousarray(np.concatenate([blocks, filler], axis=1).reshape(-1, one.shape[1]))
        partial = _native.mont_product_of_groups(ctx, gathered, int(mont), sub, 1, threads)
        return _native.mont_product_of_groups(ctx, partial, 1, _LANE_PARTS, 1, threads), True
    return _native.mont_product_of_groups(ctx, gathered, int(mont), group, int(target), threads), target


def broadcast_plaintext(values: object, shape: tuple[int, ...]) -> np.ndarray:
    """values broadcast to shape, or ShapeMismatchError naming both shapes."""
    arr = np.asarray(values)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ShapeMismatchError(f"plaintext of shape {arr.shape} does not broadcast to {shape}") from None


def _as_int_array(values: object) -> np.ndarray:
    arr = _plaintext.integer_array(values)
    if arr.dtype.kind not in "iuO":
        raise InvalidArgumentError(
            f"plaintexts added to raw integer arrays must be integers, got dtype {arr.dtype}")
    return arr


def sum_arrays(arrays: Sequence[EncryptedArray], *, threads: int | None = None) -> EncryptedArray:
    """The element-wise homomorphic sum of K arrays (the server's aggregation of K clients)."""
    arrays = list(arrays)
    if not arrays:
        raise InvalidArgumentError("sum_arrays needs at least one EncryptedArray")
    for i, a in enumerate(arrays):
        if not isinstance(a, EncryptedArray):
            raise InvalidArgumentError(f"arrays[{i}] is {type(a).__name__}, expected an EncryptedArray")
    first = arrays[0]
    for a in arrays[1:]:
        first._check_compatible(a)
    summands = sum(a.summands for a in arrays)
    if first.codec is not None:
        first.codec.check_summands(summands, f"the sum of {len(arrays)} arrays")
    dtype = np.result_type(*(a.dtype for a in arrays))
    data, mont = _product(first.public_key, arrays, resolve_threads(threads))
    return first._like(data, first.shape, summands, dtype, mont=mont)
