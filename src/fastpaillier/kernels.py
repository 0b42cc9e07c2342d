"""Which arithmetic kernels ("tiers") run the exponentiations and products.

Every tier computes bit-identical results; they differ in speed and in what the CPU needs:

- ``ifma``: 8-lane AVX-512 IFMA Montgomery arithmetic (Intel Ice Lake and later, AMD Zen 4/5
  where the hypervisor exposes AVX-512).
- ``avx2``: the same radix-2^52 Montgomery arithmetic in 4 lanes of AVX2 double-precision FMA
  (x86-64 with AVX2, FMA, BMI2 and ADX: Intel since Broadwell, AMD since Zen 1); batches of one
  or two rows run on the mulx rows.
- ``mulx``: fixed-size Montgomery arithmetic on 64-bit limbs in mulx/adcx/adox assembly
  (x86-64 with BMI2 and ADX: Intel since Broadwell, AMD since Zen 1).
- ``portable``: the same Montgomery code in plain C++ (any 64-bit CPU, ARM included); about
  1.8x slower than GMP's assembly on x86-64, so it runs only when asked for.
- ``gmp``: GMP's constant-time ``mpz_powm_sec`` and plain mpz arithmetic (the reference).

The default is ifma where the CPU has it, else avx2, else mulx, else gmp.  ``FASTPAILLIER_KERNEL=<tier>`` forces a tier at
import; ``FASTPAILLIER_DISABLE_IFMA=1`` keeps the default off ``ifma``.  Secret exponents are
processed in constant time on every tier.
"""

from __future__ import annotations

import os

from . import _native
from .errors import UnsupportedKernelError

TIERS: tuple[str, ...] = tuple(_native.KERNEL_TIERS)  # ifma, avx2, mulx, portable, gmp


def kernel_tier() -> str:
    """The tier in use: 'ifma', 'avx2', 'mulx', 'portable' or 'gmp'."""
    return _native.kernel_tier()


def available_kernel_tiers() -> list[str]:
    """The tiers this CPU and build can run, in the order ifma, avx2, mulx, portable, gmp."""
    return [t for t in TIERS if _native.tier_supported(t)]


def set_kernel_tier(name: str) -> None:
    """Switches every later operation to the named tier (for benchmarks and tests)."""
    if not isinstance(name, str) or name not in TIERS:
        raise UnsupportedKernelError(
            f"kernel tier {name!r} does not exist; choose one of {', '.join(TIERS)}")
    if not _native.set_kernel_tier(name):
        raise UnsupportedKernelError(
            f"this CPU cannot run the {name!r} kernel tier; available: {', '.join(available_kernel_tiers())}")


def _check_environment() -> None:
    """Fails the import when FASTPAILLIER_KERNEL names a tier that is unknown or unsupported."""
    forced = os.environ.get("FASTPAILLIER_KERNEL", "")
    if not forced:
        return
    if forced not in TIERS or not _native.tier_supported(forced):
        raise UnsupportedKernelError(
            f"FASTPAILLIER_KERNEL={forced!r} is not a kernel tier this CPU can run; set it to one of "
            f"{', '.join(available_kernel_tiers())} or unset it")


_check_environment()
