#include "notify.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "logging.hpp"
#include "posix.hpp"

namespace spoold {

namespace {
constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();
// How often the STATUS= totals are refreshed while the host runs.
constexpr std::int64_t k_status_period_ns = 5'000'000'000;

bool spoolers_ready(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool) {
  for (const auto& q : queues) {
    if (q->retired) continue;
    std::size_t ready = 0;
    // Retiring spoolers of the old generation do not count: after a reload
    // READY=1 means the new configuration is serving.
    for (const auto& [pid, p] : pool.procs()) {
      if (p->queue == q.get() && !p->retiring && p->ready) ++ready;
    }
    if (ready < q->cfg.processes) return false;
  }
  return true;
}
}  // namespace

service_notifier::service_notifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  active_ = socket != nullptr && socket[0] != '\0';
  if (!active_) return;
  std::uint64_t usec = 0;
  // Positive only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us.
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_period_ns_ = static_cast<std::int64_t>(usec) * 1000 / 2;
    next_ping_ = monotonic_ns();
    spdlog::info("systemd watchdog: WATCHDOG_USEC={}, pinging every {}ms", usec, watchdog_period_ns_ / 1'000'000);
  }
}

void service_notifier::send(const std::string& state) {
  if (!active_) return;
  const int r = ::sd_notify(0, state.c_str());
  if (r < 0 && !warned_) {
    warned_ = true;  // once: a socket that is gone stays gone
    spdlog::warn("sd_notify to NOTIFY_SOCKET={} failed: {} (further failures are not logged)",
                 std::getenv("NOTIFY_SOCKET") != nullptr ? std::getenv("NOTIFY_SOCKET") : "", errno_text(-r));
  }
}

void service_notifier::send_status(const std::vector<std::unique_ptr<queue_runtime>>& queues,
                                   const spooler_pool& pool) {
  std::size_t live = 0, pending = 0, delayed = 0, in_flight = 0, spoolers = 0, ready = 0;
  for (const auto& q : queues) {
    if (q->retired) continue;
    ++live;
    if (!q->index) continue;
    const auto c = q->index->count();
    pending += c.pending;
    delayed += c.delayed;
    in_flight += c.in_flight;
  }
  for (const auto& [pid, p] : pool.procs()) {
    ++spoolers;
    if (p->ready) ++ready;
  }
  std::string text = stopping_ ? "stopping: " : "";
  text += std::to_string(live) + " queue(s), " + std::to_string(ready) + "/" + std::to_string(spoolers) +
          " spoolers ready, " + std::to_string(pending) + " pending, " + std::to_string(delayed) + " delayed, " +
          std::to_string(in_flight) + " in flight";
  if (text == last_status_) return;
  last_status_ = text;
  send("STATUS=" + text);
}

void service_notifier::on_turn(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool) {
  if (!active_ || !ready_due_ || reloading_ || stopping_ || !spoolers_ready(queues, pool)) return;
  ready_due_ = false;
  send_status(queues, pool);
  send("READY=1");
  spdlog::debug("systemd: READY=1 sent ({})", last_status_);
}

void service_notifier::on_reloading() {
  if (!active_) return;
  // MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) match the reload.
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_ns() / 1000));
  reloading_ = true;
}

void service_notifier::on_reload_applied() {
  // on_turn() sends READY=1 once the new spoolers are ready.
  reloading_ = false;
  ready_due_ = true;
}

void service_notifier::on_reload_refused() {
  if (!active_) return;
  reloading_ = false;
  if (ready_due_) return;  // still starting: READY=1 comes when the spoolers are ready
  send("READY=1\nSTATUS=reload refused: the running configuration stays in force");
  last_status_.clear();
}

void service_notifier::on_stopping() {
  if (!active_ || stopping_) return;
  stopping_ = true;
  send("STOPPING=1");
}

void service_notifier::on_timer(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool) {
  if (!active_) return;
  const std::int64_t now = monotonic_ns();
  if (watchdog_period_ns_ > 0 && now >= next_ping_) {
    send("WATCHDOG=1");
    next_ping_ = now + watchdog_period_ns_;
  }
  if (!ready_due_ && now >= next_status_) {
    send_status(queues, pool);
    next_status_ = now + k_status_period_ns;
  }
}

std::int64_t service_notifier::next_deadline() const {
  if (!active_) return k_never;
  std::int64_t wake = ready_due_ ? k_never : next_status_;
  if (watchdog_period_ns_ > 0) wake = std::min(wake, next_ping_);
  return wake;
}

}  // namespace spoold
