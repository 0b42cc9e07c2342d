"""Conversion between EncryptedArray and Flower records (Array, ArrayRecord), and weighted encryption."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from .. import _native
from ..codec import quantize, real_values
from ..encrypted_array import EncryptedArray
from ..errors import (CodecMismatchError, EncodingOverflowError, InvalidArgumentError, SerializationError,
                      SummandLimitError)
from ..keys import PrivateKey, PublicKey
from ..packed import PackedCodec

# The stype of a Flower Array whose data is EncryptedArray.to_bytes() (fastpaillier's versioned
# format; its header names the key by fingerprint).  The Array's shape is the logical shape of the
# encrypted values and its dtype the plaintext dtype they decrypt to.
STYPE = "fastpaillier.EncryptedArray"

# Key, inside the ArrayRecord of a reply, of the client's encrypted sample count E(n_k) (raw
# integer, shape (1,)); in an aggregate it holds E(sum of n_k), the divisor of the weighted mean.
NUM_EXAMPLES_KEY = "fastpaillier.num-examples"


def is_encrypted(array: Array) -> bool:
    """Whether a Flower Array holds fastpaillier ciphertexts (stype STYPE)."""
    return isinstance(array, Array) and array.stype == STYPE


def to_array(encrypted: EncryptedArray, *, dtype: object = None) -> Array:
    """A Flower Array of stype STYPE holding encrypted.to_bytes(); shape is the logical shape.

    dtype: the plaintext dtype recorded in the Array (default: encrypted.dtype).  The bytes are
    the one copy made; Flower slices them into chunks (memoryview, no copy) when it sends them.
    """
    if not isinstance(encrypted, EncryptedArray):
        raise InvalidArgumentError(f"encrypted must be an EncryptedArray, got {type(encrypted).__name__}")
    plain = _plaintext_dtype(encrypted.dtype if dtype is None else dtype, "dtype")
    return Array(dtype=str(plain), shape=tuple(int(d) for d in encrypted.shape), stype=STYPE,
                 data=encrypted.to_bytes())


def from_array(array: Array, public_key: PublicKey) -> EncryptedArray:
    """The EncryptedArray held by a Flower Array of stype STYPE (every ciphertext checked)."""
    if not isinstance(array, Array):
        raise InvalidArgumentError(f"array must be a flwr.app.Array, got {type(array).__name__}")
    if array.stype != STYPE:
        raise CodecMismatchError(
            f"array has stype {array.stype!r}, not {STYPE!r}: it holds plaintext, not fastpaillier "
            "ciphertexts (add fastpaillier.flwr.paillier_mod to the ClientApp's mods)")
    encrypted = EncryptedArray.from_bytes(array.data, public_key)
    if tuple(array.shape) != encrypted.shape:
        raise SerializationError(
            f"Array.shape {tuple(array.shape)} differs from the shape {encrypted.shape} of the encrypted "
            "array it holds (corrupted or tampered record)")
    _plaintext_dtype(array.dtype, "Array.dtype")
    return encrypted


def encrypt_weighted(codec: PackedCodec, key: PrivateKey | PublicKey, values: np.ndarray, weight: int,
                     summands: int, *, name: str = "values") -> EncryptedArray:
    """E(weight * x) under codec with fresh randomness, its summands count set to `summands`.

    Each value is quantized as codec.encrypt() does (v = round(x 2^frac_bits)) and its slot
    holds weight * (v + B): the same integer as `weight` encryptions of x summed, so the codec's
    offset arithmetic holds once the decryptor sets summands to the total weight.  `summands`
    is the public headroom bound the array claims (>= weight), so that its header reveals
    nothing about `weight`.  The array has dtype float64 (a sum of large weights stays exact).
    """
    if not isinstance(codec, PackedCodec):
        raise InvalidArgumentError(f"codec must be a PackedCodec, got {type(codec).__name__}")
    weight = _count(weight, "weight")
    if weight > summands:
        raise SummandLimitError(
            f"{name}: weight {weight} exceeds the headroom of {summands} summands per client; raise "
            "max_summands in PaillierFedAvg(...) or sample fewer clients per round")
    codec.check_summands(summands, f"{name}")
    flat, _ = real_values(values, name)
    offset = 2 ** (codec.value_bits - 1) - 1
    try:
        q = quantize(flat, codec.frac_bits, offset, name)
    except EncodingOverflowError as exc:
        raise EncodingOverflowError(
            f"{exc}; in PaillierFedAvg(value_bits=..., frac_bits=...) the range is +-{codec.max_value}") from None
    u = (q + offset).astype(np.uint64) * np.uint64(weight)  # < max_summands * 2B < 2^slot_bits
    rows = _native.pack_slots(u, codec.slot_bits, codec.slots, 0, codec.public_key.n_limbs)
    return key._encrypt_rows(rows, tuple(np.shape(values)), None, codec=codec, summands=summands,
                             dtype=np.dtype(np.float64))


def encrypted_mean(private_key: PrivateKey, total: EncryptedArray, count: int) -> np.ndarray:
    """Decrypts a sum of encrypt_weighted() arrays whose weights add up to `count`: the weighted mean (float64)."""
    count = _count(count, "count")
    if count < 1:
        raise InvalidArgumentError("count must be >= 1: the total weight of the clients that replied is 0")
    if total.codec is None or count > total.summands:
        raise SummandLimitError(
            f"the total weight {count} exceeds the {total.summands} summands the aggregate claims "
            "(the aggregate was not built by PaillierFedAvg from these replies)")
    exact = EncryptedArray._wrap(total.public_key, total.ciphertexts, total.shape, codec=total.codec,
                                 summands=count, dtype=np.dtype(np.float64))
    return private_key.decrypt(exact) / count


def decrypt_arrayrecord(record: ArrayRecord, private_key: PrivateKey) -> ArrayRecord:
    """A plaintext ArrayRecord (numpy Arrays, in the record's order) from an aggregate of PaillierFedAvg.

    Arrays of stype STYPE become the weighted means they encrypt, cast to their recorded dtype;
    NUM_EXAMPLES_KEY is dropped; plaintext Arrays pass unchanged.  For a key holder, e.g. to
    read the final model of a run: the server itself never holds the private key.
    """
    if not isinstance(private_key, PrivateKey):
        raise InvalidArgumentError(f"private_key must be a PrivateKey, got {type(private_key).__name__}")
    if not any(is_encrypted(a) for a in record.values()):
        return record
    if NUM_EXAMPLES_KEY not in record:
        raise SerializationError(
            f"the record holds encrypted arrays but no {NUM_EXAMPLES_KEY!r} (the encrypted total weight): "
            "it was not produced by PaillierFedAvg")
    public_key = private_key.public_key
    counts = private_key.decrypt(from_array(record[NUM_EXAMPLES_KEY], public_key))
    if counts.shape != (1,):
        raise SerializationError(f"{NUM_EXAMPLES_KEY!r} must hold one count, got shape {counts.shape}")
    count = int(counts[0])
    out = ArrayRecord()
    for key, array in record.items():
        if key == NUM_EXAMPLES_KEY:
            continue
        if not is_encrypted(array):
            out[key] = array
            continue
        mean = encrypted_mean(private_key, from_array(array, public_key), count)
        out[key] = Array(_cast(mean, np.dtype(array.dtype)))
    return out


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """values (float64) as dtype, rounded to the nearest integer for integer dtypes."""
    if dtype.kind in "iu":
        return np.rint(values).astype(dtype)
    return values.astype(dtype)


def _plaintext_dtype(dtype: object, what: str) -> np.dtype:
    try:
        out = np.dtype(dtype)
    except TypeError:
        raise SerializationError(f"{what} {dtype!r} is not a numpy dtype") from None
    if out.kind not in "fiu":
        raise SerializationError(f"{what} {out} is not a real numeric dtype (float, int or uint)")
    return out


def _count(value: object, name: str) -> int:
    """A non-negative integral count (an int, or a float with an integral value) as an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{name} must be a non-negative integer count, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise InvalidArgumentError(f"{name} must be a whole number of examples, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {value!r}")
    return int(value)
