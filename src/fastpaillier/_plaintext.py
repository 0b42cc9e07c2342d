"""Validation and conversion of integer plaintexts into limb rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _limbs, _native
from .errors import InvalidArgumentError, PlaintextRangeError

if TYPE_CHECKING:
    from .keys import PublicKey


def integer_array(values: object) -> np.ndarray:
    """np.asarray(values), keeping lists of Python ints beyond int64 as ints (numpy guesses float64)."""
    arr = np.asarray(values)
    if isinstance(values, (list, tuple)) and arr.dtype.kind == "f":
        arr = np.asarray(values, dtype=object)
    return arr


def integer_rows(public_key: "PublicKey", values: object, argname: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """(rows, shape) for integer plaintexts 0 <= m < n given as an int, int array or array of ints."""
    n = public_key.n
    if isinstance(values, bool) or isinstance(values, np.bool_):
        raise InvalidArgumentError(f"{argname} must be integers, got a bool")
    if isinstance(values, int):
        if not 0 <= values < n:
            raise PlaintextRangeError(
                f"{argname} must satisfy 0 <= m < n; got {values}. Encode signed or real values "
                "with FixedPointCodec or PackedCodec")
        return _limbs.int_to_limbs(values, public_key.n_limbs)[None, :], ()
    arr = integer_array(values)
    if arr.dtype == object:
        flat = arr.ravel()
        for i, v in enumerate(flat):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InvalidArgumentError(f"{argname}[{i}] is {type(v).__name__}, expected an int")
            if not 0 <= int(v) < n:
                raise PlaintextRangeError(f"{argname}[{i}] = {v} is outside 0 <= m < n")
        return _limbs.ints_to_rows(flat, public_key.n_limbs), arr.shape
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"{argname} must have an integer dtype, got {arr.dtype}; encode real values with "
            "FixedPointCodec or PackedCodec")
    flat = arr.ravel()
    if flat.size and arr.dtype.kind == "i" and flat.min() < 0:
        i = int(np.argmax(flat < 0))
        raise PlaintextRangeError(
            f"{argname}[{i}] = {flat[i]} is negative; plaintexts must satisfy 0 <= m < n. Encode "
            "signed values with FixedPointCodec or PackedCodec")
    rows = np.ascontiguousarray(flat.astype(np.uint64, copy=False).reshape(-1, 1))
    if n < 2**64 and rows.size and int(rows.max()) >= n:
        i = int(np.argmax(rows[:, 0] >= np.uint64(n)))
        raise PlaintextRangeError(f"{argname}[{i}] = {flat[i]} is not below n = {n}")
    return rows, arr.shape


def limb_rows(public_key: "PublicKey", rows: object, argname: str) -> np.ndarray:
    """Validates caller-supplied plaintext limb rows: (N, L) uint64, every row < n."""
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint64 or rows.ndim != 2:
        raise InvalidArgumentError(f"{argname} must be a 2-D numpy uint64 array of limbs (N, limbs)")
    if rows.shape[1] == 0:
        raise InvalidArgumentError(f"{argname} must have at least one limb per row")
    rows = np.ascontiguousarray(rows)
    bad = _native.find_row_at_least(rows, public_key._n_row)
    if bad >= 0:
        raise PlaintextRangeError(f"{argname}[{bad}] is not below n; plaintexts must satisfy 0 <= m < n")
    return rows
