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
// One chunk of kRegs 256-bit words (4 kRegs limbs) of select_entry: the
// chunk's words of every entry are masked and OR-ed into registers, so each
// word of the table costs one load, one AND and one OR, with no load or
// store of dst inside the loop.  dst and row point at the chunk's first
// limb; entries lie |stride| limbs apart.  Reads every entry's chunk in a
// fixed order: constant time in index.
template <int kRegs>
__attribute__((target("avx2"))) inline void select_chunk_avx2(uint64_t* dst, const uint64_t* row,
                                                             size_t entries, size_t stride,
                                                             uint64_t index) {
  __m256i acc[kRegs];
  for (int r = 0; r < kRegs; ++r) acc[r] = _mm256_setzero_si256();
  for (size_t k = 0; k < entries; ++k) {
    const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(ct_eq_mask(k, index)));
    const __m256i* entry = reinterpret_cast<const __m256i*>(row + k * stride);
    for (int r = 0; r < kRegs; ++r)
      acc[r] = _mm256_or_si256(acc[r], _mm256_and_si256(_mm256_loadu_si256(entry + r), mask));
  }
  for (int r = 0; r < kRegs; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst) + r, acc[r]);
}

// select_entry for limbs a multiple of 4: chunks of up to 8 registers
// (32 limbs), each a pass over all entries.  The whole row is read once per
// chunk, every limb of every entry exactly once in all.
__attribute__((target("avx2"))) inline void select_entry_avx2(uint64_t* dst, const uint64_t* row,
                                                             size_t entries, size_t limbs,
                                                             uint64_t index) {
  size_t j = 0;
  for (; j + 32 <= limbs; j += 32) select_chunk_avx2<8>(dst + j, row + j, entries, limbs, index);
  switch ((limbs - j) / 4) {
    case 7: select_chunk_avx2<7>(dst + j, row + j, entries, limbs, index); break;
    case 6: select_chunk_avx2<6>(dst + j, row + j, entries, limbs, index); break;
    case 5: select_chunk_avx2<5>(dst + j, row + j, entries, limbs, index); break;
    case 4: select_chunk_avx2<4>(dst + j, row + j, entries, limbs, index); break;
    case 3: select_chunk_avx2<3>(dst + j, row + j, entries, limbs, index); break;
    case 2: select_chunk_avx2<2>(dst + j, row + j, entries, limbs, index); break;
    case 1: select_chunk_avx2<1>(dst + j, row + j, entries, limbs, index); break;
    default: break;
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
