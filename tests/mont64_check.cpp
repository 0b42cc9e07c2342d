// Randomized cross-check of the mont64 templates (mulx and portable rows,
// Karatsuba products, padded squares, REDC) against GMP, edge values
// included (0, 1, m - 1, m - 2, sparse bit patterns, all-ones and 2^k + 1
// moduli).  Built and run by tests/test_mont64_kernel.py.
#include "mont64.cpp"
#include <cstdio>
using namespace fp;
static gmp_randstate_t st;
static void rnd(mpz_t x, mpz_t m, int kind) {
  if (kind == 0) mpz_set_ui(x, 0);
  else if (kind == 1) mpz_set_ui(x, 1);
  else if (kind == 2) mpz_sub_ui(x, m, 1);
  else if (kind == 3) mpz_sub_ui(x, m, 2);
  else if (kind == 4) { mpz_urandomm(x, st, m); }
  else { mpz_rrandomb(x, st, mpz_sizeinbase(m, 2)); mpz_mod(x, x, m); }
}
template <bool K> int check(size_t L, int trials) {
  int bad = 0;
  mpz_t m, a, b, e, f, R, Ri; mpz_inits(m, a, b, e, f, R, Ri, nullptr);
  for (int mk = 0; mk < 6; ++mk) {
    size_t bits = 64 * L - (mk % 3) * 17;
    if (mk == 0) { mpz_set_ui(m, 0); mpz_setbit(m, 64 * L); mpz_sub_ui(m, m, 1); }  // all ones
    else if (mk == 1) { mpz_set_ui(m, 0); mpz_setbit(m, 64 * L - 1); mpz_add_ui(m, m, 1); }
    else { mpz_urandomb(m, st, bits); mpz_setbit(m, bits - 1); mpz_setbit(m, 0); if (mk==5) mpz_rrandomb(m, st, bits), mpz_setbit(m, bits-1), mpz_setbit(m,0); }
    Mont64Modulus M; M.init(m);
    if (M.limbs != L) continue;
    mpz_set_ui(R, 0); mpz_setbit(R, 64 * L); mpz_invert(Ri, R, m);
    std::vector<uint64_t> x(L), y(L), r(L), t(kScratch * L), tt(2 * L);
    for (int tr = 0; tr < trials; ++tr) {
      rnd(a, m, tr % 6); rnd(b, m, (tr / 6) % 6);
      store(a, x.data(), L); store(b, y.data(), L);
      mont_mul<K>(M, r.data(), x.data(), y.data(), t.data());
      mpz_mul(e, a, b); mpz_mul(e, e, Ri); mpz_mod(e, e, m);
      mpz_t v; if (mpz_cmp(view(v, r.data(), L), e)) { ++bad; }
      mont_sqr<K>(M, r.data(), x.data(), t.data());
      mpz_mul(e, a, a); mpz_mul(e, e, Ri); mpz_mod(e, e, m);
      if (mpz_cmp(view(v, r.data(), L), e)) { ++bad; }
      // redc of a value < m R: a * b' with b' random < R
      mpz_urandomb(f, st, 64 * L); if (tr % 7 == 0) { mpz_sub_ui(f, R, 1); }
      mpz_mul(f, f, a); if (tr % 5 == 0) { mpz_mul(f, m, R); mpz_sub_ui(f, f, 1); }
      store(f, tt.data(), 2 * L);
      redc<K>(M, r.data(), tt.data());
      mpz_mul(e, f, Ri); mpz_mod(e, e, m);
      if (mpz_cmp(view(v, r.data(), L), e)) { ++bad; }
    }
  }
  mpz_clears(m, a, b, e, f, R, Ri, nullptr);
  return bad;
}
int main() {
  gmp_randinit_default(st);
  int bad = 0;
  for (size_t L : {4, 8, 12, 16, 20, 32, 36, 60, 64, 124, 128, 132}) {
    int b1 = check<true>(L, 300), b2 = check<false>(L, 100);
    printf("L=%zu mulx bad=%d portable bad=%d\n", L, b1, b2); bad += b1 + b2;
  }
  printf(bad ? "FAIL\n" : "OK\n");
  return bad != 0;
}
