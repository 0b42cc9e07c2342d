// Moving integers between uint64 limb rows and GMP mpz values.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace fp {

static_assert(sizeof(mp_limb_t) == sizeof(uint64_t), "GMP must use 64-bit limbs");
static_assert(GMP_NUMB_BITS == 64, "GMP must use 64-bit limbs without nails");

// Read-only mpz view of a row of |limbs| little-endian limbs; no copy, no
// allocation.  The view lives as long as |row| and must not be written.
// Leading zero limbs are stripped by mpz_roinit_n.
inline mpz_srcptr view(mpz_t v, const uint64_t* row, size_t limbs) {
  return mpz_roinit_n(v, reinterpret_cast<const mp_limb_t*>(row),
                      static_cast<mp_size_t>(limbs));
}

// Writes non-negative |x| into |limbs| limbs, zero padded.  Every caller
// reduces x below a modulus that fits, so an oversize x is a logic error
// and aborts rather than truncating.  Variable time in the size of x.
inline void store(mpz_srcptr x, uint64_t* out, size_t limbs) {
  const size_t size = mpz_size(x);
  if (size > limbs) std::abort();
  if (size) std::memcpy(out, mpz_limbs_read(x), size * sizeof(uint64_t));
  if (limbs > size) std::memset(out + size, 0, (limbs - size) * sizeof(uint64_t));
}

// Bits [low, low + width) of the little-endian limb array x of |limbs|
// limbs (zero beyond it), width <= 32.  Branches on positions only, never on
// the value, so secret exponents padded to a fixed limb count (with store)
// are read in constant time.
inline uint64_t bits_at(const uint64_t* x, size_t limbs, size_t low, unsigned width) {
  const size_t limb = low / 64, shift = low % 64;
  uint64_t v = limb < limbs ? x[limb] >> shift : 0;
  if (shift + width > 64 && limb + 1 < limbs) v |= x[limb + 1] << (64 - shift);
  return v & ((uint64_t{1} << width) - 1);
}

// Digit j (bits [52 j, 52 j + 52)) of the little-endian limb array x of
// |limbs| limbs, zero beyond it: the radix-2^52 digits of the ifma and avx2
// tiers.  Branches on positions only.
inline uint64_t radix52_digit(const uint64_t* x, size_t limbs, size_t j) {
  const size_t bit = j * 52, limb = bit / 64, shift = bit % 64;
  uint64_t v = limb < limbs ? x[limb] >> shift : 0;
  if (shift > 12 && limb + 1 < limbs) v |= x[limb + 1] << (64 - shift);
  return v & ((uint64_t{1} << 52) - 1);
}

// Exponent windows of |lanes| lane-interleaved exponents: out[w * lanes + l]
// = bits [w width, w width + width) of e[l], for |windows| windows.  Each
// exponent is first padded to a fixed limb count (it must fit), so the work
// depends on |lanes| and |windows| only; the padding buffer is wiped.
inline void lane_windows(const mpz_srcptr* e, size_t lanes, size_t windows, unsigned width,
                         std::vector<uint64_t>& out) {
  const size_t limbs = (windows * width + 63) / 64 + 1;
  std::vector<uint64_t> pad(limbs);
  out.assign(windows * lanes, 0);
  for (size_t l = 0; l < lanes; ++l) {
    store(e[l], pad.data(), limbs);
    for (size_t w = 0; w < windows; ++w) out[w * lanes + l] = bits_at(pad.data(), limbs, w * width, width);
  }
  std::memset(pad.data(), 0, limbs * sizeof(uint64_t));
}

}  // namespace fp
