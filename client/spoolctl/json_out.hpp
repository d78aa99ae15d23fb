// spoolctl --json: one document per call, fields in the order the README
// documents them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace spoold {

using json = nlohmann::ordered_json;

// Bytes from a task file or a directory as a JSON string: as they are when
// they are valid UTF-8, otherwise escaped as the text output does
// (escape_bytes: \xHH for each byte that is not, \\ for a backslash).
std::string json_text(std::string_view bytes);

// An instant as unix seconds with millisecond precision (1764643200.123).
json json_time(std::int64_t ns);
json json_time(std::optional<std::int64_t> ns);

// Writes the document and a newline to stdout; the exit status.
int print_json(const json& doc);

}  // namespace spoold
