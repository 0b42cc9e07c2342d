#include "csprng.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace fp {

RandomSource::RandomSource() : pos_(kBufSize) { mpz_init(gcd_tmp_); }

RandomSource::~RandomSource() {
  volatile uint8_t* p = buf_;
  for (size_t i = 0; i < kBufSize; ++i) p[i] = 0;
  mpz_clear(gcd_tmp_);
}

// Loops over getrandom(2) until |len| bytes arrived; EINTR is retried.
static bool kernel_random(uint8_t* out, size_t len) {
  while (len > 0) {
    ssize_t got = getrandom(out, len, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out += got;
    len -= static_cast<size_t>(got);
  }
  return true;
}

bool RandomSource::fill(uint8_t* out, size_t len) {
  while (len > 0) {
    if (pos_ == kBufSize) {
      if (!kernel_random(buf_, kBufSize)) return false;
      pos_ = 0;
    }
    size_t take = std::min(len, kBufSize - pos_);
    std::memcpy(out, buf_ + pos_, take);
    std::memset(buf_ + pos_, 0, take);  // never hand the same bytes out twice
    pos_ += take;
    out += take;
    len -= take;
  }
  return true;
}

bool RandomSource::uniform_nonzero_below(mpz_t x, const mpz_t bound) {
  const size_t bits = mpz_sizeinbase(bound, 2);
  const size_t bytes = (bits + 7) / 8;
  std::vector<uint8_t> tmp(bytes);
  for (;;) {
    if (!fill(tmp.data(), bytes)) return false;
    const unsigned excess = static_cast<unsigned>(bytes * 8 - bits);
    tmp[bytes - 1] &= static_cast<uint8_t>(0xFFu >> excess);  // little-endian top byte
    mpz_import(x, bytes, -1, 1, 0, 0, tmp.data());
    if (mpz_sgn(x) > 0 && mpz_cmp(x, bound) < 0) break;
  }
  std::memset(tmp.data(), 0, bytes);
  return true;
}

bool RandomSource::uniform_bits(mpz_t x, size_t bits) {
  const size_t bytes = (bits + 7) / 8;
  std::vector<uint8_t> tmp(bytes);
  if (!fill(tmp.data(), bytes)) return false;
  const unsigned excess = static_cast<unsigned>(bytes * 8 - bits);
  tmp[bytes - 1] &= static_cast<uint8_t>(0xFFu >> excess);  // little-endian top byte
  mpz_import(x, bytes, -1, 1, 0, 0, tmp.data());
  std::memset(tmp.data(), 0, bytes);
  return true;
}

bool RandomSource::uniform_unit(mpz_t x, const mpz_t n) {
  for (;;) {
    if (!uniform_nonzero_below(x, n)) return false;
    mpz_gcd(gcd_tmp_, x, n);
    if (mpz_cmp_ui(gcd_tmp_, 1) == 0) return true;
  }
}

}  // namespace fp
