"""dudect-style timing test of fastpaillier's secret-dependent code paths (not a CI test).

For each test, two classes of inputs are timed in random interleaved order, one call at a time on
one thread, and Welch's t-statistic compares the two timing distributions (after dropping each
class's slowest 10%, which are interrupts and scheduling, as dudect crops). |t| above 4.5 is
dudect's threshold for evidence of a timing difference; below it, none was found at this sample
size (which is not a proof of constant time), and the script prints the smallest mean difference
the run could have shown.  Whole calls are timed, so differences far below the calls' own noise
(a skipped 1024-bit multiplication is well under a microsecond next to a 3 ms decryption) need far
more calls than a few thousand: the script bounds what is left, it does not prove its absence.  The classes are chosen to trigger the leaks that
issue 10 (item 3) found in earlier versions:

* crt: plaintexts below q (then m_p = m_q and the old CRT recombination skipped a multiplication;
  short plaintexts were also stored with fewer limbs) against uniform plaintexts mod n;
* reduce: valid ciphertexts (units) below p^2 against units above p^2 (the old c mod p^2 took
  longer when c >= p^2, which tells an attacker who chooses c whether c < p^2: a bisection on p);
* djn: DJN exponents a below p - 1 (the old a mod p-1 by mpz_mod was faster then) against uniform
  1152-bit exponents, through the known-answer CRT path;
* control: GMP's variable-time mpz_powm (gmpy2.powmod) with sparse against dense exponents; it
  must show a large t, or the measurement is too noisy to mean anything.

Usage: ``PYTHONPATH=src python benchmarks/dudect_timing.py [--calls 3000] [--bits 2048] [--rows 1]``;
``FASTPAILLIER_KERNEL=<tier>`` chooses the kernel tier.  ``--rows 8`` times batches of 8 inputs of
one class per call, which run on the 8-lane kernels of the ifma and avx2 tiers (a lone row runs on
the one-row mulx kernels there).  Prints one line per test.
"""

from __future__ import annotations

import argparse
import gc
import math
import secrets
import statistics
import time
from typing import Callable, Sequence

import gmpy2
import numpy as np

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.testing import encrypt_with_a

THRESHOLD = 4.5
CROP = 0.90


def welch_t(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's t-statistic of two samples."""
    va, vb = statistics.variance(a), statistics.variance(b)
    return (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va / len(a) + vb / len(b))


def crop(sample: list[float]) -> list[float]:
    """The fastest CROP fraction of a sample."""
    return sorted(sample)[: max(2, int(len(sample) * CROP))]


def measure(make: Callable[[int], object], run: Callable[[object], object],
            calls: int) -> tuple[float, float, float, float]:
    """(t, mean class 0, mean class 1, smallest mean difference |t| > THRESHOLD could show), in us,
    over `calls` interleaved calls per class."""
    order = [0] * calls + [1] * calls
    np.random.default_rng(secrets.randbits(64)).shuffle(order)
    inputs = [make(c) for c in order]  # built before timing
    times: list[list[float]] = [[], []]
    gc.disable()
    try:
        for c, x in zip(order, inputs):
            t0 = time.perf_counter_ns()
            run(x)
            times[c].append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    a, b = crop(times[0]), crop(times[1])
    resolution = THRESHOLD * math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return welch_t(a, b), statistics.fmean(a) / 1e3, statistics.fmean(b) / 1e3, resolution / 1e3


def random_unit(low: int, high: int, n: int) -> int:
    """A uniform unit mod n in [low, high)."""
    while True:
        c = low + secrets.randbelow(high - low)
        if math.gcd(c, n) == 1:
            return c


def tests(bits: int, rows: int = 1) -> dict[str, tuple[Callable[[int], object], Callable[[object], object]]]:
    pk, sk = fp.generate_keypair(bits, insecure=bits < 2048)
    djn = sk.with_djn()
    p, q, n, n2 = sk.p, sk.q, pk.n, pk.nsquare
    abits = int(_native.djn_exponent_bits(pk.bits))

    def batch(draw: Callable[[], int]) -> np.ndarray:
        return _limbs.ints_to_rows([draw() for _ in range(rows)], pk.nsq_limbs)

    def decrypt_row(r: np.ndarray) -> object:
        return _native.decrypt(sk._ctx, r, 1)

    def crt_input(cls: int) -> np.ndarray:
        ms = [secrets.randbelow(q) if cls == 0 else secrets.randbelow(n) for _ in range(rows)]
        return djn.encrypt(np.array(ms, dtype=object), threads=1).ciphertexts

    def reduce_input(cls: int) -> np.ndarray:
        return batch(lambda: random_unit(1, p * p, n) if cls == 0 else random_unit(p * p, n2, n))

    def djn_input(cls: int) -> list[int]:
        return [secrets.randbelow(p - 1) if cls == 0 else secrets.randbits(abits) for _ in range(rows)]

    base = gmpy2.mpz(secrets.randbelow(p * p))
    mod = gmpy2.mpz(p * p)

    def control_input(cls: int) -> gmpy2.mpz:
        e = (1 << (bits // 2 - 1)) | 1 if cls == 0 else secrets.randbits(bits // 2) | (1 << (bits // 2 - 1))
        return gmpy2.mpz(e)

    return {
        "crt (m < q vs m mod n)": (crt_input, decrypt_row),
        "reduce (c < p^2 vs c > p^2)": (reduce_input, decrypt_row),
        "djn (a < p-1 vs a of full length)": (djn_input, lambda a: encrypt_with_a(djn, [5] * rows, a, threads=1)),
        "control: mpz_powm sparse vs dense exponent": (control_input, lambda e: gmpy2.powmod(base, e, mod)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per class and test (default 3000)")
    parser.add_argument("--bits", type=int, default=2048, help="key size (default 2048)")
    parser.add_argument("--rows", type=int, default=1, help="inputs of one class per timed call (default 1)")
    args = parser.parse_args(argv)
    tier = fp.kernel_tier() if hasattr(fp, "kernel_tier") else "(before kernel tiers)"
    print(f"fastpaillier from {fp.__file__}\nkernel tier {tier}, {args.bits}-bit key, {args.calls} calls per class "
          f"of {args.rows} row(s), "
          f"slowest {100 - CROP * 100:.0f}% cropped, threshold |t| > {THRESHOLD}")
    for name, (make, run) in tests(args.bits, args.rows).items():
        t, mean0, mean1, resolution = measure(make, run, args.calls)
        verdict = "LEAK" if abs(t) > THRESHOLD else f"no evidence of a difference above {resolution:.1f} us"
        print(f"  {name:<45} t = {t:+8.2f}   means {mean0:9.1f} / {mean1:9.1f} us   {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
