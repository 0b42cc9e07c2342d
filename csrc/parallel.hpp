// Splits [0, count) into contiguous chunks and runs them on std::threads.
//
// Each worker gets a disjoint index range, so kernels that write only out[i]
// for i in their range share no mutable state.  The calling thread runs the
// first chunk itself.  Work smaller than |min_per_thread| items per thread
// runs inline.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace fp {

template <typename Fn>
void parallel_for(size_t count, int threads, size_t min_per_thread, Fn fn) {
  if (count == 0) return;
  size_t t = threads < 1 ? 1 : static_cast<size_t>(threads);
  if (min_per_thread < 1) min_per_thread = 1;
  t = std::min(t, (count + min_per_thread - 1) / min_per_thread);
  if (t <= 1) {
    fn(size_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  const size_t base = count / t, extra = count % t;
  size_t begin = 0;
  size_t first_end = base + (extra > 0 ? 1 : 0);
  begin = first_end;
  for (size_t i = 1; i < t; ++i) {
    size_t len = base + (i < extra ? 1 : 0);
    size_t b = begin, e = begin + len;
    pool.emplace_back([&fn, b, e] { fn(b, e); });
    begin = e;
  }
  fn(size_t{0}, first_end);
  for (auto& th : pool) th.join();
}

}  // namespace fp
