// Fixed-base exponentiation g^e mod m with precomputed comb tables.
//
// For a base known in advance (the DJN value h_s of a public key, or its
// residues mod p^2 and q^2), the table holds g^(k 2^(w i)) for every window
// i < ceil(exp_bits / w) and digit k < 2^w.  Then
//
//   g^e = prod_i g^(e_i 2^(w i)),   e = sum_i e_i 2^(w i),
//
// one multiplication per window and no squarings: about exp_bits / w
// products instead of exp_bits squarings plus exp_bits / w products.
//
// The exponent is secret (it is the encryption randomness), so every table
// read scans the whole row and keeps the wanted entry with a mask; the
// products use the 64-bit Montgomery kernels (mulx / portable tiers), GMP's
// mpn_sec_* functions (gmp tier) or the 8-lane IFMA Montgomery product
// (ifma tier), each with an operation sequence that depends on the table's
// shape only.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ifma_montgomery.hpp"
#include "mont64.hpp"

namespace fp {

class FixedBaseTable {
 public:
  // Table for base^e mod modulus, 0 <= e < 2^exp_bits, windows of |window|
  // bits (1..8) for the IFMA and gmp representations and |window64| bits for
  // the 64-bit Montgomery one.  The modulus must be odd; the base is reduced
  // mod modulus.  Each representation (gmp limbs, IFMA digits, Montgomery
  // limbs) is built on first use, once, thread-safely; the object is then
  // read-only.
  FixedBaseTable(mpz_srcptr base, mpz_srcptr modulus, size_t exp_bits, unsigned window,
                 unsigned window64);
  ~FixedBaseTable();
  FixedBaseTable(const FixedBaseTable&) = delete;
  FixedBaseTable& operator=(const FixedBaseTable&) = delete;

  size_t exp_bits() const { return exp_bits_; }
  size_t windows() const { return windows_; }
  mpz_srcptr modulus() const { return mod_; }

  // out = base^e mod m, one row at a time: with the 64-bit Montgomery
  // kernels where mont64_enabled(), else with mpn_sec_mul / mpn_sec_div_r.
  // Masked row scans: constant time in e (which must be < 2^exp_bits; aborts
  // otherwise).  Cost: one product per window.  out may alias e.  Scratch
  // (exponent, products) is wiped before returning.
  void powm(mpz_t out, mpz_srcptr e) const;

  // out[l] = base^e[l] mod m for 8 lanes on the IFMA path; same constant-time
  // property, windows() 8-lane Montgomery products.  out[l] may alias e[l]
  // (all exponents are read before any output is written).  Requires
  // lanes52_enabled() (ifma or avx2 tier).
  void powm8(mpz_ptr out[8], const mpz_srcptr e[8], size_t live = 8) const;

 private:
  const std::vector<uint64_t>& gmp_table() const;
  const IfmaFixedBase& ifma() const;
  const Mont64FixedBase& mont64() const;
  void powm_sec(mpz_t out, mpz_srcptr e) const;

  mpz_t base_, mod_;
  size_t exp_bits_, windows_, limbs_;
  unsigned window_, window64_;
  IfmaModulus ifma_mod_;
  Mont64Modulus m64_mod_;
  mutable std::once_flag gmp_once_, ifma_once_, m64_once_;
  mutable std::vector<uint64_t> gmp_;  // [window][entry][limb], canonical values < m
  mutable IfmaFixedBase ifma_;
  mutable Mont64FixedBase m64_;
};

}  // namespace fp
