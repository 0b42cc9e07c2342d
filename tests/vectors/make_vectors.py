#!/usr/bin/env python3
"""Writes tests/vectors/paillier_kat.json: Paillier known-answer vectors computed with plain gmpy2.

Run from anywhere:  python tests/vectors/make_vectors.py
(add --check-provenance to re-derive the hard-coded primes from their seeds).

This script deliberately does not import fastpaillier: the vectors are an independent reference.
Every vector is c = (1 + m n) r^n mod n^2, i.e. Paillier with g = n + 1, for a fixed (m, r).

Keys:
- "phe-tiny": python-paillier's documented regression key n = 126869 = 293 * 433 with
  m = 10100, r = 74384 -> c = 935906717 (phe/tests/paillier_test.py,
  testRawEncryptDecryptRegression0) and m = 1, r = 1 -> c = 126870 (testEncryptIsRandom).
- "fixed-2048", "fixed-3072": primes generated ONCE with gmpy2 (see generate_primes: a Mersenne
  Twister gmpy2.random_state(seed), top two bits set, next_prime) and hard-coded below, so the JSON
  does not depend on the GMP version.  Plaintexts and r values are derived from SHA-512 of a label,
  so they are reproducible on any machine too.

Serialized formats ("key_formats", for fixed-2048): the key in format versions 1 and 2, classic
and DJN (x derived from SHA-512 of a label, h = -x^2 mod n, h_s = h^n mod n^2), their fingerprints,
and a raw encrypted array of DJN ciphertexts (1 + m n) h_s^a mod n^2 under the DJN key, once with the
version 2 DJN fingerprint and once with the n-only fingerprint that version 1 DJN keys had.

The output is byte-for-byte reproducible: running the script twice gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import struct
import sys

import gmpy2

OUT = pathlib.Path(__file__).resolve().parent / "paillier_kat.json"

# Seeds and resulting primes (from generate_primes(seed, bits); re-check with --check-provenance).
SEED_2048 = 20240611
P_2048 = int(
    "e9a0aca9dd2ef71cc77550b0acbcb7a5117d3bdec3c1c089ce9f8f0df102e77edd28105ba4eff0aef9a6d988ba3efa3f"
    "3db976d3f6f57241d19b0a1384684eefa2fc8bdcbf17a470641b2ac667ecacee170e84fdf39f84e086b89d89c89dd4a5"
    "5b9203e5447022f871757c9cb90787e5d14c891db5407d448e46fe6e0cf7061b", 16)
Q_2048 = int(
    "d013bf09d4058ecb9f606a28e938a0586e319d08a8c4e1e0d125935051bb5a11e4f30a1b962e5527a29d8c3cb64ee145"
    "10317c459e00de5d7217057412da553dbb635d91d4ba80efcb2dfc1dfd8ff7936dca8a6064668f896cb5e5e4ea980fd0"
    "0b7bd942d70e605720eaf1f1d5b87349db8f71474cf80bba98fe7d6b5a1e2137", 16)

SEED_3072 = 20240612
P_3072 = int(
    "d7add20856b546a675e6913fe332b1e265ea0cb838e931d810e1d8b6207e0683864668d74c0e462a5439b7a610de07ee"
    "7e14940ed897c325ca07a119259e01773ee37fb14422793c375e3a60cf58ae629f67aa179a0dce74bed37e8fc19315cc"
    "ce9809d750d0329ec8d0aba944de806a8c6a4f63d4c09e83c52965d8a6f5fd5b1d3605a79f2024435db2a5c03655cb89"
    "9d4aef0e9da98760faa558e0ce0de59528dc9b065fe3caa4949b7dea3c7631385e4a0f29a99470d134835d4cc02fe181", 16)
Q_3072 = int(
    "c0a8cdbd663b87214d96a5007fe83690061391afaef1116762cc5102ae29831e527ea077120ad766a31f2ae7f2f704d6"
    "155450d838335ca97bf8c1aa5db0fdd6cc4fb0557bfcac4f0a0c02e8e515fcb72c352dbcee0846b0d2db3972f79125c4"
    "bf7f2a0b6ad69f3780014f18e5ae655cc17a76ee55231920b38005f0ed31e0e02d841197e50cea7e761fe1a5afb10f78"
    "a068f7d3b01feeba1e42e3881201c15abf63f06e0cf6213d272b4de47e023bb6f310e183beeb20916ab7858ef27feea3", 16)


def generate_primes(seed: int, bits: int) -> tuple[int, int]:
    """The procedure that produced the hard-coded primes (returned as (larger, smaller))."""
    state = gmpy2.random_state(seed)
    primes: list[int] = []
    while len(primes) < 2:
        x = gmpy2.mpz_urandomb(state, bits)
        x = gmpy2.bit_set(gmpy2.bit_set(x, bits - 1), bits - 2)  # top two bits: n has 2*bits bits
        p = int(gmpy2.next_prime(x))
        if p.bit_length() == bits and p not in primes:
            primes.append(p)
    return max(primes), min(primes)


def derive(label: str, bound: int, *, unit_mod: int | None = None) -> int:
    """A reproducible integer in [1, bound) from SHA-512(label || counter); a unit mod unit_mod if given."""
    counter = 0
    nbytes = (bound.bit_length() + 7) // 8 + 16
    while True:
        stream = b""
        block = 0
        while len(stream) < nbytes:
            stream += hashlib.sha512(f"{label}/{counter}/{block}".encode()).digest()
            block += 1
        value = int.from_bytes(stream[:nbytes], "big") % bound
        counter += 1
        if value == 0:
            continue
        if unit_mod is not None and gmpy2.gcd(value, unit_mod) != 1:
            continue
        return value


def encrypt(n: int, m: int, r: int) -> int:
    """c = (1 + m n) r^n mod n^2 (g = n + 1)."""
    nsq = n * n
    return int((1 + m * n) * gmpy2.powmod(r, n, nsq) % nsq)


def decrypt(p: int, q: int, c: int) -> int:
    """Textbook decryption m = L(c^lambda mod n^2) mu mod n, L(x) = (x - 1) / n."""
    n = p * q
    nsq = n * n
    lam = gmpy2.lcm(p - 1, q - 1)
    mu = gmpy2.invert((gmpy2.powmod(n + 1, lam, nsq) - 1) // n, n)
    return int((gmpy2.powmod(c, lam, nsq) - 1) // n * mu % n)


def check_key(p: int, q: int, bits: int) -> None:
    assert gmpy2.is_prime(p, 50) and gmpy2.is_prime(q, 50), "hard-coded value is not prime"
    assert p != q
    n = p * q
    assert n.bit_length() == bits, (n.bit_length(), bits)
    assert gmpy2.gcd(n, (p - 1) * (q - 1)) == 1


def hx(x: int) -> str:
    return format(int(x), "x")


def make_case(label: str, p: int, q: int, m: int, r: int) -> dict[str, str]:
    n = p * q
    assert 0 <= m < n and 0 < r < n and gmpy2.gcd(r, n) == 1, label
    c = encrypt(n, m, r)
    # Independent cross-checks of the vector: generic g^m with g = n + 1, and decryption.
    nsq = n * n
    assert c == int(gmpy2.powmod(n + 1, m, nsq) * gmpy2.powmod(r, n, nsq) % nsq), label
    assert 0 < c < nsq
    assert decrypt(p, q, c) == m, label
    return {"label": label, "m": hx(m), "r": hx(r), "c": hx(c)}


def big_key_cases(name: str, p: int, q: int, full: bool) -> list[dict[str, str]]:
    n = p * q
    r = lambda tag: derive(f"{name}/r/{tag}", n, unit_mod=n)  # noqa: E731
    cases = [
        make_case("m=0", p, q, 0, r("zero")),
        make_case("m=n-1", p, q, n - 1, r("n-1")),
        make_case("m=k*p", p, q, derive(f"{name}/kp", q) * p, r("kp")),
        make_case("m=random", p, q, derive(f"{name}/m", n), r("random")),
    ]
    if full:
        cases += [
            make_case("m=1", p, q, 1, r("one")),
            make_case("m=k*q", p, q, derive(f"{name}/kq", p) * q, r("kq")),
            make_case("m=42,r=1", p, q, 42, 1),
            make_case("m=random2,r=n-1", p, q, derive(f"{name}/m2", n), n - 1),
            make_case("m=2^63-1", p, q, 2**63 - 1, r("int64max")),
        ]
    return cases


# ---- serialized formats (an independent writer of the layout documented in README / _wire.py) ----

def u32_bigint(x: int) -> bytes:
    raw = x.to_bytes((x.bit_length() + 7) // 8, "big")
    return struct.pack("<I", len(raw)) + raw


def header(version: int, kind: int, fingerprint: bytes) -> bytes:
    return struct.pack("<4sBBH32s", b"FPAI", version, kind, 0, fingerprint)


def fingerprint(n: int, djn: tuple[int, int] | None = None) -> bytes:
    if djn is None:
        return hashlib.sha256(b"fastpaillier/public-key/v1\x00" + n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()
    h, h_s = djn
    return hashlib.sha256(b"fastpaillier/public-key/djn/v2\x00" + u32_bigint(n) + u32_bigint(h)
                          + u32_bigint(h_s)).digest()


def key_formats(name: str, p: int, q: int) -> dict[str, str]:
    """Public and private keys in format versions 1 and 2, classic and DJN, and DJN arrays."""
    n = p * q
    nsq = n * n
    x = derive(f"{name}/djn/x", n, unit_mod=n)
    h = (n - x * x % n) % n
    assert gmpy2.gcd(h - 1, n) == 1 and gmpy2.gcd(h + 1, n) == 1, "h = +-1 mod p or q"
    h_s = int(gmpy2.powmod(h, n, nsq))
    fp_classic, fp_djn = fingerprint(n), fingerprint(n, (h, h_s))
    ext1 = b"\x01" + u32_bigint(h_s)  # version 1: h_s only, to the end of the data
    ext2 = b"\x02" + b"\x01" + u32_bigint(h_s) + b"\x02" + u32_bigint(h)  # version 2: count, tags 1, 2
    pub, priv = u32_bigint(n), u32_bigint(p) + u32_bigint(q)
    # A raw int64 array of three DJN ciphertexts under the DJN key.
    nsq_limbs = (nsq.bit_length() + 63) // 64
    exp_bits = (n.bit_length() + 1) // 2 + 128
    ms = [0, 1, 2**62 + 12345]
    aa = [derive(f"{name}/djn/a/{i}", 1 << exp_bits) for i in range(len(ms))]
    cts = [int((1 + m * n) * gmpy2.powmod(h_s, a, nsq) % nsq) for m, a in zip(ms, aa)]
    for m, c in zip(ms, cts):
        assert decrypt(p, q, c) == m
    body = (struct.pack("<BBBB", 0, 0, 1, 0) + struct.pack("<Q", len(ms)) + u32_bigint(1)
            + struct.pack("<QI", len(ms), nsq_limbs) + b"".join(c.to_bytes(8 * nsq_limbs, "little") for c in cts))
    out = {
        "djn_x": x, "djn_h": h, "djn_h_s": h_s,
        "array_m": ms, "array_a": aa, "array_c": cts,
    }
    hexed = {k: hx(v) if isinstance(v, int) else [hx(e) for e in v] for k, v in out.items()}
    hexed.update({
        "fingerprint_classic": fp_classic.hex(),
        "fingerprint_djn": fp_djn.hex(),
        "public_v1_classic": (header(1, 1, fp_classic) + pub).hex(),
        "private_v1_classic": (header(1, 2, fp_classic) + priv).hex(),
        "public_v2_classic": (header(2, 1, fp_classic) + pub + b"\x00").hex(),
        "private_v2_classic": (header(2, 2, fp_classic) + priv + b"\x00").hex(),
        "public_v1_djn": (header(1, 1, fp_classic) + pub + ext1).hex(),
        "private_v1_djn": (header(1, 2, fp_classic) + priv + ext1).hex(),
        "public_v2_djn": (header(2, 1, fp_djn) + pub + ext2).hex(),
        "private_v2_djn": (header(2, 2, fp_djn) + priv + ext2).hex(),
        "array_djn": (header(1, 3, fp_djn) + body).hex(),
        "array_djn_legacy": (header(1, 3, fp_classic) + body).hex(),
    })
    return hexed


def build() -> dict:
    # (a) python-paillier's tiny key, exactly as its regression tests state it.
    tiny_p, tiny_q, tiny_n = 293, 433, 126869
    assert tiny_p * tiny_q == tiny_n
    assert encrypt(tiny_n, 10100, 74384) == 935906717
    assert encrypt(tiny_n, 1, 1) == 126870
    tiny = {
        "name": "phe-tiny", "bits": tiny_n.bit_length(), "p": hx(tiny_q), "q": hx(tiny_p), "n": hx(tiny_n),
        "cases": [make_case("phe regression 0", tiny_q, tiny_p, 10100, 74384),
                  make_case("phe m=1,r=1", tiny_q, tiny_p, 1, 1)],
    }
    assert tiny["cases"][0]["c"] == hx(935906717)

    keys = [tiny]
    for name, p, q, bits, full in (("fixed-2048", P_2048, Q_2048, 2048, True),
                                   ("fixed-3072", P_3072, Q_3072, 3072, False)):
        check_key(p, q, bits)
        keys.append({"name": name, "bits": bits, "p": hx(p), "q": hx(q), "n": hx(p * q),
                     "cases": big_key_cases(name, p, q, full)})
    return {
        "description": "Paillier known-answer vectors, g = n + 1: c = (1 + m*n) * r^n mod n^2. "
                       "Integers are lowercase hex without 0x. Generated by make_vectors.py with gmpy2.",
        "keys": keys,
        "key_formats": {"fixed-2048": key_formats("fixed-2048", P_2048, Q_2048)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-provenance", action="store_true",
                        help="re-derive the hard-coded primes from their seeds and compare")
    parser.add_argument("--output", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    if args.check_provenance:
        assert generate_primes(SEED_2048, 1024) == (P_2048, Q_2048), "2048-bit primes differ from seed"
        assert generate_primes(SEED_3072, 1536) == (P_3072, Q_3072), "3072-bit primes differ from seed"
        print("hard-coded primes match their seeds")
    data = build()
    args.output.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    total = sum(len(k["cases"]) for k in data["keys"])
    print(f"wrote {total} vectors for {len(data['keys'])} keys to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
