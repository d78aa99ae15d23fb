#include "plugin_chain.hpp"

#include "spooler.hpp"

namespace spoold {

const char* status_name(std::int32_t s) {
  switch (s) {
    case static_cast<int>(Status::Ok): return "ok";
    case static_cast<int>(Status::Retry): return "retry";
    case static_cast<int>(Status::Fail): return "fail";
    case static_cast<int>(Status::Ignore): return "ignore";
    default: return "unknown";
  }
}

int plugin_chain::load(const host_config& host, const queue_config& queue, spooler_slot* slot) {
  queue_ = queue.name;
  for (const auto& name : queue.plugins) {
    slot->init_plugin.store(static_cast<std::uint32_t>(plugins_.size()));
    auto loaded = load_plugin(host, name);
    if (!loaded) {
      spdlog::error("spooler for queue {}: {}", queue.name, loaded.err().message);
      return k_spooler_exit_plugin;
    }
    log_contexts_.push_back(std::make_unique<plugin_log_context>(plugin_log_context{name, queue.name}));
    if (auto init = (*loaded)->init(queue.name, queue.options, log_contexts_.back().get(), &plugin_log,
                                    queue.plugins.size());
        !init) {
      spdlog::error("spooler for queue {}: {}", queue.name, init.err().message);
      return k_spooler_exit_plugin;
    }
    plugins_.push_back(std::move(*loaded));
  }
  for (const auto& p : plugins_) text_ += (text_.empty() ? "" : " -> ") + p->name();
  return 0;
}

chain_verdict plugin_chain::run(std::uint32_t attempt, std::string_view id, const std::vector<spoold_arg>& args,
                                std::string_view body) {
  const std::int64_t started = monotonic_ns();
  spoold_task_view view{sizeof(spoold_task_view),
                        attempt,
                        {id.data(), id.size()},
                        {queue_.data(), queue_.size()},
                        args.data(),
                        args.size(),
                        {body.data(), body.size()}};
  chain_verdict v;
  const loaded_plugin* decided_by = nullptr;
  for (const auto& plugin : plugins_) {
    handle_outcome o = plugin->handle(view);
    if (o.failed) {
      v.status = static_cast<std::int32_t>(Status::Fail);
      v.error = "plugin '" + plugin->name() + "' failed the task: " + o.error;
      decided_by = plugin.get();
      break;
    }
    if (o.threw) {
      v.status = static_cast<std::int32_t>(Status::Retry);
      v.error = "plugin '" + plugin->name() + "' threw: " + o.error;
      decided_by = plugin.get();
      break;
    }
    if (o.status == static_cast<std::int32_t>(Status::Ignore)) continue;
    decided_by = plugin.get();
    v.status = o.status;
    if (!v.is(Status::Ok) && !v.is(Status::Retry) && !v.is(Status::Fail)) {
      v.error = "plugin '" + plugin->name() + "' returned " + std::to_string(v.status) +
                ", which is not a Status (Ok -2, Retry -1, Fail -3, Ignore 0): treated as Retry";
      v.status = static_cast<std::int32_t>(Status::Retry);
    } else if (!o.error.empty()) {  // the reason of task.retry() / task.fail()
      v.error = "plugin '" + plugin->name() + "' returned " + (v.is(Status::Fail) ? "Fail: " : "Retry: ") + o.error;
    }
    break;
  }
  v.took_ns = monotonic_ns() - started;
  v.plugin = decided_by != nullptr ? decided_by->name() : text_;
  if ((v.is(Status::Retry) || v.is(Status::Fail)) && v.error.empty()) {
    v.error = "plugin '" + v.plugin + "' returned " + (v.is(Status::Fail) ? "Fail" : "Retry");
  }
  return v;
}

log_fields plugin_chain::line(std::string_view id, const chain_verdict& v, std::uint32_t attempt) const {
  return log_fields::about_task(id, queue_)
      .with_plugin(v.plugin)
      .with_status(status_name(v.status))
      .with_attempt(attempt)
      .with_duration_ms(static_cast<double>(v.took_ns) / 1e6);
}

}  // namespace spoold
