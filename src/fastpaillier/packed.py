"""PackedCodec: many fixed-point values per ciphertext, BatchCrypt-style slots with headroom."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from . import _native
from .codec import CODEC_PACKED, Codec, largest_encodable, quantize, real_values
from .errors import EncodingOverflowError, InvalidArgumentError
from .fixed_point import _int_param

if TYPE_CHECKING:
    from .keys import PublicKey

MAX_SLOT_BITS = 62


class PackedCodec(Codec):
    """Packs `slots` quantized values into each plaintext, with headroom for max_summands additions.

    A value x is quantized to v = round(x * 2^frac_bits) with |v| <= B = 2^(value_bits-1) - 1
    and stored as the offset integer u = v + B in [0, 2B].  A slot has
    slot_bits = bit_length(max_summands * 2B) bits, so the sum of up to
    max_summands slot values never carries into the next slot.  Decoding a
    sum of s encodings subtracts s * B, so negative values survive summation.
    Slots per ciphertext: floor((bits(n) - 1) / slot_bits), keeping the packed
    integer below n.  Scalar multiplication by k >= 0 multiplies the summand
    count by k and is refused past max_summands; negation is refused.
    """

    kind = CODEC_PACKED
    supports_negation = False
    supports_elementwise_scalars = False
    supports_axis_sum = False

    def __init__(self, public_key: "PublicKey", *, value_bits: int = 16, max_summands: int = 8,
                 frac_bits: int | None = None) -> None:
        super().__init__(public_key)
        self._value_bits = _int_param(value_bits, "value_bits", 2, 60)
        self._max_summands = _int_param(max_summands, "max_summands", 1, 2**32 - 1)
        if frac_bits is None:
            frac_bits = max(0, self._value_bits - 4)
        self._frac_bits = _int_param(frac_bits, "frac_bits", 0, 1074)
        self._offset = 2 ** (self._value_bits - 1) - 1
        self._slot_bits = (self._max_summands * 2 * self._offset).bit_length()
        if self._slot_bits > MAX_SLOT_BITS:
            raise InvalidArgumentError(
                f"value_bits={value_bits} with max_summands={max_summands} needs {self._slot_bits}-bit "
                f"slots; at most {MAX_SLOT_BITS} are supported. Lower one of them")
        self._slots = (public_key.bits - 1) // self._slot_bits
        if self._slots < 1:
            raise InvalidArgumentError(
                f"a {self._slot_bits}-bit slot does not fit the {public_key.bits}-bit key; "
                "lower value_bits or max_summands")

    @property
    def value_bits(self) -> int:
        """Signed width of one quantized value."""
        return self._value_bits

    @property
    def frac_bits(self) -> int:
        """Fractional bits: the resolution is 2^-frac_bits."""
        return self._frac_bits

    @property
    def slot_bits(self) -> int:
        """Bits per slot: value_bits plus headroom for max_summands additions."""
        return self._slot_bits

    @property
    def slots(self) -> int:
        """Values per ciphertext."""
        return self._slots

    @property
    def max_value(self) -> float:
        """Largest encodable magnitude."""
        return largest_encodable(self._offset, self._frac_bits)

    @property
    def max_summands(self) -> int:
        return self._max_summands

    def params(self) -> tuple[int, ...]:
        return (self._value_bits, self._frac_bits, self._max_summands)

    def params_frac_bits(self) -> int:
        return self._frac_bits

    def _wire_params(self) -> bytes:
        return struct.pack("<HHI", self._value_bits, self._frac_bits, self._max_summands)

    def rows_for(self, size: int) -> int:
        return -(-size // self._slots)

    def encode(self, values: object) -> tuple[np.ndarray, tuple[int, ...], np.dtype]:
        flat, dtype = real_values(values, "values")
        q = quantize(flat, self._frac_bits, self._offset, "values")
        u = (q + self._offset).astype(np.uint64)
        rows = _native.pack_slots(u, self._slot_bits, self._slots, self._offset, self._public_key.n_limbs)
        return rows, np.shape(values), dtype

    def encode_scalar_rows(self, values: object, shape: tuple[int, ...]) -> np.ndarray:
        """Plaintext rows for values of exactly `shape` (for adding plaintexts)."""
        arr = np.asarray(values)
        if arr.shape != tuple(shape):
            from .errors import ShapeMismatchError

            raise ShapeMismatchError(
                f"a plaintext added to a packed array must have its shape {tuple(shape)}, got {arr.shape}")
        rows, _, _ = self.encode(arr)
        return rows

    def decode(self, rows: np.ndarray, shape: tuple[int, ...], summands: int, dtype: np.dtype) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64)) if shape else 1
        u, bad = _native.unpack_slots(rows, self._slot_bits, self._slots, size)
        limit = summands * 2 * self._offset
        if bad < 0 and u.size and int(u.max()) > limit:
            bad = int(np.argmax(u > np.uint64(limit))) // self._slots
        if bad >= 0:
            raise EncodingOverflowError(
                f"decrypted ciphertext {bad} does not hold valid slots for {summands} summands: it was "
                "not produced by this codec and key, or was tampered with")
        v = u.astype(np.int64) - summands * self._offset
        return np.ldexp(v.astype(np.float64), -self._frac_bits).astype(dtype, copy=False).reshape(shape)

    def __repr__(self) -> str:
        return (f"PackedCodec(value_bits={self._value_bits}, max_summands={self._max_summands}, "
                f"frac_bits={self._frac_bits}; {self._slots} slots of {self._slot_bits} bits)")
