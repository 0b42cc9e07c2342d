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
// products use GMP's mpn_sec_* functions (portable path) or the 8-lane
// IFMA Montgomery product (ifma_enabled()), both with an operation sequence
// that depends on the table's shape only.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ifma_montgomery.hpp"

namespace fp {

class FixedBaseTable {
 public:
  // Table for base^e mod modulus, 0 <= e < 2^exp_bits, windows of |window|
  // bits (1..8).  The modulus must be odd; the base is reduced mod modulus.
  // Each representation (portable limbs, IFMA digits) is built on first use,
  // once, thread-safely; the object is then read-only.
  FixedBaseTable(mpz_srcptr base, mpz_srcptr modulus, size_t exp_bits, unsigned window);
  ~FixedBaseTable();
  FixedBaseTable(const FixedBaseTable&) = delete;
  FixedBaseTable& operator=(const FixedBaseTable&) = delete;

  size_t exp_bits() const { return exp_bits_; }
  size_t windows() const { return windows_; }
  mpz_srcptr modulus() const { return mod_; }

  // out = base^e mod m with mpn_sec_mul / mpn_sec_div_r and masked row scans:
  // constant time in e (which must be < 2^exp_bits; aborts otherwise).  Cost:
  // windows() products of limbs(m) x limbs(m) limbs.  out may alias e.
  // Scratch (exponent, products) is wiped before returning.
  void powm(mpz_t out, mpz_srcptr e) const;

  // out[l] = base^e[l] mod m for 8 lanes on the IFMA path; same constant-time
  // property, windows() 8-lane Montgomery products.  out[l] may alias e[l]
  // (all exponents are read before any output is written).  Requires
  // ifma_enabled().
  void powm8(mpz_ptr out[8], const mpz_srcptr e[8]) const;

 private:
  const std::vector<uint64_t>& portable() const;
  const IfmaFixedBase& ifma() const;

  mpz_t base_, mod_;
  size_t exp_bits_, windows_, limbs_;
  unsigned window_;
  IfmaModulus ifma_mod_;
  mutable std::once_flag portable_once_, ifma_once_;
  mutable std::vector<uint64_t> portable_;  // [window][entry][limb], canonical values < m
  mutable IfmaFixedBase ifma_;
};

}  // namespace fp
