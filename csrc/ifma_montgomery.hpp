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

// True when the CPU has AVX-512F and IFMA and FASTPAILLIER_DISABLE_IFMA is
// not set (nor disabled through set_ifma_enabled).
bool ifma_enabled();
void set_ifma_enabled(bool on);  // tests force the portable path with false

// out[l] = base[l]^e mod m for 8 lanes.  base values must be < m; |e| > 0.
// Constant time in e and the bases for a fixed bit length of e: the window
// schedule depends on bit_length(e) only and table entries are read by a
// full masked scan.  Requires ifma_enabled().
void ifma_powm8(const IfmaModulus& mod, mpz_srcptr e, const mpz_srcptr base[8],
                mpz_ptr out[8]);

// As ifma_powm8 with one exponent per lane, each below 2^bits: the window
// schedule depends on |bits| only, never on the exponents' values.
void ifma_powm8_lanes(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                      const mpz_srcptr base[8], mpz_ptr out[8]);

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
// ifma_enabled().
void ifma_fixed_powm8(const IfmaModulus& mod, const IfmaFixedBase& table,
                      const mpz_srcptr e[8], mpz_ptr out[8]);

}  // namespace fp
