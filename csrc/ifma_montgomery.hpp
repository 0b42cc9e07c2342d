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

}  // namespace fp
