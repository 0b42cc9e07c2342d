// Fixed-size Montgomery arithmetic on 64-bit limbs: the "mulx" and
// "portable" kernel tiers (kernel_tier.hpp).
//
// A modulus m of k limbs is handled as L = k rounded up to a multiple of 4
// limbs, R = 2^(64 L).  Every value is a row of L little-endian limbs, fully
// reduced below m.  A Montgomery product a b / R mod m is computed as a full
// product (L rows of "t += x * v") followed by a word-by-word Montgomery
// reduction (L more rows) and one masked final subtraction, so the sequence
// of instructions and memory accesses depends on L only, never on the
// values: every function here is constant time in its data and exponents
// for a fixed modulus size and exponent bit count (the bit count is a public
// parameter).  The row "t += x * v" runs as mulx/adcx/adox inline assembly on
// the mulx tier and as plain C++ with 128-bit products on the portable tier;
// both give identical results.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fp {

// Per-modulus constants, computed once per key with GMP.
struct Mont64Modulus {
  size_t limbs = 0;              // L, a multiple of 4
  std::vector<uint64_t> m;       // m, L limbs
  std::vector<uint64_t> r_mod;   // R mod m: the Montgomery form of 1
  std::vector<uint64_t> r2_mod;  // R^2 mod m: converts into Montgomery form
  uint64_t k0 = 0;               // -m^-1 mod 2^64
  // False (and nothing usable) when modulus is even or below 3.
  bool init(mpz_srcptr modulus);
  size_t r_bits() const { return 64 * limbs; }
};

// out = base^e mod m, base < m, 0 <= e < 2^e_bits (e_bits >= 1; e_bits is
// public, e and base are not).  Fixed windows chosen from e_bits; table
// entries read by a full masked scan; constant time in e and base.  Scratch
// holding secrets is wiped.  out may alias base or e.  Requires
// mont64_enabled() tier or is called with an explicit backend by tests via
// the tier switch.
void mont64_powm(const Mont64Modulus& mod, mpz_ptr out, mpz_srcptr base, mpz_srcptr e,
                 size_t e_bits);

// The same with the backend named: mulx rows (the CPU must have BMI2 + ADX:
// tier_supported(Tier::kMulx)) or plain C++ rows, whatever the active tier.
// The ifma tier uses it for batches too small to fill its eight lanes.
void mont64_powm(const Mont64Modulus& mod, mpz_ptr out, mpz_srcptr base, mpz_srcptr e,
                 size_t e_bits, bool mulx);

// Fixed-base table in Montgomery form: entry (i, k) = g^(k 2^(w i)) R mod m,
// windows i < ceil(exp_bits / w), digits k < 2^w, L limbs each, stored
// [window][entry][limb].  Size windows 2^w L 8 bytes.  Built once with GMP;
// read-only afterwards, shared by threads.
struct Mont64FixedBase {
  size_t limbs = 0, window = 0, windows = 0;
  std::vector<uint64_t> table;
  void init(const Mont64Modulus& mod, mpz_srcptr modulus, mpz_srcptr base, size_t exp_bits,
            unsigned window);
};

// out = g^e mod m for e < 2^(w windows): one Montgomery product per window
// and no squarings.  Constant time in e (full masked row scans, fixed
// operation sequence).  out may alias e.
void mont64_fixed_powm(const Mont64Modulus& mod, const Mont64FixedBase& table, mpz_ptr out,
                       mpz_srcptr e);

// out (L limbs) = prod_i rows[i] / R^(2 count - 1) mod m, for |count| rows of
// |row_limbs| <= 2L limbs, each below m R: a unit mod m exactly when every
// row is, so one gcd(out, m) checks a whole batch.  Public data only: runs
// mulx where the CPU has it (whatever the tier), else plain C++.
void mont64_unit_product(const Mont64Modulus& mod, const uint64_t* rows, size_t count,
                         size_t row_limbs, uint64_t* out);

// Chained Montgomery products over raw limb rows, for the Montgomery form of
// ciphertexts (x R mod n^2 held in ordinary rows).  One object per worker
// thread; its buffers are wiped on destruction.  Constant time in the data,
// though it only ever sees public ciphertexts.
class Mont64RowProduct {
 public:
  // corr: a value below m that every result is Montgomery-multiplied by
  // last (nullptr: none).
  Mont64RowProduct(const Mont64Modulus& mod, mpz_srcptr corr);
  ~Mont64RowProduct();
  Mont64RowProduct(const Mont64RowProduct&) = delete;
  Mont64RowProduct& operator=(const Mont64RowProduct&) = delete;

  // out = x_0 x_1 ... x_{K-1} [corr] / R^(K-1 [+1]) mod m, fully reduced,
  // where x_k is rows[k], a row of |limbs| limbs (< m; limbs <= L), and out
  // a row of |limbs| limbs.  K >= 1.  out may alias any input row.
  void run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* out);

 private:
  const Mont64Modulus& mod_;
  bool has_corr_;
  bool mulx_;
  std::vector<uint64_t> corr_, acc_, x_, t_;
};

}  // namespace fp
