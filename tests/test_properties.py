"""Property-based tests (Hypothesis) of the homomorphic laws and of the codecs, on small insecure keys."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastpaillier as fp
from fastpaillier import _native

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- helpers ---------------------------------------------------------------

def row_ints(rows: np.ndarray) -> list[int]:
    """Python ints of (N, limbs) little-endian uint64 rows (independent of fastpaillier._limbs)."""
    return [int.from_bytes(np.ascontiguousarray(r, dtype="<u8").tobytes(), "little") for r in rows]


def plain(sk: fp.PrivateKey, ea: fp.EncryptedArray) -> list[int]:
    """The plaintexts m mod n of a raw array, in C order."""
    return row_ints(sk.decrypt_limbs(ea))


def obj(values, shape=None) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = [int(v) for v in values]
    return arr if shape is None else arr.reshape(shape)


def residues(n: int):
    """Integers in [0, n) biased towards the edges of the range."""
    return st.one_of(st.integers(0, n - 1), st.integers(max(0, n - 2**16), n - 1),
                     st.integers(0, 2**16), st.sampled_from([0, 1, n - 1, n // 2, 2**63, 2**64]))


def encryptor(data, keys):
    pk, sk = keys
    return data.draw(st.sampled_from([pk.encrypt, sk.encrypt]), label="encryptor")


def exact(x) -> Fraction:
    return Fraction(float(x))


def largest_encodable(codec) -> float:
    """The largest float x whose quantization round(x * 2^f) does not exceed the codec's bound."""
    f = codec.frac_bits
    bound = 2 ** (codec.value_bits - 1) - 1
    x = float(Fraction(bound, 2**f))
    while Fraction(x) * 2**f > bound:
        x = math.nextafter(x, 0.0)
    return x


def output_ulp(value: Fraction, dtype: np.dtype) -> Fraction:
    """One unit in the last place of |value| in dtype (the representation error allowance)."""
    return Fraction(float(np.spacing(np.abs(np.asarray(float(value), dtype=dtype)))))


def assert_decodes_close(decoded: np.ndarray, exact_values: list[Fraction], codec, summands: int) -> None:
    """|decoded - exact| <= max_rounding_error(summands) + representation error of the output dtype."""
    flat = decoded.ravel()
    assert flat.size == len(exact_values)
    bound = Fraction(codec.max_rounding_error(summands))
    for i, (d, e) in enumerate(zip(flat, exact_values)):
        err = abs(Fraction(float(d)) - e)
        assert err <= bound + 2 * output_ulp(e, decoded.dtype), (i, float(d), float(e), float(err))


CODEC_CONFIGS = [
    ("fixed", {}),
    ("fixed", {"frac_bits": 8, "value_bits": 20}),
    ("fixed", {"frac_bits": 0, "value_bits": 2}),
    ("packed", {}),
    ("packed", {"value_bits": 8, "max_summands": 3, "frac_bits": 2}),
    ("packed", {"value_bits": 30, "max_summands": 100, "frac_bits": 20}),
    ("packed", {"value_bits": 2, "max_summands": 1, "frac_bits": 0}),
]
CONFIG_IDS = [f"{kind}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'default'}" for kind, kw in CODEC_CONFIGS]


def make_codec(pk: fp.PublicKey, config):
    kind, kwargs = config
    cls = fp.FixedPointCodec if kind == "fixed" else fp.PackedCodec
    return cls(pk, **kwargs)


def float_arrays(codec, dtype, shape_strategy=None, limit=None):
    limit = largest_encodable(codec) if limit is None else limit
    if dtype == np.float32:
        limit32 = np.float32(limit)
        if float(limit32) > limit:
            limit32 = np.nextafter(limit32, np.float32(0))
        limit = float(limit32)
    shapes = (hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4) if shape_strategy is None
              else shape_strategy)
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shapes, elements=st.floats(-limit, limit, width=width))


# ---- raw homomorphic laws --------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_add_ciphertexts(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    size = data.draw(st.integers(0, 6), label="size")
    a = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="a")
    b = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="b")
    ea, eb = encryptor(data, small_keys)(obj(a)), encryptor(data, small_keys)(obj(b))
    expected = [(x + y) % n for x, y in zip(a, b)]
    assert plain(sk, ea + eb) == expected
    assert plain(sk, eb + ea) == expected
    assert plain(sk, ea.add(eb, threads=1)) == expected


@SETTINGS
@given(data=st.data())
def test_add_plaintext(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    size = data.draw(st.integers(1, 6), label="size")
    a = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="a")
    b = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="b")
    c = data.draw(residues(n), label="c")
    ea = encryptor(data, small_keys)(obj(a))
    assert plain(sk, ea + obj(b)) == [(x + y) % n for x, y in zip(a, b)]
    assert plain(sk, ea + c) == [(x + c) % n for x in a]
    assert plain(sk, c + ea) == [(x + c) % n for x in a]
    # the input array is untouched by the operations
    assert plain(sk, ea) == a


def test_numpy_array_as_left_operand(small_keys):
    """b + E(a), b - E(a) and k * E(a) with b, k numpy arrays must give one EncryptedArray, as with a on the
    left, not an object ndarray of EncryptedArrays built by numpy's element-wise broadcasting."""
    pk, sk = small_keys
    n = pk.n
    a = [3, 10, n - 1]
    ea = sk.encrypt(obj(a))
    b = np.array([5, 7, 9], dtype=np.int64)
    for result, expected in ((b + ea, [(int(y) + x) % n for x, y in zip(a, b)]),
                             (b - ea, [(int(y) - x) % n for x, y in zip(a, b)]),
                             (b * ea, [(int(y) * x) % n for x, y in zip(a, b)])):
        assert isinstance(result, fp.EncryptedArray), type(result)
        assert plain(sk, result) == expected
    codec = fp.FixedPointCodec(pk)
    ef = codec.encrypt(np.array([0.5, -1.25, 2.0]), sk)
    result = np.array([1.0, 1.0, 1.0]) - ef
    assert isinstance(result, fp.EncryptedArray), type(result)
    np.testing.assert_array_equal(sk.decrypt(result), [0.5, 2.25, -1.0])


@SETTINGS
@given(data=st.data())
def test_scalar_multiplication_by_int(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    size = data.draw(st.integers(0, 5), label="size")
    a = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="a")
    k = data.draw(st.one_of(st.integers(-3 * n, 3 * n), st.integers(-(2**70), 2**70),
                            st.sampled_from([0, 1, -1, n, -n, n - 1, 1 - n])), label="k")
    ea = encryptor(data, small_keys)(obj(a))
    expected = [(k * x) % n for x in a]
    assert plain(sk, ea * k) == expected
    assert plain(sk, k * ea) == expected
    assert plain(sk, ea.multiply(np.int64(k) if -(2**63) <= k < 2**63 else k)) == expected


@SETTINGS
@given(data=st.data())
def test_scalar_multiplication_per_element_int64(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3), label="shape")
    size = int(np.prod(shape))
    a = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="a")
    k = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-(2**63), 2**63 - 1)), label="k")
    ea = encryptor(data, small_keys)(obj(a, shape))
    expected = [(int(kk) * x) % n for kk, x in zip(k.ravel(), a)]
    assert plain(sk, ea * k) == expected
    # broadcasting a row of scalars over the leading axes
    row = k.reshape(-1)[: shape[-1]].reshape(shape[-1])
    expected_b = [(int(kk) * x) % n for kk, x in zip(np.broadcast_to(row, shape).ravel(), a)]
    assert plain(sk, ea.multiply(row)) == expected_b


@SETTINGS
@given(data=st.data())
def test_subtraction_and_negation(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    size = data.draw(st.integers(0, 6), label="size")
    a = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="a")
    b = data.draw(st.lists(residues(n), min_size=size, max_size=size), label="b")
    c = data.draw(residues(n), label="c")
    ea, eb = encryptor(data, small_keys)(obj(a)), encryptor(data, small_keys)(obj(b))
    assert plain(sk, ea - eb) == [(x - y) % n for x, y in zip(a, b)]
    assert plain(sk, ea.subtract(eb, threads=1)) == [(x - y) % n for x, y in zip(a, b)]
    assert plain(sk, -ea) == [(-x) % n for x in a]
    assert plain(sk, ea - obj(b)) == [(x - y) % n for x, y in zip(a, b)]
    assert plain(sk, ea - c) == [(x - c) % n for x in a]
    assert plain(sk, c - ea) == [(c - x) % n for x in a]


@SETTINGS
@given(data=st.data())
def test_sums_are_associative_and_commutative(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3), label="shape")
    size = int(np.prod(shape, dtype=np.int64))
    arrays = [data.draw(st.lists(residues(n), min_size=size, max_size=size), label=f"x{i}") for i in range(3)]
    a, b, c = (encryptor(data, small_keys)(obj(v, shape)) for v in arrays)
    left = (a + b) + c
    variants = [a + (b + c), (c + a) + b, b + (c + a), fp.sum_arrays([a, b, c]), fp.sum_arrays([c, b, a]),
                fp.sum_arrays([b, fp.sum_arrays([a, c])])]
    for v in variants:  # modular multiplication is exactly associative and commutative
        assert v.shape == tuple(shape)
        np.testing.assert_array_equal(v.ciphertexts, left.ciphertexts)
    assert plain(sk, left) == [(x + y + z) % n for x, y, z in zip(*arrays)]
    assert plain(sk, fp.sum_arrays([a])) == [x % n for x in arrays[0]]


@SETTINGS
@given(data=st.data())
def test_sum_over_axes(small_keys, data):
    pk, sk = small_keys
    n = pk.n
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), label="shape")
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)), label="axis")
    size = int(np.prod(shape, dtype=np.int64))
    values = obj(data.draw(st.lists(residues(n), min_size=size, max_size=size), label="values"), shape)
    ea = encryptor(data, small_keys)(values)
    total = ea.sum(axis=axis) if data.draw(st.booleans(), label="kw") else ea.sum(axis)
    expected = np.asarray(np.sum(values, axis=axis), dtype=object)
    assert total.shape == expected.shape == np.sum(np.zeros(shape), axis=axis).shape
    assert total.ciphertexts.shape[0] == expected.size
    assert plain(sk, total) == [int(v) % n for v in expected.ravel()]


def test_encrypt_accepts_lists_of_python_ints(small_keys):
    """encrypt() takes 'an array of ints': a plain list of Python ints below n must work whatever their size.
    numpy infers float64 for lists such as [2**63, 1]; that must not make a valid input fail."""
    pk, sk = small_keys
    assert plain(sk, pk.encrypt([2**64 - 1])) == [2**64 - 1]
    assert plain(sk, pk.encrypt([5, 2**70])) == [5, 2**70]
    for values in ([2**63, 1], [1, 2**64 - 1], [2**63 + 5, 2**62, 0]):
        assert plain(sk, pk.encrypt(values)) == values
        assert plain(sk, sk.encrypt(values)) == values


# ---- codec round trips -----------------------------------------------------

@pytest.mark.parametrize("config", CODEC_CONFIGS, ids=CONFIG_IDS)
@SETTINGS
@given(data=st.data())
def test_codec_round_trip(small_keys, config, data):
    pk, sk = small_keys
    codec = make_codec(pk, config)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    x = data.draw(float_arrays(codec, dtype), label="x")
    key = data.draw(st.sampled_from([pk, sk]), label="key")
    ea = codec.encrypt(x, key)
    assert ea.ciphertexts.shape[0] == codec.rows_for(x.size)
    decoded = sk.decrypt(ea)
    assert decoded.dtype == np.dtype(dtype)
    assert decoded.shape == x.shape
    # oracle: round half to even of x * 2^f, scaled back
    q = np.rint(np.ldexp(x.astype(np.float64), codec.frac_bits))
    np.testing.assert_array_equal(decoded, np.ldexp(q, -codec.frac_bits).astype(dtype))
    bound = Fraction(codec.max_rounding_error(1))
    for d, v in zip(decoded.ravel(), x.ravel()):
        assert abs(exact(d) - exact(v)) <= bound
    np.testing.assert_array_equal(codec.decrypt(ea, sk), decoded)


@pytest.mark.parametrize("config", CODEC_CONFIGS, ids=CONFIG_IDS)
def test_codec_round_trip_at_max_value(small_keys, config):
    """max_value is documented as the largest encodable magnitude: +-max_value itself must encode."""
    pk, sk = small_keys
    codec = make_codec(pk, config)
    x = np.array([codec.max_value, -codec.max_value])
    decoded = sk.decrypt(codec.encrypt(x, pk))
    assert np.all(np.abs(decoded - x) <= codec.max_rounding_error(1))


@pytest.mark.parametrize("config", CODEC_CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_codec_round_trip_at_quantization_extremes(small_keys, config, dtype):
    pk, sk = small_keys
    codec = make_codec(pk, config)
    f = codec.frac_bits
    bound = 2 ** (codec.value_bits - 1) - 1
    top = largest_encodable(codec)
    if dtype == np.float32:
        top32 = np.float32(top)
        top = float(top32 if float(top32) <= top else np.nextafter(top32, np.float32(0)))
    step = 2.0**-f
    x = np.array([top, -top, step, -step, step / 2, -step / 2, 0.0, -0.0], dtype=dtype)
    decoded = sk.decrypt(codec.encrypt(x, sk))
    assert decoded.dtype == np.dtype(dtype)
    for d, v in zip(decoded, x):
        assert abs(exact(d) - exact(v)) <= Fraction(codec.max_rounding_error(1))
    if dtype == np.float64:
        # the largest quantized magnitude is reached exactly when it is a float64
        if Fraction(float(Fraction(bound, 2**f))) == Fraction(bound, 2**f):
            assert Fraction(float(decoded[0])) == Fraction(bound, 2**f)
        # the first float whose quantization exceeds the bound is refused
        over = float(Fraction(2 * bound + 1, 2 ** (f + 1)))
        while Fraction(over) * 2**f < Fraction(2 * bound + 1, 2):
            over = math.nextafter(over, math.inf)
        if np.rint(np.ldexp(over, f)) > bound:
            for v in (over, -over):
                with pytest.raises(fp.EncodingOverflowError):
                    codec.encrypt(np.array([0.0, v]), pk)


# ---- sums up to the headroom ----------------------------------------------

def headroom_codecs(small_keys, tiny_keys):
    return [
        fp.PackedCodec(small_keys[0]),
        fp.PackedCodec(small_keys[0], value_bits=8, max_summands=3, frac_bits=2),
        fp.PackedCodec(small_keys[0], value_bits=2, max_summands=1, frac_bits=0),
        fp.PackedCodec(tiny_keys[0], value_bits=4, max_summands=2, frac_bits=1),
        fp.FixedPointCodec(tiny_keys[0], value_bits=14, frac_bits=4),
        fp.FixedPointCodec(tiny_keys[0], value_bits=15, frac_bits=0),
        fp.FixedPointCodec(tiny_keys[0], value_bits=16, frac_bits=6),
    ]


HEADROOM_IDS = ["packed-default", "packed-8-3", "packed-2-1", "packed-tiny", "fixed-tiny-14", "fixed-tiny-15",
                "fixed-tiny-16"]


@pytest.mark.parametrize("which", range(7), ids=HEADROOM_IDS)
@FEW
@given(data=st.data())
def test_sum_of_max_summands_arrays(small_keys, tiny_keys, which, data):
    codec = headroom_codecs(small_keys, tiny_keys)[which]
    sk = small_keys[1] if codec.public_key == small_keys[0] else tiny_keys[1]
    m = codec.max_summands
    assert m <= 8
    size = data.draw(st.integers(0, 7), label="size")
    mode = data.draw(st.sampled_from(["random", "max", "min"]), label="mode")
    top = largest_encodable(codec)
    if mode == "random":
        arrays = [data.draw(float_arrays(codec, np.float64, st.just((size,))), label=f"x{i}") for i in range(m)]
    else:
        arrays = [np.full(size, top if mode == "max" else -top) for _ in range(m)]
    enc = [codec.encrypt(x, sk if i % 2 else sk.public_key) for i, x in enumerate(arrays)]
    exact_sum = [sum((exact(x[j]) for x in arrays), Fraction(0)) for j in range(size)]
    total = fp.sum_arrays(enc)
    assert total.summands == m
    assert_decodes_close(sk.decrypt(total), exact_sum, codec, m)
    chained = enc[0]
    for e in enc[1:]:
        chained = chained + e
    assert chained.summands == m
    np.testing.assert_array_equal(sk.decrypt(chained), sk.decrypt(total))
    # one summand more is refused, by sum_arrays, by + from either side, and by adding plaintext values
    extra = codec.encrypt(np.zeros(size), sk)
    with pytest.raises(fp.SummandLimitError):
        fp.sum_arrays(enc + [extra])
    with pytest.raises(fp.SummandLimitError):
        total + extra
    with pytest.raises(fp.SummandLimitError):
        extra + total
    with pytest.raises(fp.SummandLimitError):
        total + np.zeros(size)
    if codec.supports_negation:
        with pytest.raises(fp.SummandLimitError):
            total - extra
    with pytest.raises(fp.EncodingOverflowError):  # SummandLimitError is an EncodingOverflowError
        fp.sum_arrays([total, extra])


@pytest.mark.parametrize("op", ["sum_arrays", "add", "add_plaintext", "multiply"])
def test_summand_limit_checked_before_any_computation(small_keys, monkeypatch, op):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk, value_bits=8, max_summands=3, frac_bits=2)
    arrays = [codec.encrypt(np.full(4, 1.0), sk) for _ in range(3)]
    total = fp.sum_arrays(arrays)
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a kernel ran before the summand check")

    for name in ("product_of_arrays", "mul_ciphertexts", "add_plaintexts", "pow_ciphertexts"):
        monkeypatch.setattr(_native, name, forbidden)
    with pytest.raises(fp.SummandLimitError):
        if op == "sum_arrays":
            fp.sum_arrays(arrays + [arrays[0]])
        elif op == "add":
            total + arrays[0]
        elif op == "add_plaintext":
            total + np.ones(4)
        else:
            arrays[0] * 4
    assert calls == []


@pytest.mark.parametrize("which", range(4), ids=HEADROOM_IDS[:4])
@FEW
@given(data=st.data())
def test_packed_scalar_multiplication(small_keys, tiny_keys, which, data):
    codec = headroom_codecs(small_keys, tiny_keys)[which]
    sk = small_keys[1] if codec.public_key == small_keys[0] else tiny_keys[1]
    m = codec.max_summands
    s = data.draw(st.integers(1, m), label="summands")
    size = data.draw(st.integers(1, 6), label="size")
    arrays = [data.draw(float_arrays(codec, np.float64, st.just((size,))), label=f"x{i}") for i in range(s)]
    ea = fp.sum_arrays([codec.encrypt(x, sk) for x in arrays])
    q = sum(np.rint(np.ldexp(x, codec.frac_bits)) for x in arrays)
    k = data.draw(st.integers(0, m // s), label="k")
    for product in (ea * k, k * ea, ea.multiply(np.int64(k))):
        assert product.summands == s * k
        np.testing.assert_array_equal(sk.decrypt(product), np.ldexp(k * q, -codec.frac_bits))
    too_big = data.draw(st.integers(m // s + 1, m + 5), label="too_big")
    with pytest.raises(fp.SummandLimitError):
        ea * too_big


@pytest.mark.parametrize("which", range(4), ids=HEADROOM_IDS[:4])
@FEW
@given(data=st.data())
def test_mixed_sign_packed_sums(small_keys, tiny_keys, which, data):
    codec = headroom_codecs(small_keys, tiny_keys)[which]
    sk = small_keys[1] if codec.public_key == small_keys[0] else tiny_keys[1]
    count = data.draw(st.integers(1, codec.max_summands), label="count")
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), label="shape")
    arrays = [data.draw(float_arrays(codec, np.float64, st.just(shape)), label=f"x{i}") for i in range(count)]
    assume(any((x < 0).any() for x in arrays))
    total = fp.sum_arrays([codec.encrypt(x, sk) for x in arrays])
    decoded = sk.decrypt(total)
    q = sum(np.rint(np.ldexp(x, codec.frac_bits)) for x in arrays)
    np.testing.assert_array_equal(decoded, np.ldexp(q, -codec.frac_bits))
    exact_sum = [sum((exact(x.ravel()[j]) for x in arrays), Fraction(0)) for j in range(arrays[0].size)]
    assert_decodes_close(decoded, exact_sum, codec, count)


# ---- fixed-point specific laws --------------------------------------------

@SETTINGS
@given(data=st.data())
def test_fixed_point_axis_sum_negation_and_scalars(small_keys, data):
    pk, sk = small_keys
    codec = fp.FixedPointCodec(pk, frac_bits=16, value_bits=40)
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), label="shape")
    x = data.draw(float_arrays(codec, np.float64, st.just(shape)), label="x")
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)), label="axis")
    ea = codec.encrypt(x, sk)
    q = np.rint(np.ldexp(x, codec.frac_bits)).astype(np.int64)
    total = ea.sum(axis=axis)
    group = x.size if axis is None else shape[axis]
    assert total.summands == group
    np.testing.assert_array_equal(sk.decrypt(total), np.ldexp(np.sum(q, axis=axis).astype(np.float64), -16))
    np.testing.assert_array_equal(sk.decrypt(-ea), -np.ldexp(q.astype(np.float64), -16))
    k = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-1000, 1000)), label="k")
    scaled = ea * k
    assert scaled.summands == (int(np.abs(k).max()) if k.size else 0)
    np.testing.assert_array_equal(sk.decrypt(scaled), np.ldexp((k * q).astype(np.float64), -16))
    k0 = data.draw(st.integers(-1000, 1000), label="k0")
    np.testing.assert_array_equal(sk.decrypt(ea * k0), np.ldexp((k0 * q).astype(np.float64), -16))


# ---- dtype and shape --------------------------------------------------------

@pytest.mark.parametrize("config", CODEC_CONFIGS[:1] + CODEC_CONFIGS[3:4], ids=["fixed", "packed"])
@FEW
@given(data=st.data())
def test_decoded_dtype_and_shape(small_keys, config, data):
    pk, sk = small_keys
    codec = make_codec(pk, config)
    in_dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64,
                                          np.uint16]), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3), label="shape")
    x = data.draw(hnp.arrays(in_dtype, shape, elements=st.integers(-5, 5) if np.dtype(in_dtype).kind == "i"
                             else st.integers(0, 5) if np.dtype(in_dtype).kind == "u"
                             else st.floats(-5, 5, width=np.dtype(in_dtype).itemsize * 8)), label="x")
    expected_dtype = np.float32 if in_dtype == np.float32 else np.float64
    ea = codec.encrypt(x, sk)
    assert ea.dtype == expected_dtype and ea.shape == x.shape
    decoded = sk.decrypt(ea)
    assert decoded.dtype == expected_dtype
    assert decoded.shape == x.shape
    np.testing.assert_allclose(decoded, x.astype(np.float64), atol=codec.max_rounding_error(1), rtol=0)
    other = codec.encrypt(np.zeros(shape, dtype=np.float64), sk)
    mixed = ea + other
    assert mixed.dtype == np.float64 and sk.decrypt(mixed).dtype == np.float64
    same = fp.sum_arrays([ea, ea])
    assert sk.decrypt(same).dtype == expected_dtype
