// Constant-time table reads shared by the exponentiation kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FP_HAVE_AVX2_SELECT 1
#endif

namespace fp {

// All ones when a == b, else 0, without a branch.
inline uint64_t ct_eq_mask(uint64_t a, uint64_t b) {
  const uint64_t x = a ^ b;
  return ((x | (0 - x)) >> 63) - 1;
}

#ifdef FP_HAVE_AVX2_SELECT
// select_entry for limbs a multiple of 4, 256 bits at a time, entries in
// memory order (sequential reads of the whole row).
__attribute__((target("avx2"))) inline void select_entry_avx2(uint64_t* dst, const uint64_t* row,
                                                             size_t entries, size_t limbs,
                                                             uint64_t index) {
  std::memset(dst, 0, limbs * sizeof(uint64_t));
  for (size_t k = 0; k < entries; ++k) {
    const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(ct_eq_mask(k, index)));
    const uint64_t* entry = row + k * limbs;
    for (size_t j = 0; j < limbs; j += 4) {
      __m256i* d = reinterpret_cast<__m256i*>(dst + j);
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(entry + j));
      _mm256_storeu_si256(d, _mm256_or_si256(_mm256_loadu_si256(d), _mm256_and_si256(v, mask)));
    }
  }
}

inline bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}
#endif

// dst (limbs) = entry |index| of a row of |entries| entries of |limbs| limbs
// each.  Reads every limb of every entry in a fixed order: constant time in
// index.  dst must not overlap the row.
inline void select_entry(uint64_t* dst, const uint64_t* row, size_t entries, size_t limbs,
                         uint64_t index) {
#ifdef FP_HAVE_AVX2_SELECT
  if (limbs % 4 == 0 && cpu_has_avx2()) {
    select_entry_avx2(dst, row, entries, limbs, index);
    return;
  }
#endif
  std::memset(dst, 0, limbs * sizeof(uint64_t));
  for (size_t k = 0; k < entries; ++k) {
    const uint64_t mask = ct_eq_mask(k, index);
    const uint64_t* entry = row + k * limbs;
    for (size_t j = 0; j < limbs; ++j) dst[j] |= entry[j] & mask;
  }
}

// Overwrites |count| limbs with zeros in a way the compiler keeps (secrets).
inline void wipe(uint64_t* p, size_t count) {
  volatile uint64_t* v = p;
  for (size_t i = 0; i < count; ++i) v[i] = 0;
}

}  // namespace fp
