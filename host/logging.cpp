#include "logging.hpp"

#include <stdexcept>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace spoold {

namespace {

// Set by setup_logging(): which payload log_event() hands spdlog.
bool g_json = false;
std::string g_queue;

// The fields of the line being written, for the JSON formatter's flag. A
// thread's own: plugins may log from threads of their own.
thread_local const log_fields* t_fields = nullptr;
thread_local const status_counts* t_status = nullptr;

// The length of the valid UTF-8 sequence at text[i] (a byte >= 0x80), or 0.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = at(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead == 0xe0) lo = 0xa0;
    if (lead == 0xed) hi = 0x9f;  // no UTF-16 surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead == 0xf0) lo = 0x90;
    if (lead == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  }
  return n;
}

// text as the inside of a JSON string: quotes, backslashes and control
// characters escaped, UTF-8 kept, any other byte written as \u00XX.
void append_json_text(spdlog::memory_buf_t& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto escaped_byte = [&](unsigned char u) {
    const char esc[] = {'\\', 'u', '0', '0', hex[u >> 4], hex[u & 0xf]};
    out.append(esc, esc + sizeof(esc));
  };
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      if (const std::size_t n = utf8_length(text, i); n != 0) {
        out.append(text.data() + i, text.data() + i + n);
        i += n;
      } else {
        escaped_byte(u);
        ++i;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append(std::string_view("\\n"));
    } else if (c == '\r') {
      out.append(std::string_view("\\r"));
    } else if (c == '\t') {
      out.append(std::string_view("\\t"));
    } else if (u < 0x20 || u == 0x7f) {
      escaped_byte(u);
    } else {
      out.push_back(c);
    }
    ++i;
  }
}

void append_json_field(spdlog::memory_buf_t& out, std::string_view name, std::string_view value) {
  out.append(std::string_view(",\""));
  out.append(name);
  out.append(std::string_view("\":\""));
  append_json_text(out, value);
  out.push_back('"');
}

void append_json_number(spdlog::memory_buf_t& out, std::string_view name, std::string_view number) {
  out.append(std::string_view(",\""));
  out.append(name);
  out.append(std::string_view("\":"));
  out.append(number);
}

// %j: the message as the inside of a JSON string.
class json_message_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    append_json_text(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_message_flag>(); }
};

// %F: the fields of a structured line, each ",\"name\":value".
class json_fields_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const log_fields* f = t_fields;
    const status_counts* s = t_status;
    std::string_view queue = g_queue;
    if (f != nullptr && !f->queue.empty()) queue = f->queue;
    if (s != nullptr) queue = s->queue;
    if (!queue.empty()) append_json_field(dest, "queue", queue);
    if (f != nullptr) {
      if (!f->task.empty()) append_json_field(dest, "task", f->task);
      if (!f->plugin.empty()) append_json_field(dest, "plugin", f->plugin);
      if (!f->status.empty()) append_json_field(dest, "status", f->status);
      if (f->attempt) append_json_number(dest, "attempt", std::to_string(*f->attempt));
      if (f->duration_ms) append_json_number(dest, "duration_ms", fmt::format("{:.3f}", *f->duration_ms));
      if (!f->next_try_in.empty()) append_json_field(dest, "next_try_in", f->next_try_in);
      if (!f->error.empty()) append_json_field(dest, "error", f->error);
    }
    if (s != nullptr) {
      for (const auto& [name, count] : s->counts) append_json_number(dest, name, std::to_string(count));
      append_json_number(dest, "pending_complete", s->pending_complete ? "true" : "false");
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_fields_flag>(); }
};

// Clears the thread's fields however the call ends.
struct fields_in_scope {
  fields_in_scope(const log_fields* f, const status_counts* s) {
    t_fields = f;
    t_status = s;
  }
  ~fields_in_scope() {
    t_fields = nullptr;
    t_status = nullptr;
  }
  fields_in_scope(const fields_in_scope&) = delete;
  fields_in_scope& operator=(const fields_in_scope&) = delete;
};

}  // namespace

void setup_logging(const std::string& level, const std::string& format, const std::string& role) {
  // load_config() lets only these through; anything else is our bug.
  if (format != "text" && format != "json") throw std::invalid_argument("log_format '" + format + "' is not text or json");
  // Not registered by name: a reload installs a new one for the same role.
  auto logger = std::make_shared<spdlog::logger>("spoold-" + role, std::make_shared<spdlog::sinks::stderr_sink_st>());
  g_json = format == "json";
  if (g_json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<json_message_flag>('j').add_flag<json_fields_flag>('F').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","pid":%P,"role":")" + role + R"("%F,"message":"%j"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [" + role + " %P] %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void set_log_queue(std::string queue) { g_queue = std::move(queue); }

void log_event(spdlog::level::level_enum level, const log_fields& f, std::string_view message) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  fmt::memory_buffer text;
  if (g_json) {
    // The words alone: each field has its own key.
    if (!message.empty()) {
      text.append(message);
    } else {
      fmt::format_to(std::back_inserter(text), "task{}{}", f.status.empty() ? "" : " ", f.status);
    }
    fields_in_scope scope(&f, nullptr);
    logger->log(level, std::string_view(text.data(), text.size()));
    return;
  }
  auto out = std::back_inserter(text);
  if (!f.task.empty()) {
    fmt::format_to(out, "task {}", f.task);
  } else if (!f.plugin.empty()) {
    fmt::format_to(out, "plugin {}", f.plugin);
  }
  if (!f.queue.empty()) fmt::format_to(out, " queue={}", f.queue);
  if (!f.task.empty() && !f.plugin.empty()) fmt::format_to(out, " plugin={}", f.plugin);
  if (!f.status.empty()) fmt::format_to(out, " status={}", f.status);
  if (f.attempt) fmt::format_to(out, " attempt={}", *f.attempt);
  if (f.duration_ms) fmt::format_to(out, " duration={:.1f}ms", *f.duration_ms);
  if (!f.next_try_in.empty()) fmt::format_to(out, " next_try_in={}", f.next_try_in);
  if (!message.empty()) fmt::format_to(out, ": {}", message);
  if (!f.error.empty()) fmt::format_to(out, ": {}", f.error);
  logger->log(level, std::string_view(text.data(), text.size()));
}

void log_status_line(const status_counts& s) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(spdlog::level::info)) return;
  fmt::memory_buffer text;
  auto out = std::back_inserter(text);
  if (g_json) {
    fmt::format_to(out, "status{}{}", s.note.empty() ? "" : " ", s.note);
    fields_in_scope scope(nullptr, &s);
    logger->log(spdlog::level::info, std::string_view(text.data(), text.size()));
    return;
  }
  fmt::format_to(out, "status queue={}", s.queue);
  for (std::size_t i = 0; i < s.counts.size(); ++i) {
    fmt::format_to(out, " {}={}{}", s.counts[i].first, s.counts[i].second, i == 0 && !s.pending_complete ? "+" : "");
  }
  if (!s.note.empty()) fmt::format_to(out, " {}", s.note);
  logger->log(spdlog::level::info, std::string_view(text.data(), text.size()));
}

std::string log_quote(std::string_view text) {
  bool plain = !text.empty();
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || c == '"' || c == '\\' || u >= 0x7f) plain = false;
  }
  if (plain) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < ' ' || u >= 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace spoold
