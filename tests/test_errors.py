"""Every kind of bad input raises its specific exception class."""

from __future__ import annotations

import numpy as np
import gmpy2
import pytest

import fastpaillier as fp
from fastpaillier import errors

SMALL_P = 0xF7E75FDC469067FFDC4E847C51F452DF
SMALL_Q = 0xE85CED54AF57E53E092113E62F436F4F


@pytest.fixture(scope="module")
def other_small_keys():
    return fp.generate_keypair(256, insecure=True)


# ---- the hierarchy --------------------------------------------------------------

VALUE_ERRORS = [fp.InsecureKeyError, fp.InvalidKeyError, fp.KeyMismatchError, fp.PlaintextRangeError,
                fp.EncodingOverflowError, fp.SummandLimitError, fp.ShapeMismatchError, fp.CodecMismatchError,
                fp.InvalidCiphertextError, fp.SerializationError, fp.UnsupportedKernelError]


@pytest.mark.parametrize("cls", VALUE_ERRORS)
def test_value_errors(cls):
    assert issubclass(cls, fp.FastPaillierError)
    assert issubclass(cls, ValueError)
    assert not issubclass(cls, TypeError)
    assert getattr(errors, cls.__name__) is cls
    with pytest.raises(ValueError):
        raise cls("x")


def test_other_error_bases():
    assert issubclass(fp.InvalidArgumentError, fp.FastPaillierError)
    assert issubclass(fp.InvalidArgumentError, TypeError)
    assert issubclass(fp.RandomnessError, fp.FastPaillierError)
    assert issubclass(fp.RandomnessError, OSError)
    assert issubclass(fp.SummandLimitError, fp.EncodingOverflowError)
    assert issubclass(fp.FastPaillierError, Exception)
    names = {name for name in fp.__all__ if name.endswith("Error")}
    assert names == {c.__name__ for c in VALUE_ERRORS} | {"InvalidArgumentError", "RandomnessError",
                                                          "FastPaillierError"}


# ---- insecure keys -----------------------------------------------------------------

def test_small_key_generation_refused():
    with pytest.raises(fp.InsecureKeyError, match="2048"):
        fp.generate_keypair(1024)
    with pytest.raises(fp.InsecureKeyError):
        fp.generate_keypair(2046)
    with pytest.raises(fp.InsecureKeyError):
        fp.generate_keypair(64)
    pk, sk = fp.generate_keypair(64, insecure=True)
    assert pk.bits == 64 and sk.public_key == pk


def test_small_public_and_private_keys_refused():
    with pytest.raises(fp.InsecureKeyError, match="insecure=True"):
        fp.PublicKey(SMALL_P * SMALL_Q)
    with pytest.raises(fp.InsecureKeyError):
        fp.PrivateKey(SMALL_P, SMALL_Q)
    with pytest.raises(fp.InsecureKeyError):
        fp.PrivateKey(293, 433)


def test_small_serialized_keys_refused(small_keys):
    pk, sk = small_keys
    with pytest.raises(fp.InsecureKeyError):
        fp.PublicKey.from_bytes(pk.to_bytes())
    with pytest.raises(fp.InsecureKeyError):
        fp.PrivateKey.from_bytes(sk.to_bytes())
    assert fp.PublicKey.from_bytes(pk.to_bytes(), insecure=True) == pk
    assert fp.PrivateKey.from_bytes(sk.to_bytes(), insecure=True) == sk


def test_small_key_files_refused(small_keys, tmp_path):
    pk, sk = small_keys
    pk.save(tmp_path / "pk")
    sk.save(tmp_path / "sk")
    with pytest.raises(fp.InsecureKeyError):
        fp.PublicKey.load(tmp_path / "pk")
    with pytest.raises(fp.InsecureKeyError):
        fp.PrivateKey.load(tmp_path / "sk")


@pytest.mark.parametrize("bits", [2047, 2049, 17, 15, 14, 8, 0, -2])
def test_bad_bit_counts(bits):
    with pytest.raises(fp.InvalidArgumentError, match="even"):
        fp.generate_keypair(bits, insecure=True)
    with pytest.raises(fp.InvalidArgumentError):
        fp.generate_keypair(bits)


@pytest.mark.parametrize("bits", [2048.0, "2048", True, None])
def test_non_int_bit_counts(bits):
    with pytest.raises(fp.InvalidArgumentError):
        fp.generate_keypair(bits)


# ---- inconsistent key material ---------------------------------------------------

def test_invalid_private_keys():
    with pytest.raises(fp.InvalidKeyError, match="distinct"):
        fp.PrivateKey(SMALL_P, SMALL_P, insecure=True)
    with pytest.raises(fp.InvalidKeyError, match="not prime"):
        fp.PrivateKey(SMALL_P * 3, SMALL_Q, insecure=True)  # composite p
    with pytest.raises(fp.InvalidKeyError, match="not prime"):
        fp.PrivateKey(SMALL_P, SMALL_Q + 2, insecure=True)  # composite (even) q
    with pytest.raises(fp.InvalidKeyError, match="not prime"):
        fp.PrivateKey(293, 433 * 3, insecure=True)
    with pytest.raises(fp.InvalidKeyError, match="gcd"):
        fp.PrivateKey(3, 7, insecure=True)  # 3 divides 7 - 1
    with pytest.raises(fp.InvalidKeyError, match="gcd"):
        fp.PrivateKey(11, 23, insecure=True)  # 11 divides 23 - 1
    with pytest.raises(fp.InvalidKeyError):
        fp.PrivateKey(2, SMALL_Q, insecure=True)
    with pytest.raises(fp.InvalidKeyError):
        fp.PrivateKey(1, SMALL_Q, insecure=True)


def test_composite_prime_of_a_2048_bit_key(keys_2048):
    _, sk = keys_2048
    composite = sk.p + 2
    while gmpy2.is_prime(composite, 50):  # p + 2 is prime about once in 350 keys (twin primes)
        composite += 2
    with pytest.raises(fp.InvalidKeyError, match="not prime"):
        fp.PrivateKey(composite, sk.q)


def test_invalid_public_keys():
    for n in (14, 1, 0, -15, 2**300):  # too small, negative, even
        with pytest.raises(fp.InvalidKeyError):
            fp.PublicKey(n, insecure=True)
    with pytest.raises(fp.InvalidKeyError):
        fp.PublicKey(2**20000 + 1, insecure=True)  # beyond the supported size
    for n in (15.0, "15", None, True):
        with pytest.raises(fp.InvalidArgumentError):
            fp.PublicKey(n, insecure=True)
    with pytest.raises(fp.InvalidArgumentError):
        fp.PrivateKey(293.0, 433, insecure=True)


# ---- keys that do not belong together -----------------------------------------------

def test_key_mismatch(small_keys, other_small_keys):
    pk, sk = small_keys
    pk2, sk2 = other_small_keys
    a = pk.encrypt(np.arange(3))
    b = pk2.encrypt(np.arange(3))
    with pytest.raises(fp.KeyMismatchError):
        a + b
    with pytest.raises(fp.KeyMismatchError):
        b + a
    with pytest.raises(fp.KeyMismatchError):
        a - b
    with pytest.raises(fp.KeyMismatchError):
        fp.sum_arrays([a, a, b])
    with pytest.raises(fp.KeyMismatchError):
        sk2.decrypt(a)
    with pytest.raises(fp.KeyMismatchError):
        sk.decrypt_limbs(b)
    with pytest.raises(fp.KeyMismatchError):
        a.rerandomize(pk2)
    with pytest.raises(fp.KeyMismatchError):
        a.rerandomize(sk2)
    with pytest.raises(fp.KeyMismatchError):
        fp.FixedPointCodec(pk).encrypt(np.ones(2), sk2)
    with pytest.raises(fp.KeyMismatchError):
        fp.PackedCodec(pk2).encrypt(np.ones(2), pk)
    with pytest.raises(fp.KeyMismatchError):
        fp.EncryptedArray(pk2, a.ciphertexts, codec=fp.FixedPointCodec(pk))
    with pytest.raises(fp.KeyMismatchError):
        fp.EncryptedArray.from_bytes(a.to_bytes(), pk2)


# ---- shapes ----------------------------------------------------------------------

def test_shape_mismatch_between_arrays(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.arange(6).reshape(2, 3))
    for other in (pk.encrypt(np.arange(6).reshape(3, 2)), pk.encrypt(np.arange(6)), pk.encrypt(np.arange(3)),
                  pk.encrypt(5)):
        with pytest.raises(fp.ShapeMismatchError):
            a + other
        with pytest.raises(fp.ShapeMismatchError):
            a - other
        with pytest.raises(fp.ShapeMismatchError):
            fp.sum_arrays([a, other])
    codec = fp.PackedCodec(pk)
    with pytest.raises(fp.ShapeMismatchError):
        codec.encrypt(np.ones((2, 3)), sk) + codec.encrypt(np.ones(6), sk)


def test_shape_mismatch_of_scalar_arrays(small_keys):
    pk, _ = small_keys
    a = pk.encrypt(np.arange(6).reshape(2, 3))
    with pytest.raises(fp.ShapeMismatchError):
        a * np.array([1, 2])
    with pytest.raises(fp.ShapeMismatchError):
        a * np.ones((3, 2), dtype=np.int64)
    f = fp.FixedPointCodec(pk).encrypt(np.ones((2, 3)), pk)
    with pytest.raises(fp.ShapeMismatchError):
        f * np.array([1, 2, 3, 4])


@pytest.mark.parametrize("kind", ["raw", "fixed", "packed"])
@pytest.mark.parametrize("op", ["add", "sub"])
def test_shape_mismatch_of_plaintext_operands(small_keys, kind, op):
    """A plaintext that does not broadcast to the array's shape is a ShapeMismatchError for every kind of
    array (as for scalar arrays and packed arrays), not numpy's bare ValueError."""
    pk, sk = small_keys
    if kind == "raw":
        a, plain = pk.encrypt(np.arange(6).reshape(2, 3)), np.arange(4)
    else:
        codec = fp.FixedPointCodec(pk) if kind == "fixed" else fp.PackedCodec(pk)
        a, plain = codec.encrypt(np.ones((2, 3)), sk), np.ones(4)
    with pytest.raises(fp.ShapeMismatchError):
        a + plain if op == "add" else a - plain


# ---- plaintext ranges ------------------------------------------------------------------

def test_plaintext_out_of_range(small_keys, tiny_keys):
    pk, sk = small_keys
    n = pk.n
    for key in (pk, sk):
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(n)
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(n + 12345)
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(-1)
        with pytest.raises(fp.PlaintextRangeError, match=r"\[2\]"):
            key.encrypt(np.array([0, 1, n], dtype=object))
        with pytest.raises(fp.PlaintextRangeError, match=r"\[1\]"):
            key.encrypt(np.array([3, -1, 4], dtype=np.int64))
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(np.int64(-7))
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(np.array([1, -(2**70)], dtype=object))
    tpk, tsk = tiny_keys
    for key in (tpk, tsk):
        with pytest.raises(fp.PlaintextRangeError, match=r"\[1\]"):
            key.encrypt(np.array([5, tpk.n], dtype=np.uint64))
        with pytest.raises(fp.PlaintextRangeError):
            key.encrypt(np.array([2**40], dtype=np.int64))
    with pytest.raises(fp.PlaintextRangeError):
        tpk.encrypt_limbs(np.array([[tpk.n]], dtype=np.uint64))
    rows = np.zeros((2, pk.n_limbs), dtype=np.uint64)
    rows[1, :] = np.iinfo(np.uint64).max
    with pytest.raises(fp.PlaintextRangeError, match=r"\[1\]"):
        pk.encrypt_limbs(rows)
    a = pk.encrypt(np.arange(3))
    with pytest.raises(fp.PlaintextRangeError):
        a + n
    with pytest.raises(fp.PlaintextRangeError):
        a + np.array([1, -1, 1])
    with pytest.raises(fp.PlaintextRangeError):
        a - np.array([0, n, 0], dtype=object)


def test_raw_decrypt_out_of_int64_range(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.array([1, 2]))
    with pytest.raises(fp.PlaintextRangeError):
        sk.decrypt(-a)  # n - 1 does not fit int64
    with pytest.raises(fp.PlaintextRangeError):
        sk.decrypt(pk.encrypt(2**63))
    assert sk.decrypt(pk.encrypt(2**63 - 1)) == 2**63 - 1


# ---- wrong types ------------------------------------------------------------------------

def test_invalid_plaintext_types(small_keys):
    pk, sk = small_keys
    for key in (pk, sk):
        for bad in (1.5, 2.0, True, np.True_, np.array([1.0, 2.0]), np.array([True]), np.array(["1"]),
                    np.array([1, 2.5], dtype=object), np.array([1, True], dtype=object), [None],
                    np.array([1 + 0j])):
            with pytest.raises(fp.InvalidArgumentError):
                key.encrypt(bad)


def test_invalid_limb_rows(small_keys):
    pk, sk = small_keys
    for key in (pk, sk):
        for bad in (np.zeros((2, 4), dtype=np.float64), np.zeros((2, 4), dtype=np.int64),
                    np.zeros((2, 4), dtype=np.uint32), np.zeros(4, dtype=np.uint64),
                    np.zeros((2, 4, 1), dtype=np.uint64), np.zeros((2, 0), dtype=np.uint64),
                    [[1, 2, 3, 4]]):
            with pytest.raises(fp.InvalidArgumentError):
                key.encrypt_limbs(bad)
        with pytest.raises(fp.InvalidArgumentError):
            key.encrypt_limbs(np.zeros((3, 4), dtype=np.uint64), shape=(2, 2))
        with pytest.raises(fp.InvalidArgumentError):
            key.encrypt_limbs(np.zeros((3, 4), dtype=np.uint64), shape=(-3,))


def test_invalid_scalars(small_keys):
    pk, _ = small_keys
    a = pk.encrypt(np.arange(3))
    f = fp.FixedPointCodec(pk).encrypt(np.ones(3), pk)
    for arr in (a, f):
        for bad in (1.5, 2.0, np.float64(2.0), np.array([1.0, 2.0, 3.0]), np.array([True, False, True]),
                    True, np.array([1, 2, 3], dtype=object), "2", None):
            with pytest.raises(fp.InvalidArgumentError):
                arr * bad
        with pytest.raises(fp.InvalidArgumentError, match="multiply two ciphertexts"):
            arr * arr
        with pytest.raises(fp.InvalidArgumentError):
            arr.multiply(arr)
    with pytest.raises(fp.InvalidArgumentError):
        f * (pk.n + 1)  # a codec scalar must be below n
    with pytest.raises(fp.InvalidArgumentError):
        a * np.array([0, 0, 0], dtype=np.uint64) * 1.0


def test_invalid_plaintext_operands(small_keys):
    pk, _ = small_keys
    a = pk.encrypt(np.arange(3))
    for bad in (1.5, np.array([1.0, 2.0, 3.0]), True, np.array([True, True, False])):
        with pytest.raises(fp.InvalidArgumentError):
            a + bad
        with pytest.raises(fp.InvalidArgumentError):
            a - bad


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_invalid_thread_counts(small_keys, threads):
    pk, sk = small_keys
    a = pk.encrypt(np.arange(3))
    calls = [
        lambda: pk.encrypt(np.arange(3), threads=threads),
        lambda: sk.encrypt(np.arange(3), threads=threads),
        lambda: sk.decrypt(a, threads=threads),
        lambda: sk.decrypt_limbs(a, threads=threads),
        lambda: a.add(a, threads=threads),
        lambda: a.multiply(2, threads=threads),
        lambda: a.negate(threads=threads),
        lambda: a.sum(threads=threads),
        lambda: a.rerandomize(threads=threads),
        lambda: fp.sum_arrays([a, a], threads=threads),
        lambda: fp.PackedCodec(pk).encrypt(np.ones(2), pk, threads=threads),
        lambda: fp.set_num_threads(threads),
    ]
    before = fp.get_num_threads()
    for call in calls:
        with pytest.raises(fp.InvalidArgumentError):
            call()
    assert fp.get_num_threads() == before


def test_other_invalid_arguments(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.arange(6).reshape(2, 3))
    with pytest.raises(fp.InvalidArgumentError):
        fp.sum_arrays([])
    with pytest.raises(fp.InvalidArgumentError):
        fp.sum_arrays([a, np.arange(6).reshape(2, 3)])
    with pytest.raises(fp.InvalidArgumentError):
        a.sum(axis=2)
    with pytest.raises(fp.InvalidArgumentError):
        a.sum(axis=-3)
    with pytest.raises(fp.InvalidArgumentError):
        a.sum(axis=1.0)
    with pytest.raises(fp.InvalidArgumentError):
        a.sum(axis=True)
    with pytest.raises(fp.InvalidArgumentError):
        sk.decrypt(np.arange(3))
    with pytest.raises(fp.InvalidArgumentError):
        a.rerandomize("key")
    with pytest.raises(fp.InvalidArgumentError):
        fp.FixedPointCodec("not a key")
    with pytest.raises(fp.InvalidArgumentError):
        fp.EncryptedArray.from_bytes(a.to_bytes(), sk)


# ---- the public EncryptedArray constructor --------------------------------------------

def test_constructor_rejects_invalid_ciphertexts(small_keys):
    pk, sk = small_keys
    good = sk.encrypt(np.arange(3)).ciphertexts
    nsq = pk.nsquare

    def rows_with(index: int, value: int) -> np.ndarray:
        rows = good.copy()
        rows[index] = np.frombuffer(value.to_bytes(8 * pk.nsq_limbs, "little"), dtype="<u8")
        return rows

    for index, value in ((1, 0), (2, nsq), (0, nsq + 1), (1, 2 ** (64 * pk.nsq_limbs) - 1)):
        with pytest.raises(fp.InvalidCiphertextError, match=rf"\[{index}\]"):
            fp.EncryptedArray(pk, rows_with(index, value))
    assert fp.EncryptedArray(pk, rows_with(2, nsq - 1)).shape == (3,)
    assert fp.EncryptedArray(pk, rows_with(2, 1)).shape == (3,)
    np.testing.assert_array_equal(sk.decrypt(fp.EncryptedArray(pk, good, (3, 1))), [[0], [1], [2]])


def test_constructor_rejects_inconsistent_layout(small_keys):
    pk, sk = small_keys
    good = sk.encrypt(np.arange(4)).ciphertexts
    codec = fp.PackedCodec(pk)
    bad_calls = [
        lambda: fp.EncryptedArray(pk, good.astype(np.int64)),
        lambda: fp.EncryptedArray(pk, good[:, :-1].copy()),
        lambda: fp.EncryptedArray(pk, good.ravel()),
        lambda: fp.EncryptedArray(pk, good.tolist()),
        lambda: fp.EncryptedArray(pk, good, (5,)),
        lambda: fp.EncryptedArray(pk, good, (2, 3)),
        lambda: fp.EncryptedArray(pk, good, (-4,)),
        lambda: fp.EncryptedArray(pk, good, dtype=np.float64),  # raw arrays are int64
        lambda: fp.EncryptedArray(pk, good, codec=codec),  # 4 rows cannot be 4 packed values
        lambda: fp.EncryptedArray(pk, good[:1], (13,), codec=codec, dtype=np.int64),
        lambda: fp.EncryptedArray(pk, good[:1], (13,), codec=codec, summands=9),
        lambda: fp.EncryptedArray(pk, good[:1], (13,), codec=codec, summands=-1),
        lambda: fp.EncryptedArray(pk, good[:1], (13,), codec=codec, summands=1.0),
        lambda: fp.EncryptedArray(sk, good),
    ]
    for i, call in enumerate(bad_calls):
        with pytest.raises(fp.InvalidArgumentError):
            call()
    ok = fp.EncryptedArray(pk, good[:1], (13,), codec=codec, summands=8, dtype=np.float32)
    assert ok.summands == 8 and ok.dtype == np.float32


def test_unbalanced_primes_refused_unless_insecure():
    # A 2011-bit p times a 41-bit q has more than 2048 bits but a factor anyone can find.
    from fastpaillier import _limbs, _native
    p = _limbs.rows_to_ints(_native.generate_prime(2011).reshape(1, -1))[0]
    q = _limbs.rows_to_ints(_native.generate_prime(41).reshape(1, -1))[0]
    assert (p * q).bit_length() >= 2048
    with pytest.raises(fp.InvalidKeyError, match="same size"):
        fp.PrivateKey(p, q)
    fp.PrivateKey(p, q, insecure=True)  # tests may build such keys on purpose
