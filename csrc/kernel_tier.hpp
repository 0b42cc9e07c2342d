// Run-time choice of the arithmetic kernels ("tiers").
//
// Every tier computes the same values; they differ in speed and in what the
// CPU must offer:
//   ifma      8-lane AVX-512 IFMA Montgomery arithmetic (ifma_montgomery.hpp)
//   avx2      4-lane radix-2^52 Montgomery arithmetic on AVX2 double-precision
//             FMA (fma_montgomery.hpp), for CPUs without IFMA; batches of one
//             or two rows run on the mulx rows (it needs BMI2 + ADX too)
//   mulx      fixed-size Montgomery arithmetic on 64-bit limbs with
//             mulx/adcx/adox (BMI2 + ADX) inline assembly (mont64.hpp)
//   portable  the same Montgomery code with plain C++ 128-bit products, for
//             any 64-bit CPU (ARM servers, Macs)
//   gmp       GMP's mpz_powm_sec / mpn_sec_* and mpz arithmetic only
// The default is the fastest tier the CPU supports: ifma, else avx2, else
// mulx, else gmp (portable runs only on request: it is slower than GMP's assembly).  FASTPAILLIER_KERNEL
// (one of the names above) forces a tier at start-up; FASTPAILLIER_DISABLE_IFMA
// (any value) keeps the choice off ifma.  An unknown or unsupported name in
// FASTPAILLIER_KERNEL leaves the default in place; the Python layer reports it.
#pragma once

namespace fp {

enum class Tier : int { kGmp = 0, kPortable = 1, kMulx = 2, kIfma = 3, kAvx2 = 4 };

// The tier in use.  Thread-safe; cheap (one atomic load after the first call).
Tier kernel_tier();

// Whether this build and CPU can run |t|.
bool tier_supported(Tier t);

// Switches every later kernel call to |t|; returns false (and changes
// nothing) when |t| is not supported.  Calls in flight on other threads may
// finish on the old tier: switch between calls (tests, benchmarks).
bool set_kernel_tier(Tier t);

// "ifma", "avx2", "mulx", "portable", "gmp".
const char* tier_name(Tier t);

// Whether the active tier does its one-row Montgomery arithmetic on 64-bit
// limbs (mulx, portable, or avx2, whose lone rows run on the mulx rows).
bool mont64_enabled();

// Whether the one-row 64-bit kernels run the mulx rows (mulx or avx2 tier).
bool mont64_mulx_rows();

// Whether the active tier runs the 8-lane radix-2^52 kernels (the ifma_*
// entry points): ifma (AVX-512 IFMA) or avx2 (AVX2 FMA, fma_montgomery.hpp).
bool lanes52_enabled();

// The CPU has AVX-512F and AVX-512 IFMA (and the build has the kernels).
bool ifma_cpu_supported();

}  // namespace fp
