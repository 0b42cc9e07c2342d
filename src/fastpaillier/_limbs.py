"""Conversions between Python integers and rows of little-endian uint64 limbs."""

from __future__ import annotations

import sys
from typing import Iterable, Sequence

import numpy as np

if sys.byteorder != "little":  # pragma: no cover - no big-endian wheels are built
    raise ImportError("fastpaillier's limb layout requires a little-endian machine")

LIMB_BYTES = 8


def limb_count(x: int) -> int:
    """Number of 64-bit limbs needed to hold the non-negative integer x (at least 1)."""
    return max(1, (x.bit_length() + 63) // 64)


def int_to_limbs(x: int, limbs: int) -> np.ndarray:
    """One (limbs,) uint64 row holding x; x must be non-negative and fit."""
    return np.frombuffer(x.to_bytes(limbs * LIMB_BYTES, "little"), dtype="<u8").astype(np.uint64)


def limbs_to_int(row: np.ndarray) -> int:
    """The integer held by one row of limbs."""
    return int.from_bytes(np.ascontiguousarray(row, dtype="<u8").tobytes(), "little")


def ints_to_rows(values: Iterable[int], limbs: int) -> np.ndarray:
    """An (N, limbs) uint64 array from N non-negative Python ints that fit."""
    width = limbs * LIMB_BYTES
    raw = b"".join(int(v).to_bytes(width, "little") for v in values)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(-1, limbs)


def rows_to_ints(rows: np.ndarray) -> list[int]:
    """Python ints from an (N, limbs) uint64 array (for tests and debugging, not hot paths)."""
    rows = np.ascontiguousarray(rows, dtype="<u8")
    width = rows.shape[1] * LIMB_BYTES
    raw = rows.tobytes()
    return [int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)]


def bytes_be(x: int) -> bytes:
    """Minimal big-endian encoding of a non-negative int (b'' for 0)."""
    return x.to_bytes((x.bit_length() + 7) // 8, "big")


def shape_size(shape: Sequence[int]) -> int:
    """Product of a shape's dimensions as a Python int (never overflows)."""
    size = 1
    for dim in shape:
        size *= int(dim)
    return size
