#include "reload.hpp"

#include <algorithm>

#include "logging.hpp"
#include "privilege_review.hpp"

namespace spoold {

namespace {
// The same directory, or the same stream of the same server.
bool same_source(const queue_config& a, const queue_config& b) {
  if (a.redis.has_value() != b.redis.has_value()) return false;
  if (!a.redis) return a.dir == b.dir;
  return a.redis->url.display() == b.redis->url.display() && a.redis->stream == b.redis->stream;
}
}  // namespace

std::unique_ptr<pending_reload> begin_reload(const std::string& path) {
  spdlog::info("SIGHUP: re-reading {}", path);
  auto loaded = load_config(path);
  const auto privileges = review_privileges(loaded.value);
  loaded.problems.insert(loaded.problems.end(), privileges.problems.begin(), privileges.problems.end());
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) spdlog::error("reload refused: {}", p);
    spdlog::error("reload refused: the running configuration stays in force");
    return nullptr;
  }
  for (const auto& n : privileges.notes) spdlog::info("reload: {}", n);
  for (const auto& w : privileges.warnings) spdlog::warn("reload: {}", w);
  auto check = plugin_check::start(loaded.value, check_depth::load_and_init);
  if (!check) {
    spdlog::error("reload refused: {}; the running configuration stays in force", check.err().message);
    return nullptr;
  }
  spdlog::info("reload: checking the plugins of {} queue(s) in process {}", loaded.value.queues.size(), check->pid());
  return std::make_unique<pending_reload>(pending_reload{std::move(loaded.value), std::move(*check)});
}

void apply_reload(config& current, config next, std::vector<std::unique_ptr<queue_runtime>>& queues,
                  spooler_pool& pool, int inotify_fd) {
  std::vector<std::unique_ptr<queue_runtime>> kept;
  std::vector<std::unique_ptr<queue_runtime>> added;
  for (const auto& q : next.queues) {
    auto same = std::find_if(queues.begin(), queues.end(),
                             [&](const auto& rt) { return rt && !rt->retired && same_source(rt->cfg, q); });
    if (same != queues.end()) {
      auto& rt = *same;
      rt->cfg = q;
      rt->deaths_in_a_row = 0;
      rt->respawn_at = 0;
      if (rt->dir) rt->dir->clear_ignored();
      if (rt->index) rt->index->forget_ignored();
      kept.push_back(std::move(rt));
      continue;
    }
    auto rt = open_queue(q, inotify_fd);
    if (!rt) {
      spdlog::error("reload: queue {} not started: {}", q.name, rt.err().message);
      continue;
    }
    added.push_back(std::move(*rt));
  }
  for (auto& rt : queues) {
    if (rt) {
      rt->retired = true;
      kept.push_back(std::move(rt));
    }
  }
  pool.retire_all();
  pool.offer_ignored_again();
  for (auto& rt : added) kept.push_back(std::move(rt));
  queues = std::move(kept);
  current = std::move(next);
  setup_logging(current.host.log_level, current.host.log_format, "master");
  spdlog::info("reloaded: {} queue(s); tasks no plugin took are offered again", current.queues.size());
}

}  // namespace spoold
