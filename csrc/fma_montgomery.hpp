// Four-lane Montgomery arithmetic in radix 2^52 on AVX2 double-precision
// FMA: the "avx2" kernel tier (kernel_tier.hpp), for x86-64 CPUs without
// AVX-512 IFMA.
//
// Numbers are held exactly as on the ifma tier (ifma_montgomery.hpp): D
// digits of 52 bits, R = 2^(52 D) with 4m < R, lane-interleaved, and the
// same per-modulus constants (IfmaModulus) and comb tables (IfmaFixedBase).
// Digits are stored as doubles (exact integers below 2^52).  A 52 x 52-bit
// product is split exactly with two FMAs under round-toward-zero:
//   h = fma(a, b, 2^104)         = 2^104 + floor(a b / 2^52) 2^52
//   l = fma(a, b, 2^104 + 2^52 - h) = 2^52 + (a b mod 2^52)
// whose bit patterns, less those of 2^104 and 2^52, are the high and low
// digits as integers; columns are summed as 64-bit integers.  The rounding
// mode is set for the duration of each call and restored before it returns.
//
// Eight-lane entry points mirror the ifma_* ones (two four-lane halves), so
// every caller of the ifma kernels runs here unchanged.  Timing: the
// sequence of instructions and memory accesses depends only on D, the
// exponent bit count and the table shape; every operand is an integer below
// 2^105 or a sum of such, never subnormal, so the floating-point operations
// take data-independent time.  Constant time in exponents and bases.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>

#include "ifma_montgomery.hpp"

namespace fp {

// The CPU has AVX2 and FMA (and this build has the kernels).
bool fma_cpu_supported();

// As ifma_powm8_lanes (same contract, same results), on AVX2 FMA.  live
// <= 4 skips lanes 4-7 (not written).
void fma_powm8_lanes(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                     const mpz_srcptr base[8], mpz_ptr out[8], size_t live);

// As ifma_fixed_powm8, on AVX2 FMA; reads the same IfmaFixedBase table.
// live <= 4 skips lanes 4-7 (not written).
void fma_fixed_powm8(const IfmaModulus& mod, const IfmaFixedBase& table, const mpz_srcptr e[8],
                     mpz_ptr out[8], size_t live);

// As IfmaRowProduct (same contract: eight lanes of raw limb rows in the
// radix-2^52 Montgomery form), on AVX2 FMA.  Lanes 4-7 are skipped when all
// their rows are nullptr.  One object per worker thread; buffers wiped on
// destruction.
class FmaRowProduct {
 public:
  FmaRowProduct(const IfmaModulus& mod, mpz_srcptr corr);
  ~FmaRowProduct();
  FmaRowProduct(const FmaRowProduct&) = delete;
  FmaRowProduct& operator=(const FmaRowProduct&) = delete;

  void run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* const* out);

 private:
  const IfmaModulus& mod_;
  bool has_corr_;
  void* buf_;
};

}  // namespace fp
