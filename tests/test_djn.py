"""DJN fixed-base randomness: correctness against gmpy2, CRT vs public, serialization, interop."""

from __future__ import annotations

import secrets
import struct

import gmpy2
import numpy as np
import pytest
from phe import paillier

import fastpaillier as fp
from fastpaillier import _limbs, _native, _wire
from fastpaillier.testing import ciphertext_ints, djn_exponent_bits, encrypt_with_a, encrypt_with_r


@pytest.fixture(scope="module")
def djn_small(small_keys):
    """The 256-bit test key with a DJN base."""
    _, sk = small_keys
    sk = sk.with_djn()
    return sk.public_key, sk


@pytest.fixture(scope="module")
def djn_tiny(tiny_keys):
    _, sk = tiny_keys
    sk = sk.with_djn()
    return sk.public_key, sk


@pytest.fixture(scope="module")
def djn_2048(keys_2048):
    _, sk = keys_2048
    sk = sk.with_djn()
    return sk.public_key, sk


@pytest.fixture
def ifma_path(tier):
    """Runs the test on every kernel tier the CPU has (ifma, mulx, portable, gmp)."""
    return tier


def _exponents(bits: int, count: int) -> list[int]:
    return [0, 1, 2, (1 << bits) - 1, 1 << (bits - 1)] + [secrets.randbits(bits) for _ in range(count - 5)]


# ---- keys and API ---------------------------------------------------------------------------

def test_classic_stays_the_default(small_keys, keys_2048):
    for pk, sk in (small_keys, keys_2048):
        assert pk.djn_base is None and pk.randomness == "classic"
    pk, _ = fp.generate_keypair(512, insecure=True)
    assert pk.djn_base is None and pk.randomness == "classic"


def test_generate_keypair_with_djn():
    pk, sk = fp.generate_keypair(512, insecure=True, randomness="djn")
    assert pk.randomness == "djn" and sk.public_key is pk
    h = pk.djn_base
    assert 1 < h < pk.nsquare and gmpy2.gcd(h, pk.n) == 1
    # an n-th residue: h^lambda = 1 mod n^2
    lam = (sk.p - 1) * (sk.q - 1)
    assert pow(h, lam, pk.nsquare) == 1
    x = np.arange(50, dtype=np.int64)
    assert np.array_equal(sk.decrypt(pk.encrypt(x)), x)


def test_with_djn_keeps_the_key(small_keys, djn_small):
    pk, sk = small_keys
    dpk, dsk = djn_small
    assert (dsk.p, dsk.q) == (sk.p, sk.q) and dpk.n == pk.n
    # h and h_s are part of the key: its fingerprint and equality cover them (issue 10, item 2)
    assert dpk != pk and dpk.fingerprint != pk.fingerprint and dsk != sk
    assert dpk.without_djn() == pk and dpk.without_djn().fingerprint == pk.fingerprint
    assert pow(dpk.djn_h, dpk.n, dpk.nsquare) == dpk.djn_base and 1 < dpk.djn_h < dpk.n
    assert "DJN" in repr(dpk) and "DJN" not in repr(pk)
    again = sk.with_djn().public_key
    assert again.djn_base != dpk.djn_base and again != dpk  # fresh x each time
    assert again.fingerprint != dpk.fingerprint


def test_randomness_argument_errors(small_keys, djn_small):
    pk, sk = small_keys
    with pytest.raises(fp.InvalidArgumentError, match="with_djn"):
        pk.encrypt(1, randomness="djn")
    with pytest.raises(fp.InvalidArgumentError, match="with_djn"):
        sk.encrypt(1, randomness="djn")
    with pytest.raises(fp.InvalidArgumentError, match="with_djn"):
        pk.precompute_obfuscators(2, randomness="djn", background=False)
    for bad in ("DJN", "r^n", 1, b"djn"):
        with pytest.raises(fp.InvalidArgumentError, match="randomness"):
            djn_small[0].encrypt(1, randomness=bad)
    with pytest.raises(fp.InvalidArgumentError, match="randomness"):
        fp.generate_keypair(512, insecure=True, randomness="fast")


# ---- correctness ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["tiny", "small"])
def test_djn_ciphertexts_decrypt_small_keys(which, djn_tiny, djn_small, ifma_path):
    pk, sk = djn_tiny if which == "tiny" else djn_small
    x = np.arange(min(40, pk.n - 1), dtype=np.int64)
    for key in (pk, sk):
        for threads in (1, 2):
            enc = key.encrypt(x, threads=threads, randomness="djn")
            assert np.array_equal(sk.decrypt(enc), x)
    assert np.array_equal(sk.decrypt(pk.encrypt(x)), x)  # the key's default is DJN


def test_djn_ciphertexts_decrypt_2048(djn_2048, ifma_path):
    pk, sk = djn_2048
    values = [0, 1, pk.n - 1] + [secrets.randbelow(pk.n) for _ in range(14)]
    for key in (pk, sk):
        enc = key.encrypt(np.array(values, dtype=object), threads=2)
        assert _limbs.rows_to_ints(sk.decrypt_limbs(enc)) == values
        assert len(set(ciphertext_ints(enc))) == len(values)


def test_djn_and_classic_ciphertexts_add(djn_2048):
    pk, sk = djn_2048
    x = np.arange(20, dtype=np.int64) * 1000
    y = np.arange(20, dtype=np.int64) + 7
    djn = pk.encrypt(x, randomness="djn")
    classic = pk.encrypt(y, randomness="classic")
    djn_crt = sk.encrypt(y, randomness="djn")
    classic_crt = sk.encrypt(x, randomness="classic")
    assert np.array_equal(sk.decrypt(djn + classic), x + y)
    assert np.array_equal(sk.decrypt(djn_crt + classic_crt + djn), 2 * x + y)
    # a key without h_s (same n) decrypts and combines them too
    plain_sk = fp.PrivateKey(sk.p, sk.q)
    assert np.array_equal(plain_sk.decrypt(djn + classic), x + y)


def test_same_plaintext_gives_distinct_ciphertexts(djn_small):
    pk, sk = djn_small
    for key in (pk, sk):
        enc = key.encrypt(np.zeros(64, dtype=np.int64))
        assert len(set(ciphertext_ints(enc))) == 64


@pytest.mark.parametrize("which", ["tiny", "small", "2048"])
def test_fixed_base_table_matches_powmod(which, djn_tiny, djn_small, djn_2048, ifma_path):
    pk, sk = {"tiny": djn_tiny, "small": djn_small, "2048": djn_2048}[which]
    bits = djn_exponent_bits(pk)
    assert bits == (pk.bits + 1) // 2 + 128
    a = _exponents(bits, 19)
    zero = np.zeros(len(a), dtype=np.int64)
    want = [int(gmpy2.powmod(pk.djn_base, e, pk.nsquare)) for e in a]
    assert ciphertext_ints(encrypt_with_a(pk, zero, a)) == want       # comb table mod n^2
    assert ciphertext_ints(encrypt_with_a(sk, zero, a, threads=2)) == want  # CRT tables mod p^2, q^2


def test_crt_djn_equals_public_djn(djn_2048, ifma_path):
    pk, sk = djn_2048
    bits = djn_exponent_bits(pk)
    a = _exponents(bits, 13)
    m = np.array([secrets.randbelow(pk.n) for _ in a], dtype=object)
    public = encrypt_with_a(pk, m, a)
    crt = encrypt_with_a(sk, m, a)
    assert ciphertext_ints(public) == ciphertext_ints(crt)
    n, n2 = pk.n, pk.nsquare
    assert ciphertext_ints(public) == [(1 + int(mi) * n) * pow(pk.djn_base, e, n2) % n2 for mi, e in zip(m, a)]
    assert _limbs.rows_to_ints(sk.decrypt_limbs(crt)) == [int(v) for v in m]


def test_djn_is_classic_with_r_equal_to_h_to_the_a(djn_small):
    # h_s^a = (h^a)^n, so a DJN ciphertext is the classic one with r = h^a mod n (h unknown here,
    # but any h_s = y^n works the same way: check with a chosen y).
    pk, sk = djn_small
    y = secrets.randbelow(pk.n - 2) + 2
    key = fp.PrivateKey(sk.p, sk.q, insecure=True, djn_base=pow(y, pk.n, pk.nsquare))
    a = [secrets.randbits(djn_exponent_bits(pk)) for _ in range(5)]
    r = [pow(y, e, pk.n) for e in a]
    m = np.arange(5, dtype=np.int64)
    assert ciphertext_ints(encrypt_with_a(key, m, a)) == ciphertext_ints(encrypt_with_r(pk, m, r))


def test_encrypt_with_a_rejects_bad_exponents(djn_small, small_keys):
    pk, _ = djn_small
    bits = djn_exponent_bits(pk)
    with pytest.raises(fp.PlaintextRangeError):
        encrypt_with_a(pk, [1], [1 << bits])
    with pytest.raises(fp.PlaintextRangeError):
        encrypt_with_a(pk, [1], [-1])
    with pytest.raises(fp.InvalidArgumentError):
        encrypt_with_a(pk, [1, 2], [1])
    with pytest.raises(fp.InvalidArgumentError):
        encrypt_with_a(small_keys[0], [1], [1])


# ---- pool, rerandomization, codecs --------------------------------------------------------------

def test_djn_obfuscator_pool(small_primes):
    SMALL_P, SMALL_Q = small_primes
    sk = fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True).with_djn()
    pk = sk.public_key
    pk.precompute_obfuscators(6, background=False)  # the key's default: DJN
    sk.precompute_obfuscators(4, randomness="djn", background=False)
    sk.precompute_obfuscators(3, randomness="classic", background=False)
    assert pk.obfuscators_available == 13
    x = np.arange(12, dtype=np.int64)
    enc = pk.encrypt(x)  # drains the 10 DJN obfuscators, 2 fresh; classic pool untouched
    assert pk.obfuscators_available == 3
    assert np.array_equal(sk.decrypt(enc), x)
    enc = pk.encrypt(x[:5], randomness="classic")
    assert pk.obfuscators_available == 0
    assert np.array_equal(sk.decrypt(enc), x[:5])
    # pooled DJN obfuscators are encryptions of 0 of the form h_s^a: they pass the decryption check
    pk.precompute_obfuscators(2, background=False)
    assert not sk.decrypt(fp.EncryptedArray(pk, pk._djn_pool.take(2))).any()


def test_djn_rerandomize(djn_small, ifma_path):
    pk, sk = djn_small
    x = np.arange(9, dtype=np.int64)
    enc = pk.encrypt(x, randomness="classic")
    for key in (None, pk, sk):
        for randomness in (None, "djn", "classic"):
            again = enc.rerandomize(key, randomness=randomness)
            assert np.array_equal(sk.decrypt(again), x)
            assert not set(ciphertext_ints(again)) & set(ciphertext_ints(enc))


def test_codecs_with_djn(djn_2048):
    pk, sk = djn_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=4, frac_bits=10)
    values = np.linspace(-5, 5, 300)
    a = codec.encrypt(values, sk)
    b = codec.encrypt(values, pk, randomness="classic")
    c = codec.encrypt(values, pk, randomness="djn", threads=2)
    got = sk.decrypt(fp.sum_arrays([a, b, c]))
    assert np.abs(got - 3 * values).max() <= codec.max_rounding_error(3)
    fixed = fp.FixedPointCodec(pk)
    assert np.abs(sk.decrypt(fixed.encrypt(values, pk)) - values).max() <= fixed.max_rounding_error()


# ---- serialization ----------------------------------------------------------------------------

def test_serialization_round_trip_with_djn_base(djn_small, tmp_path):
    pk, sk = djn_small
    blob = pk.to_bytes()
    body_at = len(_wire.header(_wire.KIND_PUBLIC_KEY, pk.fingerprint) + _wire.u32_bigint(pk.n))
    assert blob[4] == 2  # key format version 2
    assert blob[body_at:] == (bytes([2]) + _wire.extension(_wire.EXT_DJN_BASE, pk.djn_base)
                              + _wire.extension(_wire.EXT_DJN_H, pk.djn_h))
    loaded = fp.PublicKey.from_bytes(blob, insecure=True)
    assert loaded == pk and loaded.djn_h == pk.djn_h and loaded.randomness == "djn" and loaded.to_bytes() == blob
    sk_loaded = fp.PrivateKey.from_bytes(sk.to_bytes(), insecure=True)
    assert sk_loaded == sk and sk_loaded.public_key.djn_h == pk.djn_h and sk_loaded.to_bytes() == sk.to_bytes()
    sk.save(tmp_path / "k")
    assert fp.PrivateKey.load(tmp_path / "k", insecure=True).public_key == pk
    x = np.arange(10, dtype=np.int64)
    assert np.array_equal(sk_loaded.decrypt(loaded.encrypt(x)), x)
    arr = loaded.encrypt(x)
    assert np.array_equal(sk.decrypt(fp.EncryptedArray.from_bytes(arr.to_bytes(), pk)), x)


def test_old_format_without_djn_base_still_loads(small_keys, djn_small):
    pk, sk = small_keys
    old_public = _wire.header(_wire.KIND_PUBLIC_KEY, pk.fingerprint, 1) + _wire.u32_bigint(pk.n)
    old_private = (_wire.header(_wire.KIND_PRIVATE_KEY, pk.fingerprint, 1) + _wire.u32_bigint(sk.p)
                   + _wire.u32_bigint(sk.q))
    loaded = fp.PublicKey.from_bytes(old_public, insecure=True)
    assert loaded == pk and loaded.djn_base is None and loaded.randomness == "classic"
    assert fp.PrivateKey.from_bytes(old_private, insecure=True) == sk
    # version 2 of a classic key: the same fields plus an extension count of 0, the same fingerprint
    assert pk.to_bytes() == old_public[:4] + b"\2" + old_public[5:] + b"\0"
    assert sk.to_bytes() == old_private[:4] + b"\2" + old_private[5:] + b"\0"
    # the fingerprint of a DJN key covers h and h_s, not n alone
    assert djn_small[0].to_bytes()[8:40] != old_public[8:40]


def _public_blob(pk, h_s: int, h: int) -> bytes:
    return (_wire.header(_wire.KIND_PUBLIC_KEY, _wire.key_fingerprint(pk.n, (h, h_s))) + _wire.u32_bigint(pk.n)
            + _wire.extensions({_wire.EXT_DJN_BASE: h_s, _wire.EXT_DJN_H: h}))


def _private_blob(sk, h_s: int, h: int) -> bytes:
    return (_wire.header(_wire.KIND_PRIVATE_KEY, _wire.key_fingerprint(sk.public_key.n, (h, h_s)))
            + _wire.u32_bigint(sk.p) + _wire.u32_bigint(sk.q)
            + _wire.extensions({_wire.EXT_DJN_BASE: h_s, _wire.EXT_DJN_H: h}))


def test_corrupted_djn_base_is_rejected(djn_small):
    pk, sk = djn_small
    n, n2, p, h = pk.n, pk.nsquare, sk.p, pk.djn_h
    assert fp.PublicKey.from_bytes(_public_blob(pk, pk.djn_base, h), insecure=True) == pk
    for bad in (0, 1, n2 - 1, n2, n2 + 5, p, p * 12345, n, 2**600, 1 + n, 1 + 2**70 * n,
                pk.djn_base * (1 + n) % n2, pk.djn_base ^ 1 << 40):
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(_public_blob(pk, bad, h), insecure=True)
        with pytest.raises(fp.SerializationError):
            fp.PrivateKey.from_bytes(_private_blob(sk, bad, h), insecure=True)
        with pytest.raises(fp.InvalidKeyError):  # h_s alone is never accepted by a public key
            fp.PublicKey(n, insecure=True, djn_base=bad)
        with pytest.raises(fp.InvalidKeyError):
            fp.PublicKey(n, insecure=True, djn_h=h, djn_base=bad)
        with pytest.raises(fp.InvalidKeyError):
            fp.PrivateKey(sk.p, sk.q, insecure=True, djn_base=bad)
    # h itself: a unit of Z_n, not +-1 modulo p or q
    for bad_h in (0, 1, n - 1, n, n + 1, p, 2 * p, 1 + sk.q, sk.q - 1, 2**300):
        h_s = pow(bad_h, n, n2) if bad_h else 1
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(_public_blob(pk, h_s, bad_h), insecure=True)
        with pytest.raises(fp.InvalidKeyError):
            fp.PublicKey(n, insecure=True, djn_h=bad_h)
    # not an n-th residue: no h gives it, and the private key cannot derive one
    not_residue = pk.djn_base * (1 + n) % n2
    with pytest.raises(fp.InvalidKeyError, match="n-th residue"):
        fp.PrivateKey(sk.p, sk.q, insecure=True, djn_base=not_residue)
    # a flipped bit in h_s or in h inside a valid blob
    for blob in (pk.to_bytes(), sk.to_bytes()):
        parse = fp.PublicKey.from_bytes if blob[5] == _wire.KIND_PUBLIC_KEY else fp.PrivateKey.from_bytes
        h_at = len(blob) - len(_wire.u32_bigint(h))
        for pos in (h_at - 3, h_at - 60, len(blob) - 1, len(blob) - 20):
            corrupted = bytearray(blob)
            corrupted[pos] ^= 0x10
            with pytest.raises(fp.SerializationError):
                parse(bytes(corrupted), insecure=True)
    with pytest.raises(fp.InvalidArgumentError, match="djn_h"):
        fp.PublicKey(n, insecure=True, djn_h="12")
    with pytest.raises(fp.InvalidArgumentError, match="djn_base"):
        fp.PublicKey(n, insecure=True, djn_h=h, djn_base="12")


def test_bad_extensions_are_rejected(djn_small):
    pk, _ = djn_small
    blob = pk.to_bytes()
    ext_hs = _wire.extension(_wire.EXT_DJN_BASE, pk.djn_base)
    ext_h = _wire.extension(_wire.EXT_DJN_H, pk.djn_h)
    body = blob[: -len(ext_hs) - len(ext_h) - 1]
    assert body + b"\2" + ext_hs + ext_h == blob
    cases = {
        "duplicate": body + b"\3" + ext_hs + ext_hs + ext_h,
        "count": body + b"\3" + ext_hs + ext_h,
        "count 255": body + b"\xff" + ext_hs + ext_h,
        "out of order": body + b"\2" + ext_h + ext_hs,
        "h only": body + b"\1" + ext_h,
        "h_s only": body + b"\1" + ext_hs,
        "count 1 of 2": body + b"\1" + ext_hs + ext_h,
        "count 0 of 2": body + b"\0" + ext_hs + ext_h,
        "oversized length": body + b"\1\x01" + struct.pack("<I", 2**31) + b"\x01",
    }
    for tag in (0, 3, 255):
        cases[f"tag {tag}"] = body + b"\2" + bytes([tag]) + ext_hs[1:] + ext_h
    for name, bad in cases.items():
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(bad, insecure=True)
    with pytest.raises(fp.SerializationError, match="extension tag"):
        fp.PublicKey.from_bytes(cases["tag 3"], insecure=True)
    with pytest.raises(fp.SerializationError, match="both h and h_s"):
        fp.PublicKey.from_bytes(cases["h only"], insecure=True)
    for cut in range(1, len(ext_hs) + len(ext_h) + 2):  # every cut, extension boundaries included
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(blob[:-cut], insecure=True)


# ---- interop and the benchmark kernel -------------------------------------------------------------

def test_phe_decrypts_djn_ciphertexts(djn_2048):
    pk, sk = djn_2048
    phe_pk = paillier.PaillierPublicKey(pk.n)
    phe_sk = paillier.PaillierPrivateKey(phe_pk, sk.p, sk.q)
    values = [secrets.randbelow(2**62) for _ in range(6)]
    for enc in (pk.encrypt(np.array(values)), sk.encrypt(np.array(values), randomness="djn")):
        got = [phe_sk.decrypt(paillier.EncryptedNumber(phe_pk, c, 0)) for c in ciphertext_ints(enc)]
        assert got == values
    # and phe's own additions on them
    a, b = (paillier.EncryptedNumber(phe_pk, c, 0) for c in ciphertext_ints(pk.encrypt(np.array(values[:2]))))
    assert phe_sk.decrypt(a + b) == values[0] + values[1]


@pytest.mark.parametrize("gmp", [False, True])
def test_bench_powm_kernel(keys_2048, gmp, ifma_path):
    _, sk = keys_2048
    m = sk.p * sk.p
    limbs = _limbs.limb_count(m)
    bases = [secrets.randbelow(m) for _ in range(11)] + [0, 1, m - 1]
    exps = [secrets.randbits(1024) for _ in range(11)] + [5, 0, (1 << 1024) - 1]
    out = _native.bench_powm(_limbs.ints_to_rows(bases, limbs), _limbs.ints_to_rows(exps, 16),
                             _limbs.int_to_limbs(m, limbs), 1024, gmp, 2)
    assert _limbs.rows_to_ints(out) == [pow(b, e, m) for b, e in zip(bases, exps)]


def test_tables_are_built_once_under_concurrent_first_use(small_primes):
    import threading

    SMALL_P, SMALL_Q = small_primes

    sk = fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True).with_djn()  # fresh key: tables not built yet
    pk = sk.public_key
    x = np.arange(30, dtype=np.int64)
    results: list[np.ndarray] = []

    def work(key) -> None:
        results.append(sk.decrypt(key.encrypt(x, threads=2)))

    workers = [threading.Thread(target=work, args=(key,)) for key in (pk, sk, pk, sk)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 4 and all(np.array_equal(r, x) for r in results)
    worker = sk.precompute_obfuscators(5, randomness="djn")  # background thread
    worker.join()
    assert pk.obfuscators_available == 5
