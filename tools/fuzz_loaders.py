#!/usr/bin/env python3
"""Fuzzes every loader of fastpaillier with mutated inputs (issue 10).

Loaders: PublicKey.from_bytes and PrivateKey.from_bytes (format versions 1 and 2, classic and DJN
keys, with and without drop_legacy_djn), EncryptedArray.from_bytes (raw, FixedPointCodec and
PackedCodec arrays, empty and non-empty shapes) and the codec metadata reader (codec_from_wire).
Seeds are valid objects under a 17-bit, a 256-bit and a 2048-bit key (fixed primes, so runs
repeat); each input is a seed with 1 to 4 stacked mutations drawn from a generator seeded by
(seed, index): bit flips, bytes and integers set to boundary values, length, shape, row and count
fields overwritten (the seed's field map), truncation, insertion, deletion, duplication, splicing
with another seed and trailing junk.

After a successful load the object is used the way a receiver would: keys re-serialize and load
again (private keys also encrypt and decrypt); arrays decrypt with the seed's private key, sum over
every axis and over all values (where the codec allows), reshape and re-serialize; codecs encode,
encrypt and decrypt a few values.

Oracle, per input: only FastPaillierError may be raised (anything else is "foreign"); the input
takes at most --max-seconds (1 s); its Python and numpy allocations (tracemalloc peak) stay below
--max-alloc-mib; the worker's peak RSS is reported.  A worker that dies (a crash) is reported with
the input it was working on (the range is replayed one input at a time to find it).

    python tools/fuzz_loaders.py --inputs 1000000 --workers 1          # a long run
    python tools/fuzz_loaders.py --inputs 20000 --quick                # a minute
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import resource
import selectors
import struct
import subprocess
import sys
import time
import tracemalloc
from typing import Callable

import numpy as np

import fastpaillier as fp
from fastpaillier import _limbs, _native, _wire
from fastpaillier.codec import codec_from_wire

# Fixed primes: the test suite's 256-bit key, python-paillier's tiny key and the KAT 2048-bit key.
SMALL_P = 0xF7E75FDC469067FFDC4E847C51F452DF
SMALL_Q = 0xE85CED54AF57E53E092113E62F436F4F
KAT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "vectors", "paillier_kat.json")


def _kat_primes(name: str) -> tuple[int, int]:
    """(p, q) of a key of the known-answer file (written by tests/vectors/make_vectors.py)."""
    with open(KAT_FILE) as fh:
        (key,) = [k for k in json.load(fh)["keys"] if k["name"] == name]
    return int(key["p"], 16), int(key["q"], 16)


P_2048, Q_2048 = _kat_primes("fixed-2048")

INTERESTING_U8 = [0, 1, 2, 3, 0x1F, 0x20, 0x21, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_U32 = [0, 1, 2, 3, 7, 8, 63, 64, 65, 255, 256, 2**16 - 1, 2**16, 2**16 + 1, 2**31 - 1, 2**31,
                   2**32 - 1, 4096, 4097, 2048, 2049, 512]
INTERESTING_U64 = INTERESTING_U32 + [2**32, 2**40, 2**47, 2**48, 2**48 + 1, 2**62, 2**63 - 1, 2**63,
                                     2**64 - 1, 2**8, 2**12, 2**10, 2**17]


@dataclasses.dataclass(frozen=True)
class Seed:
    """A valid serialized object, its parser's name, its field map and the keys it belongs to."""

    name: str
    data: bytes
    parser: str  # "public" | "private" | "array" | "codec"
    fields: tuple[tuple[int, int], ...]  # (offset, size) of length, count and shape fields
    meta_end: int  # end of the metadata (arrays: where the ciphertexts start)
    public_key: fp.PublicKey
    private_key: fp.PrivateKey


@dataclasses.dataclass
class Stats:
    """Counts of one worker, merged by the parent."""

    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    foreign: int = 0
    slow: int = 0
    over_alloc: int = 0
    max_seconds: float = 0.0
    max_alloc: int = 0
    max_rss_kib: int = 0
    by_parser: dict = dataclasses.field(default_factory=dict)
    examples: list = dataclasses.field(default_factory=list)

    def merge(self, other: dict) -> None:
        for name in ("inputs", "accepted", "rejected", "foreign", "slow", "over_alloc"):
            setattr(self, name, getattr(self, name) + other[name])
        for name in ("max_seconds", "max_alloc", "max_rss_kib"):
            setattr(self, name, max(getattr(self, name), other[name]))
        for parser, counts in other["by_parser"].items():
            mine = self.by_parser.setdefault(parser, [0, 0])
            mine[0] += counts[0]
            mine[1] += counts[1]
        self.examples.extend(other["examples"][: max(0, 20 - len(self.examples))])


# ---- seeds ------------------------------------------------------------------------------------

def _djn_key(p: int, q: int, insecure: bool) -> fp.PrivateKey:
    """The DJN key of (p, q) with a fixed h = -x^2 mod n (x = 3, 4, ...: the first that passes)."""
    n = p * q
    for x in range(3, 1000):
        h = (-x * x) % n
        try:
            return fp.PrivateKey(p, q, insecure=insecure, djn_h=h)
        except fp.InvalidKeyError:
            continue
    raise AssertionError("no DJN base found")


def _u32_fields(body: bytes, start: int, count: int) -> tuple[list[tuple[int, int]], int]:
    """(field map of `count` consecutive u32-prefixed integers from start, end offset)."""
    fields, pos = [], start
    for _ in range(count):
        (length,) = struct.unpack_from("<I", body, pos)
        fields.append((pos, 4))
        pos += 4 + length
    return fields, pos


def _key_seed(name: str, key, version: int) -> Seed:
    """A key in format `version` (1: h_s only, no count; 2: the current bytes)."""
    pk = key.public_key if isinstance(key, fp.PrivateKey) else key
    sk = key if isinstance(key, fp.PrivateKey) else None
    kind = _wire.KIND_PRIVATE_KEY if sk else _wire.KIND_PUBLIC_KEY
    if version == 2:
        data = key.to_bytes()
    else:
        ints = (sk.p, sk.q) if sk else (pk.n,)
        data = _wire.header(kind, _wire.key_fingerprint(pk.n), 1) + b"".join(_wire.u32_bigint(v) for v in ints)
        if pk.djn_base is not None:
            data += _wire.extension(_wire.EXT_DJN_BASE, pk.djn_base)
    header_fields = [(4, 1), (5, 1), (6, 2)]
    fields, pos = _u32_fields(data, 40, 2 if sk else 1)
    if version == 2:
        fields.append((pos, 1))  # extension count
        pos += 1
    while pos < len(data):  # extensions: tag, length
        fields.extend([(pos, 1), (pos + 1, 4)])
        (length,) = struct.unpack_from("<I", data, pos + 1)
        pos += 5 + length
    return Seed(name, data, "private" if sk else "public", tuple(header_fields + fields), len(data), pk,
                sk if sk else None)


def _array_seed(name: str, array: fp.EncryptedArray, sk: fp.PrivateKey) -> Seed:
    data = array.to_bytes()
    ndim = array.ndim
    fields = [(4, 1), (5, 1), (40, 1), (41, 1), (42, 1), (43, 1)]
    fields += [(44 + 8 * i, 8) for i in range(ndim)]
    pos = 44 + 8 * ndim
    params = 0 if array.codec is None else len(array.codec._wire_params())
    fields += [(pos + i, 2) for i in range(0, params, 2)]
    pos += params
    fields.append((pos, 4))  # summands length
    (length,) = struct.unpack_from("<I", data, pos)
    pos += 4 + length
    fields += [(pos, 8), (pos + 8, 4)]  # rows, limbs
    return Seed(name, data, "array", tuple(fields), pos + 12, array.public_key, sk)


def _codec_seed(name: str, codec: fp.Codec, sk: fp.PrivateKey) -> Seed:
    data = bytes([codec.kind]) + codec._wire_params()
    fields = tuple((1 + i, 2) for i in range(0, len(data) - 1, 2))
    return Seed(name, data, "codec", ((0, 1),) + fields, len(data), codec.public_key, sk)


def _fixed_encryption(pk: fp.PublicKey, values: np.ndarray, codec: fp.Codec | None,
                      rng: random.Random) -> fp.EncryptedArray:
    """values encrypted (raw ints, or encoded by codec) with r drawn from rng: the same bytes every run."""
    if codec is None:
        rows, shape, dtype = _limbs.ints_to_rows(values.ravel().tolist(), pk.n_limbs), values.shape, None
    else:
        rows, shape, dtype = codec.encode(values)
    r_values = []
    while len(r_values) < rows.shape[0]:
        r_value = rng.randrange(2, pk.n - 1)
        if math.gcd(r_value, pk.n) == 1:
            r_values.append(r_value)
    r = _limbs.ints_to_rows(r_values, pk.n_limbs)
    cts = _native.encrypt_with_r(pk._ctx, np.ascontiguousarray(rows), r, 1)
    return fp.EncryptedArray(pk, cts, shape, codec=codec, dtype=dtype)


def build_seeds(big: bool = True) -> list[Seed]:
    """Valid objects of every kind: keys in both versions, arrays of every codec, codec parameters."""
    keys = [("tiny", fp.PrivateKey(293, 433, insecure=True)), ("small", fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True))]
    keys += [("tiny-djn", _djn_key(293, 433, True)), ("small-djn", _djn_key(SMALL_P, SMALL_Q, True))]
    if big:
        keys += [("2048", fp.PrivateKey(P_2048, Q_2048)), ("2048-djn", _djn_key(P_2048, Q_2048, False))]
    seeds: list[Seed] = []
    rng = random.Random(20261207)  # the seeds' randomness r: fixed, so every process builds the same bytes
    for name, sk in keys:
        for version in (1, 2):
            seeds.append(_key_seed(f"{name}/public-v{version}", sk.public_key, version))
            seeds.append(_key_seed(f"{name}/private-v{version}", sk, version))
        pk = sk.public_key
        codecs: list[fp.Codec | None] = [None]
        if pk.bits >= 64:
            codecs += [fp.FixedPointCodec(pk, frac_bits=10, value_bits=30), fp.PackedCodec(pk, value_bits=12,
                                                                                          max_summands=5, frac_bits=6)]
        else:
            codecs += [fp.FixedPointCodec(pk, frac_bits=2, value_bits=8), fp.PackedCodec(pk, value_bits=4,
                                                                                        max_summands=2, frac_bits=1)]
        for codec in codecs:
            label = "raw" if codec is None else type(codec).__name__
            for shape in [(3,), (2, 3), (), (0,), (0, 4), (2, 0, 3)] if not name.startswith("2048") else [(3,), (0, 2)]:
                size = int(np.prod(shape, dtype=np.int64))
                if codec is None:
                    arr = _fixed_encryption(pk, (np.arange(size, dtype=np.int64) % 7).reshape(shape), None, rng)
                else:
                    arr = _fixed_encryption(pk, (np.linspace(-1, 1, size) * 0.5).reshape(shape), codec, rng)
                seeds.append(_array_seed(f"{name}/{label}{shape}", arr, sk))
            if codec is not None:
                summed = fp.sum_arrays([_fixed_encryption(pk, np.ones(4) * 0.25, codec, rng)] * 2)
                seeds.append(_array_seed(f"{name}/{label}-sum", summed, sk))
                seeds.append(_codec_seed(f"{name}/{label}-codec", codec, sk))
    return seeds


# ---- mutations --------------------------------------------------------------------------------

def _pick_int(rng: random.Random, size: int) -> int:
    pool = {1: INTERESTING_U8, 2: INTERESTING_U32[:13], 4: INTERESTING_U32, 8: INTERESTING_U64}[size]
    value = rng.choice(pool)
    if rng.random() < 0.2:
        value += rng.choice((-1, 1))
    return value % (1 << (8 * size))


def mutate(rng: random.Random, seed: Seed, seeds: list[Seed]) -> bytes:
    """1 to 4 stacked mutations of seed.data."""
    data = bytearray(seed.data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        op = rng.randrange(12)
        if not data:
            data += bytes([rng.randrange(256)])
            continue
        meta = max(1, min(seed.meta_end, len(data)))
        if op == 0:  # flip a bit, mostly in the metadata
            pos = rng.randrange(meta if rng.random() < 0.8 else len(data))
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # a byte to a boundary value
            data[rng.randrange(meta)] = rng.choice(INTERESTING_U8)
        elif op in (2, 3, 4):  # a known field to a boundary value
            offset, size = rng.choice(seed.fields)
            if offset + size <= len(data):
                data[offset:offset + size] = _pick_int(rng, size).to_bytes(size, "little")
        elif op == 5:  # a random u32/u64 anywhere in the metadata
            size = rng.choice((4, 8))
            pos = rng.randrange(meta)
            data[pos:pos + size] = _pick_int(rng, size).to_bytes(size, "little")
        elif op == 6:  # truncate
            del data[rng.randrange(len(data)):]
        elif op == 7:  # insert bytes
            pos = rng.randrange(len(data) + 1)
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 8:  # delete a range
            pos = rng.randrange(len(data))
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 9:  # duplicate a range
            pos = rng.randrange(len(data))
            data[pos:pos] = data[pos:pos + rng.randint(1, 64)]
        elif op == 10:  # splice with another seed of the same parser
            other = rng.choice([s for s in seeds if s.parser == seed.parser])
            cut = rng.randrange(min(len(data), len(other.data)) + 1)
            data = data[:cut] + bytearray(other.data[cut:])
        else:  # trailing junk
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


PARSERS = ("array", "public", "private", "codec")
PARSER_WEIGHTS = (4, 2, 2, 2)


def input_for(index: int, base_seed: int, seeds: list[Seed]) -> tuple[Seed, bytes, random.Random]:
    """The deterministic input number `index` of a run: its seed, its bytes, its generator."""
    rng = random.Random((base_seed << 40) + index)
    parser = rng.choices(PARSERS, PARSER_WEIGHTS)[0]
    # 2048-bit seeds cost up to 20 ms to load (primality, h^n): 1 input in 100
    big = rng.random() < 0.01 and any(s.public_key.bits >= 2048 for s in seeds)
    seed = rng.choice([s for s in seeds if s.parser == parser and (s.public_key.bits >= 2048) == big])
    return seed, mutate(rng, seed, seeds), rng


# ---- the oracle -------------------------------------------------------------------------------

def _use_key(key, seed: Seed) -> None:
    """What a receiver does with a loaded key: re-serialize, reload, and (private) encrypt/decrypt."""
    again = type(key).from_bytes(key.to_bytes(), insecure=True)
    assert again == key, "a loaded key does not survive to_bytes/from_bytes"
    if isinstance(key, fp.PrivateKey):
        x = np.array([0, 1, min(2, key.public_key.n - 1)], dtype=np.int64)
        assert np.array_equal(key.decrypt(key.public_key.encrypt(x)), x), "a loaded private key decrypts wrongly"


def _use_array(arr: fp.EncryptedArray, seed: Seed) -> None:
    """Decrypt, sum over every axis and over all values, reshape, re-serialize."""
    sk = seed.private_key
    out = sk.decrypt(arr)
    assert out.shape == arr.shape
    if arr.codec is None or arr.codec.supports_axis_sum:
        for axis in range(arr.ndim):
            total = arr.sum(axis=axis)
            assert sk.decrypt(total).shape == total.shape
        arr.sum()
    flat = arr.reshape(-1)
    again = fp.EncryptedArray.from_bytes(flat.to_bytes(), arr.public_key)
    assert again.shape == flat.shape


def _use_codec(data: bytes, seed: Seed) -> None:
    reader = _wire.Reader(data, "codec")
    (kind,) = reader.unpack("B")
    codec = codec_from_wire(kind, reader, seed.public_key)
    reader.finish()
    if codec is None:
        return
    values = np.array([0.0, codec.max_value, -codec.max_value, 0.5])
    got = seed.private_key.decrypt(codec.encrypt(values, seed.private_key))
    assert np.abs(got - values).max() <= codec.max_rounding_error(1) + 1e-300, "codec round trip"


def check_input(seed: Seed, data: bytes, rng: random.Random) -> bool:
    """Parses and uses one input; True if it loaded.  Raises only for a foreign exception."""
    try:
        if seed.parser == "public":
            key = fp.PublicKey.from_bytes(data, insecure=True, drop_legacy_djn=rng.random() < 0.5)
            _use_key(key, seed)
        elif seed.parser == "private":
            _use_key(fp.PrivateKey.from_bytes(data, insecure=True), seed)
        elif seed.parser == "array":
            _use_array(fp.EncryptedArray.from_bytes(data, seed.public_key), seed)
        else:
            _use_codec(data, seed)
    except fp.FastPaillierError:
        return False
    return True


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_range(start: int, count: int, base_seed: int, args: argparse.Namespace,
              progress: Callable[[int, Stats], None] | None = None, current: str | None = None) -> Stats:
    """Runs inputs [start, start + count) in this process."""
    seeds = build_seeds(big=not args.quick)
    stats = Stats()
    limit = int(args.max_alloc_mib * 2**20)
    if args.trace_alloc:
        tracemalloc.start()
    for index in range(start, start + count):
        seed, data, rng = input_for(index, base_seed, seeds)
        if current:
            with open(current, "wb") as f:
                f.write(json.dumps({"index": index, "seed": seed.name, "data": data.hex()}).encode())
                f.flush()
                os.fsync(f.fileno())
        rss_before = _rss_kib()
        if args.trace_alloc:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        problem = None
        try:
            loaded = check_input(seed, data, rng)
        except BaseException as exc:  # noqa: BLE001 - the oracle: anything not ours is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            loaded, problem = False, f"foreign {type(exc).__name__}: {exc}"[:300]
            stats.foreign += 1
        elapsed = time.perf_counter() - t0
        alloc = tracemalloc.get_traced_memory()[1] - base if args.trace_alloc else 0
        rss_growth = (_rss_kib() - rss_before) * 1024
        stats.inputs += 1
        stats.accepted += loaded
        stats.rejected += not loaded and problem is None
        counts = stats.by_parser.setdefault(seed.parser, [0, 0])
        counts[0] += 1
        counts[1] += loaded
        stats.max_seconds = max(stats.max_seconds, elapsed)
        stats.max_alloc = max(stats.max_alloc, alloc, rss_growth)
        if elapsed > args.max_seconds:
            stats.slow += 1
            problem = problem or f"slow: {elapsed:.2f} s"
        if max(alloc, rss_growth) > limit:
            stats.over_alloc += 1
            problem = problem or f"allocated {max(alloc, rss_growth) / 2**20:.1f} MiB"
        if problem and len(stats.examples) < 20:
            stats.examples.append({"index": index, "seed": seed.name, "problem": problem, "data": data.hex()[:2000]})
        if progress and (index - start + 1) % args.report_every == 0:
            stats.max_rss_kib = _rss_kib()
            progress(index + 1, stats)
    stats.max_rss_kib = _rss_kib()
    return stats


# ---- the parent: workers, crash and hang detection --------------------------------------------

def _worker_main(args: argparse.Namespace) -> int:
    def progress(next_index: int, stats: Stats) -> None:
        print(json.dumps({"progress": next_index, "stats": dataclasses.asdict(stats)}), flush=True)

    stats = run_range(args.start, args.count, args.seed, args, progress, args.current)
    print(json.dumps({"done": args.start + args.count, "stats": dataclasses.asdict(stats)}), flush=True)
    return 0


def _worker_command(args: argparse.Namespace, start: int, count: int, current: str | None = None) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--start", str(start), "--count", str(count),
           "--seed", str(args.seed), "--max-seconds", str(args.max_seconds), "--max-alloc-mib",
           str(args.max_alloc_mib), "--report-every", str(args.report_every)]
    cmd += ["--quick"] if args.quick else []
    cmd += [] if args.trace_alloc else ["--no-trace-alloc"]
    cmd += ["--current", current] if current else []
    return cmd


def _find_crash(args: argparse.Namespace, start: int, count: int) -> dict:
    """Replays [start, start + count) one input at a time on disk; returns the input that killed it."""
    current = os.path.abspath(f".fuzz-current-{os.getpid()}.json")
    proc = subprocess.run(_worker_command(args, start, count, current), capture_output=True, text=True)
    found = {"returncode": proc.returncode, "stderr": proc.stderr[-2000:]}
    if proc.returncode != 0 and os.path.exists(current):
        with open(current) as f:
            found.update(json.load(f))
    if os.path.exists(current):
        os.unlink(current)
    return found


def _run_workers(args: argparse.Namespace) -> tuple[Stats, list[dict]]:
    total, crashes = Stats(), []
    chunk = -(-args.inputs // args.workers)
    procs = []
    for w in range(args.workers):
        start, count = w * chunk, max(0, min(chunk, args.inputs - w * chunk))
        if count:
            procs.append({"start": start, "count": count, "next": start, "last": None, "seen": time.time(),
                          "proc": subprocess.Popen(_worker_command(args, start, count), stdout=subprocess.PIPE,
                                                   text=True, bufsize=1)})
    t0 = time.time()
    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p["proc"].stdout, selectors.EVENT_READ, p)
    live = len(procs)
    while live:
        for key, _ in sel.select(timeout=5):
            p = key.data
            line = p["proc"].stdout.readline()
            if not line:
                sel.unregister(key.fileobj)
                live -= 1
                rc = p["proc"].wait()
                if p["last"] is None or "done" not in p["last"]:
                    crash = {"range": [p["next"], p["start"] + p["count"]], "returncode": rc}
                    crash.update(_find_crash(args, p["next"], min(args.report_every, p["start"] + p["count"] - p["next"])))
                    crashes.append(crash)
                    if p["last"]:
                        total.merge(p["last"]["stats"])
                else:
                    total.merge(p["last"]["stats"])
                continue
            msg = json.loads(line)
            p["last"], p["seen"] = msg, time.time()
            p["next"] = msg.get("progress", msg.get("done"))
            if not args.json:
                done = sum(q["next"] - q["start"] for q in procs)
                print(f"\r{done}/{args.inputs} inputs, {time.time() - t0:.0f} s", end="", file=sys.stderr, flush=True)
        for p in procs:  # a worker silent for too long is hung: kill it and report the range
            if p["proc"].poll() is None and time.time() - p["seen"] > args.hang_seconds:
                p["proc"].kill()
                crashes.append({"range": [p["next"], p["next"] + args.report_every], "problem": "hang"})
    if not args.json:
        print(file=sys.stderr)
    return total, crashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="mutated inputs in all (default 100000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="run seed: the same seed gives the same inputs")
    parser.add_argument("--max-seconds", type=float, default=1.0, help="time limit per input (default 1 s)")
    parser.add_argument("--max-alloc-mib", type=float, default=64.0,
                        help="allocation limit per input, tracemalloc peak and RSS growth (default 64 MiB)")
    parser.add_argument("--no-trace-alloc", dest="trace_alloc", action="store_false",
                        help="skip tracemalloc (faster; RSS growth is still checked)")
    parser.add_argument("--quick", action="store_true", help="seeds of the 17- and 256-bit keys only")
    parser.add_argument("--report-every", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--hang-seconds", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--current", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fp.set_num_threads(1)
    if args.worker:
        return _worker_main(args)
    t0 = time.time()
    stats, crashes = _run_workers(args)
    summary = {
        "inputs": stats.inputs, "accepted": stats.accepted, "rejected_with_library_errors": stats.rejected,
        "foreign_exceptions": stats.foreign, "crashes": len(crashes), "slow_inputs": stats.slow,
        "over_alloc_inputs": stats.over_alloc, "max_seconds_per_input": round(stats.max_seconds, 4),
        "max_alloc_mib_per_input": round(stats.max_alloc / 2**20, 2), "peak_rss_mib": round(stats.max_rss_kib / 1024, 1),
        "by_parser": {k: {"inputs": v[0], "accepted": v[1]} for k, v in sorted(stats.by_parser.items())},
        "limits": {"seconds": args.max_seconds, "alloc_mib": args.max_alloc_mib, "tracemalloc": args.trace_alloc},
        "seed": args.seed, "workers": args.workers, "wall_seconds": round(time.time() - t0, 1),
        "kernel_tier": fp.kernel_tier(), "examples": stats.examples, "crash_reports": crashes,
    }
    print(json.dumps(summary, indent=1))
    bad = stats.foreign + len(crashes) + stats.slow + stats.over_alloc
    return 1 if bad or stats.inputs != args.inputs else 0


if __name__ == "__main__":
    sys.exit(main())
