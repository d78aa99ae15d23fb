// What one entry of a Redis queue may hold (README, Redis Streams): the
// spoolers fail an entry over these limits (redis_source) and the producers
// refuse to write one (redis_producer), so a task that fits a spool file
// fits an entry and the other way round.
#pragma once

#include <cstddef>

namespace spoold {

inline constexpr std::size_t k_max_entry_fields = 2000;       // key/value pairs, spoold.* included
inline constexpr std::size_t k_max_args_bytes = 65535;        // a spool file's args block
inline constexpr std::size_t k_max_body_bytes = 64u << 20;    // 64 MiB

}  // namespace spoold
