"""Benchmark fastpaillier against python-paillier (phe 1.5) and raw gmpy2, in one run.

Run from a checkout with ``PYTHONPATH=src python benchmarks/bench_crypto.py`` (or with
fastpaillier pip-installed).  Needs ``gmpy2`` and ``phe==1.5.0`` (``pip install '.[bench]'``).

What is measured, on one key of ``--bits`` bits (default 2048) whose n, p and q are shared by
fastpaillier and phe, so both work modulo the same n^2:

* per ciphertext: encryption with the public key (obfuscator r^n mod n^2), encryption with the
  private key (fastpaillier's CRT obfuscator, ``PrivateKey.encrypt``), decryption,
  ciphertext + ciphertext addition (``a + b`` on two arrays returned by ``PrivateKey.encrypt``), and
  ciphertext * scalar for a random 32-bit scalar;
* per value, with ``PackedCodec(pk, value_bits=16, max_summands=8)``: encryption with the private
  key and with the public key, and decryption (time of the batch / number of values).  phe stores
  one value per ciphertext, so its per-value cost is its per-ciphertext cost;
* DJN fixed-base randomness (the same p, q with an h_s added by ``PrivateKey.with_djn()``):
  encryption with the public key (comb table mod n^2), with the private key (CRT tables mod p^2,
  q^2), packed encryption with the private key, and online encryption that drains a pool of
  precomputed DJN obfuscators (the pool is refilled outside the timed region before every call);
* the modular exponentiation kernel alone: a batch of base^e mod p^2 (``--bits``-bit modulus p^2,
  exponents of half its size, one per base) with the active kernel tier's constant-time
  exponentiation (IFMA 8 lanes, AVX2 FMA 4 lanes, mulx or C++ Montgomery rows, mpz_powm_sec) against GMP's
  ``mpz_powm`` one at a time (``_native.bench_powm``).

fastpaillier runs on every thread count of ``--threads`` (default: 1 and all CPUs) through the
``threads=`` argument of each call.  phe does not release the GIL, so it runs on 1 thread only;
the gmpy2 baselines (one ``powmod(r, n, n^2)``: the classic obfuscator; one ``a*b mod n^2``:
an addition; one ``powmod(c, k, n^2)``: a scalar multiplication) are single-threaded too.

Every time is the best (minimum) call on a whole batch, measured with time.perf_counter with
the garbage collector off, divided by the batch size.  All measurements run in a few interleaved
rounds, so that a burst of load from elsewhere cannot spoil every repetition of one of them.

The table gives the speed-up reference/fastpaillier (the reference is phe on 1 thread, or GMP's
mpz_powm for the kernel row), the scaling of fastpaillier's throughput with T threads over 1
thread, and checks them against the project's targets (2048-bit keys only), all on 1 thread.
On the IFMA tier: classic CRT encryption 2.5x, DJN public-key encryption 20x, DJN CRT encryption
30x, online encryption from the pool 1000x, decryption 1.6x, addition 5x, packed encryption with
the private key 150x (classic) and 2000x (DJN) per value, packed decryption 160x per value, the
exponentiation kernel 1.5x over mpz_powm.  On every other tier (CPUs without AVX-512 IFMA):
classic CRT 4x, DJN public 14x, DJN CRT 18x, pooled 1000x, decryption 1.25x, addition 3x, packed
150x (classic) and 1800x (DJN), packed decryption 130x, the kernel 1.1x.  And a throughput
scaling of at least 1.8x on 2 threads for every fastpaillier operation.  The header names the
kernel tier (FASTPAILLIER_KERNEL=ifma|avx2|mulx|portable|gmp forces one).
Every operation is checked for correctness once, outside the timed regions, before timing.

Peers (optional, ``--peers``; on by default when one of them imports): SecretFlow's ``sf-heu``
(ZPaillier through heu.numpy), ``pypaillier`` and FATE's ``fate-utils``, each installed by hand
(see benchmarks/peers.py), each with its own key of ``--bits`` bits at its fastest comparable
setting on 1 thread: encryption, decryption and addition per ciphertext, timed in the same
interleaved rounds, in a second table with each one's time over fastpaillier's.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import os
import platform
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

try:
    import fastpaillier as fp
except ImportError:  # running from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastpaillier as fp

try:
    import gmpy2
    import phe
    import phe.util
    from phe import paillier
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"bench_crypto.py needs gmpy2 and phe==1.5.0 ({exc}); "
             "install them with: pip install gmpy2 phe==1.5.0   (or pip install '.[bench]')")

from fastpaillier import _native as fp_native
from fastpaillier.testing import ciphertext_ints
import peers as peerlib  # sets the peers' thread pools to 1 thread before any of them starts
from machine import cpu_model, kernel_tier_label, kernel_tier_name, kernel_tier_note

TARGET_BITS = 2048
SCALING_TARGET_THREADS = 2
SCALING_TARGET = 1.8


# ---- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """Key size, thread counts, repetitions and batch sizes of one run."""

    bits: int
    threads: tuple[int, ...]
    reps: int                 # interleaved rounds; the best time over all of them is kept
    min_seconds: float        # cheap calls repeat until they took this long over all rounds
    exp_batch: int            # ciphertexts per call for encryption / decryption
    mul_batch: int            # ciphertexts per call for scalar multiplication
    add_batch: int            # ciphertexts per call for addition
    packed_ciphertexts: int   # full ciphertexts of packed values per call
    phe_batch: int            # phe / gmpy2 operations per repetition (exponentiations)
    phe_add_batch: int        # phe / gmpy2 additions per repetition
    powm_batch: int           # exponentiations per call of the kernel benchmark
    pool_batch: int           # online encryptions per call from the obfuscator pool


def make_config(bits: int, threads: Sequence[int], quick: bool, reps: int | None) -> Config:
    """Full (default) or --quick sizes; thread counts always include 1 (the reference)."""
    thread_counts = tuple(sorted(set(threads) | {1}))
    if quick:
        return Config(bits, thread_counts, reps or 3, 0.3, exp_batch=64, mul_batch=128, add_batch=4096,
                      packed_ciphertexts=16, phe_batch=24, phe_add_batch=2048, powm_batch=128,
                      pool_batch=512)
    return Config(bits, thread_counts, reps or 7, 1.0, exp_batch=256, mul_batch=512, add_batch=8192,
                  packed_ciphertexts=64, phe_batch=128, phe_add_batch=4096, powm_batch=1024,
                  pool_batch=2048)


def parse_threads(text: str) -> list[int]:
    """'1,8' -> [1, 8] (argparse type)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads must be comma-separated integers, got {text!r}")
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--threads needs positive integers, got {text!r}")
    return counts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=TARGET_BITS, help="key size in bits (default 2048)")
    parser.add_argument("--threads", type=parse_threads, default=[1, os.cpu_count() or 1],
                        help="comma-separated fastpaillier thread counts (default: 1,<os cpu count>)")
    parser.add_argument("--quick", action="store_true", help="smaller batches, 3 rounds (well under a minute)")
    parser.add_argument("--reps", type=int, default=None,
                        help="interleaved timing rounds, the best is kept (default 7; 3 with --quick)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure the installed peer libraries (sf-heu, pypaillier, fate-utils) on "
                             "1 thread and print a second table (default: on when any of them imports)")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be >= 1")
    if args.bits % 2 or args.bits < 16:
        parser.error("--bits must be an even number >= 16")
    return args


# ---- timing -----------------------------------------------------------------------------------

MAX_CALLS_PER_ROUND = 50
MAX_CALLS_WITH_SETUP = 3  # calls that need an untimed set-up (refilling the pool) each

Key = tuple[str, str, int]  # (library, operation, threads)


@dataclass(frozen=True)
class Measurement:
    """A call to time and the number of ciphertexts or values it processes."""

    key: Key
    fn: Callable[[], object]
    items: int
    setup: Callable[[], object] | None = None  # runs untimed before every call


def best_call(fn: Callable[[], object], min_seconds: float,
              setup: Callable[[], object] | None = None) -> float:
    """Minimum wall time of one call of fn: at least one call, more until min_seconds have passed."""
    best, total, calls = float("inf"), 0.0, 0
    max_calls = MAX_CALLS_PER_ROUND if setup is None else MAX_CALLS_WITH_SETUP
    while calls == 0 or (total < min_seconds and calls < max_calls):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, total, calls = min(best, elapsed), total + elapsed, calls + 1
    return best


def run_rounds(measurements: Sequence[Measurement], cfg: Config) -> dict[Key, float]:
    """Best seconds per item of every measurement, over cfg.reps interleaved rounds.

    Each round times every measurement once (a cheap one repeatedly, for min_seconds / reps),
    so a burst of noise from other load hits one round of many measurements rather than every
    repetition of one, and all libraries and thread counts see the same conditions.  The
    garbage collector is off while timing, as in timeit.
    """
    best = {m.key: float("inf") for m in measurements}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(cfg.reps):
            for m in measurements:
                best[m.key] = min(best[m.key], best_call(m.fn, cfg.min_seconds / cfg.reps, m.setup) / m.items)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


# ---- workload ---------------------------------------------------------------------------------

@dataclass
class Keys:
    """One key pair, seen by fastpaillier (classic, and with a DJN base) and by phe (same n, p, q)."""

    pk: fp.PublicKey
    sk: fp.PrivateKey
    djn_pk: fp.PublicKey
    djn_sk: fp.PrivateKey
    phe_pk: paillier.PaillierPublicKey
    phe_sk: paillier.PaillierPrivateKey


def make_keys(bits: int) -> Keys:
    pk, sk = fp.generate_keypair(bits, insecure=bits < TARGET_BITS)
    djn_sk = sk.with_djn()
    phe_pk = paillier.PaillierPublicKey(pk.n)
    return Keys(pk, sk, djn_sk.public_key, djn_sk, phe_pk, paillier.PaillierPrivateKey(phe_pk, sk.p, sk.q))


def tiled(pk: fp.PublicKey, source: fp.EncryptedArray, rows: int) -> fp.EncryptedArray:
    """`rows` valid ciphertexts made by repeating those of source (cheap large operands)."""
    reps = -(-rows // source.ciphertexts.shape[0])
    return fp.EncryptedArray(pk, np.tile(source.ciphertexts, (reps, 1))[:rows])


@dataclass
class Workload:
    """Inputs of every measured operation, built once (outside the timed regions)."""

    plaintexts: np.ndarray                          # int64 values below 2^62, exp_batch of them
    pool_plaintexts: np.ndarray                     # pool_batch of them, for the pooled online row
    encrypted: fp.EncryptedArray                    # their encryptions
    add_a: fp.EncryptedArray                        # addition operands, add_batch each, from encrypt()
    add_b: fp.EncryptedArray
    mul_in: fp.EncryptedArray                       # scalar multiplication operand, mul_batch
    scalar: int                                     # random 32-bit scalar
    codec: fp.PackedCodec
    djn_codec: fp.PackedCodec                       # the same codec for the DJN key (its own fingerprint)
    packed_values: np.ndarray                       # float32 in [-1, 1), whole ciphertexts' worth
    packed: fp.EncryptedArray                       # their packed encryption
    phe_plaintexts: list[int]                       # phe_batch of the plaintexts
    phe_encrypted: list[paillier.EncryptedNumber]   # their phe encryptions
    phe_add_a: list[paillier.EncryptedNumber]       # the first phe_add_batch addition operands
    phe_add_b: list[paillier.EncryptedNumber]
    powm_mod: int                                   # kernel benchmark: modulus p^2 ...
    powm_bases: np.ndarray                          # ... powm_batch bases below it (limb rows)
    powm_exps: np.ndarray                           # ... and exponents of half its bits (limb rows)
    powm_exp_bits: int


def make_workload(keys: Keys, cfg: Config) -> Workload:
    rng = np.random.default_rng()
    pk, sk = keys.pk, keys.sk
    plaintexts = rng.integers(0, 2**62, size=cfg.exp_batch, dtype=np.int64)
    base_a = sk.encrypt(rng.integers(0, 2**62, size=256, dtype=np.int64))
    # The addition operands are what encrypt() returns, as a user adds them (in the internal
    # Montgomery form where the IFMA kernels run, see EncryptedArray).
    threads = os.cpu_count() or 1
    add_a = sk.encrypt(rng.integers(0, 2**62, size=cfg.add_batch, dtype=np.int64), threads=threads)
    add_b = sk.encrypt(rng.integers(0, 2**62, size=cfg.add_batch, dtype=np.int64), threads=threads)
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    packed_values = rng.uniform(-1, 1, size=codec.slots * cfg.packed_ciphertexts).astype(np.float32)
    phe_plaintexts = [int(m) for m in plaintexts[:cfg.phe_batch]]
    powm_mod = sk.p * sk.p
    exp_bits = powm_mod.bit_length() // 2
    mod_limbs = (powm_mod.bit_length() + 63) // 64
    powm_bases = np.array([[secrets.randbits(64) for _ in range(mod_limbs)] for _ in range(cfg.powm_batch)],
                          dtype=np.uint64)
    powm_bases[:, -1] = 0  # below p^2
    powm_exps = np.array([[secrets.randbits(64) for _ in range((exp_bits + 63) // 64)]
                          for _ in range(cfg.powm_batch)], dtype=np.uint64)
    powm_exps[:, -1] |= np.uint64(1 << 63)  # exactly exp_bits bits
    return Workload(
        plaintexts=plaintexts, pool_plaintexts=rng.integers(0, 2**62, size=cfg.pool_batch, dtype=np.int64), encrypted=sk.encrypt(plaintexts), add_a=add_a, add_b=add_b,
        mul_in=tiled(pk, base_a, cfg.mul_batch), scalar=secrets.randbits(31) | (1 << 31),
        codec=codec, djn_codec=fp.PackedCodec(keys.djn_pk, value_bits=16, max_summands=8),
        packed_values=packed_values, packed=codec.encrypt(packed_values, sk),
        phe_plaintexts=phe_plaintexts, phe_encrypted=[keys.phe_pk.encrypt(m) for m in phe_plaintexts],
        phe_add_a=phe_numbers(keys.phe_pk, add_a, cfg.phe_add_batch),
        phe_add_b=phe_numbers(keys.phe_pk, add_b, cfg.phe_add_batch),
        powm_mod=powm_mod, powm_bases=powm_bases, powm_exps=powm_exps, powm_exp_bits=exp_bits)


def head(array: fp.EncryptedArray, count: int) -> fp.EncryptedArray:
    """The first `count` ciphertexts of a raw (codec-less) array."""
    return fp.EncryptedArray(array.public_key, array.ciphertexts[:count])


def phe_numbers(phe_pk: paillier.PaillierPublicKey, array: fp.EncryptedArray,
                count: int) -> list[paillier.EncryptedNumber]:
    """The first `count` fastpaillier ciphertexts as phe EncryptedNumbers (integers, exponent 0)."""
    return [paillier.EncryptedNumber(phe_pk, c, 0) for c in ciphertext_ints(head(array, count))]


def plaintext_ints(sk: fp.PrivateKey, array: fp.EncryptedArray) -> list[int]:
    """Decrypted plaintexts m mod n as Python ints."""
    return [int.from_bytes(row.tobytes(), "little") for row in sk.decrypt_limbs(array)]


def row_ints(rows: np.ndarray) -> list[int]:
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def limb_rows(values: Sequence[int], limbs: int) -> np.ndarray:
    return np.array([np.frombuffer(v.to_bytes(8 * limbs, "little"), dtype=np.uint64) for v in values])


def modulus_row(work: Workload) -> np.ndarray:
    return limb_rows([work.powm_mod], work.powm_bases.shape[1])[0]


def pooled_encryption_ok(keys: Keys, work: Workload) -> bool:
    """Encryption drains the DJN pool (each obfuscator once) and decrypts correctly."""
    keys.djn_sk.precompute_obfuscators(8, background=False, randomness="djn")
    enc = keys.djn_pk.encrypt(work.plaintexts[:8])
    return keys.djn_pk.obfuscators_available == 0 and np.array_equal(keys.sk.decrypt(enc), work.plaintexts[:8])


def verify(keys: Keys, work: Workload) -> None:
    """Checks every measured operation once against plain arithmetic, on both libraries."""
    pk, sk, n, k = keys.pk, keys.sk, keys.pk.n, work.scalar
    a, b, c = head(work.add_a, 64), head(work.add_b, 64), head(work.mul_in, 64)
    m_a, m_b, m_c = plaintext_ints(sk, a), plaintext_ints(sk, b), plaintext_ints(sk, c)
    enc0, enc1 = work.phe_encrypted[:2]
    checks = {
        "fastpaillier public-key encryption":
            np.array_equal(sk.decrypt(pk.encrypt(work.plaintexts[:16])), work.plaintexts[:16]),
        "fastpaillier CRT encryption and decryption": np.array_equal(sk.decrypt(work.encrypted), work.plaintexts),
        "phe decrypts fastpaillier ciphertexts (same modulus)":
            [keys.phe_sk.decrypt(x) for x in phe_numbers(keys.phe_pk, work.encrypted, 4)]
            == [int(m) for m in work.plaintexts[:4]],
        "fastpaillier addition": plaintext_ints(sk, a + b) == [(x + y) % n for x, y in zip(m_a, m_b)]
            and plaintext_ints(sk, head(work.add_a + work.add_b, 64)) == [(x + y) % n for x, y in zip(m_a, m_b)],
        "fastpaillier scalar multiplication": plaintext_ints(sk, c * k) == [x * k % n for x in m_c],
        "fastpaillier packed codec (private and public key)": all(
            np.abs(sk.decrypt(work.codec.encrypt(work.packed_values, key)) - work.packed_values).max()
            <= work.codec.max_rounding_error(1) for key in (sk, pk)),
        "phe encryption, addition and scalar multiplication":
            keys.phe_sk.decrypt(enc0 + enc1 * k) == work.phe_plaintexts[0] + work.phe_plaintexts[1] * k,
        "fastpaillier DJN encryption (public key and CRT), phe decrypts it": all(
            [keys.phe_sk.decrypt(x) for x in phe_numbers(keys.phe_pk, enc, 4)] == [int(m) for m in work.plaintexts[:4]]
            and np.array_equal(sk.decrypt(enc), work.plaintexts[:16])
            for enc in (keys.djn_pk.encrypt(work.plaintexts[:16]), keys.djn_sk.encrypt(work.plaintexts[:16]))),
        "fastpaillier online encryption from the DJN pool": pooled_encryption_ok(keys, work),
        "fastpaillier DJN packed encryption": np.abs(
            sk.decrypt(work.djn_codec.encrypt(work.packed_values, keys.djn_sk)) - work.packed_values).max()
            <= work.codec.max_rounding_error(1),
        "fastpaillier (active tier) and GMP exponentiation kernels": all(
            fp_native.bench_powm(work.powm_bases[:9], work.powm_exps[:9], modulus_row(work), work.powm_exp_bits,
                                 gmp, 2).tolist()
            == limb_rows([pow(b, e, work.powm_mod) for b, e in zip(row_ints(work.powm_bases[:9]),
                                                                     row_ints(work.powm_exps[:9]))],
                         work.powm_bases.shape[1]).tolist() for gmp in (False, True)),
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        sys.exit("correctness check failed, nothing measured: " + "; ".join(failed))


# ---- operations and measurements ------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    """One fastpaillier operation with its single-threaded references and the issue's target."""

    name: str
    items: int                              # ciphertexts or values per call
    run: Callable[[int], object]            # threads -> result
    phe: str | None = None                  # name of the matching reference measurement ...
    ref_lib: str = "phe"                    # ... of this library (phe, or gmp for the kernel)
    gmpy2: str | None = None                # name of the matching gmpy2 baseline
    target: float | None = None             # minimum reference/fastpaillier speed-up on 1 thread
    setup: Callable[[], object] | None = None  # untimed, before every call


# Speed-up targets on 1 thread at 2048 bits, per kernel tier: the IFMA tier keeps the targets it
# was built to (issues 2-3); every other tier has those of issue 9 (CPUs without AVX-512).
IFMA_TARGETS = {"encrypt_crt": 2.5, "encrypt_djn": 20.0, "encrypt_djn_crt": 30.0, "encrypt_pooled": 1000.0,
                "decrypt": 1.6, "add": 5.0, "packed_crt": 150.0, "packed_djn_crt": 2000.0,
                "packed_decrypt": 160.0, "powm": 1.5}
NO_IFMA_TARGETS = {"encrypt_crt": 4.0, "encrypt_djn": 14.0, "encrypt_djn_crt": 18.0, "encrypt_pooled": 1000.0,
                   "decrypt": 1.25, "add": 3.0, "packed_crt": 150.0, "packed_djn_crt": 1800.0,
                   "packed_decrypt": 130.0, "powm": 1.1}
POWM_KERNEL = {"ifma": "IFMA 8-lane", "avx2": "AVX2 FMA 4-lane", "mulx": "mulx Montgomery", "portable": "C++ Montgomery",
               "gmp": "mpz_powm_sec"}


def target(name: str) -> float:
    """The speed-up target of an operation for the active kernel tier."""
    return (IFMA_TARGETS if kernel_tier_name() == "ifma" else NO_IFMA_TARGETS)[name]


def operations(keys: Keys, work: Workload) -> list[Operation]:
    pk, sk, codec, values = keys.pk, keys.sk, work.codec, work.packed_values
    djn_pk, djn_sk = keys.djn_pk, keys.djn_sk
    n_ct, n_val = work.plaintexts.size, values.size
    k = work.scalar

    n_pool = work.pool_plaintexts.size

    def refill_pool() -> None:
        djn_sk.precompute_obfuscators(n_pool - djn_pk.obfuscators_available, background=False,
                                      randomness="djn", threads=os.cpu_count() or 1)

    blob = work.add_a.to_bytes()

    def load(t: int) -> fp.EncryptedArray:
        """from_bytes validates every ciphertext (range and gcd(c, n) = 1) on the default thread count."""
        before = fp.get_num_threads()
        fp.set_num_threads(t)
        try:
            return fp.EncryptedArray.from_bytes(blob, pk)
        finally:
            fp.set_num_threads(before)

    return [
        Operation("encrypt, public key", n_ct, lambda t: pk.encrypt(work.plaintexts, threads=t),
                  phe="encrypt", gmpy2="obfuscator"),
        Operation("encrypt, private key (CRT)", n_ct, lambda t: sk.encrypt(work.plaintexts, threads=t),
                  phe="encrypt", gmpy2="obfuscator", target=target("encrypt_crt")),
        Operation("encrypt, public key, DJN", n_ct, lambda t: djn_pk.encrypt(work.plaintexts, threads=t),
                  phe="encrypt", target=target("encrypt_djn")),
        Operation("encrypt, private key, DJN + CRT", n_ct,
                  lambda t: djn_sk.encrypt(work.plaintexts, threads=t), phe="encrypt", target=target("encrypt_djn_crt")),
        Operation("encrypt online, pooled DJN obfuscators", n_pool,
                  lambda t: djn_pk.encrypt(work.pool_plaintexts, threads=t), phe="encrypt", target=target("encrypt_pooled"),
                  setup=refill_pool),
        Operation("decrypt", n_ct, lambda t: sk.decrypt(work.encrypted, threads=t), phe="decrypt", target=target("decrypt")),
        Operation("add ciphertext + ciphertext", work.add_a.size,
                  lambda t: work.add_a.add(work.add_b, threads=t), phe="add", gmpy2="mulmod", target=target("add")),
        Operation("load ciphertexts: from_bytes, checks 0 < c < n^2, gcd(c, n) = 1", work.add_a.size, load),
        Operation("multiply by scalar (random 32-bit)", work.mul_in.size,
                  lambda t: work.mul_in.multiply(k, threads=t), phe="multiply", gmpy2="scalar powmod"),
        Operation(f"packed encrypt, private key, per value ({codec.slots}/ct)", n_val,
                  lambda t: codec.encrypt(values, sk, threads=t), phe="encrypt", target=target("packed_crt")),
        Operation(f"packed encrypt, private key, DJN + CRT, per value ({codec.slots}/ct)", n_val,
                  lambda t: work.djn_codec.encrypt(values, djn_sk, threads=t), phe="encrypt", target=target("packed_djn_crt")),
        Operation(f"packed encrypt, public key, per value ({codec.slots}/ct)", n_val,
                  lambda t: codec.encrypt(values, pk, threads=t), phe="encrypt"),
        Operation(f"packed encrypt, public key, DJN, per value ({codec.slots}/ct)", n_val,
                  lambda t: work.djn_codec.encrypt(values, djn_pk, threads=t), phe="encrypt"),
        Operation(f"packed decrypt, per value ({codec.slots}/ct)", n_val,
                  lambda t: sk.decrypt(work.packed, threads=t), phe="decrypt", target=target("packed_decrypt")),
        Operation(f"powm kernel: {POWM_KERNEL[kernel_tier_name()]}, {work.powm_mod.bit_length()}-bit mod, "
                  f"{work.powm_exp_bits}-bit exp", work.powm_bases.shape[0],
                  lambda t: fp_native.bench_powm(work.powm_bases, work.powm_exps, modulus_row(work),
                                                 work.powm_exp_bits, False, t),
                  phe="mpz_powm", ref_lib="GMP", target=target("powm")),
    ]


def phe_measurements(keys: Keys, work: Workload) -> list[Measurement]:
    """phe 1.5, single-threaded (it holds the GIL)."""
    phe_pk, phe_sk, k = keys.phe_pk, keys.phe_sk, work.scalar
    ints, enc = work.phe_plaintexts, work.phe_encrypted
    a, b = work.phe_add_a, work.phe_add_b
    return [
        Measurement(("phe", "encrypt", 1), lambda: [phe_pk.encrypt(m) for m in ints], len(ints)),
        Measurement(("phe", "decrypt", 1), lambda: [phe_sk.decrypt(c) for c in enc], len(enc)),
        Measurement(("phe", "add", 1), lambda: [x + y for x, y in zip(a, b)], len(a)),
        Measurement(("phe", "multiply", 1), lambda: [c * k for c in enc], len(enc)),
    ]


def gmp_measurements(work: Workload) -> list[Measurement]:
    """GMP's mpz_powm on the kernel benchmark's batch, one at a time on 1 thread (no Python in the loop)."""
    mod = modulus_row(work)
    return [Measurement(("GMP", "mpz_powm", 1),
                        lambda: fp_native.bench_powm(work.powm_bases, work.powm_exps, mod, work.powm_exp_bits,
                                                     True, 1), work.powm_bases.shape[0])]


def gmpy2_measurements(keys: Keys, work: Workload) -> list[Measurement]:
    """Raw gmpy2 on mpz values, single-threaded: the floor for a Python caller."""
    n = gmpy2.mpz(keys.pk.n)
    nsq = n * n
    r = [gmpy2.mpz(secrets.randbelow(keys.pk.n - 1) + 1) for _ in work.phe_plaintexts]
    c = [gmpy2.mpz(x.ciphertext(False)) for x in work.phe_encrypted]
    a = [gmpy2.mpz(x.ciphertext(False)) for x in work.phe_add_a]
    b = [gmpy2.mpz(x.ciphertext(False)) for x in work.phe_add_b]
    k = gmpy2.mpz(work.scalar)
    return [
        Measurement(("gmpy2", "obfuscator", 1), lambda: [gmpy2.powmod(x, n, nsq) for x in r], len(r)),
        Measurement(("gmpy2", "mulmod", 1), lambda: [x * y % nsq for x, y in zip(a, b)], len(a)),
        Measurement(("gmpy2", "scalar powmod", 1), lambda: [gmpy2.powmod(x, k, nsq) for x in c], len(c)),
    ]


def fastpaillier_measurements(ops: Sequence[Operation], threads: Sequence[int]) -> list[Measurement]:
    """Every fastpaillier operation on every thread count."""
    def call(op: Operation, t: int) -> Callable[[], object]:
        return lambda: op.run(t)
    return [Measurement(("fastpaillier", op.name, t), call(op, t), op.items, op.setup)
            for op in ops for t in threads]


def measure(keys: Keys, work: Workload, ops: Sequence[Operation], cfg: Config,
            extra: Sequence[Measurement] = ()) -> dict[Key, float]:
    """Seconds per item of everything, after one warm-up call of each fastpaillier operation (and extra one)."""
    for op in ops:  # page in code, thread start-up, caches and the DJN tables (built on first use)
        if op.setup is not None:
            op.setup()
        op.run(max(cfg.threads))
    for m in extra:
        m.fn()
    measurements = [*fastpaillier_measurements(ops, cfg.threads), *phe_measurements(keys, work),
                    *gmpy2_measurements(keys, work), *gmp_measurements(work), *extra]
    return run_rounds(measurements, cfg)


# ---- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of the table: an operation on T threads against its references."""

    operation: str
    threads: int
    fp_time: float                  # seconds per ciphertext or value
    ref_lib: str                    # the reference library: phe, or GMP for the kernel row
    phe_time: float | None          # the reference, 1 thread
    gmpy2_time: float | None        # gmpy2 baseline, 1 thread
    scaling: float | None           # fastpaillier throughput on T threads / on 1 thread
    target: str | None              # e.g. "phe/fp >= 1.8x" or "scaling >= 1.8x"
    passed: bool | None             # None: no target on this row

    @property
    def ratio(self) -> float | None:
        """Speed-up over the reference (reference time / fastpaillier time)."""
        return None if self.phe_time is None else self.phe_time / self.fp_time

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else ("PASS" if self.passed else "FAIL")


def build_rows(ops: Sequence[Operation], cfg: Config, times: dict[Key, float]) -> list[Row]:
    targets_apply = cfg.bits == TARGET_BITS
    rows = []
    for op in ops:
        one_thread = times[("fastpaillier", op.name, 1)]
        phe_time = times[(op.ref_lib, op.phe, 1)] if op.phe else None
        gmpy2_time = times[("gmpy2", op.gmpy2, 1)] if op.gmpy2 else None
        for t in cfg.threads:
            fp_time = times[("fastpaillier", op.name, t)]
            target, passed, scaling = None, None, None
            if t == 1:
                if op.target is not None and phe_time is not None and targets_apply:
                    target, passed = f"{op.ref_lib}/fp >= {op.target:g}x", phe_time / fp_time >= op.target
            else:
                scaling = one_thread / fp_time
                if t == SCALING_TARGET_THREADS and targets_apply:
                    target, passed = f"scaling >= {SCALING_TARGET:g}x", scaling >= SCALING_TARGET
            rows.append(Row(op.name, t, fp_time, op.ref_lib, phe_time, gmpy2_time, scaling, target, passed))
    return rows


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_factor(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}x" if value >= 100 else f"{value:.2f}x"


COLUMNS = ("operation", "threads", "fastpaillier / op", "reference / op (1 thr)", "speed-up vs reference",
           "gmpy2 baseline / op", "scaling vs 1 thr", "target", "result")


def table_cells(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    return [(r.operation, str(r.threads), fmt_time(r.fp_time),
             "-" if r.phe_time is None else f"{fmt_time(r.phe_time)} ({r.ref_lib})", fmt_factor(r.ratio),
             fmt_time(r.gmpy2_time), fmt_factor(r.scaling), r.target or "-", r.verdict) for r in rows]


def render_text(rows: Sequence[Row]) -> str:
    cells = [COLUMNS, *table_cells(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in table_cells(rows)]
    return "\n".join(lines)


# ---- header and notes -------------------------------------------------------------------------

def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def loaded_gmp_versions() -> dict[str, str]:
    """Path -> version of every libgmp mapped into this process (Linux; empty elsewhere)."""
    versions = {}
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "libgmp" in line.rsplit("/", 1)[-1]})
        for path in paths:
            versions[path] = ctypes.c_char_p.in_dll(ctypes.CDLL(path), "__gmp_version").value.decode()
    except (OSError, ValueError, AttributeError):
        pass
    return versions


def load_average() -> str:
    """The 1-minute load average (Unix), to show whether other work shared the CPUs."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):  # pragma: no cover - non-Unix
        return "unknown"


def header_lines(cfg: Config, work: Workload, load_before: str = "unknown") -> list[str]:
    gmp_libs = loaded_gmp_versions()
    fp_gmp = [f"GMP {v} ({p})" for p, v in gmp_libs.items() if "gmpy2" not in p] or ["unknown"]
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs ({usable_cores()} usable), "
        f"{platform.system()} {platform.machine()}",
        f"Python {platform.python_version()}, numpy {np.__version__}, gmpy2 {gmpy2.version()} "
        f"({gmpy2.mp_version()}), phe {phe.__version__} (uses gmpy2: {phe.util.HAVE_GMP})",
        f"fastpaillier {fp.__version__} ({Path(fp.__file__).parent}), linked against {', '.join(fp_gmp)}",
        f"kernel tier: {kernel_tier_label()}; CPU features used: " + (
            "AVX-512 IFMA 8-lane Montgomery arithmetic (radix 2^52) for CRT decryption, "
            "CRT and classic public-key encryption, the DJN fixed-base tables (mod n^2 and mod p^2, q^2) and "
            "ciphertext products in Montgomery form mod n^2"
            if kernel_tier_name() == "ifma" else
            f"{kernel_tier_note()} (FASTPAILLIER_KERNEL=ifma|avx2|mulx|portable|gmp forces a tier)"),
        f"key: {cfg.bits}-bit n, the same n, p, q for fastpaillier and phe",
        f"1-minute load average: {load_before} before timing, {load_average()} after "
        f"(on {usable_cores()} usable CPUs; other work on the machine lowers the 2-thread scaling)",
        f"threads (fastpaillier): {', '.join(map(str, cfg.threads))}; phe and gmpy2: 1 "
        "(phe holds the GIL, so it cannot use more)",
        f"batches: {cfg.exp_batch} ciphertexts (encrypt/decrypt), {cfg.mul_batch} (scalar multiply), "
        f"{cfg.add_batch} (add), {cfg.pool_batch} (online from the pool), {work.packed_values.size} values in {work.packed.ciphertexts.shape[0]} "
        f"ciphertexts (packed: {work.codec!r}); phe/gmpy2: {cfg.phe_batch} exponentiations, "
        f"{cfg.phe_add_batch} additions; powm kernel: {cfg.powm_batch} exponentiations; best call over {cfg.reps} "
        f"interleaved rounds (cheap calls repeated to fill {cfg.min_seconds:g} s per measurement)",
    ]


def notes(cfg: Config, work: Workload, rows: Sequence[Row]) -> list[str]:
    checked = [r for r in rows if r.passed is not None]
    lines = [
        "Times are per ciphertext, or per value for the packed rows; phe stores one value per ciphertext, "
        "so its per-value time is its per-ciphertext time (encrypt(int) / decrypt).",
        "speed-up divides the reference's 1-thread time (phe 1.5, or GMP's mpz_powm for the kernel row) by "
        "fastpaillier's time on the row's thread count; targets on it apply to 1 thread.",
        f"DJN rows: the same p, q with h_s from PrivateKey.with_djn(); exponents a of {(cfg.bits + 1) // 2 + 128} "
        "bits (ceil(|n|/2) + 128), comb tables (radix 2^52, for the 8-lane kernels of ifma and avx2: 6-bit windows "
        "mod n^2, 5-bit mod p^2, q^2; 64-bit limbs, for the mulx and portable tiers and avx2's lone rows: 5-bit "
        "windows mod p^2, q^2 and 7-bit mod n^2), built "
        "once per key before timing. The pooled row refills the DJN pool (by CRT) outside the timed region "
        "before every call; its time is the online part only.",
        f"powm kernel: {work.powm_bases.shape[0]} random bases mod p^2 ({work.powm_mod.bit_length()} bits), one "
        f"random {work.powm_exp_bits}-bit exponent per base; fastpaillier: the active tier's constant-time "
        "fixed-window exponentiation (IFMA 8 lanes, AVX2 FMA 4 lanes, mulx or C++ Montgomery rows, or "
        "mpz_powm_sec); GMP: mpz_powm "
        "(variable time), both called from C++ on the same limb arrays.",
        "Targets: " + ("the IFMA tier's" if kernel_tier_name() == "ifma" else
                       "issue 9's, for CPUs without AVX-512 IFMA (any tier but ifma)") + ".",
        "scaling = fastpaillier throughput on T threads / on 1 thread; the target (>= "
        f"{SCALING_TARGET:g}x) is stated for T = {SCALING_TARGET_THREADS}.",
        "Loading: EncryptedArray.from_bytes of the addition operands, which rejects any c outside "
        "Z*_{n^2} (0, not below n^2, or gcd(c, n) > 1: such a c would give away the key when decrypted); "
        "the gcd test is batched (a Montgomery product of all rows mod n per thread, then one gcd); no "
        "reference (phe does not check).",
        f"Scalar multiplication: every ciphertext times k = {work.scalar} (random, 32 bits), the same k "
        "for fastpaillier, phe and gmpy2.",
        "gmpy2 baselines: powmod(r, n, n^2) (one classic obfuscator) for encryption, a*b mod n^2 for "
        "addition, powmod(c, k, n^2) for scalar multiplication; all on mpz values, 1 thread.",
        "The packed-encryption targets apply to the private-key (CRT) paths; the public-key rows are informative.",
    ]
    if cfg.bits != TARGET_BITS:
        lines.append(f"The targets are defined for {TARGET_BITS}-bit keys; none is checked at {cfg.bits} bits.")
    elif SCALING_TARGET_THREADS not in cfg.threads:
        lines.append(f"No {SCALING_TARGET_THREADS}-thread run: pass --threads 1,{SCALING_TARGET_THREADS} "
                     "to check the scaling target.")
    passed = sum(1 for r in checked if r.passed)
    lines.append(f"Targets: {passed} PASS, {len(checked) - passed} FAIL." if checked else "Targets: none checked.")
    return lines


def report(cfg: Config, work: Workload, rows: Sequence[Row], markdown: bool, load_before: str) -> str:
    head, tail = header_lines(cfg, work, load_before), notes(cfg, work, rows)
    if markdown:
        return "\n".join(["## fastpaillier vs python-paillier (phe) vs gmpy2", "",
                          *(f"- {line}" for line in head), "", render_markdown(rows), "",
                          *(f"- {line}" for line in tail)])
    return "\n".join(["fastpaillier vs python-paillier (phe) vs gmpy2", *(f"  {line}" for line in head), "",
                      render_text(rows), "", *(f"* {line}" for line in tail)])


# ---- peers (optional installs, benchmarks/peers.py) ------------------------------------------

PEER_DISTINCT = 32  # fresh encryptions tiled into each peer's addition operands


def peer_measurements(peer_set: Sequence[peerlib.Peer], work: Workload, cfg: Config) -> list[Measurement]:
    """Encryption, decryption and addition of every peer on 1 thread, on phe's batch sizes."""
    values = work.plaintexts[:cfg.phe_batch]
    measurements = []
    for peer in peer_set:
        peer_work = peerlib.make_work(peer, values, cfg.phe_add_batch, PEER_DISTINCT)
        measurements += [Measurement((peer.name, op, 1), fn, items)
                         for op, fn, items in peerlib.operations(peer, peer_work)]
    return measurements


def peer_report(peer_set: Sequence[peerlib.Peer], left_out: dict[str, str], times: dict[Key, float],
                cfg: Config, markdown: bool) -> str:
    """The second table: each peer's time per ciphertext over fastpaillier's (1 thread), phe beside them."""
    fp_times = {op: times[("fastpaillier", row, 1)] for op, row in peerlib.FASTPAILLIER_ROWS.items()}
    peer_times = {(lib, op): t for (lib, op, threads), t in times.items() if threads == 1}
    references = {f"phe {phe.__version__}": {op: times[("phe", op, 1)] for op in peerlib.OPERATIONS}}
    batches = (f"{cfg.phe_batch} ciphertexts per encrypt/decrypt call, {cfg.phe_add_batch} additions per add "
               f"call (operands tiled from {PEER_DISTINCT} encryptions), as for phe")
    return peerlib.render(peer_set, left_out, fp_times, peer_times, cfg.bits, batches, references, markdown)


# ---- main -------------------------------------------------------------------------------------

def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args.bits, args.threads, args.quick, args.reps)
    progress(f"generating a {cfg.bits}-bit key pair and the inputs ...")
    keys = make_keys(cfg.bits)
    work = make_workload(keys, cfg)
    verify(keys, work)
    ops = operations(keys, work)
    use_peers = args.peers if args.peers is not None else bool(peerlib.available())
    peer_set, left_out = peerlib.load(cfg.bits, progress) if use_peers else ([], {})
    if use_peers and not peer_set:
        progress("no peer library to measure: " + "; ".join(f"{name}: {why}" for name, why in left_out.items()))
    extra = peer_measurements(peer_set, work, cfg)
    progress(f"timing fastpaillier ({', '.join(map(str, cfg.threads))} threads), phe and gmpy2"
             + "".join(f", {peer.title()}" for peer in peer_set) + f" in {cfg.reps} interleaved rounds ...")
    load_before = load_average()
    times = measure(keys, work, ops, cfg, extra)
    print(report(cfg, work, build_rows(ops, cfg, times), args.markdown, load_before))
    if peer_set:
        print()
        print(peer_report(peer_set, left_out, times, cfg, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
