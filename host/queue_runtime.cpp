#include "queue_runtime.hpp"

#include "dir_trust.hpp"
#include "logging.hpp"

namespace spoold {

result<std::unique_ptr<queue_runtime>> open_queue(const queue_config& q, int inotify_fd) {
  if (q.redis) {  // its spoolers talk to the server; the master only supervises them
    auto rt = std::make_unique<queue_runtime>();
    rt->cfg = q;
    return rt;
  }
  auto dir = queue_dir::open(q);
  if (!dir) return dir.err();
  // Again now that the directory exists: --check and the start judged a
  // missing one by dir_mode, and anything may have changed since.
  if (auto trust = check_dir_trust(q); !trust.problems.empty()) {
    std::string all;
    for (const auto& p : trust.problems) all += (all.empty() ? "" : "; ") + p;
    return make_error(all);
  }
  auto rt = std::make_unique<queue_runtime>();
  rt->cfg = q;
  rt->dir = std::make_unique<queue_dir>(std::move(*dir));
  rt->dir->clear_ignored();
  if (unsigned n = rt->dir->remove_stale_temp_files(k_stale_temp_age_ns, now_ns(), true); n > 0) {
    spdlog::info("queue {}: removed {} stale temporary file(s) left by a crash", q.name, n);
  }
  rt->index = std::make_unique<queue_index>(*rt->dir, inotify_fd);
  if (auto started = rt->index->start(); !started) return started.err();
  return rt;
}

}  // namespace spoold
