"""The DJN value h_s is checkable and bound to the key's fingerprint; key bytes are self-delimiting.

Issue 10, item 2: a public key whose h_s was 1 + 2^895 n used to load, compare equal to the real key
and share its fingerprint, while every DJN encryption under it showed the low 895 bits of the
plaintext.  Keys now carry h (h_s = h^n mod n^2, recomputed on load), and the fingerprint and
equality of a DJN key cover h and h_s.  Item 5: version 2 key bodies end with an extension count,
so a key cut anywhere (before its extensions included) no longer parses.
"""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _wire
from fastpaillier.testing import ciphertext_ints, djn_exponent_bits


@pytest.fixture(scope="module")
def djn_small(small_keys):
    sk = small_keys[1].with_djn()
    return sk.public_key, sk


@pytest.fixture(scope="module")
def djn_2048(keys_2048):
    sk = keys_2048[1].with_djn()
    return sk.public_key, sk


def _v1_public(pk, h_s: int) -> bytes:
    """A public key as version 1 wrote it: fingerprint of n, h_s as a trailing extension."""
    return (_wire.header(_wire.KIND_PUBLIC_KEY, _wire.key_fingerprint(pk.n), 1) + _wire.u32_bigint(pk.n)
            + _wire.extension(_wire.EXT_DJN_BASE, h_s))


def _v1_private(sk, h_s: int | None) -> bytes:
    ext = b"" if h_s is None else _wire.extension(_wire.EXT_DJN_BASE, h_s)
    return (_wire.header(_wire.KIND_PRIVATE_KEY, _wire.key_fingerprint(sk.public_key.n), 1)
            + _wire.u32_bigint(sk.p) + _wire.u32_bigint(sk.q) + ext)


def test_the_leak_is_real(keys_2048):
    # Why h_s must be checked: under h_s = 1 + 2^895 n a "DJN encryption" (1 + m n) h_s^a mod n^2 is
    # 1 + (m + a 2^895) n, whose low 895 bits of (c - 1) / n are those of m.
    pk, _ = keys_2048
    n, n2 = gmpy2.mpz(pk.n), gmpy2.mpz(pk.nsquare)
    forged = 1 + (gmpy2.mpz(1) << 895) * n
    m = gmpy2.mpz(0x1234_5678_9ABC_DEF0_1122_3344)
    a = gmpy2.mpz(1) << (djn_exponent_bits(pk) - 1) | 12345
    c = (1 + m * n) * gmpy2.powmod(forged, a, n2) % n2
    assert (c - 1) // n % (1 << 895) == m


def test_forged_h_s_is_refused_everywhere(keys_2048, djn_2048):
    pk, sk = keys_2048
    dpk, dsk = djn_2048
    forged = 1 + 2**895 * pk.n
    with pytest.raises(fp.InvalidKeyError, match="djn_h"):
        fp.PublicKey(pk.n, djn_base=forged)  # h_s alone is not accepted
    with pytest.raises(fp.InvalidKeyError, match="h\\^n"):
        fp.PublicKey(pk.n, djn_h=dpk.djn_h, djn_base=forged)
    with pytest.raises(fp.SerializationError, match="version 1"):
        fp.PublicKey.from_bytes(_v1_public(pk, forged))  # the bytes that used to load
    blob = bytearray(dpk.to_bytes())
    hs_at = blob.index(_wire.extension(_wire.EXT_DJN_BASE, dpk.djn_base))
    forged_blob = (bytes(blob[:hs_at]) + _wire.extension(_wire.EXT_DJN_BASE, forged)
                   + _wire.extension(_wire.EXT_DJN_H, dpk.djn_h))
    with pytest.raises(fp.SerializationError):
        fp.PublicKey.from_bytes(forged_blob)
    with pytest.raises(fp.InvalidKeyError, match="n-th residue"):
        fp.PrivateKey(sk.p, sk.q, djn_base=forged)
    with pytest.raises(fp.SerializationError, match="n-th residue"):
        fp.PrivateKey.from_bytes(_v1_private(sk, forged))


def test_fingerprint_and_equality_cover_h_s(small_keys, djn_small):
    pk, sk = small_keys
    dpk, dsk = djn_small
    other = sk.with_djn()
    opk = other.public_key
    keys = [pk, dpk, opk]
    assert len({k.fingerprint for k in keys}) == 3 and len({k.to_bytes() for k in keys}) == 3
    for i, a in enumerate(keys):
        for j, b in enumerate(keys):
            assert (a == b) == (i == j)
    assert dsk != other and dsk != sk
    # the fingerprint checked out of band pins the exact h_s: a key with another h_s never matches it
    assert fp.PublicKey.from_bytes(opk.to_bytes(), insecure=True).fingerprint != dpk.fingerprint
    assert dpk.fingerprint == _wire.key_fingerprint(dpk.n, (dpk.djn_h, dpk.djn_base))


def test_arrays_under_djn_keys(small_keys, djn_small):
    pk, sk = small_keys
    dpk, dsk = djn_small
    other = sk.with_djn()
    x = np.arange(6, dtype=np.int64)
    under_djn = dpk.encrypt(x)
    under_classic = pk.encrypt(x)
    blob = under_djn.to_bytes()
    assert blob[8:40] == dpk.fingerprint
    assert np.array_equal(dsk.decrypt(fp.EncryptedArray.from_bytes(blob, dpk)), x)
    for wrong in (pk, other.public_key):  # same n, another key: refused with both fingerprints shown
        with pytest.raises(fp.KeyMismatchError, match=dpk.fingerprint.hex()):
            fp.EncryptedArray.from_bytes(blob, wrong)
    with pytest.raises(fp.KeyMismatchError):
        fp.sum_arrays([under_djn, under_classic])
    with pytest.raises(fp.KeyMismatchError):
        fp.FixedPointCodec(pk).encrypt(np.ones(2), dsk)
    # decryption needs n only: each private key of this n decrypts arrays of each key of this n
    for key in (sk, dsk, other):
        assert np.array_equal(key.decrypt(under_djn), x) and np.array_equal(key.decrypt(under_classic), x)
    with pytest.raises(fp.KeyMismatchError, match="modulus"):
        fp.generate_keypair(256, insecure=True)[1].decrypt(under_djn)
    # classic randomness under a DJN key still makes arrays of the DJN key
    assert dpk.encrypt(x, randomness="classic").to_bytes()[8:40] == dpk.fingerprint


def test_legacy_djn_private_key_loads_and_upgrades(djn_small, tmp_path):
    dpk, dsk = djn_small
    loaded = fp.PrivateKey.from_bytes(_v1_private(dsk, dpk.djn_base), insecure=True)
    assert loaded == dsk and loaded.public_key.djn_h == dpk.djn_h
    assert loaded.public_key.fingerprint == dpk.fingerprint  # the v2 fingerprint, which covers h, h_s
    x = np.arange(4, dtype=np.int64)
    assert np.array_equal(dsk.decrypt(loaded.public_key.encrypt(x)), x)
    path = tmp_path / "key"
    path.write_bytes(_v1_private(dsk, dpk.djn_base))
    fp.PrivateKey.load(path, insecure=True).save(path)
    assert path.read_bytes() == dsk.to_bytes() and path.read_bytes()[4] == 2
    # in memory too: PrivateKey(p, q, djn_base=h_s) derives h
    assert fp.PrivateKey(dsk.p, dsk.q, insecure=True, djn_base=dpk.djn_base) == dsk
    assert fp.PrivateKey(dsk.p, dsk.q, insecure=True, djn_h=dpk.djn_h) == dsk


def test_legacy_djn_public_key_is_refused_unless_dropped(small_keys, djn_small):
    pk, _ = small_keys
    dpk, _ = djn_small
    blob = _v1_public(dpk, dpk.djn_base)
    with pytest.raises(fp.SerializationError, match="drop_legacy_djn=True"):
        fp.PublicKey.from_bytes(blob, insecure=True)
    classic = fp.PublicKey.from_bytes(blob, insecure=True, drop_legacy_djn=True)
    assert classic == pk and classic.djn_base is None and classic.randomness == "classic"
    # arrays saved under the version-1-era key carried the fingerprint of n: they load under it
    x = np.arange(3, dtype=np.int64)
    old_array = fp.EncryptedArray(pk, dpk.encrypt(x).ciphertexts).to_bytes()
    assert np.array_equal(djn_small[1].decrypt(fp.EncryptedArray.from_bytes(old_array, classic)), x)


@pytest.mark.parametrize("which", ["public", "private"])
def test_version_2_djn_key_cut_anywhere_is_refused(djn_small, which):
    dpk, dsk = djn_small
    key = dpk if which == "public" else dsk
    parse = fp.PublicKey.from_bytes if which == "public" else fp.PrivateKey.from_bytes
    blob = key.to_bytes()
    ext_at = len(blob) - len(_wire.extensions(dpk._djn_fields()))
    assert parse(blob, insecure=True) == key
    for cut in range(len(blob)):
        with pytest.raises(fp.SerializationError):
            parse(blob[:cut], insecure=True)
    # in particular just before the extension block, and after its count
    for cut in (ext_at, ext_at + 1):
        with pytest.raises(fp.SerializationError, match="truncated"):
            parse(blob[:cut], insecure=True)


def test_version_1_cut_before_its_extension_reads_as_classic(small_keys, djn_small):
    # The limitation version 2 removes: version 1 had no count, so a DJN key cut exactly before its
    # extension was a valid classic key.  Version 1 files still load (older keys keep working).
    _, sk = small_keys
    _, dsk = djn_small
    blob = _v1_private(dsk, dsk.public_key.djn_base)
    cut = blob[: len(_v1_private(dsk, None))]
    assert fp.PrivateKey.from_bytes(cut, insecure=True) == sk


def test_with_djn_keeps_h_and_encrypts(djn_small):
    dpk, dsk = djn_small
    assert dpk.djn_h is not None and pow(dpk.djn_h, dpk.n, dpk.nsquare) == dpk.djn_base
    assert gmpy2.gcd(dpk.djn_h - 1, dpk.n) == 1 and gmpy2.gcd(dpk.djn_h + 1, dpk.n) == 1
    # -h is a square mod n (h = -x^2)
    assert gmpy2.jacobi(-dpk.djn_h % dsk.p, dsk.p) == 1 and gmpy2.jacobi(-dpk.djn_h % dsk.q, dsk.q) == 1
    x = np.arange(8, dtype=np.int64)
    assert np.array_equal(dsk.decrypt(dpk.encrypt(x)), x)
    assert len(set(ciphertext_ints(dsk.encrypt(np.zeros(8, dtype=np.int64))))) == 8
