// Operating-system randomness for keys and encryption.
//
// Every byte comes from getrandom(2) (the kernel CSPRNG).  A RandomSource is
// owned by one thread: it buffers kernel output to amortise system calls and
// wipes the buffer when destroyed.  Nothing here uses rand() or mt19937.
#pragma once

#include <gmp.h>

#include <cstddef>
#include <cstdint>

namespace fp {

class RandomSource {
 public:
  RandomSource();
  ~RandomSource();
  RandomSource(const RandomSource&) = delete;
  RandomSource& operator=(const RandomSource&) = delete;

  // Fills out[0, len) with kernel randomness.  Returns false only if the
  // kernel refuses (it then never returns partial output as success).
  bool fill(uint8_t* out, size_t len);

  // Sets x to a uniform integer in [1, bound) by rejection sampling on
  // bit_length(bound) random bits.  |bound| must be >= 2.  Variable time in
  // the number of rejections only, which reveals nothing about x.
  bool uniform_nonzero_below(mpz_t x, const mpz_t bound);

  // Sets x to a uniform integer in [0, 2^bits) (bits >= 1).  Constant time
  // apart from the kernel call.
  bool uniform_bits(mpz_t x, size_t bits);

  // Sets x to a uniform element of Z_n^*: uniform in [1, n) with gcd(x, n) = 1.
  bool uniform_unit(mpz_t x, const mpz_t n);

 private:
  static constexpr size_t kBufSize = 4096;
  uint8_t buf_[kBufSize];
  size_t pos_;
  mpz_t gcd_tmp_;
};

}  // namespace fp
