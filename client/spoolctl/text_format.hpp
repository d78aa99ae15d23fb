// Turning untrusted bytes and instants into text an operator can read on a
// terminal without a task file being able to inject control sequences.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace spoold {

// Printable ASCII and valid UTF-8 as they are; '\\', tab, newline and CR as
// \\ \t \n \r; every other byte as \xHH.
std::string escape_bytes(std::string_view bytes);

// The first line of text, escaped and cut to about max_chars with "...".
std::string first_line(std::string_view text, std::size_t max_chars);

// A span such as "250ms", "42s", "4m02s", "3h05m", "2d04h".
std::string format_span(std::int64_t ns);

// A local time with its offset: "2024-05-01 10:00:00.250 +0200".
std::string format_time(std::int64_t ns);

}  // namespace spoold
