"""Ciphertexts held in Montgomery form (c R mod n^2) give exactly the canonical results.

On the ifma, avx2, mulx and portable kernel tiers, encryptions and ciphertext sums keep their rows in
Montgomery form (R = 2^(52 D) for ifma and avx2, 2^(64 L) for the 64-bit tiers, fixed per key when it is
made); `ciphertexts`, to_bytes() and decryption see canonical values.  Every operation is
cross-checked against gmpy2 on the canonical ciphertexts and across every tier the CPU has,
at 256 (insecure), 2048, 3072 and 4096 bits.
"""

from __future__ import annotations

import os
import subprocess
import sys

import gmpy2
import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.encrypted_array import sum_arrays
from fastpaillier.obfuscator_pool import ObfuscatorPool
from fastpaillier.testing import array_from_ints, ciphertext_ints

CPU_HAS_IFMA = "avx512ifma" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False


DEFAULT_TIER = fp.kernel_tier()  # read at collection, before any test switches tiers
SUPPORTED_TIERS = fp.available_kernel_tiers()


@pytest.fixture(scope="module")
def big_keys():
    """One 3072-bit and one 4096-bit key pair (generated once for the module)."""
    return {bits: fp.generate_keypair(bits) for bits in (3072, 4096)}


@pytest.fixture(params=[256, 2048, 3072, 4096])
def keys(request, small_keys, keys_2048, big_keys):
    if request.param == 256:
        return small_keys
    if request.param == 2048:
        return keys_2048
    return big_keys[request.param]


def _r(pk) -> int:
    return 1 << pk._ctx.form_r_bits


def _mulmod(pk, *arrays) -> list[int]:
    """gmpy2 reference: the row-wise product of canonical ciphertexts mod n^2."""
    nsq = gmpy2.mpz(pk.nsquare)
    out = [gmpy2.mpz(1)] * len(ciphertext_ints(arrays[0]))
    for a in arrays:
        out = [x * gmpy2.mpz(c) % nsq for x, c in zip(out, ciphertext_ints(a))]
    return [int(x) for x in out]


def _expect_mont(pk) -> bool:
    """Results stay in Montgomery form when the active tier computes in the key's form."""
    return pk._ctx.mont_native()


def test_mont_supported_for_usual_sizes(keys):
    pk, _ = keys
    assert pk._ctx.mont_supported == pk._mont_ok
    assert pk._ctx.mont_supported
    assert pk._ctx.mont_native() == (DEFAULT_TIER != "gmp")


def test_form_follows_the_tier_the_key_was_made_on(small_primes, tier):
    pk = fp.PrivateKey(*small_primes, insecure=True).public_key
    nsq_bits = pk.nsquare.bit_length()
    if tier in ("ifma", "avx2"):  # the radix-2^52 lane kernels
        assert pk._ctx.form_r_bits == 52 * ((nsq_bits + 2 + 51) // 52)
    else:
        assert pk._ctx.form_r_bits == 64 * (((nsq_bits + 63) // 64 + 3) // 4 * 4)
    assert pk._ctx.mont_native() == (tier != "gmp")
    for other in SUPPORTED_TIERS:  # other tiers compute the same values, canonical where not native
        _native.set_kernel_tier(other)
        x = np.arange(5, dtype=np.int64)
        enc = pk.encrypt(x)
        assert enc._mont == pk._ctx.mont_native()
        assert ciphertext_ints(enc + enc) == _mulmod(pk, enc, enc)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 17])
def test_product_kernel_every_form_against_python(keys, tier, count):
    pk, _ = keys
    nsq, R = pk.nsquare, _r(pk)
    rng = np.random.default_rng(count)
    values = [[int.from_bytes(rng.bytes(pk.nsq_limbs * 8), "little") % nsq or 1 for _ in range(count)]
              for _ in range(3)]
    values[0][0], values[1][0] = nsq - 1, nsq - 1  # extremes
    if count > 1:
        values[0][1], values[1][1], values[2][1] = 1, nsq - 2, R % nsq
    rows = [_limbs.ints_to_rows(v, pk.nsq_limbs) for v in values]
    for forms in [(0,), (1,), (0, 0), (1, 1), (0, 1), (1, 0, 1), (0, 0, 0), (1, 1, 1)]:
        for out_form in (0, 1):
            got = _limbs.rows_to_ints(_native.mont_product_of_arrays(
                pk._ctx, rows[:len(forms)], list(forms), out_form, 2))
            want = []
            for i in range(count):
                x = pow(R, out_form, nsq)
                for k, f in enumerate(forms):
                    x = x * values[k][i] * pow(R, -f, nsq) % nsq
                want.append(x)
            assert got == want, (forms, out_form)
    for group in (1, 2, 5):
        for form in (0, 1):
            got = _limbs.rows_to_ints(_native.mont_product_of_groups(pk._ctx, rows[0], form, group, 1, 2))
            want = []
            for g in range(count // group):
                x = R % nsq
                for j in range(group):
                    x = x * values[0][g * group + j] * pow(R, -form, nsq) % nsq
                want.append(x)
            assert got == want


def test_round_trip_of_edge_values(keys):
    pk, sk = keys
    nsq = pk.nsquare
    p, q = sk.p, sk.q
    edge = [1, 2, 3, nsq - 1, nsq - 2, p * p, q * q, p * q, nsq - p, (nsq - 1) // 3, _r(pk) % nsq]
    rows = _limbs.ints_to_rows(edge, pk.nsq_limbs)
    for name in SUPPORTED_TIERS:
        _native.set_kernel_tier(name)
        mont = pk._convert(rows, False, True, 1)
        assert _limbs.rows_to_ints(mont) == [x * _r(pk) % nsq for x in edge]
        assert np.array_equal(pk._convert(mont, True, False, 2), rows)


def test_encryption_returns_montgomery_form_and_canonical_views(keys):
    pk, sk = keys
    x = np.arange(19, dtype=np.int64) * 1000003
    for key in (pk, sk):
        enc = key.encrypt(x)
        assert enc._mont == _expect_mont(pk)
        assert all(0 < c < pk.nsquare for c in ciphertext_ints(enc))
        assert np.array_equal(sk.decrypt(enc), x)
        # the canonical rows are proper Paillier ciphertexts: gmpy2 decrypts them
        lam = (sk.p - 1) * (sk.q - 1)
        nsq, n = gmpy2.mpz(pk.nsquare), gmpy2.mpz(pk.n)
        mu = gmpy2.invert((gmpy2.powmod(n + 1, lam, nsq) - 1) // n, n)
        assert [int((gmpy2.powmod(c, lam, nsq) - 1) // n * mu % n) for c in ciphertext_ints(enc)] == x.tolist()


def test_every_operation_matches_gmpy2_and_the_portable_path(keys):
    pk, sk = keys
    n, nsq = pk.n, pk.nsquare
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**40, size=(3, 5), dtype=np.int64)
    y = rng.integers(0, 2**40, size=(3, 5), dtype=np.int64)
    z = rng.integers(0, 2**40, size=(3, 5), dtype=np.int64)
    a, b, c = sk.encrypt(x), pk.encrypt(y), sk.encrypt(z)
    assert a._mont == b._mont == _expect_mont(pk)

    results = {}
    for ifma in SUPPORTED_TIERS:
        _native.set_kernel_tier(ifma)
        r = {
            "a+b": a + b, "b+a": b.add(a, threads=2), "a-b": a - b, "a+5": a + 5, "a-y": a - y,
            "5-a": 5 - a, "a*k": a * 3, "a*arr": a * (y % 1000), "-a": -a, "sum": a.sum(),
            "sum0": a.sum(axis=0), "sum1": a.sum(axis=1, threads=2), "arrays": sum_arrays([a, b, c]),
            "reshape": (a + b).reshape(5, 3), "chain": ((a + b) + c) + a,
        }
        results[ifma] = {k: ciphertext_ints(v) for k, v in r.items()}
        for key, v in r.items():
            assert all(0 < ct < nsq for ct in ciphertext_ints(v)), key
        assert r["a+b"]._mont == _expect_mont(pk)
        # decryptions
        assert np.array_equal(sk.decrypt(r["a+b"]), x + y)
        assert np.array_equal(sk.decrypt(r["a+5"]), x + 5)
        assert _limbs.rows_to_ints(sk.decrypt_limbs(r["a-b"])) == [int(v) % n for v in (x - y).ravel()]
        assert np.array_equal(sk.decrypt(r["a*k"]), x * 3)
        assert np.array_equal(sk.decrypt(r["sum"]), x.sum())
        assert np.array_equal(sk.decrypt(r["sum0"]), x.sum(axis=0))
        assert np.array_equal(sk.decrypt(r["sum1"]), x.sum(axis=1))
        assert np.array_equal(sk.decrypt(r["arrays"]), x + y + z)
        assert np.array_equal(sk.decrypt(r["chain"]), 2 * x + y + z)
        assert _limbs.rows_to_ints(sk.decrypt_limbs(r["-a"])) == [(-int(v)) % n for v in x.ravel()]
        assert _limbs.rows_to_ints(sk.decrypt_limbs(r["5-a"])) == [(5 - int(v)) % n for v in x.ravel()]
        # deterministic ciphertexts against gmpy2 on the canonical inputs
        assert results[ifma]["a+b"] == _mulmod(pk, a, b) == results[ifma]["b+a"]
        assert results[ifma]["arrays"] == _mulmod(pk, a, b, c)
        ca = ciphertext_ints(a)
        assert results[ifma]["a*k"] == [pow(v, 3, nsq) for v in ca]
        assert results[ifma]["-a"] == [pow(v, -1, nsq) for v in ca]
        assert results[ifma]["a+5"] == [v * (1 + 5 * n) % nsq for v in ca]
        prod = 1
        for v in ca:
            prod = prod * v % nsq
        assert results[ifma]["sum"] == [prod]
    first = results[SUPPORTED_TIERS[0]]
    assert all(r == first for r in results.values())  # every tier gives the same canonical ciphertexts


def test_serialization_gives_identical_canonical_bytes(keys):
    pk, sk = keys
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    enc = sk.encrypt(x) + pk.encrypt(x)
    canonical = fp.EncryptedArray(pk, enc.ciphertexts, enc.shape, summands=enc.summands)
    assert not canonical._mont
    assert enc.to_bytes() == canonical.to_bytes()
    back = fp.EncryptedArray.from_bytes(enc.to_bytes(), pk)
    assert back.to_bytes() == enc.to_bytes()
    assert np.array_equal(back.ciphertexts, enc.ciphertexts)
    assert np.array_equal(sk.decrypt(back), 2 * x)
    # further sums of the parsed (canonical) and the Montgomery array agree
    assert ciphertext_ints(back + enc) == ciphertext_ints(enc + enc) == _mulmod(pk, enc, enc)


def test_mixing_forms(keys, tier):
    pk, sk = keys
    x = np.arange(10, dtype=np.int64) + 3
    _native.set_kernel_tier(DEFAULT_TIER)
    mont = sk.encrypt(x)
    canonical = fp.EncryptedArray(pk, sk.encrypt(2 * x).ciphertexts)
    edge = array_from_ints(pk, [1, pk.nsquare - 1] * 5)  # valid ring elements at the ends of the range
    _native.set_kernel_tier(tier)
    for left, right in ((mont, canonical), (canonical, mont), (canonical, canonical), (mont, mont),
                        (mont, edge), (edge, edge)):
        got = left + right
        assert ciphertext_ints(got) == _mulmod(pk, left, right)
        assert ciphertext_ints(sum_arrays([left, right, mont])) == _mulmod(pk, left, right, mont)
    assert np.array_equal(sk.decrypt(mont + canonical), 3 * x)


@pytest.mark.parametrize("count", [63, 64, 65, 200, 1000])
def test_sum_over_all_values_split_into_lanes(small_keys, count):
    pk, sk = small_keys
    x = np.arange(count, dtype=np.int64) * 7 + 1
    enc = sk.encrypt(x)
    for form in (enc, fp.EncryptedArray(pk, enc.ciphertexts)):
        total = form.sum()
        assert ciphertext_ints(total) == [int(np.prod([gmpy2.mpz(c) for c in ciphertext_ints(enc)]) % pk.nsquare)]
        assert sk.decrypt(total) == x.sum()
        assert sk.decrypt(form.reshape(5, -1).sum(axis=1)).tolist() == x.reshape(5, -1).sum(axis=1).tolist() \
            if count % 5 == 0 else True


def test_rerandomize_keeps_the_form_and_the_plaintext(keys):
    pk, sk = keys
    x = np.arange(9, dtype=np.int64)
    enc = pk.encrypt(x) + pk.encrypt(x)
    for key in (None, pk, sk):
        again = enc.rerandomize(key)
        assert again._mont == enc._mont
        assert np.array_equal(sk.decrypt(again), 2 * x)
        assert set(ciphertext_ints(again)).isdisjoint(ciphertext_ints(enc))


def test_pool_converts_between_forms(small_primes):
    sk = fp.PrivateKey(*small_primes, insecure=True)
    pk = sk.public_key
    pool = ObfuscatorPool(pk)
    pool.fill(5, sk, threads=1)          # Montgomery form where the tier computes in it
    _native.set_kernel_tier("gmp")
    pool.fill(5, None, threads=1)        # canonical
    _native.set_kernel_tier(DEFAULT_TIER)
    both = pool.take(10)                 # canonical on request
    assert not sk.decrypt(fp.EncryptedArray(pk, both)).any()
    # encryption drains the pool in whichever form is current, on every tier
    for fill_tier, use_tier in (("gmp", DEFAULT_TIER), (DEFAULT_TIER, "gmp"), *((t, t) for t in SUPPORTED_TIERS)):
        _native.set_kernel_tier(fill_tier)
        pk.precompute_obfuscators(6, background=False)
        _native.set_kernel_tier(use_tier)
        x = np.arange(8, dtype=np.int64) + 11  # 6 pooled + 2 fresh
        enc = pk.encrypt(x)
        assert pk.obfuscators_available == 0
        assert enc._mont == _expect_mont(pk)
        assert np.array_equal(sk.decrypt(enc), x)
        assert np.array_equal(sk.decrypt(enc + enc), 2 * x)


def test_djn_encryption_and_pool_in_montgomery_form(small_primes):
    sk = fp.PrivateKey(*small_primes, insecure=True).with_djn()
    pk = sk.public_key
    x = np.arange(20, dtype=np.int64)
    sk.precompute_obfuscators(12, background=False)
    for key in (sk, pk):
        enc = key.encrypt(x)
        assert enc._mont == _expect_mont(pk)
        assert np.array_equal(sk.decrypt(enc + enc.rerandomize()), 2 * x)


def test_codec_arrays(keys_2048):
    pk, sk = keys_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    v = np.linspace(-1, 1, 300).astype(np.float32)
    enc = codec.encrypt(v, sk)
    total = sum_arrays([enc, codec.encrypt(v, pk), enc])
    assert total._mont == _expect_mont(pk)
    assert np.abs(sk.decrypt(total) - 3 * v).max() <= codec.max_rounding_error(3)
    back = fp.EncryptedArray.from_bytes(total.to_bytes(), pk)
    assert np.array_equal(sk.decrypt(back), sk.decrypt(total))
    fixed = fp.FixedPointCodec(pk, frac_bits=16)
    e = fixed.encrypt(np.array([1.5, -2.25]), sk)
    assert np.allclose(sk.decrypt(e + e - e * 3 + 1.0), [1.5 * -1 + 1.0, -2.25 * -1 + 1.0])


def test_gmp_tier_keeps_everything_canonical():
    code = ("import numpy as np, fastpaillier as fp\n"
            "pk, sk = fp.generate_keypair(512, insecure=True)\n"
            "a = sk.encrypt(np.arange(5)); b = a + a\n"
            "print(fp.kernel_tier(), a._mont, b._mont, b.sum()._mont, sk.decrypt(b).tolist())\n")
    env = dict(os.environ, FASTPAILLIER_KERNEL="gmp")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["gmp", "False", "False", "False", "[0,", "2,", "4,", "6,", "8]"]


def test_disabled_ifma_still_uses_a_montgomery_tier():
    code = ("import numpy as np, fastpaillier as fp\n"
            "pk, sk = fp.generate_keypair(512, insecure=True)\n"
            "a = sk.encrypt(np.arange(5)); b = a + a\n"
            "print(fp.kernel_tier(), a._mont, b._mont, sk.decrypt(b).tolist())\n")
    env = {k: v for k, v in os.environ.items() if k != "FASTPAILLIER_KERNEL"}
    env["FASTPAILLIER_DISABLE_IFMA"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected_tier = [t for t in SUPPORTED_TIERS if t not in ("ifma", "portable")][0]
    mont = str(expected_tier != "gmp")
    assert out.stdout.split() == [expected_tier, mont, mont, "[0,", "2,", "4,", "6,", "8]"]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_batches_split_over_threads(keys_2048, threads):
    pk, sk = keys_2048
    x = np.arange(203, dtype=np.int64)  # 26 groups of 8 lanes, the last one partial
    a = sk.encrypt(x)
    b = fp.EncryptedArray(pk, sk.encrypt(x[::-1].copy()).ciphertexts)
    for name in SUPPORTED_TIERS:
        _native.set_kernel_tier(name)
        assert ciphertext_ints(a.add(a, threads=threads)) == _mulmod(pk, a, a)
        assert ciphertext_ints(a.add(b, threads=threads)) == _mulmod(pk, a, b)
        assert ciphertext_ints(sum_arrays([b, a, b], threads=threads)) == _mulmod(pk, b, a, b)
    assert np.array_equal(sk.decrypt(a + b), np.full(203, 202))
