// systemd's service notifications (sd_notify) for a Type=notify unit:
// READY=1 once every queue's spoolers are ready, RELOADING=1 and READY=1
// around a reload, STOPPING=1, a STATUS= line with the totals, and
// WATCHDOG=1 when the unit sets WatchdogSec. Without NOTIFY_SOCKET in the
// environment every call does nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "queue_runtime.hpp"
#include "spooler_pool.hpp"

namespace spoold {

class service_notifier {
 public:
  // Reads NOTIFY_SOCKET and the watchdog settings (WATCHDOG_USEC, for this
  // pid only) of the environment.
  service_notifier();

  // On every turn of the master's loop: sends READY=1 and the totals once
  // every live queue has its spoolers ready, after the start or a reload.
  void on_turn(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool);
  // A reload began: RELOADING=1, then READY=1 after one of the two below.
  void on_reloading();
  // The new configuration is in force: READY=1 waits for its spoolers.
  void on_reload_applied();
  // The running configuration stays: READY=1 at once.
  void on_reload_refused();
  void on_stopping();
  // The watchdog ping and a refresh of the STATUS= totals, when due.
  void on_timer(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool);
  // The monotonic time on_timer() has work; INT64_MAX when never.
  std::int64_t next_deadline() const;

 private:
  void send(const std::string& state);
  void send_status(const std::vector<std::unique_ptr<queue_runtime>>& queues, const spooler_pool& pool);

  bool active_ = false;
  bool ready_due_ = true;  // READY=1 is owed once the spoolers are ready
  bool reloading_ = false;  // RELOADING=1 sent, the new configuration not in force yet
  bool stopping_ = false;
  bool warned_ = false;
  std::int64_t watchdog_period_ns_ = 0;  // half of WATCHDOG_USEC; 0 = off
  std::int64_t next_ping_ = 0;
  std::int64_t next_status_ = 0;
  std::string last_status_;
};

}  // namespace spoold
