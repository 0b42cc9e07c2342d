"""Crypto demo: encrypted aggregation of K clients' model updates on built-in synthetic data.

Run with ``python -m fastpaillier [--bits 2048] [--clients 4] [--values 200000]``.
``python -m fastpaillier keygen --out DIR`` writes a key pair instead (see _keygen.py).
Each simulated client holds a synthetic model update (deterministic, seeded);
clients pack and encrypt their updates, a server holding only the public key
adds the ciphertexts, and a client decrypts the aggregate.  The demo checks
the result against the plaintext sum and reports timings and sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from . import PackedCodec, generate_keypair, get_num_threads, set_num_threads, sum_arrays


def synthetic_updates(clients: int, values: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic float32 'model updates', one per client, shaped like small conv layers."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(values) * 0.02).astype(np.float32) for _ in range(clients)]


def main(argv: list[str] | None = None) -> int:
    """Runs the demo (or the keygen command); returns a process exit code."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in[:1] == ["keygen"]:
        from ._keygen import keygen

        return keygen(args_in[1:])
    parser = argparse.ArgumentParser(prog="python -m fastpaillier", description=__doc__.splitlines()[0],
                                     epilog="Key files for deployment: python -m fastpaillier keygen --out DIR "
                                            "(see keygen --help).")
    parser.add_argument("--bits", type=int, default=2048, help="key size in bits (default 2048)")
    parser.add_argument("--clients", type=int, default=4, help="number of simulated clients")
    parser.add_argument("--values", type=int, default=200_000, help="values per client update")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        set_num_threads(args.threads)
    if args.clients < 1 or args.values < 1:
        parser.error("--clients and --values must be >= 1")

    print(f"fastpaillier demo: {args.clients} clients x {args.values:,} values, {args.bits}-bit key, "
          f"{get_num_threads()} threads on {os.cpu_count()} cores")
    t0 = time.perf_counter()
    public_key, private_key = generate_keypair(args.bits)
    print(f"  key generation            {time.perf_counter() - t0:8.2f} s   ({public_key!r})")

    # 16-bit values with 12 fractional bits: |update| < 8 with resolution 2^-12, summable K times.
    codec = PackedCodec(public_key, value_bits=16, max_summands=max(args.clients, 2), frac_bits=12)
    updates = synthetic_updates(args.clients, args.values)
    t0 = time.perf_counter()
    encrypted = [codec.encrypt(u, private_key) for u in updates]
    t_enc = time.perf_counter() - t0
    blob_bytes = len(encrypted[0].to_bytes())
    print(f"  encrypt (all clients)     {t_enc:8.2f} s   {codec!r}")
    print(f"  ciphertexts per client    {encrypted[0].ciphertexts.shape[0]:8d}     "
          f"{blob_bytes / 1e6:.2f} MB serialized ({blob_bytes / (4 * args.values):.1f}x the float32 update)")

    t0 = time.perf_counter()
    aggregate = sum_arrays(encrypted)  # the server's work: public key only
    t_sum = time.perf_counter() - t0
    print(f"  server aggregation        {t_sum:8.3f} s")

    t0 = time.perf_counter()
    decrypted = private_key.decrypt(aggregate)
    t_dec = time.perf_counter() - t0
    print(f"  decrypt aggregate         {t_dec:8.2f} s")

    expected = np.sum(np.stack(updates).astype(np.float64), axis=0)
    error = float(np.max(np.abs(decrypted.astype(np.float64) - expected)))
    bound = codec.max_rounding_error(args.clients)
    ok = error <= bound
    print(f"  max |decrypted - plaintext sum| = {error:.3g} (codec bound {bound:.3g}): "
          f"{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
