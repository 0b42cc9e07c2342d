"""FixedPointCodec: one real value per ciphertext as a signed fixed-point integer mod n."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _limbs, _native
from .codec import CODEC_FIXED_POINT, Codec, largest_encodable, quantize, real_values
from .errors import EncodingOverflowError, InvalidArgumentError

if TYPE_CHECKING:
    from .keys import PublicKey


def _int_param(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise InvalidArgumentError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return int(value)


class FixedPointCodec(Codec):
    """x -> round(x * 2^frac_bits) as a signed integer (negatives as n - |v|).

    Encoded magnitudes are at most 2^(value_bits-1) - 1; a sum stays decodable
    while it holds at most max_summands encoded values, which the arrays track.
    """

    kind = CODEC_FIXED_POINT
    supports_negation = True
    supports_elementwise_scalars = True
    supports_axis_sum = True

    def __init__(self, public_key: "PublicKey", *, frac_bits: int = 32, value_bits: int = 63) -> None:
        super().__init__(public_key)
        self._value_bits = _int_param(value_bits, "value_bits", 2, 63)
        self._frac_bits = _int_param(frac_bits, "frac_bits", 0, 1074)
        self._max_int = 2 ** (self._value_bits - 1) - 1
        self._max_summands = ((public_key.n - 1) // 2) // self._max_int
        if self._max_summands < 1:
            raise InvalidArgumentError(
                f"value_bits={value_bits} does not fit the {public_key.bits}-bit key; lower value_bits")

    @property
    def frac_bits(self) -> int:
        """Fractional bits: the resolution is 2^-frac_bits."""
        return self._frac_bits

    @property
    def value_bits(self) -> int:
        """Signed width of one encoded value."""
        return self._value_bits

    @property
    def max_value(self) -> float:
        """Largest encodable magnitude."""
        return largest_encodable(self._max_int, self._frac_bits)

    @property
    def max_summands(self) -> int:
        return self._max_summands

    def params(self) -> tuple[int, ...]:
        return (self._frac_bits, self._value_bits)

    def params_frac_bits(self) -> int:
        return self._frac_bits

    def _wire_params(self) -> bytes:
        import struct

        return struct.pack("<HH", self._frac_bits, self._value_bits)

    def rows_for(self, size: int) -> int:
        return size

    def encode(self, values: object) -> tuple[np.ndarray, tuple[int, ...], np.dtype]:
        flat, dtype = real_values(values, "values")
        q = quantize(flat, self._frac_bits, self._max_int, "values")
        rows = _native.encode_signed(self._public_key._ctx, np.ascontiguousarray(q))
        return rows, np.shape(values), dtype

    def encode_scalar_rows(self, values: object, shape: tuple[int, ...]) -> np.ndarray:
        """Plaintext rows for values broadcast to `shape` (for adding plaintexts)."""
        from .encrypted_array import broadcast_plaintext

        rows, _, _ = self.encode(broadcast_plaintext(np.asarray(values, dtype=np.float64), shape))
        return rows

    def decode(self, rows: np.ndarray, shape: tuple[int, ...], summands: int, dtype: np.dtype) -> np.ndarray:
        bound = _limbs.int_to_limbs(summands * self._max_int, self._public_key.n_limbs)
        out, bad = _native.decode_signed_scaled(self._public_key._ctx, rows, bound, self._frac_bits)
        if bad >= 0:
            raise EncodingOverflowError(
                f"decrypted value {bad} lies outside the codec's range for {summands} summands: "
                "the ciphertext was not produced by this codec and key, or was tampered with")
        return out.astype(dtype, copy=False).reshape(shape)

    def __repr__(self) -> str:
        return f"FixedPointCodec(frac_bits={self._frac_bits}, value_bits={self._value_bits})"
