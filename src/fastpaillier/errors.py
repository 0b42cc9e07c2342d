"""The exception hierarchy: every error fastpaillier raises on purpose."""

from __future__ import annotations


class FastPaillierError(Exception):
    """Base class of all errors raised by fastpaillier."""


class InsecureKeyError(FastPaillierError, ValueError):
    """A key below 2048 bits was requested or loaded without insecure=True."""


class InvalidKeyError(FastPaillierError, ValueError):
    """Key material is inconsistent (not prime, p == q, p*q != n, ...)."""


class KeyMismatchError(FastPaillierError, ValueError):
    """Operands or serialized data belong to a different key."""


class PlaintextRangeError(FastPaillierError, ValueError):
    """An integer plaintext is negative or not below n."""


class EncodingOverflowError(FastPaillierError, ValueError):
    """A value cannot be represented by the codec (too large, NaN, inf)."""


class SummandLimitError(EncodingOverflowError):
    """An operation would exceed the codec's headroom (max_summands)."""


class ShapeMismatchError(FastPaillierError, ValueError):
    """Operands have incompatible shapes."""


class CodecMismatchError(FastPaillierError, ValueError):
    """Operands were encoded with different codecs, or a codec forbids the operation."""


class InvalidCiphertextError(FastPaillierError, ValueError):
    """A ciphertext is not an element of Z*_{n^2}."""


class SerializationError(FastPaillierError, ValueError):
    """Bytes are not a valid serialized key or array (magic, version, sizes, ...)."""


class RandomnessError(FastPaillierError, OSError):
    """The operating system's CSPRNG failed."""


class InvalidArgumentError(FastPaillierError, TypeError):
    """An argument has the wrong type or dtype."""


class UnsupportedKernelError(FastPaillierError, ValueError):
    """A kernel tier was requested (FASTPAILLIER_KERNEL or set_kernel_tier) that this CPU cannot run."""
