// Builds spool files byte by byte, independently of encode_spool_file(), so
// the parser is checked against the format and not against itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace spoold::unit {

inline std::string u16le(std::size_t v) {
  std::string out;
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  return out;
}

// One [u16 key len][key][u16 value len][value] record.
inline std::string raw_arg(std::string_view key, std::string_view value) {
  return u16le(key.size()) + std::string(key) + u16le(value.size()) + std::string(value);
}

// Header (17, u16 LE size of block, 0) + block + body.
inline std::string raw_spool(std::string_view block, std::string_view body = {}) {
  std::string out;
  out.push_back(static_cast<char>(17));
  out += u16le(block.size());
  out.push_back('\0');
  out += block;
  out += body;
  return out;
}

}  // namespace spoold::unit
