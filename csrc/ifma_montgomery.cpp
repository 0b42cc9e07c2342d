#include "ifma_montgomery.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FP_NO_IFMA)
#include <immintrin.h>
#define FP_HAVE_IFMA_BUILD 1
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "fma_montgomery.hpp"
#include "ct_select.hpp"
#include "kernel_tier.hpp"
#include "limb_io.hpp"

namespace fp {

#ifndef FP_HAVE_IFMA_BUILD
// Other architectures: the IFMA path does not exist; the kernels are never
// called and tables stay empty.
bool IfmaModulus::init(mpz_srcptr) { return false; }
bool ifma_cpu_supported() { return false; }
void IfmaFixedBase::init(const IfmaModulus&, mpz_srcptr, mpz_srcptr, size_t, unsigned) {}
void ifma_powm8(const IfmaModulus&, mpz_srcptr, const mpz_srcptr[8], mpz_ptr[8], size_t) { std::abort(); }
void ifma_powm8_lanes(const IfmaModulus&, const mpz_srcptr[8], size_t, const mpz_srcptr[8], mpz_ptr[8], size_t) {
  std::abort();
}
void ifma_fixed_powm8(const IfmaModulus&, const IfmaFixedBase&, const mpz_srcptr[8], mpz_ptr[8], size_t) {
  std::abort();
}
IfmaRowProduct::IfmaRowProduct(const IfmaModulus& mod, mpz_srcptr) : mod_(mod), has_corr_(false), buf_(nullptr) {}
IfmaRowProduct::~IfmaRowProduct() {}
void IfmaRowProduct::run(const uint64_t* const*, size_t, size_t, uint64_t* const*) { std::abort(); }
#else

namespace {

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;

// Writes the D radix-2^52 digits of non-negative x (which must fit) to
// out[j * stride].
void to_digits(mpz_srcptr x, uint64_t* out, size_t digits, size_t stride) {
  const uint64_t* d = reinterpret_cast<const uint64_t*>(mpz_limbs_read(x));
  for (size_t j = 0; j < digits; ++j) out[j * stride] = radix52_digit(d, mpz_size(x), j);
}

// x = sum digits[j * stride] 2^(52 j), digits normalized (< 2^52).
void from_digits(mpz_ptr x, const uint64_t* in, size_t digits, size_t stride) {
  const size_t limbs = (digits * 52 + 63) / 64;
  mp_limb_t* d = mpz_limbs_write(x, static_cast<mp_size_t>(limbs));
  std::memset(d, 0, limbs * sizeof(mp_limb_t));
  for (size_t j = 0; j < digits; ++j) {
    const uint64_t v = in[j * stride];
    const size_t bit = j * 52, limb = bit / 64, shift = bit % 64;
    d[limb] |= v << shift;
    if (shift > 12 && limb + 1 < limbs) d[limb + 1] |= v >> (64 - shift);
  }
  mp_size_t n = static_cast<mp_size_t>(limbs);
  while (n > 0 && d[n - 1] == 0) --n;
  mpz_limbs_finish(x, n);
}

constexpr int kLanes = 8;
constexpr int kWindow = 5;


// 64-byte aligned scratch of |vectors| __m512i, wiped (it holds secret
// intermediate values) and freed on scope exit.
struct VectorBuffer {
  explicit VectorBuffer(size_t vectors)
      : ptr(static_cast<__m512i*>(std::aligned_alloc(64, vectors * sizeof(__m512i)))), words(vectors * 8) {
    if (!ptr) std::abort();
  }
  ~VectorBuffer() {
    wipe(reinterpret_cast<uint64_t*>(ptr), words);
    std::free(ptr);
  }
  VectorBuffer(const VectorBuffer&) = delete;
  VectorBuffer& operator=(const VectorBuffer&) = delete;
  __m512i* ptr;
  size_t words;
};

// r = a b R^-1 mod m, almost reduced: a, b < 2m gives r < 2m.  Eight lanes.
// r may alias a or b.  acc has room for D vectors.  Fixed sequence of
// operations: constant time.
//
// One pass per digit b[i] adds a b[i] + m u (u chosen so that the lowest
// digit becomes 0 mod 2^52) and shifts the accumulator down one digit in the
// same sweep, so each accumulator digit is loaded and stored once per pass.
// Digits are not normalized inside the loop: each pass adds at most four
// terms below 2^52 to a digit, so digits stay below 4 D 2^52 + 2^52 < 2^63
// for D <= 256.
__attribute__((target("avx512f,avx512ifma")))
void amm8(__m512i* r, const __m512i* a, const __m512i* b, const __m512i* m,
          __m512i k0, size_t D, __m512i* acc) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
  for (size_t j = 0; j < D; ++j) acc[j] = zero;
  for (size_t i = 0; i < D; ++i) {
    const __m512i bi = b[i];
    __m512i x = _mm512_madd52lo_epu64(acc[0], a[0], bi);
    const __m512i u = _mm512_and_si512(_mm512_madd52lo_epu64(zero, x, k0), mask);
    x = _mm512_madd52lo_epu64(x, m[0], u);  // now 0 mod 2^52
    __m512i carry = _mm512_srli_epi64(x, 52);
    __m512i prev_a = a[0], prev_m = m[0];
    for (size_t j = 1; j < D; ++j) {
      const __m512i aj = a[j], mj = m[j];
      __m512i y = _mm512_add_epi64(acc[j], carry);
      y = _mm512_madd52lo_epu64(y, aj, bi);
      y = _mm512_madd52lo_epu64(y, mj, u);
      y = _mm512_madd52hi_epu64(y, prev_a, bi);
      y = _mm512_madd52hi_epu64(y, prev_m, u);
      acc[j - 1] = y;
      carry = zero;
      prev_a = aj;
      prev_m = mj;
    }
    acc[D - 1] = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(carry, prev_a, bi), prev_m, u);
  }
  // Normalize digits to 52 bits.  r < 2m < R, so nothing carries out of D.
  __m512i carry = zero;
  for (size_t j = 0; j < D; ++j) {
    const __m512i v = _mm512_add_epi64(acc[j], carry);
    r[j] = _mm512_and_si512(v, mask);
    carry = _mm512_srli_epi64(v, 52);
  }
}

// r = x - m if x >= m else x, per lane, in constant time.  x < 2m.
__attribute__((target("avx512f,avx512ifma")))
void cond_sub8(__m512i* r, const __m512i* x, const __m512i* m, size_t D,
               __m512i* tmp) {
  const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
  __m512i borrow = _mm512_setzero_si512();
  for (size_t j = 0; j < D; ++j) {
    const __m512i v = _mm512_sub_epi64(_mm512_sub_epi64(x[j], m[j]), borrow);
    tmp[j] = _mm512_and_si512(v, mask);
    borrow = _mm512_srli_epi64(v, 63);  // 1 when the digit went negative
  }
  const __mmask8 keep_x = _mm512_cmpneq_epi64_mask(borrow, _mm512_setzero_si512());
  for (size_t j = 0; j < D; ++j) r[j] = _mm512_mask_mov_epi64(tmp[j], keep_x, x[j]);
}

// hit[k] = lanes whose index equals k, for k < entries (<= 256).
__attribute__((target("avx512f,avx512ifma")))
void lane_hits(__mmask8* hit, size_t entries, __m512i index) {
  for (size_t k = 0; k < entries; ++k) {
    hit[k] = _mm512_cmpeq_epi64_mask(_mm512_set1_epi64(static_cast<long long>(k)), index);
  }
}

// dst lane l = table[index[l]] for a lane-interleaved table (entries x D
// vectors), by scanning every entry with a mask: constant time in index.
__attribute__((target("avx512f,avx512ifma")))
void select8(__m512i* dst, const __m512i* table, size_t entries, size_t D,
             __m512i index) {
  __mmask8 hit[1 << 8];
  lane_hits(hit, entries, index);
  for (size_t j = 0; j < D; ++j) {
    __m512i v = _mm512_setzero_si512();
    for (size_t k = 0; k < entries; ++k) v = _mm512_mask_mov_epi64(v, hit[k], table[k * D + j]);
    dst[j] = v;
  }
}

// dst lane l = entry index[l] of one comb row shared by all lanes, stored
// digit-major (row[j * entries + k] = digit j of entry k).  Every entry is
// read for every lane (masked broadcast): constant time in index.
__attribute__((target("avx512f,avx512ifma")))
void select_shared8(__m512i* dst, const uint64_t* row, size_t entries, size_t D,
                    __m512i index) {
  __mmask8 hit[1 << 8];
  lane_hits(hit, entries, index);
  for (size_t j = 0; j < D; ++j) {
    const uint64_t* col = row + j * entries;
    __m512i v = _mm512_setzero_si512();
    for (size_t k = 0; k < entries; ++k) {
      v = _mm512_mask_set1_epi64(v, hit[k], static_cast<long long>(col[k]));
    }
    dst[j] = v;
  }
}

// Loads eight values (< m) into lane-interleaved digits.
__attribute__((target("avx512f,avx512ifma")))
void load_lanes(__m512i* x, const mpz_srcptr v[8], size_t D, std::vector<uint64_t>& dig) {
  dig.assign(D * kLanes, 0);
  for (int l = 0; l < kLanes; ++l) to_digits(v[l], dig.data() + l, D, kLanes);
  for (size_t j = 0; j < D; ++j) x[j] = _mm512_loadu_si512(dig.data() + j * kLanes);
}

// out[l] = acc lane l / R mod m, fully reduced.  acc is clobbered; tmp and
// scratch hold D and D vectors.
__attribute__((target("avx512f,avx512ifma")))
void leave_montgomery(mpz_ptr out[8], __m512i* acc, const __m512i* m, __m512i k0,
                      size_t D, __m512i* tmp, __m512i* scratch, std::vector<uint64_t>& dig) {
  for (size_t j = 0; j < D; ++j) tmp[j] = _mm512_setzero_si512();
  tmp[0] = _mm512_set1_epi64(1);
  amm8(acc, acc, tmp, m, k0, D, scratch);
  cond_sub8(acc, acc, m, D, tmp);
  dig.assign(D * kLanes, 0);
  for (size_t j = 0; j < D; ++j) _mm512_storeu_si512(dig.data() + j * kLanes, acc[j]);
  for (int l = 0; l < kLanes; ++l) from_digits(out[l], dig.data() + l, D, kLanes);
  std::memset(dig.data(), 0, dig.size() * sizeof(uint64_t));
}

__attribute__((target("avx512f,avx512ifma")))
void broadcast_digits(__m512i* dst, const std::vector<uint64_t>& digits) {
  for (size_t j = 0; j < digits.size(); ++j) dst[j] = _mm512_set1_epi64(static_cast<long long>(digits[j]));
}

}  // namespace

bool IfmaModulus::init(mpz_srcptr modulus) {
  const size_t bits = mpz_sizeinbase(modulus, 2);
  digits = (bits + 2 + 51) / 52;  // 4m < R = 2^(52 D)
  m.assign(digits, 0);
  r_mod.assign(digits, 0);
  r2_mod.assign(digits, 0);
  to_digits(modulus, m.data(), digits, 1);
  mpz_t t, two52;
  mpz_inits(t, two52, nullptr);
  mpz_setbit(t, 52 * digits);
  mpz_mod(t, t, modulus);
  to_digits(t, r_mod.data(), digits, 1);
  mpz_set_ui(t, 0);
  mpz_setbit(t, 2 * 52 * digits);
  mpz_mod(t, t, modulus);
  to_digits(t, r2_mod.data(), digits, 1);
  mpz_setbit(two52, 52);
  mpz_invert(t, modulus, two52);
  mpz_sub(t, two52, t);
  k0 = mpz_get_ui(t) & kMask52;
  mpz_clears(t, two52, nullptr);
  return true;
}

bool ifma_cpu_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

void IfmaFixedBase::init(const IfmaModulus& mod, mpz_srcptr modulus, mpz_srcptr base,
                         size_t exp_bits, unsigned w) {
  digits = mod.digits;
  window = w;
  windows = exp_bits ? (exp_bits + w - 1) / w : 1;
  const size_t entries = size_t{1} << w;
  table.assign(windows * entries * digits, 0);
  std::vector<uint64_t> dig(digits);
  mpz_t b, x, t;
  mpz_inits(b, x, t, nullptr);
  mpz_mod(b, base, modulus);
  for (size_t i = 0; i < windows; ++i) {
    uint64_t* row = table.data() + i * entries * digits;
    mpz_set_ui(x, 1);
    for (size_t k = 0; k < entries; ++k) {  // x = b^k, stored as b^k R mod m
      mpz_mul_2exp(t, x, 52 * digits);
      mpz_mod(t, t, modulus);
      to_digits(t, dig.data(), digits, 1);
      for (size_t j = 0; j < digits; ++j) row[j * entries + k] = dig[j];
      mpz_mul(x, x, b);
      mpz_mod(x, x, modulus);
    }
    mpz_swap(b, x);  // b^(2^w): the base of the next window
  }
  mpz_clears(b, x, t, nullptr);
}

namespace {

__attribute__((target("avx512f,avx512ifma")))
void ifma_fixed_powm8_avx512(const IfmaModulus& mod, const IfmaFixedBase& fb,
                             const mpz_srcptr e[8], mpz_ptr out[8]) {
  const size_t D = mod.digits, entries = size_t{1} << fb.window;
  VectorBuffer buf(5 * D);
  __m512i* m = buf.ptr;
  __m512i* acc = m + D;
  __m512i* tmp = acc + D;
  __m512i* scratch = tmp + D;  // D vectors
  broadcast_digits(m, mod.m);
  const __m512i k0 = _mm512_set1_epi64(static_cast<long long>(mod.k0));
  std::vector<uint64_t> win, dig;
  lane_windows(e, kLanes, fb.windows, static_cast<unsigned>(fb.window), win);
  const size_t row_size = entries * D;
  select_shared8(acc, fb.table.data(), entries, D, _mm512_loadu_si512(win.data()));
  for (size_t i = 1; i < fb.windows; ++i) {
    select_shared8(tmp, fb.table.data() + i * row_size, entries, D,
                   _mm512_loadu_si512(win.data() + i * kLanes));
    amm8(acc, acc, tmp, m, k0, D, scratch);
  }
  std::memset(win.data(), 0, win.size() * sizeof(uint64_t));
  leave_montgomery(out, acc, m, k0, D, tmp, scratch, dig);
}

__attribute__((target("avx512f,avx512ifma")))
void ifma_powm8_lanes_avx512(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                             const mpz_srcptr base[8], mpz_ptr out[8]) {
  const size_t D = mod.digits;
  const size_t entries = size_t{1} << kWindow;
  // m, R mod m, R^2 mod m broadcast; x (base), acc, tmp, scratch, table.
  VectorBuffer buf((7 + entries) * D);
  __m512i* m = buf.ptr;
  __m512i* one = m + D;
  __m512i* r2 = one + D;
  __m512i* x = r2 + D;
  __m512i* acc = x + D;
  __m512i* tmp = acc + D;
  __m512i* scratch = tmp + D;  // D vectors
  __m512i* table = scratch + D;
  broadcast_digits(m, mod.m);
  broadcast_digits(one, mod.r_mod);
  broadcast_digits(r2, mod.r2_mod);
  const __m512i k0 = _mm512_set1_epi64(static_cast<long long>(mod.k0));
  std::vector<uint64_t> dig, win;
  load_lanes(x, base, D, dig);

  // table[k] = base^k R mod m (almost reduced).
  for (size_t j = 0; j < D; ++j) table[j] = one[j];
  amm8(table + D, x, r2, m, k0, D, scratch);
  for (size_t k = 2; k < entries; ++k) amm8(table + k * D, table + (k - 1) * D, table + D, m, k0, D, scratch);

  // Fixed windows from the top; the schedule depends on |bits| only.
  const size_t windows = bits ? (bits + kWindow - 1) / kWindow : 1;
  lane_windows(e, kLanes, windows, kWindow, win);
  size_t w = windows - 1;
  select8(acc, table, entries, D, _mm512_loadu_si512(win.data() + w * kLanes));
  while (w > 0) {
    --w;
    for (int s = 0; s < kWindow; ++s) amm8(acc, acc, acc, m, k0, D, scratch);
    select8(tmp, table, entries, D, _mm512_loadu_si512(win.data() + w * kLanes));
    amm8(acc, acc, tmp, m, k0, D, scratch);
  }
  std::memset(win.data(), 0, win.size() * sizeof(uint64_t));
  leave_montgomery(out, acc, m, k0, D, tmp, scratch, dig);
}

}  // namespace

// The 8-lane entry points run on AVX-512 IFMA or, on the avx2 tier, on AVX2
// FMA (fma_montgomery.hpp); both compute the same values.  These two are
// plain functions, so nothing AVX-512 runs before the tier is checked.
void ifma_fixed_powm8(const IfmaModulus& mod, const IfmaFixedBase& fb,
                      const mpz_srcptr e[8], mpz_ptr out[8], size_t live) {
  if (kernel_tier() == Tier::kAvx2) {
    fma_fixed_powm8(mod, fb, e, out, live);
  } else {
    ifma_fixed_powm8_avx512(mod, fb, e, out);
  }
}

void ifma_powm8_lanes(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                      const mpz_srcptr base[8], mpz_ptr out[8], size_t live) {
  if (kernel_tier() == Tier::kAvx2) {
    fma_powm8_lanes(mod, e, bits, base, out, live);
  } else {
    ifma_powm8_lanes_avx512(mod, e, bits, base, out);
  }
}

// ---- Montgomery-form rows ----------------------------------------------------

namespace {

// In-register transpose of 8 x 8 64-bit words: v[l] word t <-> v[t] word l.
__attribute__((target("avx512f,avx512ifma")))
inline void transpose8(__m512i v[8]) {
  const __m512i lo2 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i hi2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  const __m512i lo4 = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
  const __m512i hi4 = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  __m512i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_epi64(v[i], v[i + 1]);      // words 0 2 4 6 of rows i, i+1
    t[i + 1] = _mm512_unpackhi_epi64(v[i], v[i + 1]);  // words 1 3 5 7
  }
  for (int h = 0; h < 8; h += 4) {  // rows h..h+3
    u[h + 0] = _mm512_permutex2var_epi64(t[h], lo2, t[h + 2]);      // words 0, 4
    u[h + 2] = _mm512_permutex2var_epi64(t[h], hi2, t[h + 2]);      // words 2, 6
    u[h + 1] = _mm512_permutex2var_epi64(t[h + 1], lo2, t[h + 3]);  // words 1, 5
    u[h + 3] = _mm512_permutex2var_epi64(t[h + 1], hi2, t[h + 3]);  // words 3, 7
  }
  for (int w = 0; w < 4; ++w) {
    v[w] = _mm512_permutex2var_epi64(u[w], lo4, u[4 + w]);
    v[w + 4] = _mm512_permutex2var_epi64(u[w], hi4, u[4 + w]);
  }
}

// x (D vectors, lane-interleaved digits) = the 8 rows of |limbs| limbs
// (nullptr reads as 0).  limb (limbs + 1 vectors) is scratch.
__attribute__((target("avx512f,avx512ifma")))
void rows_to_lanes(__m512i* x, const uint64_t* const rows[8], size_t limbs, size_t D, __m512i* limb) {
  const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
  const __m512i zero = _mm512_setzero_si512();
  for (size_t b = 0; b < limbs; b += 8) {
    const size_t w = std::min<size_t>(8, limbs - b);
    const __mmask8 keep = static_cast<__mmask8>((1u << w) - 1);
    __m512i v[8];
    for (int l = 0; l < kLanes; ++l) v[l] = rows[l] ? _mm512_maskz_loadu_epi64(keep, rows[l] + b) : zero;
    transpose8(v);
    for (size_t t = 0; t < w; ++t) limb[b + t] = v[t];
  }
  limb[limbs] = zero;
  for (size_t j = 0; j < D; ++j) {
    const size_t bit = j * 52, t = bit / 64, shift = bit % 64;
    if (t >= limbs) {
      x[j] = zero;
      continue;
    }
    __m512i d = _mm512_srl_epi64(limb[t], _mm_cvtsi64_si128(static_cast<long long>(shift)));
    if (shift > 12) d = _mm512_or_si512(d, _mm512_sll_epi64(limb[t + 1], _mm_cvtsi64_si128(static_cast<long long>(64 - shift))));
    x[j] = _mm512_and_si512(d, mask);
  }
}

// The 8 rows of |limbs| limbs (nullptr: not stored) = x, normalized digits
// whose values fit in |limbs| limbs.  limb (limbs + 8 vectors) is scratch.
__attribute__((target("avx512f,avx512ifma")))
void lanes_to_rows(uint64_t* const rows[8], size_t limbs, const __m512i* x, size_t D, __m512i* limb) {
  const __m512i zero = _mm512_setzero_si512();
  for (size_t t = 0; t < limbs; ++t) {
    const size_t bit = t * 64, j = bit / 52, off = bit % 52;
    __m512i v = j < D ? _mm512_srl_epi64(x[j], _mm_cvtsi64_si128(static_cast<long long>(off))) : zero;
    if (j + 1 < D) v = _mm512_or_si512(v, _mm512_sll_epi64(x[j + 1], _mm_cvtsi64_si128(static_cast<long long>(52 - off))));
    if (off > 40 && j + 2 < D) v = _mm512_or_si512(v, _mm512_sll_epi64(x[j + 2], _mm_cvtsi64_si128(static_cast<long long>(104 - off))));
    limb[t] = v;
  }
  for (size_t b = 0; b < limbs; b += 8) {
    const size_t w = std::min<size_t>(8, limbs - b);
    const __mmask8 keep = static_cast<__mmask8>((1u << w) - 1);
    __m512i v[8];
    for (size_t t = 0; t < 8; ++t) v[t] = t < w ? limb[b + t] : zero;
    transpose8(v);
    for (int l = 0; l < kLanes; ++l) {
      if (rows[l]) _mm512_mask_storeu_epi64(rows[l] + b, keep, v[l]);
    }
  }
}

}  // namespace

IfmaRowProduct::IfmaRowProduct(const IfmaModulus& mod, mpz_srcptr corr)
    : mod_(mod), has_corr_(corr != nullptr), buf_(new VectorBuffer(7 * mod.digits + 9)) {
  const size_t D = mod.digits;
  __m512i* v = static_cast<VectorBuffer*>(buf_)->ptr;
  broadcast_digits(v, mod.m);
  if (has_corr_) {
    std::vector<uint64_t> dig(D);
    to_digits(corr, dig.data(), D, 1);
    broadcast_digits(v + 5 * D, dig);
  }
}

IfmaRowProduct::~IfmaRowProduct() { delete static_cast<VectorBuffer*>(buf_); }

__attribute__((target("avx512f,avx512ifma")))
void IfmaRowProduct::run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* const* out) {
  const size_t D = mod_.digits;
  __m512i* m = static_cast<VectorBuffer*>(buf_)->ptr;
  __m512i* acc = m + D;
  __m512i* x = acc + D;
  __m512i* scratch = x + D;
  __m512i* tmp = scratch + D;
  const __m512i* corr = tmp + D;
  __m512i* limb = tmp + 2 * D;  // D + 9 vectors: limbs + 8 <= D + 9 since the rows hold values < R
  const __m512i k0 = _mm512_set1_epi64(static_cast<long long>(mod_.k0));
  rows_to_lanes(acc, rows, limbs, D, limb);
  for (size_t k = 1; k < K; ++k) {
    rows_to_lanes(x, rows + k * kLanes, limbs, D, limb);
    amm8(acc, acc, x, m, k0, D, scratch);
  }
  if (has_corr_) amm8(acc, acc, corr, m, k0, D, scratch);
  cond_sub8(acc, acc, m, D, tmp);
  lanes_to_rows(out, limbs, acc, D, limb);
}

void ifma_powm8(const IfmaModulus& mod, mpz_srcptr e, const mpz_srcptr base[8],
                mpz_ptr out[8], size_t live) {
  const mpz_srcptr es[8] = {e, e, e, e, e, e, e, e};
  ifma_powm8_lanes(mod, es, mpz_sizeinbase(e, 2), base, out, live);
}

#endif  // FP_HAVE_IFMA_BUILD

}  // namespace fp
