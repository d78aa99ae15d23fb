#include "backoff.hpp"

#include <algorithm>
#include <random>

namespace spoold {

duration retry_delay(unsigned finished_tries, duration backoff, duration backoff_max, double jitter) {
  const auto cap = backoff_max.count();
  std::int64_t delay = std::min<std::int64_t>(backoff.count(), cap);
  // Doubling saturates at the cap, and stops at once for a zero backoff.
  for (unsigned i = 1; i < finished_tries && delay > 0 && delay < cap; ++i) delay = delay > cap / 2 ? cap : delay * 2;
  jitter = std::clamp(jitter, 0.0, 1.0);
  const auto extra = static_cast<std::int64_t>(static_cast<double>(delay / 4) * jitter);
  return duration(delay + std::min(extra, cap - delay));
}

double random_jitter() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace spoold
