#include "text_format.hpp"

#include <time.h>

#include <cstdio>
#include <ctime>

namespace spoold {

namespace {

// The length of the valid, printable UTF-8 sequence at bytes[i], or 0.
std::size_t utf8_printable_length(std::string_view bytes, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(bytes[i]);
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    cp = b0 & 0x1fu;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    cp = b0 & 0x0fu;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (bytes.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(bytes[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3fu);
  }
  const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
  const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
  // C1 controls and the bidi overrides could still reorder or hide text.
  const bool control = cp < 0xa0 || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
  if (overlong || surrogate || control || cp > 0x10ffff) return 0;
  return len;
}

}  // namespace

std::string escape_bytes(std::string_view bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else if (const std::size_t len = c >= 0x80 ? utf8_printable_length(bytes, i) : 0; len > 0) {
      out.append(bytes.substr(i, len));
      i += len;
      continue;
    } else {
      out += "\\x";
      out.push_back(k_hex[c >> 4]);
      out.push_back(k_hex[c & 0xf]);
    }
    ++i;
  }
  return out;
}

std::string first_line(std::string_view text, std::size_t max_chars) {
  const std::size_t eol = text.find('\n');
  const bool more_lines = eol != std::string_view::npos && eol + 1 < text.size();
  std::string_view line = text.substr(0, eol);
  bool cut = more_lines;
  if (line.size() > max_chars) {
    line = line.substr(0, max_chars);
    cut = true;
  }
  std::string out = escape_bytes(line);
  if (cut) out += "...";
  return out;
}

std::string format_span(std::int64_t ns) {
  const char* sign = ns < 0 ? "-" : "";
  const std::uint64_t abs_ns = ns < 0 ? static_cast<std::uint64_t>(-(ns + 1)) + 1 : static_cast<std::uint64_t>(ns);
  const std::uint64_t ms = abs_ns / 1'000'000;
  const std::uint64_t s = ms / 1000;
  char buf[64];
  if (s == 0) {
    std::snprintf(buf, sizeof buf, "%s%llums", sign, static_cast<unsigned long long>(ms));
  } else if (s < 60) {
    std::snprintf(buf, sizeof buf, "%s%llus", sign, static_cast<unsigned long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%s%llum%02llus", sign, static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%s%lluh%02llum", sign, static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%s%llud%02lluh", sign, static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string format_time(std::int64_t ns) {
  std::int64_t sec = ns / 1'000'000'000;
  std::int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --sec;
  }
  const auto t = static_cast<time_t>(sec);
  tm local{};
  if (::localtime_r(&t, &local) == nullptr) return std::to_string(sec) + " (unix seconds)";
  char date[64];
  char zone[16];
  if (std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &local) == 0) return std::to_string(sec);
  if (std::strftime(zone, sizeof zone, "%z", &local) == 0) zone[0] = '\0';
  char out[128];
  std::snprintf(out, sizeof out, "%s.%03lld %s", date, static_cast<long long>(frac / 1'000'000), zone);
  return out;
}

}  // namespace spoold
