#include "paillier_core.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "csprng.hpp"
#include "ct_select.hpp"
#include "fma_montgomery.hpp"
#include "kernel_tier.hpp"
#include "limb_io.hpp"
#include "parallel.hpp"

namespace fp {

namespace {

// Rows per thread below which a kernel runs on the calling thread only.
constexpr size_t kMinExpRows = 1;     // exponentiations: ~ms each
constexpr size_t kMinMulRows = 64;    // multiplications: ~us each

// Lowers |slot| to |index| if smaller: the first failing row across threads.
inline void record_failure(std::atomic<long>& slot, long index) {
  long cur = slot.load();
  while ((cur < 0 || index < cur) && !slot.compare_exchange_weak(cur, index)) {
  }
}

// A handful of mpz temporaries owned by one worker thread.
struct Scratch {
  mpz_t a, b, c, d;
  Scratch() { mpz_inits(a, b, c, d, nullptr); }
  ~Scratch() { mpz_clears(a, b, c, d, nullptr); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// out = 1 + m n mod n^2, i.e. g^m with g = n + 1.  m < n, so no reduction is
// needed: m n + 1 <= (n-1) n + 1 < n^2.  Aliasing out with m is allowed.
inline void g_pow(mpz_t out, const PublicContext& pub, mpz_srcptr m) {
  mpz_mul(out, m, pub.n);
  mpz_add_ui(out, out, 1);
}

// out (out_limbs limbs) = b + Q ((a - b) Qinv mod P): the value below P Q
// congruent to a mod P and b mod Q, for a < P, b < Q < P, Qinv = Q^-1 mod P;
// P has k limbs (top limb nonzero), a, b, Q and Qinv are given in k limbs.
// Constant time: fixed-size mpn_sub_n / mpn_cnd_add_n / mpn_sec_mul /
// mpn_sec_div_r / mpn_add_n, whatever the values (mpz arithmetic would skip
// work when a = b, i.e. for plaintexts below q).  out may not overlap the
// inputs; out_limbs <= 2k.  buf is scratch, wiped before returning.
void crt_ct(const uint64_t* a, const uint64_t* b, const mp_limb_t* P, const mp_limb_t* Q,
            const mp_limb_t* Qinv, size_t k, uint64_t* out, size_t out_limbs,
            std::vector<mp_limb_t>& buf) {
  const mp_size_t kn = static_cast<mp_size_t>(k);
  const size_t itch = static_cast<size_t>(std::max(mpn_sec_mul_itch(kn, kn), mpn_sec_div_r_itch(2 * kn, kn)));
  buf.assign(7 * k + itch, 0);
  mp_limb_t* d = buf.data();          // k
  mp_limb_t* prod = d + k;            // 2k
  mp_limb_t* wide_b = prod + 2 * k;   // 2k
  mp_limb_t* res = wide_b + 2 * k;    // 2k
  mp_limb_t* tp = res + 2 * k;
  const mp_limb_t* al = reinterpret_cast<const mp_limb_t*>(a);
  const mp_limb_t* bl = reinterpret_cast<const mp_limb_t*>(b);
  const mp_limb_t borrow = mpn_sub_n(d, al, bl, kn);          // a - b, in (-P, P)
  mpn_cnd_add_n(borrow, d, d, P, kn);                          // now in [0, P)
  mpn_sec_mul(prod, d, kn, Qinv, kn, tp);
  mpn_sec_div_r(prod, 2 * kn, P, kn, tp);                      // h = prod mod P, in prod[0, k)
  std::memcpy(d, prod, k * sizeof(mp_limb_t));
  mpn_sec_mul(res, Q, kn, d, kn, tp);                          // Q h < P Q
  std::memcpy(wide_b, bl, k * sizeof(mp_limb_t));              // b, zero-padded to 2k limbs
  mpn_add_n(res, res, wide_b, 2 * kn);                         // b + Q h < P Q: no carry out
  std::memcpy(out, res, out_limbs * sizeof(uint64_t));
  wipe(reinterpret_cast<uint64_t*>(buf.data()), buf.size());
}

// out = a mod d for a secret a < 2^(64 a_limbs) and a public d (d_limbs <=
// a_limbs limbs, top limb nonzero), with GMP's mpn_sec_div_r: the operation
// sequence depends on a_limbs and d_limbs only (mpz_mod's would depend on
// the length of a).  buf holds a_limbs + itch limbs and is wiped.
void sec_mod(mpz_t out, mpz_srcptr a, size_t a_limbs, mpz_srcptr d, std::vector<mp_limb_t>& buf) {
  const mp_size_t an = static_cast<mp_size_t>(a_limbs), dn = static_cast<mp_size_t>(mpz_size(d));
  const size_t itch = static_cast<size_t>(mpn_sec_div_r_itch(an, dn));
  buf.assign(a_limbs + itch, 0);
  store(a, reinterpret_cast<uint64_t*>(buf.data()), a_limbs);
  mpn_sec_div_r(buf.data(), an, mpz_limbs_read(d), dn, buf.data() + a_limbs);
  mpz_t v;
  mpz_set(out, view(v, reinterpret_cast<const uint64_t*>(buf.data()), static_cast<size_t>(dn)));
  wipe(reinterpret_cast<uint64_t*>(buf.data()), buf.size());
}

// The limbs of x in k limbs (x must fit).  Variable time only in the
// position of x's top nonzero limb.
inline const uint64_t* limbs_of(mpz_srcptr x, size_t k, std::vector<uint64_t>& tmp) {
  tmp.assign(k, 0);
  store(x, tmp.data(), k);
  return tmp.data();
}

// out = x_q + q^2 ((x_p - x_q) (q^2)^-1 mod p^2): the element of Z_{n^2}
// congruent to x_p mod p^2 and x_q mod q^2, by crt_ct (constant time).
// out may alias x_p or x_q.  |tmp| is unused (kept for the callers' shape).
inline void crt_combine(mpz_t out, const PrivateContext& priv, mpz_srcptr x_p,
                        mpz_srcptr x_q, mpz_t /*tmp*/) {
  const size_t k = mpz_size(priv.psq);
  std::vector<uint64_t> a, b, q, qinv, r(2 * k);
  std::vector<mp_limb_t> buf;
  crt_ct(limbs_of(x_p, k, a), limbs_of(x_q, k, b), mpz_limbs_read(priv.psq),
         reinterpret_cast<const mp_limb_t*>(limbs_of(priv.qsq, k, q)),
         reinterpret_cast<const mp_limb_t*>(limbs_of(priv.qsq_inv_psq, k, qinv)), k, r.data(), 2 * k, buf);
  mpz_t v;
  mpz_set(out, view(v, r.data(), 2 * k));
  wipe(a.data(), a.size());
  wipe(b.data(), b.size());
  wipe(r.data(), r.size());
}

// out = base^e mod modulus with a secret e (and possibly secret base <
// modulus), constant time in both for the modulus size and bit_length(e):
// the Montgomery kernels on the mulx / portable tiers, else mpz_powm_sec.
// bit_length(e) is treated as public (p - 1, p, q - 1, q have the key's
// fixed half size).  out may alias base.
inline void secret_powm(mpz_t out, mpz_srcptr base, mpz_srcptr e, mpz_srcptr modulus,
                        const Mont64Modulus& m64, bool rows_mulx = false) {
  if (rows_mulx) {
    mont64_powm(m64, out, base, e, mpz_sizeinbase(e, 2), true);
  } else if (mont64_enabled()) {
    mont64_powm(m64, out, base, e, mpz_sizeinbase(e, 2));
  } else {
    mpz_powm_sec(out, base, e, modulus);
  }
}

// Rows per batch (or per last group of a batch) below which the ifma tier
// runs the one-row mulx kernels instead of an 8-lane pass: an 8-lane
// exponentiation costs about as much as 2.4 one-row mulx ones at 2048 bits
// (measured: 5.0 ms per 8-lane CRT decryption against 2.1 ms per mulx row),
// so one or two rows go faster one at a time.  Both kernels compute the same
// values and are constant time; the choice depends on the public row count.
constexpr size_t kIfmaRowTail = 2;
// The same on the avx2 tier, whose 8 lanes run as two 4-lane halves, the
// second skipped when at most four lanes are live: one 4-lane FMA product
// costs about 2.1 one-row mulx products (measured in C++ on Zen 4: 1.55 us
// against 0.74 us at 2048 bits, 5.9 us against 2.6 us at 4096), so one or two
// rows go faster one at a time and three or four take one half.
constexpr size_t kAvx2RowTail = 2;

// Whether the last |lanes| rows of an 8-lane batch go through the mulx rows.
inline bool ifma_tail_by_rows(size_t lanes) {
  const size_t tail = kernel_tier() == Tier::kAvx2 ? kAvx2RowTail : kIfmaRowTail;
  return lanes <= tail && tier_supported(Tier::kMulx);
}

// out = a uniform n-th residue mod n^2, computed by CRT in the secret factors.
//
// Why s_p^p mod p^2 with s_p uniform in [1, p) has the distribution of
// r^n mod p^2:  Z_{p^2}^* is cyclic of order p(p-1).  Because
// gcd(n, phi(n)) = 1, both x -> x^n and x -> x^p map it onto its unique
// subgroup G_p of order p-1, and a homomorphism maps the uniform distribution
// to the uniform one on its image.  (r + kp)^p = r^p mod p^2, so s_p only
// matters mod p.  The same holds mod q^2, and by CRT the product of the two
// uniform parts is uniform on the n-th residues mod n^2, exactly as r^n for
// r uniform in Z_n^*.  Cost: two 1/2-size exponentiations with 1/2-size
// exponents instead of one full one, about 1/4 of the classic work.
//
// Timing: secret_powm is constant time in the secret exponent and base for
// a given modulus size; the random draws vary only in the number of
// rejections.
bool obfuscator_crt(mpz_t out, const PrivateContext& priv, RandomSource& rng,
                    Scratch& s, bool rows_mulx = false) {
  if (!rng.uniform_nonzero_below(s.a, priv.p)) return false;
  if (!rng.uniform_nonzero_below(s.b, priv.q)) return false;
  secret_powm(s.a, s.a, priv.p, priv.psq, priv.m64_psq, rows_mulx);
  secret_powm(s.b, s.b, priv.q, priv.qsq, priv.m64_qsq, rows_mulx);
  crt_combine(out, priv, s.a, s.b, s.c);
  return true;
}

// out[l] = obfuscator_crt for 8 lanes at once with two IFMA exponentiations
// (same distribution and constant-time argument as obfuscator_crt).
bool obfuscators_crt_ifma(mpz_t out[8], const PrivateContext& priv,
                          RandomSource& rng, Scratch& s, size_t lanes) {
  mpz_t xp[8], xq[8];
  mpz_srcptr bp[8], bq[8];
  mpz_ptr op[8], oq[8];
  bool ok = true;
  for (int l = 0; l < 8; ++l) {
    mpz_inits(xp[l], xq[l], nullptr);
    ok = ok && rng.uniform_nonzero_below(xp[l], priv.p) && rng.uniform_nonzero_below(xq[l], priv.q);
    bp[l] = op[l] = xp[l];
    bq[l] = oq[l] = xq[l];
  }
  if (ok) {
    ifma_powm8(priv.ifma_psq, priv.p, bp, op, lanes);
    ifma_powm8(priv.ifma_qsq, priv.q, bq, oq, lanes);
    for (size_t l = 0; l < lanes; ++l) crt_combine(out[l], priv, xp[l], xq[l], s.c);
  }
  for (int l = 0; l < 8; ++l) mpz_clears(xp[l], xq[l], nullptr);
  return ok;
}

// out = r^n mod n^2 for a fresh r uniform in Z_n^*.  Public exponent n.
bool obfuscator_public(mpz_t out, const PublicContext& pub, RandomSource& rng,
                       Scratch& s) {
  if (!rng.uniform_unit(s.a, pub.n)) return false;
  mpz_powm(out, s.a, pub.n, pub.nsq);
  return true;
}

// Whether the 8-lane kernels can make classic obfuscators mod n^2 for pub.
inline bool public_lanes(const PublicContext& pub) { return lanes52_enabled() && pub.lanes_ok; }

// out[l] = r_l^n mod n^2 for fresh units r_l, l < lanes, with one 8-lane
// exponentiation (lanes past |lanes| raise 1 and are ignored).  The
// exponent n is public; the window schedule depends on its bit length only
// and the kernel is constant time in the secret bases r_l.
bool obfuscators_public_lanes(mpz_t out[8], const PublicContext& pub, RandomSource& rng,
                              size_t lanes) {
  mpz_srcptr bp[8];
  mpz_ptr op[8];
  for (size_t l = 0; l < 8; ++l) {
    if (l < lanes) {
      if (!rng.uniform_unit(out[l], pub.n)) return false;
    } else {
      mpz_set_ui(out[l], 1);
    }
    bp[l] = op[l] = out[l];
  }
  ifma_powm8(pub.ifma_nsq, pub.n, bp, op, lanes);
  return true;
}

}  // namespace

// ---- contexts ---------------------------------------------------------------

PublicContext::PublicContext(const uint64_t* n_row, size_t limbs) {
  mpz_inits(n, nsq, nullptr);
  mpz_t v;
  mpz_set(n, view(v, n_row, limbs));
  mpz_mul(nsq, n, n);
  n_limbs = mpz_size(n);
  nsq_limbs = mpz_size(nsq);
  lanes_ok = ifma_nsq.init(nsq) && ifma_nsq.digits <= kMaxMontDigits;
  m64_nsq.init(nsq);
  m64_n.init(n);
  if (lanes_ok && lanes52_enabled()) {
    form = Form::kIfma;
    form_r_bits = 52 * ifma_nsq.digits;
  } else {
    form = Form::kMont64;
    form_r_bits = m64_nsq.r_bits();
  }
}

bool mont_native(const PublicContext& pub) {
  return pub.form == PublicContext::Form::kIfma ? lanes52_enabled() : mont64_enabled();
}

PublicContext::~PublicContext() { mpz_clears(n, nsq, nullptr); }

PrivateContext::PrivateContext(const uint64_t* p_row, const uint64_t* q_row,
                               size_t half_limbs, const uint64_t* n_row,
                               size_t n_limbs)
    : pub(n_row, n_limbs) {
  mpz_inits(p, q, psq, qsq, pm1, qm1, hp, hq, q_inv_p, qsq_inv_psq, exp_p,
            exp_q, p_inv_word, q_inv_word, nullptr);
  mpz_t v, t;
  mpz_init(t);
  mpz_set(p, view(v, p_row, half_limbs));
  mpz_set(q, view(v, q_row, half_limbs));
  mpz_mul(psq, p, p);
  mpz_mul(qsq, q, q);
  mpz_sub_ui(pm1, p, 1);
  mpz_sub_ui(qm1, q, 1);
  // hp = L_p(g^(p-1) mod p^2)^-1 mod p with g = n + 1; likewise hq.
  mpz_add_ui(t, pub.n, 1);
  mpz_powm(hp, t, pm1, psq);
  mpz_sub_ui(hp, hp, 1);
  mpz_fdiv_q(hp, hp, p);
  mpz_invert(hp, hp, p);
  mpz_powm(hq, t, qm1, qsq);
  mpz_sub_ui(hq, hq, 1);
  mpz_fdiv_q(hq, hq, q);
  mpz_invert(hq, hq, q);
  mpz_invert(q_inv_p, q, p);
  mpz_invert(qsq_inv_psq, qsq, psq);
  // p^-1 mod 2^(64 limbs(p)), q^-1 mod 2^(64 limbs(q)): exact division in finish_half.
  mpz_set_ui(t, 0);
  mpz_setbit(t, 64 * mpz_size(p));
  mpz_invert(p_inv_word, p, t);
  mpz_set_ui(t, 0);
  mpz_setbit(t, 64 * mpz_size(q));
  mpz_invert(q_inv_word, q, t);
  // r^n mod p^2 = r^(n mod p(p-1)) mod p^2 since |Z_{p^2}^*| = p(p-1).
  mpz_mul(t, p, pm1);
  mpz_mod(exp_p, pub.n, t);
  mpz_mul(t, q, qm1);
  mpz_mod(exp_q, pub.n, t);
  mpz_clear(t);
  ifma_psq.init(psq);
  ifma_qsq.init(qsq);
  m64_psq.init(psq);
  m64_qsq.init(qsq);
}

PrivateContext::~PrivateContext() {
  // Secret values: overwrite before freeing.
  mpz_t* secrets[] = {&p, &q, &psq, &qsq, &pm1, &qm1, &hp, &hq, &q_inv_p,
                      &qsq_inv_psq, &exp_p, &exp_q, &p_inv_word, &q_inv_word};
  for (mpz_t* s : secrets) {
    size_t alloc = static_cast<size_t>((*s)->_mp_alloc);
    volatile mp_limb_t* d = (*s)->_mp_d;
    for (size_t i = 0; i < alloc; ++i) d[i] = 0;
    mpz_clear(*s);
  }
}

// ---- encryption -------------------------------------------------------------

// Shared body of the randomized encryptions and rerandomizations:
// out[i] = base(i) * obfuscator mod n^2, where base(i) is g^m or a ciphertext.
template <typename Base, typename Obfuscate>
static long randomized_rows(const PublicContext& pub, size_t count,
                            uint64_t* out, int threads, Base base,
                            Obfuscate obfuscate) {
  std::atomic<long> failed{-1};
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    RandomSource rng;
    mpz_t x, v;
    mpz_init(x);
    for (size_t i = begin; i < end; ++i) {
      if (!obfuscate(x, rng, s)) {
        record_failure(failed, static_cast<long>(i));
        return;
      }
      base(s.d, v, i);
      mpz_mul(x, x, s.d);
      mpz_mod(x, x, pub.nsq);
      store(x, out + i * pub.nsq_limbs, pub.nsq_limbs);
    }
    mpz_clear(x);
  });
  return failed.load();
}

// Rows in groups of 8 that share 8-lane exponentiations: group(x, rng, s,
// lanes) makes the obfuscators of a group of |lanes| rows, row(x, rng, s)
// one obfuscator, for the last rows when they are too few to fill the lanes
// (ifma_tail_by_rows).  out[i] = base(i) * obfuscator mod n^2.
template <typename Base, typename Group, typename Row>
static long randomized_groups(const PublicContext& pub, size_t count, uint64_t* out, int threads,
                              Base base, Group group, Row row) {
  std::atomic<long> failed{-1};
  parallel_for((count + 7) / 8, threads, 1, [&](size_t begin, size_t end) {
    Scratch s;
    RandomSource rng;
    mpz_t x[8], v;
    for (auto& xi : x) mpz_init(xi);
    for (size_t g = begin; g < end; ++g) {
      const size_t lanes = std::min<size_t>(8, count - g * 8);
      bool ok = true;
      if (ifma_tail_by_rows(lanes)) {  // too few rows to fill the lanes
        for (size_t l = 0; l < lanes && ok; ++l) ok = row(x[l], rng, s);
      } else {
        ok = group(x, rng, s, lanes);
      }
      if (!ok) {
        record_failure(failed, static_cast<long>(g * 8));
        break;
      }
      for (size_t l = 0; l < lanes; ++l) {
        const size_t i = g * 8 + l;
        base(s.d, v, i);
        mpz_mul(x[l], x[l], s.d);
        mpz_mod(x[l], x[l], pub.nsq);
        store(x[l], out + i * pub.nsq_limbs, pub.nsq_limbs);
      }
    }
    for (auto& xi : x) mpz_clear(xi);
  });
  return failed.load();
}

// Classic public-key obfuscators: 8 per 8-lane call where the tier has the
// lane kernels, else one mpz_powm per row.
template <typename Base>
static long randomized_public(const PublicContext& pub, size_t count, uint64_t* out, int threads,
                              Base base) {
  auto row = [&](mpz_t x, RandomSource& rng, Scratch& s) { return obfuscator_public(x, pub, rng, s); };
  if (public_lanes(pub)) {
    return randomized_groups(pub, count, out, threads, base, [&](mpz_t x[8], RandomSource& rng, Scratch&,
                                                                  size_t lanes) {
      return obfuscators_public_lanes(x, pub, rng, lanes);
    }, row);
  }
  return randomized_rows(pub, count, out, threads, base, row);
}

long encrypt_public(const PublicContext& pub, const uint64_t* m, size_t m_limbs,
                    size_t count, uint64_t* out, int threads) {
  return randomized_public(pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); });
}

// Private-key variant on the 8-lane path: rows go in groups of 8 that
// share two 8-lane exponentiations (CRT obfuscators).
template <typename Base>
static long randomized_groups_crt(const PrivateContext& priv, size_t count,
                                  uint64_t* out, int threads, Base base) {
  return randomized_groups(
      priv.pub, count, out, threads, base,
      [&](mpz_t x[8], RandomSource& rng, Scratch& s, size_t lanes) {
        return obfuscators_crt_ifma(x, priv, rng, s, lanes);
      },
      [&](mpz_t x, RandomSource& rng, Scratch& s) { return obfuscator_crt(x, priv, rng, s, true); });
}

long encrypt_private(const PrivateContext& priv, const uint64_t* m,
                     size_t m_limbs, size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  if (lanes52_enabled()) {
    return randomized_groups_crt(priv, count, out, threads, [&](mpz_t dst, mpz_t v, size_t i) {
      g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs));
    });
  }
  return randomized_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); },
      [&](mpz_t x, RandomSource& rng, Scratch& s) { return obfuscator_crt(x, priv, rng, s); });
}

long rerandomize_public(const PublicContext& pub, const uint64_t* c,
                        size_t count, uint64_t* out, int threads) {
  return randomized_public(pub, count, out, threads, [&](mpz_t dst, mpz_t v, size_t i) {
    mpz_set(dst, view(v, c + i * pub.nsq_limbs, pub.nsq_limbs));
  });
}

long rerandomize_private(const PrivateContext& priv, const uint64_t* c,
                         size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  if (lanes52_enabled()) {
    return randomized_groups_crt(priv, count, out, threads, [&](mpz_t dst, mpz_t v, size_t i) {
      mpz_set(dst, view(v, c + i * pub.nsq_limbs, pub.nsq_limbs));
    });
  }
  return randomized_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { mpz_set(dst, view(v, c + i * pub.nsq_limbs, pub.nsq_limbs)); },
      [&](mpz_t x, RandomSource& rng, Scratch& s) { return obfuscator_crt(x, priv, rng, s); });
}

void encrypt_with_r(const PublicContext& pub, const uint64_t* m, size_t m_limbs,
                    const uint64_t* r, size_t r_limbs, size_t count,
                    uint64_t* out, int threads) {
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    for (size_t i = begin; i < end; ++i) {
      mpz_powm(s.a, view(v, r + i * r_limbs, r_limbs), pub.n, pub.nsq);
      g_pow(s.b, pub, view(v, m + i * m_limbs, m_limbs));
      mpz_mul(s.a, s.a, s.b);
      mpz_mod(s.a, s.a, pub.nsq);
      store(s.a, out + i * pub.nsq_limbs, pub.nsq_limbs);
    }
  });
}

void encrypt_with_r_crt(const PrivateContext& priv, const uint64_t* m,
                        size_t m_limbs, const uint64_t* r, size_t r_limbs,
                        size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    std::vector<mp_limb_t> buf;
    for (size_t i = begin; i < end; ++i) {
      mpz_srcptr rr = view(v, r + i * r_limbs, r_limbs);
      // Constant time in the secret exponents n mod p(p-1), n mod q(q-1).
      sec_mod(s.a, rr, std::max(r_limbs, mpz_size(priv.psq)), priv.psq, buf);
      secret_powm(s.a, s.a, priv.exp_p, priv.psq, priv.m64_psq);
      sec_mod(s.b, rr, std::max(r_limbs, mpz_size(priv.qsq)), priv.qsq, buf);
      secret_powm(s.b, s.b, priv.exp_q, priv.qsq, priv.m64_qsq);
      crt_combine(s.a, priv, s.a, s.b, s.c);
      g_pow(s.b, pub, view(v, m + i * m_limbs, m_limbs));
      mpz_mul(s.a, s.a, s.b);
      mpz_mod(s.a, s.a, pub.nsq);
      store(s.a, out + i * pub.nsq_limbs, pub.nsq_limbs);
    }
  });
}

// ---- DJN fixed-base randomness ----------------------------------------------

namespace {

// Comb widths, measured on AMD EPYC (Zen 4) with IFMA: a row of 2^w entries
// costs 2^w D masked broadcasts to scan against about 4 D^2 multiply-adds
// for a product, so wider rows stop paying off at w = 6 mod n^2 (D = 79)
// and w = 5 mod p^2 (D = 40).
constexpr unsigned kDjnWindowPublic = 6;
constexpr unsigned kDjnWindowCrt = 5;
// The same for the 64-bit Montgomery tiers (mulx, portable), measured on
// AMD EPYC (Zen 4) without AVX-512 (benchmarks/RESULTS_issue9.md).  Mod n^2
// the register-held AVX2 scan (ct_select.hpp) moved the optimum from 6 to 7
// bits: 1152-bit exponents mod a 4096-bit n^2 took 530-553 us against
// 548-588 us (Zen 4, mulx rows), for a table of 165 x 128 entries (10.8 MB
// per key instead of 6.3 MB).  A lone encryption whose table went cold
// between calls (the phe drop-in's one-at-a-time loop) pays for the larger
// table: 631-719 us against 588-640 us with 6 bits; batches are the path
// this library is built for, so 7 bits it is.
constexpr unsigned kDjnWindow64Public = 7;
constexpr unsigned kDjnWindow64Crt = 5;

// Eight exponents (or obfuscators) owned by one worker; wiped on destruction.
struct Lanes {
  mpz_t v[8];
  Lanes() {
    for (auto& x : v) mpz_init(x);
  }
  ~Lanes() {
    for (auto& x : v) {
      volatile mp_limb_t* d = x->_mp_d;
      for (int i = 0; i < x->_mp_alloc; ++i) d[i] = 0;
      mpz_clear(x);
    }
  }
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;
};

// x[l] = table^a[l] for l < lanes: all eight lanes at once on the ifma tier
// (lanes beyond |lanes| compute on whatever a holds and are ignored), one or
// two four-lane halves on the avx2 tier (one or two rows: one at a time on
// the mulx rows), one at a time otherwise.  Constant time in the a[l].
void fixed_powm_lanes(const FixedBaseTable& table, Lanes& x, const Lanes& a, size_t lanes) {
  if (lanes52_enabled() && !(kernel_tier() == Tier::kAvx2 && ifma_tail_by_rows(lanes))) {
    mpz_ptr out[8];
    mpz_srcptr in[8];
    for (int l = 0; l < 8; ++l) {
      out[l] = x.v[l];
      in[l] = a.v[l];
    }
    table.powm8(out, in, lanes);
    return;
  }
  for (size_t l = 0; l < lanes; ++l) table.powm(x.v[l], a.v[l]);
}

// x[l] = h_s^a[l] mod n^2 computed by CRT from the private key's tables.
void djn_crt_lanes(const PrivateContext& priv, const DjnCrtContext& djn, Lanes& x,
                   const Lanes& a, size_t lanes, Scratch& s) {
  Lanes ap, aq, xp, xq;
  std::vector<mp_limb_t> buf;
  const size_t a_limbs = std::max((djn.exp_bits + 63) / 64, mpz_size(priv.pm1));
  for (size_t l = 0; l < 8; ++l) {
    // The order of h_s mod p^2 divides p - 1 (mod q^2: q - 1).  Constant time in a.
    sec_mod(ap.v[l], a.v[l], a_limbs, priv.pm1, buf);
    sec_mod(aq.v[l], a.v[l], a_limbs, priv.qm1, buf);
  }
  fixed_powm_lanes(*djn.table_p, xp, ap, lanes);
  fixed_powm_lanes(*djn.table_q, xq, aq, lanes);
  for (size_t l = 0; l < lanes; ++l) crt_combine(x.v[l], priv, xp.v[l], xq.v[l], s.c);
}

// Shared body of the DJN kernels: rows in groups of eight; exponents(a, g,
// lanes, rng) fills the group's exponents, obfuscate(x, a, lanes, s) turns
// them into obfuscators, and out[i] = base(i) * x mod n^2.
template <typename Base, typename Exponents, typename Obfuscate>
long djn_rows(const PublicContext& pub, size_t count, uint64_t* out, int threads, Base base,
              Exponents exponents, Obfuscate obfuscate) {
  std::atomic<long> failed{-1};
  parallel_for((count + 7) / 8, threads, 1, [&](size_t begin, size_t end) {
    Scratch s;
    RandomSource rng;
    Lanes a, x;
    mpz_t v;
    for (size_t g = begin; g < end; ++g) {
      const size_t lanes = std::min<size_t>(8, count - g * 8);
      if (!exponents(a, g, lanes, rng)) {
        record_failure(failed, static_cast<long>(g * 8));
        return;
      }
      obfuscate(x, a, lanes, s);
      for (size_t l = 0; l < lanes; ++l) {
        const size_t i = g * 8 + l;
        base(s.d, v, i);
        mpz_mul(x.v[l], x.v[l], s.d);
        mpz_mod(x.v[l], x.v[l], pub.nsq);
        store(x.v[l], out + i * pub.nsq_limbs, pub.nsq_limbs);
      }
    }
  });
  return failed.load();
}

// Exponent sources: fresh uniform |bits|-bit values for all eight lanes ...
auto fresh_exponents(size_t bits) {
  return [bits](Lanes& a, size_t, size_t, RandomSource& rng) {
    for (auto& x : a.v) {
      if (!rng.uniform_bits(x, bits)) return false;
    }
    return true;
  };
}

// ... or caller-given rows (tests); lanes past the batch get 0.
auto given_exponents(const uint64_t* rows, size_t limbs) {
  return [rows, limbs](Lanes& a, size_t g, size_t lanes, RandomSource&) {
    mpz_t v;
    for (size_t l = 0; l < 8; ++l) {
      if (l < lanes) {
        mpz_set(a.v[l], view(v, rows + (g * 8 + l) * limbs, limbs));
      } else {
        mpz_set_ui(a.v[l], 0);
      }
    }
    return true;
  };
}

}  // namespace

size_t djn_exponent_bits(size_t n_bits) { return (n_bits + 1) / 2 + kDjnMarginBits; }

DjnContext::DjnContext(const PublicContext& pub, const uint64_t* hs, size_t hs_limbs)
    : exp_bits(djn_exponent_bits(mpz_sizeinbase(pub.n, 2))) {
  mpz_t v;
  table.reset(new FixedBaseTable(view(v, hs, hs_limbs), pub.nsq, exp_bits, kDjnWindowPublic, kDjnWindow64Public));
}

DjnCrtContext::DjnCrtContext(const PrivateContext& priv, const uint64_t* hs, size_t hs_limbs)
    : exp_bits(djn_exponent_bits(mpz_sizeinbase(priv.pub.n, 2))) {
  mpz_t v;
  mpz_srcptr h = view(v, hs, hs_limbs);
  table_p.reset(new FixedBaseTable(h, priv.psq, mpz_sizeinbase(priv.p, 2), kDjnWindowCrt, kDjnWindow64Crt));
  table_q.reset(new FixedBaseTable(h, priv.qsq, mpz_sizeinbase(priv.q, 2), kDjnWindowCrt, kDjnWindow64Crt));
}

bool djn_generate_base(const PublicContext& pub, uint64_t* h_out) {
  RandomSource rng;
  Lanes t;  // t[0] = x, t[1] = h; wiped on return
  if (!rng.uniform_unit(t.v[0], pub.n)) return false;
  mpz_mul(t.v[1], t.v[0], t.v[0]);
  mpz_mod(t.v[1], t.v[1], pub.n);
  mpz_sub(t.v[1], pub.n, t.v[1]);  // h = -x^2 mod n (x^2 mod n is never 0: x is a unit)
  store(t.v[1], h_out, pub.n_limbs);
  return true;
}

long encrypt_djn(const PublicContext& pub, const DjnContext& djn, const uint64_t* m,
                 size_t m_limbs, size_t count, uint64_t* out, int threads) {
  return djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); },
      fresh_exponents(djn.exp_bits),
      [&](Lanes& x, const Lanes& a, size_t lanes, Scratch&) { fixed_powm_lanes(*djn.table, x, a, lanes); });
}

long encrypt_djn_crt(const PrivateContext& priv, const DjnCrtContext& djn, const uint64_t* m,
                     size_t m_limbs, size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  return djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); },
      fresh_exponents(djn.exp_bits),
      [&](Lanes& x, const Lanes& a, size_t lanes, Scratch& s) { djn_crt_lanes(priv, djn, x, a, lanes, s); });
}

void encrypt_djn_with_a(const PublicContext& pub, const DjnContext& djn, const uint64_t* m,
                        size_t m_limbs, const uint64_t* a, size_t a_limbs, size_t count,
                        uint64_t* out, int threads) {
  djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); },
      given_exponents(a, a_limbs),
      [&](Lanes& x, const Lanes& e, size_t lanes, Scratch&) { fixed_powm_lanes(*djn.table, x, e, lanes); });
}

void encrypt_djn_crt_with_a(const PrivateContext& priv, const DjnCrtContext& djn,
                            const uint64_t* m, size_t m_limbs, const uint64_t* a,
                            size_t a_limbs, size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { g_pow(dst, pub, view(v, m + i * m_limbs, m_limbs)); },
      given_exponents(a, a_limbs),
      [&](Lanes& x, const Lanes& e, size_t lanes, Scratch& s) { djn_crt_lanes(priv, djn, x, e, lanes, s); });
}

long rerandomize_djn(const PublicContext& pub, const DjnContext& djn, const uint64_t* c,
                     size_t count, uint64_t* out, int threads) {
  return djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { mpz_set(dst, view(v, c + i * pub.nsq_limbs, pub.nsq_limbs)); },
      fresh_exponents(djn.exp_bits),
      [&](Lanes& x, const Lanes& a, size_t lanes, Scratch&) { fixed_powm_lanes(*djn.table, x, a, lanes); });
}

long rerandomize_djn_crt(const PrivateContext& priv, const DjnCrtContext& djn,
                         const uint64_t* c, size_t count, uint64_t* out, int threads) {
  const PublicContext& pub = priv.pub;
  return djn_rows(
      pub, count, out, threads,
      [&](mpz_t dst, mpz_t v, size_t i) { mpz_set(dst, view(v, c + i * pub.nsq_limbs, pub.nsq_limbs)); },
      fresh_exponents(djn.exp_bits),
      [&](Lanes& x, const Lanes& a, size_t lanes, Scratch& s) { djn_crt_lanes(priv, djn, x, a, lanes, s); });
}

// ---- benchmark kernel ---------------------------------------------------------

void batch_powm(const uint64_t* base, const uint64_t* e, size_t e_limbs, size_t e_bits,
                const uint64_t* m, size_t m_limbs, size_t count, uint64_t* out, int threads) {
  mpz_t mv;
  mpz_srcptr mod = view(mv, m, m_limbs);
  if (!lanes52_enabled()) {
    Mont64Modulus m64;
    const bool m64_ok = mont64_enabled() && m64.init(mod);
    parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
      Scratch s;
      mpz_t vb, ve;
      for (size_t i = begin; i < end; ++i) {
        mpz_srcptr b = view(vb, base + i * m_limbs, m_limbs), x = view(ve, e + i * e_limbs, e_limbs);
        if (m64_ok) {
          mont64_powm(m64, s.a, b, x, e_bits);
        } else {
          mpz_powm_sec(s.a, b, x, mod);
        }
        store(s.a, out + i * m_limbs, m_limbs);
      }
    });
    return;
  }
  IfmaModulus im;
  im.init(mod);
  parallel_for((count + 7) / 8, threads, 1, [&](size_t begin, size_t end) {
    Lanes b, x, ex;
    mpz_t v;
    for (size_t g = begin; g < end; ++g) {
      const size_t lanes = std::min<size_t>(8, count - g * 8);
      mpz_srcptr bp[8], ep[8];
      mpz_ptr op[8];
      for (size_t l = 0; l < 8; ++l) {
        if (l < lanes) {
          mpz_set(b.v[l], view(v, base + (g * 8 + l) * m_limbs, m_limbs));
          mpz_set(ex.v[l], view(v, e + (g * 8 + l) * e_limbs, e_limbs));
        } else {
          mpz_set_ui(b.v[l], 1);
          mpz_set_ui(ex.v[l], 0);
        }
        bp[l] = b.v[l];
        ep[l] = ex.v[l];
        op[l] = x.v[l];
      }
      ifma_powm8_lanes(im, ep, e_bits, bp, op, lanes);
      for (size_t l = 0; l < lanes; ++l) store(x.v[l], out + (g * 8 + l) * m_limbs, m_limbs);
    }
  });
}

void batch_powm_gmp(const uint64_t* base, const uint64_t* e, size_t e_limbs,
                    const uint64_t* m, size_t m_limbs, size_t count, uint64_t* out, int threads) {
  mpz_t mv;
  mpz_srcptr mod = view(mv, m, m_limbs);
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t vb, ve;
    for (size_t i = begin; i < end; ++i) {
      mpz_powm(s.a, view(vb, base + i * m_limbs, m_limbs), view(ve, e + i * e_limbs, e_limbs), mod);
      store(s.a, out + i * m_limbs, m_limbs);
    }
  });
}

// ---- decryption -------------------------------------------------------------

// out = L_p(t) h mod p with L_p(t) = (t - 1) / p, for t = c^(p-1) mod p^2
// (t = 1 mod p for a unit c).  Fixed-size, constant-time arithmetic on
// k = limbs(p): t - 1 divides exactly by p, so L_p(t) < p is the low k limbs
// of (t - 1) p^-1 mod 2^(64 k) (mpn_sub_n, then the low half of an
// mpn_sec_mul); then mpn_sec_mul by h and mpn_sec_div_r by p.  For t = 0 (a
// refused row) the result is junk of the same size.  out may alias t.
static void finish_half(mpz_t out, mpz_srcptr t, mpz_srcptr prime, mpz_srcptr prime_inv,
                        mpz_srcptr h) {
  const size_t k = mpz_size(prime);
  const mp_size_t kn = static_cast<mp_size_t>(k);
  const size_t itch = static_cast<size_t>(std::max(mpn_sec_mul_itch(kn, kn), mpn_sec_div_r_itch(2 * kn, kn)));
  std::vector<uint64_t> tl, one(k, 0), inv, hl;
  std::vector<mp_limb_t> buf(5 * k + itch);
  mp_limb_t* w = buf.data();       // k
  mp_limb_t* prod = w + k;         // 2k
  mp_limb_t* prod2 = prod + 2 * k; // 2k
  mp_limb_t* tp = prod2 + 2 * k;
  one[0] = 1;
  const uint64_t* t_low = limbs_of(t, 2 * k, tl);  // t < p^2
  mpn_sub_n(w, reinterpret_cast<const mp_limb_t*>(t_low), reinterpret_cast<const mp_limb_t*>(one.data()), kn);
  mpn_sec_mul(prod, w, kn, reinterpret_cast<const mp_limb_t*>(limbs_of(prime_inv, k, inv)), kn, tp);
  mpn_sec_mul(prod2, prod, kn, reinterpret_cast<const mp_limb_t*>(limbs_of(h, k, hl)), kn, tp);
  mpn_sec_div_r(prod2, 2 * kn, mpz_limbs_read(prime), kn, tp);
  mpz_t v;
  mpz_set(out, view(v, reinterpret_cast<const uint64_t*>(prod2), k));
  wipe(reinterpret_cast<uint64_t*>(buf.data()), buf.size());
  wipe(tl.data(), tl.size());
}

// m_p = L_p(c^(p-1) mod p^2) hp mod p.  Constant time in the secret exponent
// p-1 (secret_powm: the Montgomery kernels, or mpz_powm_sec on the gmp tier).
// Returns false when p | c (then c^(p-1) = 0 mod p^2 and out is junk).
static bool decrypt_half(mpz_t out, mpz_srcptr c, size_t c_limbs, mpz_srcptr prime,
                         mpz_srcptr prime_sq, mpz_srcptr prime_m1, mpz_srcptr prime_inv,
                         mpz_srcptr h, const Mont64Modulus& m64, std::vector<mp_limb_t>& buf,
                         bool rows_mulx) {
  // c mod p^2 with mpn_sec_div_r: mpz_mod's time would tell whether c < p^2.
  sec_mod(out, c, std::max(c_limbs, mpz_size(prime_sq)), prime_sq, buf);
  secret_powm(out, out, prime_m1, prime_sq, m64, rows_mulx);
  const bool unit = mpz_sgn(out) != 0;
  finish_half(out, out, prime, prime_inv, h);
  return unit;
}

// out = m_q + q ((m_p - m_q) q^-1 mod p), written to the row in fixed size
// by crt_ct (constant time; the plaintext's length does not matter).
static void crt_store(const PrivateContext& priv, mpz_srcptr mp, mpz_srcptr mq,
                      mpz_t /*tmp*/, uint64_t* out_row) {
  const size_t k = mpz_size(priv.p);
  std::vector<uint64_t> a, b, q, qinv;
  std::vector<mp_limb_t> buf;
  crt_ct(limbs_of(mp, k, a), limbs_of(mq, k, b), mpz_limbs_read(priv.p),
         reinterpret_cast<const mp_limb_t*>(limbs_of(priv.q, k, q)),
         reinterpret_cast<const mp_limb_t*>(limbs_of(priv.q_inv_p, k, qinv)), k, out_row,
         priv.pub.n_limbs, buf);
  wipe(a.data(), a.size());
  wipe(b.data(), b.size());
}

// Zeroes a refused row (a non-unit ciphertext) and records its index.
static void refuse_row(uint64_t* row, size_t limbs, std::atomic<long>& failed, long index) {
  std::memset(row, 0, limbs * sizeof(uint64_t));
  record_failure(failed, index);
}

// Decrypts row i of c (nsq_limbs limbs) into row i of out (n_limbs limbs),
// one row at a time: the active tier's kernels, or the mulx rows when
// |rows_mulx|.  A non-unit row is zeroed and recorded in |failed|.
static void decrypt_row(const PrivateContext& priv, const uint64_t* c, size_t i, uint64_t* out,
                        std::atomic<long>& failed, Scratch& s, std::vector<mp_limb_t>& buf,
                        bool rows_mulx) {
  const size_t cl = priv.pub.nsq_limbs, ml = priv.pub.n_limbs;
  mpz_t v;
  mpz_srcptr ci = view(v, c + i * cl, cl);
  const bool unit_p = decrypt_half(s.a, ci, cl, priv.p, priv.psq, priv.pm1, priv.p_inv_word,
                                   priv.hp, priv.m64_psq, buf, rows_mulx);
  const bool unit_q = decrypt_half(s.b, ci, cl, priv.q, priv.qsq, priv.qm1, priv.q_inv_word,
                                   priv.hq, priv.m64_qsq, buf, rows_mulx);
  crt_store(priv, s.a, s.b, s.c, out + i * ml);
  if (!(unit_p & unit_q)) refuse_row(out + i * ml, ml, failed, static_cast<long>(i));
}

// Decrypts rows [8 g, 8 g + 8) with two 8-lane IFMA exponentiations; lanes
// past |count| compute on the padding value 1 and are not stored.  A last
// group of one or two rows goes through the mulx rows instead (faster).
static void decrypt_group_ifma(const PrivateContext& priv, const uint64_t* c,
                               size_t count, size_t g, uint64_t* out, std::atomic<long>& failed) {
  const size_t cl = priv.pub.nsq_limbs;
  const size_t lanes = std::min<size_t>(8, count - g * 8);
  if (ifma_tail_by_rows(lanes)) {
    Scratch s;
    std::vector<mp_limb_t> buf;
    for (size_t l = 0; l < lanes; ++l) decrypt_row(priv, c, g * 8 + l, out, failed, s, buf, true);
    return;
  }
  mpz_t xp[8], xq[8], v, tmp;
  mpz_srcptr bp[8], bq[8];
  mpz_ptr op[8], oq[8];
  std::vector<mp_limb_t> buf;
  mpz_init(tmp);
  for (int l = 0; l < 8; ++l) {
    mpz_inits(xp[l], xq[l], nullptr);
    const size_t i = g * 8 + static_cast<size_t>(l);
    if (i < count) {
      mpz_srcptr ci = view(v, c + i * cl, cl);
      sec_mod(xp[l], ci, std::max(cl, mpz_size(priv.psq)), priv.psq, buf);  // constant time
      sec_mod(xq[l], ci, std::max(cl, mpz_size(priv.qsq)), priv.qsq, buf);
    } else {
      mpz_set_ui(xp[l], 1);
      mpz_set_ui(xq[l], 1);
    }
    bp[l] = xp[l];
    bq[l] = xq[l];
    op[l] = xp[l];  // outputs overwrite the inputs after all are read
    oq[l] = xq[l];
  }
  ifma_powm8(priv.ifma_psq, priv.pm1, bp, op, lanes);
  ifma_powm8(priv.ifma_qsq, priv.qm1, bq, oq, lanes);
  for (int l = 0; l < 8; ++l) {
    const size_t i = g * 8 + static_cast<size_t>(l);
    if (i < count) {
      // p | c (q | c) makes c^(p-1) = 0 mod p^2 (q^2); a unit never gives 0.
      const bool bad = (mpz_sgn(xp[l]) == 0) | (mpz_sgn(xq[l]) == 0);
      finish_half(xp[l], xp[l], priv.p, priv.p_inv_word, priv.hp);
      finish_half(xq[l], xq[l], priv.q, priv.q_inv_word, priv.hq);
      crt_store(priv, xp[l], xq[l], tmp, out + i * priv.pub.n_limbs);
      if (bad) refuse_row(out + i * priv.pub.n_limbs, priv.pub.n_limbs, failed, static_cast<long>(i));
    }
    mpz_clears(xp[l], xq[l], nullptr);
  }
  mpz_clear(tmp);
}

long decrypt(const PrivateContext& priv, const uint64_t* c, size_t count,
             uint64_t* out, int threads) {
  std::atomic<long> failed{-1};
  if (lanes52_enabled()) {
    parallel_for((count + 7) / 8, threads, 1, [&](size_t begin, size_t end) {
      for (size_t g = begin; g < end; ++g) decrypt_group_ifma(priv, c, count, g, out, failed);
    });
    return failed.load();
  }
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    std::vector<mp_limb_t> buf;
    for (size_t i = begin; i < end; ++i) decrypt_row(priv, c, i, out, failed, s, buf, false);
  });
  return failed.load();
}

// ---- homomorphic operations -------------------------------------------------

void mul_ciphertexts(const PublicContext& pub, const uint64_t* a,
                     const uint64_t* b, size_t count, uint64_t* out,
                     int threads) {
  const size_t cl = pub.nsq_limbs;
  parallel_for(count, threads, kMinMulRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t va, vb;
    for (size_t i = begin; i < end; ++i) {
      mpz_mul(s.a, view(va, a + i * cl, cl), view(vb, b + i * cl, cl));
      mpz_mod(s.a, s.a, pub.nsq);
      store(s.a, out + i * cl, cl);
    }
  });
}

void add_plaintexts(const PublicContext& pub, const uint64_t* c,
                    const uint64_t* m, size_t m_limbs, size_t count,
                    uint64_t* out, int threads) {
  const size_t cl = pub.nsq_limbs;
  parallel_for(count, threads, kMinMulRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    for (size_t i = begin; i < end; ++i) {
      g_pow(s.a, pub, view(v, m + i * m_limbs, m_limbs));
      mpz_mul(s.a, s.a, view(v, c + i * cl, cl));
      mpz_mod(s.a, s.a, pub.nsq);
      store(s.a, out + i * cl, cl);
    }
  });
}

long pow_ciphertexts(const PublicContext& pub, const uint64_t* c, size_t count,
                     const uint64_t* e, size_t e_limbs, size_t e_stride,
                     const uint8_t* neg, size_t neg_stride, uint64_t* out,
                     int threads) {
  const size_t cl = pub.nsq_limbs;
  std::atomic<long> failed{-1};
  parallel_for(count, threads, kMinExpRows, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v, ve;
    for (size_t i = begin; i < end; ++i) {
      mpz_set(s.a, view(v, c + i * cl, cl));
      if (neg[i * neg_stride] && mpz_invert(s.a, s.a, pub.nsq) == 0) {
        record_failure(failed, static_cast<long>(i));
        mpz_set_ui(s.a, 0);
      }
      mpz_powm(s.a, s.a, view(ve, e + i * e_stride * e_limbs, e_limbs), pub.nsq);
      store(s.a, out + i * cl, cl);
    }
  });
  return failed.load();
}

long invert_ciphertexts(const PublicContext& pub, const uint64_t* c,
                        size_t count, uint64_t* out, int threads) {
  const size_t cl = pub.nsq_limbs;
  std::atomic<long> failed{-1};
  parallel_for(count, threads, kMinMulRows / 4, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    for (size_t i = begin; i < end; ++i) {
      if (mpz_invert(s.a, view(v, c + i * cl, cl), pub.nsq) == 0) {
        record_failure(failed, static_cast<long>(i));
        mpz_set_ui(s.a, 0);
      }
      store(s.a, out + i * cl, cl);
    }
  });
  return failed.load();
}

void product_of_groups(const PublicContext& pub, const uint64_t* c,
                       size_t groups, size_t group, uint64_t* out,
                       int threads) {
  const size_t cl = pub.nsq_limbs;
  size_t per_thread = group ? kMinMulRows / group + 1 : kMinMulRows;
  parallel_for(groups, threads, per_thread, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    for (size_t g = begin; g < end; ++g) {
      mpz_set_ui(s.a, 1);
      for (size_t j = 0; j < group; ++j) {
        mpz_mul(s.a, s.a, view(v, c + (g * group + j) * cl, cl));
        mpz_mod(s.a, s.a, pub.nsq);
      }
      store(s.a, out + g * cl, cl);
    }
  });
}

void product_of_arrays(const PublicContext& pub, const uint64_t* const* c,
                       size_t arrays, size_t count, uint64_t* out,
                       int threads) {
  const size_t cl = pub.nsq_limbs;
  size_t per_thread = arrays ? kMinMulRows / arrays + 1 : kMinMulRows;
  parallel_for(count, threads, per_thread, [&](size_t begin, size_t end) {
    Scratch s;
    mpz_t v;
    for (size_t i = begin; i < end; ++i) {
      mpz_set_ui(s.a, 1);
      for (size_t k = 0; k < arrays; ++k) {
        mpz_mul(s.a, s.a, view(v, c[k] + i * cl, cl));
        mpz_mod(s.a, s.a, pub.nsq);
      }
      store(s.a, out + i * cl, cl);
    }
  });
}

// ---- Montgomery form ----------------------------------------------------------

namespace {

// out = R^e mod n^2 (R = 2^(52 D), invertible mod the odd n^2; e may be negative).
void r_power(mpz_t out, const PublicContext& pub, long e) {
  mpz_t r, ex;
  mpz_inits(r, ex, nullptr);
  mpz_setbit(r, pub.form_r_bits);
  mpz_mod(r, r, pub.nsq);
  mpz_set_si(ex, e);
  mpz_powm(out, r, ex, pub.nsq);
  mpz_clears(r, ex, nullptr);
}

// Shared body: out[i] = prod_{k < K} row_at(i, k) (rows whose forms add up
// to |form_sum|) in form |out_form|.
template <typename RowAt>
void mont_rows(const PublicContext& pub, size_t count, size_t K, RowAt row_at, long form_sum,
               int out_form, uint64_t* out, int threads) {
  const size_t cl = pub.nsq_limbs;
  if (count == 0 || K == 0) return;
  mpz_t corr;
  mpz_init(corr);
  const bool ifma_fast = pub.form == PublicContext::Form::kIfma && lanes52_enabled();
  const bool m64_fast = pub.form == PublicContext::Form::kMont64 && mont64_enabled();
  if (ifma_fast || m64_fast) {
    // K - 1 Montgomery products give R^(form_sum - (K - 1)); a last product
    // by R^(out_form - that + 1) lands on R^out_form.
    const long have = form_sum - static_cast<long>(K - 1);
    const bool need = have != out_form;
    if (need) r_power(corr, pub, out_form - have + 1);
    if (m64_fast) {
      parallel_for(count, threads, std::max<size_t>(1, kMinMulRows / K), [&](size_t begin, size_t end) {
        Mont64RowProduct prod(pub.m64_nsq, need ? corr : nullptr);
        std::vector<const uint64_t*> rows(K);
        for (size_t i = begin; i < end; ++i) {
          for (size_t k = 0; k < K; ++k) rows[k] = row_at(i, k);
          prod.run(rows.data(), K, cl, out + i * cl);
        }
      });
      mpz_clear(corr);
      return;
    }
    // 8 lanes per group: IFMA, or two 4-lane halves on AVX2 FMA.
    auto groups = [&](auto& prod, size_t begin, size_t end) {
      std::vector<const uint64_t*> rows(K * 8);
      uint64_t* dst[8];
      for (size_t g = begin; g < end; ++g) {
        for (size_t l = 0; l < 8; ++l) {
          const size_t i = g * 8 + l;
          const bool live = i < count;
          for (size_t k = 0; k < K; ++k) rows[k * 8 + l] = live ? row_at(i, k) : nullptr;
          dst[l] = live ? out + i * cl : nullptr;
        }
        prod.run(rows.data(), K, cl, dst);
      }
    };
    const bool fma = kernel_tier() == Tier::kAvx2;
    parallel_for((count + 7) / 8, threads, std::max<size_t>(1, kMinMulRows / 8 / K), [&](size_t begin, size_t end) {
      if (fma) {
        FmaRowProduct prod(pub.ifma_nsq, need ? corr : nullptr);
        groups(prod, begin, end);
      } else {
        IfmaRowProduct prod(pub.ifma_nsq, need ? corr : nullptr);
        groups(prod, begin, end);
      }
    });
  } else {
    const long shift = out_form - form_sum;
    if (shift) r_power(corr, pub, shift);
    parallel_for(count, threads, std::max<size_t>(1, kMinMulRows / K), [&](size_t begin, size_t end) {
      Scratch s;
      mpz_t v;
      for (size_t i = begin; i < end; ++i) {
        mpz_set(s.a, view(v, row_at(i, 0), cl));
        for (size_t k = 1; k < K; ++k) {
          mpz_mul(s.a, s.a, view(v, row_at(i, k), cl));
          mpz_mod(s.a, s.a, pub.nsq);
        }
        if (shift) {
          mpz_mul(s.a, s.a, corr);
          mpz_mod(s.a, s.a, pub.nsq);
        } else if (K == 1) {
          mpz_mod(s.a, s.a, pub.nsq);
        }
        store(s.a, out + i * cl, cl);
      }
    });
  }
  mpz_clear(corr);
}

}  // namespace

void mont_product_of_arrays(const PublicContext& pub, const uint64_t* const* c,
                            const uint8_t* forms, size_t arrays, size_t count,
                            int out_form, uint64_t* out, int threads) {
  const size_t cl = pub.nsq_limbs;
  long form_sum = 0;
  for (size_t k = 0; k < arrays; ++k) form_sum += forms[k];
  mont_rows(pub, count, arrays, [&](size_t i, size_t k) { return c[k] + i * cl; }, form_sum, out_form,
            out, threads);
}

void mont_product_of_groups(const PublicContext& pub, const uint64_t* c, int form,
                            size_t groups, size_t group, int out_form, uint64_t* out,
                            int threads) {
  const size_t cl = pub.nsq_limbs;
  mont_rows(pub, groups, group, [&](size_t g, size_t j) { return c + (g * group + j) * cl; },
            static_cast<long>(form) * static_cast<long>(group), out_form, out, threads);
}

// ---- validation and keys ----------------------------------------------------

long find_invalid_ciphertext(const PublicContext& pub, const uint64_t* c,
                             size_t count, int threads) {
  const size_t cl = pub.nsq_limbs;
  mpz_t v;
  for (size_t i = 0; i < count; ++i) {
    mpz_srcptr x = view(v, c + i * cl, cl);
    if (mpz_sgn(x) == 0 || mpz_cmp(x, pub.nsq) >= 0) return static_cast<long>(i);
  }
  if (count == 0) return -1;
  // Every row is below n^2 < n R, so the Montgomery product mod n applies.
  // Chunks of rows per thread; each chunk's product is tested by one gcd.
  const size_t L = pub.m64_n.limbs;
  const size_t chunks = std::min<size_t>(count, static_cast<size_t>(threads < 1 ? 1 : threads));
  std::vector<uint64_t> partial(chunks * L);
  std::atomic<long> failed{-1};
  parallel_for(chunks, threads, 1, [&](size_t begin, size_t end) {
    mpz_t g, pv;
    mpz_init(g);
    for (size_t k = begin; k < end; ++k) {
      const size_t lo = count * k / chunks, hi = count * (k + 1) / chunks;
      uint64_t* acc = partial.data() + k * L;
      mont64_unit_product(pub.m64_n, c + lo * cl, hi - lo, cl, acc);
      mpz_gcd(g, view(pv, acc, L), pub.n);
      if (mpz_cmp_ui(g, 1) == 0) continue;
      for (size_t i = lo; i < hi; ++i) {  // the chunk holds a non-unit: find the first
        mpz_gcd(g, view(pv, c + i * cl, cl), pub.n);
        if (mpz_cmp_ui(g, 1) != 0) {
          record_failure(failed, static_cast<long>(i));
          break;
        }
      }
    }
    mpz_clear(g);
  });
  return failed.load();
}

long find_row_at_least(const uint64_t* rows, size_t limbs, size_t count,
                       const uint64_t* bound, size_t bound_limbs) {
  mpz_t v, b;
  mpz_srcptr bb = view(b, bound, bound_limbs);
  for (size_t i = 0; i < count; ++i) {
    if (mpz_cmp(view(v, rows + i * limbs, limbs), bb) >= 0) return static_cast<long>(i);
  }
  return -1;
}

bool generate_prime(size_t bits, uint64_t* out, size_t limbs) {
  if (bits < 3 || (bits + 63) / 64 > limbs) return false;
  RandomSource rng;
  const size_t bytes = (bits + 7) / 8;
  std::vector<uint8_t> buf(bytes);
  mpz_t x;
  mpz_init(x);
  bool ok = false;
  for (;;) {
    if (!rng.fill(buf.data(), bytes)) break;
    mpz_import(x, bytes, -1, 1, 0, 0, buf.data());
    mpz_fdiv_r_2exp(x, x, bits);     // keep exactly |bits| bits
    mpz_setbit(x, bits - 1);         // top two bits set: p q has 2*bits bits
    mpz_setbit(x, bits - 2);
    mpz_setbit(x, 0);                // odd
    if (mpz_probab_prime_p(x, 40) > 0) {
      ok = true;
      break;
    }
  }
  if (ok) store(x, out, limbs);
  std::memset(buf.data(), 0, bytes);
  mpz_clear(x);
  return ok;
}

int probable_prime(const uint64_t* x, size_t limbs, int reps) {
  mpz_t v;
  return mpz_probab_prime_p(view(v, x, limbs), reps);
}

}  // namespace fp
