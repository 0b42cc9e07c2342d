"""fastpaillier.phe against the real python-paillier (phe 1.5.0): same numbers, both directions.

phe's own test suite runs against fastpaillier.phe in tests/phe_compat/; these tests compare
the two libraries value for value on shared keys and cover what phe has no tests for: the
native paths (each kernel tier), DJN keys, CRT encryption, batches, EncryptedArray conversion,
serialized forms, the obfuscator reserve, refused ciphertexts and the no-gmpy2 fallbacks.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import phe
import phe.util
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastpaillier as fp
from fastpaillier.phe import _engine, paillier, util
from fastpaillier.phe.encoding import EncodedNumber

ROOT = Path(__file__).resolve().parents[1]


def both_keys(sk: fp.PrivateKey):
    """(our public, our private, phe public, phe private) for the primes of a fastpaillier key."""
    pub = paillier.PaillierPublicKey(sk.public_key.n)
    phe_pub = phe.PaillierPublicKey(sk.public_key.n)
    return pub, paillier.PaillierPrivateKey(pub, sk.p, sk.q), phe_pub, phe.PaillierPrivateKey(phe_pub, sk.p, sk.q)


@pytest.fixture(scope="module")
def small(small_keys):
    return both_keys(small_keys[1])


@pytest.fixture(scope="module")
def big(keys_2048):
    return both_keys(keys_2048[1])


values_strategy = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
    st.floats(min_value=-1e-3, max_value=1e-3),
)


# ---- encodings ----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(value=values_strategy,
       precision=st.one_of(st.none(), st.sampled_from([1e-20, 1e-8, 1e-3, 0.5, 1.0, 7.0, 1e6])),
       max_exponent=st.one_of(st.none(), st.integers(min_value=-60, max_value=8)),
       base=st.sampled_from([16, 2, 13, 64]))
def test_encodings_are_phes(small, value, precision, max_exponent, base):
    pub, _, phe_pub, _ = small

    class Ours(EncodedNumber):
        BASE = base
        LOG2_BASE = math.log(base, 2)

    class Theirs(phe.EncodedNumber):
        BASE = base
        LOG2_BASE = math.log(base, 2)

    def outcome(cls, key):
        try:
            enc = cls.encode(key, value, precision, max_exponent)
        except (ValueError, OverflowError) as exc:
            return type(exc)
        return enc.encoding, enc.exponent

    ours, theirs = outcome(Ours, pub), outcome(Theirs, phe_pub)
    assert ours == theirs
    if isinstance(ours, tuple):
        assert Ours(pub, *ours).decode() == Theirs(phe_pub, *theirs).decode()
        lower = ours[1] - 3
        assert (Ours(pub, *ours).decrease_exponent_to(lower).encoding
                == Theirs(phe_pub, *theirs).decrease_exponent_to(lower).encoding)


def test_encoding_errors_are_phes(small):
    pub, *_ = small
    with pytest.raises(TypeError, match="Don't know the precision"):
        EncodedNumber.encode(pub, "1")
    with pytest.raises(ValueError, match="Integer needs to be within"):
        EncodedNumber.encode(pub, pub.max_int + 1)
    with pytest.raises(ValueError):
        EncodedNumber.encode(pub, float("nan"))
    with pytest.raises(OverflowError):
        EncodedNumber.encode(pub, float("inf"))
    with pytest.raises(OverflowError, match="Overflow detected"):
        EncodedNumber(pub, pub.max_int + 1, 0).decode()
    with pytest.raises(ValueError, match="corrupted"):
        EncodedNumber(pub, pub.n, 0).decode()


# ---- deterministic ciphertexts: the same integers as phe ----------------------------------------

def outcome(fn, *args):
    """fn(*args), or the type of the exception it raised."""
    try:
        return fn(*args)
    except (ValueError, OverflowError) as exc:
        return type(exc)


@pytest.mark.parametrize("keys", ["small", "big"])
def test_fixed_r_ciphertexts_and_operations_are_phes(request, keys):
    pub, priv, phe_pub, phe_priv = request.getfixturevalue(keys)
    n = pub.n
    for i, (value, r) in enumerate([(15, 7), (-15, 3), (3.14159, 123456789), (-2.5e-7, n - 2), (10**30, 2**100),
                                    (pub.max_int, 5), (-pub.max_int, 11)]):
        ours, theirs = pub.encrypt(value, r_value=r), phe_pub.encrypt(value, r_value=r)
        assert ours.ciphertext(False) == theirs.ciphertext(False) and ours.exponent == theirs.exponent
        other, other_phe = pub.encrypt(1.5 + i, r_value=r + 1), phe_pub.encrypt(1.5 + i, r_value=r + 1)
        for op in (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a + 2.75, lambda a, b: 3 - a,
                   lambda a, b: a * -1.25, lambda a, b: a * 3, lambda a, b: a / 4,
                   lambda a, b: a.decrease_exponent_to(a.exponent - 5)):
            x, y = op(ours, other), op(theirs, other_phe)
            assert x.ciphertext(False) == y.ciphertext(False) and x.exponent == y.exponent
            assert outcome(priv.decrypt, x) == outcome(phe_priv.decrypt, y)
    for m in (0, 1, n - 1, n, n + 1, n - n // 3 + 1, -5):
        assert pub.raw_encrypt(m, r_value=99) == phe_pub.raw_encrypt(m, r_value=99)


def test_lazy_obfuscation_is_phes(small):
    pub, priv, _, _ = small
    fresh = pub.encrypt(2.5)
    assert fresh._EncryptedNumber__is_obfuscated
    total = fresh + pub.encrypt(1)
    assert not total._EncryptedNumber__is_obfuscated
    raw = total.ciphertext(be_secure=False)
    secure = total.ciphertext()
    assert secure != raw and total.ciphertext(False) == secure and priv.decrypt(total) == 3.5


# ---- both directions ------------------------------------------------------------------------------

@pytest.mark.parametrize("keys", ["small", "big"])
def test_each_library_decrypts_the_others_ciphertexts(request, keys):
    pub, priv, phe_pub, phe_priv = request.getfixturevalue(keys)
    values = [0, 1, -1, 123456789, -987654321, 3.14159, -2.5e-9, 1e20, pub.max_int, -pub.max_int]
    for v in values:
        ours = pub.encrypt(v)
        theirs = phe_pub.encrypt(v)
        assert phe_priv.decrypt(phe.EncryptedNumber(phe_pub, ours.ciphertext(), ours.exponent)) == v
        assert priv.decrypt(theirs) == v  # a phe EncryptedNumber, passed as it is
        assert priv.decrypt(paillier.EncryptedNumber(pub, theirs.ciphertext(), theirs.exponent)) == v
    mixed = pub.encrypt(2.5) + phe_pub.encrypt(-1.25)
    assert isinstance(mixed, paillier.EncryptedNumber) and priv.decrypt(mixed) == 1.25
    assert priv.decrypt_many([phe_pub.encrypt(4), pub.encrypt(5)]) == [4, 5]


def test_keys_compare_and_hash_across_libraries(small):
    pub, priv, phe_pub, phe_priv = small
    assert pub == phe_pub and phe_pub == pub and hash(pub) == hash(phe_pub)
    assert priv == phe_priv and (priv.p, priv.q) == (phe_priv.p, phe_priv.q) and priv.p < priv.q
    assert (priv.hp, priv.hq, priv.p_inverse) == (phe_priv.hp, phe_priv.hq, phe_priv.p_inverse)
    assert repr(pub).startswith("<PaillierPublicKey ") and repr(priv).startswith("<PaillierPrivateKey for ")
    ring = paillier.PaillierPrivateKeyring([priv])
    assert ring[phe_pub] is priv and ring.decrypt(pub.encrypt(7)) == 7
    ours_from_phe = paillier.PaillierPrivateKey(phe_pub, phe_priv.p, phe_priv.q)
    assert isinstance(ours_from_phe.public_key, paillier.PaillierPublicKey)
    assert ours_from_phe.decrypt(phe_pub.encrypt(-3)) == -3
    assert pub != object() and (pub == None) is False  # noqa: E711


def test_phe_generated_keys_work_here():
    phe_pub, phe_priv = phe.generate_paillier_keypair(n_length=512)
    pub = paillier.PaillierPublicKey(phe_pub.n)
    priv = paillier.PaillierPrivateKey(pub, phe_priv.p, phe_priv.q)
    assert priv.decrypt(phe_pub.encrypt(-0.125)) == -0.125
    assert phe_priv.decrypt(phe.EncryptedNumber(phe_pub, pub.encrypt(42).ciphertext(), 0)) == 42


# ---- serialized forms -------------------------------------------------------------------------------

def test_phe_json_forms_load_both_ways(small):
    pub, priv, phe_pub, phe_priv = small
    # the form of phe's serialisation docs: key as {"g", "n"}, numbers as (str(ciphertext), exponent)
    numbers = [phe_pub.encrypt(v) for v in (1.5, -2, 1e-5)]
    blob = json.dumps({"public_key": {"g": phe_pub.g, "n": phe_pub.n},
                       "values": [(str(x.ciphertext()), x.exponent) for x in numbers]})
    data = json.loads(blob)
    loaded_key = paillier.PaillierPublicKey(n=int(data["public_key"]["n"]))
    loaded = [paillier.EncryptedNumber(loaded_key, int(c), int(e)) for c, e in data["values"]]
    assert priv.decrypt_many(loaded) == [1.5, -2, 1e-5]
    back = json.dumps([(str(x.ciphertext()), x.exponent) for x in loaded])
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, int(c), e)) for c, e in json.loads(back)] == [1.5, -2, 1e-5]
    # pheutil's JWK form: n, p, q base64url
    jwk = {"n": phe.util.int_to_base64(phe_pub.n), "p": phe.util.int_to_base64(phe_priv.p),
           "q": phe.util.int_to_base64(phe_priv.q)}
    key = paillier.PaillierPublicKey(util.base64_to_int(jwk["n"]))
    assert paillier.PaillierPrivateKey(key, util.base64_to_int(jwk["p"]), util.base64_to_int(jwk["q"])) == phe_priv
    assert util.int_to_base64(pub.n) == jwk["n"]


def test_pickle_round_trip(small):
    pub, priv, _, _ = small
    x = pub.encrypt(-6.5)
    pub2, priv2, x2 = pickle.loads(pickle.dumps((pub, priv, x)))
    assert pub2 == pub and priv2 == priv and x2.exponent == x.exponent
    assert x2.ciphertext(False) == x.ciphertext(False) and priv2.decrypt(x2) == -6.5
    assert priv2.decrypt(pub2.encrypt(1) + x2) == -5.5


# ---- native paths -----------------------------------------------------------------------------------

def test_native_paths_on_every_tier(tier, small, big):
    for pub, priv, phe_pub, phe_priv in (small, big):
        for v in (0, 17, -3.75, 2**70):
            assert phe_priv.decrypt(phe.EncryptedNumber(phe_pub, pub.encrypt(v).ciphertext(), pub.encrypt(v).exponent)) == v
            assert priv.decrypt(phe_pub.encrypt(v)) == v
            assert priv.decrypt(priv.encrypt(v)) == v
        assert priv.decrypt_many(pub.encrypt_many(range(9))) == list(range(9))


def test_djn_keys():
    pub, priv = paillier.generate_paillier_keypair(n_length=512, djn=True)
    assert pub.djn_base is not None and priv.public_key is pub and pub.fastpaillier_key.randomness == "djn"
    phe_pub = phe.PaillierPublicKey(pub.n)
    phe_priv = phe.PaillierPrivateKey(phe_pub, priv.p, priv.q)
    for v in (5, -1.5, 1e-7):
        for enc in (pub.encrypt(v), priv.encrypt(v)):
            assert priv.decrypt(enc) == v
            assert phe_priv.decrypt(phe.EncryptedNumber(phe_pub, enc.ciphertext(), enc.exponent)) == v
    assert len({pub.encrypt(1).ciphertext() for _ in range(10)}) == 10
    classic = paillier.PaillierPrivateKey(paillier.PaillierPublicKey(pub.n), priv.p, priv.q)
    assert classic == priv and classic.public_key == pub and classic.public_key.djn_base is None
    again = pickle.loads(pickle.dumps(pub))
    assert again.djn_base == pub.djn_base and priv.decrypt(again.encrypt(3)) == 3
    rebuilt = paillier.PaillierPublicKey(pub.n, djn_h=pub.djn_h)
    assert rebuilt.djn_base == pub.djn_base and priv.decrypt(rebuilt.encrypt(4)) == 4
    with pytest.raises(fp.InvalidKeyError, match="djn_h"):  # h_s alone cannot be checked (issue 10, item 2)
        paillier.PaillierPublicKey(pub.n, 1 + (1 << 100) * pub.n)
    with pytest.raises(fp.InvalidKeyError):  # an h_s that is not h^n
        paillier.PaillierPublicKey(pub.n, pub.djn_base + 1, pub.djn_h)
    djn = classic.with_djn()
    assert djn.public_key.djn_base not in (None, pub.djn_base) and djn.decrypt(djn.public_key.encrypt(8)) == 8
    ring = paillier.PaillierPrivateKeyring()
    paillier.generate_paillier_keypair(ring, n_length=256, djn=True)
    (only,) = list(ring)
    assert only.djn_base is not None


def test_generated_key_sizes():
    for bits in (8, 16, 40, 64, 256):
        pub, priv = paillier.generate_paillier_keypair(n_length=bits)
        assert pub.n.bit_length() == bits and priv.p * priv.q == pub.n and priv.p < priv.q
        if bits >= 64:
            assert priv.decrypt(pub.encrypt(-3)) == -3
    for bad in (257, 2, 0, "2048"):
        with pytest.raises(ValueError):
            paillier.generate_paillier_keypair(n_length=bad)


def test_precomputed_obfuscators_are_drained(small):
    pub, priv, _, _ = small
    pub = paillier.PaillierPublicKey(pub.n)
    pub.precompute_obfuscators(3, background=False)
    assert pub.fastpaillier_key.obfuscators_available == 3
    encs = [pub.encrypt(1.25), pub.encrypt(2)]
    assert pub.fastpaillier_key.obfuscators_available == 1
    assert priv.decrypt_many(encs) == [1.25, 2]
    priv2 = paillier.PaillierPrivateKey(pub, priv.p, priv.q)
    assert priv2.precompute_obfuscators(2, background=False) is None
    assert priv2.fastpaillier_key.public_key.obfuscators_available == 2
    assert priv2.decrypt(priv2.encrypt(-4)) == -4
    assert priv2.fastpaillier_key.public_key.obfuscators_available == 1


def test_reserve_hands_out_each_obfuscator_once_and_forgets_them_in_a_fork():
    reserve = _engine._Reserve()
    batches = []

    def refill(count):
        batches.append(count)
        return list(range(len(batches) * 100, len(batches) * 100 + count))

    taken = [reserve.take(refill) for _ in range(10)]
    assert len(set(taken)) == 10 and batches == [8, 8] and len(reserve) == 6
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        os.write(write, str(len(reserve)).encode())
        os._exit(0)
    os.close(write)
    child_count = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert child_count == b"0" and len(reserve) == 6


def test_lone_encryptions_with_shared_lanes_use_the_reserve():
    if not fp.kernel_tier() == "ifma":
        pytest.skip("the reserve is used where the IFMA tier computes 8 ciphertexts per call")
    _, priv = paillier.generate_paillier_keypair(n_length=512, djn=True)
    priv.public_key.encrypt(1)
    assert len(priv.public_key._engine.reserve) == 7
    priv.encrypt(2)
    assert len(priv._engine().reserve) == 7


class _FakeClock:
    """A clock that each candidate advances by its own cost per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _timed_candidates(clock, costs, made, calls=None):
    """Candidates that cost costs[name] seconds per call and make 8 (lanes) or 1 obfuscator.

    made collects every obfuscator made; calls (if given) the name of each candidate called.
    """
    def candidate(name):
        def make():
            clock.now += costs[name]
            if calls is not None:
                calls.append(name)
            count = 8 if name == "lanes" else 1
            values = [len(made) + k for k in range(count)]
            made.extend(values)
            return values
        return make
    return {name: candidate(name) for name in costs}


@pytest.mark.parametrize("costs, expected", [
    ({"lanes": 8 * 7.4, "native": 7.9, "gmpy2": 8.3}, "lanes"),     # per value: 7.4 < 7.9 < 8.3
    ({"lanes": 8 * 11.3, "native": 6.5, "gmpy2": 7.9}, "native"),
    ({"lanes": 8 * 11.3, "native": 12.3, "gmpy2": 10.9}, "gmpy2"),
    ({"native": 6.5, "gmpy2": 7.9}, "native")])
def test_lone_classic_obfuscators_come_from_the_fastest_candidate(monkeypatch, costs, expected):
    """Each candidate is timed SAMPLES times per value; every obfuscator made is handed out once."""
    monkeypatch.delenv(_engine.CLASSIC_ENV, raising=False)
    clock, made, calls = _FakeClock(), [], []
    reserve = _engine._Reserve()
    source = _engine.ClassicObfuscators(_timed_candidates(clock, costs, made, calls), clock=clock)
    handed = [reserve.take(source.make) for _ in range(40)]
    assert source.chosen == expected
    assert len(set(handed)) == len(handed)  # none twice
    assert sorted(handed + reserve._items) == made  # none dropped: the rest waits in the reserve
    before = len(calls)
    reserve.clear()
    reserve.take(source.make)
    assert calls[before:] == [expected]  # one call, of the chosen candidate only


def test_lone_classic_obfuscators_keep_the_best_sample(monkeypatch):
    """A slow first call (a cold cache, another process) does not decide alone."""
    monkeypatch.delenv(_engine.CLASSIC_ENV, raising=False)
    clock, made = _FakeClock(), []
    costs = {"native": 20.0, "gmpy2": 8.0}
    source = _engine.ClassicObfuscators(_timed_candidates(clock, costs, made), clock=clock)
    source.make()  # native: 20 per value
    costs["native"] = 6.0
    for _ in range(3):
        source.make()
    assert source.chosen == "native"


@pytest.mark.parametrize("forced", ["lanes", "native", "gmpy2"])
def test_the_variable_forces_the_classic_source(monkeypatch, forced):
    monkeypatch.setenv(_engine.CLASSIC_ENV, forced)
    clock, made = _FakeClock(), []
    costs = {"lanes": 1000.0, "native": 1000.0, "gmpy2": 1000.0}
    source = _engine.ClassicObfuscators(_timed_candidates(clock, costs, made), clock=clock)
    assert source.chosen == forced
    source.make()
    assert clock.now == 1000.0  # no timing round: one call of the forced candidate


def test_an_unknown_classic_source_is_refused(monkeypatch):
    monkeypatch.setenv(_engine.CLASSIC_ENV, "fastest")
    with pytest.raises(fp.InvalidArgumentError, match="FASTPAILLIER_PHE_CLASSIC='fastest'"):
        _engine.ClassicObfuscators({"native": lambda: [1]})


@pytest.mark.parametrize("forced", ["", "lanes", "native", "gmpy2"])
def test_lone_classic_encryptions_decrypt_whatever_makes_them(monkeypatch, forced):
    if forced:
        monkeypatch.setenv(_engine.CLASSIC_ENV, forced)
    else:
        monkeypatch.delenv(_engine.CLASSIC_ENV, raising=False)
    pub, priv = paillier.generate_paillier_keypair(n_length=512)
    assert pub.djn_base is None
    numbers = [pub.encrypt(v) for v in range(24)]  # timing takes 2 x (8 + 1 + 1) where lanes run
    assert [priv.decrypt(x) for x in numbers] == list(range(24))
    assert len({x.ciphertext(False) for x in numbers}) == 24  # fresh randomness each
    if forced:
        assert pub._engine.classic.chosen == forced
    else:
        assert pub._engine.classic.chosen in pub._engine._classic_candidates()


def test_lone_classic_encryptions_take_the_reserve_when_lanes_are_chosen(monkeypatch):
    if not fp.kernel_tier() == "ifma":
        pytest.skip("lanes are a candidate where the IFMA tier computes 8 ciphertexts per call")
    monkeypatch.setenv(_engine.CLASSIC_ENV, "lanes")
    pub, priv = paillier.generate_paillier_keypair(n_length=512)
    numbers = [pub.encrypt(v) for v in range(10)]
    assert len(pub._engine.reserve) == 6  # two batches of 8, 10 used
    assert [priv.decrypt(x) for x in numbers] == list(range(10))


@pytest.mark.parametrize("keys", ["small", "big"])
def test_ciphertexts_outside_the_group_are_refused(tier, request, keys):
    pub, priv, _, _ = request.getfixturevalue(keys)
    for bad in (0, pub.nsquare, priv.p, priv.q * 12345):
        with pytest.raises(ValueError):
            priv.decrypt(paillier.EncryptedNumber(pub, bad))
    assert priv.raw_decrypt(pub.raw_encrypt(5) + pub.nsquare) == 5  # any representative mod n^2


def test_keys_the_native_core_refuses_behave_as_phe():
    phe_pub = phe.PaillierPublicKey(63)  # 9 * 7: not a product of primes
    phe_priv = phe.PaillierPrivateKey(phe_pub, 9, 7)
    pub = paillier.PaillierPublicKey(63)
    priv = paillier.PaillierPrivateKey(pub, 9, 7)
    assert priv.fastpaillier_key is None
    for c in (2, 5, 1000, 3960):
        assert priv.raw_decrypt(c) == phe_priv.raw_decrypt(c)
    with pytest.raises(ValueError, match="does not match"):
        paillier.PaillierPrivateKey(pub, 3, 7)
    with pytest.raises(ValueError, match="different"):
        paillier.PaillierPrivateKey(paillier.PaillierPublicKey(49), 7, 7)


def test_without_gmpy2_results_are_the_same(monkeypatch, small):
    _, _, phe_pub, phe_priv = small
    monkeypatch.setattr(_engine, "gmpy2", None)
    pub = paillier.PaillierPublicKey(phe_pub.n)
    priv = paillier.PaillierPrivateKey(pub, phe_priv.p, phe_priv.q)
    assert pub._engine.arith.mpz is None
    a, b = pub.encrypt(3.5, r_value=5), phe_pub.encrypt(3.5, r_value=5)
    for x, y in ((a + a, b + b), (a * -2.25, b * -2.25), (a * 7, b * 7), (a - 1, b - 1)):
        assert x.ciphertext(False) == y.ciphertext(False)
    assert priv.decrypt(pub.encrypt(-8.5) + pub.encrypt(1)) == -7.5 and priv.decrypt(priv.encrypt(2)) == 2
    assert phe_priv.decrypt(phe.EncryptedNumber(phe_pub, (a * 2).ciphertext(), a.exponent)) == 7.0


# ---- batches and EncryptedArray ---------------------------------------------------------------------

def test_batch_helpers(big):
    pub, priv, phe_pub, phe_priv = big
    values = [0, 1, -2, 3.5, -1e-6, 2**40]
    encs = pub.encrypt_many(values, threads=2)
    assert [x.exponent for x in encs] == [EncodedNumber.encode(pub, v).exponent for v in values]
    assert all(x._EncryptedNumber__is_obfuscated for x in encs)
    assert priv.decrypt_many(encs, threads=2) == values == [priv.decrypt(x) for x in encs]
    assert priv.decrypt_many(priv.encrypt_many(values)) == values
    assert [phe_priv.decrypt(phe.EncryptedNumber(phe_pub, x.ciphertext(), x.exponent)) for x in encs] == values
    assert pub.encrypt_many([]) == [] and priv.decrypt_many([]) == []
    with pytest.raises(TypeError):
        priv.decrypt_many([3])


def test_encrypted_array_round_trip(small):
    pub, priv, phe_pub, _ = small
    a = pub.encrypt_many([1.5, -2.25, 1e-3, 7])
    b = [pub.encrypt(v) for v in (0.5, 0.25, 1e-3, -7)]
    b[0] = phe_pub.encrypt(0.5)  # a phe number among ours
    arr_a, exp_a = paillier.to_encrypted_array(a)
    arr_b, exp_b = paillier.to_encrypted_array(b, exponent=exp_a)
    assert exp_a == exp_b == min(x.exponent for x in a) and isinstance(arr_a, fp.EncryptedArray)
    total = fp.sum_arrays([arr_a, arr_b, arr_a * 2])
    back = paillier.from_encrypted_array(total, exp_a)
    assert not back[0]._EncryptedNumber__is_obfuscated
    assert priv.decrypt_many(back) == pytest.approx([5.0, -6.5, 4e-3, 14], rel=1e-12)
    assert priv.decrypt_many(paillier.from_encrypted_array(total, exp_a, pub)) == priv.decrypt_many(back)
    with pytest.raises(ValueError):
        paillier.to_encrypted_array([])
    with pytest.raises(ValueError):
        paillier.to_encrypted_array([pub.encrypt(1), paillier.PaillierPublicKey(pub.n + 2).encrypt(1)])
    with pytest.raises(ValueError):
        paillier.from_encrypted_array(total, 0, paillier.PaillierPublicKey(pub.n + 2))
    codec = fp.FixedPointCodec(pub.fastpaillier_key)
    with pytest.raises(ValueError):
        paillier.from_encrypted_array(codec.encrypt(np.ones(2), pub.fastpaillier_key), 0)


# ---- errors and types -----------------------------------------------------------------------------

def test_errors_are_phes(small):
    pub, priv, _, _ = small
    x = pub.encrypt(1)
    with pytest.raises(NotImplementedError):
        x * x
    with pytest.raises(TypeError):
        pub.raw_encrypt("1")
    with pytest.raises(TypeError):
        priv.raw_decrypt(str(x.ciphertext()))
    with pytest.raises(TypeError):
        priv.decrypt("x")
    with pytest.raises(ValueError, match="different key"):
        priv.decrypt(paillier.PaillierPublicKey(pub.n + 2).encrypt(1))
    with pytest.raises(ValueError, match="different public keys"):
        x + paillier.PaillierPublicKey(pub.n + 2).encrypt(1)
    with pytest.raises(ValueError, match="more negative"):
        x.decrease_exponent_to(5)
    with pytest.raises(TypeError):
        paillier.EncryptedNumber(pub, x)
    with pytest.raises(TypeError):
        paillier.EncryptedNumber("key", 5)
    with pytest.raises(TypeError):
        paillier.PaillierPrivateKeyring().add(pub)
    with pytest.raises(KeyError):
        paillier.PaillierPrivateKeyring().decrypt(x)


def test_util_matches_phe_util():
    assert util.first_primes == phe.util.first_primes
    for a in (1, 255, 256, 2**64 + 1, 10**40):
        assert util.int_to_base64(a) == phe.util.int_to_base64(a) and util.base64_to_int(phe.util.int_to_base64(a)) == a
    assert util.extended_euclidean_algorithm(240, 46) == phe.util.extended_euclidean_algorithm(240, 46)
    assert util.invert(3, 4) == 3 and util.isqrt(10**40 + 5) == 10**20
    assert not util.is_prime(561) and util.is_prime(2**127 - 1) and not util.miller_rabin(2**61 + 1, 10)


def test_benchmark_script_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_phe_dropin.py"), "--bits", "512", "--rounds", "1",
         "--calls", "8", "--batch", "8"],
        capture_output=True, text=True, timeout=300,
        # the fastpaillier under test: an installed wheel (no compiled module in src/) or src/ itself
        env={**os.environ, "PYTHONPATH": str(Path(fp.__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert "| decrypt |" in out.stdout and "| decrypt_many |" in out.stdout and "kernel tier" in out.stdout


def test_readme_example_runs(capsys):
    import re

    section = (ROOT / "README.md").read_text().split("## Coming from python-paillier", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.split("\n")[:3] == ["1.5", "[0.5, 1.5, -2.0]", "[1.5, 4.5, -6.0]"]
