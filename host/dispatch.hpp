// Naming due tasks to ready spoolers: the pipeline each spooler holds, and
// the take-back of names queued behind a task that runs long.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "queue_runtime.hpp"
#include "spooler_pool.hpp"

namespace spoold {

// A task that has run this long (far beyond the ~1 ms a pipeline holds)
// would hold up the names queued behind it in its spooler: the master gives
// them to other spoolers and names no more to that one until the task ends.
inline constexpr std::int64_t k_stall_ns = 10'000'000;

class dispatcher {
 public:
  // Names due tasks to ready spoolers with room, a batch per message.
  // Returns true when some spooler has room and nothing is due: the master
  // then needs inotify events to wake it.
  bool dispatch(std::vector<std::unique_ptr<queue_runtime>>& queues, spooler_pool& pool);
  // Names queued behind a task that has run past k_stall_ns go back to the
  // index for the other spoolers (the spooler is told to skip them), and
  // the spooler gets no more until that task ends.
  void take_back_from_stalled(spooler_pool& pool);

 private:
  std::uint64_t seq_ = 0;  // assignment numbers; 0 is k_ready_seq
};

}  // namespace spoold
