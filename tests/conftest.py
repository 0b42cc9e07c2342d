"""Shared keys for the test suite: small insecure keys for properties, one 2048-bit pair."""

from __future__ import annotations

import pytest

import fastpaillier as fp

# Fixed small primes (insecure, tests only): 256-bit n for fast property tests.
SMALL_P = 0xF7E75FDC469067FFDC4E847C51F452DF
SMALL_Q = 0xE85CED54AF57E53E092113E62F436F4F


@pytest.fixture(scope="session")
def small_primes() -> tuple[int, int]:
    """The fixed primes of small_keys, for tests that build fresh keys from them."""
    return SMALL_P, SMALL_Q


@pytest.fixture(scope="session")
def small_keys() -> tuple[fp.PublicKey, fp.PrivateKey]:
    """A 256-bit key pair from fixed primes (insecure=True)."""
    sk = fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True)
    return sk.public_key, sk


@pytest.fixture(scope="session")
def keys_2048() -> tuple[fp.PublicKey, fp.PrivateKey]:
    """A freshly generated 2048-bit key pair, shared by the whole session."""
    return fp.generate_keypair(2048)


@pytest.fixture(scope="session")
def tiny_keys() -> tuple[fp.PublicKey, fp.PrivateKey]:
    """python-paillier's documented tiny key n = 126869 = 293 * 433."""
    sk = fp.PrivateKey(293, 433, insecure=True)
    return sk.public_key, sk


# ---- kernel tiers ------------------------------------------------------------------------------

from fastpaillier import _native  # noqa: E402

DEFAULT_TIER = _native.kernel_tier()
SUPPORTED_TIERS = [t for t in _native.KERNEL_TIERS if _native.tier_supported(t)]


@pytest.fixture(autouse=True)
def _restore_kernel_tier():
    """Every test starts and ends on the tier the process started with."""
    _native.set_kernel_tier(DEFAULT_TIER)
    yield
    _native.set_kernel_tier(DEFAULT_TIER)


@pytest.fixture(params=list(_native.KERNEL_TIERS))
def tier(request):
    """Runs the test on each kernel tier; skips the tiers this CPU cannot run."""
    if not _native.tier_supported(request.param):
        pytest.skip(f"this CPU cannot run the {request.param} kernel tier")
    _native.set_kernel_tier(request.param)
    yield request.param
    _native.set_kernel_tier(DEFAULT_TIER)
