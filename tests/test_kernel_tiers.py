"""Every kernel tier (ifma, avx2, mulx, portable, gmp) gives the same bits, checked against gmpy2.

Each test runs on the tiers this CPU supports and skips the others with a reason, so the suite
passes on CPUs without AVX-512 IFMA (or without BMI2/ADX) and under FASTPAILLIER_DISABLE_IFMA=1.
Key sizes: 1024 bits (insecure test keys), 2048, 3072 and 4096; odd batch sizes; 1-3 threads.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import gmpy2
import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.testing import array_from_ints, ciphertext_ints, encrypt_with_a, encrypt_with_r

DEFAULT_TIER = fp.kernel_tier()  # read at collection, before any test switches tiers
SUPPORTED_TIERS = fp.available_kernel_tiers()

CPU_FLAGS = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
CPU_HAS_IFMA = "avx512ifma" in CPU_FLAGS
CPU_HAS_MULX = " bmi2" in CPU_FLAGS and " adx" in CPU_FLAGS
CPU_HAS_AVX2_FMA = " avx2" in CPU_FLAGS and " fma" in CPU_FLAGS


@pytest.fixture(scope="module")
def keys_by_bits(keys_2048):
    """1024 (insecure), 2048, 3072 and 4096-bit key pairs, each with a DJN base."""
    keys = {1024: fp.generate_keypair(1024, insecure=True), 2048: keys_2048,
            3072: fp.generate_keypair(3072), 4096: fp.generate_keypair(4096)}
    djn = {bits: sk.with_djn() for bits, (_, sk) in keys.items()}
    return {bits: (sk.public_key, sk) for bits, sk in djn.items()}


def _on_each_tier(fn):
    """{tier: fn()} for every supported tier."""
    out = {}
    for name in SUPPORTED_TIERS:
        _native.set_kernel_tier(name)
        out[name] = fn()
    _native.set_kernel_tier(DEFAULT_TIER)
    return out


def _lam_decrypt(pk, sk, cts):
    """gmpy2 reference decryption with lambda = (p-1)(q-1) (no CRT)."""
    n, nsq = gmpy2.mpz(pk.n), gmpy2.mpz(pk.nsquare)
    lam = (gmpy2.mpz(sk.p) - 1) * (gmpy2.mpz(sk.q) - 1)
    mu = gmpy2.invert((gmpy2.powmod(n + 1, lam, nsq) - 1) // n, n)
    return [int((gmpy2.powmod(gmpy2.mpz(c), lam, nsq) - 1) // n * mu % n) for c in cts]


# ---- tier selection ------------------------------------------------------------------------

def test_tier_list_matches_the_cpu():
    assert fp.available_kernel_tiers() == SUPPORTED_TIERS
    assert SUPPORTED_TIERS[-2:] == ["portable", "gmp"]  # every CPU runs these
    assert ("ifma" in SUPPORTED_TIERS) == CPU_HAS_IFMA
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        assert ("mulx" in SUPPORTED_TIERS) == CPU_HAS_MULX
        assert ("avx2" in SUPPORTED_TIERS) == (CPU_HAS_AVX2_FMA and CPU_HAS_MULX)
    assert fp.kernel_tier() == DEFAULT_TIER


def test_default_is_the_fastest_supported_tier():
    if os.environ.get("FASTPAILLIER_KERNEL"):
        pytest.skip("FASTPAILLIER_KERNEL forces the tier of this run")
    expected = [t for t in SUPPORTED_TIERS if t != "portable"
                and not (t == "ifma" and os.environ.get("FASTPAILLIER_DISABLE_IFMA"))][0]
    assert DEFAULT_TIER == expected


def test_set_kernel_tier_rejects_unknown_and_unsupported_names():
    with pytest.raises(fp.UnsupportedKernelError, match="does not exist"):
        fp.set_kernel_tier("avx9")
    for name in ("ifma", "avx2", "mulx"):
        if name not in SUPPORTED_TIERS:
            with pytest.raises(fp.UnsupportedKernelError, match="cannot run"):
                fp.set_kernel_tier(name)
            assert fp.kernel_tier() == DEFAULT_TIER
    for name in SUPPORTED_TIERS:
        fp.set_kernel_tier(name)
        assert fp.kernel_tier() == name
        assert _native.ifma_enabled() == (name == "ifma")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("FASTPAILLIER_KERNEL", "FASTPAILLIER_DISABLE_IFMA")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)


def test_environment_variables_choose_the_tier():
    code = "import fastpaillier as fp; print(fp.kernel_tier())"
    out = _run(code, FASTPAILLIER_DISABLE_IFMA="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == [t for t in SUPPORTED_TIERS if t not in ("ifma", "portable")][0]
    out = _run(code)
    assert out.stdout.strip() == [t for t in SUPPORTED_TIERS if t != "portable"][0]
    for name in SUPPORTED_TIERS:
        out = _run(code, FASTPAILLIER_KERNEL=name, FASTPAILLIER_DISABLE_IFMA="1")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == name  # an explicit tier wins over DISABLE_IFMA
    for bad in ("avx9", *(t for t in ("ifma", "avx2", "mulx") if t not in SUPPORTED_TIERS)):
        out = _run(code, FASTPAILLIER_KERNEL=bad)
        assert out.returncode != 0
        assert "UnsupportedKernelError" in out.stderr and "FASTPAILLIER_KERNEL" in out.stderr


# ---- decryption ----------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [1024, 2048, 3072, 4096])
def test_decryption_agrees_on_every_tier_and_with_gmpy2(keys_by_bits, bits):
    pk, sk = keys_by_bits[bits]
    count = {1024: 13, 2048: 9, 3072: 5, 4096: 3}[bits]
    values = [pk.n - 1, 0, 1] + [secrets.randbelow(pk.n) for _ in range(count - 3)]
    enc = pk.encrypt(np.array(values, dtype=object))
    results = _on_each_tier(lambda: sk.decrypt_limbs(enc, threads=2))
    for name, rows in results.items():
        assert _limbs.rows_to_ints(rows) == values, name
    assert _lam_decrypt(pk, sk, ciphertext_ints(enc)) == values


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 9, 10, 17])
@pytest.mark.parametrize("threads", [1, 3])
def test_decryption_batches_and_threads(keys_2048, count, threads):
    pk, sk = keys_2048
    rng = np.random.default_rng(count * 10 + threads)
    values = [int(v) for v in rng.integers(0, 2**62, size=count)]
    enc = pk.encrypt(np.array(values, dtype=object))
    results = _on_each_tier(lambda: _limbs.rows_to_ints(sk.decrypt_limbs(enc, threads=threads)))
    assert all(r == values for r in results.values()), results.keys()


def test_boundary_ciphertexts_agree(keys_2048):
    # Valid group elements near the edges of the range: every tier gives the same bits.
    pk, sk = keys_2048
    n2 = pk.nsquare
    cts = [1, 2, n2 - 1, n2 - 2, (n2 - 1) // 3 | 1]
    enc = array_from_ints(pk, cts)
    results = _on_each_tier(lambda: sk.decrypt_limbs(enc, threads=1))
    first = next(iter(results.values()))
    assert all(np.array_equal(first, r) for r in results.values())
    assert _limbs.rows_to_ints(first) == _lam_decrypt(pk, sk, cts)
    assert _limbs.rows_to_ints(first)[0] == 0  # 1 is the trivial encryption of 0


def test_non_units_are_refused_by_decryption_on_every_tier(keys_2048):
    # Rows that bypass the loaders (raw limbs into the kernel) still fail closed on every tier,
    # with the same message whichever prime divides them.
    pk, sk = keys_2048
    p, q, n2 = sk.p, sk.q, pk.nsquare
    for bad in (p, q, p * p, q * q, p * q, n2 - p, 7 * pk.n):
        rows = _limbs.ints_to_rows([5, bad, 3], pk.nsq_limbs)
        messages = set()
        for name in SUPPORTED_TIERS:
            _native.set_kernel_tier(name)
            with pytest.raises(fp.InvalidCiphertextError, match="ciphertext 1 shares a factor with n") as info:
                _native.decrypt(sk._ctx, rows, 2)
            messages.add(str(info.value))
        assert len(messages) == 1


@pytest.mark.parametrize("good_before", [0, 1, 8, 9])
def test_non_units_are_refused_in_short_tails(keys_2048, good_before):
    # On the ifma tier a last group of one or two rows runs through the one-row mulx kernels
    # (faster than a mostly empty 8-lane pass): a non-unit there fails closed like anywhere else.
    pk, sk = keys_2048
    rows = _limbs.ints_to_rows([5] * good_before + [7 * pk.n], pk.nsq_limbs)
    for name in SUPPORTED_TIERS:
        _native.set_kernel_tier(name)
        with pytest.raises(fp.InvalidCiphertextError, match=f"ciphertext {good_before} shares a factor"):
            _native.decrypt(sk._ctx, rows, 1)


def test_tiny_and_odd_sized_keys(tiny_keys, small_keys):
    odd = fp.generate_keypair(1000, insecure=True)  # n^2 of 2000 bits: 32 limbs, not a multiple of 4 in p^2
    for pk, sk in (tiny_keys, small_keys, odd):
        x = np.arange(min(20, pk.n - 1), dtype=np.int64)
        enc = pk.encrypt(x)
        results = _on_each_tier(lambda: (sk.decrypt(enc), ciphertext_ints(enc + enc), sk.decrypt(sk.encrypt(x))))
        for name, (dec, doubled, again) in results.items():
            assert np.array_equal(dec, x), name
            assert doubled == [c * c % pk.nsquare for c in ciphertext_ints(enc)], name
            assert np.array_equal(again, x), name


# ---- encryption ----------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [1024, 2048, 3072, 4096])
def test_known_answer_encryption_on_every_tier(keys_by_bits, bits):
    pk, sk = keys_by_bits[bits]
    m = [0, 1, pk.n - 1, secrets.randbelow(pk.n), secrets.randbelow(pk.n)]
    r = [1, pk.n - 1] + [secrets.randbelow(pk.n - 2) + 2 for _ in range(3)]
    nsq = pk.nsquare
    expected = [(1 + mi * pk.n) * pow(ri, pk.n, nsq) % nsq for mi, ri in zip(m, r)]

    def run():
        return (ciphertext_ints(encrypt_with_r(pk, m, r, threads=2)),
                ciphertext_ints(encrypt_with_r(sk, m, r, threads=2)))

    for name, (public, crt) in _on_each_tier(run).items():
        assert public == expected, name
        assert crt == expected, name


@pytest.mark.parametrize("bits", [1024, 2048, 3072, 4096])
def test_djn_known_answer_on_every_tier(keys_by_bits, bits):
    pk, sk = keys_by_bits[bits]
    abits = int(_native.djn_exponent_bits(pk.bits))
    a = [0, 1, (1 << abits) - 1, secrets.randbits(abits), secrets.randbits(abits)]
    m = [5, 0, pk.n - 1, 7, secrets.randbelow(pk.n)]
    nsq, hs = pk.nsquare, pk.djn_base
    expected = [(1 + mi * pk.n) * pow(hs, ai, nsq) % nsq for mi, ai in zip(m, a)]

    def run():
        return (ciphertext_ints(encrypt_with_a(pk, m, a, threads=2)),
                ciphertext_ints(encrypt_with_a(sk, m, a, threads=1)))

    for name, (public, crt) in _on_each_tier(run).items():
        assert public == expected, name
        assert crt == expected, name


@pytest.mark.parametrize("count", [1, 2, 8, 10, 13])
@pytest.mark.parametrize("randomness", ["classic", "djn"])
def test_random_encryption_on_every_tier(keys_by_bits, count, randomness, tier):
    pk, sk = keys_by_bits[2048]
    x = np.arange(count, dtype=np.int64) * 977 + 5
    enc = sk.encrypt(x, threads=2, randomness=randomness)
    public = pk.encrypt(x, threads=3, randomness=randomness)
    again = enc.rerandomize(sk, threads=1)
    again_public = enc.rerandomize(pk, threads=2)
    rows = set()
    for e in (enc, public, again, again_public):
        rows |= {r.tobytes() for r in e.ciphertexts}
    assert len(rows) == 4 * count  # every row drew its own randomness
    if randomness == "classic":  # c (1 + m n)^-1 = r^n: an n-th residue, so its lambda-th power is 1 mod n^2
        n, nsq = pk.n, pk.nsquare
        lam = (sk.p - 1) * (sk.q - 1)
        for e in (public, again_public):
            for c, m in zip(ciphertext_ints(e), x.tolist()):
                assert pow(c * (1 - m * n) % nsq, lam, nsq) == 1
    for name in SUPPORTED_TIERS:  # decrypts the same whichever tier decrypts
        _native.set_kernel_tier(name)
        for e in (enc, public, again, again_public):
            assert np.array_equal(sk.decrypt(e), x), name
    assert _lam_decrypt(pk, sk, ciphertext_ints(enc)) == x.tolist()


# ---- the exponentiation kernel ---------------------------------------------------------------

@pytest.mark.parametrize("mod_bits", [1024, 2048, 3072, 4096, 1000])
def test_powm_kernel_against_python(mod_bits, tier):
    m = secrets.randbits(mod_bits) | 1 | (1 << (mod_bits - 1))
    limbs = _limbs.limb_count(m)
    ebits = mod_bits // 2
    bases = [secrets.randbelow(m) for _ in range(6)] + [0, 1, m - 1]
    exps = [secrets.randbits(ebits) for _ in range(6)] + [5, 0, (1 << ebits) - 1]
    e_limbs = (ebits + 63) // 64
    out = _native.bench_powm(_limbs.ints_to_rows(bases, limbs), _limbs.ints_to_rows(exps, e_limbs),
                             _limbs.int_to_limbs(m, limbs), ebits, False, 2)
    assert _limbs.rows_to_ints(out) == [pow(b, e, m) for b, e in zip(bases, exps)]


# ---- ciphertext products (Montgomery form) ---------------------------------------------------

@pytest.mark.parametrize("bits", [1024, 2048, 3072, 4096])
def test_sums_agree_on_every_tier(keys_by_bits, bits):
    pk, sk = keys_by_bits[bits]
    x = np.arange(7, dtype=np.int64) + 1
    a, b = sk.encrypt(x), pk.encrypt(2 * x)
    nsq = pk.nsquare

    def run():
        s = fp.sum_arrays([a, b, a], threads=3)
        return ciphertext_ints(a + b), ciphertext_ints(s), ciphertext_ints(a.sum()), sk.decrypt(s).tolist()

    ca, cb = ciphertext_ints(a), ciphertext_ints(b)
    for name, (ab, s, total, dec) in _on_each_tier(run).items():
        assert ab == [u * v % nsq for u, v in zip(ca, cb)], name
        assert s == [u * v * u % nsq for u, v in zip(ca, cb)], name
        prod = 1
        for u in ca:
            prod = prod * u % nsq
        assert total == [prod], name
        assert dec == (4 * x).tolist(), name
