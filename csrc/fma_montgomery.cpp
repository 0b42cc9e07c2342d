#include "fma_montgomery.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FP_NO_IFMA)
#include <immintrin.h>
#define FP_HAVE_FMA_BUILD 1
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ct_select.hpp"
#include "limb_io.hpp"

namespace fp {

#ifndef FP_HAVE_FMA_BUILD
// Other architectures: the avx2 tier does not exist; nothing here is called.
bool fma_cpu_supported() { return false; }
void fma_powm8_lanes(const IfmaModulus&, const mpz_srcptr[8], size_t, const mpz_srcptr[8], mpz_ptr[8], size_t) {
  std::abort();
}
void fma_fixed_powm8(const IfmaModulus&, const IfmaFixedBase&, const mpz_srcptr[8], mpz_ptr[8], size_t) {
  std::abort();
}
FmaRowProduct::FmaRowProduct(const IfmaModulus& mod, mpz_srcptr) : mod_(mod), has_corr_(false), buf_(nullptr) {}
FmaRowProduct::~FmaRowProduct() {}
void FmaRowProduct::run(const uint64_t* const*, size_t, size_t, uint64_t* const*) { std::abort(); }
#else

namespace {

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;
constexpr uint64_t kBits104 = 0x4670000000000000ull;  // bit pattern of 2^104
constexpr uint64_t kBits52 = 0x4330000000000000ull;   // bit pattern of 2^52
constexpr int kLanes = 4;
constexpr int kWindow = 5;

// Sets MXCSR to round toward zero for its scope (the digit split needs it)
// and restores the caller's mode.  Per thread, as MXCSR is.
struct RoundTowardZero {
  RoundTowardZero() : saved(_mm_getcsr()) { _mm_setcsr((saved & ~0x6000u) | 0x6000u); }
  ~RoundTowardZero() { _mm_setcsr(saved); }
  RoundTowardZero(const RoundTowardZero&) = delete;
  RoundTowardZero& operator=(const RoundTowardZero&) = delete;
  unsigned saved;
};

// 32-byte aligned scratch of |vectors| 256-bit vectors, wiped (it holds
// secret intermediate values) and freed on scope exit.
struct Buffer {
  explicit Buffer(size_t vectors)
      : ptr(std::aligned_alloc(32, vectors * 32)), words(vectors * 4) {
    if (!ptr) std::abort();
  }
  ~Buffer() {
    wipe(static_cast<uint64_t*>(ptr), words);
    std::free(ptr);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  __m256d* d(size_t at) const { return static_cast<__m256d*>(ptr) + at; }
  __m256i* i(size_t at) const { return static_cast<__m256i*>(ptr) + at; }
  void* ptr;
  size_t words;
};

// Digits of non-negative x (which must fit in D digits) as doubles at
// out[j * 4] (one lane of a lane-interleaved vector array).
void to_lane(mpz_srcptr x, double* out, size_t digits) {
  const uint64_t* d = reinterpret_cast<const uint64_t*>(mpz_limbs_read(x));
  for (size_t j = 0; j < digits; ++j) out[j * kLanes] = static_cast<double>(radix52_digit(d, mpz_size(x), j));
}

// The limbs of one lane of normalized double digits (value below 2^(64
// limbs)) into row[0, limbs).
void lane_to_row(uint64_t* row, size_t limbs, const double* x, size_t D) {
  for (size_t t = 0; t < limbs; ++t) {
    const size_t bit = t * 64, j = bit / 52, off = bit % 52;
    uint64_t v = j < D ? static_cast<uint64_t>(x[j * kLanes]) >> off : 0;
    if (j + 1 < D) v |= static_cast<uint64_t>(x[(j + 1) * kLanes]) << (52 - off);
    if (off > 40 && j + 2 < D) v |= static_cast<uint64_t>(x[(j + 2) * kLanes]) << (104 - off);
    row[t] = v;
  }
}

// One lane of a limb row (|limbs| limbs, nullptr reads as 0) as double digits.
void row_to_lane(double* x, const uint64_t* row, size_t limbs, size_t D) {
  for (size_t j = 0; j < D; ++j) x[j * kLanes] = row ? static_cast<double>(radix52_digit(row, limbs, j)) : 0.0;
}

// x = sum of the lane's integer digits in[j * 4] 2^(52 j).
void from_lane(mpz_ptr x, const double* in, size_t digits) {
  const size_t limbs = (digits * 52 + 63) / 64;
  mp_limb_t* d = mpz_limbs_write(x, static_cast<mp_size_t>(limbs));
  lane_to_row(reinterpret_cast<uint64_t*>(d), limbs, in, digits);
  mp_size_t n = static_cast<mp_size_t>(limbs);
  while (n > 0 && d[n - 1] == 0) --n;
  mpz_limbs_finish(x, n);
}

// Exact integer value of each lane (a double digit below 2^52).
__attribute__((target("avx2,fma"))) inline __m256i to_int(__m256d d) {
  const __m256d two52 = _mm256_castsi256_pd(_mm256_set1_epi64x(kBits52));
  return _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(d, two52)), _mm256_castpd_si256(two52));
}

// The double of each lane's integer below 2^52.
__attribute__((target("avx2,fma"))) inline __m256d to_double(__m256i v) {
  const __m256i bits52 = _mm256_set1_epi64x(kBits52);
  return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(v, bits52)), _mm256_castsi256_pd(bits52));
}

// hi, lo = bit patterns of 2^104 + floor(a b / 2^52) 2^52 and 2^52 + (a b
// mod 2^52), for digits a, b < 2^52 as doubles.  Round toward zero must be
// active.
#define FP_SPLIT(a, b, HI, LO)                                        \
  do {                                                                \
    const __m256d h_ = _mm256_fmadd_pd((a), (b), c104);               \
    const __m256d l_ = _mm256_fmadd_pd((a), (b), _mm256_sub_pd(c104_52, h_)); \
    HI = _mm256_castpd_si256(h_);                                     \
    LO = _mm256_castpd_si256(l_);                                     \
  } while (0)

// r = a b R^-1 mod m, almost reduced: a, b < 2m gives r < 2m (4m < R).  Four
// lanes, digits as doubles.  r may alias a or b.  acc: D integer vectors of
// scratch.  Round toward zero must be active.  Fixed instruction sequence:
// constant time.
//
// As amm8 on the ifma tier: one pass per digit b[i] adds a b[i] + m u (u
// making the lowest digit 0 mod 2^52) and shifts the accumulator down one
// digit in the same sweep.  Each column adds two low and two high halves per
// pass (each below 2^52, plus the constant bit patterns taken off again in
// one subtraction), so digits stay below 4 D 2^52 + 2^52 < 2^63 for D <= 256.
__attribute__((target("avx2,fma"), noinline))
void amm4(__m256d* r, const __m256d* a, const __m256d* b, const __m256d* m, __m256d k0,
          size_t D, __m256i* acc) {
  const __m256d c104 = _mm256_castsi256_pd(_mm256_set1_epi64x(kBits104));
  const __m256d c104_52 = _mm256_castsi256_pd(_mm256_set1_epi64x(kBits104 + 1));  // 2^104 + 2^52
  const __m256d two52 = _mm256_castsi256_pd(_mm256_set1_epi64x(kBits52));
  const __m256i mask = _mm256_set1_epi64x(kMask52);
  const __m256i bits52 = _mm256_set1_epi64x(kBits52);
  const __m256i off_col = _mm256_set1_epi64x(2 * kBits52 + 2 * kBits104);
  const __m256i off_top = _mm256_set1_epi64x(2 * kBits104);
  const __m256i zero = _mm256_setzero_si256();
  for (size_t j = 0; j < D; ++j) acc[j] = zero;
  for (size_t i = 0; i < D; ++i) {
    const __m256d bi = b[i];
    __m256i hab, lab, hmu, lmu, hu, lu;
    FP_SPLIT(a[0], bi, hab, lab);
    __m256i x = _mm256_add_epi64(acc[0], _mm256_sub_epi64(lab, bits52));
    const __m256d xd = to_double(_mm256_and_si256(x, mask));
    FP_SPLIT(xd, k0, hu, lu);  // lu = 2^52 + u, u = x k0 mod 2^52
    (void)hu;
    const __m256d u = _mm256_sub_pd(_mm256_castsi256_pd(lu), two52);
    FP_SPLIT(m[0], u, hmu, lmu);
    x = _mm256_add_epi64(x, _mm256_sub_epi64(lmu, bits52));  // now 0 mod 2^52
    __m256i carry = _mm256_srli_epi64(x, 52);
    __m256i high = _mm256_add_epi64(hab, hmu);  // the two high halves of column 1
    for (size_t j = 1; j < D; ++j) {
      __m256i h1, l1, h2, l2;
      FP_SPLIT(a[j], bi, h1, l1);
      FP_SPLIT(m[j], u, h2, l2);
      __m256i y = _mm256_add_epi64(acc[j], carry);
      y = _mm256_add_epi64(y, _mm256_add_epi64(l1, l2));
      y = _mm256_add_epi64(y, _mm256_sub_epi64(high, off_col));
      acc[j - 1] = y;
      high = _mm256_add_epi64(h1, h2);
      carry = zero;
    }
    acc[D - 1] = _mm256_add_epi64(_mm256_sub_epi64(high, off_top), carry);  // carry: D = 1 only
  }
  // Normalize to 52-bit digits.  r < 2m < R: nothing carries out of D.
  __m256i carry = zero;
  for (size_t j = 0; j < D; ++j) {
    const __m256i v = _mm256_add_epi64(acc[j], carry);
    r[j] = to_double(_mm256_and_si256(v, mask));
    carry = _mm256_srli_epi64(v, 52);
  }
}
#undef FP_SPLIT

// r = x - m if x >= m else x, per lane, in constant time.  x < 2m.  tmp: D
// integer vectors.  r may alias x.
__attribute__((target("avx2,fma")))
void cond_sub4(__m256d* r, const __m256d* x, const __m256d* m, size_t D, __m256i* tmp) {
  const __m256i mask = _mm256_set1_epi64x(kMask52);
  __m256i borrow = _mm256_setzero_si256();
  for (size_t j = 0; j < D; ++j) {
    const __m256i v = _mm256_sub_epi64(_mm256_sub_epi64(to_int(x[j]), to_int(m[j])), borrow);
    tmp[j] = _mm256_and_si256(v, mask);
    borrow = _mm256_srli_epi64(v, 63);  // 1 when the digit went negative
  }
  // All ones in the lanes where x < m (keep x).
  const __m256d keep_x = _mm256_castsi256_pd(_mm256_sub_epi64(_mm256_setzero_si256(), borrow));
  for (size_t j = 0; j < D; ++j) r[j] = _mm256_blendv_pd(to_double(tmp[j]), x[j], keep_x);
}

// hit[k] = all ones in the lanes whose index is k, for k < entries (<= 256).
__attribute__((target("avx2,fma")))
void lane_hits(__m256i* hit, size_t entries, __m256i index) {
  for (size_t k = 0; k < entries; ++k) {
    hit[k] = _mm256_cmpeq_epi64(_mm256_set1_epi64x(static_cast<long long>(k)), index);
  }
}

// dst lane l = table[index[l]] of a lane-interleaved table (entries x D
// vectors), scanning every entry with a mask: constant time in index.
__attribute__((target("avx2,fma")))
void select4(__m256d* dst, const __m256d* table, size_t entries, size_t D, __m256i index) {
  __m256i hit[1 << 8];
  lane_hits(hit, entries, index);
  for (size_t j = 0; j < D; ++j) {
    __m256i v = _mm256_setzero_si256();
    for (size_t k = 0; k < entries; ++k) {
      v = _mm256_or_si256(v, _mm256_and_si256(_mm256_castpd_si256(table[k * D + j]), hit[k]));
    }
    dst[j] = _mm256_castsi256_pd(v);
  }
}

// dst lane l = entry index[l] of one comb row shared by all lanes, stored
// digit-major as integers (row[j * entries + k] = digit j of entry k).  Every
// entry is read for every lane: constant time in index.
__attribute__((target("avx2,fma")))
void select_shared4(__m256d* dst, const uint64_t* row, size_t entries, size_t D, __m256i index) {
  __m256i hit[1 << 8];
  lane_hits(hit, entries, index);
  for (size_t j = 0; j < D; ++j) {
    const uint64_t* col = row + j * entries;
    __m256i v = _mm256_setzero_si256();
    for (size_t k = 0; k < entries; ++k) {
      v = _mm256_or_si256(v, _mm256_and_si256(_mm256_set1_epi64x(static_cast<long long>(col[k])), hit[k]));
    }
    dst[j] = to_double(v);
  }
}

__attribute__((target("avx2,fma")))
void broadcast_digits(__m256d* dst, const std::vector<uint64_t>& digits) {
  for (size_t j = 0; j < digits.size(); ++j) dst[j] = _mm256_set1_pd(static_cast<double>(digits[j]));
}

__attribute__((target("avx2,fma"))) inline __m256i load_index(const uint64_t* w) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
}

// out[l] = acc lane l / R mod m, fully reduced.  acc is clobbered; one: D
// vectors of scratch; ints: D integer vectors.
__attribute__((target("avx2,fma")))
void leave_montgomery(mpz_ptr out[4], __m256d* acc, const __m256d* m, __m256d k0, size_t D,
                      __m256d* one, __m256i* ints) {
  for (size_t j = 0; j < D; ++j) one[j] = _mm256_setzero_pd();
  one[0] = _mm256_set1_pd(1.0);
  amm4(acc, acc, one, m, k0, D, ints);
  cond_sub4(acc, acc, m, D, ints);
  for (int l = 0; l < kLanes; ++l) from_lane(out[l], reinterpret_cast<const double*>(acc) + l, D);
}

// Four lanes of fma_powm8_lanes.  Round toward zero must be active.
__attribute__((target("avx2,fma")))
void powm4_lanes(const IfmaModulus& mod, const mpz_srcptr e[4], size_t bits, const mpz_srcptr base[4],
                 mpz_ptr out[4]) {
  const size_t D = mod.digits;
  const size_t entries = size_t{1} << kWindow;
  Buffer buf((6 + entries) * D);
  __m256d* m = buf.d(0);
  __m256d* r2 = m + D;
  __m256d* x = r2 + D;
  __m256d* acc = x + D;
  __m256d* tmp = acc + D;
  __m256i* ints = buf.i(5 * D);
  __m256d* table = buf.d(6 * D);
  broadcast_digits(m, mod.m);
  broadcast_digits(r2, mod.r2_mod);
  broadcast_digits(table, mod.r_mod);  // table[0] = R mod m
  const __m256d k0 = _mm256_set1_pd(static_cast<double>(mod.k0));
  for (int l = 0; l < kLanes; ++l) to_lane(base[l], reinterpret_cast<double*>(x) + l, D);

  // table[k] = base^k R mod m (almost reduced).
  amm4(table + D, x, r2, m, k0, D, ints);
  for (size_t k = 2; k < entries; ++k) amm4(table + k * D, table + (k - 1) * D, table + D, m, k0, D, ints);

  // Fixed windows from the top; the schedule depends on |bits| only.
  const size_t windows = bits ? (bits + kWindow - 1) / kWindow : 1;
  std::vector<uint64_t> win;
  lane_windows(e, kLanes, windows, kWindow, win);
  size_t w = windows - 1;
  select4(acc, table, entries, D, load_index(win.data() + w * kLanes));
  while (w > 0) {
    --w;
    for (int s = 0; s < kWindow; ++s) amm4(acc, acc, acc, m, k0, D, ints);
    select4(tmp, table, entries, D, load_index(win.data() + w * kLanes));
    amm4(acc, acc, tmp, m, k0, D, ints);
  }
  std::memset(win.data(), 0, win.size() * sizeof(uint64_t));
  leave_montgomery(out, acc, m, k0, D, tmp, ints);
}

// Four lanes of fma_fixed_powm8.  Round toward zero must be active.
__attribute__((target("avx2,fma")))
void fixed_powm4(const IfmaModulus& mod, const IfmaFixedBase& fb, const mpz_srcptr e[4], mpz_ptr out[4]) {
  const size_t D = mod.digits, entries = size_t{1} << fb.window;
  Buffer buf(4 * D);
  __m256d* m = buf.d(0);
  __m256d* acc = m + D;
  __m256d* tmp = acc + D;
  __m256i* ints = buf.i(3 * D);
  broadcast_digits(m, mod.m);
  const __m256d k0 = _mm256_set1_pd(static_cast<double>(mod.k0));
  std::vector<uint64_t> win;
  lane_windows(e, kLanes, fb.windows, static_cast<unsigned>(fb.window), win);
  const size_t row_size = entries * D;
  select_shared4(acc, fb.table.data(), entries, D, load_index(win.data()));
  for (size_t i = 1; i < fb.windows; ++i) {
    select_shared4(tmp, fb.table.data() + i * row_size, entries, D, load_index(win.data() + i * kLanes));
    amm4(acc, acc, tmp, m, k0, D, ints);
  }
  std::memset(win.data(), 0, win.size() * sizeof(uint64_t));
  leave_montgomery(out, acc, m, k0, D, tmp, ints);
}

}  // namespace

bool fma_cpu_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void fma_powm8_lanes(const IfmaModulus& mod, const mpz_srcptr e[8], size_t bits,
                     const mpz_srcptr base[8], mpz_ptr out[8], size_t live) {
  RoundTowardZero rz;
  powm4_lanes(mod, e, bits, base, out);
  if (live > 4) powm4_lanes(mod, e + 4, bits, base + 4, out + 4);
}

void fma_fixed_powm8(const IfmaModulus& mod, const IfmaFixedBase& table, const mpz_srcptr e[8],
                     mpz_ptr out[8], size_t live) {
  RoundTowardZero rz;
  fixed_powm4(mod, table, e, out);
  if (live > 4) fixed_powm4(mod, table, e + 4, out + 4);
}

// Buffer layout: m, acc, x, corr (D vectors each, doubles), ints (D).
FmaRowProduct::FmaRowProduct(const IfmaModulus& mod, mpz_srcptr corr)
    : mod_(mod), has_corr_(corr != nullptr), buf_(new Buffer(5 * mod.digits)) {
  const size_t D = mod.digits;
  Buffer* b = static_cast<Buffer*>(buf_);
  broadcast_digits(b->d(0), mod.m);
  if (has_corr_) {
    for (int l = 0; l < kLanes; ++l) to_lane(corr, reinterpret_cast<double*>(b->d(3 * D)) + l, D);
  }
}

FmaRowProduct::~FmaRowProduct() { delete static_cast<Buffer*>(buf_); }

__attribute__((target("avx2,fma")))
void FmaRowProduct::run(const uint64_t* const* rows, size_t K, size_t limbs, uint64_t* const* out) {
  const size_t D = mod_.digits;
  Buffer* b = static_cast<Buffer*>(buf_);
  const __m256d* m = b->d(0);
  __m256d* acc = b->d(D);
  __m256d* x = b->d(2 * D);
  const __m256d* corr = b->d(3 * D);
  __m256i* ints = b->i(4 * D);
  const __m256d k0 = _mm256_set1_pd(static_cast<double>(mod_.k0));
  RoundTowardZero rz;
  for (int half = 0; half < 2; ++half) {
    const size_t l0 = static_cast<size_t>(half) * kLanes;
    if (half == 1 && !rows[4] && !rows[5] && !rows[6] && !rows[7]) break;  // dead lanes: skip
    for (int l = 0; l < kLanes; ++l) row_to_lane(reinterpret_cast<double*>(acc) + l, rows[l0 + l], limbs, D);
    for (size_t k = 1; k < K; ++k) {
      for (int l = 0; l < kLanes; ++l) {
        row_to_lane(reinterpret_cast<double*>(x) + l, rows[k * 8 + l0 + l], limbs, D);
      }
      amm4(acc, acc, x, m, k0, D, ints);
    }
    if (has_corr_) amm4(acc, acc, corr, m, k0, D, ints);
    cond_sub4(acc, acc, m, D, ints);
    for (int l = 0; l < kLanes; ++l) {
      if (out[l0 + l]) lane_to_row(out[l0 + l], limbs, reinterpret_cast<const double*>(acc) + l, D);
    }
  }
}

#endif  // FP_HAVE_FMA_BUILD

}  // namespace fp
