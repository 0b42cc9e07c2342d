"""The AVX-512 IFMA decryption path agrees with the portable GMP path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _limbs, _native
from fastpaillier.testing import array_from_ints, ciphertext_ints

CPU_HAS_IFMA = "avx512ifma" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False


@pytest.fixture
def portable_then_restore():
    yield
    _native.set_ifma_enabled(True)


def _decrypt_both(sk, enc, threads):
    _native.set_ifma_enabled(False)
    assert not _native.ifma_enabled()
    portable = sk.decrypt_limbs(enc, threads=threads)
    _native.set_ifma_enabled(True)
    fast = sk.decrypt_limbs(enc, threads=threads)
    return portable, fast, _native.ifma_enabled()


@pytest.mark.parametrize("count", [1, 7, 8, 9, 17, 64])
@pytest.mark.parametrize("threads", [1, 2])
def test_ifma_and_portable_decryption_agree(keys_2048, count, threads, portable_then_restore):
    pk, sk = keys_2048
    rng = np.random.default_rng(count * 10 + threads)
    values = [int(v) for v in rng.integers(0, 2**62, size=count)]
    values[0] = pk.n - 1
    enc = pk.encrypt(np.array(values, dtype=object))
    portable, fast, used_ifma = _decrypt_both(sk, enc, threads)
    assert used_ifma == CPU_HAS_IFMA
    assert _limbs.rows_to_ints(portable) == values
    assert np.array_equal(portable, fast)


def test_boundary_ciphertexts_agree(keys_2048, portable_then_restore):
    # Valid and invalid group elements near the edges: both paths give the same bits, no crash.
    pk, sk = keys_2048
    p, q, n2 = sk.p, sk.q, pk.nsquare
    cts = [1, 2, n2 - 1, n2 - 2, p, q, p * p, q * q, p * q, n2 - p, (n2 - 1) // 3]
    enc = array_from_ints(pk, cts)
    portable, fast, _ = _decrypt_both(sk, enc, 1)
    assert np.array_equal(portable, fast)
    assert _limbs.rows_to_ints(portable)[0] == 0  # 1 is the trivial encryption of 0


@pytest.mark.parametrize("bits", [3072, 4096])
def test_larger_keys_agree(bits, portable_then_restore):
    pk, sk = fp.generate_keypair(bits)
    x = np.arange(11, dtype=np.int64) * 1234567
    enc = sk.encrypt(x)
    portable, fast, _ = _decrypt_both(sk, enc, 2)
    assert np.array_equal(portable, fast)
    assert np.array_equal(sk.decrypt(enc), x)


def test_small_keys_agree(small_keys, tiny_keys, portable_then_restore):
    for pk, sk in (small_keys, tiny_keys):
        x = np.arange(min(20, pk.n - 1), dtype=np.int64)
        enc = pk.encrypt(x)
        portable, fast, _ = _decrypt_both(sk, enc, 1)
        assert np.array_equal(portable, fast)
        assert ciphertext_ints(enc)  # the array is intact


def test_environment_variable_forces_portable_path():
    code = "import fastpaillier._native as n; print(n.ifma_enabled())"
    env = dict(os.environ, FASTPAILLIER_DISABLE_IFMA="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("FASTPAILLIER_DISABLE_IFMA")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(CPU_HAS_IFMA)


@pytest.mark.parametrize("ifma", [True, False])
@pytest.mark.parametrize("count", [1, 8, 13])
def test_crt_encryption_and_rerandomization_on_both_paths(keys_2048, ifma, count, portable_then_restore):
    pk, sk = keys_2048
    _native.set_ifma_enabled(ifma)
    x = np.arange(count, dtype=np.int64) * 977 + 5
    enc = sk.encrypt(x, threads=2)
    again = enc.rerandomize(sk, threads=1)
    rows = {r.tobytes() for r in enc.ciphertexts} | {r.tobytes() for r in again.ciphertexts}
    assert len(rows) == 2 * count  # every lane drew its own randomness
    for on in (True, False):  # decrypts the same whichever path decrypts
        _native.set_ifma_enabled(on)
        assert np.array_equal(sk.decrypt(enc), x)
        assert np.array_equal(sk.decrypt(again), x)
