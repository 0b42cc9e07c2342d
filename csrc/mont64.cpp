#include "mont64.hpp"

#include <algorithm>
#include <array>
#include <utility>
#include <cstdlib>
#include <cstring>

#include "ct_select.hpp"
#include "kernel_tier.hpp"
#include "limb_io.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#define FP_HAVE_MULX_BUILD 1
#endif

namespace fp {

namespace {

typedef unsigned __int128 u128;

// Scratch of the products, in multiples of L limbs: the double-width
// product and, for squares, a masked copy of the operand; Karatsuba
// products take 2L + 3L (halves' differences, the middle product and sum).
constexpr size_t kScratch = 5;

// ---- one row: t[0, n) += x * v[0, n), returns the carry limb.
// Sizes: n >= 1 limbs of t and v; t and v must not overlap.  Timing: a
// fixed instruction sequence for a given n.

#ifdef FP_HAVE_MULX_BUILD
// One limb: lo:hi = x * v[j]; t[j] = lo + t[j] + CF (adcx chain) + hi of the
// previous limb + OF (adox chain).  The two carry chains run side by side.
#define FP_ROW_STEP(off, HI_IN, HI_OUT)                    \
  "mulx " #off "(%[v]), %[lo], %[" #HI_OUT "]\n\t"        \
  "adcx " #off "(%[t]), %[lo]\n\t"                         \
  "adox %[" #HI_IN "], %[lo]\n\t"                          \
  "mov %[lo], " #off "(%[t])\n\t"

__attribute__((target("bmi2,adx"))) inline uint64_t row_mulx(uint64_t* t, const uint64_t* v,
                                                            uint64_t x, size_t n) {
  uint64_t c, lo, hi, z;
  size_t count = n & 3, blocks = n >> 2;
  // n mod 4 single limbs, then blocks of four.  The loops advance with lea,
  // count with lea and leave with jrcxz: none of these touches CF or OF, so
  // both chains survive from limb to limb.
  asm volatile(
      "xor %k[c], %k[c]\n\t"
      "xor %k[z], %k[z]\n\t"  // CF = OF = 0, c = z = 0
      "jrcxz 3f\n\t"
      "4:\n\t"
      FP_ROW_STEP(0, c, hi)
      "mov %[hi], %[c]\n\t"
      "lea 8(%[v]), %[v]\n\t"
      "lea 8(%[t]), %[t]\n\t"
      "lea -1(%[n]), %[n]\n\t"
      "jrcxz 3f\n\t"
      "jmp 4b\n\t"
      "3:\n\t"
      "mov %[b], %[n]\n\t"
      "jrcxz 2f\n\t"
      "1:\n\t"
      FP_ROW_STEP(0, c, hi) FP_ROW_STEP(8, hi, c) FP_ROW_STEP(16, c, hi) FP_ROW_STEP(24, hi, c)
      "lea 32(%[v]), %[v]\n\t"
      "lea 32(%[t]), %[t]\n\t"
      "lea -1(%[n]), %[n]\n\t"
      "jrcxz 2f\n\t"
      "jmp 1b\n\t"
      "2:\n\t"
      "adcx %[z], %[c]\n\t"  // hi <= 2^64 - 2: the two carries cannot overflow it
      "adox %[z], %[c]\n\t"
      : [c] "=&r"(c), [lo] "=&r"(lo), [hi] "=&r"(hi), [z] "=&r"(z), [t] "+r"(t), [v] "+r"(v),
        [n] "+c"(count)
      : "d"(x), [b] "r"(blocks)
      : "cc", "memory");
  return c;
}
#undef FP_ROW_STEP
#endif

inline uint64_t row_portable(uint64_t* t, const uint64_t* v, uint64_t x, size_t n) {
  uint64_t c = 0;
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    u128 p0 = static_cast<u128>(x) * v[j] + t[j] + c;
    t[j] = static_cast<uint64_t>(p0);
    u128 p1 = static_cast<u128>(x) * v[j + 1] + t[j + 1] + static_cast<uint64_t>(p0 >> 64);
    t[j + 1] = static_cast<uint64_t>(p1);
    u128 p2 = static_cast<u128>(x) * v[j + 2] + t[j + 2] + static_cast<uint64_t>(p1 >> 64);
    t[j + 2] = static_cast<uint64_t>(p2);
    u128 p3 = static_cast<u128>(x) * v[j + 3] + t[j + 3] + static_cast<uint64_t>(p2 >> 64);
    t[j + 3] = static_cast<uint64_t>(p3);
    c = static_cast<uint64_t>(p3 >> 64);
  }
  for (; j < n; ++j) {
    u128 p = static_cast<u128>(x) * v[j] + t[j] + c;
    t[j] = static_cast<uint64_t>(p);
    c = static_cast<uint64_t>(p >> 64);
  }
  return c;
}

template <bool kMulx>
inline uint64_t row(uint64_t* t, const uint64_t* v, uint64_t x, size_t n) {
#ifdef FP_HAVE_MULX_BUILD
  if constexpr (kMulx) return row_mulx(t, v, x, n);
#endif
  return row_portable(t, v, x, n);
}

// Rows of a length fixed at compile time (N even), fully
// unrolled: no loop counter, no pointer updates, about a fifth fewer
// instructions per limb than row_mulx.  One instantiation per N <=
// kMaxUnrolled; longer rows take the loop.  Same sizes, aliasing and timing
// contract as row_mulx.
using RowFn = uint64_t (*)(uint64_t*, const uint64_t*, uint64_t);
constexpr size_t kMaxUnrolled = 128;

#ifdef FP_HAVE_MULX_BUILD
#define FP_ROW_STEP_K(HI_IN, HI_OUT)                      \
  "mulx fp_k*8(%[v]), %[lo], %[" #HI_OUT "]\n\t"         \
  "adcx fp_k*8(%[t]), %[lo]\n\t"                          \
  "adox %[" #HI_IN "], %[lo]\n\t"                         \
  "mov %[lo], fp_k*8(%[t])\n\t"                           \
  ".set fp_k, fp_k+1\n\t"

template <size_t N>
__attribute__((target("bmi2,adx"))) uint64_t row_mulx_fixed(uint64_t* t, const uint64_t* v,
                                                           uint64_t x) {
  static_assert(N % 2 == 0 && N > 0, "rows are a multiple of 2 limbs");
  uint64_t c, lo, hi, z;
  asm volatile(
      "xor %k[c], %k[c]\n\t"
      "xor %k[z], %k[z]\n\t"  // CF = OF = 0
      ".set fp_k, 0\n\t"
      ".rept %c[pairs]\n\t"
      FP_ROW_STEP_K(c, hi) FP_ROW_STEP_K(hi, c)
      ".endr\n\t"
      "adcx %[z], %[c]\n\t"
      "adox %[z], %[c]\n\t"
      : [c] "=&r"(c), [lo] "=&r"(lo), [hi] "=&r"(hi), [z] "=&r"(z)
      : "d"(x), [t] "r"(t), [v] "r"(v), [pairs] "i"(N / 2)
      : "cc", "memory");
  return c;
}
#undef FP_ROW_STEP_K

template <size_t... K>
constexpr std::array<RowFn, sizeof...(K)> make_row_table(std::index_sequence<K...>) {
  return {{&row_mulx_fixed<2 * (K + 1)>...}};
}
constexpr auto kRowTable = make_row_table(std::make_index_sequence<kMaxUnrolled / 2>());

// The unrolled row for n limbs (n even), or nullptr.
inline RowFn fixed_row(size_t n) {
  return n % 2 == 0 && n > 0 && n <= kMaxUnrolled ? kRowTable[n / 2 - 1] : nullptr;
}
#else
inline RowFn fixed_row(size_t) { return nullptr; }
#endif

// Runs rows of one length n: the unrolled one on the mulx tier where it
// exists, else row<kMulx>.
template <bool kMulx>
struct RowRunner {
  size_t n;
  RowFn fn;
  explicit RowRunner(size_t limbs) : n(limbs), fn(kMulx ? fixed_row(limbs) : nullptr) {}
  uint64_t operator()(uint64_t* t, const uint64_t* v, uint64_t x) const {
    return fn ? fn(t, v, x) : row<kMulx>(t, v, x, n);
  }
};

// Montgomery reduction: r (L limbs) = t / R mod m, fully reduced, for
// t (2L limbs) < m R.  Destroys t.  r must not overlap t.  Fixed sequence:
// L rows, one addition, one subtraction, one masked select.
template <bool kMulx>
void redc(const Mont64Modulus& M, uint64_t* r, uint64_t* t) {
  const size_t L = M.limbs;
  const uint64_t* m = M.m.data();
  const RowRunner<kMulx> row_L(L);
  for (size_t i = 0; i < L; ++i) {
    const uint64_t u = t[i] * M.k0;  // t[i] + u m[0] = 0 mod 2^64
    t[i] = row_L(t + i, m, u);  // the row's carry belongs at i + L: parked in the zeroed limb
  }
  // GMP's mpn_add_n / mpn_sub_n / mpn_cnd_swap run data-independent loops.
  mp_limb_t* rr = reinterpret_cast<mp_limb_t*>(r);
  mp_limb_t* tt = reinterpret_cast<mp_limb_t*>(t);
  const mp_size_t n = static_cast<mp_size_t>(L);
  const mp_limb_t carry = mpn_add_n(rr, tt + L, tt, n);  // < 2m < 2R
  const mp_limb_t borrow = mpn_sub_n(tt, rr, reinterpret_cast<const mp_limb_t*>(m), n);
  mpn_cnd_swap(carry | (borrow ^ 1), rr, tt, n);  // r >= m: keep r - m
}

// t (2L limbs) = 2 t + sum_i a_i^2 2^(128 i): turns the off-diagonal
// triangle of a square into the square.  The triangle is below a^2 / 2, so
// the result fits.  Fixed sequence for a given L; t and a must not overlap.
#ifdef FP_HAVE_MULX_BUILD
__attribute__((target("bmi2,adx"))) inline void add_double_diagonal_mulx(uint64_t* t,
                                                                         const uint64_t* a,
                                                                         size_t L) {
  uint64_t lo, hi, t0, t1, z;
  // Per limb of a: t[2i] = t[2i] + t[2i] + CF (adcx: the doubling chain)
  // + lo(a_i^2) + OF (adox: the diagonal chain); t[2i + 1] likewise with
  // hi(a_i^2).  Both chains end at zero because the sum fits in 2L limbs.
  asm volatile(
      "xor %k[z], %k[z]\n\t"  // CF = OF = 0
      "1:\n\t"
      "mov 0(%[a]), %%rdx\n\t"
      "mulx %%rdx, %[lo], %[hi]\n\t"
      "mov 0(%[t]), %[t0]\n\t"
      "mov 8(%[t]), %[t1]\n\t"
      "adcx %[t0], %[t0]\n\t"
      "adox %[lo], %[t0]\n\t"
      "adcx %[t1], %[t1]\n\t"
      "adox %[hi], %[t1]\n\t"
      "mov %[t0], 0(%[t])\n\t"
      "mov %[t1], 8(%[t])\n\t"
      "lea 8(%[a]), %[a]\n\t"
      "lea 16(%[t]), %[t]\n\t"
      "lea -1(%[n]), %[n]\n\t"
      "jrcxz 2f\n\t"
      "jmp 1b\n\t"
      "2:\n\t"
      : [lo] "=&r"(lo), [hi] "=&r"(hi), [t0] "=&r"(t0), [t1] "=&r"(t1), [z] "=&r"(z),
        [t] "+r"(t), [a] "+r"(a), [n] "+c"(L)
      :
      : "rdx", "cc", "memory");
}
#endif

inline void add_double_diagonal_portable(uint64_t* t, const uint64_t* a, size_t L) {
  uint64_t shift_in = 0, carry = 0;
  for (size_t i = 0; i < L; ++i) {
    const u128 sq = static_cast<u128>(a[i]) * a[i];
    const uint64_t lo = t[2 * i], hi = t[2 * i + 1];
    const uint64_t d0 = (lo << 1) | shift_in, d1 = (hi << 1) | (lo >> 63);
    shift_in = hi >> 63;
    const u128 s0 = static_cast<u128>(d0) + static_cast<uint64_t>(sq) + carry;
    const u128 s1 = static_cast<u128>(d1) + static_cast<uint64_t>(sq >> 64) + static_cast<uint64_t>(s0 >> 64);
    t[2 * i] = static_cast<uint64_t>(s0);
    t[2 * i + 1] = static_cast<uint64_t>(s1);
    carry = static_cast<uint64_t>(s1 >> 64);
  }
}

template <bool kMulx>
inline void add_double_diagonal(uint64_t* t, const uint64_t* a, size_t L) {
#ifdef FP_HAVE_MULX_BUILD
  if constexpr (kMulx) {
    add_double_diagonal_mulx(t, a, L);
    return;
  }
#endif
  add_double_diagonal_portable(t, a, L);
}

// t (2n limbs) = a b (n limbs each, n a multiple of 4), n rows.  t
// overlaps neither a nor b.  Constant time: fixed sequence for a given n.
template <bool kMulx>
void mul_rows(uint64_t* t, const uint64_t* a, const uint64_t* b, size_t n) {
  const RowRunner<kMulx> row_n(n);
  std::memset(t, 0, 2 * n * sizeof(uint64_t));
  for (size_t i = 0; i < n; ++i) t[i + n] = row_n(t + i, b, a[i]);
}

// t[0, n) += c, the carry out dropped (callers know the sum fits).  A full
// pass over n limbs whatever c is: constant time.
inline void add_1_ct(uint64_t* t, size_t n, uint64_t c) {
  for (size_t i = 0; i < n; ++i) {
    const u128 s = static_cast<u128>(t[i]) + c;
    t[i] = static_cast<uint64_t>(s);
    c = static_cast<uint64_t>(s >> 64);
  }
}

// d (n limbs) = |x - y|; returns 1 when x < y, else 0.  tmp: n limbs.  Both
// differences are computed and one kept by a masked swap: constant time.
// d, tmp overlap neither x nor y.
inline mp_limb_t abs_diff(uint64_t* d, const uint64_t* x, const uint64_t* y, size_t n,
                          uint64_t* tmp) {
  mp_limb_t* dd = reinterpret_cast<mp_limb_t*>(d);
  mp_limb_t* tt = reinterpret_cast<mp_limb_t*>(tmp);
  const mp_limb_t* xx = reinterpret_cast<const mp_limb_t*>(x);
  const mp_limb_t* yy = reinterpret_cast<const mp_limb_t*>(y);
  const mp_size_t sn = static_cast<mp_size_t>(n);
  const mp_limb_t borrow = mpn_sub_n(dd, xx, yy, sn);
  mpn_sub_n(tt, yy, xx, sn);
  mpn_cnd_swap(borrow, dd, tt, sn);
  return borrow;
}

// Products of n limbs from this size on (n a multiple of 8) take one
// Karatsuba level (measured on Zen 4: 13% off the 64-limb product, nothing
// at 32 limbs, where the linear GMP passes cost what the saved rows do).
constexpr size_t kKaratsubaMin = 64;

// t (2n limbs) = a b (n limbs each).  For n >= kKaratsubaMin and n a
// multiple of 8, one Karatsuba level on halves of h = n / 2 limbs:
// a b = z0 + (z0 + z2 + (a0 - a1)(b1 - b0)) 2^(64 h) + z2 2^(128 h), the
// middle product |a0 - a1| |b1 - b0| added or subtracted by masked GMP
// operations (mpn_cnd_add_n / mpn_cnd_sub_n both run), so the sign never
// steers a branch or an address.  s: 3n limbs of scratch.  t and s overlap
// neither a nor b.  Constant time: fixed sequence for a given n.
template <bool kMulx>
void mul_n(uint64_t* t, const uint64_t* a, const uint64_t* b, size_t n, uint64_t* s) {
  if (n < kKaratsubaMin || n % 8 != 0) {
    mul_rows<kMulx>(t, a, b, n);
    return;
  }
  const size_t h = n / 2;
  uint64_t* da = s;          // h
  uint64_t* db = s + h;      // h
  uint64_t* z1 = s + n;      // n
  uint64_t* w = s + 2 * n;   // n; also the abs_diff scratch
  mul_rows<kMulx>(t, a, b, h);              // z0 = a0 b0 in t[0, n)
  mul_rows<kMulx>(t + n, a + h, b + h, h);  // z2 = a1 b1 in t[n, 2n)
  const mp_limb_t neg = abs_diff(da, a, a + h, h, w) ^ abs_diff(db, b + h, b, h, w);
  mul_rows<kMulx>(z1, da, db, h);
  mp_limb_t* ww = reinterpret_cast<mp_limb_t*>(w);
  mp_limb_t* zz = reinterpret_cast<mp_limb_t*>(z1);
  mp_limb_t* tt = reinterpret_cast<mp_limb_t*>(t);
  const mp_size_t sn = static_cast<mp_size_t>(n);
  // w = z0 + z2 -+ z1 = a0 b1 + a1 b0 < 2^(64 n + 1); c its top (mod 2^64
  // along the way, 0 or 1 at the end).
  mp_limb_t c = mpn_add_n(ww, tt, tt + n, sn);
  c += mpn_cnd_add_n(neg ^ 1, ww, ww, zz, sn);
  c -= mpn_cnd_sub_n(neg, ww, ww, zz, sn);
  c += mpn_add_n(tt + h, tt + h, ww, sn);
  add_1_ct(t + h + n, h, c);
}

// r = a b / R mod m (L limbs each, a, b < m).  t: kScratch L limbs.
// r may alias a or b.
template <bool kMulx>
void mont_mul(const Mont64Modulus& M, uint64_t* r, const uint64_t* a, const uint64_t* b,
              uint64_t* t) {
  const size_t L = M.limbs;
  mul_n<kMulx>(t, a, b, L, t + 2 * L);
  redc<kMulx>(M, r, t);
}

// r = a^2 / R mod m (a < m).  t: kScratch L limbs.  r may alias a.  The
// square costs about half a product: the off-diagonal triangle
// sum_{i<j} a_i a_j, doubled, plus the diagonal.  Row i multiplies a_i by
// z = a with limbs 0..i zeroed, over the last len_i = L - 1 - i rounded up
// to a multiple of 2 (L <= kSqrEvenRowsMax) or 4 limbs, so that every row
// has a length the unrolled rows cover (the extra products are by zero
// limbs); it ends at limb i + L, which no earlier row reached, so its carry
// is stored there.  The lengths depend on L only.
// Up to this L squares pad their rows to even lengths; above, to multiples
// of 4 (fewer distinct unrolled rows in the instruction cache measured
// faster at L = 64).
constexpr size_t kSqrEvenRowsMax = 32;

template <bool kMulx>
void mont_sqr(const Mont64Modulus& M, uint64_t* r, const uint64_t* a, uint64_t* t) {
  const size_t L = M.limbs;
  uint64_t* z = t + 2 * L;
  std::memcpy(z, a, L * sizeof(uint64_t));
  std::memset(t, 0, 2 * L * sizeof(uint64_t));
  const size_t pad = L <= kSqrEvenRowsMax ? 2 : 4;
  for (size_t i = 0; i + 1 < L; ++i) {
    z[i] = 0;
    const size_t len = (L - 1 - i + pad - 1) & ~(pad - 1);  // pad: a power of 2
    const RowRunner<kMulx> run(len);
    t[i + L] = run(t + i + L - len, z + L - len, a[i]);
  }
  add_double_diagonal<kMulx>(t, a, L);
  redc<kMulx>(M, r, t);
}

// r = a / R mod m: out of Montgomery form.  t: kScratch L limbs.  r may alias a.
template <bool kMulx>
void from_mont(const Mont64Modulus& M, uint64_t* r, const uint64_t* a, uint64_t* t) {
  const size_t L = M.limbs;
  std::memcpy(t, a, L * sizeof(uint64_t));
  std::memset(t + L, 0, L * sizeof(uint64_t));
  redc<kMulx>(M, r, t);
}

// Fixed window for an exponent of |bits| bits: minimizes the table build
// (2^w - 2 products) plus, per window, w squarings, one product and a scan of
// 2^w entries (about 2^w / (2 L) of a product).
unsigned window_for(size_t bits, size_t L) {
  unsigned best = 1;
  double best_cost = 1e300;
  for (unsigned w = 1; w <= 7; ++w) {
    const double entries = static_cast<double>(size_t{1} << w);
    const double windows = static_cast<double>((bits + w - 1) / w);
    const double cost = (entries - 2) + windows * (1.0 + entries / (2.0 * L));
    if (cost < best_cost) {
      best_cost = cost;
      best = w;
    }
  }
  return best;
}

// out = base^e mod m (rows of L limbs; e of e_limbs limbs < 2^e_bits).
// buf: (2^w + 2 + kScratch) L limbs of scratch.
template <bool kMulx>
void powm_rows(const Mont64Modulus& M, uint64_t* out, const uint64_t* base, const uint64_t* e,
               size_t e_limbs, size_t e_bits, unsigned w, uint64_t* buf) {
  const size_t L = M.limbs, entries = size_t{1} << w;
  uint64_t* table = buf;
  uint64_t* acc = table + entries * L;
  uint64_t* sel = acc + L;
  uint64_t* t = sel + L;  // kScratch L
  std::memcpy(table, M.r_mod.data(), L * sizeof(uint64_t));
  mont_mul<kMulx>(M, table + L, base, M.r2_mod.data(), t);  // base R
  for (size_t k = 2; k < entries; ++k)
    mont_mul<kMulx>(M, table + k * L, table + (k - 1) * L, table + L, t);
  const size_t windows = (e_bits + w - 1) / w;
  select_entry(acc, table, entries, L, bits_at(e, e_limbs, (windows - 1) * w, w));
  for (size_t i = windows - 1; i-- > 0;) {
    for (unsigned s = 0; s < w; ++s) mont_sqr<kMulx>(M, acc, acc, t);
    select_entry(sel, table, entries, L, bits_at(e, e_limbs, i * w, w));
    mont_mul<kMulx>(M, acc, acc, sel, t);
  }
  from_mont<kMulx>(M, out, acc, t);
}

template <bool kMulx>
void fixed_powm_rows(const Mont64Modulus& M, const Mont64FixedBase& tb, uint64_t* out,
                     const uint64_t* e, size_t e_limbs, uint64_t* buf) {
  const size_t L = M.limbs, entries = size_t{1} << tb.window;
  uint64_t* acc = buf;
  uint64_t* sel = acc + L;
  uint64_t* t = sel + L;  // kScratch L
  select_entry(acc, tb.table.data(), entries, L, bits_at(e, e_limbs, 0, tb.window));
  for (size_t i = 1; i < tb.windows; ++i) {
    select_entry(sel, tb.table.data() + i * entries * L, entries, L,
                 bits_at(e, e_limbs, i * tb.window, tb.window));
    mont_mul<kMulx>(M, acc, acc, sel, t);
  }
  from_mont<kMulx>(M, out, acc, t);
}

bool use_mulx() {
#ifdef FP_HAVE_MULX_BUILD
  return mont64_mulx_rows();
#else
  return false;
#endif
}

// Writes x (< 2^(64 limbs)) into |limbs| limbs; aborts if it does not fit.
void store_checked(mpz_srcptr x, uint64_t* out, size_t limbs) { store(x, out, limbs); }

}  // namespace

bool Mont64Modulus::init(mpz_srcptr modulus) {
  if (mpz_cmp_ui(modulus, 3) < 0 || mpz_even_p(modulus)) return false;
  limbs = (mpz_size(modulus) + 3) / 4 * 4;
  m.assign(limbs, 0);
  r_mod.assign(limbs, 0);
  r2_mod.assign(limbs, 0);
  store(modulus, m.data(), limbs);
  mpz_t t;
  mpz_init(t);
  mpz_setbit(t, 64 * limbs);
  mpz_mod(t, t, modulus);
  store(t, r_mod.data(), limbs);
  mpz_set_ui(t, 0);
  mpz_setbit(t, 128 * limbs);
  mpz_mod(t, t, modulus);
  store(t, r2_mod.data(), limbs);
  uint64_t inv = 1;  // Newton: inv = m[0]^-1 mod 2^64 (6 doublings of precision)
  for (int i = 0; i < 6; ++i) inv *= 2 - m[0] * inv;
  k0 = 0 - inv;
  mpz_clear(t);
  return true;
}

void mont64_powm(const Mont64Modulus& M, mpz_ptr out, mpz_srcptr base, mpz_srcptr e,
                 size_t e_bits) {
  mont64_powm(M, out, base, e, e_bits, use_mulx());
}

void mont64_powm(const Mont64Modulus& M, mpz_ptr out, mpz_srcptr base, mpz_srcptr e,
                 size_t e_bits, bool mulx) {
#ifndef FP_HAVE_MULX_BUILD
  mulx = false;
#endif
  const size_t L = M.limbs;
  if (e_bits == 0) e_bits = 1;
  if (mpz_sgn(e) < 0 || mpz_sizeinbase(e, 2) > e_bits) std::abort();
  const unsigned w = window_for(e_bits, L);
  const size_t e_limbs = (e_bits + 63) / 64, entries = size_t{1} << w;
  std::vector<uint64_t> buf(e_limbs + 2 * L + (entries + 2 + kScratch) * L);
  uint64_t* ex = buf.data();
  uint64_t* b = ex + e_limbs;
  uint64_t* r = b + L;
  uint64_t* scratch = r + L;
  store_checked(e, ex, e_limbs);
  store_checked(base, b, L);
  if (mulx) {
    powm_rows<true>(M, r, b, ex, e_limbs, e_bits, w, scratch);
  } else {
    powm_rows<false>(M, r, b, ex, e_limbs, e_bits, w, scratch);
  }
  mpz_t v;
  mpz_set(out, view(v, r, L));
  wipe(buf.data(), buf.size());
}

void Mont64FixedBase::init(const Mont64Modulus& mod, mpz_srcptr modulus, mpz_srcptr base,
                           size_t exp_bits, unsigned w) {
  limbs = mod.limbs;
  window = w;
  windows = exp_bits ? (exp_bits + w - 1) / w : 1;
  const size_t entries = size_t{1} << w;
  table.assign(windows * entries * limbs, 0);
  mpz_t b, x, t;
  mpz_inits(b, x, t, nullptr);
  mpz_mod(b, base, modulus);
  for (size_t i = 0; i < windows; ++i) {
    uint64_t* row_i = table.data() + i * entries * limbs;
    mpz_set_ui(x, 1);
    for (size_t k = 0; k < entries; ++k) {  // x = b^k, stored as b^k R mod m
      mpz_mul_2exp(t, x, 64 * limbs);
      mpz_mod(t, t, modulus);
      store(t, row_i + k * limbs, limbs);
      mpz_mul(x, x, b);
      mpz_mod(x, x, modulus);
    }
    mpz_swap(b, x);  // b^(2^w)
  }
  mpz_clears(b, x, t, nullptr);
}

void mont64_fixed_powm(const Mont64Modulus& M, const Mont64FixedBase& tb, mpz_ptr out,
                       mpz_srcptr e) {
  const size_t L = M.limbs;
  const size_t e_limbs = (tb.windows * tb.window + 63) / 64;
  if (mpz_sgn(e) < 0 || mpz_sizeinbase(e, 2) > tb.windows * tb.window) std::abort();
  std::vector<uint64_t> buf(e_limbs + (3 + kScratch) * L);
  uint64_t* ex = buf.data();
  uint64_t* r = ex + e_limbs;
  store_checked(e, ex, e_limbs);
  if (use_mulx()) {
    fixed_powm_rows<true>(M, tb, r, ex, e_limbs, r + L);
  } else {
    fixed_powm_rows<false>(M, tb, r, ex, e_limbs, r + L);
  }
  mpz_t v;
  mpz_set(out, view(v, r, L));
  wipe(buf.data(), buf.size());
}

template <bool kMulx>
void unit_product_rows(const Mont64Modulus& M, const uint64_t* rows, size_t count, size_t row_limbs,
                       uint64_t* out) {
  const size_t L = M.limbs;
  std::vector<uint64_t> t(kScratch * L), x(L);
  std::memcpy(out, M.r_mod.data(), L * sizeof(uint64_t));  // 1 in Montgomery form
  for (size_t i = 0; i < count; ++i) {
    std::memset(t.data(), 0, 2 * L * sizeof(uint64_t));
    std::memcpy(t.data(), rows + i * row_limbs, row_limbs * sizeof(uint64_t));
    redc<kMulx>(M, x.data(), t.data());  // row / R mod m
    mont_mul<kMulx>(M, out, out, x.data(), t.data());
  }
}

void mont64_unit_product(const Mont64Modulus& M, const uint64_t* rows, size_t count,
                         size_t row_limbs, uint64_t* out) {
  if (row_limbs > 2 * M.limbs) std::abort();
  if (tier_supported(Tier::kMulx)) {
    unit_product_rows<true>(M, rows, count, row_limbs, out);
  } else {
    unit_product_rows<false>(M, rows, count, row_limbs, out);
  }
}

Mont64RowProduct::Mont64RowProduct(const Mont64Modulus& mod, mpz_srcptr corr)
    : mod_(mod), has_corr_(corr != nullptr), mulx_(use_mulx()) {
  const size_t L = mod.limbs;
  corr_.assign(L, 0);
  acc_.assign(L, 0);
  x_.assign(L, 0);
  t_.assign(kScratch * L, 0);
  if (has_corr_) store(corr, corr_.data(), L);
}

Mont64RowProduct::~Mont64RowProduct() {
  wipe(acc_.data(), acc_.size());
  wipe(x_.data(), x_.size());
  wipe(t_.data(), t_.size());
}

void Mont64RowProduct::run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* out) {
  const size_t L = mod_.limbs;
  if (limbs > L || K == 0) std::abort();
  const size_t bytes = limbs * sizeof(uint64_t);
  std::memcpy(acc_.data(), rows[0], bytes);
  std::memset(acc_.data() + limbs, 0, (L - limbs) * sizeof(uint64_t));
  std::memset(x_.data() + limbs, 0, (L - limbs) * sizeof(uint64_t));
  for (size_t k = 1; k <= K; ++k) {
    const uint64_t* rhs;
    if (k < K) {
      std::memcpy(x_.data(), rows[k], bytes);
      rhs = x_.data();
    } else if (has_corr_) {
      rhs = corr_.data();
    } else {
      break;
    }
    if (mulx_) {
      mont_mul<true>(mod_, acc_.data(), acc_.data(), rhs, t_.data());
    } else {
      mont_mul<false>(mod_, acc_.data(), acc_.data(), rhs, t_.data());
    }
  }
  std::memcpy(out, acc_.data(), bytes);
}

}  // namespace fp
