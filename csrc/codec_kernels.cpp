#include "codec_kernels.hpp"

#include <gmp.h>

#include <cmath>
#include <cstring>

#include "limb_io.hpp"

namespace fp {

namespace {

inline uint64_t low_mask(unsigned bits) {
  return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

// |x| * 2^-frac_bits rounded to the nearest double (ties to even), with the
// sign of x.  mpz_get_d truncates, so values beyond 53 bits are rounded here
// from their top 54 bits plus a sticky bit.  |tmp| is scratch.
double to_double_scaled(mpz_srcptr x, int frac_bits, mpz_t tmp) {
  const size_t bits = mpz_sizeinbase(x, 2);
  if (mpz_sgn(x) == 0 || bits <= 53) return std::ldexp(mpz_get_d(x), -frac_bits);
  const mp_bitcnt_t shift = bits - 54;
  mpz_abs(tmp, x);
  const bool sticky = mpz_scan1(tmp, 0) < shift;
  mpz_fdiv_q_2exp(tmp, tmp, shift);           // 54 bits
  uint64_t top = mpz_get_ui(tmp);
  const bool half = top & 1;
  top >>= 1;                                   // 53 bits
  if (half && (sticky || (top & 1))) ++top;    // round to nearest, ties to even
  double mag = std::ldexp(static_cast<double>(top), static_cast<int>(shift) + 1 - frac_bits);
  return mpz_sgn(x) < 0 ? -mag : mag;
}

}  // namespace

void encode_signed(const PublicContext& pub, const int64_t* v, size_t count,
                   uint64_t* out) {
  mpz_t x;
  mpz_init(x);
  for (size_t i = 0; i < count; ++i) {
    const int64_t val = v[i];
    if (val >= 0) {
      mpz_set_ui(x, static_cast<unsigned long>(val));
    } else {
      // -(val + 1) + 1 avoids overflow at INT64_MIN.
      mpz_set_ui(x, static_cast<unsigned long>(-(val + 1)) + 1UL);
      mpz_sub(x, pub.n, x);
    }
    store(x, out + i * pub.n_limbs, pub.n_limbs);
  }
  mpz_clear(x);
}

long decode_signed_scaled(const PublicContext& pub, const uint64_t* m,
                          size_t count, const uint64_t* bound,
                          size_t bound_limbs, int frac_bits, double* out) {
  mpz_t half, x, tmp, vb, vm;
  mpz_inits(half, x, tmp, nullptr);
  mpz_fdiv_q_2exp(half, pub.n, 1);
  mpz_srcptr b = view(vb, bound, bound_limbs);
  long bad = -1;
  for (size_t i = 0; i < count; ++i) {
    mpz_srcptr mi = view(vm, m + i * pub.n_limbs, pub.n_limbs);
    if (mpz_cmp(mi, half) > 0) {
      mpz_sub(x, mi, pub.n);
    } else {
      mpz_set(x, mi);
    }
    if (mpz_cmpabs(x, b) > 0) {
      bad = static_cast<long>(i);
      break;
    }
    out[i] = to_double_scaled(x, frac_bits, tmp);
  }
  mpz_clears(half, x, tmp, nullptr);
  return bad;
}

void pack_slots(const uint64_t* u, size_t count, unsigned slot_bits,
                size_t slots, uint64_t pad, uint64_t* out, size_t out_limbs) {
  const size_t rows = (count + slots - 1) / slots;
  std::memset(out, 0, rows * out_limbs * sizeof(uint64_t));
  for (size_t r = 0; r < rows; ++r) {
    uint64_t* row = out + r * out_limbs;
    for (size_t j = 0; j < slots; ++j) {
      const size_t k = r * slots + j;
      const uint64_t val = k < count ? u[k] : pad;
      const size_t bit = j * slot_bits;
      const size_t limb = bit / 64;
      const unsigned shift = static_cast<unsigned>(bit % 64);
      row[limb] |= val << shift;
      if (shift != 0 && shift + slot_bits > 64) row[limb + 1] |= val >> (64 - shift);
    }
  }
}

long unpack_slots(const uint64_t* m, size_t rows, size_t m_limbs,
                  unsigned slot_bits, size_t slots, size_t count,
                  uint64_t* out) {
  const uint64_t mask = low_mask(slot_bits);
  const size_t used_bits = slots * slot_bits;
  for (size_t r = 0; r < rows; ++r) {
    const uint64_t* row = m + r * m_limbs;
    // Bits at or above slots * slot_bits must be clear.
    for (size_t limb = used_bits / 64; limb < m_limbs; ++limb) {
      uint64_t word = row[limb];
      if (limb == used_bits / 64) word &= ~low_mask(static_cast<unsigned>(used_bits % 64));
      if (word) return static_cast<long>(r);
    }
    for (size_t j = 0; j < slots; ++j) {
      const size_t k = r * slots + j;
      if (k >= count) break;
      const size_t bit = j * slot_bits;
      const size_t limb = bit / 64;
      const unsigned shift = static_cast<unsigned>(bit % 64);
      uint64_t val = row[limb] >> shift;
      if (shift != 0 && shift + slot_bits > 64) val |= row[limb + 1] << (64 - shift);
      out[k] = val & mask;
    }
  }
  return -1;
}

}  // namespace fp
