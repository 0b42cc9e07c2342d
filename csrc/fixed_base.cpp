#include "fixed_base.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "ct_select.hpp"
#include "kernel_tier.hpp"
#include "limb_io.hpp"

namespace fp {


FixedBaseTable::FixedBaseTable(mpz_srcptr base, mpz_srcptr modulus, size_t exp_bits,
                               unsigned window, unsigned window64)
    : exp_bits_(exp_bits), window_(window), window64_(window64) {
  if (window < 1 || window > 8 || window64 < 1 || window64 > 8 || mpz_even_p(modulus)) std::abort();
  mpz_inits(base_, mod_, nullptr);
  mpz_set(mod_, modulus);
  mpz_mod(base_, base, modulus);
  windows_ = exp_bits ? (exp_bits + window - 1) / window : 1;
  limbs_ = mpz_size(mod_);
  ifma_mod_.init(mod_);
  m64_mod_.init(mod_);
}

FixedBaseTable::~FixedBaseTable() { mpz_clears(base_, mod_, nullptr); }

const std::vector<uint64_t>& FixedBaseTable::gmp_table() const {
  std::call_once(gmp_once_, [this] {
    const size_t entries = size_t{1} << window_;
    gmp_.assign(windows_ * entries * limbs_, 0);
    mpz_t b, x;
    mpz_inits(b, x, nullptr);
    mpz_set(b, base_);
    for (size_t i = 0; i < windows_; ++i) {
      uint64_t* row = gmp_.data() + i * entries * limbs_;
      mpz_set_ui(x, 1);
      for (size_t k = 0; k < entries; ++k) {  // x = b^k with b = base^(2^(w i))
        store(x, row + k * limbs_, limbs_);
        mpz_mul(x, x, b);
        mpz_mod(x, x, mod_);
      }
      mpz_swap(b, x);  // b^(2^w)
    }
    mpz_clears(b, x, nullptr);
  });
  return gmp_;
}

const IfmaFixedBase& FixedBaseTable::ifma() const {
  std::call_once(ifma_once_, [this] {
    ifma_.init(ifma_mod_, mod_, base_, exp_bits_, window_);
  });
  return ifma_;
}

const Mont64FixedBase& FixedBaseTable::mont64() const {
  std::call_once(m64_once_, [this] { m64_.init(m64_mod_, mod_, base_, exp_bits_, window64_); });
  return m64_;
}

void FixedBaseTable::powm(mpz_t out, mpz_srcptr e) const {
  if (mont64_enabled()) {
    if (mpz_sizeinbase(e, 2) > exp_bits_ && mpz_sgn(e) != 0) std::abort();
    mont64_fixed_powm(m64_mod_, mont64(), out, e);
    return;
  }
  powm_sec(out, e);
}

void FixedBaseTable::powm_sec(mpz_t out, mpz_srcptr e) const {
  const std::vector<uint64_t>& table = gmp_table();
  const size_t L = limbs_, entries = size_t{1} << window_;
  const size_t e_limbs = (windows_ * window_ + 63) / 64;
  const mp_size_t itch = std::max(mpn_sec_mul_itch(L, L), mpn_sec_div_r_itch(2 * L, L));
  std::vector<uint64_t> buf(e_limbs + 4 * L + static_cast<size_t>(itch));
  uint64_t* ex = buf.data();
  uint64_t* acc = ex + e_limbs;
  uint64_t* sel = acc + L;
  uint64_t* prod = sel + L;  // 2 L limbs
  mp_limb_t* tp = reinterpret_cast<mp_limb_t*>(prod + 2 * L);
  if (mpz_sizeinbase(e, 2) > exp_bits_ && mpz_sgn(e) != 0) std::abort();
  store(e, ex, e_limbs);
  const mp_limb_t* m = mpz_limbs_read(mod_);
  select_entry(acc, table.data(), entries, L, bits_at(ex, e_limbs, 0, window_));
  for (size_t i = 1; i < windows_; ++i) {
    select_entry(sel, table.data() + i * entries * L, entries, L,
                 bits_at(ex, e_limbs, i * window_, window_));
    mpn_sec_mul(reinterpret_cast<mp_limb_t*>(prod), reinterpret_cast<const mp_limb_t*>(acc),
                static_cast<mp_size_t>(L), reinterpret_cast<const mp_limb_t*>(sel),
                static_cast<mp_size_t>(L), tp);
    mpn_sec_div_r(reinterpret_cast<mp_limb_t*>(prod), static_cast<mp_size_t>(2 * L), m,
                  static_cast<mp_size_t>(L), tp);
    std::memcpy(acc, prod, L * sizeof(uint64_t));
  }
  mpz_t v;
  mpz_set(out, view(v, acc, L));
  std::memset(buf.data(), 0, buf.size() * sizeof(uint64_t));  // exponent and secret products
}

void FixedBaseTable::powm8(mpz_ptr out[8], const mpz_srcptr e[8], size_t live) const {
  for (int l = 0; l < 8; ++l) {
    if (mpz_sizeinbase(e[l], 2) > exp_bits_ && mpz_sgn(e[l]) != 0) std::abort();
  }
  ifma_fixed_powm8(ifma_mod_, ifma(), e, out, live);
}

}  // namespace fp
