"""The private _native bindings check their arguments (issue 10, item 7), and serialization agrees
with itself (item 8).

No call from Python may make a kernel read or write out of bounds or abort the process: every
binding refuses a wrong row width, disagreeing row counts, a stride or length that would index past
an input, and a value beyond its kernel's contract, with a ValueError naming the argument.  Each
test also checks that a correct call still computes the right thing (against Python ints).
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.encrypted_array import EncryptedArray
from fastpaillier.errors import InvalidArgumentError, KeyMismatchError, SerializationError

P = 0xF7E75FDC469067FFDC4E847C51F452DF
Q = 0xE85CED54AF57E53E092113E62F436F4F
U64 = np.uint64


@pytest.fixture(scope="module")
def sk() -> fp.PrivateKey:
    return fp.PrivateKey(P, Q, insecure=True)


@pytest.fixture(scope="module")
def pk(sk) -> fp.PublicKey:
    return sk.public_key


@pytest.fixture(scope="module")
def djn_sk(sk) -> fp.PrivateKey:
    return sk.with_djn()


def rows(values, limbs):
    return _limbs.ints_to_rows([int(v) for v in values], limbs)


def ints(array):
    return _limbs.rows_to_ints(array)


def row(x, limbs):
    return _limbs.int_to_limbs(x, limbs)


def classic(pk, m, r):
    nsq = pk.nsquare
    return (1 + m * pk.n) * pow(r, pk.n, nsq) % nsq


def ciphertexts(pk, count):
    """Valid ciphertext rows (units below n^2) and their values."""
    values = [classic(pk, secrets.randbelow(pk.n), secrets.randbelow(pk.n - 2) + 1) for _ in range(count)]
    return rows(values, pk.nsq_limbs), values


def wrong_width(pk, count=2):
    """Ciphertext-sized rows one limb short: the (2, 3)-style input that used to be read past its end."""
    return np.ones((count, pk.nsq_limbs - 1), dtype=U64)


# ---- contexts ---------------------------------------------------------------------------------

def test_public_ctx_checks_n(pk):
    with pytest.raises(ValueError, match="at least one limb"):
        _native.PublicCtx(np.zeros(0, dtype=U64))
    for bad in (0, 1, 4, 2**64):
        with pytest.raises(ValueError, match="odd"):
            _native.PublicCtx(row(bad, _limbs.limb_count(bad)))
    ctx = _native.PublicCtx(np.concatenate([pk._n_row, np.zeros(2, dtype=U64)]))  # zero top limbs
    assert ctx.n_limbs == pk.n_limbs and ctx.nsq_limbs == pk.nsq_limbs
    assert _limbs.limbs_to_int(ctx.n_row) == pk.n and _limbs.limbs_to_int(ctx.nsq_row) == pk.nsquare


def test_private_ctx_checks_key_material(pk):
    half = _limbs.limb_count(P)
    p, q, n = row(P, half), row(Q, half), pk._n_row
    good = (p, q, n, pk.n_limbs, pk.nsq_limbs)
    for args, match in [
        ((p, q, n, pk.n_limbs - 1, pk.nsq_limbs), "limb counts"),   # outputs would be written past their rows
        ((p, q, n, pk.n_limbs, pk.nsq_limbs + 3), "limb counts"),
        ((q, p, n, pk.n_limbs, pk.nsq_limbs), "p > q"),
        ((p, row(Q + 2, half), n, pk.n_limbs, pk.nsq_limbs), "p\\*q"),
        ((row(P + 1, half), q, row((P + 1) * Q, pk.n_limbs), pk.n_limbs, pk.nsq_limbs), "odd"),
        ((row(3 * 5 * 7, 1), row(3 * 11, 1), row(3 * 5 * 7 * 3 * 11, 1), 1, 1), "coprime"),
        ((p, q[:1], n, pk.n_limbs, pk.nsq_limbs), "same nonzero limb count"),
    ]:
        with pytest.raises(ValueError, match=match):
            _native.PrivateCtx(*args)
    ctx = _native.PrivateCtx(*good)
    c, values = ciphertexts(pk, 3)
    sk = fp.PrivateKey(P, Q, insecure=True)
    assert np.array_equal(_native.decrypt(ctx, c, 1), _native.decrypt(sk._ctx, c, 1))


def test_djn_contexts_check_h_s_width(djn_sk):
    pk = djn_sk.public_key
    with pytest.raises(ValueError, match="nsq_limbs"):
        _native.DjnCtx(pk._ctx, pk._djn_row[:-1])
    with pytest.raises(ValueError, match="nsq_limbs"):
        _native.DjnCrtCtx(djn_sk._ctx, np.zeros(pk.nsq_limbs + 1, dtype=U64))


def test_context_arguments_must_not_be_none(pk):
    m = np.zeros((1, 1), dtype=U64)
    c = np.ones((1, pk.nsq_limbs), dtype=U64)
    for call in [
        lambda: _native.encrypt_public(None, m, 1),
        lambda: _native.encrypt_private(None, m, 1),
        lambda: _native.encrypt_djn(None, m, 1),
        lambda: _native.encrypt_djn_crt(None, m, 1),
        lambda: _native.decrypt(None, c, 1),
        lambda: _native.mul_ciphertexts(None, c, c, 1),
        lambda: _native.invert_ciphertexts(None, c, 1),
        lambda: _native.find_invalid_ciphertext(None, c, 1),
        lambda: _native.djn_generate_base(None),
        lambda: _native.encode_signed(None, np.zeros(1, dtype=np.int64)),
        lambda: _native.product_of_arrays(pk._ctx, None, 1),
    ]:
        with pytest.raises(TypeError, match="None"):
            call()


def test_threads_are_checked(sk, djn_sk):
    pk = sk.public_key
    m = rows([5], pk.n_limbs)
    c, _ = ciphertexts(pk, 2)
    djn, djn_crt = djn_sk.public_key._djn(), djn_sk._djn_crt()
    one = rows([1], 1)
    calls = {
        "encrypt_public": lambda t: _native.encrypt_public(pk._ctx, m, t),
        "encrypt_private": lambda t: _native.encrypt_private(sk._ctx, m, t),
        "encrypt_with_r": lambda t: _native.encrypt_with_r(pk._ctx, m, one, t),
        "encrypt_with_r_crt": lambda t: _native.encrypt_with_r_crt(sk._ctx, m, one, t),
        "encrypt_djn": lambda t: _native.encrypt_djn(djn, m, t),
        "encrypt_djn_crt": lambda t: _native.encrypt_djn_crt(djn_crt, m, t),
        "encrypt_djn_with_a": lambda t: _native.encrypt_djn_with_a(djn, m, one, t),
        "encrypt_djn_crt_with_a": lambda t: _native.encrypt_djn_crt_with_a(djn_crt, m, one, t),
        "rerandomize_public": lambda t: _native.rerandomize_public(pk._ctx, c, t),
        "rerandomize_private": lambda t: _native.rerandomize_private(sk._ctx, c, t),
        "rerandomize_djn": lambda t: _native.rerandomize_djn(djn, c, t),
        "rerandomize_djn_crt": lambda t: _native.rerandomize_djn_crt(djn_crt, c, t),
        "decrypt": lambda t: _native.decrypt(sk._ctx, c, t),
        "mul_ciphertexts": lambda t: _native.mul_ciphertexts(pk._ctx, c, c, t),
        "add_plaintexts": lambda t: _native.add_plaintexts(pk._ctx, c, rows([1, 2], 1), t),
        "pow_ciphertexts": lambda t: _native.pow_ciphertexts(pk._ctx, c, one, np.zeros(1, np.uint8), t),
        "invert_ciphertexts": lambda t: _native.invert_ciphertexts(pk._ctx, c, t),
        "product_of_groups": lambda t: _native.product_of_groups(pk._ctx, c, 2, t),
        "product_of_arrays": lambda t: _native.product_of_arrays(pk._ctx, [c, c], t),
        "mont_product_of_arrays": lambda t: _native.mont_product_of_arrays(pk._ctx, [c], [0], 0, t),
        "mont_product_of_groups": lambda t: _native.mont_product_of_groups(pk._ctx, c, 0, 2, 0, t),
        "find_invalid_ciphertext": lambda t: _native.find_invalid_ciphertext(pk._ctx, c, t),
        "bench_powm": lambda t: _native.bench_powm(rows([2], 1), one, row(7, 1), 1, False, t),
    }
    for call in calls.values():
        call(1)
        for bad in (0, -1, 1025):
            with pytest.raises(ValueError, match="threads"):
                call(bad)


# ---- encryption ----------------------------------------------------------------------------------

def _plaintext_rows_refused(call, pk):
    """call(m) must refuse a value of n, a row without limbs, and accept any width below n."""
    with pytest.raises(ValueError, match=r"m\[1\] is not below n"):
        call(rows([1, pk.n, 2], pk.n_limbs))
    with pytest.raises(ValueError, match=r"m\[0\] is not below n"):
        call(rows([pk.n + 5], pk.n_limbs + 2))
    with pytest.raises(ValueError, match="at least one limb"):
        call(np.zeros((2, 0), dtype=U64))


@pytest.mark.parametrize("private", [False, True])
def test_encrypt_checks_plaintexts(sk, private):
    pk = sk.public_key

    def call(m):
        return (_native.encrypt_private(sk._ctx, m, 2) if private else _native.encrypt_public(pk._ctx, m, 2))

    _plaintext_rows_refused(call, pk)
    values = [0, 1, pk.n - 1, 12345]
    for m in (rows(values, pk.n_limbs), rows(values, pk.n_limbs + 3)):
        assert _limbs.rows_to_ints(_native.decrypt(sk._ctx, call(m), 1)) == values
    narrow = rows([7, 8], 1)
    assert _limbs.rows_to_ints(_native.decrypt(sk._ctx, call(narrow), 1)) == [7, 8]


@pytest.mark.parametrize("private", [False, True])
def test_encrypt_djn_checks_plaintexts(djn_sk, private):
    pk = djn_sk.public_key

    def call(m):
        if private:
            return _native.encrypt_djn_crt(djn_sk._djn_crt(), m, 2)
        return _native.encrypt_djn(pk._djn(), m, 2)

    _plaintext_rows_refused(call, pk)
    values = [0, pk.n - 1, 99]
    assert _limbs.rows_to_ints(_native.decrypt(djn_sk._ctx, call(rows(values, pk.n_limbs)), 1)) == values


@pytest.mark.parametrize("private", [False, True])
def test_encrypt_with_r_checks_r_and_m(sk, private):
    pk = sk.public_key
    n = pk.n

    def call(m, r):
        if private:
            return _native.encrypt_with_r_crt(sk._ctx, m, r, 2)
        return _native.encrypt_with_r(pk._ctx, m, r, 2)

    m = rows([1, 2], pk.n_limbs)
    with pytest.raises(ValueError, match="same number of rows|rows but"):
        call(m, rows([3], pk.n_limbs))
    with pytest.raises(ValueError, match=r"r\[1\] is not below n"):
        call(m, rows([3, n], pk.n_limbs))
    with pytest.raises(ValueError, match=r"r\[0\] is 0"):
        call(m, rows([0, 3], pk.n_limbs))
    with pytest.raises(ValueError, match="at least one limb"):
        call(m, np.zeros((2, 0), dtype=U64))
    with pytest.raises(ValueError, match=r"m\[0\] is not below n"):
        call(rows([n, 2], pk.n_limbs), rows([3, 4], pk.n_limbs))
    ms, rs = [0, 5, n - 1], [1, n - 1, secrets.randbelow(n - 2) + 1]
    for r_limbs in (pk.n_limbs, pk.n_limbs + 2):
        got = ints(call(rows(ms, pk.n_limbs), rows(rs, r_limbs)))
        assert got == [classic(pk, a, b) for a, b in zip(ms, rs)]


@pytest.mark.parametrize("private", [False, True])
def test_encrypt_djn_with_a_checks_a_and_m(djn_sk, private):
    pk = djn_sk.public_key
    nsq, h = pk.nsquare, pk.djn_base
    bits = int(_native.djn_exponent_bits(pk.bits))
    a_limbs = (bits + 63) // 64

    def call(m, a):
        if private:
            return _native.encrypt_djn_crt_with_a(djn_sk._djn_crt(), m, a, 2)
        return _native.encrypt_djn_with_a(pk._djn(), m, a, 2)

    m = rows([1, 2], pk.n_limbs)
    with pytest.raises(ValueError, match="same number of rows|rows but"):
        call(m, rows([3, 4, 5], a_limbs))
    # a >= 2^exp_bits used to make the fixed-base kernels abort the process
    with pytest.raises(ValueError, match=rf"a\[1\] is not below 2\^{bits}"):
        call(m, rows([3, 1 << bits], a_limbs + 1))
    with pytest.raises(ValueError, match="at least one limb"):
        call(m, np.zeros((2, 0), dtype=U64))
    with pytest.raises(ValueError, match=r"m\[1\] is not below n"):
        call(rows([2, pk.n], pk.n_limbs), rows([3, 4], a_limbs))
    ms = [0, 7, pk.n - 1, 3]
    As = [0, 1, (1 << bits) - 1, secrets.randbits(bits)]
    for width in (a_limbs, a_limbs + 2):
        got = ints(call(rows(ms, pk.n_limbs), rows(As, width)))
        assert got == [(1 + x * pk.n) * pow(h, a, nsq) % nsq for x, a in zip(ms, As)]


@pytest.mark.parametrize("kind", ["public", "private", "djn", "djn_crt"])
def test_rerandomize_checks_width(djn_sk, kind):
    pk = djn_sk.public_key
    call = {
        "public": lambda c: _native.rerandomize_public(pk._ctx, c, 2),
        "private": lambda c: _native.rerandomize_private(djn_sk._ctx, c, 2),
        "djn": lambda c: _native.rerandomize_djn(pk._djn(), c, 2),
        "djn_crt": lambda c: _native.rerandomize_djn_crt(djn_sk._djn_crt(), c, 2),
    }[kind]
    with pytest.raises(ValueError, match="nsq_limbs"):
        call(wrong_width(pk))
    with pytest.raises(ValueError, match="nsq_limbs"):
        call(np.ones((1, pk.nsq_limbs + 1), dtype=U64))
    c = _native.encrypt_public(pk._ctx, rows([4, 9], pk.n_limbs), 1)
    again = call(c)
    assert not np.array_equal(again, c)
    assert _limbs.rows_to_ints(_native.decrypt(djn_sk._ctx, again, 1)) == [4, 9]


# ---- decryption ----------------------------------------------------------------------------------

def test_decrypt_checks_width(sk):
    pk = sk.public_key
    with pytest.raises(ValueError, match="nsq_limbs"):
        _native.decrypt(sk._ctx, np.ones((2, 3), dtype=U64), 1)
    with pytest.raises(ValueError, match="nsq_limbs"):
        _native.decrypt(sk._ctx, np.ones((2, pk.nsq_limbs + 1), dtype=U64), 1)
    c = rows([classic(pk, m, 3) for m in (0, 1, pk.n - 1)], pk.nsq_limbs)
    assert _limbs.rows_to_ints(_native.decrypt(sk._ctx, c, 2)) == [0, 1, pk.n - 1]


# ---- homomorphic operations ----------------------------------------------------------------------

def test_mul_ciphertexts_checks_widths_and_rows(pk):
    a, av = ciphertexts(pk, 3)
    b, bv = ciphertexts(pk, 3)
    with pytest.raises(ValueError, match="a must have rows"):
        _native.mul_ciphertexts(pk._ctx, wrong_width(pk, 3), b, 1)
    with pytest.raises(ValueError, match="b must have rows"):
        _native.mul_ciphertexts(pk._ctx, a, wrong_width(pk, 3), 1)
    with pytest.raises(ValueError, match="b has 2 rows but a has 3"):
        _native.mul_ciphertexts(pk._ctx, a, b[:2], 1)
    assert ints(_native.mul_ciphertexts(pk._ctx, a, b, 2)) == [x * y % pk.nsquare for x, y in zip(av, bv)]


def test_add_plaintexts_checks_c_and_m(sk):
    pk = sk.public_key
    c, cv = ciphertexts(pk, 3)
    m = rows([1, 2, 3], pk.n_limbs)
    with pytest.raises(ValueError, match="c must have rows"):
        _native.add_plaintexts(pk._ctx, wrong_width(pk, 3), m, 1)
    with pytest.raises(ValueError, match="m has 2 rows but c has 3"):
        _native.add_plaintexts(pk._ctx, c, m[:2], 1)
    with pytest.raises(ValueError, match=r"m\[2\] is not below n"):
        _native.add_plaintexts(pk._ctx, c, rows([1, 2, pk.n], pk.n_limbs), 1)
    with pytest.raises(ValueError, match="at least one limb"):
        _native.add_plaintexts(pk._ctx, c, np.zeros((3, 0), dtype=U64), 1)
    nsq = pk.nsquare
    for width in (1, pk.n_limbs, pk.n_limbs + 1):
        got = ints(_native.add_plaintexts(pk._ctx, c, rows([1, 2, 3], width), 2))
        assert got == [x * (1 + k * pk.n) % nsq for x, k in zip(cv, (1, 2, 3))]


def test_pow_ciphertexts_checks_strides(pk):
    c, cv = ciphertexts(pk, 3)
    nsq = pk.nsquare
    e = rows([2, 3, 5], 1)
    neg = np.array([0, 1, 0], dtype=np.uint8)
    with pytest.raises(ValueError, match="c must have rows"):
        _native.pow_ciphertexts(pk._ctx, wrong_width(pk, 3), e, neg, 1)
    for bad_e in (e[:0], e[:2], rows([1, 2, 3, 4], 1)):  # a stride of 1 would read past e
        with pytest.raises(ValueError, match="e must have one row per ciphertext"):
            _native.pow_ciphertexts(pk._ctx, c, bad_e, neg, 1)
    with pytest.raises(ValueError, match="at least one limb"):
        _native.pow_ciphertexts(pk._ctx, c, np.zeros((3, 0), dtype=U64), neg, 1)
    for bad_neg in (neg[:0], neg[:2], np.zeros(4, dtype=np.uint8)):
        with pytest.raises(ValueError, match="neg must have one flag per ciphertext"):
            _native.pow_ciphertexts(pk._ctx, c, e, bad_neg, 1)
    out, bad = _native.pow_ciphertexts(pk._ctx, c, e, neg, 2)
    assert bad == -1
    assert ints(out) == [pow(x, -k if s else k, nsq) for x, k, s in zip(cv, (2, 3, 5), (0, 1, 0))]
    big = pk.n - 1
    out, bad = _native.pow_ciphertexts(pk._ctx, c, rows([big], pk.n_limbs), np.ones(1, dtype=np.uint8), 2)
    assert bad == -1 and ints(out) == [pow(x, -big, nsq) for x in cv]
    out, bad = _native.pow_ciphertexts(pk._ctx, c[:0], e[:1], neg[:1], 1)
    assert out.shape == (0, pk.nsq_limbs) and bad == -1


def test_invert_ciphertexts_checks_width(pk):
    c, cv = ciphertexts(pk, 3)
    with pytest.raises(ValueError, match="c must have rows"):
        _native.invert_ciphertexts(pk._ctx, wrong_width(pk), 1)
    out, bad = _native.invert_ciphertexts(pk._ctx, c, 2)
    assert bad == -1 and ints(out) == [pow(x, -1, pk.nsquare) for x in cv]


def test_product_of_groups_checks_width(pk):
    c, cv = ciphertexts(pk, 7)
    nsq = pk.nsquare
    with pytest.raises(ValueError, match="c must have rows"):
        _native.product_of_groups(pk._ctx, wrong_width(pk, 4), 2, 1)
    for group in (1, 2, 3, 7):
        want = []
        for g in range(7 // group):  # rows past the last whole group are not read
            x = 1
            for j in range(group):
                x = x * cv[g * group + j] % nsq
            want.append(x)
        assert ints(_native.product_of_groups(pk._ctx, c, group, 2)) == want
    assert _native.product_of_groups(pk._ctx, c, 0, 1).shape == (0, pk.nsq_limbs)


def test_product_of_arrays_checks_every_array(pk):
    a, av = ciphertexts(pk, 3)
    b, bv = ciphertexts(pk, 3)
    nsq = pk.nsquare
    with pytest.raises(ValueError, match="at least one"):
        _native.product_of_arrays(pk._ctx, [], 1)
    with pytest.raises(ValueError, match=r"arrays\[1\] must have rows"):
        _native.product_of_arrays(pk._ctx, [a, wrong_width(pk, 3)], 1)
    # the row count used to come from the last array: shorter earlier arrays were read past their end
    with pytest.raises(ValueError, match=r"arrays\[1\] has 3 rows but arrays\[0\] has 1"):
        _native.product_of_arrays(pk._ctx, [a[:1], b], 1)
    with pytest.raises(ValueError, match=r"arrays\[2\] has 2 rows"):
        _native.product_of_arrays(pk._ctx, [a, b, a[:2]], 1)
    with pytest.raises(ValueError, match=r"arrays\[1\] must be a C-contiguous"):
        _native.product_of_arrays(pk._ctx, [a, "not an array"], 1)
    with pytest.raises(ValueError, match=r"arrays\[0\] must be a C-contiguous"):
        _native.product_of_arrays(pk._ctx, [np.asfortranarray(np.ones((3, pk.nsq_limbs), dtype=U64))], 1)
    assert ints(_native.product_of_arrays(pk._ctx, [a, b, a], 2)) == [
        x * y * x % nsq for x, y in zip(av, bv)]
    assert ints(_native.product_of_arrays(pk._ctx, [a], 2)) == av


def test_mont_product_of_arrays_checks_rows_and_values(pk):
    a, av = ciphertexts(pk, 3)
    b, bv = ciphertexts(pk, 3)
    nsq = pk.nsquare
    with pytest.raises(ValueError, match=r"arrays\[1\] must have rows"):
        _native.mont_product_of_arrays(pk._ctx, [a, wrong_width(pk, 3)], [0, 0], 0, 1)
    with pytest.raises(ValueError, match=r"arrays\[1\] has 2 rows"):
        _native.mont_product_of_arrays(pk._ctx, [a, b[:2]], [0, 0], 0, 1)
    with pytest.raises(ValueError, match=r"arrays\[1\]\[2\] is not below n\^2"):
        _native.mont_product_of_arrays(pk._ctx, [a, rows([1, 2, nsq], pk.nsq_limbs)], [0, 1], 0, 1)
    with pytest.raises(ValueError, match="form"):
        _native.mont_product_of_arrays(pk._ctx, [a, b], [0, 2], 0, 1)
    with pytest.raises(ValueError, match="form"):
        _native.mont_product_of_arrays(pk._ctx, [a, b], [0], 0, 1)
    with pytest.raises(ValueError, match="form"):
        _native.mont_product_of_arrays(pk._ctx, [a, b], [0, 0], 2, 1)
    assert ints(_native.mont_product_of_arrays(pk._ctx, [a, b], [0, 0], 0, 2)) == [
        x * y % nsq for x, y in zip(av, bv)]


def test_mont_product_of_groups_checks_rows_and_values(pk):
    c, cv = ciphertexts(pk, 4)
    nsq = pk.nsquare
    with pytest.raises(ValueError, match="c must have rows"):
        _native.mont_product_of_groups(pk._ctx, wrong_width(pk, 4), 0, 2, 0, 1)
    with pytest.raises(ValueError, match=r"c\[3\] is not below n\^2"):
        _native.mont_product_of_groups(pk._ctx, rows(cv[:3] + [nsq + 1], pk.nsq_limbs), 1, 2, 0, 1)
    with pytest.raises(ValueError, match="form"):
        _native.mont_product_of_groups(pk._ctx, c, 2, 2, 0, 1)
    assert ints(_native.mont_product_of_groups(pk._ctx, c, 0, 2, 0, 2)) == [
        cv[0] * cv[1] % nsq, cv[2] * cv[3] % nsq]


# ---- validation, keys, benchmark kernel ------------------------------------------------------------

def test_find_invalid_ciphertext_checks_width(pk):
    c, _ = ciphertexts(pk, 3)
    with pytest.raises(ValueError, match="c must have rows"):
        _native.find_invalid_ciphertext(pk._ctx, wrong_width(pk), 1)
    assert _native.find_invalid_ciphertext(pk._ctx, c, 1) == -1
    bad = c.copy()
    bad[1] = 0
    assert _native.find_invalid_ciphertext(pk._ctx, bad, 2) == 1


def test_find_row_at_least_checks_bound():
    with pytest.raises(ValueError, match="bound"):
        _native.find_row_at_least(rows([1], 1), np.zeros(0, dtype=U64))
    assert _native.find_row_at_least(rows([1, 5, 9], 2), row(5, 1)) == 1
    assert _native.find_row_at_least(rows([1, 4], 1), row(5, 3)) == -1


def test_generate_prime_and_probable_prime_check_sizes():
    for bits in (0, 1, 2):
        with pytest.raises(ValueError, match="bits"):
            _native.generate_prime(bits)
    with pytest.raises(ValueError, match="at least one limb"):
        _native.probable_prime(np.zeros(0, dtype=U64), 10)
    p = _limbs.limbs_to_int(_native.generate_prime(70))
    assert p.bit_length() == 70 and p >> 68 == 3 and pow(2, p - 1, p) == 1
    assert _native.probable_prime(row(P, 2), 10) > 0 and _native.probable_prime(row(P * Q, 4), 10) == 0


def test_bench_powm_checks_rows_and_values():
    m = (1 << 200) + 235  # odd
    limbs = _limbs.limb_count(m)
    mod = row(m, limbs)
    bases = rows([3, m - 1], limbs)
    exps = rows([5, (1 << 100) - 1], 2)
    with pytest.raises(ValueError, match="exps has 1 rows but bases has 2"):
        _native.bench_powm(bases, exps[:1], mod, 100, False, 1)
    with pytest.raises(ValueError, match="bases must have rows"):
        _native.bench_powm(rows([3, 4], limbs + 1), exps, mod, 100, False, 1)
    for gmp in (False, True):  # a base >= the modulus used to abort the constant-time kernels
        with pytest.raises(ValueError, match=r"bases\[1\] is not below mod"):
            _native.bench_powm(rows([3, m], limbs), exps, mod, 100, gmp, 1)
    with pytest.raises(ValueError, match="at least one limb"):
        _native.bench_powm(bases, np.zeros((2, 0), dtype=U64), mod, 1, False, 1)
    # exponents beyond exp_bits used to abort; exp_bits beyond the rows' bits sized huge buffers
    with pytest.raises(ValueError, match=r"exps\[1\] is not below 2\^99"):
        _native.bench_powm(bases, exps, mod, 99, False, 1)
    for exp_bits in (0, 129, 2**40):
        with pytest.raises(ValueError, match="exp_bits"):
            _native.bench_powm(bases, exps, mod, exp_bits, False, 1)
    for bad_mod in (row(m + 1, limbs), row(1, 1), np.zeros(0, dtype=U64), np.array([3, 0], dtype=U64)):
        with pytest.raises(ValueError, match="mod"):
            _native.bench_powm(rows([1], len(bad_mod)) if len(bad_mod) else np.zeros((1, 0), dtype=U64),
                               rows([1], 1), bad_mod, 1, False, 1)
    want = [pow(3, 5, m), pow(m - 1, (1 << 100) - 1, m)]
    for gmp in (False, True):
        assert ints(_native.bench_powm(bases, exps, mod, 100, gmp, 2)) == want
    # gmp=True takes any exponent width and value
    assert ints(_native.bench_powm(bases, rows([1 << 300, 7], 6), mod, 0, True, 1)) == [
        pow(3, 1 << 300, m), pow(m - 1, 7, m)]


# ---- codec kernels -------------------------------------------------------------------------------

def test_encode_signed_checks_magnitude():
    n = 126869  # one limb: int64 values can reach n / 2
    ctx = _native.PublicCtx(row(n, 1))
    for bad in ([63435], [-63435], [0, 2**63 - 1], [-(2**63)]):
        with pytest.raises(ValueError, match="n / 2"):
            _native.encode_signed(ctx, np.array(bad, dtype=np.int64))
    v = [0, 1, -1, 63434, -63434]
    assert ints(_native.encode_signed(ctx, np.array(v, dtype=np.int64))) == [x % n for x in v]
    assert _native.encode_signed(ctx, np.zeros(0, dtype=np.int64)).shape == (0, 1)


def test_encode_signed_takes_every_int64_for_multi_limb_n(pk):
    v = [0, 2**63 - 1, -(2**63), -5]
    assert ints(_native.encode_signed(pk._ctx, np.array(v, dtype=np.int64))) == [x % pk.n for x in v]


def test_decode_signed_scaled_checks_rows(pk):
    n = pk.n
    bound = row(1000, 1)
    with pytest.raises(ValueError, match="m must have rows"):
        _native.decode_signed_scaled(pk._ctx, np.ones((2, pk.n_limbs + 1), dtype=U64), bound, 0)
    with pytest.raises(ValueError, match=r"m\[1\] is not below n"):
        _native.decode_signed_scaled(pk._ctx, rows([1, n], pk.n_limbs), bound, 0)
    with pytest.raises(ValueError, match="bound"):
        _native.decode_signed_scaled(pk._ctx, rows([1], pk.n_limbs), np.zeros(0, dtype=U64), 0)
    out, bad = _native.decode_signed_scaled(pk._ctx, rows([6, n - 6, 0], pk.n_limbs), bound, 1)
    assert bad == -1 and out.tolist() == [3.0, -3.0, 0.0]
    _, bad = _native.decode_signed_scaled(pk._ctx, rows([6, 1001], pk.n_limbs), bound, 1)
    assert bad == 1


def test_pack_slots_checks_geometry_and_values():
    u = np.array([1, 2, 3], dtype=U64)
    # slots * slot_bits used to wrap around and pass the fit check, then write far past the rows
    with pytest.raises(ValueError, match="do not fit"):
        _native.pack_slots(u, 2, 2**63, 0, 1)
    with pytest.raises(ValueError, match="do not fit"):
        _native.pack_slots(u, 8, 17, 0, 2)
    with pytest.raises(ValueError, match="slots must be at least 1"):
        _native.pack_slots(u, 8, 0, 0, 2)
    for slot_bits in (0, 65):
        with pytest.raises(ValueError, match="slot_bits"):
            _native.pack_slots(u, slot_bits, 1, 0, 2)
    with pytest.raises(ValueError, match=r"u\[2\] = 300 does not fit 8 bits"):
        _native.pack_slots(np.array([1, 2, 300], dtype=U64), 8, 3, 0, 1)
    with pytest.raises(ValueError, match="pad 256"):
        _native.pack_slots(u, 8, 4, 256, 1)
    got = ints(_native.pack_slots(np.array([1, 2, 3, 4, 5], dtype=U64), 40, 3, 7, 2))
    want = [1 | 2 << 40 | 3 << 80, 4 | 5 << 40 | 7 << 80]
    assert got == want
    full = np.array([2**64 - 1, 5], dtype=U64)
    assert ints(_native.pack_slots(full, 64, 2, 0, 2)) == [(5 << 64) | (2**64 - 1)]
    assert _native.pack_slots(u[:0], 8, 2, 0, 1).shape == (0, 1)


def test_unpack_slots_checks_geometry():
    m = rows([1 | 2 << 40 | 3 << 80, 4 | 5 << 40 | 7 << 80], 2)
    with pytest.raises(ValueError, match="do not fit"):
        _native.unpack_slots(m, 2, 2**63, 1)
    with pytest.raises(ValueError, match="do not fit"):
        _native.unpack_slots(m, 40, 4, 1)
    with pytest.raises(ValueError, match="count 7 exceeds"):
        _native.unpack_slots(m, 40, 3, 7)
    for slot_bits in (0, 65):
        with pytest.raises(ValueError, match="slot_bits"):
            _native.unpack_slots(m, slot_bits, 1, 1)
    u, bad = _native.unpack_slots(m, 40, 3, 5)
    assert bad == -1 and u.tolist() == [1, 2, 3, 4, 5]
    _, bad = _native.unpack_slots(m, 40, 2, 4)  # the third slot's bits lie beyond two slots
    assert bad == 0


# ---- item 8: serialization agrees with itself ----------------------------------------------------

LIMIT_BITS = 8 * 4096  # the summands field holds at most 4096 bytes


def test_to_bytes_refuses_summands_that_from_bytes_refuses(sk):
    pk = sk.public_key
    enc = pk.encrypt(np.array([1, 2]))
    at_limit = EncryptedArray(pk, enc.ciphertexts, summands=2**LIMIT_BITS - 1)
    back = EncryptedArray.from_bytes(at_limit.to_bytes(), pk)
    assert back.summands == 2**LIMIT_BITS - 1
    grown = at_limit + at_limit  # raw integer arrays count summands without a cap
    assert grown.summands.bit_length() == LIMIT_BITS + 1
    with pytest.raises(SerializationError, match="cannot be serialized.*32769-bit count"):
        grown.to_bytes()
    assert sk.decrypt(grown).tolist() == [2, 4]  # the array itself still works
    with pytest.raises(InvalidArgumentError, match="summands"):
        EncryptedArray(pk, enc.ciphertexts, summands=2**LIMIT_BITS)


def test_to_bytes_refuses_shapes_that_from_bytes_refuses(pk):
    enc = pk.encrypt(np.array([1, 2]))
    too_many_dims = enc.reshape((2,) + (1,) * 32)  # from_bytes reads at most 32 dimensions
    with pytest.raises(SerializationError, match="cannot be serialized.*invalid shape"):
        too_many_dims.to_bytes()
    # nor dimensions above 2^48, which no array can have in memory either (issue 10, item 6)
    with pytest.raises(InvalidArgumentError, match="invalid shape.*2\\^48"):
        pk.encrypt(np.zeros(0, dtype=np.int64)).reshape(0, 2**49)
    ok = enc.reshape((2,) + (1,) * 31)
    assert EncryptedArray.from_bytes(ok.to_bytes(), pk).shape == ok.shape


def test_key_mismatch_message_shows_fingerprints_that_differ(pk):
    data = bytearray(pk.encrypt(np.array([1])).to_bytes())
    forged = bytes(pk.fingerprint[:31]) + bytes([pk.fingerprint[31] ^ 1])  # differs in the last byte only
    data[8:40] = forged
    with pytest.raises(KeyMismatchError) as info:
        EncryptedArray.from_bytes(bytes(data), pk)
    message = str(info.value)
    assert forged.hex() in message and pk.fingerprint.hex() in message
    other = fp.PrivateKey(293, 433, insecure=True).public_key
    with pytest.raises(KeyMismatchError, match=other.fingerprint.hex()):
        EncryptedArray.from_bytes(other.encrypt(np.array([1])).to_bytes(), pk)
