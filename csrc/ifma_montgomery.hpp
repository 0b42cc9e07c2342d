// Eight-lane Montgomery exponentiation with AVX-512 IFMA (vpmadd52luq/huq).
//
// Numbers are held in radix 2^52 with D digits, lane-interleaved: digit j of
// lane l is at [j * 8 + l].  All eight lanes share one odd modulus m and one
// exponent e (decryption raises every ciphertext to the same p-1), so the
// sequence of operations is identical across lanes and independent of the
// data.  R = 2^(52 D) with 4m < R, which lets products stay "almost reduced"
// (< 2m) without a conditional subtraction per multiplication.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fp {

// Per-modulus constants, computed once per key with GMP.
struct IfmaModulus {
  size_t digits = 0;             // D
  std::vector<uint64_t> m;       // D digits of m
  std::vector<uint64_t> r_mod;   // R mod m, D digits
  std::vector<uint64_t> r2_mod;  // R^2 mod m, D digits
  uint64_t k0 = 0;               // -m^-1 mod 2^52
  bool init(mpz_srcptr modulus);
};

// True when the active kernel tier is ifma (kernel_tier.hpp): the CPU has
// AVX-512F and IFMA and neither FASTPAILLIER_DISABLE_IFMA nor
// FASTPAILLIER_KERNEL chose another tier.
bool ifma_enabled();
// true: switch to the ifma tier where the CPU has it; false: switch from
// ifma to the best other tier.  Defined in kernel_tier.cpp.
void set_ifma_enabled(bool on);
// The CPU has AVX-512F and AVX-512 IFMA and this build has the kernels.
bool ifma_cpu_supported();

// out[l] = base[l]^e mod m for 8 lanes.  base values must be < m; |e| > 0.
// Constant time in e and the bases for a fixed bit length of e: the window
// schedule depends on bit_length(e) only and table entries are read by a
// full masked scan.  Requires lanes52_enabled(); on the avx2 tier this and
// the other 8-lane entry points run the AVX2 FMA kernels (fma_montgomery.hpp).
//
// live (1-8): the lanes the caller reads.  IFMA computes all eight whatever
// it is; the avx2 tier skips its second four-lane half when live <= 4 (lanes
// 4-7 are then not written).  A public count, like the batch size.
void ifma_powm8(const IfmaModulus& mod, mpz_srcptr e, const mpz_srcptr base[8],
                mpz_ptr out[8], size_t live = 8);

// As ifma_powm8 with one exponent per lane, each below 2^bits: the window
// schedule depends on |bits| only, never on the exponents' values.
void ifma_powm8_lanes(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                      const mpz_srcptr base[8], mpz_ptr out[8], size_t live = 8);

// Fixed-base comb table of one base g modulo m (Lim-Lee style, one row per
// window): entry (i, k) = g^(k 2^(w i)) R mod m for windows i < ceil(bits / w)
// and digits k < 2^w, in radix 2^52, D digits each.  Rows are stored
// digit-major (row[j 2^w + k] = digit j of entry k) and shared by all lanes.
// Size: windows 2^w D 8 bytes (7.8 MB for a 4096-bit m, 1152-bit
// exponents, w = 6).  Built once per key with GMP; read-only afterwards, so
// any number of threads may use it.
struct IfmaFixedBase {
  size_t digits = 0, window = 0, windows = 0;
  std::vector<uint64_t> table;
  void init(const IfmaModulus& mod, mpz_srcptr modulus, mpz_srcptr base,
            size_t exp_bits, unsigned window);
};

// out[l] = g^e[l] mod m for 8 lanes, e[l] < 2^(w windows): one Montgomery
// product per window and no squarings.  Constant time in the e[l]: each
// window reads every entry of its row for every lane (masked broadcasts) and
// the sequence of operations depends on the table's shape only.  Requires
// lanes52_enabled().
void ifma_fixed_powm8(const IfmaModulus& mod, const IfmaFixedBase& table,
                      const mpz_srcptr e[8], mpz_ptr out[8], size_t live = 8);

// Chained 8-lane Montgomery products over raw limb rows, for the Montgomery
// form of ciphertexts (values x R mod n^2 held in ordinary limb rows).
// One object per worker thread: it owns the lane buffers, wiped on
// destruction.  Not constant time in anything but the shape: it serves
// public ciphertext products only.  Requires ifma_enabled() for run().
class IfmaRowProduct {
 public:
  // corr: a value below m that every result is Montgomery-multiplied by
  // last (nullptr: none).
  IfmaRowProduct(const IfmaModulus& mod, mpz_srcptr corr);
  ~IfmaRowProduct();
  IfmaRowProduct(const IfmaRowProduct&) = delete;
  IfmaRowProduct& operator=(const IfmaRowProduct&) = delete;

  // out[l] = x_0 x_1 ... x_{K-1} [corr] / R^(K-1 [+1]) mod m, fully reduced,
  // for lanes l < 8, where x_k of lane l is the row rows[k * 8 + l] of
  // |limbs| limbs (each < m; nullptr reads as 0) and out[l] a row of |limbs|
  // limbs (nullptr: lane not stored).  K >= 1.
  void run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* const* out);

 private:
  const IfmaModulus& mod_;
  bool has_corr_;
  void* buf_;  // m, acc, operand, scratch, tmp, corr: 6 D vectors; limb transposes: D + 9
};

}  // namespace fp
