// Constant-time table reads shared by the exponentiation kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fp {

// All ones when a == b, else 0, without a branch.
inline uint64_t ct_eq_mask(uint64_t a, uint64_t b) {
  const uint64_t x = a ^ b;
  return ((x | (0 - x)) >> 63) - 1;
}

// dst (limbs) = entry |index| of a row of |entries| entries of |limbs| limbs
// each.  Reads every limb of every entry in a fixed order: constant time in
// index.  dst must not overlap the row.
inline void select_entry(uint64_t* dst, const uint64_t* row, size_t entries, size_t limbs,
                         uint64_t index) {
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
