"""Cross-checks fastpaillier against a plain gmpy2 reference implementation of Paillier (g = n + 1).

The reference below is textbook Paillier: encryption with a given r, decryption by lambda/mu,
homomorphic addition (ciphertext product), plaintext addition (multiplication by g^k) and scalar
multiplication (modular power, by the inverse for negative scalars).  fastpaillier's homomorphic
operations are deterministic, so most checks compare ciphertexts exactly, not just plaintexts.
"""

from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs
from fastpaillier.testing import array_from_ints, ciphertext_ints, encrypt_with_r


class RefPaillier:
    """Textbook Paillier with g = n + 1 in gmpy2 (independent of fastpaillier's CRT code)."""

    def __init__(self, p: int, q: int) -> None:
        self.p, self.q = int(p), int(q)
        self.n = self.p * self.q
        self.nsq = self.n * self.n
        self.lam = int(gmpy2.lcm(self.p - 1, self.q - 1))
        self.mu = int(gmpy2.invert(self._L(gmpy2.powmod(self.n + 1, self.lam, self.nsq)), self.n))
        self.n_inv_lam = int(gmpy2.invert(self.n, self.lam))

    def _L(self, x: int) -> int:
        return int((x - 1) // self.n)

    def encrypt(self, m: int, r: int) -> int:
        return int((1 + m * self.n) * gmpy2.powmod(r, self.n, self.nsq) % self.nsq)

    def decrypt(self, c: int) -> int:
        return int(self._L(gmpy2.powmod(c, self.lam, self.nsq)) * self.mu % self.n)

    def add(self, c1: int, c2: int) -> int:
        return c1 * c2 % self.nsq

    def add_plain(self, c: int, k: int) -> int:
        return c * (1 + (k % self.n) * self.n) % self.nsq

    def mul(self, c: int, k: int) -> int:
        return int(gmpy2.powmod(c, k, self.nsq))  # negative k: powmod inverts first

    def neg(self, c: int) -> int:
        return int(gmpy2.invert(c, self.nsq))

    def random_unit(self, rng: random.Random) -> int:
        while True:
            r = rng.randrange(1, self.n)
            if gmpy2.gcd(r, self.n) == 1:
                return r

    def recover_r(self, c: int, m: int) -> int:
        """The r with c = (1 + m n) r^n mod n^2; asserts that such an r exists."""
        u = c * (1 + (self.n - m) * self.n) % self.nsq  # c * g^-m
        r = int(gmpy2.powmod(u, self.n_inv_lam, self.n))
        assert gmpy2.gcd(r, self.n) == 1
        assert gmpy2.powmod(r, self.n, self.nsq) == u, "ciphertext is not g^m times an n-th residue"
        return r


# ---- fixtures and helpers ---------------------------------------------------------------------


_KEY_FIXTURES = {"tiny": "tiny_keys", "small": "small_keys", "2048": "keys_2048"}
_REFS: dict[int, RefPaillier] = {}


def _keyset(request):
    name = request.param
    pk, sk = request.getfixturevalue(_KEY_FIXTURES[name])
    if pk.n not in _REFS:
        _REFS[pk.n] = RefPaillier(sk.p, sk.q)
    return pk, sk, _REFS[pk.n], 6 if name == "2048" else 24


@pytest.fixture(params=["tiny", "small", "2048"])
def keyset(request):
    """(public key, private key, reference, batch size): n = 126869 (one limb), 256 and 2048 bits."""
    return _keyset(request)


@pytest.fixture(params=["small", "2048"])
def keyset_big(request):
    """Like keyset without the tiny key, whose 126869 possible r values make collisions likely."""
    return _keyset(request)


def objects(values, shape=None) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = [int(v) for v in values]
    return arr if shape is None else arr.reshape(shape)


def plaintexts(rng: random.Random, n: int, count: int) -> list[int]:
    """Edge values first (0, 1, n-1, ...), then uniform values below n."""
    edges = [0, 1, n - 1, n // 2, 2, n - 2]
    return (edges + [rng.randrange(n) for _ in range(count)])[:count]


def dec(sk: fp.PrivateKey, arr: fp.EncryptedArray) -> list[int]:
    return _limbs.rows_to_ints(sk.decrypt_limbs(arr))


def ref_array(ref: RefPaillier, rng: random.Random, ms: list[int]) -> list[int]:
    """Ciphertext ints made by the reference, each with a fresh random unit r."""
    return [ref.encrypt(m, ref.random_unit(rng)) for m in ms]


# ---- encryption and decryption ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_fastpaillier_ciphertexts_decrypt_with_reference(keyset, seed):
    pk, sk, ref, size = keyset
    ms = plaintexts(random.Random(seed), pk.n, size)
    for key in (pk, sk):
        enc = key.encrypt(objects(ms))
        cs = ciphertext_ints(enc)
        assert all(0 < c < ref.nsq for c in cs)
        assert [ref.decrypt(c) for c in cs] == ms
        for c, m in zip(cs, ms):
            ref.recover_r(c, m)  # well formed: exactly (1 + m n) r^n for a unit r


@pytest.mark.parametrize("seed", [3, 4])
def test_reference_ciphertexts_decrypt_with_fastpaillier(keyset, seed):
    pk, sk, ref, size = keyset
    rng = random.Random(seed)
    ms = plaintexts(rng, pk.n, size)
    cs = ref_array(ref, rng, ms)
    assert dec(sk, array_from_ints(pk, cs)) == ms
    assert dec(sk, array_from_ints(pk, cs, shape=(2, size // 2))) == ms


@pytest.mark.parametrize("seed", [5])
def test_encrypt_with_r_matches_reference(keyset, seed):
    pk, sk, ref, size = keyset
    rng = random.Random(seed)
    ms = plaintexts(rng, pk.n, size)
    rs = [ref.random_unit(rng) for _ in ms]
    rs[0], rs[1] = 1, pk.n - 1
    expected = [ref.encrypt(m, r) for m, r in zip(ms, rs)]
    assert ciphertext_ints(encrypt_with_r(pk, objects(ms), rs)) == expected
    assert ciphertext_ints(encrypt_with_r(sk, objects(ms), rs)) == expected


def test_crt_and_classic_encryption_agree_for_non_unit_r(small_keys):
    """r sharing a factor with n is accepted by encrypt_with_r; both paths must still agree."""
    pk, sk = small_keys
    ref = RefPaillier(sk.p, sk.q)
    rs = [sk.p, sk.q, 3 * sk.q, sk.q * sk.q, (sk.q - 1) * sk.p]
    ms = [5, 0, pk.n - 1, 7, 11]
    expected = [ref.encrypt(m, r) for m, r in zip(ms, rs)]
    assert ciphertext_ints(encrypt_with_r(pk, objects(ms), rs)) == expected
    assert ciphertext_ints(encrypt_with_r(sk, objects(ms), rs)) == expected


def test_int64_and_uint64_plaintext_arrays(small_keys):
    pk, sk = small_keys
    ref = RefPaillier(sk.p, sk.q)
    i64 = np.array([[0, 1, 2**63 - 1], [12345, 2**40, 7]], dtype=np.int64)
    u64 = np.array([2**64 - 1, 2**63, 0, 99], dtype=np.uint64)
    for key in (pk, sk):
        a = key.encrypt(i64)
        assert a.shape == (2, 3)
        assert [ref.decrypt(c) for c in ciphertext_ints(a)] == [int(v) for v in i64.ravel()]
        b = key.encrypt(u64)
        assert [ref.decrypt(c) for c in ciphertext_ints(b)] == [int(v) for v in u64]
        assert dec(sk, b) == [int(v) for v in u64]


# ---- homomorphic operations against the reference --------------------------------------------


@pytest.mark.parametrize("seed", [10, 11])
def test_ciphertext_addition(keyset, seed):
    pk, sk, ref, size = keyset
    rng = random.Random(seed)
    m1 = plaintexts(rng, pk.n, size)
    m2 = plaintexts(rng, pk.n, size)[::-1]
    c1, c2 = ref_array(ref, rng, m1), ref_array(ref, rng, m2)
    a, b = array_from_ints(pk, c1), array_from_ints(pk, c2)
    total = a + b
    assert ciphertext_ints(total) == [ref.add(x, y) for x, y in zip(c1, c2)]
    assert dec(sk, total) == [(x + y) % pk.n for x, y in zip(m1, m2)]
    assert ciphertext_ints(b.add(a, threads=2)) == ciphertext_ints(total)
    assert dec(sk, total + a) == [(2 * x + y) % pk.n for x, y in zip(m1, m2)]


@pytest.mark.parametrize("seed", [12])
def test_plaintext_addition(keyset, seed):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(seed)
    ms = plaintexts(rng, n, size)
    cs = ref_array(ref, rng, ms)
    a = array_from_ints(pk, cs)

    def check(result, ks):
        assert ciphertext_ints(result) == [ref.add_plain(c, k) for c, k in zip(cs, ks)]
        assert dec(sk, result) == [(m + k) % n for m, k in zip(ms, ks)]

    for k in {0, 1, 5, min(n - 1, 2**63 - 1), min(n - 1, 2**63 + 5), min(n - 1, 2**64 + 5), n - 1}:
        check(a + k, [k] * size)
        check(k + a, [k] * size)
    bound = min(n, 2**63)
    ks = [rng.randrange(bound) for _ in ms]
    check(a + np.array(ks, dtype=np.int64), ks)
    ku = [rng.randrange(min(n, 2**64)) for _ in ms]
    check(a + np.array(ku, dtype=np.uint64), ku)
    kb = [rng.randrange(n) for _ in ms]
    check(a + objects(kb), kb)
    # broadcasting a row over a 2-D array
    a2 = a.reshape(2, size // 2)
    row = [rng.randrange(bound) for _ in range(size // 2)]
    check(a2 + np.array(row), row * 2)


@pytest.mark.parametrize("seed", [13])
def test_scalar_multiplication_by_ints(keyset, seed):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(seed)
    ms = plaintexts(rng, n, size)
    cs = ref_array(ref, rng, ms)
    a = array_from_ints(pk, cs)
    scalars = [0, 1, -1, 2, -2, 7, -12345, 2**63 - 1, -(2**63), 2**64 + 3, -(2**64 + 3),
               n - 1, -(n - 1), rng.randrange(n), -rng.randrange(n), np.int64(-9), np.uint64(2**64 - 1)]
    for k in scalars:
        kk = int(k)
        product = a * k
        assert dec(sk, product) == [kk * m % n for m in ms], k
        # fastpaillier reduces |k| mod n for raw arrays; the ciphertext is c^(sign * (|k| mod n)).
        reduced = (abs(kk) % n) * (-1 if kk < 0 else 1)
        assert ciphertext_ints(product) == [ref.mul(c, reduced) for c in cs], k
        assert ciphertext_ints(k * a) == ciphertext_ints(product)
    # a scalar >= n only matters mod n
    big = 3 * n + 5
    assert dec(sk, a * big) == [5 * m % n for m in ms]
    assert dec(sk, a * -big) == [-5 * m % n for m in ms]


@pytest.mark.parametrize("seed", [14])
def test_scalar_multiplication_per_element(keyset, seed):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(seed)
    ms = plaintexts(rng, n, size)
    cs = ref_array(ref, rng, ms)
    a = array_from_ints(pk, cs)
    bound = min(n - 1, 2**63 - 1)

    def check(result, ks):
        assert ciphertext_ints(result) == [ref.mul(c, k) for c, k in zip(cs, ks)]
        assert dec(sk, result) == [k * m % n for m, k in zip(ms, ks)]

    ks = [rng.randint(-bound, bound) for _ in ms]
    ks[0], ks[1], ks[2] = 0, -1, 1
    if n > 2**64:
        ks[3], ks[4] = -(2**63), 2**63 - 1  # int64 extremes (the magnitude 2^63 needs care)
    check(a * np.array(ks, dtype=np.int64), ks)
    for dtype in (np.int8, np.int16, np.int32):
        small = [rng.randint(-100, 100) for _ in ms]
        check(a.multiply(np.array(small, dtype=dtype)), small)
    ku = [rng.randrange(min(n, 2**64)) for _ in ms]
    check(a * np.array(ku, dtype=np.uint64), ku)
    # broadcasting a row of scalars over a 2-D array
    a2 = a.reshape(2, size // 2)
    row = [rng.randint(-1000, 1000) for _ in range(size // 2)]
    check(a2 * np.array(row, dtype=np.int64), row * 2)
    check(a2 * np.array(row, dtype=np.int64).reshape(1, -1), row * 2)


@pytest.mark.parametrize("seed", [15])
def test_negation_and_subtraction(keyset, seed):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(seed)
    m1, m2 = plaintexts(rng, n, size), [rng.randrange(n) for _ in range(size)]
    c1, c2 = ref_array(ref, rng, m1), ref_array(ref, rng, m2)
    a, b = array_from_ints(pk, c1), array_from_ints(pk, c2)

    neg = -a
    assert ciphertext_ints(neg) == [ref.neg(c) for c in c1]
    assert dec(sk, neg) == [(-m) % n for m in m1]
    assert ciphertext_ints(-neg) == c1
    assert ciphertext_ints(a.negate(threads=2)) == ciphertext_ints(neg)

    diff = a - b
    assert ciphertext_ints(diff) == [ref.add(x, ref.neg(y)) for x, y in zip(c1, c2)]
    assert dec(sk, diff) == [(x - y) % n for x, y in zip(m1, m2)]

    k = rng.randrange(min(n, 2**63))
    assert ciphertext_ints(a - k) == [ref.add_plain(c, -k) for c in c1]
    assert dec(sk, a - k) == [(m - k) % n for m in m1]
    assert ciphertext_ints(k - a) == [ref.add_plain(ref.neg(c), k) for c in c1]
    assert dec(sk, k - a) == [(k - m) % n for m in m1]
    ks = [rng.randrange(n) for _ in range(size)]
    assert dec(sk, a - objects(ks)) == [(m - x) % n for m, x in zip(m1, ks)]
    assert dec(sk, a.negate().add(objects(ks))) == [(x - m) % n for m, x in zip(m1, ks)]
    assert dec(sk, a - a) == [0] * size


@pytest.mark.parametrize("shape", [(24,), (4, 6), (2, 3, 4), (3, 1, 8)])
def test_sum_over_axes(keyset, shape):
    pk, sk, ref, size = keyset
    n = pk.n
    count = int(np.prod(shape))
    rng = random.Random(str(shape))
    ms = [rng.randrange(n) for _ in range(count)]
    cs = ref_array(ref, rng, ms)
    a = array_from_ints(pk, cs, shape)
    m_arr, c_arr = objects(ms, shape), objects(cs, shape)
    for axis in [None] + list(range(-len(shape), len(shape))):
        s = a.sum(axis=axis)
        # numpy's own reductions over exact Python ints are the reference here
        exp_shape = np.sum(np.zeros(shape), axis=axis).shape
        exp_m = [int(v) % n for v in np.ravel(np.sum(m_arr, axis=axis))]
        exp_c = [int(v) % ref.nsq for v in np.ravel(np.multiply.reduce(c_arr, axis=axis))]
        assert s.shape == exp_shape, axis
        assert ciphertext_ints(s) == exp_c, axis
        assert dec(sk, s) == exp_m, axis
        assert (sk.decrypt_limbs(s).shape[0]) == max(1, int(np.prod(exp_shape)))


def test_sum_over_empty_axis_is_encryption_of_zero(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.zeros((0, 3), dtype=np.int64))
    s = a.sum(axis=0)
    assert s.shape == (3,)
    assert dec(sk, s) == [0, 0, 0]
    assert RefPaillier(sk.p, sk.q).decrypt(ciphertext_ints(s)[0]) == 0
    assert dec(sk, a.sum(axis=1)) == []
    total = pk.encrypt(np.zeros(0, dtype=np.int64)).sum()
    assert total.shape == () and ciphertext_ints(total) == [1] and sk.decrypt(total).tolist() == 0


@pytest.mark.parametrize("arrays", [1, 2, 5])
def test_sum_arrays(keyset, arrays):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(arrays)
    ms = [[rng.randrange(n) for _ in range(size)] for _ in range(arrays)]
    cs = [ref_array(ref, rng, row) for row in ms]
    encs = [array_from_ints(pk, row, shape=(2, size // 2)) for row in cs]
    total = fp.sum_arrays(encs)
    assert total.shape == (2, size // 2)
    expected_c = []
    for i in range(size):
        prod = 1
        for row in cs:
            prod = prod * row[i] % ref.nsq
        expected_c.append(prod)
    assert ciphertext_ints(total) == expected_c
    assert dec(sk, total) == [sum(row[i] for row in ms) % n for i in range(size)]
    assert ciphertext_ints(fp.sum_arrays(encs[::-1], threads=2)) == expected_c


def test_numpy_array_on_the_left_of_an_operator(small_keys):
    """ndarray (op) EncryptedArray must mean the same as the documented `plaintext - a` etc.

    numpy's own operators must defer to EncryptedArray's reflected ones; otherwise numpy
    broadcasts element by element and returns an object ndarray of full EncryptedArrays.
    """
    pk, sk = small_keys
    n = pk.n
    a = pk.encrypt(np.array([1, 2, 3]))
    k = np.array([10, 20, 30])
    # Python lists and numpy scalars already work:
    assert sk.decrypt([10, 20, 30] - a).tolist() == [9, 18, 27]
    assert sk.decrypt(np.int64(4) * a).tolist() == [4, 8, 12]
    assert sk.decrypt(sum([a, a, a])).tolist() == [3, 6, 9]
    # ndarrays on the left:
    results = {"k + a": k + a, "k - a": k - a, "k * a": k * a, "-k * a": -k * a}
    for name, value in results.items():
        assert isinstance(value, fp.EncryptedArray), f"{name} gave {type(value).__name__}"
    assert sk.decrypt(results["k + a"]).tolist() == [11, 22, 33]
    assert sk.decrypt(results["k - a"]).tolist() == [9, 18, 27]
    assert sk.decrypt(results["k * a"]).tolist() == [10, 40, 90]
    assert dec(sk, results["-k * a"]) == [(-10) % n, (-40) % n, (-90) % n]


def test_plaintext_operand_that_does_not_broadcast_raises_library_error(small_keys):
    """Scalars of the wrong shape raise ShapeMismatchError; plaintext operands must do the same."""
    pk, sk = small_keys
    a = pk.encrypt(np.array([1, 2, 3]))
    bad = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(fp.ShapeMismatchError):
        a * bad
    with pytest.raises(fp.ShapeMismatchError):
        a + bad
    with pytest.raises(fp.ShapeMismatchError):
        a - bad


def test_python_list_plaintexts_above_int64(small_keys):
    """A list of valid plaintexts mixing values in [2^63, 2^64) with small ones.

    numpy turns [2**63, 5] into a float64 array (while [2**64, 5] becomes an object array), so
    a list of ints that are all valid plaintexts must not be refused as "real values".
    """
    pk, sk = small_keys
    assert dec(sk, pk.encrypt([2**64, 5])) == [2**64, 5]
    assert dec(sk, pk.encrypt([2**63])) == [2**63]
    assert dec(sk, pk.encrypt([2**63, 5])) == [2**63, 5]
    a = pk.encrypt([1, 2])
    assert dec(sk, a + [2**63, 5]) == [2**63 + 1, 7]


# ---- batched == element by element; threads ------------------------------------------------


def test_batch_equals_single_elements(keyset):
    pk, sk, ref, size = keyset
    n = pk.n
    rng = random.Random(21)
    size = min(size, 8)
    ms = plaintexts(rng, n, size)
    m2 = [rng.randrange(n) for _ in range(size)]
    rs = [ref.random_unit(rng) for _ in range(size)]
    ks = [rng.randint(-min(n - 1, 2**40), min(n - 1, 2**40)) for _ in range(size)]
    adds = [rng.randrange(min(n, 2**63)) for _ in range(size)]
    for key in (pk, sk):
        batch = encrypt_with_r(key, objects(ms), rs)
        singles = [encrypt_with_r(key, objects([m]), [r]) for m, r in zip(ms, rs)]
        assert ciphertext_ints(batch) == [ciphertext_ints(s)[0] for s in singles]
        scalar_singles = [encrypt_with_r(key, m, r) for m, r in zip(ms, rs)]
        assert [s.shape for s in scalar_singles] == [()] * size
        assert ciphertext_ints(batch) == [ciphertext_ints(s)[0] for s in scalar_singles]

    a = encrypt_with_r(pk, objects(ms), rs)
    b = pk.encrypt(objects(m2))
    a1 = [array_from_ints(pk, [c]) for c in ciphertext_ints(a)]
    b1 = [array_from_ints(pk, [c]) for c in ciphertext_ints(b)]
    ops = [
        ("add", lambda x, y, i: x + y, a + b),
        ("add plain", lambda x, y, i: x + np.array([adds[i]]), a + np.array(adds)),
        ("mul", lambda x, y, i: x * ks[i], a * np.array(ks)),
        ("mul array", lambda x, y, i: x * np.array([ks[i]]), a * np.array(ks)),
        ("neg", lambda x, y, i: -x, -a),
        ("sub", lambda x, y, i: x - y, a - b),
        ("sub plain", lambda x, y, i: x - adds[i], a - np.array(adds)),
        ("rsub plain", lambda x, y, i: adds[i] - x, (-a) + np.array(adds)),
        ("sum_arrays", lambda x, y, i: fp.sum_arrays([x, y, x]), fp.sum_arrays([a, b, a])),
    ]
    for name, single, batched in ops:
        got = [ciphertext_ints(single(x, y, i))[0] for i, (x, y) in enumerate(zip(a1, b1))]
        assert got == ciphertext_ints(batched), name
    assert dec(sk, a * np.array(ks)) == [k * m % n for m, k in zip(ms, ks)]


def test_sum_of_batch_equals_chained_single_additions(small_keys):
    pk, sk = small_keys
    a = pk.encrypt(np.arange(10, 20).reshape(2, 5))
    rows = [array_from_ints(pk, [c]) for c in ciphertext_ints(a)]
    chained = rows[0]
    for r in rows[1:]:
        chained = chained + r
    assert ciphertext_ints(a.sum()) == ciphertext_ints(chained)
    col0 = rows[0] + rows[5]
    assert ciphertext_ints(a.sum(axis=0))[0] == ciphertext_ints(col0)[0]
    assert sk.decrypt(a.sum()).tolist() == sum(range(10, 20))


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_threads_give_identical_deterministic_results(small_keys, threads):
    """Enough rows that every kernel really splits (mul kernels need 64 rows per thread)."""
    pk, sk = small_keys
    ref = RefPaillier(sk.p, sk.q)
    rng = random.Random(threads)
    N = 300
    ms = [rng.randrange(pk.n) for _ in range(N)]
    rs = [ref.random_unit(rng) for _ in range(N)]
    ks = np.array([rng.randint(-(2**62), 2**62) for _ in range(N)], dtype=np.int64)
    adds = np.array([rng.randrange(2**63) for _ in range(N)], dtype=np.int64)

    def run(t):
        a = encrypt_with_r(pk, objects(ms), rs, threads=t)
        a_crt = encrypt_with_r(sk, objects(ms), rs, threads=t)
        b = a.multiply(-3, threads=t)
        grid = a.reshape(150, 2)
        out = {
            "enc": a, "enc_crt": a_crt, "mul_int": b,
            "mul_arr": a.multiply(ks, threads=t),
            "add": a.add(b, threads=t), "add_plain": a.add(adds, threads=t),
            "neg": a.negate(threads=t), "sub": a.subtract(b, threads=t),
            "sub_plain": a.subtract(adds, threads=t),
            "sum_ax1": grid.sum(axis=1, threads=t), "sum_ax0": a.reshape(2, 150).sum(axis=0, threads=t),
            "sum_all": a.sum(threads=t), "sum_arrays": fp.sum_arrays([a, b, a_crt], threads=t),
        }
        decrypted = sk.decrypt_limbs(out["sum_arrays"], threads=t)
        return {k: ciphertext_ints(v) for k, v in out.items()}, _limbs.rows_to_ints(decrypted)

    one, dec_one = run(1)
    many, dec_many = run(threads)
    assert one.keys() == many.keys()
    for k in one:
        assert one[k] == many[k], k
    assert dec_one == dec_many == [(m - 3 * m + m) % pk.n for m in ms]
    assert one["enc"] == [ref.encrypt(m, r) for m, r in zip(ms, rs)]
    assert one["enc_crt"] == one["enc"]
    assert one["mul_arr"] == [ref.mul(c, int(k)) for c, k in zip(one["enc"], ks)]
    assert one["sum_ax1"] == [ref.add(one["enc"][2 * i], one["enc"][2 * i + 1]) for i in range(150)]
    assert one["sum_ax0"] == [ref.add(one["enc"][i], one["enc"][150 + i]) for i in range(150)]


def test_default_thread_setting_does_not_change_results(small_keys):
    pk, sk = small_keys
    ms = list(range(200))
    rs = [3 + 2 * i for i in range(200)]
    old = fp.get_num_threads()
    try:
        fp.set_num_threads(1)
        one = ciphertext_ints(encrypt_with_r(sk, np.array(ms), rs).sum())
        fp.set_num_threads(4)
        four = ciphertext_ints(encrypt_with_r(sk, np.array(ms), rs).sum())
    finally:
        fp.set_num_threads(old)
    assert one == four
    assert sk.decrypt(array_from_ints(pk, one, shape=())).tolist() == sum(ms)


# ---- randomness ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_random_encryptions_of_the_same_plaintext_differ(keyset_big, threads):
    pk, sk, ref, size = keyset_big
    m = 42 % pk.n
    count = 64 if size > 6 else 8
    seen = []
    for key in (pk, sk, pk, sk):
        enc = key.encrypt(np.full(count, m), threads=threads)
        seen += ciphertext_ints(enc)
        assert sk.decrypt(enc).tolist() == [m] * count
    assert len(set(seen)) == len(seen), "two encryptions used the same randomness"
    assert ref.encrypt(m, 1) not in seen
    rs = {ref.recover_r(c, m) for c in seen}
    assert len(rs) == len(seen) and 1 not in rs


def test_crt_obfuscator_not_degenerate_mod_each_prime(small_keys):
    """The CRT obfuscator's r is random mod p AND mod q (a constant half would still look random)."""
    pk, sk = small_keys
    ref = RefPaillier(sk.p, sk.q)
    rs = [ref.recover_r(c, 0) for c in ciphertext_ints(sk.encrypt(np.zeros(40, dtype=np.int64), threads=2))]
    assert len({r % sk.p for r in rs}) == 40
    assert len({r % sk.q for r in rs}) == 40
    rs_pub = [ref.recover_r(c, 0) for c in ciphertext_ints(pk.encrypt(np.zeros(40, dtype=np.int64), threads=2))]
    assert len({r % sk.p for r in rs_pub}) == 40 and len({r % sk.q for r in rs_pub}) == 40


@pytest.mark.parametrize("which", ["none", "public", "private"])
def test_rerandomize_changes_ciphertexts_not_plaintexts(keyset_big, which):
    pk, sk, ref, size = keyset_big
    rng = random.Random(31)
    ms = plaintexts(rng, pk.n, size)
    a = array_from_ints(pk, ref_array(ref, rng, ms), shape=(2, size // 2))
    a = a + a  # an operation result (not rerandomized by itself)
    key = {"none": None, "public": pk, "private": sk}[which]
    b = a.rerandomize(key) if key is not None else a.rerandomize()
    c = a.rerandomize(key, threads=2)
    assert b.shape == a.shape and b.codec is None and b.summands == a.summands
    old, new, new2 = ciphertext_ints(a), ciphertext_ints(b), ciphertext_ints(c)
    assert all(x != y for x, y in zip(old, new))
    assert len(set(old) | set(new) | set(new2)) == 3 * size
    expected = [2 * m % pk.n for m in ms]
    assert dec(sk, b) == expected and dec(sk, c) == expected
    assert [ref.decrypt(x) for x in new] == expected
    # the factor is an n-th residue (an encryption of 0 with a unit r)
    for x, y in zip(old, new):
        ref.recover_r(y * ref.neg(x) % ref.nsq, 0)


def test_private_and_public_encryptions_add(keyset):
    pk, sk, ref, size = keyset
    rng = random.Random(41)
    m1 = plaintexts(rng, pk.n, size)
    m2 = [rng.randrange(pk.n) for _ in range(size)]
    a = sk.encrypt(objects(m1))
    b = pk.encrypt(objects(m2))
    total = a + b
    expected = [(x + y) % pk.n for x, y in zip(m1, m2)]
    assert dec(sk, total) == expected
    assert [ref.decrypt(c) for c in ciphertext_ints(total)] == expected
    assert ciphertext_ints(total) == [ref.add(x, y) for x, y in zip(ciphertext_ints(a), ciphertext_ints(b))]
    assert dec(sk, fp.sum_arrays([a, b, a.rerandomize(sk), b.rerandomize()])) == [2 * e % pk.n for e in expected]


# ---- larger keys -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[3072, 4096])
def big_keys(request):
    pk, sk = fp.generate_keypair(request.param)
    return pk, sk, RefPaillier(sk.p, sk.q)


def test_large_keys_work(big_keys):
    pk, sk, ref = big_keys
    bits = pk.bits
    assert bits in (3072, 4096) and sk.p.bit_length() == sk.q.bit_length() == bits // 2
    assert pk.n_limbs == bits // 64 and pk.nsq_limbs == bits // 32
    rng = random.Random(bits)
    ms = [0, 1, pk.n - 1, rng.randrange(pk.n)]
    a = pk.encrypt(objects(ms))
    b = sk.encrypt(objects(ms[::-1]))
    assert [ref.decrypt(c) for c in ciphertext_ints(a)] == ms
    assert [ref.decrypt(c) for c in ciphertext_ints(b)] == ms[::-1]
    assert dec(sk, a) == ms
    total = (a + b) * -3 + 7
    assert dec(sk, total) == [(-3 * (x + y) + 7) % pk.n for x, y in zip(ms, ms[::-1])]
    rs = [ref.random_unit(rng) for _ in ms]
    expected = [ref.encrypt(m, r) for m, r in zip(ms, rs)]
    assert ciphertext_ints(encrypt_with_r(pk, objects(ms), rs)) == expected
    assert ciphertext_ints(encrypt_with_r(sk, objects(ms), rs)) == expected
    small = sk.encrypt(np.array([5, 6, 7, 8]).reshape(2, 2))
    assert sk.decrypt(small.sum(axis=0)).tolist() == [12, 14]
    assert dec(sk, small.rerandomize(sk)) == [5, 6, 7, 8]
