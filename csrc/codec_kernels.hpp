// Integer kernels behind the fixed-point and packed codecs.
//
// Same conventions as paillier_core.hpp: little-endian uint64 limb rows,
// read-only inputs, no aliasing between |out| and inputs unless stated.
// None of these touch secret keys; all are variable time in their data
// (the data are plaintexts held by the party that encodes them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "paillier_core.hpp"

namespace fp {

// out[i] (pub.n_limbs limbs) = v[i] mod n, i.e. v for v >= 0 and n - |v| for
// v < 0.  The caller guarantees |v[i]| < n / 2.
void encode_signed(const PublicContext& pub, const int64_t* v, size_t count,
                   uint64_t* out);

// Reads rows m[i] < n as signed values (m > n/2 means m - n), checks
// |value| <= bound (|bound_limbs| limbs) and writes value * 2^-frac_bits as a
// double (exact when |value| < 2^53, otherwise rounded to nearest, ties
// to even).
// Returns the first row outside the bound, or -1; |out| is then incomplete.
long decode_signed_scaled(const PublicContext& pub, const uint64_t* m,
                          size_t count, const uint64_t* bound,
                          size_t bound_limbs, int frac_bits, double* out);

// Packs |count| slot values u[k] < 2^slot_bits into ceil(count / slots) rows
// of |out_limbs| limbs: value k goes to row k / slots at bit
// (k % slots) * slot_bits.  Missing values of the last row are |pad|.
// 1 <= slot_bits <= 64 and slots * slot_bits <= 64 * out_limbs.
void pack_slots(const uint64_t* u, size_t count, unsigned slot_bits,
                size_t slots, uint64_t pad, uint64_t* out, size_t out_limbs);

// Inverse of pack_slots: out[k] = bits [(k % slots) * slot_bits, +slot_bits)
// of row k / slots, for k < count.  Returns the first row having a set bit at
// or above slots * slot_bits (it cannot come from pack_slots), or -1.
long unpack_slots(const uint64_t* m, size_t rows, size_t m_limbs,
                  unsigned slot_bits, size_t slots, size_t count,
                  uint64_t* out);

}  // namespace fp
