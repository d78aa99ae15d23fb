// retry_delay(): the delay before a task's next try (SPEC §4): first
// `backoff`, doubling per finished try, capped at `backoff_max`, then up to
// a quarter longer for jitter but never past `backoff_max`.
#include "backoff.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <climits>
#include <cstdint>

using spoold::duration;
using spoold::retry_delay;

namespace {
constexpr duration k_1s{1000};
constexpr duration k_10m{600000};
// The largest duration the config accepts (parse_duration's limit).
constexpr duration k_config_max{std::int64_t{1} << 50};

std::int64_t ms(duration d) { return d.count(); }
}  // namespace

TEST_CASE("retry_delay: the first try waits backoff, each later one twice as long", "[backoff]") {
  CHECK(ms(retry_delay(1, k_1s, k_10m, 0.0)) == 1000);
  CHECK(ms(retry_delay(2, k_1s, k_10m, 0.0)) == 2000);
  CHECK(ms(retry_delay(3, k_1s, k_10m, 0.0)) == 4000);
  CHECK(ms(retry_delay(4, k_1s, k_10m, 0.0)) == 8000);
  CHECK(ms(retry_delay(10, k_1s, k_10m, 0.0)) == 512000);
  CHECK(ms(retry_delay(3, duration(250), k_10m, 0.0)) == 1000);
  // finished_tries = 0 is outside the contract; it must still not shrink the delay.
  CHECK(ms(retry_delay(0, k_1s, k_10m, 0.0)) == 1000);
}

TEST_CASE("retry_delay: capped at backoff_max", "[backoff]") {
  CHECK(ms(retry_delay(11, k_1s, k_10m, 0.0)) == 600000);
  CHECK(ms(retry_delay(12, k_1s, k_10m, 0.0)) == 600000);
  CHECK(ms(retry_delay(1000, k_1s, k_10m, 0.0)) == 600000);
  CHECK(ms(retry_delay(3, k_1s, duration(3000), 0.0)) == 3000);
  CHECK(ms(retry_delay(1, k_1s, k_1s, 0.0)) == 1000);
  CHECK(ms(retry_delay(5, k_1s, k_1s, 0.0)) == 1000);
  // The config refuses backoff_max < backoff, but the function still caps.
  CHECK(ms(retry_delay(1, duration(5000), k_1s, 0.0)) == 1000);
}

TEST_CASE("retry_delay: jitter lengthens by up to a quarter, never past backoff_max", "[backoff]") {
  CHECK(ms(retry_delay(1, k_1s, k_10m, 0.5)) == 1125);
  CHECK(ms(retry_delay(1, k_1s, k_10m, 0.999)) == 1249);
  CHECK(ms(retry_delay(3, k_1s, k_10m, 0.5)) == 4500);
  CHECK(ms(retry_delay(9, k_1s, k_10m, 0.5)) == 288000);
  // 512 s + 25% would be 640 s: cut to the 600 s cap.
  CHECK(ms(retry_delay(10, k_1s, k_10m, 0.999)) == 600000);
  CHECK(ms(retry_delay(10, k_1s, k_10m, 0.1)) == 524800);
  // Already at the cap: jitter adds nothing.
  CHECK(ms(retry_delay(100, k_1s, k_10m, 0.999)) == 600000);
  CHECK(ms(retry_delay(1, k_1s, k_1s, 0.999)) == 1000);

  SECTION("out-of-range jitter is clamped to [0, 1]") {
    CHECK(ms(retry_delay(1, k_1s, k_10m, -3.0)) == 1000);
    CHECK(ms(retry_delay(1, k_1s, k_10m, 1.0)) == 1250);
    CHECK(ms(retry_delay(1, k_1s, k_10m, 7.0)) == 1250);
  }
  SECTION("more jitter never shortens it; it stays in [delay, min(1.25 delay, backoff_max)]") {
    for (unsigned tries = 1; tries <= 14; ++tries) {
      const std::int64_t base = ms(retry_delay(tries, k_1s, k_10m, 0.0));
      std::int64_t previous = base;
      for (int i = 0; i <= 100; ++i) {
        const double jitter = i / 100.0;
        const std::int64_t d = ms(retry_delay(tries, k_1s, k_10m, jitter));
        if (d < previous || d > base + base / 4 || d > 600000) {
          FAIL("tries " << tries << " jitter " << jitter << ": " << d << " ms after " << previous << " ms");
        }
        previous = d;
      }
      CHECK(previous == std::min<std::int64_t>(base + base / 4, 600000));
    }
  }
}

TEST_CASE("retry_delay: huge try counts and durations do not overflow", "[backoff]") {
  CHECK(ms(retry_delay(UINT_MAX, k_1s, k_10m, 0.0)) == 600000);
  CHECK(ms(retry_delay(UINT_MAX, k_1s, k_10m, 0.999)) == 600000);
  CHECK(ms(retry_delay(64, duration(1), k_config_max, 0.0)) == ms(k_config_max));
  CHECK(ms(retry_delay(UINT_MAX, duration(1), k_config_max, 0.999)) == ms(k_config_max));
  CHECK(ms(retry_delay(1, k_config_max, k_config_max, 0.999)) == ms(k_config_max));
  CHECK(ms(retry_delay(2, duration(k_config_max.count() / 2 + 1), k_config_max, 0.0)) == ms(k_config_max));
}

// Regression, not reachable from the daemon (the config caps durations at
// 2^50 ms): with a backoff_max near INT64_MAX the doubling and the jitter
// overflowed (signed overflow, UB: 0 and a negative delay came back).
TEST_CASE("retry_delay: an unbounded backoff_max saturates instead of wrapping", "[backoff]") {
  CHECK(ms(retry_delay(200, duration(1), duration::max(), 0.0)) == ms(duration::max()));
  CHECK(ms(retry_delay(1, duration::max(), duration::max(), 0.999)) == ms(duration::max()));
}

TEST_CASE("retry_delay: a zero backoff is zero, at once, whatever the count", "[backoff]") {
  CHECK(ms(retry_delay(1, duration(0), k_10m, 0.0)) == 0);
  CHECK(ms(retry_delay(1, duration(0), k_10m, 0.999)) == 0);
  CHECK(ms(retry_delay(50, duration(0), k_10m, 0.5)) == 0);
  CHECK(ms(retry_delay(1, duration(0), duration(0), 0.5)) == 0);

  // The daemon calls it with at most max_attempts (1 000 000) tries.
  const auto start = std::chrono::steady_clock::now();
  CHECK(ms(retry_delay(1'000'000, duration(0), k_10m, 0.5)) == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(100));
}

// Regression, not reachable from the daemon (tries < max_attempts <= 10^6):
// doubling zero never reaches the cap, so the loop runs finished_tries times
TEST_CASE("retry_delay: zero backoff returns at once for any count", "[backoff]") {
  const auto start = std::chrono::steady_clock::now();
  CHECK(ms(retry_delay(UINT_MAX, duration(0), k_10m, 0.5)) == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(100));
}

TEST_CASE("random_jitter is uniform-looking in [0, 1)", "[backoff]") {
  double sum = 0;
  double lo = 1;
  double hi = 0;
  int out_of_range = 0;
  for (int i = 0; i < 10000; ++i) {
    const double j = spoold::random_jitter();
    if (!(j >= 0.0 && j < 1.0)) ++out_of_range;
    sum += j;
    lo = std::min(lo, j);
    hi = std::max(hi, j);
  }
  CHECK(out_of_range == 0);
  // Mean of 10000 uniform samples: 0.5 with a standard deviation of 0.003.
  CHECK(sum / 10000 > 0.45);
  CHECK(sum / 10000 < 0.55);
  CHECK(lo < 0.01);
  CHECK(hi > 0.99);
}
