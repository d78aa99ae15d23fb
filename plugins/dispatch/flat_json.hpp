// A strict reader for the one JSON shape dispatch reads: a flat object whose
// values are strings, numbers, booleans or null. Task bodies are untrusted
// input: nlohmann-json's SAX parser (Debian nlohmann-json3-dev, header-only,
// so the plugin still links nothing) validates UTF-8, escapes and numbers,
// and anything RFC 8259 does not allow, or another shape, is an error
// rather than a guess.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spoold::dispatch {

enum class json_kind { string, number, boolean, null };

struct json_scalar {
  json_kind kind;
  // A string decoded to UTF-8 (it may contain NUL); for the other kinds the
  // literal as written: "-1.5e3", "true", "null".
  std::string text;
};

// Thrown for any input that is not a flat JSON object; what() names the byte
// offset and what was expected there.
class json_error : public std::runtime_error {
 public:
  json_error(std::size_t offset, const std::string& expected)
      : std::runtime_error("invalid JSON at byte " + std::to_string(offset) + ": " + expected), offset_(offset) {}
  std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};

class flat_object {
 public:
  // The member named key, or null when the object has none.
  const json_scalar* find(std::string_view key) const {
    const auto it = members_.find(key);
    return it == members_.end() ? nullptr : &it->second;
  }
  std::size_t size() const { return members_.size(); }

 private:
  friend class json_parser;
  std::map<std::string, json_scalar, std::less<>> members_;
};

// Parses text as one JSON object with scalar values, surrounded by optional
// whitespace. Rejects nested objects and arrays, duplicate keys, invalid
// UTF-8, unpaired surrogates and trailing bytes. Throws json_error.
flat_object parse_flat_object(std::string_view text);

}  // namespace spoold::dispatch
