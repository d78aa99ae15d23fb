#include "duration.hpp"

#include <charconv>
#include <cstdint>

namespace spoold {

std::optional<duration> parse_duration(std::string_view text) {
  if (text.empty() || text.front() == '-') return std::nullopt;
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data() || n < 0) return std::nullopt;
  const std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  std::int64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m") scale = 60 * 1000;
  else if (unit == "h") scale = 3600 * 1000;
  else if (unit.empty() && n == 0) scale = 1;
  else return std::nullopt;
  constexpr std::int64_t k_max_ms = std::int64_t{1} << 50;
  if (n > k_max_ms / scale) return std::nullopt;
  return duration(n * scale);
}

std::string format_duration(duration d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace spoold
