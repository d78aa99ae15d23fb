// The uWSGI spool file format, byte for byte (SPEC §2):
//   u8 modifier1 (17) | u16 LE args size S | u8 modifier2 (0) |
//   S bytes of [u16 LE key len][key][u16 LE value len][value] | body to EOF
// parse_spool_file() is the only reader of untrusted task bytes in the host:
// every length is checked against what is there, and it never allocates in
// proportion to a length field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace spoold {

inline constexpr std::string_view k_task_prefix = "uwsgi_spoolfile_on_";
inline constexpr std::string_view k_temp_prefix = ".spoold-tmp-";

// The list of tasks no plugin took (SPEC §4: not offered again until the
// file changes or the host reloads): one line "<relative name> <inode>
// <mtime ns> <size>" each, appended by the spooler that saw the Ignore, so
// that spoolctl can show them as ignored. The host removes it at start and at
// a reload, when those tasks are offered again. Not a task name: uWSGI
// leaves it alone.
inline constexpr std::string_view k_ignored_list = ".spoold-ignored";
inline constexpr std::size_t k_header_size = 4;
inline constexpr std::size_t k_max_args_size = 0xffff;
inline constexpr std::uint8_t k_modifier1_spool = 17;

// The host's own bookkeeping keys, written back into the file.
inline constexpr std::string_view k_key_attempt = "spoold.attempt";
inline constexpr std::string_view k_key_error = "spoold.error";
inline constexpr std::string_view k_key_failed_at = "spoold.failed_at";

// The history of a task's tries, for `spoolctl why`: one key per try,
// "spoold.try.<n>", n counting every try the file has had (it goes on across
// a `spoolctl retry`, which resets spoold.attempt), and only the newest
// k_max_tries_kept kept, so a task that retries forever stays small. The
// value is name=value fields separated by one space, error last, to the end:
//   attempt=2 started_ms=1764643200123 pid=4242 duration_ms=17 counted_ms=1764643200140 status=retry error=...
// A field that is not known is left out: the try a dead spooler owes is
// counted by another spooler, which knows neither its start nor its pid.
inline constexpr std::string_view k_key_try_prefix = "spoold.try.";
inline constexpr unsigned k_max_tries_kept = 10;
inline constexpr std::size_t k_max_try_error = 512;

struct try_record {
  std::uint64_t number = 0;                // n of spoold.try.<n>, from 1
  unsigned attempt = 0;                    // spoold.attempt once this try was counted
  std::optional<std::int64_t> started_ms;  // unix milliseconds
  std::optional<std::int64_t> pid;         // the spooler process that ran it
  std::optional<std::int64_t> duration_ms;
  std::int64_t counted_ms = 0;             // when the host wrote it into the file
  std::string status;                      // retry, fail, crash or timeout
  std::string error;
};

struct spool_arg {
  std::string_view key;
  std::string_view value;
};

// A parsed task: views into the buffer it was parsed from.
struct spool_view {
  std::vector<spool_arg> args;
  std::string_view body;

  // The last value of key (uWSGI's Python dict keeps the last one too).
  std::optional<std::string_view> arg(std::string_view key) const;
};

enum class parse_problem {
  incomplete,  // shorter than its header says: being written, or truncated
  malformed,   // lengths inside the args block do not add up
};

struct parse_error {
  parse_problem problem;
  std::string reason;
};

struct parse_result {
  std::optional<spool_view> task;
  parse_error failure{parse_problem::malformed, {}};
  bool ok() const { return task.has_value(); }
};

parse_result parse_spool_file(std::string_view bytes);

// An owned argument, for producers and for rewrites.
struct owned_arg {
  std::string key;
  std::string value;
};

// Serialises args and body; fails when the args block is over 64 KiB,
// saying to put large values in the body.
result<std::string> encode_spool_file(const std::vector<owned_arg>& args, std::string_view body);

// Copies a parsed task's args, replacing the spoold.* bookkeeping keys with
// the given ones (an empty optional drops that key).
std::vector<owned_arg> rewrite_bookkeeping(const spool_view& task, unsigned attempt,
                                           std::optional<std::string_view> error_text,
                                           std::optional<std::int64_t> failed_at);

// The value stored under spoold.try.<number> (the error cut to k_max_try_error).
std::string format_try_value(const try_record& record);
// Reads one history entry; nullopt when key is not spoold.try.<n> or the
// value is not what format_try_value writes.
std::optional<try_record> parse_try(std::string_view key, std::string_view value);
// The task's history, oldest first; entries that do not parse are left out.
std::vector<try_record> tries_of(const spool_view& task);
// The task's args with record added to its history as the next number,
// dropping the oldest entries beyond k_max_tries_kept, and more of them if
// the args block would not leave room for the spoold.error the rewrite adds.
// The new key and value are views into held, which must outlive the result.
std::vector<spool_arg> args_with_try(const spool_view& task, try_record record, owned_arg& held);

// "spoold.attempt" of a task, 0 when absent or not a decimal number.
unsigned attempt_of(const spool_view& task);

// Parses the `at` key like uWSGI (decimal seconds, fraction allowed) into
// nanoseconds since the epoch; nullopt when absent or not a number.
std::optional<std::int64_t> at_of(const spool_view& task);

// True when name is a task file name: the uWSGI prefix and nothing that
// could leave the directory.
bool is_task_name(std::string_view name);
// True for a numeric priority directory name (digits only, at most 9).
bool is_priority_name(std::string_view name);

// A fresh task file name: uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>.
std::string make_task_name();

struct write_options {
  std::optional<std::int64_t> mtime_ns;  // the due time; unset = now
  bool sync = true;                      // fsync the file and the directory
  unsigned mode = 0600;                  // set exactly (fchmod), whatever the umask
  // The name is new (not a rewrite in place): when the directory cannot be
  // synced after the rename, the file is removed again, so that an error
  // always means "nothing was written" (a task never ends up in two places).
  bool new_name = false;
};

// Writes bytes to dirfd/name atomically: a .spoold-tmp- file in the same
// directory, then rename() over name. A reader never sees a partial file.
// dir_name is only for messages.
result<void> write_file_atomically(int dirfd, const std::string& dir_name, const std::string& name,
                                   std::string_view bytes, const write_options& options);

}  // namespace spoold
