// The no-loss promise (SPEC §4), syscall by syscall: every call of a task's
// life (the producer's write; claim and read; delete after Ok, reschedule
// after Retry, failed/ after Fail or the last try, the move of an unparsable
// file) is failed in turn, at each position it is made, with each errno that
// applies, through the fault-injection seam of host/posix. After every case
// the task is in exactly one place: done and gone, still pending, or in
// failed/ with a reason; no temporary file is left behind.
#include <dirent.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "config.hpp"
#include "enqueue_task.hpp"
#include "finish_try.hpp"
#include "posix.hpp"
#include "queue_dir.hpp"
#include "spool_file.hpp"
#include "support/temp_dir.hpp"

namespace {

using spoold::syscall_id;

enum class life { produce, ok, retry, retry_last, fail, unparsable };
constexpr life k_lives[] = {life::produce, life::ok, life::retry, life::retry_last, life::fail, life::unparsable};

const char* life_name(life l) {
  switch (l) {
    case life::produce: return "produce";
    case life::ok: return "ok";
    case life::retry: return "retry";
    case life::retry_last: return "retry_last";
    case life::fail: return "fail";
    case life::unparsable: return "unparsable";
  }
  return "?";
}

// The errnos each call can really return, EINTR for all: the seam retries it.
std::vector<std::pair<int, const char*>> errnos_for(syscall_id id) {
  std::vector<std::pair<int, const char*>> out = {{EIO, "EIO"}, {EINTR, "EINTR"}};
  switch (id) {
    case syscall_id::open: out.insert(out.end(), {{ENOSPC, "ENOSPC"}, {EMFILE, "EMFILE"}, {ENOMEM, "ENOMEM"}}); break;
    case syscall_id::write:
    case syscall_id::fsync:
    case syscall_id::mkdir: out.push_back({ENOSPC, "ENOSPC"}); break;
    case syscall_id::rename: out.insert(out.end(), {{ENOSPC, "ENOSPC"}, {ENOMEM, "ENOMEM"}}); break;
    case syscall_id::stat:
    case syscall_id::read:
    case syscall_id::unlink:
    case syscall_id::lock: out.push_back({ENOMEM, "ENOMEM"}); break;
    case syscall_id::chmod: out.push_back({EROFS, "EROFS"}); break;
    default: break;
  }
  return out;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string sub : {"", "/failed"}) {
    DIR* d = ::opendir((dir + sub).c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      if (std::string_view(e->d_name).starts_with(spoold::k_temp_prefix)) out.push_back(dir + sub + "/" + e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

std::string encode(unsigned attempt) {
  std::vector<spoold::owned_arg> args = {{"k", "v"}};
  if (attempt > 0) args.push_back({std::string(spoold::k_key_attempt), std::to_string(attempt)});
  return *spoold::encode_spool_file(args, "body");
}

struct case_result {
  bool done = false;  // the plugin ran and returned Ok, and the file is deleted
  bool producer_said_ok = false;
  std::vector<unsigned> calls;  // of each syscall_id, during the life
};

// One life of one task in a fresh queue, with plan in force from the first
// call the task itself makes (the queue directory exists before).
case_result live(life l, const std::string& dir, const std::string& name, const std::string& plan) {
  spoold::queue_config cfg;
  cfg.name = "q";
  cfg.dir = dir;
  cfg.max_attempts = 3;
  auto q = spoold::queue_dir::open(cfg);
  REQUIRE(q.ok());
  case_result r;
  if (l != life::produce) {
    const std::string bytes = l == life::unparsable ? std::string("\x11\xff\xff\x00garbage", 11)
                              : l == life::retry_last ? encode(2) : encode(0);
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    // Old enough to be unparsable rather than "being written".
    if (l == life::unparsable) REQUIRE(::truncate((dir + "/" + name).c_str(), 11) == 0);
  }
  spoold::set_fault_plan(plan);
  const std::int64_t now = spoold::now_ns() + 60'000'000'000;  // past the 10 s grace of a young file
  if (l == life::produce) {
    spoold::task_request req;
    req.args = {{"k", "v"}};
    req.body = "body";
    r.producer_said_ok = spoold::enqueue_task(dir, req, name).ok();
  } else {
    auto c = q->claim(spoold::task_ref{"", name}, now);
    if (c.status == spoold::claim_status::claimed) {
      switch (l) {
        case life::ok: r.done = q->remove(*c.task).ok(); break;
        case life::retry:
        case life::retry_last: (void)spoold::finish_try(*q, *c.task, "plugin said Retry", false, now); break;
        case life::fail: (void)spoold::finish_try(*q, *c.task, "plugin said Fail", true, now); break;
        default: break;
      }
    }
  }
  for (std::size_t i = 0; i < std::size(spoold::k_syscall_names); ++i) {
    r.calls.push_back(spoold::syscall_count(static_cast<syscall_id>(i)));
  }
  spoold::set_fault_plan("");
  return r;
}

// Where the task is; an empty string when all is as the SPEC promises.
std::string check_one_place(life l, const std::string& dir, const std::string& name, const case_result& r) {
  const bool pending = exists(dir + "/" + name);
  const bool failed = exists(dir + "/failed/" + name);
  const bool note = exists(dir + "/failed/" + name + ".error");
  if (!temp_files(dir).empty()) return "a temporary file was left: " + temp_files(dir)[0];
  if (pending && failed) return "pending and in failed/ at once";
  if (note && !failed) return "an .error note without its file";
  if (l == life::produce) {
    if (r.producer_said_ok && !pending) return "the producer said ok but wrote nothing";
    if (pending && !spoold::parse_spool_file(read_all(dir + "/" + name)).ok()) return "a half-written task";
    return "";
  }
  if (!pending && !failed && !r.done) return "lost: neither pending nor failed nor done";
  if (failed && l != life::unparsable) {
    const std::string bytes = read_all(dir + "/failed/" + name);  // the parsed view points into it
    auto parsed = spoold::parse_spool_file(bytes);
    if (!parsed.ok() || !parsed.task->arg(spoold::k_key_error)) return "in failed/ without spoold.error";
  }
  if (failed && l == life::unparsable && !note) return "an unparsable file in failed/ without its reason";
  if (pending && l != life::unparsable && !spoold::parse_spool_file(read_all(dir + "/" + name)).ok()) {
    return "the pending task is damaged";
  }
  return "";
}

}  // namespace

TEST_CASE("every syscall of a task's life fails in turn, and the task stays in one place", "[fault]") {
  if (!spoold::fault_injection_built()) {
    WARN("built without SPOOLD_FAULT_INJECTION: the fault walk needs -DSPOOLD_FAULT_INJECTION=ON");
    return;
  }
  spoold::set_fault_role("producer");
  unsigned cases = 0;
  unsigned eintr_cases = 0;
  std::vector<std::string> broken;
  for (const life l : k_lives) {
    // A dry run counts the calls of each kind this life makes.
    std::vector<unsigned> calls(std::size(spoold::k_syscall_names));
    {
      spoold::unit::temp_dir t;
      const std::string name = "uwsgi_spoolfile_on_walk_1";
      const case_result r = live(l, t.path(), name, "");
      calls = r.calls;
      INFO(life_name(l));
      REQUIRE(check_one_place(l, t.path(), name, r).empty());
    }
    for (std::size_t i = 0; i < calls.size(); ++i) {
      const auto id = static_cast<syscall_id>(i);
      for (unsigned nth = 1; nth <= calls[i]; ++nth) {
        for (const auto& [err, err_name] : errnos_for(id)) {
          spoold::unit::temp_dir t;
          const std::string name = "uwsgi_spoolfile_on_walk_1";
          const std::string plan = std::string(spoold::k_syscall_names[i]) + ":" + err_name + ":" + std::to_string(nth);
          const case_result r = live(l, t.path(), name, plan);
          ++cases;
          if (err == EINTR) ++eintr_cases;
          if (auto problem = check_one_place(l, t.path(), name, r); !problem.empty()) {
            broken.push_back(std::string(life_name(l)) + " with " + plan + ": " + problem);
          }
          if (err == EINTR && l == life::ok && !r.done) {
            broken.push_back(std::string("ok with ") + plan + ": an EINTR was not retried");
          }
        }
      }
    }
  }
  std::printf("fault walk: %u cases (life, syscall, errno, position), %u of them EINTR; %zu broke the promise\n", cases,
              eintr_cases, broken.size());
  for (const auto& b : broken) std::printf("  %s\n", b.c_str());
  CHECK(cases > 100);
  CHECK(broken.empty());
}
