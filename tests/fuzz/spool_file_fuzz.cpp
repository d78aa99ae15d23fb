// libFuzzer target for the one reader of untrusted task bytes in the host:
// parse_spool_file(), and the readers of the values it hands out (at_of,
// attempt_of). Any broken invariant calls abort(), which libFuzzer reports
// as a crash with the input that caused it. Built and run by run_fuzz.sh.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spool_file.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

std::size_t u16_at(std::string_view b, std::size_t at) {
  return static_cast<unsigned char>(b[at]) | (static_cast<std::size_t>(static_cast<unsigned char>(b[at + 1])) << 8);
}

bool all_digits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A second, simpler reading of the `at` key to compare at_of() with:
// digits, optionally '.' and digits; seconds in [1, 9223372035] (the last
// whole second whose nanoseconds fit in an int64); the first nine
// fractional digits are the nanoseconds.
std::optional<std::int64_t> reference_at(std::string_view v) {
  std::string_view whole = v;
  std::string_view frac;
  if (auto dot = v.find('.'); dot != std::string_view::npos) {
    whole = v.substr(0, dot);
    frac = v.substr(dot + 1);
  }
  if (whole.empty() || !all_digits(whole) || !all_digits(frac)) return std::nullopt;
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  if (whole.size() > 10) return std::nullopt;
  std::int64_t seconds = 0;
  for (char c : whole) seconds = seconds * 10 + (c - '0');
  if (seconds <= 0 || seconds > 9'223'372'035) return std::nullopt;
  std::int64_t nanos = 0;
  for (std::size_t i = 0; i < 9; ++i) nanos = nanos * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  return seconds * 1'000'000'000 + nanos;
}

// The same for spoold.attempt: a decimal unsigned, else 0; capped at 10^6.
unsigned reference_attempt(std::string_view v) {
  if (v.empty() || !all_digits(v)) return 0;
  while (v.size() > 1 && v.front() == '0') v.remove_prefix(1);
  if (v.size() > 10) return 0;
  unsigned long long n = 0;
  for (char c : v) n = n * 10 + static_cast<unsigned long long>(c - '0');
  if (n > UINT_MAX) return 0;
  return n > 1'000'000 ? 1'000'000u : static_cast<unsigned>(n);
}

void check_value_readers(std::string_view value) {
  const spoold::spool_view v{{{"at", value}, {"spoold.attempt", value}}, {}};
  check(spoold::at_of(v) == reference_at(value));
  check(spoold::attempt_of(v) == reference_attempt(value));
}

void check_parsed(std::string_view in, const spoold::spool_view& task) {
  const std::size_t args_size = u16_at(in, 1);
  check(in.size() >= spoold::k_header_size + args_size);
  std::size_t used = 0;
  for (const auto& a : task.args) {
    check(!a.key.empty());
    check(inside(a.key, in) && inside(a.value, in));
    used += 4 + a.key.size() + a.value.size();
  }
  check(used == args_size);
  check(inside(task.body, in));
  check(task.body.size() == in.size() - spoold::k_header_size - args_size);
  if (!task.args.empty()) {
    // arg() returns the last value of a key.
    const auto& first = task.args.front();
    std::optional<std::string_view> last;
    for (const auto& a : task.args) {
      if (a.key == first.key) last = a.value;
    }
    check(task.arg(first.key) == last);
  }

  // Encoding the parsed args and body gives back the input, except the two
  // modifier bytes, which the parser does not look at.
  std::vector<spoold::owned_arg> owned;
  for (const auto& a : task.args) owned.push_back({std::string(a.key), std::string(a.value)});
  auto encoded = spoold::encode_spool_file(owned, task.body);
  check(encoded.ok());
  const std::string& out = *encoded;
  check(out.size() == in.size());
  check(static_cast<unsigned char>(out[0]) == spoold::k_modifier1_spool && out[3] == '\0');
  check(std::memcmp(out.data() + 1, in.data() + 1, 2) == 0);
  check(std::memcmp(out.data() + 4, in.data() + 4, in.size() - 4) == 0);

  const auto again = spoold::parse_spool_file(out);
  check(again.ok());
  check(again.task->args.size() == task.args.size());
  for (std::size_t i = 0; i < task.args.size(); ++i) {
    check(again.task->args[i].key == task.args[i].key);
    check(again.task->args[i].value == task.args[i].value);
  }
  check(again.task->body == task.body);

  // The readers of what a task says, against their references.
  const auto at = task.arg("at");
  check(spoold::at_of(task) == (at ? reference_at(*at) : std::nullopt));
  const auto attempt = task.arg(spoold::k_key_attempt);
  check(spoold::attempt_of(task) == (attempt ? reference_attempt(*attempt) : 0u));

  // A rewrite keeps one of each bookkeeping key, with the new values.
  const auto rewritten = spoold::rewrite_bookkeeping(task, 7, std::string_view("e"), std::int64_t{1700000000});
  std::size_t attempts = 0;
  for (const auto& a : rewritten) attempts += a.key == spoold::k_key_attempt ? 1 : 0;
  check(attempts == 1);
  if (auto bytes = spoold::encode_spool_file(rewritten, task.body); bytes.ok()) {
    const auto parsed = spoold::parse_spool_file(*bytes);
    check(parsed.ok());
    check(spoold::attempt_of(*parsed.task) == 7);
    check(parsed.task->arg(spoold::k_key_failed_at) == std::optional<std::string_view>("1700000000"));
  } else {
    // Only refused when the three keys pushed the block over 64 KiB.
    check(used > 0xffff - 64);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto r = spoold::parse_spool_file(in);
  if (r.ok()) {
    check_parsed(in, *r.task);
  } else {
    // Shorter than the header says is "incomplete" (may still be being
    // written); anything else is "malformed". Either way, a reason.
    const bool short_file = size < spoold::k_header_size || u16_at(in, 1) > size - spoold::k_header_size;
    check(short_file == (r.failure.problem == spoold::parse_problem::incomplete));
    check(!r.failure.reason.empty());
  }
  // The value readers also see the raw input, which reaches them far more
  // often than a mutated file that still parses.
  check_value_readers(in.substr(0, 64));
  return 0;
}
