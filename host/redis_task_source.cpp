#include "redis_task_source.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "backoff.hpp"
#include "logging.hpp"
#include "process_status.hpp"
#include "spooler.hpp"

namespace spoold {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds k_max_block{500};
constexpr std::int64_t k_streams_refresh_ms = 1000;
constexpr std::size_t k_max_batch_entries = 64;


std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

// The `at` field (unix seconds, as uWSGI writes it, maybe with a fraction)
// in ms, or nullopt when absent or not a number.
std::optional<std::int64_t> at_ms(const redis_task& t) {
  for (const auto& [k, v] : t.args) {
    if (k != "at") continue;
    double at = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), at);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
    return static_cast<std::int64_t>(at * 1000.0);
  }
  return std::nullopt;
}

std::string last_error(const redis_entry& e) {
  for (const auto& [k, v] : e.fields) {
    if (k == "spoold.error") return v;
  }
  return {};
}


}  // namespace

redis_task_source::redis_task_source(const queue_config& queue, const plugin_chain& chain, int socket_fd,
                                     spooler_slot* slot, spooler_board* board, pid_t master_pid)
    : queue_(queue),
      chain_(chain),
      slot_(slot),
      board_(board),
      prefix_(host_name() + ":" + std::to_string(master_pid) + ":"),
      source_(queue, prefix_ + std::to_string(::getpid())),
      backlog_key_(backlog_key(queue)),
      link_(queue, source_, board, socket_fd, slot) {
  (void)link_.connected(false);
  spdlog::debug("spooler for queue {}: consumer {} of group {} on {}", queue_.name, source_.consumer(),
                queue_.redis->group, queue_.redis->stream);
}

bool redis_task_source::stopping() const { return told_to_stop(*slot_); }

bool redis_task_source::take(source_task& t) {
  while (!stopping()) {
    if (!held_.empty()) {
      held_entry h = std::move(held_.front());
      held_.pop_front();
      if (hand_out(std::move(h), t)) return true;
      continue;
    }
    if (!link_.connected(true)) continue;
    maintain();
    if (held_.empty() && link_.up()) fetch();
  }
  return false;
}

// Makes a held entry the task in hand (t): true, or false when it is not
// one to run: a malformed entry (to the failed stream) or one written
// straight into the stream with an `at` still ahead (to the delayed set).
bool redis_task_source::hand_out(held_entry h, source_task& t) {
  current_ = std::move(h.entry);
  current_task_ = parse_entry(current_);
  const redis_task& task = current_task_;
  if (!task.malformed.empty()) {
    log_event(spdlog::level::warn,
              log_fields::about_task(task.task_id.empty() ? current_.id : task.task_id, queue_.name)
                  .with_status("unparsable")
                  .with_error(task.malformed),
              "moved to " + queue_.redis->stream + ":failed");
    link_.push(source_.fail_command(current_, task.attempt,
                                    task.malformed + " (entry " + current_.id + " of " + current_.stream + ")"));
    return false;
  }
  if (auto at = at_ms(task); h.owed_try.empty() && at && *at > now_ms()) {
    link_.push(source_.retry_command(current_, task.task_id, task.attempt, last_error(current_), *at));
    return false;
  }
  t.seq = ++seq_;
  t.id = task.task_id;
  t.attempt = task.attempt;
  t.body = task.body;
  t.owed_try = std::move(h.owed_try);
  t.args.clear();
  for (const auto& [k, v] : task.args) t.args.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
  show_in_slot(current_);
  return true;
}

// Before the chain runs: which entry this spooler is inside, for the
// master's exit note should it die there.
void redis_task_source::show_in_slot(const redis_entry& e) {
  const entry_ref r = make_entry_ref(queue_.redis->stream, e.stream, e.id).value_or(entry_ref{-2, 0, 0});
  slot_->entry_priority.store(r.priority);
  slot_->entry_ms.store(r.ms);
  slot_->entry_seq.store(r.seq);
}

void redis_task_source::record(const source_task& t, const chain_verdict& v) {
  avg_task_ns_ = avg_task_ns_ == 0 ? static_cast<double>(v.took_ns) : avg_task_ns_ * 0.8 + static_cast<double>(v.took_ns) * 0.2;
  log_fields line = chain_.line(t.id, v, t.attempt);
  if (v.is(Status::Ok)) {
    link_.push(source_.ok_command(current_));
    log_event(spdlog::level::info, line, "");
  } else if (v.is(Status::Ignore)) {
    link_.push(source_.ignore_command(current_));
    log_event(spdlog::level::info, line, "left unacknowledged, not offered again");
  } else {
    finish(current_, current_task_, v.error, v.is(Status::Fail), line);
  }
}

// An entry taken over from a dead spooler or host: its try is counted, and
// it runs again only after the backoff (or is failed).
void redis_task_source::record_owed_try(const source_task& t) {
  log_fields line = log_fields::about_task(t.id, queue_.name)
                        .with_status(t.owed_try.rfind("timed out", 0) == 0 ? "timeout" : "crash")
                        .with_attempt(t.attempt);
  line.plugin = chain_.text();
  finish(current_, current_task_, t.owed_try, false, line);
}

// Counts a try that did not succeed: failed stream at once or after
// max_attempts, otherwise delayed by the backoff.
void redis_task_source::finish(const redis_entry& e, const redis_task& t, std::string reason, bool fail_now,
                               log_fields& line) {
  const unsigned tries = t.attempt + 1;
  const bool give_up = fail_now || tries >= queue_.max_attempts;
  if (give_up && !fail_now) {
    reason += " (gave up after " + std::to_string(tries) + " of max_attempts " + std::to_string(queue_.max_attempts) + ")";
  }
  line.error = reason;
  if (give_up) {
    link_.push(source_.fail_command(e, tries, reason));
    log_event(spdlog::level::warn, line, "moved to " + queue_.redis->stream + ":failed");
    return;
  }
  const duration delay = retry_delay(tries, queue_.backoff, queue_.backoff_max, random_jitter());
  link_.push(source_.retry_command(e, t.task_id, tries, reason, now_ms() + delay.count()));
  const std::string in = format_duration(delay);  // line only views it
  line.next_try_in = in;
  log_event(spdlog::level::info, line, "");
}

// Entries handed to this spooler and not started go back to their stream
// with no try counted (a try owed for one is counted first); the outcomes
// reach Redis before we go, however long it takes to come back when we are
// recycled, once more when we are told to stop.
int redis_task_source::close() {
  source_task t;
  while (!held_.empty()) {
    held_entry h = std::move(held_.front());
    held_.pop_front();
    if (h.owed_try.empty()) {
      link_.push(source_.release_command(h.entry));
    } else if (hand_out(std::move(h), t)) {
      record_owed_try(t);
    }
  }
  while (link_.outcomes_on_their_way() != 0 && !stopping()) {
    if (link_.connected(true)) (void)link_.flush();
  }
  if (link_.outcomes_on_their_way() != 0 && link_.connected(false)) (void)link_.flush();
  const std::size_t left = link_.outcomes_on_their_way();
  if (left != 0) {
    spdlog::warn("spooler for queue {}: exiting with {} outcome(s) Redis did not take: those entries stay pending "
                 "and run again after the lease",
                 queue_.name, left);
  } else if (link_.up()) {
    source_.leave(link_.conn(), streams_);
  }
  return k_spooler_exit_ok;
}

// The streams of the queue every second (a new priority), and the entries
// of dead spoolers of this host (at once) and of hosts that stopped
// answering (after the lease).
void redis_task_source::maintain() {
  const std::int64_t now = monotonic_ms();
  if (now < next_streams_ms_ && now < next_takeover_ms_ && ignored_offered_) return;
  // The replies of outcomes written are read first: the commands below
  // read theirs from the same connection.
  if (!link_.flush() || !link_.up()) return;
  if (now >= next_streams_ms_) {
    auto p = source_.priorities(link_.conn());
    if (!p) return link_.lost(p.err());
    streams_ = queue_streams(queue_.redis->stream, *p);
    next_streams_ms_ = now + k_streams_refresh_ms;
    if (board_ != nullptr) {
      auto b = source_.backlog(link_.conn(), streams_);
      if (!b) return link_.lost(b.err());
      board_->post_backlog(backlog_key_, *b, now_ms());
    }
  }
  if (!ignored_offered_) {
    // Spoolers are replaced at a reload: the first look of each suffices.
    const std::string token = prefix_ + "reload" + std::to_string(board_ != nullptr ? board_->reloads.load() : 0);
    auto again = source_.offer_ignored(link_.conn(), streams_, token);
    if (!again) return link_.lost(again.err());
    ignored_offered_ = true;
    if (!again->empty()) {
      spdlog::info("queue {}: {} task(s) no plugin took are offered again (host start or reload)", queue_.name,
                   again->size());
    }
    for (auto& e : *again) held_.push_back({std::move(e), {}});
  }
  if (now < next_takeover_ms_) return;
  next_takeover_ms_ = now + std::max<std::int64_t>(1000, queue_.redis->lease.count() / 4);
  take_over_dead();
  if (!link_.up()) return;
  auto expired = source_.take_over_expired(link_.conn(), streams_);
  if (!expired) return link_.lost(expired.err());
  for (auto& e : *expired) {
    hold_taken_over(e, "not acknowledged within the lease of " + format_duration(queue_.redis->lease) +
                           ": its host stopped");
  }
}

// A dead spooler of this host was handed its entries in a batch: the
// master's exit note says which one it was inside (that one owes a try);
// the others were never started and run as they are. Without a note (the
// master has not reaped it yet) it waits for the next look; with no board
// at all, every entry it held owes a try.
void redis_task_source::take_over_dead() {
  auto dead = source_.dead_consumers(link_.conn(), streams_, prefix_);
  if (!dead) return link_.lost(dead.err());
  for (const auto& d : *dead) {
    const std::optional<exit_note> note = board_ != nullptr ? board_->find(d.pid) : std::nullopt;
    if (!note && board_ != nullptr && ++unnoted_[d.name] < 3) continue;
    unnoted_.erase(d.name);
    auto entries = source_.take_over(link_.conn(), d);
    if (!entries) return link_.lost(entries.err());
    std::string why = "spooler " + d.name + " died holding it";
    if (note) {
      why = note->timed_out ? "timed out after " + format_duration(queue_.timeout)
                            : "spooler " + describe_exit(note->wait_status);
    }
    for (auto& e : *entries) {
      const bool was_inside = !note || (note->in_task && make_entry_ref(queue_.redis->stream, e.stream, e.id) ==
                                                             note->in_task);
      hold_taken_over(e, was_inside ? why : std::string());
    }
    if (!link_.up()) return;
  }
}

void redis_task_source::hold_taken_over(const redis_entry& e, std::string owed) {
  if (!link_.up()) return;
  auto ignored = source_.is_ignored(link_.conn(), e);
  if (!ignored) return link_.lost(ignored.err());
  if (*ignored) return;  // no plugin took it: it stays, no try
  // Owed tries first: counting one runs no plugin.
  if (owed.empty()) {
    held_.push_back({e, {}});
  } else {
    held_.push_front({e, std::move(owed)});
  }
}

std::size_t redis_task_source::batch_size() const {
  const double window_ns = static_cast<double>(queue_.redis->batch_window.count()) * 1e6;
  if (window_ns <= 0 || avg_task_ns_ <= 0) return 1;  // one at a time, or nothing known of the tasks yet
  const double n = window_ns / avg_task_ns_;
  return static_cast<std::size_t>(std::clamp(n, 1.0, static_cast<double>(k_max_batch_entries)));
}

// The replies of the outcomes written, then the next batch, in one round
// trip; when there is none, a blocking read until one comes (or a delayed
// task is due).
void redis_task_source::fetch() {
  const std::size_t count = batch_size();
  auto reply = link_.call_after_outcomes(source_.take_command(streams_, now_ms(), count));
  if (!reply) return;
  const redisReply* r = reply->get();
  if (is_error(r)) return link_.server_error("take an entry", reply_text(r));
  std::int64_t next_due = -1;
  auto entries = redis_source::read_take(r, next_due);
  if (!entries.empty()) {
    for (auto& e : entries) held_.push_back({std::move(e), {}});
    return;
  }
  std::int64_t block = k_max_block.count();
  if (next_due >= 0) block = std::clamp<std::int64_t>(next_due - now_ms(), 1, block);
  auto waited = source_.wait(link_.conn(), streams_, milliseconds(block), count);
  if (!waited) {
    if (link_.conn().broken()) return link_.lost(waited.err());
    // A stream deleted under us (spoolctl purge --all, a FLUSHDB): the
    // next take creates it and its group again.
    const std::string& why = waited.err().message;
    if (why.find("NOGROUP") != std::string::npos || why.find("UNBLOCKED") != std::string::npos) return;
    return link_.server_error("wait for an entry", waited.err().message);
  }
  for (auto& e : *waited) held_.push_back({std::move(e), {}});
}

}  // namespace spoold
