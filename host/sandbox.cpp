#include "sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdint>

#include "accounts.hpp"
#include "logging.hpp"
#include "posix.hpp"
#include "spooler_process.hpp"

namespace spoold {

namespace {

// The rights Landlock handles, by the ABI that added them. Handled and not
// granted by a rule means denied. Not handled: LANDLOCK_ACCESS_FS_IOCTL_DEV
// (ABI 5; ioctls on devices opened after the sandbox) and the network.
constexpr std::uint64_t k_abi1_rights = (1ULL << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr std::uint64_t k_refer = 1ULL << 13;               // ABI 2: rename/link across directories
constexpr std::uint64_t k_truncate = 1ULL << 14;            // ABI 3
constexpr std::uint64_t k_read_rights =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
// The only rights a rule on a file (not a directory) may carry.
constexpr std::uint64_t k_file_rights =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | k_truncate;

std::uint64_t handled_rights(int abi) {
  std::uint64_t r = k_abi1_rights;
  if (abi >= 2) r |= k_refer;
  if (abi >= 3) r |= k_truncate;
  return r;
}

// What every spooler may read whatever the queue says: the shared libraries
// and the dynamic loader's files (a plugin may dlopen or exec later), the
// time zone, and the harmless devices.
constexpr const char* k_system_read[] = {"/usr",           "/lib",           "/lib64",           "/lib32",
                                         "/libx32",        "/bin",           "/sbin",            "/etc/ld.so.cache",
                                         "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives",
                                         "/dev/urandom",   "/dev/random",    "/dev/zero"};
constexpr const char* k_system_write[] = {"/dev/null"};

int landlock_abi() {
  auto v = landlock_abi_version();
  return v ? *v : 0;
}

// Adds a rule granting rights beneath path (or on it, for a file). A
// missing path is skipped when optional (the system's list differs between
// machines) and an error otherwise.
result<void> add_path_rule(int ruleset, const std::string& path, std::uint64_t rights, bool optional) {
  unique_fd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) {
    if (optional && errno == ENOENT) return {};
    return io_error("open " + path + " for a Landlock rule", errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("stat " + path + " for a Landlock rule", errno);
  landlock_path_beneath_attr rule{};
  rule.allowed_access = S_ISDIR(st.st_mode) ? rights : (rights & k_file_rights);
  rule.parent_fd = fd.get();
  if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
    return io_error("add a Landlock rule for " + path, errno);
  }
  return {};
}

result<unique_fd> build_ruleset(const queue_config& queue, const host_config& host, int abi) {
  const std::uint64_t handled = handled_rights(abi);
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = handled;
  unique_fd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)));
  if (!ruleset.valid()) return io_error("create a Landlock ruleset", errno);
  const auto add = [&](const std::string& path, std::uint64_t rights, bool optional) {
    return add_path_rule(ruleset.get(), path, rights & handled, optional);
  };
  for (const char* p : k_system_read) {
    if (auto r = add(p, k_read_rights, true); !r) return r.err();
  }
  for (const char* p : k_system_write) {
    if (auto r = add(p, k_read_rights | LANDLOCK_ACCESS_FS_WRITE_FILE | k_truncate, true); !r) return r.err();
  }
  if (auto r = add(host.plugin_dir, k_read_rights, false); !r) return r.err();
  for (const auto& p : queue.sandbox.read) {
    if (auto r = add(p, k_read_rights, false); !r) return r.err();
  }
  // The queue's directory (its tasks, priority folders, failed/) and the
  // write list: every right, renames within them included.
  for (const auto& p : queue.sandbox.write) {
    if (auto r = add(p, handled, false); !r) return r.err();
  }
  // A Redis queue has no directory. Its spoolers connect before the sandbox
  // applies; Landlock's filesystem rules do not cover connect(), so a
  // reconnection to a unix socket or TCP is not refused by them.
  if (!queue.dir.empty()) {
    if (auto r = add(queue.dir, handled, false); !r) return r.err();
  }
  return ruleset;
}

result<void> switch_user(const sandbox_config& s, pid_t master_pid) {
  const gid_t gid = s.gid ? static_cast<gid_t>(*s.gid) : ::getgid();
  // The user's own supplementary groups (the web app's group, say), or only
  // the named group when no user is named.
  const int groups_set = !s.user.empty() ? ::initgroups(s.user.c_str(), gid) : ::setgroups(1, &gid);
  if (groups_set != 0) return io_error("set the supplementary groups of sandbox user '" + s.user + "'", errno);
  if (::setresgid(gid, gid, gid) != 0) return io_error("switch to group " + std::to_string(gid), errno);
  if (s.uid) {
    const uid_t uid = static_cast<uid_t>(*s.uid);
    if (::setresuid(uid, uid, uid) != 0) return io_error("switch to user " + s.user, errno);
    uid_t r = 0, e = 0, saved = 0;
    if (::getresuid(&r, &e, &saved) != 0 || r != uid || e != uid || saved != uid) {
      return error{"the switch to user " + s.user + " did not take: still uid " + std::to_string(e), EPERM};
    }
  }
  // A change of credentials clears the parent-death signal; it also leaves
  // the process not dumpable (fs.suid_dumpable), which is kept: what init()
  // read as root must not be readable by other processes of the new user.
  set_parent_death_signal(master_pid);
  return {};
}

result<void> set_limit(int resource, rlim_t value, const char* name) {
  const rlimit lim{value, value};
  if (::setrlimit(resource, &lim) != 0) return io_error(std::string("set ") + name, errno);
  return {};
}

// Whether a process of uid with groups may create and remove files in dir
// (the mode bits; no ACLs: spoold never sets any).
bool can_write_dir(const struct stat& dir, uid_t uid, const std::vector<gid_t>& groups) {
  if (uid == 0) return true;
  if (dir.st_uid == uid) return (dir.st_mode & S_IWUSR) && (dir.st_mode & S_IXUSR);
  for (gid_t g : groups) {
    if (g == dir.st_gid) return (dir.st_mode & S_IWGRP) && (dir.st_mode & S_IXGRP);
  }
  return (dir.st_mode & S_IWOTH) && (dir.st_mode & S_IXOTH);
}

// The groups a spooler of s has after the switch (initgroups, or the named
// group alone).
std::vector<gid_t> groups_after_switch(const sandbox_config& s) {
  const gid_t gid = s.gid ? static_cast<gid_t>(*s.gid) : ::getgid();
  return s.user.empty() ? std::vector<gid_t>{gid} : groups_of(s.user, gid);
}

// A spooler that switches user must still claim, rewrite and remove the
// queue's tasks: the directory must let it, and the task files' mode must
// let its group read and write them (it is not their owner).
void review_switched_user(const queue_config& q, const std::string& owner, sandbox_review& out) {
  const sandbox_config& s = q.sandbox;
  const uid_t uid = s.uid ? static_cast<uid_t>(*s.uid) : ::geteuid();
  const std::string who = s.user.empty() ? "group " + s.group : "user " + s.user;
  struct stat st {};
  if (::stat(q.dir.c_str(), &st) == 0 && !can_write_dir(st, uid, groups_after_switch(s))) {
    const std::string mode = fmt::format("{:04o}", st.st_mode & 07777);
    out.problems.push_back(owner + ": the sandbox " + who + " cannot create and remove files in the queue directory " +
                           q.dir + " (mode " + mode + ", uid " + std::to_string(st.st_uid) + ", gid " +
                           std::to_string(st.st_gid) + "): give it to a group of that user (chgrp GROUP " + q.dir +
                           " && chmod 2770 " + q.dir + ", and dir_group = \"GROUP\")");
  }
  if ((q.file_mode & 0060) != 0060 && uid != 0) {
    const std::string mode = fmt::format("{:04o}", q.file_mode);
    out.warnings.push_back(owner + ": file_mode " + mode + " does not let the group read and write task files, so the "
                           "sandbox " + who + " can only take tasks it owns: set file_mode = \"0660\" (and dir_group)");
  }
}

}  // namespace

sandbox_review review_sandboxes(const config& c) {
  sandbox_review out;
  int abi = -1;  // probed once, when a queue needs it
  for (const auto& q : c.queues) {
    const sandbox_config& s = q.sandbox;
    if (!s.enabled) continue;
    const std::string owner = "queue '" + q.name + "'";
    if ((s.uid || s.gid) && ::geteuid() != 0) {
      const std::string key = s.uid ? "sandbox.user = \"" + s.user + "\"" : "sandbox.group = \"" + s.group + "\"";
      out.problems.push_back(owner + ": " + key + " needs the host to run as root (it runs as uid " +
                             std::to_string(::geteuid()) +
                             "): start spoold as root, or remove user and group from the queue's sandbox");
    } else if (s.uid || s.gid) {
      review_switched_user(q, owner, out);
    }
    if (!s.path_rules) continue;
    for (const auto* list : {&s.read, &s.write}) {
      const char* key = list == &s.read ? "read" : "write";
      for (const auto& p : *list) {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) {
          out.problems.push_back(owner + ": sandbox." + key + " path \"" + p + "\": " + errno_text(errno) +
                                 ": create it, or remove it from the list");
        }
      }
    }
    if (abi < 0) abi = landlock_abi();
    if (abi >= 1) continue;
    if (s.require) {
      out.problems.push_back(owner + ": sandbox.require = true, but this kernel has no Landlock (Linux 5.13+ with "
                             "lsm=landlock): the read and write rules cannot be enforced");
    } else {
      out.warnings.push_back(owner + ": this kernel has no Landlock: the sandbox's read and write rules are NOT "
                             "enforced (the other limits are); set sandbox.require = true to refuse to start instead");
    }
  }
  return out;
}

result<void> apply_sandbox(const queue_config& queue, const host_config& host, pid_t master_pid) {
  const sandbox_config& s = queue.sandbox;
  if (!s.enabled) return {};
  // Built before the switch of user: the rules name paths the new user may
  // not even be able to look up, and Landlock keeps them by inode.
  unique_fd ruleset;
  if (s.path_rules) {
    const int abi = landlock_abi();
    if (abi >= 1) {
      auto built = build_ruleset(queue, host, abi);
      if (!built) return built.err();
      ruleset = std::move(*built);
    } else if (s.require) {
      return error{"this kernel has no Landlock and sandbox.require = true", ENOSYS};
    }  // else: the master warned once at start
  }
  if (s.uid || s.gid) {
    if (auto r = switch_user(s, master_pid); !r) return r;
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return io_error("set no_new_privs", errno);
  if (ruleset.valid() && ::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    return io_error("enforce the Landlock ruleset", errno);
  }
  if (!s.core) {
    if (auto r = set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE to 0 (core = false)"); !r) return r;
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return io_error("clear the dumpable flag (core = false)", errno);
  }
  if (s.open_files != 0) {
    if (auto r = set_limit(RLIMIT_NOFILE, s.open_files, "RLIMIT_NOFILE (open_files)"); !r) return r;
  }
  // Last: everything above may allocate.
  if (s.memory != 0) {
    if (auto r = set_limit(RLIMIT_AS, s.memory, "RLIMIT_AS (memory)"); !r) return r;
  }
  return {};
}

void limit_task_cpu(const sandbox_config& s) {
  if (!s.enabled || s.cpu.count() == 0) return;
  // The soft limit in force, kept between tasks (a spooler process serves
  // one queue, from one thread). A limit set earlier that still leaves this
  // task its budget stays: the kernel counts whole seconds, so the limit
  // moves about once per second of CPU used, and a task of microseconds
  // pays for one clock read instead of three syscalls.
  static rlim_t soft = 0;
  static rlim_t hard = 0;
  timespec used{};
  if (::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used) != 0) {
    spdlog::warn("cannot read the CPU time used (sandbox.cpu is not enforced for this task): {}", errno_text(errno));
    return;
  }
  // The smallest whole second at least the budget away: this task gets
  // between cpu and cpu + 1 seconds, as the kernel's resolution allows.
  const rlim_t needed = static_cast<rlim_t>(used.tv_sec) + static_cast<rlim_t>(s.cpu.count() / 1000) +
                        (used.tv_nsec > 0 ? 1 : 0);
  if (soft >= needed) return;
  if (hard == 0) {
    rlimit current{};
    hard = ::getrlimit(RLIMIT_CPU, &current) == 0 ? current.rlim_max : RLIM_INFINITY;
  }
  const rlimit lim{hard == RLIM_INFINITY ? needed : std::min(needed, hard), hard};
  if (::setrlimit(RLIMIT_CPU, &lim) != 0) {
    spdlog::warn("cannot set the task's CPU limit (sandbox.cpu): {}", errno_text(errno));
    return;
  }
  soft = lim.rlim_cur;
}

}  // namespace spoold
