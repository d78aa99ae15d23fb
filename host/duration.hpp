// Durations in the config: "250ms", "30s", "5m", "1h"; "0" is zero.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace spoold {

using duration = std::chrono::milliseconds;

// Parses a duration; nullopt when the text is not a whole number followed
// by ms, s, m or h (or a bare 0), or when it overflows.
std::optional<duration> parse_duration(std::string_view text);

// The shortest exact text for d: "1500ms", "30s", "5m".
std::string format_duration(duration d);

}  // namespace spoold
