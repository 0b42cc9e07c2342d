"""What the benchmarks say about the machine they ran on."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what the platform module knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The kernel tiers of fastpaillier's C++ core, fastest first, as the benchmark tables name them.
KERNEL_TIER_LABELS = {"ifma": "IFMA", "avx2": "AVX2", "mulx": "mulx", "portable": "portable", "gmp": "GMP"}

KERNEL_TIER_NOTES = {
    "ifma": "AVX-512 IFMA 8-lane Montgomery arithmetic (radix 2^52)",
    "avx2": "AVX2 FMA 4-lane Montgomery arithmetic (radix 2^52, two lanes of four per 8-row group) for CRT "
            "decryption, CRT and classic public-key encryption, the DJN fixed-base tables and ciphertext "
            "products; mulx rows (BMI2 + ADX) for lone rows; no AVX-512",
    "mulx": "Montgomery arithmetic on 64-bit limbs with mulx/adcx/adox (BMI2 + ADX), no AVX-512 IFMA",
    "portable": "Montgomery arithmetic on 64-bit limbs in plain C++ (no mulx/ADX, no AVX-512 IFMA)",
    "gmp": "GMP only (mpz_powm_sec / mpn_sec_*), no AVX-512 IFMA",
}


def kernel_tier_name() -> str:
    """The kernel tier fastpaillier runs on: "ifma", "avx2", "mulx", "portable" or "gmp".

    `fastpaillier._native.kernel_tier()` where the build has it (FASTPAILLIER_KERNEL forces
    a tier there); older builds only know IFMA or not, so they answer "ifma" or "gmp".
    """
    from fastpaillier import _native

    tier = getattr(_native, "kernel_tier", None)
    if callable(tier):
        return str(tier())
    return "ifma" if _native.ifma_enabled() else "gmp"


def kernel_tier_label(tier: str | None = None) -> str:
    """The tier as the tables print it: IFMA, mulx, portable or GMP."""
    tier = kernel_tier_name() if tier is None else tier
    return KERNEL_TIER_LABELS.get(tier, tier)


def kernel_tier_note(tier: str | None = None) -> str:
    """One line on what the tier computes with."""
    tier = kernel_tier_name() if tier is None else tier
    return KERNEL_TIER_NOTES.get(tier, "unknown tier")
