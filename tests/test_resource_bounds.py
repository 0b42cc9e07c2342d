"""Shapes are bounded wherever an array is made (issue 10, item 6).

An 85-byte well-formed array of shape (2^12, 2^10, 0) used to load, and `.sum(axis=2)` then made
2^22 ciphertexts (2 GB at 2048 bits, 17 s); shape (2^48, 2^48, 0) loaded and raised numpy's
ValueError on decryption.  The product of the non-zero dimensions is now at most 2^48, and at most
2^8 for arrays that hold no values (tools/fuzz_loaders.py found that decrypting the 2^16 E(0)s of a
sum over an empty axis took 2.6 s at 2048 bits), in every constructor, loader and operation.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _wire


def _empty_array_bytes(pk, shape, codec=None) -> bytes:
    """A well-formed serialized array with no ciphertexts and the given shape (raw, or a codec's)."""
    kind, dtype, params = (0, 0, b"") if codec is None else (codec.kind, 2, codec._wire_params())
    return (_wire.header(_wire.KIND_ENCRYPTED_ARRAY, pk.fingerprint)
            + struct.pack("<BBBB", kind, dtype, len(shape), 0) + struct.pack(f"<{len(shape)}Q", *shape)
            + params + _wire.u32_bigint(1) + struct.pack("<QI", 0, pk.nsq_limbs))


@pytest.mark.parametrize("shape", [(2**12, 2**10, 0), (2**48, 2**48, 0), (0, 2**8 + 1), (2**8 + 1, 0), (0, 2**12), (0, 4097),
                                   (0, 2**8, 2**8, 2), (2**63, 0), (2**64 - 1, 0, 1), (0, 2**62, 2**62)])
def test_oversized_empty_shapes_are_refused_on_load(keys_2048, shape):
    pk, _ = keys_2048
    blob = _empty_array_bytes(pk, shape)
    if shape == (2**12, 2**10, 0):
        assert len(blob) == 85  # the input
    with pytest.raises(fp.SerializationError, match="2\\^(8|48)"):
        fp.EncryptedArray.from_bytes(blob, pk)
    codec = fp.FixedPointCodec(pk)
    with pytest.raises(fp.SerializationError, match="2\\^(8|48)"):
        fp.EncryptedArray.from_bytes(_empty_array_bytes(pk, shape, codec), pk)


@pytest.mark.parametrize("shape", [(2**4, 2**4, 0), (0, 2**8), (0,), (0, 0, 0), (3, 0, 5), (0, 255)])
def test_empty_shapes_within_the_bound(small_keys, shape):
    pk, sk = small_keys
    arr = fp.EncryptedArray.from_bytes(_empty_array_bytes(pk, shape), pk)
    assert arr.shape == shape and arr.size == 0
    assert sk.decrypt(arr).shape == shape
    for axis in range(len(shape)):
        total = arr.sum(axis=axis)
        assert total.shape == shape[:axis] + shape[axis + 1:]
        assert not sk.decrypt(total).any()  # sums over an empty axis are E(0)
    assert arr.to_bytes() == _empty_array_bytes(pk, shape)


def test_in_memory_arrays_are_bounded_too(small_keys):
    pk, sk = small_keys
    empty = sk.encrypt(np.zeros((0,), dtype=np.int64))
    for shape in [(2**12, 2**10, 0), (2**48, 2**48, 0), (0, 2**9)]:
        with pytest.raises(fp.InvalidArgumentError, match="2\\^(8|48)"):
            empty.reshape(shape)
        with pytest.raises(fp.InvalidArgumentError, match="2\\^(8|48)"):
            fp.EncryptedArray(pk, np.zeros((0, pk.nsq_limbs), dtype=np.uint64), shape)
    with pytest.raises(fp.InvalidArgumentError, match="2\\^8"):
        pk.encrypt(np.zeros((2**9, 0), dtype=np.int64))
    with pytest.raises(fp.InvalidArgumentError, match="2\\^8"):
        fp.FixedPointCodec(pk).encrypt(np.zeros((0, 3, 100)), sk)
    assert empty.reshape(2**4, 0, 2**4).shape == (2**4, 0, 2**4)


def test_reshape_raises_the_library_s_errors(small_keys):
    pk, sk = small_keys
    a = sk.encrypt(np.arange(12))
    assert a.reshape(3, -1).shape == (3, 4) and a.reshape((2, 6)).shape == (2, 6)
    assert a.reshape([-1]).shape == (12,)
    for bad in [(5, -1), (7,), (0, -1)]:
        with pytest.raises(fp.ShapeMismatchError):
            a.reshape(*bad)
    for bad in [(-1, -1), (-2, -6), (3.0, 4), ("3", 4), (True, 12)]:
        with pytest.raises(fp.InvalidArgumentError):
            a.reshape(*bad)
    assert sk.decrypt(a.reshape(np.int64(4), 3)).tolist() == np.arange(12).reshape(4, 3).tolist()
