#include "json_out.hpp"

#include <cmath>
#include <iostream>

#include "commands.hpp"
#include "text_format.hpp"

namespace spoold {

namespace {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

std::string json_text(std::string_view bytes) {
  if (valid_utf8(bytes)) return std::string(bytes);
  return escape_bytes(bytes);
}

json json_time(std::int64_t ns) {
  // Rounded to the millisecond, so the number prints short and exact.
  const std::int64_t ms = ns >= 0 ? (ns + 500'000) / 1'000'000 : -((-ns + 500'000) / 1'000'000);
  return static_cast<double>(ms) / 1000.0;
}

json json_time(std::optional<std::int64_t> ns) {
  if (!ns) return nullptr;
  return json_time(*ns);
}

int print_json(const json& doc) {
  std::cout << doc.dump(2) << '\n' << std::flush;
  return std::cout ? exit_ok : exit_failure;
}

}  // namespace spoold
