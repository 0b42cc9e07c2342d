"""Deterministic unit tests of FixedPointCodec and PackedCodec on a 2048-bit key and on small keys."""

from __future__ import annotations

import math

from fractions import Fraction

import numpy as np
import pytest

import fastpaillier as fp


def quantized(x, frac_bits: int, dtype=np.float64) -> np.ndarray:
    """What a codec must decode a single encoding of x to: round-half-even(x * 2^f) / 2^f."""
    q = np.rint(np.ldexp(np.asarray(x, dtype=np.float64), frac_bits))
    return np.ldexp(q, -frac_bits).astype(dtype)


def raw_view(ea: fp.EncryptedArray) -> fp.EncryptedArray:
    """The same ciphertexts as a raw integer array (one value per ciphertext)."""
    return fp.EncryptedArray(ea.public_key, ea.ciphertexts, (ea.ciphertexts.shape[0],))


def with_codec(raw: fp.EncryptedArray, like: fp.EncryptedArray, summands: int | None = None) -> fp.EncryptedArray:
    """Raw ciphertexts re-labelled with the codec, shape and dtype of `like`."""
    return fp.EncryptedArray(like.public_key, raw.ciphertexts, like.shape, codec=like.codec,
                             summands=like.summands if summands is None else summands, dtype=like.dtype)


@pytest.fixture(scope="module")
def second_small_keys():
    return fp.generate_keypair(256, insecure=True)


# ---- PackedCodec layout ---------------------------------------------------

@pytest.mark.parametrize("value_bits,max_summands,slot_bits,slots", [
    (16, 8, 19, 107),
    (8, 1, 8, 255),
    (2, 1, 2, 1023),
    (12, 3, 14, 146),
    (32, 1000, 42, 48),
    (60, 1, 60, 34),
    (20, 2**32 - 1, 52, 39),
])
def test_packed_slot_layout_2048(keys_2048, value_bits, max_summands, slot_bits, slots):
    pk, _ = keys_2048
    assert pk.bits == 2048
    codec = fp.PackedCodec(pk, value_bits=value_bits, max_summands=max_summands)
    assert codec.slot_bits == slot_bits
    assert codec.slots == slots
    # the documented formulas
    assert codec.slot_bits == (max_summands * 2 * (2 ** (value_bits - 1) - 1)).bit_length()
    assert codec.slots == (pk.bits - 1) // codec.slot_bits
    assert codec.slots * codec.slot_bits < pk.bits
    assert codec.frac_bits == max(0, value_bits - 4)
    assert codec.max_summands == max_summands
    # max_value is the largest float whose quantization stays within 2^(value_bits-1) - 1
    exact_max = Fraction(2 ** (value_bits - 1) - 1, 2**codec.frac_bits)
    assert Fraction(codec.max_value) <= exact_max
    assert Fraction(float(np.nextafter(codec.max_value, np.inf))) > exact_max


@pytest.mark.parametrize("value_bits,max_summands,slots", [(16, 8, 13), (8, 1, 31), (2, 1, 127), (60, 1, 4),
                                                            (32, 1000, 6)])
def test_packed_slot_layout_small_key(small_keys, value_bits, max_summands, slots):
    pk, _ = small_keys
    codec = fp.PackedCodec(pk, value_bits=value_bits, max_summands=max_summands)
    assert codec.slots == slots == (pk.bits - 1) // codec.slot_bits


def test_packed_slot_layout_tiny_key(tiny_keys):
    pk, sk = tiny_keys
    codec = fp.PackedCodec(pk, value_bits=4, max_summands=2, frac_bits=1)
    assert (codec.slot_bits, codec.slots) == (5, 3)
    x = np.array([3.5, -3.5, 0.5, -1.0, 2.0])
    ea = codec.encrypt(x, sk)
    assert ea.ciphertexts.shape == (2, pk.nsq_limbs)
    np.testing.assert_array_equal(sk.decrypt(ea + ea), 2 * x)


@pytest.mark.parametrize("size", [0, 1, 106, 107, 108, 214, 215, 1000])
def test_packed_ciphertext_count(keys_2048, size):
    pk, sk = keys_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    ea = codec.encrypt(np.zeros(size, dtype=np.float32), sk)
    assert ea.ciphertexts.shape == (math.ceil(size / 107), pk.nsq_limbs)
    assert codec.rows_for(size) == math.ceil(size / 107)
    assert ea.shape == (size,) and ea.size == size
    if size <= 108:
        decoded = sk.decrypt(ea)
        assert decoded.shape == (size,) and decoded.dtype == np.float32
        assert not decoded.any()


def test_fixed_point_layout(keys_2048):
    pk, _ = keys_2048
    codec = fp.FixedPointCodec(pk, frac_bits=20, value_bits=40)
    assert codec.rows_for(17) == 17
    assert codec.max_summands == ((pk.n - 1) // 2) // (2**39 - 1)
    assert codec.max_rounding_error(1) == 2.0**-21
    assert codec.max_rounding_error(6) == 6 * 2.0**-21
    assert codec.max_value == (2**39 - 1) / 2.0**20
    assert (codec.frac_bits, codec.value_bits) == (20, 40)


# ---- codec remembered on arrays ---------------------------------------------

def test_codec_and_summands_remembered(keys_2048):
    pk, sk = keys_2048
    packed = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    a = packed.encrypt(x, sk)
    assert a.codec is packed and a.summands == 1 and a.dtype == np.float64 and a.shape == (3, 4)
    b = a + a
    assert b.codec == packed and b.summands == 2
    c = fp.sum_arrays([a, b, a])
    assert c.codec == packed and c.summands == 4
    d = c * 2
    assert d.codec == packed and d.summands == 8
    e = a + x
    assert e.codec == packed and e.summands == 2
    r = a.reshape(4, 3)
    assert r.codec == packed and r.summands == 1 and r.shape == (4, 3)
    rr = a.rerandomize(sk)
    assert rr.codec == packed and rr.summands == 1
    assert not np.array_equal(rr.ciphertexts, a.ciphertexts)
    np.testing.assert_array_equal(sk.decrypt(d), 8 * quantized(x, 12))
    np.testing.assert_array_equal(sk.decrypt(r), quantized(x, 12).reshape(4, 3))

    fixed = fp.FixedPointCodec(pk)
    f = fixed.encrypt(x, sk)
    assert f.codec is fixed and f.summands == 1
    s0 = f.sum(axis=0)
    assert s0.codec == fixed and s0.summands == 3 and s0.shape == (4,)
    s = f.sum()
    assert s.summands == 12 and s.shape == ()
    assert (-f).summands == 1 and (f * -3).summands == 3
    assert (f * np.array([1, -5, 2, 0])).summands == 5
    assert (f - f).summands == 2
    np.testing.assert_array_equal(sk.decrypt(s0), quantized(x, 32).sum(axis=0))


# ---- encryption with either key, decryption either way ---------------------------

@pytest.mark.parametrize("kind", ["fixed", "packed"])
def test_public_and_private_key_encryption(keys_2048, kind):
    pk, sk = keys_2048
    codec = fp.FixedPointCodec(pk) if kind == "fixed" else fp.PackedCodec(pk)
    x = np.array([[0.25, -1.5, 3.0], [-7.75, 0.0, 1e-3]], dtype=np.float32)
    by_public = codec.encrypt(x, pk)
    by_private = codec.encrypt(x, sk)
    expected = quantized(x, codec.frac_bits, np.float32)
    for ea in (by_public, by_private):
        assert ea.codec is codec and ea.public_key == pk
        decoded = sk.decrypt(ea)
        assert decoded.dtype == np.float32 and decoded.shape == (2, 3)
        np.testing.assert_array_equal(decoded, expected)
        np.testing.assert_array_equal(codec.decrypt(ea, sk), decoded)
    # Paillier encryption is randomized
    assert not np.array_equal(by_public.ciphertexts, by_private.ciphertexts)
    assert not np.array_equal(codec.encrypt(x, sk).ciphertexts, by_private.ciphertexts)
    np.testing.assert_array_equal(sk.decrypt(by_public + by_private), 2 * expected)


def test_codec_decrypt_checks_the_codec(small_keys):
    pk, sk = small_keys
    packed = fp.PackedCodec(pk)
    fixed = fp.FixedPointCodec(pk)
    ea = packed.encrypt(np.ones(3), sk)
    with pytest.raises(fp.CodecMismatchError):
        fixed.decrypt(ea, sk)
    with pytest.raises(fp.CodecMismatchError):
        fp.PackedCodec(pk, value_bits=12).decrypt(ea, sk)
    with pytest.raises(fp.CodecMismatchError):
        packed.decrypt(pk.encrypt([1, 2, 3]), sk)
    # an equal codec (same parameters and key) is accepted
    np.testing.assert_array_equal(fp.PackedCodec(pk).decrypt(ea, sk), np.ones(3))


# ---- values that cannot be encoded --------------------------------------------------

@pytest.mark.parametrize("kind", ["fixed", "packed"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, "over", "under", "huge"])
def test_unencodable_values_name_the_index(small_keys, kind, bad):
    pk, sk = small_keys
    codec = fp.FixedPointCodec(pk, frac_bits=16, value_bits=32) if kind == "fixed" else fp.PackedCodec(pk)
    if bad == "over":
        bad = codec.max_value + 2.0**-codec.frac_bits
    elif bad == "under":
        bad = -codec.max_value - 2.0**-codec.frac_bits
    elif bad == "huge":
        bad = 1e300
    x = np.zeros((2, 4))
    x[1, 2] = bad  # flat index 6
    with pytest.raises(fp.EncodingOverflowError, match=r"\[6\]"):
        codec.encrypt(x, pk)
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)  # 1e300 becomes inf
    with pytest.raises(fp.EncodingOverflowError, match=r"\[6\]"):
        codec.encrypt(x32, sk)
    ea = codec.encrypt(np.zeros((2, 4)), sk)
    with pytest.raises(fp.EncodingOverflowError):
        ea + x
    with pytest.raises(fp.EncodingOverflowError):
        codec.encrypt(np.float64(bad), pk)
    # the encodable neighbour is fine
    x[1, 2] = codec.max_value / 2
    np.testing.assert_array_equal(sk.decrypt(codec.encrypt(x, sk)), quantized(x, codec.frac_bits))


@pytest.mark.parametrize("kind", ["fixed", "packed"])
def test_non_real_values_are_refused(small_keys, kind):
    pk, _ = small_keys
    codec = fp.FixedPointCodec(pk) if kind == "fixed" else fp.PackedCodec(pk)
    for bad in (np.array([True, False]), np.array([1 + 2j]), np.array(["1.0"]), np.array([1.0], dtype=object)):
        with pytest.raises(fp.InvalidArgumentError):
            codec.encrypt(bad, pk)


# ---- operations refused by PackedCodec --------------------------------------------

@pytest.mark.parametrize("op", ["neg", "negate", "mul_neg", "rmul_neg", "mul_np_neg", "sum", "sum_axis",
                                "elementwise", "sub_array", "rsub"])
def test_packed_refuses_sign_changes_and_axis_sums(small_keys, op):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk)
    a = codec.encrypt(np.array([[1.0, -2.0], [0.5, 3.0]]), sk)
    ops = {
        "neg": lambda: -a,
        "negate": lambda: a.negate(),
        "mul_neg": lambda: a * -1,
        "rmul_neg": lambda: -2 * a,
        "mul_np_neg": lambda: a * np.int64(-3),
        "sum": lambda: a.sum(),
        "sum_axis": lambda: a.sum(axis=0),
        "elementwise": lambda: a * np.array([[1, 1], [1, 1]]),
        "sub_array": lambda: a - a,
        "rsub": lambda: 1.0 - a,
    }
    with pytest.raises(fp.CodecMismatchError):
        ops[op]()


def test_packed_allows_subtracting_plaintext(small_keys):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk)
    x = np.array([1.0, -2.0, 0.5])
    a = codec.encrypt(x, sk)
    d = a - np.array([0.5, 0.5, -1.0])
    assert d.summands == 2
    np.testing.assert_array_equal(sk.decrypt(d), [0.5, -2.5, 1.5])


# ---- FixedPointCodec operations ------------------------------------------------

def test_fixed_point_negation_subtraction_scalars_axis_sums(keys_2048):
    pk, sk = keys_2048
    codec = fp.FixedPointCodec(pk, frac_bits=16, value_bits=48)
    x = np.array([[1.5, -2.25, 0.0], [1000.125, -0.5, 3.0]])
    y = np.array([[0.5, 0.25, -1.0], [-0.125, 2.5, 3.0]])
    a, b = codec.encrypt(x, sk), codec.encrypt(y, pk)
    np.testing.assert_array_equal(sk.decrypt(-a), -x)
    np.testing.assert_array_equal(sk.decrypt(a.negate()), -x)
    np.testing.assert_array_equal(sk.decrypt(a - b), x - y)
    np.testing.assert_array_equal(sk.decrypt(b - a), y - x)
    np.testing.assert_array_equal(sk.decrypt(a - y), x - y)
    np.testing.assert_array_equal(sk.decrypt(2.0 - a), 2.0 - x)
    k = np.array([[-3, 2, 7], [-1, 0, 4]])
    np.testing.assert_array_equal(sk.decrypt(a * k), x * k)
    np.testing.assert_array_equal(sk.decrypt(a * np.array([-1, 2, -3])), x * [-1, 2, -3])  # broadcast
    np.testing.assert_array_equal(sk.decrypt(a * -5), -5 * x)
    np.testing.assert_array_equal(sk.decrypt(-5 * a), -5 * x)
    np.testing.assert_array_equal(sk.decrypt(a * 0), np.zeros_like(x))
    np.testing.assert_array_equal(sk.decrypt(a.sum(axis=0)), x.sum(axis=0))
    np.testing.assert_array_equal(sk.decrypt(a.sum(axis=1)), x.sum(axis=1))
    np.testing.assert_array_equal(sk.decrypt(a.sum(axis=-1)), x.sum(axis=-1))
    total = sk.decrypt(a.sum())
    assert total.shape == () and total == x.sum()
    np.testing.assert_array_equal(sk.decrypt(fp.sum_arrays([a, -b, b * 2])), x + y)


def test_adding_plaintext_floats_to_codec_arrays(small_keys):
    pk, sk = small_keys
    x = np.array([[1.0, -2.0, 0.5], [0.0, 4.0, -4.0]])
    fixed = fp.FixedPointCodec(pk, frac_bits=10, value_bits=30)
    f = fixed.encrypt(x, sk)
    np.testing.assert_array_equal(sk.decrypt(f + 0.25), x + 0.25)  # broadcast scalar
    np.testing.assert_array_equal(sk.decrypt(0.25 + f), x + 0.25)
    np.testing.assert_array_equal(sk.decrypt(f + np.array([1.0, 2.0, -3.0])), x + [1.0, 2.0, -3.0])
    np.testing.assert_array_equal(sk.decrypt(f + np.ones((2, 3), dtype=np.float32)), x + 1)
    np.testing.assert_array_equal(sk.decrypt(f + np.array([[1], [2]])), x + [[1], [2]])  # ints are reals too
    assert (f + 0.25).summands == 2
    packed = fp.PackedCodec(pk)
    p = packed.encrypt(x, sk)
    plus = p + np.full((2, 3), -1.5)
    assert plus.summands == 2
    np.testing.assert_array_equal(sk.decrypt(plus), x - 1.5)
    np.testing.assert_array_equal(sk.decrypt(np.full((2, 3), 0.5).tolist() + p), x + 0.5)
    with pytest.raises(fp.ShapeMismatchError):
        p + 0.5  # packed arrays need a plaintext of their exact shape
    with pytest.raises(fp.ShapeMismatchError):
        p + np.ones(3)


# ---- codecs cannot be mixed ------------------------------------------------------

def test_codecs_cannot_be_mixed(small_keys, second_small_keys):
    pk, sk = small_keys
    pk2, sk2 = second_small_keys
    x = np.ones(4)
    packed = fp.PackedCodec(pk).encrypt(x, sk)
    packed_other = fp.PackedCodec(pk, value_bits=12, max_summands=8).encrypt(x, sk)
    packed_frac = fp.PackedCodec(pk, frac_bits=8).encrypt(x, sk)
    fixed = fp.FixedPointCodec(pk).encrypt(x, sk)
    fixed_other = fp.FixedPointCodec(pk, frac_bits=16).encrypt(x, sk)
    raw = pk.encrypt(np.ones(4, dtype=np.int64))
    for left, right in [(packed, packed_other), (packed, packed_frac), (packed, fixed), (fixed, fixed_other),
                        (fixed, raw), (raw, packed)]:
        with pytest.raises(fp.CodecMismatchError):
            left + right
        with pytest.raises(fp.CodecMismatchError):
            right + left
        with pytest.raises(fp.CodecMismatchError):
            fp.sum_arrays([left, left, right])
    with pytest.raises(fp.CodecMismatchError):
        fixed - fixed_other
    # equal parameters on another key: the key mismatch is reported
    packed2 = fp.PackedCodec(pk2).encrypt(x, sk2)
    fixed2 = fp.FixedPointCodec(pk2).encrypt(x, sk2)
    for left, right in [(packed, packed2), (fixed, fixed2)]:
        with pytest.raises(fp.KeyMismatchError):
            left + right
        with pytest.raises(fp.KeyMismatchError):
            fp.sum_arrays([right, left])
    # separately built codecs with equal parameters and key are interchangeable
    again = fp.PackedCodec(pk, value_bits=16, max_summands=8, frac_bits=12).encrypt(x, sk)
    assert again.codec == packed.codec and hash(again.codec) == hash(packed.codec)
    np.testing.assert_array_equal(sk.decrypt(packed + again), 2 * x)


def test_codec_key_mismatch(small_keys, second_small_keys):
    pk, sk = small_keys
    pk2, sk2 = second_small_keys
    for codec in (fp.PackedCodec(pk), fp.FixedPointCodec(pk)):
        with pytest.raises(fp.KeyMismatchError):
            codec.encrypt(np.ones(2), pk2)
        with pytest.raises(fp.KeyMismatchError):
            codec.encrypt(np.ones(2), sk2)
        ea = codec.encrypt(np.ones(2), sk)
        with pytest.raises(fp.KeyMismatchError):
            codec.decrypt(ea, sk2)
        with pytest.raises(fp.KeyMismatchError):
            fp.EncryptedArray(pk2, ea.ciphertexts, ea.shape, codec=codec)
        with pytest.raises(fp.InvalidArgumentError):
            codec.encrypt(np.ones(2), "not a key")


# ---- constructor validation ---------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"value_bits": 17},  # does not fit the 17-bit tiny key
    {"value_bits": 64},
    {"value_bits": 1},
    {"value_bits": 16.0},
    {"value_bits": "16"},
    {"value_bits": True},
    {"frac_bits": -1},
    {"frac_bits": 1075},
    {"frac_bits": 2.5},
    {"frac_bits": None},
])
def test_fixed_point_constructor_rejects(tiny_keys, small_keys, kwargs):
    pk = tiny_keys[0] if kwargs.get("value_bits") == 17 else small_keys[0]
    with pytest.raises(fp.InvalidArgumentError):
        fp.FixedPointCodec(pk, **kwargs)


def test_fixed_point_constructor_boundaries(tiny_keys, small_keys):
    tiny = tiny_keys[0]
    assert fp.FixedPointCodec(tiny, value_bits=16).max_summands == 1
    with pytest.raises(fp.InvalidArgumentError, match="value_bits"):
        fp.FixedPointCodec(tiny, value_bits=17)
    fp.FixedPointCodec(small_keys[0], value_bits=63, frac_bits=1074)
    fp.FixedPointCodec(small_keys[0], value_bits=2, frac_bits=0)
    with pytest.raises(fp.InvalidArgumentError):
        fp.FixedPointCodec(small_keys[1])  # a PrivateKey is not a PublicKey


@pytest.mark.parametrize("kwargs", [
    {"value_bits": 61},
    {"value_bits": 1},
    {"value_bits": 60, "max_summands": 8},  # 64-bit slots
    {"value_bits": 32, "max_summands": 2**31},  # 63-bit slots
    {"max_summands": 0},
    {"max_summands": 2**32},
    {"max_summands": 8.0},
    {"max_summands": "8"},
    {"value_bits": 16.0},
    {"value_bits": np.float64(16)},
    {"frac_bits": "12"},
    {"frac_bits": -1},
    {"frac_bits": True},
])
def test_packed_constructor_rejects(small_keys, kwargs):
    with pytest.raises(fp.InvalidArgumentError):
        fp.PackedCodec(small_keys[0], **kwargs)


def test_packed_constructor_boundaries(small_keys, tiny_keys):
    pk = small_keys[0]
    # largest slots accepted: exactly 62 bits
    c = fp.PackedCodec(pk, value_bits=32, max_summands=2**30)
    assert c.slot_bits == 62
    with pytest.raises(fp.InvalidArgumentError, match="62"):
        fp.PackedCodec(pk, value_bits=32, max_summands=2**31)
    assert fp.PackedCodec(pk, value_bits=60, max_summands=1).slot_bits == 60
    assert fp.PackedCodec(pk, value_bits=16, max_summands=2**32 - 1).max_summands == 2**32 - 1
    assert fp.PackedCodec(pk, value_bits=np.int32(16), max_summands=np.int64(8)).slots == 13
    # slot too wide for the key
    tiny = tiny_keys[0]
    assert fp.PackedCodec(tiny, value_bits=16, max_summands=1).slots == 1
    with pytest.raises(fp.InvalidArgumentError):
        fp.PackedCodec(tiny, value_bits=17, max_summands=1)
    with pytest.raises(fp.InvalidArgumentError):
        fp.PackedCodec(tiny, value_bits=16, max_summands=2)
    with pytest.raises(fp.InvalidArgumentError):
        fp.PackedCodec(small_keys[1])


# ---- sizes ----------------------------------------------------------------------

def test_single_value_packed_round_trip(keys_2048):
    pk, sk = keys_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    for x in (np.array([-3.14159]), np.float32(2.5), np.array([[7.9]])):
        ea = codec.encrypt(x, pk)
        assert ea.ciphertexts.shape[0] == 1
        decoded = sk.decrypt(ea)
        assert decoded.shape == np.shape(x)
        np.testing.assert_array_equal(decoded, quantized(x, 12, decoded.dtype))
        assert np.all(np.abs(decoded - x) <= codec.max_rounding_error(1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thousand_value_2d_packed_round_trip(keys_2048, dtype):
    pk, sk = keys_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    rng = np.random.default_rng(1234)
    x = rng.uniform(-codec.max_value, codec.max_value, size=(25, 40)).astype(dtype)
    ea = codec.encrypt(x, sk)
    assert ea.ciphertexts.shape == (10, pk.nsq_limbs)
    decoded = sk.decrypt(ea)
    assert decoded.dtype == dtype and decoded.shape == (25, 40)
    np.testing.assert_array_equal(decoded, quantized(x, 12, dtype))
    assert np.abs(decoded.astype(np.float64) - x).max() <= codec.max_rounding_error(1)
    y = rng.uniform(-1, 1, size=(25, 40)).astype(dtype)
    total = sk.decrypt(fp.sum_arrays([ea, codec.encrypt(y, pk)]))
    np.testing.assert_allclose(total, x.astype(np.float64) + y, atol=codec.max_rounding_error(2), rtol=0)


# ---- tampered plaintexts -------------------------------------------------------------

def test_packed_decode_rejects_bits_above_the_slots(small_keys):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk)
    ea = codec.encrypt(np.linspace(-1, 1, 20), sk)  # 2 ciphertexts of 13 slots
    used = codec.slots * codec.slot_bits
    tampered = with_codec(raw_view(ea) + np.array([0, 2**used], dtype=object), ea)
    with pytest.raises(fp.EncodingOverflowError, match="ciphertext 1"):
        sk.decrypt(tampered)
    # the untampered relabelling decodes
    np.testing.assert_array_equal(sk.decrypt(with_codec(raw_view(ea), ea)), sk.decrypt(ea))


def test_packed_decode_rejects_a_slot_beyond_the_summands(small_keys):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk)
    ea = codec.encrypt(np.zeros(5), sk)
    bump = 2 ** (codec.slot_bits - 1 + codec.slot_bits)  # top bit of slot 1, no carry into slot 2
    tampered = with_codec(raw_view(ea) + bump, ea)
    with pytest.raises(fp.EncodingOverflowError):
        sk.decrypt(tampered)
    # the same slot content is legal for a sum of max_summands encodings
    ok = with_codec(raw_view(ea) + bump, ea, summands=codec.max_summands)
    decoded = sk.decrypt(ok)
    assert decoded[1] != decoded[0]


def test_packed_decode_rejects_garbage(small_keys):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk)
    garbage = sk.encrypt(np.array([pk.n - 1], dtype=object))
    ea = fp.EncryptedArray(pk, garbage.ciphertexts, (3,), codec=codec)
    with pytest.raises(fp.EncodingOverflowError):
        sk.decrypt(ea)


def test_fixed_point_decode_rejects_values_outside_the_bound(small_keys):
    pk, sk = small_keys
    codec = fp.FixedPointCodec(pk)  # bound 2^62 - 1
    bound = 2**62 - 1
    n = pk.n

    def as_fixed(m: int, summands: int = 1) -> fp.EncryptedArray:
        raw = sk.encrypt(np.array([m], dtype=object))
        return fp.EncryptedArray(pk, raw.ciphertexts, (1,), codec=codec, summands=summands)

    assert sk.decrypt(as_fixed(bound))[0] == pytest.approx(2.0**30, abs=2.0**-20)
    assert sk.decrypt(as_fixed(n - bound))[0] == pytest.approx(-(2.0**30), abs=2.0**-20)
    assert sk.decrypt(as_fixed(bound - 511))[0] == (2**62 - 512) / 2.0**32  # exactly representable
    for m in (bound + 1, n - bound - 1, n // 2, n // 2 + 1, n - 2**100):
        with pytest.raises(fp.EncodingOverflowError):
            sk.decrypt(as_fixed(m))
    assert sk.decrypt(as_fixed(2 * bound, summands=2))[0] == pytest.approx(2.0**31, abs=2.0**-20)
    with pytest.raises(fp.EncodingOverflowError):
        sk.decrypt(as_fixed(2 * bound + 1, summands=2))
    # tampering through the raw machinery: adding n // 2 to an encoding
    ea = codec.encrypt(np.array([1.0, 2.0]), sk)
    with pytest.raises(fp.EncodingOverflowError):
        sk.decrypt(with_codec(raw_view(ea) + np.array([0, n // 2], dtype=object), ea))


def test_fixed_point_decode_is_correctly_rounded(small_keys):
    """A decoded value is the float64 nearest to m / 2^frac_bits (as PackedCodec's decode gives), not a
    truncation of it: 2^62 - 1 scaled by 2^-32 must decode to 2^30, the nearest double."""
    pk, sk = small_keys
    codec = fp.FixedPointCodec(pk)
    for m, expected in ((2**62 - 1, 2.0**30), (2**54 + 3, (2**54 + 4) / 2.0**32)):
        raw = sk.encrypt(np.array([m, pk.n - m], dtype=object))
        ea = fp.EncryptedArray(pk, raw.ciphertexts, (2,), codec=codec)
        np.testing.assert_array_equal(sk.decrypt(ea), [expected, -expected])
