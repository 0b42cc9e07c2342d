"""Known-answer tests: fastpaillier against vectors computed independently with gmpy2.

The vectors live in tests/vectors/paillier_kat.json (written by tests/vectors/make_vectors.py,
which does not import fastpaillier).  Each case is c = (1 + m n) r^n mod n^2 for a fixed (m, r).
"""

from __future__ import annotations

import functools
import json
import pathlib

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs
from fastpaillier.testing import array_from_ints, ciphertext_ints, encrypt_with_r

KAT_PATH = pathlib.Path(__file__).resolve().parent / "vectors" / "paillier_kat.json"
KAT = json.loads(KAT_PATH.read_text())


def _h(s: str) -> int:
    return int(s, 16)


KEYS = {k["name"]: k for k in KAT["keys"]}
CASES = [(k["name"], c) for k in KAT["keys"] for c in k["cases"]]


@functools.lru_cache(maxsize=None)
def _keypair(name: str) -> tuple[fp.PublicKey, fp.PrivateKey]:
    key = KEYS[name]
    sk = fp.PrivateKey(_h(key["p"]), _h(key["q"]), insecure=key["bits"] < fp.MIN_SECURE_BITS)
    return sk.public_key, sk


def _objects(values: list[int]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def test_vector_file_is_complete():
    """The file holds the tiny key plus 2048- and 3072-bit keys with the boundary plaintexts."""
    assert set(KEYS) == {"phe-tiny", "fixed-2048", "fixed-3072"}
    labels = {c["label"] for c in KEYS["fixed-2048"]["cases"]}
    assert {"m=0", "m=1", "m=n-1", "m=k*p", "m=k*q", "m=random"} <= labels
    for key in KAT["keys"]:
        p, q, n = _h(key["p"]), _h(key["q"]), _h(key["n"])
        assert p * q == n and n.bit_length() == key["bits"]
        for case in key["cases"]:
            assert 0 <= _h(case["m"]) < n and 0 < _h(case["r"]) < n and 0 < _h(case["c"]) < n * n


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_matches_vector_key(name):
    pk, sk = _keypair(name)
    key = KEYS[name]
    assert pk.n == _h(key["n"])
    assert pk.bits == key["bits"]
    assert {sk.p, sk.q} == {_h(key["p"]), _h(key["q"])}
    assert sk.p > sk.q


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}:{c['label']}" for n, c in CASES])
def test_encrypt_with_r_matches_vector(name, case):
    pk, sk = _keypair(name)
    m, r, c = _h(case["m"]), _h(case["r"]), _h(case["c"])
    classic = encrypt_with_r(pk, _objects([m]), [r])
    crt = encrypt_with_r(sk, _objects([m]), [r])
    assert classic.shape == crt.shape == (1,)
    assert ciphertext_ints(classic) == [c], "public-key (classic) path disagrees with the vector"
    assert ciphertext_ints(crt) == [c], "private-key (CRT) path disagrees with the vector"


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}:{c['label']}" for n, c in CASES])
def test_decrypt_vector(name, case):
    pk, sk = _keypair(name)
    m, c = _h(case["m"]), _h(case["c"])
    arr = array_from_ints(pk, [c])
    rows = sk.decrypt_limbs(arr)
    assert rows.shape == (1, pk.n_limbs) and rows.dtype == np.uint64
    assert _limbs.rows_to_ints(rows) == [m]
    if m < 2**63:
        out = sk.decrypt(arr)
        assert out.dtype == np.int64 and out.tolist() == [m]


@pytest.mark.parametrize("name", sorted(KEYS))
@pytest.mark.parametrize("threads", [1, 2])
def test_vectors_as_one_batch(name, threads):
    """All cases of a key in one batch (split over threads) give the same ciphertexts and plaintexts."""
    pk, sk = _keypair(name)
    cases = KEYS[name]["cases"]
    ms = [_h(c["m"]) for c in cases]
    rs = [_h(c["r"]) for c in cases]
    cs = [_h(c["c"]) for c in cases]
    assert ciphertext_ints(encrypt_with_r(pk, _objects(ms), rs, threads=threads)) == cs
    assert ciphertext_ints(encrypt_with_r(sk, _objects(ms), rs, threads=threads)) == cs
    assert _limbs.rows_to_ints(sk.decrypt_limbs(array_from_ints(pk, cs), threads=threads)) == ms


@pytest.mark.parametrize("name", ["fixed-2048", "fixed-3072"])
def test_vectors_through_limb_encryption_rows(name):
    """encrypt_limbs round-trips the vector plaintexts (given as limb rows) through decrypt_limbs."""
    pk, sk = _keypair(name)
    ms = [_h(c["m"]) for c in KEYS[name]["cases"]]
    rows = _limbs.ints_to_rows(ms, pk.n_limbs)
    for key in (pk, sk):
        enc = key.encrypt_limbs(rows)
        assert enc.shape == (len(ms),)
        assert _limbs.rows_to_ints(sk.decrypt_limbs(enc)) == ms
        # A fresh random r: never the vector's ciphertext with its fixed r.
        assert set(ciphertext_ints(enc)).isdisjoint(_h(c["c"]) for c in KEYS[name]["cases"])


# ---- python-paillier's documented tiny key -------------------------------------------------------


def test_phe_documented_regression_vector(tiny_keys):
    """phe/tests/paillier_test.py: n = 126869, raw_encrypt(10100, r=74384) == 935906717."""
    pk, sk = tiny_keys
    assert pk.n == 126869 and pk.g == 126870 and pk.nsquare == 126869**2
    assert (sk.p, sk.q) == (433, 293)
    for key in (pk, sk):
        enc = encrypt_with_r(key, 10100, 74384)
        assert enc.shape == ()
        assert ciphertext_ints(enc) == [935906717]
    # and raw_decrypt(935906717) == 10100
    assert sk.decrypt(array_from_ints(pk, [935906717])).tolist() == [10100]
    assert sk.decrypt(array_from_ints(pk, [935906717], shape=())).tolist() == 10100


def test_phe_documented_r_equals_one(tiny_keys):
    """phe's testEncryptIsRandom: encrypt(1, r_value=1) has ciphertext n + 1 = 126870."""
    pk, sk = tiny_keys
    assert ciphertext_ints(encrypt_with_r(pk, [1], [1])) == [126870]
    assert ciphertext_ints(encrypt_with_r(sk, [1], [1])) == [126870]
    enc = pk.encrypt(np.array([1, 1]))
    assert 126870 not in ciphertext_ints(enc)
    assert sk.decrypt(enc).tolist() == [1, 1]


def test_tiny_key_every_plaintext_small_batch(tiny_keys):
    """On the tiny key, a batch covering the whole plaintext range edges matches the formula."""
    pk, sk = tiny_keys
    n, nsq = pk.n, pk.nsquare
    ms = [0, 1, 2, 292, 293, 433, 434, 10100, n - 2, n - 1]
    rs = [1, 2, 74384, n - 1, 5, 7, 11, 13, 126868, 3]
    expected = [(1 + m * n) * pow(r, n, nsq) % nsq for m, r in zip(ms, rs)]
    assert ciphertext_ints(encrypt_with_r(pk, np.array(ms), rs)) == expected
    assert ciphertext_ints(encrypt_with_r(sk, np.array(ms), rs)) == expected
    assert sk.decrypt(array_from_ints(pk, expected)).tolist() == ms


# ---- serialized key formats (versions 1 and 2) and DJN arrays (issue 10, items 2 and 5) ----------

FORMATS = KAT["key_formats"]["fixed-2048"]


def _djn_keypair() -> tuple[fp.PublicKey, fp.PrivateKey]:
    key = KEYS["fixed-2048"]
    sk = fp.PrivateKey(_h(key["p"]), _h(key["q"]), djn_h=_h(FORMATS["djn_h"]))
    return sk.public_key, sk


def test_djn_key_values_match_vector():
    pk, _ = _djn_keypair()
    x = _h(FORMATS["djn_x"])
    assert pk.djn_h == (-x * x) % pk.n == _h(FORMATS["djn_h"])
    assert pk.djn_base == _h(FORMATS["djn_h_s"])
    assert pk.fingerprint.hex() == FORMATS["fingerprint_djn"]
    assert pk.without_djn().fingerprint.hex() == FORMATS["fingerprint_classic"] == _keypair("fixed-2048")[0].fingerprint.hex()


def test_version_2_bytes_match_vectors():
    pk, sk = _keypair("fixed-2048")
    dpk, dsk = _djn_keypair()
    for key, name in ((pk, "public_v2_classic"), (sk, "private_v2_classic"), (dpk, "public_v2_djn"),
                      (dsk, "private_v2_djn")):
        assert key.to_bytes().hex() == FORMATS[name], name
        parse = fp.PublicKey.from_bytes if isinstance(key, fp.PublicKey) else fp.PrivateKey.from_bytes
        assert parse(bytes.fromhex(FORMATS[name])) == key


def test_version_1_vectors_load():
    pk, sk = _keypair("fixed-2048")
    dpk, dsk = _djn_keypair()
    assert fp.PublicKey.from_bytes(bytes.fromhex(FORMATS["public_v1_classic"])) == pk
    assert fp.PrivateKey.from_bytes(bytes.fromhex(FORMATS["private_v1_classic"])) == sk
    # a version 1 DJN private key: h is derived from h_s with the factors; the key gets the v2 fingerprint
    legacy = fp.PrivateKey.from_bytes(bytes.fromhex(FORMATS["private_v1_djn"]))
    assert legacy == dsk and legacy.public_key.djn_h == dpk.djn_h
    assert legacy.to_bytes().hex() == FORMATS["private_v2_djn"]
    # a version 1 DJN public key cannot be checked: refused, or loaded as the classic key on request
    blob = bytes.fromhex(FORMATS["public_v1_djn"])
    with pytest.raises(fp.SerializationError, match="drop_legacy_djn"):
        fp.PublicKey.from_bytes(blob)
    assert fp.PublicKey.from_bytes(blob, drop_legacy_djn=True) == pk


def test_djn_array_vectors():
    from fastpaillier.testing import encrypt_with_a

    dpk, dsk = _djn_keypair()
    ms = [_h(v) for v in FORMATS["array_m"]]
    cs = [_h(v) for v in FORMATS["array_c"]]
    arr = fp.EncryptedArray.from_bytes(bytes.fromhex(FORMATS["array_djn"]), dpk)
    assert ciphertext_ints(arr) == cs and dsk.decrypt(arr).tolist() == ms
    made = encrypt_with_a(dpk, np.array(ms, dtype=np.int64), [_h(v) for v in FORMATS["array_a"]])
    assert made.to_bytes().hex() == FORMATS["array_djn"]
    # arrays written under a version-1-era DJN key carry the fingerprint of n alone: they belong to
    # the classic key of that n, and the DJN private key (same n) decrypts them
    legacy = bytes.fromhex(FORMATS["array_djn_legacy"])
    with pytest.raises(fp.KeyMismatchError):
        fp.EncryptedArray.from_bytes(legacy, dpk)
    with pytest.raises(fp.KeyMismatchError):
        fp.EncryptedArray.from_bytes(bytes.fromhex(FORMATS["array_djn"]), dpk.without_djn())
    old = fp.EncryptedArray.from_bytes(legacy, dpk.without_djn())
    assert dsk.decrypt(old).tolist() == ms and ciphertext_ints(old) == cs
