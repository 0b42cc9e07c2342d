"""python-paillier (phe 1.5) against fastpaillier.phe, its drop-in, per number and in batches.

Run from a checkout with ``PYTHONPATH=src python benchmarks/bench_phe_dropin.py`` (needs
``phe==1.5.0`` and gmpy2, as phe's speed depends on it: ``pip install '.[bench]'``).

Both libraries get the same key (n, p, q from fastpaillier's generator) of ``--bits`` bits and
the same inputs; fastpaillier runs on one thread (``fastpaillier.set_num_threads(1)``), phe is
single-threaded anyway.  Each row times ``--calls`` calls in a loop (a multiple of 8, the IFMA
lane count, so that lone encryptions that compute 8 obfuscators per native call are averaged
fairly) and reports the best of ``--rounds`` interleaved rounds (in each, phe and fastpaillier.phe
run back to back twice), per number.

Rows: encryption of an int and of a float with the public key (classic r^n randomness), with a
DJN key (fixed-base h_s^a; phe has none, so it is compared with phe's public-key encryption),
with the private key by CRT (classic and DJN; again against phe's public-key encryption),
decryption, ciphertext + ciphertext, ciphertext + float, ciphertext * float; then the batch
helpers per value (``encrypt_many``, ``decrypt_many``) against phe's loop and against the
fastpaillier EncryptedArray path on the same integers (``PublicKey.encrypt`` /
``PrivateKey.encrypt`` / ``PrivateKey.decrypt`` of an int64 array).  The header names the CPU,
the kernel tier (FASTPAILLIER_KERNEL=ifma|avx2|mulx|portable|gmp forces one) and the thread count.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

try:
    import fastpaillier as fp
except ImportError:  # running from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastpaillier as fp

import phe

from fastpaillier.phe import _engine
from fastpaillier.phe import paillier as fpp


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def best_per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of one loop of `calls` calls (gc off)."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=16, help="calls per timed loop (a multiple of 8)")
    parser.add_argument("--batch", type=int, default=64, help="values per batch-helper call")
    parser.add_argument("--tiers", default=None,
                        help="comma-separated kernel tiers to run one after the other on the same key "
                             "(default: the active tier), e.g. ifma,mulx")
    args = parser.parse_args(argv)
    fp.set_num_threads(1)
    tiers = args.tiers.split(",") if args.tiers else [fp.kernel_tier()]

    fp_pk, fp_sk = fp.generate_keypair(args.bits, insecure=args.bits < 2048)
    n, p, q = fp_pk.n, fp_sk.p, fp_sk.q
    phe_pub = phe.PaillierPublicKey(n)
    phe_priv = phe.PaillierPrivateKey(phe_pub, p, q)
    pub = fpp.PaillierPublicKey(n)
    priv = fpp.PaillierPrivateKey(pub, p, q)
    priv_djn = priv.with_djn()
    pub_djn = priv_djn.public_key
    ea_djn_sk = priv_djn.fastpaillier_key
    ea_sk = priv.fastpaillier_key
    ea_pk = pub.fastpaillier_key

    x_int, x_float, y_float = 1234567, 3.14159265, 2.718281828
    phe_a, phe_b = phe_pub.encrypt(x_float), phe_pub.encrypt(-y_float)
    our_a, our_b = pub.encrypt(x_float), pub.encrypt(-y_float)
    assert priv.decrypt(our_a + our_b) == phe_priv.decrypt(phe_a + phe_b)
    assert priv.decrypt(pub_djn.encrypt(x_float)) == x_float == phe_priv.decrypt(
        phe.EncryptedNumber(phe_pub, priv_djn.encrypt(x_float).ciphertext(), priv_djn.encrypt(x_float).exponent))
    rng = np.random.default_rng(1)
    ints = [int(v) for v in rng.integers(0, 2**40, args.batch)]
    ints_array = np.array(ints, dtype=np.int64)
    batch = pub.encrypt_many(ints)
    batch_array = ea_sk.encrypt(ints_array)
    assert priv.decrypt_many(batch) == ints == ea_sk.decrypt(batch_array).tolist()

    def clear_reserves() -> None:
        for key in (pub, pub_djn):
            key._engine.reserve.clear()
        for key in (priv, priv_djn):
            key._engine().reserve.clear()

    calls = args.calls
    per_number = [
        ("encrypt int, public key", lambda: phe_pub.encrypt(x_int), lambda: pub.encrypt(x_int), calls),
        ("encrypt float, public key", lambda: phe_pub.encrypt(x_float), lambda: pub.encrypt(x_float), calls),
        ("encrypt float, DJN public key", lambda: phe_pub.encrypt(x_float), lambda: pub_djn.encrypt(x_float), calls),
        ("encrypt float, private key (CRT)", lambda: phe_pub.encrypt(x_float), lambda: priv.encrypt(x_float), calls),
        ("encrypt float, DJN private key", lambda: phe_pub.encrypt(x_float), lambda: priv_djn.encrypt(x_float), calls),
        ("decrypt", lambda: phe_priv.decrypt(phe_a), lambda: priv.decrypt(our_a), calls),
        ("add: ciphertext + ciphertext", lambda: phe_a + phe_b, lambda: our_a + our_b, 100 * calls),
        ("add: ciphertext + float", lambda: phe_a + y_float, lambda: our_a + y_float, 100 * calls),
        ("multiply: ciphertext * float", lambda: phe_a * y_float, lambda: our_a * y_float, 4 * calls),
    ]
    many = [
        ("encrypt_many, public key", lambda: [phe_pub.encrypt(v) for v in ints], lambda: pub.encrypt_many(ints),
         lambda: ea_pk.encrypt(ints_array)),
        ("encrypt_many, private key (CRT)", lambda: [phe_pub.encrypt(v) for v in ints],
         lambda: priv.encrypt_many(ints), lambda: ea_sk.encrypt(ints_array)),
        ("encrypt_many, DJN private key", lambda: [phe_pub.encrypt(v) for v in ints],
         lambda: priv_djn.encrypt_many(ints), lambda: ea_djn_sk.encrypt(ints_array)),
        ("decrypt_many", lambda: [phe_priv.decrypt(x) for x in phe_batch], lambda: priv.decrypt_many(batch),
         lambda: ea_sk.decrypt(batch_array)),
    ]
    phe_batch = [phe.EncryptedNumber(phe_pub, x.ciphertext(), x.exponent) for x in batch]

    print(f"# phe {phe.__version__} vs fastpaillier.phe, {args.bits}-bit key, 1 thread, "
          f"gmpy2 {'on' if _engine.gmpy2 is not None else 'off'}")
    print(f"# CPU: {cpu_name()}; Python {platform.python_version()}; best of {args.rounds} rounds; "
          f"{calls} calls per loop, batches of {args.batch}")
    for tier in tiers:
        fp.set_kernel_tier(tier)
        clear_reserves()
        run_tier(tier, args, per_number, many, clear_reserves)
        classic = pub._engine.classic
        if classic is not None:
            timed = ", ".join(f"{name} {1e3 * t:.2f} ms" for name, t in sorted(classic._best.items()))
            print(f"\nLone classic public-key obfuscators on this tier: {classic.chosen} "
                  f"(best time per obfuscator while timing: {timed or 'not timed, forced'})\n")
    return 0


def run_tier(tier: str, args: argparse.Namespace, per_number: list, many: list, clear_reserves) -> None:
    """Times every row on the active kernel tier and prints the two tables."""
    for _, phe_fn, our_fn, *rest in per_number + many:  # untimed: tables built on first use, caches
        for fn in (phe_fn, our_fn, *(f for f in rest if callable(f))):
            fn()
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, phe_fn, our_fn, k in per_number:
            for _ in range(2):  # phe and fastpaillier.phe back to back, twice
                clear_reserves()
                times = [best_per_call(phe_fn, k), best_per_call(our_fn, k)]
                old = results.setdefault(name, times)
                results[name] = [min(a, b) for a, b in zip(old, times)]
        for name, phe_fn, our_fn, array_fn in many:
            for _ in range(2):
                times = [best_per_call(f, 1) / args.batch for f in (phe_fn, our_fn, array_fn)]
                old = results.setdefault(name, times)
                results[name] = [min(a, b) for a, b in zip(old, times)]

    print()
    print(f"## kernel tier {tier}")
    print()
    print("| operation (per number) | phe | fastpaillier.phe | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, *_ in per_number:
        t_phe, t_ours = results[name]
        print(f"| {name} | {fmt(t_phe)} | {fmt(t_ours)} | {t_phe / t_ours:.2f}x |")
    print()
    print("| batch helper (per value) | phe loop | fastpaillier.phe | speed-up | EncryptedArray | helper / array |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, *_ in many:
        t_phe, t_ours, t_array = results[name]
        print(f"| {name} | {fmt(t_phe)} | {fmt(t_ours)} | {t_phe / t_ours:.1f}x | {fmt(t_array)} | "
              f"{t_ours / t_array:.2f}x |")


def fmt(seconds: float) -> str:
    """A time in us or ms."""
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


if __name__ == "__main__":
    sys.exit(main())
