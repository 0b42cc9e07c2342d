"""EncodedNumber: python-paillier's fixed-point encoding of ints and floats, bit for bit.

A real x is stored as an integer mantissa m with x ~ m * BASE**exponent; m is taken mod n,
values up to public_key.max_int (about n/3) are positive, values from n - max_int up are
negative and the band in between flags an overflow.  The exponent phe picks for a float keeps
every bit of its mantissa; ``precision`` and ``max_exponent`` lower it.  Encodings (mantissa
and exponent) equal phe 1.5's for every input; ints and floats take an exact integer route
instead of phe's ``fractions.Fraction`` arithmetic, with the same round-half-to-even result.
"""

from __future__ import annotations

import fractions
import math
import sys
from typing import Any

__all__ = ["EncodedNumber"]


def _round_half_even(num: int, den: int) -> int:
    """round(num / den) for den > 0, ties to even (as round() on a Fraction)."""
    quotient, remainder = divmod(num, den)
    twice = 2 * remainder
    if twice > den or (twice == den and quotient % 2):
        return quotient + 1
    return quotient


class EncodedNumber:
    """A float or int encoded for Paillier encryption: ``encoding`` (mod n) and ``exponent``."""

    BASE = 16
    """Base of the exponent; subclasses may change it (and LOG2_BASE with it)."""
    LOG2_BASE = math.log(BASE, 2)
    FLOAT_MANTISSA_BITS = sys.float_info.mant_dig

    def __init__(self, public_key: Any, encoding: int, exponent: int) -> None:
        self.public_key = public_key
        self.encoding = encoding
        self.exponent = exponent

    def __repr__(self) -> str:
        return f"<{type(self).__name__} exponent={self.exponent}>"

    @classmethod
    def encode(cls, public_key: Any, scalar: Any, precision: float | None = None,
               max_exponent: int | None = None) -> "EncodedNumber":
        """The encoding of an int or float; ValueError when it exceeds +/- public_key.max_int.

        precision: the largest absolute rounding error allowed (default: exact for ints, every
        mantissa bit for floats); max_exponent: an upper bound for the chosen exponent.
        """
        if precision is None:
            if isinstance(scalar, int):
                prec_exponent = 0
            elif isinstance(scalar, float):
                lsb_exponent = math.frexp(scalar)[1] - cls.FLOAT_MANTISSA_BITS
                prec_exponent = math.floor(lsb_exponent / cls.LOG2_BASE)
            else:
                raise TypeError("Don't know the precision of type %s." % type(scalar))
        else:
            prec_exponent = math.floor(math.log(precision, cls.BASE))
        exponent = prec_exponent if max_exponent is None else min(max_exponent, prec_exponent)

        int_rep = cls._mantissa(scalar, exponent)
        max_int = public_key.max_int
        if abs(int_rep) > max_int:
            raise ValueError("Integer needs to be within +/- %d but got %d" % (max_int, int_rep))
        return cls(public_key, int_rep % public_key.n, exponent)

    @classmethod
    def _mantissa(cls, scalar: Any, exponent: int) -> int:
        """round(scalar / BASE**exponent), exactly, ties to even."""
        base = cls.BASE
        if type(base) is int and isinstance(scalar, (int, float)):
            if isinstance(scalar, int):
                num, den = int(scalar), 1
            else:
                num, den = float(scalar).as_integer_ratio()  # ValueError/OverflowError for nan/inf
            if exponent <= 0:
                num *= base ** -exponent
            else:
                den *= base**exponent
            return num if den == 1 else _round_half_even(num, den)
        return round(fractions.Fraction(scalar) * fractions.Fraction(base) ** -exponent)

    def decode(self) -> int | float:
        """The encoded number: an int for exponents >= 0, else a float.

        ValueError: encoding is not below n; OverflowError: it lies in the overflow band.
        """
        n = self.public_key.n
        max_int = self.public_key.max_int
        encoding = self.encoding
        if encoding >= n:
            raise ValueError("Attempted to decode corrupted number")
        if encoding <= max_int:
            mantissa = encoding
        elif encoding >= n - max_int:
            mantissa = encoding - n
        else:
            raise OverflowError("Overflow detected in decrypted number")
        if self.exponent >= 0:
            return mantissa * self.BASE**self.exponent
        try:
            return mantissa / self.BASE**-self.exponent  # int / int: correctly rounded
        except OverflowError as exc:
            raise OverflowError("decoded result too large for a float") from exc

    def decrease_exponent_to(self, new_exp: int) -> "EncodedNumber":
        """The same value with the lower exponent new_exp; ValueError if new_exp is higher."""
        if new_exp > self.exponent:
            raise ValueError("New exponent %i should be more negative than old exponent %i"
                             % (new_exp, self.exponent))
        factor = self.BASE ** (self.exponent - new_exp)
        return type(self)(self.public_key, self.encoding * factor % self.public_key.n, new_exp)
