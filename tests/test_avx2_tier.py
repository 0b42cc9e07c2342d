"""The avx2 tier: radix-2^52 Montgomery arithmetic on AVX2 double-precision FMA.

Its products split each 52 x 52-bit product exactly with two FMAs under round-toward-zero,
set for the duration of each kernel call.  These tests check the values at the digit-count
edges of the representation (4m < R = 2^(52 D)) against Python, that the caller's rounding
mode is back after every kind of call, and that the lane tiers agree with each other.  They
skip where the CPU cannot run the avx2 tier (no AVX2/FMA, or no BMI2/ADX).
"""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.testing import ciphertext_ints

pytestmark = pytest.mark.skipif(not _native.tier_supported("avx2"),
                                reason="this CPU cannot run the avx2 kernel tier (needs AVX2, FMA, BMI2, ADX)")

LANE_TIERS = [t for t in ("ifma", "avx2") if _native.tier_supported(t)]


@pytest.fixture
def on_avx2():
    """Runs the test on the avx2 tier and restores the tier it found."""
    before = _native.kernel_tier()
    _native.set_kernel_tier("avx2")
    yield
    _native.set_kernel_tier(before)


def _round_to_nearest() -> bool:
    """Whether this thread's float additions round to nearest (0.1 + 0.2 rounds up there)."""
    a, b = float(np.float64(0.1)), float(np.float64(0.2))
    return a + b != 0.3 and float(np.float64(1.0) / np.float64(3.0)) * 3.0 == 1.0


# Moduli one bit either side of a digit boundary, where D = ceil((bits + 2) / 52) changes,
# from one digit (D = 1) to 4096 bits; odd, top bit set.
EDGE_BITS = [3, 49, 50, 51, 101, 102, 103, 154, 1022, 2048, 2078, 2079, 4095, 4096]


@pytest.mark.parametrize("mod_bits", EDGE_BITS)
def test_powm_at_digit_edges_against_python(on_avx2, mod_bits):
    m = secrets.randbits(mod_bits) | 1 | (1 << (mod_bits - 1))
    limbs = _limbs.limb_count(m)
    ebits = max(2, min(mod_bits, 160))
    bases = [0, 1, m - 1, m - 2 if m > 3 else 1] + [secrets.randbelow(m) for _ in range(9)]
    exps = [(1 << ebits) - 1, 0, 1, 2] + [secrets.randbits(ebits) for _ in range(9)]
    e_limbs = (ebits + 63) // 64
    out = _native.bench_powm(_limbs.ints_to_rows(bases, limbs), _limbs.ints_to_rows(exps, e_limbs),
                             _limbs.int_to_limbs(m, limbs), ebits, False, 2)
    assert _limbs.rows_to_ints(out) == [pow(b, e, m) for b, e in zip(bases, exps)]


@pytest.mark.parametrize("threads", [1, 2])
def test_rounding_mode_is_restored(on_avx2, keys_2048, threads):
    pk, sk = keys_2048
    djn = sk.with_djn()
    assert _round_to_nearest()
    x = np.arange(13, dtype=np.int64)
    enc = pk.encrypt(x, threads=threads)
    assert _round_to_nearest()
    total = (enc + sk.encrypt(x, threads=threads)).sum()
    assert _round_to_nearest()
    assert int(sk.decrypt(total.reshape(1))[0]) == 2 * int(x.sum())
    assert np.array_equal(sk.decrypt(djn.public_key.encrypt(x, threads=threads), threads=threads), x)
    assert np.array_equal(djn.decrypt(djn.encrypt(x, threads=threads), threads=threads), x)
    assert _round_to_nearest()


def test_rounding_mode_of_other_threads_is_untouched(on_avx2, keys_2048):
    pk, sk = keys_2048
    seen: list[bool] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(_round_to_nearest())

    t = threading.Thread(target=watch)
    t.start()
    try:
        enc = pk.encrypt(np.arange(32, dtype=np.int64), threads=2)
        for _ in range(3):
            sk.decrypt(enc + enc, threads=2)
    finally:
        stop.set()
        t.join()
    assert seen and all(seen)


@pytest.mark.parametrize("count", [1, 3, 4, 5, 8, 9, 12, 13])
def test_lane_tiers_give_the_same_bits(keys_2048, count):
    pk, sk = keys_2048
    before = _native.kernel_tier()
    values = [secrets.randbelow(pk.n) for _ in range(count)]
    enc = pk.encrypt(np.array(values, dtype=object))
    results = {}
    try:
        for name in [*LANE_TIERS, "mulx"]:
            _native.set_kernel_tier(name)
            s = enc + enc
            results[name] = (_limbs.rows_to_ints(sk.decrypt_limbs(enc, threads=2)),
                             ciphertext_ints(s), _limbs.rows_to_ints(sk.decrypt_limbs(s, threads=2)))
    finally:
        _native.set_kernel_tier(before)
    nsq = pk.nsquare
    want_sum = [c * c % nsq for c in ciphertext_ints(enc)]
    for name, (dec, s, dec_sum) in results.items():
        assert dec == values, name
        assert s == want_sum, name
        assert dec_sum == [2 * v % pk.n for v in values], name
