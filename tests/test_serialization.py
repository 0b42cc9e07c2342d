"""Binary formats of keys and encrypted arrays: round trips, files, and every kind of corruption."""

from __future__ import annotations

import hashlib
import os
import stat
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpaillier as fp

HEADER = struct.Struct("<4sBBH32s")
KIND_PUBLIC, KIND_PRIVATE, KIND_ARRAY = 1, 2, 3
CODEC_PARAM_BYTES = {0: 0, 1: 4, 2: 8}


# ---- an independent reader/writer of the documented layout --------------------------------

def fingerprint_of(n: int) -> bytes:
    return hashlib.sha256(b"fastpaillier/public-key/v1\x00" + n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()


def bigint(x: int) -> bytes:
    raw = x.to_bytes((x.bit_length() + 7) // 8, "big")
    return struct.pack("<I", len(raw)) + raw


def djn_fingerprint_of(n: int, h: int, h_s: int) -> bytes:
    return hashlib.sha256(b"fastpaillier/public-key/djn/v2\x00" + bigint(n) + bigint(h) + bigint(h_s)).digest()


def header(kind: int, fingerprint: bytes, *, magic=b"FPAI", version=None, flags=0) -> bytes:
    if version is None:  # keys are in format version 2, arrays in version 1
        version = 1 if kind == KIND_ARRAY else 2
    return HEADER.pack(magic, version, kind, flags, fingerprint)


NO_EXTENSIONS = b"\0"  # a version 2 key body ends with its extension count


def parse_array(blob: bytes) -> dict:
    """Splits serialized array bytes into their fields."""
    magic, version, kind, flags, fpr = HEADER.unpack_from(blob, 0)
    pos = HEADER.size
    codec_kind, dtype_code, ndim, reserved = struct.unpack_from("<BBBB", blob, pos)
    pos += 4
    shape = struct.unpack_from(f"<{ndim}Q", blob, pos)
    pos += 8 * ndim
    params = blob[pos : pos + CODEC_PARAM_BYTES[codec_kind]]
    pos += len(params)
    (length,) = struct.unpack_from("<I", blob, pos)
    summands = int.from_bytes(blob[pos + 4 : pos + 4 + length], "big")
    pos += 4 + length
    rows, limbs = struct.unpack_from("<QI", blob, pos)
    pos += 12
    payload = blob[pos:]
    assert len(payload) == rows * limbs * 8
    return dict(magic=magic, version=version, kind=kind, flags=flags, fingerprint=fpr, codec_kind=codec_kind,
                dtype_code=dtype_code, ndim=ndim, reserved=reserved, shape=shape, params=params,
                summands=summands, rows=rows, limbs=limbs, payload=payload)


def build_array(f: dict) -> bytes:
    return b"".join([
        header(f["kind"], f["fingerprint"], magic=f["magic"], version=f["version"], flags=f["flags"]),
        struct.pack("<BBBB", f["codec_kind"], f["dtype_code"], f["ndim"], f["reserved"]),
        struct.pack(f"<{len(f['shape'])}Q", *f["shape"]),
        f["params"],
        bigint(f["summands"]),
        struct.pack("<QI", f["rows"], f["limbs"]),
        f["payload"],
    ])


def with_fields(blob: bytes, **changes) -> bytes:
    f = parse_array(blob)
    f.update(changes)
    return build_array(f)


def payload_row(value: int, limbs: int) -> bytes:
    return value.to_bytes(8 * limbs, "little")


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_small_keys():
    return fp.generate_keypair(256, insecure=True)


@pytest.fixture(scope="module")
def blobs(small_keys):
    """Serialized small objects of every kind: name -> (bytes, parser)."""
    pk, sk = small_keys
    raw = sk.encrypt(np.array([5, 0, pk.n - 1], dtype=object))
    fixed = fp.FixedPointCodec(pk, frac_bits=10, value_bits=30).encrypt(np.array([1.5, -2.0]), sk)
    packed = fp.PackedCodec(pk).encrypt(np.array([[0.5, -1.0, 2.0]], dtype=np.float32), sk)
    return {
        "public": (pk.to_bytes(), lambda b: fp.PublicKey.from_bytes(b, insecure=True)),
        "private": (sk.to_bytes(), lambda b: fp.PrivateKey.from_bytes(b, insecure=True)),
        "raw": (raw.to_bytes(), lambda b: fp.EncryptedArray.from_bytes(b, pk)),
        "fixed": (fixed.to_bytes(), lambda b: fp.EncryptedArray.from_bytes(b, pk)),
        "packed": (packed.to_bytes(), lambda b: fp.EncryptedArray.from_bytes(b, pk)),
    }


ALL_KINDS = ["public", "private", "raw", "fixed", "packed"]
ARRAY_KINDS = ["raw", "fixed", "packed"]


# ---- key round trips ---------------------------------------------------------------------------

def test_public_key_round_trip(small_keys, keys_2048):
    for pk, insecure in ((small_keys[0], True), (keys_2048[0], False)):
        blob = pk.to_bytes()
        assert blob[:4] == b"FPAI" and blob[4] == 2 and blob[5] == KIND_PUBLIC and blob[6:8] == b"\0\0"
        assert blob[8:40] == pk.fingerprint == fingerprint_of(pk.n)
        assert blob[40:] == bigint(pk.n) + NO_EXTENSIONS
        loaded = fp.PublicKey.from_bytes(blob, insecure=insecure)
        assert loaded == pk and loaded.n == pk.n and loaded.fingerprint == pk.fingerprint
        assert loaded.to_bytes() == blob
        assert fp.PublicKey.from_bytes(bytearray(blob), insecure=insecure) == pk
        assert fp.PublicKey.from_bytes(memoryview(blob), insecure=insecure) == pk


def test_private_key_round_trip(small_keys, keys_2048):
    for sk, insecure in ((small_keys[1], True), (keys_2048[1], False)):
        blob = sk.to_bytes()
        assert blob[5] == KIND_PRIVATE and blob[8:40] == sk.public_key.fingerprint
        assert blob[40:] == bigint(sk.p) + bigint(sk.q) + NO_EXTENSIONS
        loaded = fp.PrivateKey.from_bytes(blob, insecure=insecure)
        assert loaded == sk and (loaded.p, loaded.q) == (sk.p, sk.q) and loaded.public_key == sk.public_key
        assert loaded.to_bytes() == blob
        ea = sk.public_key.encrypt(np.array([7, 11]))
        np.testing.assert_array_equal(loaded.decrypt(ea), [7, 11])
        np.testing.assert_array_equal(sk.decrypt(loaded.encrypt(np.array([3]))), [3])


def test_private_key_bytes_with_swapped_primes(small_keys):
    _, sk = small_keys
    blob = header(KIND_PRIVATE, sk.public_key.fingerprint) + bigint(sk.q) + bigint(sk.p) + NO_EXTENSIONS
    loaded = fp.PrivateKey.from_bytes(blob, insecure=True)
    assert loaded == sk and loaded.p > loaded.q


def test_key_files(small_keys, keys_2048, tmp_path):
    pk, sk = keys_2048
    pk.save(tmp_path / "pub.key")
    sk.save(str(tmp_path / "priv.key"))
    assert (tmp_path / "pub.key").read_bytes() == pk.to_bytes()
    assert (tmp_path / "priv.key").read_bytes() == sk.to_bytes()
    assert fp.PublicKey.load(tmp_path / "pub.key") == pk
    assert fp.PrivateKey.load(str(tmp_path / "priv.key")) == sk
    spk, ssk = small_keys
    ssk.save(tmp_path / "small.key")
    assert fp.PrivateKey.load(tmp_path / "small.key", insecure=True) == ssk
    spk.save(tmp_path / "small.pub")
    assert fp.PublicKey.load(tmp_path / "small.pub", insecure=True) == spk


def test_private_key_file_mode(small_keys, tmp_path):
    _, sk = small_keys
    path = tmp_path / "new.key"
    old_umask = os.umask(0)
    try:
        sk.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_private_key_file_mode_when_overwriting(small_keys, tmp_path):
    _, sk = small_keys
    path = tmp_path / "existing.key"
    path.write_bytes(b"x" * 10_000)  # longer than the key: must be truncated
    os.chmod(path, 0o644)
    assert os.stat(path).st_mode & 0o777 == 0o644
    sk.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert path.read_bytes() == sk.to_bytes()
    os.chmod(path, 0o666)
    sk.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert fp.PrivateKey.load(path, insecure=True) == sk


# ---- array round trips ---------------------------------------------------------------------------

def assert_same_array(loaded: fp.EncryptedArray, original: fp.EncryptedArray, sk: fp.PrivateKey) -> None:
    assert loaded.shape == original.shape
    assert loaded.dtype == original.dtype
    assert loaded.summands == original.summands
    assert loaded.codec == original.codec
    assert loaded.public_key == original.public_key
    np.testing.assert_array_equal(loaded.ciphertexts, original.ciphertexts)
    assert loaded.ciphertexts.dtype == np.uint64 and not loaded.ciphertexts.flags.writeable
    a, b = sk.decrypt(loaded), sk.decrypt(original)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    assert loaded.to_bytes() == original.to_bytes()


@pytest.mark.parametrize("shape", [(3,), (2, 3), (), (0,), (0, 2), (1, 1, 2)])
def test_raw_array_round_trip(small_keys, shape):
    pk, sk = small_keys
    size = int(np.prod(shape, dtype=np.int64))
    values = np.arange(size, dtype=np.int64).reshape(shape) * 1000 + 7
    ea = sk.encrypt(values)
    blob = ea.to_bytes()
    f = parse_array(blob)
    assert (f["codec_kind"], f["dtype_code"], f["ndim"], f["shape"]) == (0, 0, len(shape), shape)
    assert (f["summands"], f["rows"], f["limbs"]) == (1, size, pk.nsq_limbs)
    assert f["fingerprint"] == pk.fingerprint
    loaded = fp.EncryptedArray.from_bytes(blob, pk)
    assert_same_array(loaded, ea, sk)
    np.testing.assert_array_equal(sk.decrypt(loaded), values)
    assert_same_array(fp.EncryptedArray.from_bytes(bytearray(blob), pk), ea, sk)
    assert_same_array(fp.EncryptedArray.from_bytes(memoryview(blob), pk), ea, sk)


def test_raw_array_with_summed_values_round_trip(small_keys):
    pk, sk = small_keys
    ea = sk.encrypt(np.arange(4)) * 3 + pk.encrypt(np.arange(4))
    assert_same_array(fp.EncryptedArray.from_bytes(ea.to_bytes(), pk), ea, sk)
    np.testing.assert_array_equal(sk.decrypt(fp.EncryptedArray.from_bytes(ea.to_bytes(), pk)), 4 * np.arange(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (2, 3), (), (0,), (3, 0)])
def test_fixed_point_array_round_trip(small_keys, dtype, shape):
    pk, sk = small_keys
    codec = fp.FixedPointCodec(pk, frac_bits=20, value_bits=50)
    x = np.linspace(-3, 3, int(np.prod(shape, dtype=np.int64))).reshape(shape).astype(dtype)
    for ea in (codec.encrypt(x, sk), fp.sum_arrays([codec.encrypt(x, sk)] * 3)):
        blob = ea.to_bytes()
        f = parse_array(blob)
        assert f["codec_kind"] == 1 and f["params"] == struct.pack("<HH", 20, 50)
        assert f["dtype_code"] == (1 if dtype == np.float32 else 2)
        loaded = fp.EncryptedArray.from_bytes(blob, pk)
        assert_same_array(loaded, ea, sk)
        assert loaded.codec.frac_bits == 20 and loaded.codec.value_bits == 50
    assert fp.EncryptedArray.from_bytes(ea.to_bytes(), pk).summands == 3
    np.testing.assert_allclose(sk.decrypt(fp.EncryptedArray.from_bytes(ea.to_bytes(), pk)), 3 * x,
                               atol=codec.max_rounding_error(3), rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(20,), (3, 9), (), (0,), (2, 0, 3)])
def test_packed_array_round_trip(small_keys, dtype, shape):
    pk, sk = small_keys
    codec = fp.PackedCodec(pk, value_bits=12, max_summands=5, frac_bits=6)
    x = np.linspace(-30, 30, int(np.prod(shape, dtype=np.int64))).reshape(shape).astype(dtype)
    ea = fp.sum_arrays([codec.encrypt(x, sk), codec.encrypt(x, pk)])
    blob = ea.to_bytes()
    f = parse_array(blob)
    assert f["codec_kind"] == 2 and f["params"] == struct.pack("<HHI", 12, 6, 5)
    assert f["summands"] == 2 and f["rows"] == codec.rows_for(x.size)
    loaded = fp.EncryptedArray.from_bytes(blob, pk)
    assert_same_array(loaded, ea, sk)
    assert loaded.codec.params() == (12, 6, 5) and loaded.codec.slots == codec.slots
    np.testing.assert_allclose(sk.decrypt(loaded), 2 * x.astype(np.float64), atol=codec.max_rounding_error(2),
                               rtol=0)
    # the loaded array keeps counting summands against the headroom
    assert (loaded + codec.encrypt(x, sk)).summands == 3
    with pytest.raises(fp.SummandLimitError):
        fp.sum_arrays([loaded, loaded, loaded])


def test_packed_array_round_trip_2048(keys_2048):
    pk, sk = keys_2048
    codec = fp.PackedCodec(pk, value_bits=16, max_summands=8)
    x = np.linspace(-7, 7, 250).reshape(10, 25).astype(np.float32)
    ea = codec.encrypt(x, sk)
    blob = ea.to_bytes()
    assert len(blob) == 40 + 4 + 16 + 8 + 5 + 12 + 3 * pk.nsq_limbs * 8
    loaded = fp.EncryptedArray.from_bytes(blob, pk)
    assert_same_array(loaded, ea, sk)
    assert loaded.codec.slots == 107


# ---- corrupted headers -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
def test_wrong_magic(blobs, kind):
    blob, parse = blobs[kind]
    for magic in (b"FPAJ", b"\0\0\0\0", b"fpai", b"PAIF"):
        with pytest.raises(fp.SerializationError, match="magic"):
            parse(magic + blob[4:])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_wrong_version(blobs, kind):
    blob, parse = blobs[kind]
    for version in ((0, 3, 255) if kind in ("public", "private") else (0, 2, 255)):
        with pytest.raises(fp.SerializationError, match="version"):
            parse(blob[:4] + bytes([version]) + blob[5:])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_nonzero_flags(blobs, kind):
    blob, parse = blobs[kind]
    for flags in (1, 0x100, 0x8000, 0xFFFF):
        with pytest.raises(fp.SerializationError, match="flags"):
            parse(blob[:6] + struct.pack("<H", flags) + blob[8:])


def test_wrong_kind(blobs, small_keys):
    pk, _ = small_keys
    parsers = {
        "public": lambda b: fp.PublicKey.from_bytes(b, insecure=True),
        "private": lambda b: fp.PrivateKey.from_bytes(b, insecure=True),
        "array": lambda b: fp.EncryptedArray.from_bytes(b, pk),
    }
    sources = {"public": blobs["public"][0], "private": blobs["private"][0], "array": blobs["raw"][0]}
    for source, blob in sources.items():
        for target, parse in parsers.items():
            if source != target:
                with pytest.raises(fp.SerializationError, match="expected a"):
                    parse(blob)
    for kind in (0, 4, 255):
        for target, parse in parsers.items():
            with pytest.raises(fp.SerializationError):
                parse(sources[target][:5] + bytes([kind]) + sources[target][6:])


# ---- truncation and trailing bytes -------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
def test_truncated_at_every_offset(blobs, kind):
    blob, parse = blobs[kind]
    assert parse(blob) is not None
    for length in range(len(blob)):
        with pytest.raises(fp.SerializationError):
            parse(blob[:length])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_trailing_bytes(blobs, kind):
    blob, parse = blobs[kind]
    for extra in (b"\0", b"junk", blob):
        with pytest.raises(fp.SerializationError):
            parse(blob + extra)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_non_bytes_input(blobs, kind):
    blob, parse = blobs[kind]
    for bad in (blob.decode("latin-1"), None, list(blob), 12345, np.frombuffer(blob, dtype=np.uint8).tolist(),
                b"", 3.5):
        with pytest.raises(fp.SerializationError):
            parse(bad)


# ---- corrupted key bodies ---------------------------------------------------------------------------

def test_corrupted_public_key_fingerprint(small_keys):
    pk, _ = small_keys
    blob = bytearray(pk.to_bytes())
    blob[20] ^= 0x01
    with pytest.raises(fp.SerializationError, match="fingerprint"):
        fp.PublicKey.from_bytes(bytes(blob), insecure=True)


def test_corrupted_private_key_fingerprint(small_keys):
    """A private key whose stored fingerprint does not match p*q is corrupted data, as for a public key:
    SerializationError (not KeyMismatchError, which is for data under another key)."""
    _, sk = small_keys
    blob = bytearray(sk.to_bytes())
    blob[20] ^= 0x01
    with pytest.raises(fp.FastPaillierError, match="fingerprint"):
        fp.PrivateKey.from_bytes(bytes(blob), insecure=True)
    with pytest.raises(fp.SerializationError):
        fp.PrivateKey.from_bytes(bytes(blob), insecure=True)


def test_corrupted_public_modulus(small_keys):
    pk, _ = small_keys
    for n in (pk.n + 2, pk.n - 2):  # still odd: fingerprint no longer matches
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(header(KIND_PUBLIC, pk.fingerprint) + bigint(n) + NO_EXTENSIONS, insecure=True)
    for n in (pk.n + 1, 0, 1, 9):  # even or too small, with a matching fingerprint
        with pytest.raises(fp.SerializationError):
            fp.PublicKey.from_bytes(header(KIND_PUBLIC, fingerprint_of(n) if n else b"\0" * 32) + bigint(n)
                                    + NO_EXTENSIONS, insecure=True)
    # an oversized length field
    with pytest.raises(fp.SerializationError):
        fp.PublicKey.from_bytes(header(KIND_PUBLIC, pk.fingerprint) + struct.pack("<I", 2**32 - 1) + b"\1" * 64,
                                insecure=True)


def test_private_key_with_invalid_primes(small_keys):
    _, sk = small_keys
    p, q = sk.p, sk.q
    for bad_p, bad_q in ((p * 3, q), (p, q + 2), (p, p), (3, 7), (1, q), (0, 0)):
        blob = header(KIND_PRIVATE, fingerprint_of(bad_p * bad_q) if bad_p * bad_q else b"\0" * 32)
        blob += bigint(bad_p) + bigint(bad_q) + NO_EXTENSIONS
        with pytest.raises(fp.SerializationError):
            fp.PrivateKey.from_bytes(blob, insecure=True)


def test_private_key_with_composite_prime_2048(keys_2048):
    _, sk = keys_2048
    p = sk.p + 2
    while p % 3 != 0:  # certainly composite
        p += 2
    blob = header(KIND_PRIVATE, fingerprint_of(p * sk.q)) + bigint(p) + bigint(sk.q) + NO_EXTENSIONS
    with pytest.raises(fp.SerializationError, match="prime"):
        fp.PrivateKey.from_bytes(blob)


# ---- corrupted array bodies ----------------------------------------------------------------------------

def test_array_under_another_key(blobs, small_keys, other_small_keys):
    pk2, _ = other_small_keys
    for kind in ARRAY_KINDS:
        blob = blobs[kind][0]
        with pytest.raises(fp.KeyMismatchError):
            fp.EncryptedArray.from_bytes(blob, pk2)
        corrupted = bytearray(blob)
        corrupted[8] ^= 0x80
        with pytest.raises(fp.KeyMismatchError):
            fp.EncryptedArray.from_bytes(bytes(corrupted), small_keys[0])


@pytest.mark.parametrize("kind", ARRAY_KINDS)
@pytest.mark.parametrize("value", ["zero", "nsquare", "above", "all_ones"])
def test_invalid_ciphertext_in_payload(blobs, small_keys, kind, value):
    pk, _ = small_keys
    blob = blobs[kind][0]
    f = parse_array(blob)
    row = {"zero": 0, "nsquare": pk.nsquare, "above": pk.nsquare + 12345,
           "all_ones": 2 ** (64 * pk.nsq_limbs) - 1}[value]
    index = f["rows"] - 1
    width = 8 * f["limbs"]
    payload = f["payload"][: index * width] + payload_row(row, f["limbs"]) + f["payload"][(index + 1) * width :]
    with pytest.raises(fp.SerializationError, match=f"ciphertext {index}"):
        fp.EncryptedArray.from_bytes(with_fields(blob, payload=payload), pk)
    # n^2 - 1 and 1 are accepted as elements of [1, n^2)
    for ok in (pk.nsquare - 1, 1):
        payload = f["payload"][: index * width] + payload_row(ok, f["limbs"]) + f["payload"][(index + 1) * width:]
        assert fp.EncryptedArray.from_bytes(with_fields(blob, payload=payload), pk).shape == tuple(f["shape"])


def test_inconsistent_rows_and_shape(blobs, small_keys):
    pk, _ = small_keys
    raw, packed = blobs["raw"][0], blobs["packed"][0]
    f = parse_array(raw)
    row = f["limbs"] * 8
    cases = [
        with_fields(raw, shape=(4,)),
        with_fields(raw, shape=(2,)),
        with_fields(raw, ndim=2, shape=(3, 2)),
        with_fields(raw, ndim=0, shape=()),
        with_fields(raw, rows=2, payload=f["payload"][: 2 * row]),
        with_fields(raw, rows=4, payload=f["payload"] + f["payload"][:row]),
        with_fields(raw, rows=3, payload=f["payload"][: 2 * row]),  # declared rows but fewer bytes
        with_fields(packed, rows=2, payload=parse_array(packed)["payload"] * 2),  # 3 values fit one row
        with_fields(packed, ndim=2, shape=(1, 14)),  # 14 values need 2 rows of 13 slots
        with_fields(packed, rows=0, payload=b""),
    ]
    for blob in cases:
        with pytest.raises(fp.SerializationError):
            fp.EncryptedArray.from_bytes(blob, pk)
    # a packed array of 13 values still fits one ciphertext: accepted
    assert fp.EncryptedArray.from_bytes(with_fields(packed, ndim=1, shape=(13,)), pk).shape == (13,)


def test_inconsistent_summands(blobs, small_keys):
    pk, _ = small_keys
    packed, fixed = blobs["packed"][0], blobs["fixed"][0]
    assert fp.EncryptedArray.from_bytes(with_fields(packed, summands=8), pk).summands == 8
    with pytest.raises(fp.SerializationError, match="summands"):
        fp.EncryptedArray.from_bytes(with_fields(packed, summands=9), pk)
    with pytest.raises(fp.SerializationError, match="summands"):
        fp.EncryptedArray.from_bytes(with_fields(packed, summands=2**100), pk)
    max_fixed = fp.FixedPointCodec(pk, frac_bits=10, value_bits=30).max_summands
    with pytest.raises(fp.SerializationError, match="summands"):
        fp.EncryptedArray.from_bytes(with_fields(fixed, summands=max_fixed + 1), pk)
    # a summands field longer than allowed
    f = parse_array(fixed)
    blob = build_array(f)
    start = blob.index(bigint(f["summands"]), HEADER.size + 4 + 8 * f["ndim"] + 4)
    too_long = blob[:start] + struct.pack("<I", 5000) + b"\0" * 5000 + blob[start + len(bigint(f["summands"])):]
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(too_long, pk)


@pytest.mark.parametrize("params", [
    struct.pack("<HHI", 61, 12, 8),  # value_bits above 60
    struct.pack("<HHI", 1, 0, 8),  # value_bits below 2
    struct.pack("<HHI", 16, 12, 0),  # max_summands 0
    struct.pack("<HHI", 60, 12, 8),  # 64-bit slots
    struct.pack("<HHI", 16, 1075, 8),  # frac_bits too large
    struct.pack("<HHI", 250, 250, 2**32 - 1),
])
def test_invalid_packed_metadata(blobs, small_keys, params):
    pk, _ = small_keys
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(with_fields(blobs["packed"][0], params=params), pk)


def test_packed_metadata_changing_the_layout(blobs, small_keys):
    pk, _ = small_keys
    packed = blobs["packed"][0]
    # other valid parameters: 1 row still holds 3 values, so the array parses with the new codec
    loaded = fp.EncryptedArray.from_bytes(with_fields(packed, params=struct.pack("<HHI", 12, 8, 8)), pk)
    assert loaded.codec.params() == (12, 8, 8)
    # 14 values take 2 rows of 13 slots, but one row of 31 slots (value_bits 8, max_summands 1)
    two_rows = fp.PackedCodec(pk).encrypt(np.ones(14), pk).to_bytes()
    assert parse_array(two_rows)["rows"] == 2
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(with_fields(two_rows, params=struct.pack("<HHI", 8, 4, 1)), pk)
    assert fp.EncryptedArray.from_bytes(with_fields(two_rows, params=struct.pack("<HHI", 16, 4, 16)), pk).size == 14
    # a packed codec that does not fit a tiny key
    tiny = fp.PrivateKey(293, 433, insecure=True)
    ea = fp.PackedCodec(tiny.public_key, value_bits=4, max_summands=2).encrypt(np.ones(2), tiny)
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(with_fields(ea.to_bytes(), params=struct.pack("<HHI", 16, 12, 8)),
                                     tiny.public_key)


@pytest.mark.parametrize("params", [
    struct.pack("<HH", 10, 64),  # value_bits above 63
    struct.pack("<HH", 10, 1),
    struct.pack("<HH", 1075, 30),
])
def test_invalid_fixed_point_metadata(blobs, small_keys, params):
    pk, _ = small_keys
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(with_fields(blobs["fixed"][0], params=params), pk)


def test_fixed_point_metadata_too_wide_for_a_tiny_key(tiny_keys):
    pk, sk = tiny_keys
    ea = fp.FixedPointCodec(pk, frac_bits=2, value_bits=10).encrypt(np.ones(2), sk)
    assert fp.EncryptedArray.from_bytes(ea.to_bytes(), pk).codec == ea.codec
    with pytest.raises(fp.SerializationError):
        fp.EncryptedArray.from_bytes(with_fields(ea.to_bytes(), params=struct.pack("<HH", 2, 17)), pk)


def test_invalid_dtype_codec_and_header_fields(blobs, small_keys):
    pk, _ = small_keys
    raw, fixed, packed = blobs["raw"][0], blobs["fixed"][0], blobs["packed"][0]
    cases = [
        with_fields(raw, dtype_code=3),
        with_fields(raw, dtype_code=255),
        with_fields(raw, dtype_code=1),  # raw arrays are int64
        with_fields(raw, dtype_code=2),
        with_fields(fixed, dtype_code=0),  # codec arrays are float
        with_fields(packed, dtype_code=0),
        with_fields(packed, dtype_code=7),
        with_fields(raw, codec_kind=3),
        with_fields(raw, codec_kind=255),
        with_fields(raw, codec_kind=1, params=struct.pack("<HH", 10, 30), dtype_code=2),  # fixed: 3 rows ok?
        with_fields(raw, reserved=1),
        with_fields(raw, ndim=33, shape=(1,) * 30 + (3, 1, 1)),
    ]
    expected_ok = 9  # the relabelled raw array is a valid fixed-point array with 3 values
    for i, blob in enumerate(cases):
        if i == expected_ok:
            assert fp.EncryptedArray.from_bytes(blob, pk).codec == fp.FixedPointCodec(pk, frac_bits=10,
                                                                                       value_bits=30)
            continue
        with pytest.raises(fp.SerializationError):
            fp.EncryptedArray.from_bytes(blob, pk)
    # 32 dimensions are allowed
    assert fp.EncryptedArray.from_bytes(with_fields(raw, ndim=32, shape=(1,) * 31 + (3,)), pk).ndim == 32


@pytest.mark.parametrize("delta", [-1, 1, 4])
def test_wrong_limb_count(blobs, small_keys, delta):
    pk, _ = small_keys
    for kind in ARRAY_KINDS:
        f = parse_array(blobs[kind][0])
        limbs = f["limbs"] + delta
        payload = b"".join(payload_row(1, limbs) for _ in range(f["rows"]))
        with pytest.raises(fp.SerializationError, match="limbs"):
            fp.EncryptedArray.from_bytes(with_fields(blobs[kind][0], limbs=limbs, payload=payload), pk)


def test_shape_beyond_numpy_limits(small_keys):
    """from_bytes must not accept a shape that no numpy array can have ((2**63, 0) holds 0 values): either
    it raises SerializationError, or the array it returns can be decrypted."""
    pk, sk = small_keys
    blob = sk.encrypt(np.zeros((0, 0), dtype=np.int64)).to_bytes()
    for shape in [(2**63, 0), (2**64 - 1, 0), (0, 2**62, 2**62)]:
        bad = with_fields(blob, ndim=len(shape), shape=shape)
        try:
            ea = fp.EncryptedArray.from_bytes(bad, pk)
        except fp.SerializationError:
            continue
        decrypted = sk.decrypt(ea)  # must not raise a bare ValueError from numpy
        assert decrypted.shape == shape


# ---- fuzzing --------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(kind=st.sampled_from(ALL_KINDS), data=st.data())
def test_mutated_bytes_never_crash(blobs, small_keys, kind, data):
    pk, sk = small_keys
    blob, parse = blobs[kind]
    mutated = bytearray(blob)
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), min_size=1,
                               max_size=4), label="edits")
    for pos, value in edits:
        mutated[pos] = value
    if data.draw(st.booleans(), label="resize"):
        cut = data.draw(st.integers(0, len(mutated)), label="cut")
        tail = data.draw(st.binary(max_size=16), label="tail")
        mutated = mutated[:cut] + tail + mutated[cut + len(tail) // 2 :]
    try:
        obj = parse(bytes(mutated))
    except fp.FastPaillierError:
        return
    if isinstance(obj, fp.EncryptedArray):
        try:
            out = sk.decrypt(obj)
        except fp.FastPaillierError:
            return
        assert out.shape == obj.shape


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_header_fields_of_arrays(blobs, small_keys, data):
    """Mutations of the metadata area only (before the payload), where the parser does its most work."""
    pk, _ = small_keys
    kind = data.draw(st.sampled_from(ARRAY_KINDS), label="kind")
    blob = blobs[kind][0]
    f = parse_array(blob)
    meta_end = len(blob) - len(f["payload"])
    mutated = bytearray(blob)
    for pos, value in data.draw(st.lists(st.tuples(st.integers(40, meta_end - 1), st.integers(0, 255)),
                                         min_size=1, max_size=3), label="edits"):
        mutated[pos] = value
    try:
        ea = fp.EncryptedArray.from_bytes(bytes(mutated), pk)
    except fp.FastPaillierError:
        return
    assert isinstance(ea, fp.EncryptedArray)
