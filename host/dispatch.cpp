#include "dispatch.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "logging.hpp"

namespace spoold {

namespace {

// Tasks a spooler may hold at once: the one it runs and the ones waiting
// behind it, so it never sits idle waiting for the master between tasks.
// Two hide one round trip. A queue of short tasks (averaging under
// k_short_task_ns in the plugin chain) gets a pipeline sized by time: about
// k_in_hand_ns of work per spooler, at most k_max_depth names. A spooler then
// runs a burst per wake-up of the master and never starves while the master
// waits for a core, and a task waits behind about a millisecond of other
// work, as long as tasks take their usual time (see k_stall_ns for those
// that do not).
constexpr std::size_t k_depth = 2;
constexpr std::size_t k_max_depth = 64;
constexpr double k_in_hand_ns = 1'000'000;
constexpr double k_short_task_ns = 500'000;
static_assert(k_max_depth / 2 <= k_max_batch, "a batch is half a pipeline and must fit in one message");

std::size_t pipeline_depth(double avg_task_ns) {
  if (avg_task_ns >= k_short_task_ns) return k_depth;
  const double names = k_in_hand_ns / std::max(1.0, avg_task_ns);
  return std::clamp(static_cast<std::size_t>(names), k_depth, k_max_depth);
}

}  // namespace

bool dispatcher::dispatch(std::vector<std::unique_ptr<queue_runtime>>& queues, spooler_pool& pool) {
  const std::int64_t now = now_ns();
  bool hungry = false;
  std::string message;
  for (auto& q : queues) {
    if (q->retired || !q->index) continue;  // a Redis queue's spoolers take their own
    const std::size_t depth = pipeline_depth(q->avg_task_ns);
    // Hand out half a pipeline at a time so that spoolers share a burst
    // evenly.
    const std::size_t chunk = depth > k_depth ? depth / 2 : 1;
    for (bool more = true; more;) {
      spooler_proc* best = nullptr;
      for (const auto& [pid, p] : pool.procs()) {
        if (p->queue != q.get() || !p->ready || p->retiring || p->in_hand.size() >= depth || p->stalled() ||
            p->slot->leaving.load() != 0) {
          continue;
        }
        if (best == nullptr || p->in_hand.size() < best->in_hand.size()) best = p.get();
      }
      if (best == nullptr) break;
      message.clear();
      const std::size_t first = best->in_hand.size();
      for (std::size_t i = 0; i < chunk && best->in_hand.size() < depth; ++i) {
        auto task = q->index->next_due(now);
        if (!task) {
          more = false;
          hungry = true;
          break;
        }
        task->seq = ++seq_;
        best->in_hand.push_back(std::move(*task));
        append(best->in_hand.back(), message);
        spdlog::trace("queue {}: #{} {} -> spooler {}", q->cfg.name, seq_, best->in_hand.back().task, best->pid);
      }
      if (message.empty()) break;
      if (auto sent = send_message(best->sock.get(), message.data(), message.size(), MSG_DONTWAIT, "a spooler");
          !sent) {
        // A spooler we cannot talk to is replaced; its batch goes back
        // (a debt stays with its task in the index). One that is leaving
        // by itself (it closed its socket after its last report) is
        // replaced when it exits, as a recycle.
        const bool leaving = best->slot->leaving.load() != 0;
        if (!leaving) spdlog::warn("queue {}: spooler {}: {}: it is replaced", q->cfg.name, best->pid, sent.err().message);
        while (best->in_hand.size() > first) {
          q->index->on_returned(best->in_hand.back().task);
          best->in_hand.pop_back();
        }
        if (!leaving) pool.retire(*best);
      }
    }
  }
  return hungry;
}

void dispatcher::take_back_from_stalled(spooler_pool& pool) {
  const std::int64_t mono = monotonic_ns();
  for (const auto& [pid, p] : pool.procs()) {
    const std::uint64_t seq = p->slot->current_seq.load();
    if (seq == 0 || seq == p->stalled_seq || mono - p->slot->started_ns.load() < k_stall_ns) continue;
    p->stalled_seq = seq;
    if (p->in_hand.empty() || p->in_hand.back().seq <= seq) continue;
    p->slot->revoked_to.store(p->in_hand.back().seq);
    p->slot->revoked_after.store(seq);
    std::size_t returned = 0;
    for (; !p->in_hand.empty() && p->in_hand.back().seq > seq; ++returned) {
      p->queue->index->on_returned(p->in_hand.back().task);
      p->in_hand.pop_back();
    }
    spdlog::debug("spooler {} (queue {}) is in a long task: {} name(s) queued behind it go to other spoolers", pid,
                  p->queue->cfg.name, returned);
  }
}

}  // namespace spoold
