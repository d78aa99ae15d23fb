#include "backoff.hpp"

#include <algorithm>
#include <random>

namespace spoold {

duration retry_delay(unsigned finished_tries, duration backoff, duration backoff_max, double jitter) {
  const auto cap = backoff_max.count();
  std::int64_t delay = backoff.count();
  for (unsigned i = 1; i < finished_tries && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  jitter = std::clamp(jitter, 0.0, 1.0);
  const auto extra = static_cast<std::int64_t>(static_cast<double>(delay) * 0.25 * jitter);
  return duration(std::min(delay + extra, std::max(cap, delay)));
}

double random_jitter() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace spoold
