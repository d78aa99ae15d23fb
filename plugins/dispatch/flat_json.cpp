#include "flat_json.hpp"

#include <cstdint>
#include <optional>
#include <utility>

namespace spoold::dispatch {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::optional<unsigned> hex_value(char c) {
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
  return std::nullopt;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The length of the well-formed UTF-8 sequence starting at s[pos] (a byte
// >= 0x80), or 0 when it is malformed: truncated, overlong, a surrogate or
// beyond U+10FFFF (the table of Unicode 15, section 3.9, D92).
std::size_t utf8_sequence_length(std::string_view s, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(pos);
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - pos < length) return 0;
  if (byte(pos + 1) < second_min || byte(pos + 1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

// A recursive-descent parser over one string_view; pos_ never passes
// in_.size(), and every peek checks it first.
class json_parser {
 public:
  explicit json_parser(std::string_view in) : in_(in) {}

  flat_object parse() {
    flat_object object;
    skip_whitespace();
    if (at_end()) fail("expected '{', found the end of the body (is it empty or only whitespace?)");
    if (peek() != '{') fail("expected '{': the body must be a JSON object");
    ++pos_;
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        skip_whitespace();
        if (at_end() || peek() != '"') fail("expected a key in double quotes");
        const std::size_t key_offset = pos_;
        std::string key = parse_string();
        skip_whitespace();
        expect(':', "expected ':' after the key \"" + key + "\"");
        skip_whitespace();
        json_scalar value = parse_value(key);
        if (!object.members_.emplace(std::move(key), std::move(value)).second) {
          fail_at(key_offset, "duplicate key (each key may appear once)");
        }
        skip_whitespace();
        if (at_end()) fail("expected ',' or '}', found the end of the body");
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}', "expected ',' or '}' after a value");
        break;
      }
    }
    skip_whitespace();
    if (!at_end()) fail("unexpected bytes after the closing '}'");
    return object;
  }

 private:
  [[noreturn]] void fail(const std::string& expected) const { throw json_error(pos_, expected); }
  [[noreturn]] static void fail_at(std::size_t offset, const std::string& expected) {
    throw json_error(offset, expected);
  }

  bool at_end() const { return pos_ >= in_.size(); }
  char peek() const { return in_[pos_]; }

  void expect(char c, const std::string& expected) {
    if (at_end() || peek() != c) fail(expected);
    ++pos_;
  }

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  json_scalar parse_value(const std::string& key) {
    if (at_end()) fail("expected a value for the key \"" + key + "\", found the end of the body");
    const char c = peek();
    if (c == '"') return {json_kind::string, parse_string()};
    if (c == '-' || is_digit(c)) return {json_kind::number, parse_number()};
    if (c == 't') return {json_kind::boolean, parse_literal("true")};
    if (c == 'f') return {json_kind::boolean, parse_literal("false")};
    if (c == 'n') return {json_kind::null, parse_literal("null")};
    if (c == '{' || c == '[') {
      fail("the value of \"" + key + "\" is an object or array; only strings, numbers, true, false and null are "
           "accepted");
    }
    fail("expected a value for the key \"" + key + "\" (a string in double quotes, a number, true, false or null)");
  }

  std::string parse_literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) fail("expected '" + std::string(word) + "'");
    pos_ += word.size();
    return std::string(word);
  }

  // -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  std::string parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (at_end() || !is_digit(peek())) fail("expected a digit in the number");
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && is_digit(peek())) fail("a number may not have a leading zero");
    } else {
      skip_digits();
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || !is_digit(peek())) fail("expected a digit after the decimal point");
      skip_digits();
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) fail("expected a digit in the exponent");
      skip_digits();
    }
    return std::string(in_.substr(start, pos_ - start));
  }

  void skip_digits() {
    while (!at_end() && is_digit(peek())) ++pos_;
  }

  // At the opening quote. Returns the decoded text and leaves pos_ after the
  // closing quote.
  std::string parse_string() {
    ++pos_;
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string: expected '\"'");
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        parse_escape(out);
      } else if (c < 0x20) {
        fail("control character in a string: write it as an escape such as \\n or \\u0001");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else {
        const std::size_t n = utf8_sequence_length(in_, pos_);
        if (n == 0) fail("invalid UTF-8 in a string");
        out.append(in_.substr(pos_, n));
        pos_ += n;
      }
    }
  }

  // At the backslash.
  void parse_escape(std::string& out) {
    ++pos_;
    if (at_end()) fail("unterminated escape at the end of the body");
    const char c = peek();
    ++pos_;
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: --pos_; fail("unknown escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
    }
    std::uint32_t cp = parse_hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("a \\u escape is a low surrogate without a high surrogate before it");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (in_.substr(pos_, 2) != "\\u") fail("expected \\u and a low surrogate after a high surrogate");
      pos_ += 2;
      const std::uint32_t low = parse_hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("expected a low surrogate (\\uDC00 to \\uDFFF) after a high surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
  }

  std::uint32_t parse_hex4() {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const std::optional<unsigned> digit = at_end() ? std::nullopt : hex_value(peek());
      if (!digit) fail("expected four hex digits after \\u");
      value = value * 16 + *digit;
      ++pos_;
    }
    return value;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

flat_object parse_flat_object(std::string_view text) { return json_parser(text).parse(); }

}  // namespace spoold::dispatch
