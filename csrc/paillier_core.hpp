// Batched Paillier kernels over raw little-endian uint64 limb arrays.
//
// Conventions for every kernel below:
//  * A batch of big integers is a C-contiguous (count x limbs) array of
//    uint64_t, least significant limb first, zero-padded to |limbs|.
//  * Ciphertext rows have pub.nsq_limbs limbs; plaintext rows pub.n_limbs.
//  * Inputs are read only; |out| may alias an input of the same row size
//    (each row is read fully into an mpz before its output is written).
//  * |threads| workers each take a disjoint row range; no shared mutable
//    state.  Callers release the GIL around these calls.
//  * Kernels that can fail return the index of the first failing row, or -1.
//    Failures are reported, never undefined behaviour: inputs are validated
//    by the Python layer and re-checked where a bad row could crash GMP.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fixed_base.hpp"
#include "ifma_montgomery.hpp"
#include "kernel_tier.hpp"
#include "mont64.hpp"

namespace fp {

// Key material known to everybody: n, n^2 and their limb counts.
class PublicContext {
 public:
  PublicContext(const uint64_t* n, size_t n_limbs);
  ~PublicContext();
  PublicContext(const PublicContext&) = delete;
  PublicContext& operator=(const PublicContext&) = delete;

  mpz_t n, nsq;
  size_t n_limbs, nsq_limbs;
  // Montgomery form of ciphertexts: c held as c R mod n^2 (see
  // mont_product_of_arrays).  R is fixed per context when it is made:
  // R = 2^(52 D), D = ifma_nsq.digits, when the ifma or avx2 tier is active
  // then and lanes_ok; else R = 2^(64 L), L = m64_nsq.limbs.  Any
  // tier computes with either R; only the tier that matches it does so
  // natively (mont_native).
  IfmaModulus ifma_nsq;
  bool lanes_ok = false;  // the 8-lane kernels take ifma_nsq (D <= kMaxMontDigits)
  Mont64Modulus m64_nsq;
  Mont64Modulus m64_n;  // for the batched unit check of ciphertexts
  enum class Form { kIfma, kMont64 } form = Form::kMont64;
  size_t form_r_bits = 0;
  bool mont_supported = true;
};

// Whether the active kernel tier computes products in this context's
// Montgomery form directly (ifma form on the ifma tier, 64-bit form on the
// mulx and portable tiers).  Callers keep results in Montgomery form only
// then.
bool mont_native(const PublicContext& pub);

// Largest radix-2^52 digit count of n^2 for the Montgomery form (the IFMA
// product keeps unnormalized digits below 2^63 up to 256 digits): n^2 of up
// to 13310 bits, i.e. keys of up to 6654 bits.  Larger keys stay canonical.
constexpr size_t kMaxMontDigits = 256;

// Secret key material, precomputed once per key: p^2, q^2, the decryption
// constants hp, hq, q^-1 mod p, the CRT constant (q^2)^-1 mod p^2 and the
// exponents n mod p(p-1), n mod q(q-1) of the exact CRT obfuscator.
class PrivateContext {
 public:
  PrivateContext(const uint64_t* p, const uint64_t* q, size_t half_limbs,
                 const uint64_t* n, size_t n_limbs);
  ~PrivateContext();
  PrivateContext(const PrivateContext&) = delete;
  PrivateContext& operator=(const PrivateContext&) = delete;

  PublicContext pub;
  mpz_t p, q, psq, qsq, pm1, qm1, hp, hq, q_inv_p, qsq_inv_psq, exp_p, exp_q;
  mpz_t p_inv_word, q_inv_word;  // p^-1 mod 2^(64 limbs(p)), likewise q
  IfmaModulus ifma_psq, ifma_qsq;  // radix-2^52 constants for the IFMA path
  Mont64Modulus m64_psq, m64_qsq;  // 64-bit limb constants for the mulx / portable tiers
};

// ---- DJN fixed-base randomness -------------------------------------------
//
// Damgard, Jurik and Nielsen (2010), section 4.2: the key owner picks x
// uniform in Z_n^*, sets h = -x^2 mod n and publishes h_s = h^n mod n^2.  An
// encryption then uses the obfuscator h_s^a mod n^2 = (h^a)^n mod n^2 with a
// short uniform exponent a instead of r^n with r uniform in Z_n^*; h_s is a
// fixed base, so h_s^a comes from a precomputed comb table (fixed_base.hpp).

// Bits of the DJN exponent a for an n of |n_bits| bits:
// ceil(n_bits / 2) + kDjnMarginBits (1152 for a 2048-bit n).
constexpr size_t kDjnMarginBits = 128;
size_t djn_exponent_bits(size_t n_bits);

// The public key's DJN table: h_s mod n^2 for exponents of
// djn_exponent_bits(|n|) bits, 6-bit windows (7.8 MB on the ifma tier, 6.3 MB
// on the others, for a 2048-bit n; each tier's table built on first use, about
// 0.2 s).  Read-only once built; shared by all threads.
class DjnContext {
 public:
  DjnContext(const PublicContext& pub, const uint64_t* hs, size_t hs_limbs);
  size_t exp_bits;
  std::unique_ptr<FixedBaseTable> table;
};

// The private key's DJN tables: h_s mod p^2 and h_s mod q^2.  h_s is an n-th
// residue, so its order mod p^2 divides p - 1 (Z_{p^2}^* is cyclic of order
// p(p-1) and h_s = h^(pq)); exponents are reduced mod p - 1 (q - 1) and the
// tables cover bit_length(p) (bit_length(q)) bits, 5-bit windows (2.1 MB
// each with IFMA for a 2048-bit n).  The caller must have
// checked that h_s is an n-th residue (decrypts to 0).
class DjnCrtContext {
 public:
  DjnCrtContext(const PrivateContext& priv, const uint64_t* hs, size_t hs_limbs);
  size_t exp_bits;
  std::unique_ptr<FixedBaseTable> table_p, table_q;
};

// h_out (pub.n_limbs limbs) = a fresh DJN value h = -x^2 mod n with x uniform
// in Z_n^* from the kernel CSPRNG (x is wiped).  The key publishes h and
// h_s = h^n mod n^2, which its loaders recompute.  Returns false if the CSPRNG
// failed.  Variable time: h is public and x is discarded.
bool djn_generate_base(const PublicContext& pub, uint64_t* h_out);

// ---- encryption -----------------------------------------------------------

// out[i] = (1 + m[i] n) r^n mod n^2 with a fresh r uniform in Z_n^*.
// m rows have |m_limbs| limbs and must be < n.  Returns -1, or 0 when the
// kernel CSPRNG failed.  Public exponent: variable time is fine.
long encrypt_public(const PublicContext& pub, const uint64_t* m, size_t m_limbs,
                    size_t count, uint64_t* out, int threads);

// As encrypt_public, but the obfuscator is computed by CRT from the secret
// factors (see obfuscator_crt in the .cpp for why its distribution equals
// r^n mod n^2).  Constant time in the secret exponents p and q.
long encrypt_private(const PrivateContext& priv, const uint64_t* m,
                     size_t m_limbs, size_t count, uint64_t* out, int threads);

// Known-answer path: out[i] = (1 + m[i] n) r[i]^n mod n^2 with caller-chosen
// r rows of |r_limbs| limbs.  For tests only.
void encrypt_with_r(const PublicContext& pub, const uint64_t* m, size_t m_limbs,
                    const uint64_t* r, size_t r_limbs, size_t count,
                    uint64_t* out, int threads);

// Same result as encrypt_with_r, computed with r^n by CRT mod p^2 and q^2.
void encrypt_with_r_crt(const PrivateContext& priv, const uint64_t* m,
                        size_t m_limbs, const uint64_t* r, size_t r_limbs,
                        size_t count, uint64_t* out, int threads);

// out[i] = (1 + m[i] n) h_s^a mod n^2 with a fresh a uniform in
// [0, 2^djn.exp_bits): one fixed-base exponentiation, eight rows at a time
// with IFMA.  Constant time in a (comb table scans, see fixed_base.hpp).
// Returns -1, or the first row whose randomness could not be drawn.
long encrypt_djn(const PublicContext& pub, const DjnContext& djn, const uint64_t* m,
                 size_t m_limbs, size_t count, uint64_t* out, int threads);

// The same ciphertext distribution with the private key: h_s^(a mod p-1) mod
// p^2 and h_s^(a mod q-1) mod q^2 from the CRT tables (IFMA when enabled),
// recombined by CRT.  Constant time in a, the reductions a mod p-1 and
// a mod q-1 included (mpn_sec_div_r on fixed limb counts).
long encrypt_djn_crt(const PrivateContext& priv, const DjnCrtContext& djn, const uint64_t* m,
                     size_t m_limbs, size_t count, uint64_t* out, int threads);

// Known-answer paths for tests: the exponents a come from rows of |a_limbs|
// limbs, each < 2^djn.exp_bits (checked by the caller).
void encrypt_djn_with_a(const PublicContext& pub, const DjnContext& djn, const uint64_t* m,
                        size_t m_limbs, const uint64_t* a, size_t a_limbs, size_t count,
                        uint64_t* out, int threads);
void encrypt_djn_crt_with_a(const PrivateContext& priv, const DjnCrtContext& djn,
                            const uint64_t* m, size_t m_limbs, const uint64_t* a,
                            size_t a_limbs, size_t count, uint64_t* out, int threads);

// out[i] = c[i] * h_s^a mod n^2 with fresh a (public tables or CRT tables).
long rerandomize_djn(const PublicContext& pub, const DjnContext& djn, const uint64_t* c,
                     size_t count, uint64_t* out, int threads);
long rerandomize_djn_crt(const PrivateContext& priv, const DjnCrtContext& djn,
                         const uint64_t* c, size_t count, uint64_t* out, int threads);

// Benchmark kernel: out[i] = base[i]^e[i] mod m for |count| rows (each of
// m_limbs limbs, bases < m, exponents below 2^e_bits), with the active
// tier's constant-time exponentiation: 8-lane IFMA, the 64-bit Montgomery
// kernels (mulx, portable), or mpz_powm_sec (gmp).
void batch_powm(const uint64_t* base, const uint64_t* e, size_t e_limbs, size_t e_bits,
                const uint64_t* m, size_t m_limbs, size_t count, uint64_t* out, int threads);

// The same with GMP's variable-time mpz_powm (the reference it is measured against).
void batch_powm_gmp(const uint64_t* base, const uint64_t* e, size_t e_limbs,
                    const uint64_t* m, size_t m_limbs, size_t count, uint64_t* out, int threads);

// out[i] = c[i] * s^n mod n^2 with fresh s (public key) ...
long rerandomize_public(const PublicContext& pub, const uint64_t* c,
                        size_t count, uint64_t* out, int threads);
// ... or with a fresh CRT obfuscator (private key).
long rerandomize_private(const PrivateContext& priv, const uint64_t* c,
                         size_t count, uint64_t* out, int threads);

// ---- decryption -----------------------------------------------------------

// Fails closed: a row with c = 0 mod p or c = 0 mod q (no encryption
// produces one, and decrypting one would give away p + q) gets an all-zero
// output, and the first such row is returned (else -1).  Both halves are
// always computed and tested together, so neither the result nor the work
// tells which prime divides c.
// out[i] (n_limbs) = m with c[i] = E(m), by CRT: L_p(c^(p-1) mod p^2) hp mod p
// and the same mod q, recombined.  The exponentiations are constant time in
// p-1 and q-1 on every tier: eight ciphertexts at a time with AVX-512 IFMA
// (ifma), one at a time with the 64-bit Montgomery kernels (mulx, portable)
// or GMP's mpz_powm_sec (gmp).  The surrounding mpz reductions are not
// strictly constant time in operand length.
long decrypt(const PrivateContext& priv, const uint64_t* c, size_t count,
             uint64_t* out, int threads);

// ---- homomorphic operations (public key) ----------------------------------

// out[i] = a[i] * b[i] mod n^2   (E(x) + E(y)).
void mul_ciphertexts(const PublicContext& pub, const uint64_t* a,
                     const uint64_t* b, size_t count, uint64_t* out,
                     int threads);

// out[i] = c[i] * (1 + m[i] n) mod n^2   (E(x) + y); m rows < n.
void add_plaintexts(const PublicContext& pub, const uint64_t* c,
                    const uint64_t* m, size_t m_limbs, size_t count,
                    uint64_t* out, int threads);

// out[i] = c[i]^k mod n^2 where k = -e if neg else e   (k * E(x)).
// e rows have |e_limbs| limbs; e_stride and neg_stride are 0 (one scalar for
// all rows) or 1 (one per row).  Variable time in the (public) scalar.
// Returns the first row whose ciphertext is not invertible mod n^2, or -1.
long pow_ciphertexts(const PublicContext& pub, const uint64_t* c, size_t count,
                     const uint64_t* e, size_t e_limbs, size_t e_stride,
                     const uint8_t* neg, size_t neg_stride, uint64_t* out,
                     int threads);

// out[i] = c[i]^-1 mod n^2   (-E(x)).  Returns the first non-invertible row.
long invert_ciphertexts(const PublicContext& pub, const uint64_t* c,
                        size_t count, uint64_t* out, int threads);

// out[g] = prod_{j < group} c[g * group + j] mod n^2 for g < groups.
void product_of_groups(const PublicContext& pub, const uint64_t* c,
                       size_t groups, size_t group, uint64_t* out, int threads);

// out[i] = prod_{k < arrays} c_k[i] mod n^2: the server's sum of K clients.
void product_of_arrays(const PublicContext& pub, const uint64_t* const* c,
                       size_t arrays, size_t count, uint64_t* out, int threads);

// ---- Montgomery form (public ciphertext products) -------------------------
//
// A row in form f holds x R^f mod n^2 (f = 0: canonical, f = 1: Montgomery
// form), fully reduced below n^2.  A Montgomery product of rows in form 1
// is one IFMA pass (no separate reduction), so sums of ciphertexts stay in
// form 1 and convert only at the boundaries (serialization, exponentiation).
// Products of public ciphertexts leak nothing secret, so these kernels need
// not be constant time (the IFMA and 64-bit product sequences happen to be).
// Where the active tier does not compute in the context's form
// (!mont_native(pub)) they compute the same values with GMP: the product
// mod n^2 times R^(out_form - sum f).

// out[i] = prod_k x_k[i] R^out_form mod n^2, where row i of c[k] holds
// x_k[i] R^forms[k].  arrays >= 1; out may alias c[0] only when arrays == 1.
void mont_product_of_arrays(const PublicContext& pub, const uint64_t* const* c,
                            const uint8_t* forms, size_t arrays, size_t count,
                            int out_form, uint64_t* out, int threads);

// out[g] = prod_{j < group} x[g group + j] R^out_form mod n^2, rows of c in
// form |form|.  group >= 1.
void mont_product_of_groups(const PublicContext& pub, const uint64_t* c, int form,
                            size_t groups, size_t group, int out_form, uint64_t* out,
                            int threads);

// ---- validation and keys --------------------------------------------------

// First row that is not an element of Z*_{n^2}: zero, >= n^2, or sharing a
// factor with n (gcd(c, n) != 1), or -1.  Rows have pub.nsq_limbs limbs.
// The unit test is batched: the product of all rows mod n (Montgomery
// products, split over |threads|) and one gcd; only a failing batch is
// searched row by row.  Public data: variable time.
long find_invalid_ciphertext(const PublicContext& pub, const uint64_t* c,
                             size_t count, int threads);

// First row (|limbs| limbs) that is >= bound (|bound_limbs| limbs), or -1.
long find_row_at_least(const uint64_t* rows, size_t limbs, size_t count,
                       const uint64_t* bound, size_t bound_limbs);

// out (|limbs| limbs) = a uniform random prime of exactly |bits| bits with
// the two top bits set (so p*q of two of them has exactly 2*bits bits), from
// the kernel CSPRNG.  Returns false if the CSPRNG failed.
bool generate_prime(size_t bits, uint64_t* out, size_t limbs);

// 2 = prime, 1 = probably prime, 0 = composite (GMP, Baillie-PSW + |reps|
// Miller-Rabin rounds).
int probable_prime(const uint64_t* x, size_t limbs, int reps);

}  // namespace fp
