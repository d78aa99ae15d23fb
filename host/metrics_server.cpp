// The metrics process: an Asio/Beast HTTP server on the inherited listening
// socket, the master's snapshots read from its socketpair, and the gauges
// read from the queue directories at scrape time. It runs no plugin code and
// shares nothing with the master but the two sockets, so a slow or hostile
// client costs this process only: every request must arrive whole within 5 s,
// headers are capped at 8 KiB (431), and at most 64 connections are served
// at once (the others are closed as they come).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including it.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "logging.hpp"
#include "metrics.hpp"
#include "spool_file.hpp"

namespace spoold {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::size_t k_max_connections = 64;
constexpr auto k_request_deadline = std::chrono::seconds(5);
constexpr auto k_write_deadline = std::chrono::seconds(10);
constexpr std::size_t k_header_limit = 8 * 1024;
// Directory entries looked at per queue and scrape: a backlog of millions
// costs a bounded read (the age is then that of the oldest entry seen).
constexpr std::size_t k_dir_entry_limit = 100'000;
constexpr std::int64_t k_dir_cache_ns = 1'000'000'000;  // one read per queue and second, however often scraped
constexpr std::size_t k_ignored_list_limit = 4 << 20;
constexpr std::size_t k_max_snapshot = 2 << 20;

// The tasks the spoolers listed as ignored (queue_dir::record_ignored): a
// line "<relative name> <inode> <mtime ns> <size>". A task counts as ignored
// while its file is unchanged.
std::unordered_map<std::string, std::pair<ino_t, std::int64_t>> read_ignored(int dirfd) {
  std::unordered_map<std::string, std::pair<ino_t, std::int64_t>> out;
  unique_fd fd(::openat(dirfd, std::string(k_ignored_list).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return out;
  std::string text(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), k_ignored_list_limit), '\0');
  std::size_t used = 0;
  while (used < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  text.resize(used);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // a line still being written
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    char name[512];
    unsigned long long ino = 0;
    long long mtime = 0;
    if (line.size() < sizeof(name) && std::sscanf(line.c_str(), "%511s %llu %lld", name, &ino, &mtime) == 3) {
      out[name] = {static_cast<ino_t>(ino), static_cast<std::int64_t>(mtime)};
    }
  }
  return out;
}

class dir_reader {
 public:
  // The gauges of the queue in dir; nullopt (logged once) when it cannot be read.
  std::optional<dir_gauges> gauges(const std::string& dir) {
    const std::int64_t mono = monotonic_ns();
    auto it = cache_.find(dir);
    if (it != cache_.end() && mono - it->second.first < k_dir_cache_ns) return it->second.second;
    auto g = read(dir);
    cache_[dir] = {mono, g};
    return g;
  }

 private:
  std::optional<dir_gauges> read(const std::string& dir) {
    unique_fd top(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!top.valid()) {
      if (warned_.insert(dir).second) spdlog::warn("metrics: {}", io_error("open queue directory " + dir, errno).message);
      return std::nullopt;
    }
    dir_gauges g;
    std::size_t budget = k_dir_entry_limit;
    const auto failed = scan(top.get(), "failed", budget, [&](int, const char* name) {
      const std::string_view n(name);
      if (is_task_name(n) && !n.ends_with(".error")) ++g.failed;
    });
    (void)failed;  // no failed/ yet: none failed
    const auto ignored = read_ignored(top.get());
    const std::int64_t now = now_ns();
    std::int64_t oldest = now;
    const auto look = [&](int dirfd, const char* name, const std::string& relative) {
      struct stat st {};
      if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return;
      const std::int64_t due = mtime_ns(st);
      if (due > now || due >= oldest) return;
      auto ig = ignored.find(relative);
      if (ig != ignored.end() && ig->second.first == st.st_ino && ig->second.second == due) return;
      oldest = due;
    };
    std::vector<std::string> priorities;
    (void)scan(top.get(), ".", budget, [&](int dirfd, const char* name) {
      const std::string_view n(name);
      if (is_task_name(n)) {
        look(dirfd, name, name);
      } else if (is_priority_name(n)) {
        priorities.emplace_back(n);
      }
    });
    for (const auto& p : priorities) {
      (void)scan(top.get(), p.c_str(), budget,
                 [&](int dirfd, const char* name) {
                   if (is_task_name(name)) look(dirfd, name, p + "/" + name);
                 });
    }
    g.oldest_pending_age_s = static_cast<double>(now - oldest) / 1e9;
    return g;
  }

  // Calls f(dirfd, name) for each entry of dir/sub until budget runs out;
  // false when the folder cannot be opened.
  template <class F>
  static bool scan(int dirfd, const char* sub, std::size_t& budget, F f) {
    const int fd = ::openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return false;
    }
    while (budget > 0) {
      dirent* e = ::readdir(d);
      if (e == nullptr) break;
      --budget;
      f(::dirfd(d), e->d_name);
    }
    ::closedir(d);
    return true;
  }

  std::map<std::string, std::pair<std::int64_t, std::optional<dir_gauges>>> cache_;
  std::set<std::string> warned_;
};

class server {
 public:
  server(asio::io_context& io, tcp protocol, int listen_fd, int master_fd, const spooler_board* board)
      : acceptor_(io, protocol, listen_fd), master_(io, master_fd), retry_(io), board_(board) {}

  void start() {
    accept();
    watch_master();
  }

  std::string exposition() {
    std::vector<queue_snapshot> queues = snapshot_;
    std::vector<std::optional<dir_gauges>> dirs;
    const std::int64_t now = now_ms();
    for (auto& q : queues) {
      if (q.redis_key.empty()) {
        dirs.push_back(q.dir.empty() ? std::nullopt : reader_.gauges(q.dir));
        continue;
      }
      // A Redis queue: what its spoolers read last, on the board.
      const auto b = board_ != nullptr ? board_->backlog(q.redis_key, now) : std::nullopt;
      q.counts_known = b.has_value();
      if (!b) {
        dirs.push_back(std::nullopt);
        continue;
      }
      q.pending = b->waiting;
      q.delayed = b->delayed;
      q.in_flight = b->in_flight;
      dirs.push_back(dir_gauges{b->failed, std::nullopt});
    }
    return render_exposition(queues, dirs);
  }

  std::size_t connections = 0;

 private:
  void accept();
  void watch_master() {
    master_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
      if (ec) {
        spdlog::error("metrics: waiting for the master's snapshots: {}", ec.message());
        ::_exit(1);
      }
      std::string buf(k_max_snapshot, '\0');
      for (;;) {
        const ssize_t n = ::recv(master_.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n == 0) ::_exit(0);  // the master is gone
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          spdlog::error("metrics: {}", io_error("read the master's snapshot", errno).message);
          ::_exit(1);
        }
        if (auto s = decode_snapshot(std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
          snapshot_ = std::move(*s);
        } else {
          spdlog::error("metrics: a snapshot from the master of {} bytes does not decode: ignored", n);
        }
      }
      watch_master();
    });
  }

  tcp::acceptor acceptor_;
  asio::posix::stream_descriptor master_;
  asio::steady_timer retry_;
  const spooler_board* board_;
  std::vector<queue_snapshot> snapshot_;
  dir_reader reader_;
};

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket s, server& srv) : stream_(std::move(s)), srv_(srv) { ++srv_.connections; }
  ~session() { --srv_.connections; }

  void read() {
    parser_.emplace();
    parser_->header_limit(k_header_limit);
    parser_->body_limit(0);
    stream_.expires_after(k_request_deadline);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      reply(http::status::request_header_fields_too_large, "request headers larger than 8 KiB\n", false);
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      reply(http::status::bad_request, "malformed request: " + ec.message() + "\n", false);
      return;
    }
    if (ec) return close();  // the client left, or the deadline passed
    const auto& req = parser_->get();
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      reply(http::status::method_not_allowed, "only GET and HEAD\n", req.keep_alive());
    } else if (target != "/metrics") {
      reply(http::status::not_found, "spoold serves its metrics at /metrics\n", req.keep_alive());
    } else {
      reply(http::status::ok, srv_.exposition(), req.keep_alive(), req.method() == http::verb::head);
    }
  }

  void reply(http::status status, std::string body, bool keep_alive, bool head = false) {
    res_ = {};
    res_.result(status);
    res_.version(11);
    res_.set(http::field::server, "spoold");
    res_.set(http::field::content_type,
             status == http::status::ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8");
    if (status == http::status::method_not_allowed) res_.set(http::field::allow, "GET, HEAD");
    res_.keep_alive(keep_alive);
    const std::size_t size = body.size();
    if (!head) res_.body() = std::move(body);
    res_.content_length(size);
    stream_.expires_after(k_write_deadline);
    http::async_write(stream_, res_, [self = shared_from_this(), keep_alive](const boost::system::error_code& ec, std::size_t) {
      if (ec) return self->close();
      if (!keep_alive) return self->linger();
      self->read();
    });
  }

  // Closes after the response without a reset: what the client still sends
  // (the rest of a 1 MB header) is read and dropped, up to 2 MiB and 2 s,
  // so that its kernel does not discard the response we wrote.
  void linger() {
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain(0);
  }
  void drain(std::size_t total) {
    stream_.async_read_some(asio::buffer(discard_), [self = shared_from_this(), total](const boost::system::error_code& ec,
                                                                                       std::size_t n) {
      if (ec || total + n > (2u << 20)) return self->close();
      self->drain(total + n);
    });
  }

  void close() {
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{16 * 1024};
  std::array<char, 16 * 1024> discard_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> res_;
  server& srv_;
};

void server::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
    if (ec) {
      // Out of descriptors, say: look again shortly instead of spinning.
      spdlog::warn("metrics: accept: {}", ec.message());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](const boost::system::error_code&) { accept(); });
      return;
    }
    if (connections >= k_max_connections) {
      boost::system::error_code ignored;
      s.close(ignored);  // over the cap: closed at once, never queued
    } else {
      std::make_shared<session>(std::move(s), *this)->read();
    }
    accept();
  });
}

}  // namespace

void run_metrics_server(const host_config& host, int listen_fd, int master_fd, const spooler_board* board) {
  // The master's signals are the master's: a TERM or INT sent to the whole
  // process group must not kill the endpoint while the tasks in hand drain.
  // It goes with the master (PR_SET_PDEATHSIG, or the end of its socket).
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM}) ::signal(sig, SIG_IGN);
  // Tasks first: this process yields the CPU to the spoolers.
  (void)::setpriority(PRIO_PROCESS, 0, 10);
  setup_logging(host.log_level, host.log_format, "metrics");
  try {
    asio::io_context io(1);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      throw std::runtime_error(io_error("getsockname of the metrics socket", errno).message);
    }
    server srv(io, ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listen_fd, master_fd, board);
    srv.start();
    io.run();
  } catch (const std::exception& e) {
    spdlog::error("metrics: the server stopped: {}", e.what());
    spdlog::default_logger()->flush();
    ::_exit(1);
  }
  ::_exit(0);
}

}  // namespace spoold
