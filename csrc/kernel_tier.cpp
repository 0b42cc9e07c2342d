#include "kernel_tier.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "fma_montgomery.hpp"
#include "ifma_montgomery.hpp"

namespace fp {

namespace {

std::atomic<int> g_tier{-1};  // -1: not chosen yet

bool cpu_has_mulx() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx");
#else
  return false;
#endif
}

// The default order: ifma, then avx2, then mulx, then gmp.  The portable tier is not a
// default: with plain C++ 128-bit products it measured about 1.8x slower
// than GMP's assembly (mpz_powm_sec) on x86-64, and GMP has assembly for
// most other 64-bit CPUs too; it stays available on request
// (FASTPAILLIER_KERNEL=portable) and is tested everywhere.
Tier best_tier(bool allow_ifma) {
  if (allow_ifma && ifma_cpu_supported()) return Tier::kIfma;
  if (tier_supported(Tier::kAvx2)) return Tier::kAvx2;
  if (cpu_has_mulx()) return Tier::kMulx;
  return Tier::kGmp;
}

// The start-up choice: FASTPAILLIER_KERNEL if it names a supported tier,
// else the best tier (without ifma when FASTPAILLIER_DISABLE_IFMA is set).
Tier initial_tier() {
  const char* forced = std::getenv("FASTPAILLIER_KERNEL");
  if (forced != nullptr && *forced != '\0') {
    for (Tier t : {Tier::kIfma, Tier::kAvx2, Tier::kMulx, Tier::kPortable, Tier::kGmp}) {
      if (std::strcmp(forced, tier_name(t)) == 0 && tier_supported(t)) return t;
    }
  }
  return best_tier(std::getenv("FASTPAILLIER_DISABLE_IFMA") == nullptr);
}

}  // namespace

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::kIfma: return "ifma";
    case Tier::kAvx2: return "avx2";
    case Tier::kMulx: return "mulx";
    case Tier::kPortable: return "portable";
    case Tier::kGmp: return "gmp";
  }
  return "unknown";
}

bool tier_supported(Tier t) {
  switch (t) {
    case Tier::kIfma: return ifma_cpu_supported();
    case Tier::kAvx2: return fma_cpu_supported() && cpu_has_mulx();
    case Tier::kMulx: return cpu_has_mulx();
    case Tier::kPortable:
    case Tier::kGmp: return true;
  }
  return false;
}

Tier kernel_tier() {
  int t = g_tier.load(std::memory_order_acquire);
  if (t < 0) {
    int expected = -1;
    const int chosen = static_cast<int>(initial_tier());
    g_tier.compare_exchange_strong(expected, chosen);
    t = g_tier.load(std::memory_order_acquire);
  }
  return static_cast<Tier>(t);
}

bool set_kernel_tier(Tier t) {
  if (!tier_supported(t)) return false;
  g_tier.store(static_cast<int>(t), std::memory_order_release);
  return true;
}

bool mont64_enabled() {
  const Tier t = kernel_tier();
  return t == Tier::kMulx || t == Tier::kPortable || t == Tier::kAvx2;
}

bool mont64_mulx_rows() {
  const Tier t = kernel_tier();
  return t == Tier::kMulx || t == Tier::kAvx2;
}

bool lanes52_enabled() {
  const Tier t = kernel_tier();
  return t == Tier::kIfma || t == Tier::kAvx2;
}

// Kept for the IFMA code and older callers: ifma is the active tier.
bool ifma_enabled() { return kernel_tier() == Tier::kIfma; }

// True selects ifma where the CPU has it (else nothing changes); false moves
// off ifma to the best other tier (nothing changes if ifma is not active).
void set_ifma_enabled(bool on) {
  if (on) {
    if (ifma_cpu_supported()) set_kernel_tier(Tier::kIfma);
  } else if (kernel_tier() == Tier::kIfma) {
    set_kernel_tier(best_tier(false));
  }
}

}  // namespace fp
