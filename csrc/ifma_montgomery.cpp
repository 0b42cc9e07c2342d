#include "ifma_montgomery.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FP_NO_IFMA)
#include <immintrin.h>
#define FP_HAVE_IFMA_BUILD 1
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace fp {

#ifndef FP_HAVE_IFMA_BUILD
// Other architectures: the IFMA path does not exist; ifma_powm8 is never called.
bool IfmaModulus::init(mpz_srcptr) { return false; }
bool ifma_enabled() { return false; }
void set_ifma_enabled(bool) {}
void ifma_powm8(const IfmaModulus&, mpz_srcptr, const mpz_srcptr[8], mpz_ptr[8]) { std::abort(); }
#else

namespace {

constexpr int kLanes = 8;
constexpr int kWindow = 5;
constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;

std::atomic<int> g_ifma_state{-1};  // -1 unknown, 0 off, 1 on

bool cpu_has_ifma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

// Writes the D radix-2^52 digits of non-negative x (which must fit) to
// out[j * stride].
void to_digits(mpz_srcptr x, uint64_t* out, size_t digits, size_t stride) {
  const size_t limbs = mpz_size(x);
  const mp_limb_t* d = mpz_limbs_read(x);
  for (size_t j = 0; j < digits; ++j) {
    const size_t bit = j * 52, limb = bit / 64, shift = bit % 64;
    uint64_t v = limb < limbs ? d[limb] >> shift : 0;
    if (shift > 12 && limb + 1 < limbs) v |= d[limb + 1] << (64 - shift);
    out[j * stride] = v & kMask52;
  }
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

// r = a b R^-1 mod m, almost reduced: a, b < 2m gives r < 2m.  Eight lanes.
// r may alias a or b.  acc has room for D + 1 vectors.  Fixed sequence of
// operations: constant time.
__attribute__((target("avx512f,avx512ifma")))
void amm8(__m512i* r, const __m512i* a, const __m512i* b, const __m512i* m,
          __m512i k0, size_t D, __m512i* acc) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
  for (size_t j = 0; j <= D; ++j) acc[j] = zero;
  for (size_t i = 0; i < D; ++i) {
    const __m512i bi = b[i];
    for (size_t j = 0; j < D; ++j) {
      acc[j] = _mm512_madd52lo_epu64(acc[j], a[j], bi);
      acc[j + 1] = _mm512_madd52hi_epu64(acc[j + 1], a[j], bi);
    }
    const __m512i u = _mm512_and_si512(_mm512_madd52lo_epu64(zero, acc[0], k0), mask);
    for (size_t j = 0; j < D; ++j) {
      acc[j] = _mm512_madd52lo_epu64(acc[j], m[j], u);
      acc[j + 1] = _mm512_madd52hi_epu64(acc[j + 1], m[j], u);
    }
    // acc[0] is now 0 mod 2^52: carry its high part and shift down a digit.
    acc[1] = _mm512_add_epi64(acc[1], _mm512_srli_epi64(acc[0], 52));
    for (size_t j = 0; j < D; ++j) acc[j] = acc[j + 1];
    acc[D] = zero;
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

// dst = table[index] by scanning every entry (constant time in index).
__attribute__((target("avx512f,avx512ifma")))
void select8(__m512i* dst, const __m512i* table, size_t entries, size_t D,
             uint64_t index) {
  const __m512i want = _mm512_set1_epi64(static_cast<long long>(index));
  for (size_t j = 0; j < D; ++j) dst[j] = _mm512_setzero_si512();
  for (size_t k = 0; k < entries; ++k) {
    const __mmask8 hit = _mm512_cmpeq_epi64_mask(
        _mm512_set1_epi64(static_cast<long long>(k)), want);
    const __m512i* row = table + k * D;
    for (size_t j = 0; j < D; ++j) dst[j] = _mm512_mask_mov_epi64(dst[j], hit, row[j]);
  }
}

uint64_t window_at(mpz_srcptr e, size_t low_bit, int width) {
  uint64_t v = 0;
  for (int b = width - 1; b >= 0; --b) v = (v << 1) | mpz_tstbit(e, low_bit + static_cast<size_t>(b));
  return v;
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

bool ifma_enabled() {
  int state = g_ifma_state.load();
  if (state < 0) {
    state = cpu_has_ifma() && std::getenv("FASTPAILLIER_DISABLE_IFMA") == nullptr ? 1 : 0;
    g_ifma_state.store(state);
  }
  return state == 1;
}

void set_ifma_enabled(bool on) {
  g_ifma_state.store(on && cpu_has_ifma() ? 1 : 0);
}

__attribute__((target("avx512f,avx512ifma")))
void ifma_powm8(const IfmaModulus& mod, mpz_srcptr e, const mpz_srcptr base[8],
                mpz_ptr out[8]) {
  const size_t D = mod.digits;
  const size_t entries = size_t{1} << kWindow;
  // Scratch: m, R mod m, R^2 mod m broadcast; x (base), acc, tmp, table.
  const size_t vectors = (6 + entries) * D + D + 1;
  struct Free { void operator()(void* q) const { std::free(q); } };
  std::unique_ptr<void, Free> buf(std::aligned_alloc(64, vectors * sizeof(__m512i)));
  if (!buf) std::abort();
  __m512i* m = static_cast<__m512i*>(buf.get());
  __m512i* one = m + D;
  __m512i* r2 = one + D;
  __m512i* x = r2 + D;
  __m512i* acc = x + D;
  __m512i* tmp = acc + D;
  __m512i* table = tmp + D;
  __m512i* scratch = table + entries * D;  // D + 1 vectors
  for (size_t j = 0; j < D; ++j) {
    m[j] = _mm512_set1_epi64(static_cast<long long>(mod.m[j]));
    one[j] = _mm512_set1_epi64(static_cast<long long>(mod.r_mod[j]));
    r2[j] = _mm512_set1_epi64(static_cast<long long>(mod.r2_mod[j]));
  }
  const __m512i k0 = _mm512_set1_epi64(static_cast<long long>(mod.k0));
  std::vector<uint64_t> dig(D * kLanes);
  for (int l = 0; l < kLanes; ++l) to_digits(base[l], dig.data() + l, D, kLanes);
  for (size_t j = 0; j < D; ++j) x[j] = _mm512_loadu_si512(dig.data() + j * kLanes);

  // table[k] = base^k R mod m (almost reduced).
  for (size_t j = 0; j < D; ++j) table[j] = one[j];
  amm8(table + D, x, r2, m, k0, D, scratch);
  for (size_t k = 2; k < entries; ++k) amm8(table + k * D, table + (k - 1) * D, table + D, m, k0, D, scratch);

  // Fixed windows from the top; the schedule depends on bit_length(e) only.
  const size_t bits = mpz_sizeinbase(e, 2);
  const size_t windows = (bits + kWindow - 1) / kWindow;
  size_t low = (windows - 1) * kWindow;
  select8(acc, table, entries, D, window_at(e, low, kWindow));
  while (low > 0) {
    low -= kWindow;
    for (int s = 0; s < kWindow; ++s) amm8(acc, acc, acc, m, k0, D, scratch);
    select8(tmp, table, entries, D, window_at(e, low, kWindow));
    amm8(acc, acc, tmp, m, k0, D, scratch);
  }
  // Leave Montgomery form (multiply by 1), then reduce fully below m.
  for (size_t j = 0; j < D; ++j) tmp[j] = _mm512_setzero_si512();
  tmp[0] = _mm512_set1_epi64(1);
  amm8(acc, acc, tmp, m, k0, D, scratch);
  cond_sub8(acc, acc, m, D, tmp);
  for (size_t j = 0; j < D; ++j) _mm512_storeu_si512(dig.data() + j * kLanes, acc[j]);
  for (int l = 0; l < kLanes; ++l) from_digits(out[l], dig.data() + l, D, kLanes);
}

#endif  // FP_HAVE_IFMA_BUILD

}  // namespace fp
