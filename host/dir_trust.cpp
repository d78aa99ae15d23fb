#include "dir_trust.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "accounts.hpp"
#include "posix.hpp"

namespace spoold {

namespace {

std::string octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// What is known of one directory: as it is, or as spoold would create it.
struct dir_facts {
  std::string path;
  bool exists = false;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The directory path names, following symbolic links as the host's open
// does (a link's own mode means nothing); ENOENT comes back as an error
// with that code.
result<struct stat> stat_dir(const std::string& path) {
  auto fd = open_at(AT_FDCWD, path, O_PATH | O_DIRECTORY);
  if (!fd) return fd.err();
  return fstat_fd(fd->get(), path);
}

// A missing directory is made by make_dirs() with dir_mode and the host's
// user; its group is its nearest existing ancestor's when that one is
// setgid (the kernel's rule), else the host's.
result<dir_facts> look(const std::string& path, const queue_config& q) {
  dir_facts f;
  f.path = path;
  auto st = stat_dir(path);
  if (st) {
    f.exists = true;
    f.mode = st->st_mode & 07777;
    f.uid = st->st_uid;
    f.gid = st->st_gid;
    return f;
  }
  if (st.err().code != ENOENT) return st.err();
  f.mode = static_cast<mode_t>(q.dir_mode);
  f.uid = q.host_user();
  f.gid = ::getegid();
  for (std::filesystem::path up = std::filesystem::path(path).parent_path();; up = up.parent_path()) {
    if (auto above = stat_dir(up.string())) {
      if ((above->st_mode & S_ISGID) != 0) f.gid = above->st_gid;
      break;
    }
    if (up == up.root_path() || up.empty()) break;
  }
  return f;
}

enum class role { queue, holder };

// The problems of one directory under the rule, or "" when there are none.
std::string judge(const dir_facts& f, role r, const queue_config& q) {
  // In a sticky folder (/tmp is 1777) only the owner of an entry, of the
  // folder, or root may rename or remove it: others who can write there
  // cannot take the queue directory away, so their write access is no risk
  // to it. A queue directory itself gets no such pass: sticky or not,
  // writers add tasks.
  const bool sticky_holder = r == role::holder && (f.mode & S_ISVTX) != 0;
  const uid_t host_uid = q.host_user();
  const bool owner_bad = f.uid != host_uid && f.uid != 0;
  const bool others_write = (f.mode & S_IWOTH) != 0 && !sticky_holder;
  const bool group_ours = q.dir_gid && f.gid == *q.dir_gid;
  const bool group_write = (f.mode & S_IWGRP) != 0 && !sticky_holder && !group_ours;
  if (!owner_bad && !others_write && !group_write) return "";

  const std::string host_user = user_name(host_uid);
  const std::string group = group_name(f.gid);
  std::string what;
  auto also = [&](const std::string& part) { what += (what.empty() ? "" : " and ") + part; };
  if (owner_bad) {
    also("is owned by " + user_name(f.uid) + (host_uid == 0 ? ", not by root (the host's user)"
                                                                : ", who is neither root nor the host's user " + host_user));
  }
  if (others_write) {
    also("can be written by every user");  // the group, if it can too, is among them
  } else if (group_write) {
    also("can be written by group " + group +
         (q.dir_gid ? ", which is not the queue's dir_group " + q.dir_group : std::string(", and the queue has no dir_group")));
  }
  const std::string who = q.name.empty() ? "the queue" : "queue '" + q.name + "'";
  std::string out = (q.name.empty() ? "" : who + ": ") + (r == role::queue ? "directory " : "folder ") + f.path;
  if (f.exists) {
    out += " (mode " + octal(f.mode) + ", owner " + user_name(f.uid) + ":" + group + ")" +
           (r == role::holder ? ", which holds the queue directory, " : " ") + what;
  } else {
    out += std::string(r == role::holder ? ", which would hold the queue directory," : "") +
           " does not exist yet, and spoold would create it with dir_mode " + octal(f.mode) + " as " + host_user + ":" +
           group + ", so that it " + what;
  }
  out += r == role::queue ? ": whoever can write it can add, replace or remove its tasks, which are input to its plugins"
                          : ": whoever can write it can move the queue directory away and put another in its place";

  std::string fix;
  if (!f.exists) {
    if (group_write && q.dir_gid) {
      fix = "create it yourself with the group: install -d -o " + host_user + " -g " + q.dir_group + " -m 2770 " + f.path;
    } else {
      fix = "set dir_mode = \"0700\" for " + who + " (\"0770\" with a dir_group whose members write tasks)";
    }
    return out + "; fix: " + fix;
  }
  if (owner_bad) fix = "chown " + host_user + " " + f.path;
  auto then = [&](const std::string& cmd) { fix += (fix.empty() ? "" : " && ") + cmd; };
  if (r == role::queue && group_write && q.dir_gid) {
    // The group that should write it is named: give it to that group.
    then("chgrp " + q.dir_group + " " + f.path);
    then("chmod 2770 " + f.path);
  } else if (others_write || group_write) {
    then("chmod " + std::string(group_write ? "g" : "") + (others_write ? "o" : "") + "-w " + f.path);
  }
  out += "; fix: " + fix;
  if (r == role::holder && (others_write || group_write)) out += " (or chmod +t " + f.path + ", as /tmp is)";
  if (r == role::queue && group_write && !q.dir_gid) {
    out += ", or, if the members of group " + group + " are to write tasks (a web app's group), " +
           (others_write ? "chmod o-w " + f.path + " and " : std::string()) + "set dir_group = \"" + group +
           "\" for " + who;
  }
  return out;
}

}  // namespace

dir_trust_report check_dir_trust(const queue_config& q) {
  dir_trust_report report;
  const std::string who = q.name.empty() ? "" : "queue '" + q.name + "': ";
  const std::filesystem::path dir(q.dir);
  const std::string holder = dir.has_relative_path() ? dir.parent_path().string() : dir.string();
  for (const auto& [path, r] : {std::pair{q.dir, role::queue}, std::pair{holder, role::holder}}) {
    auto facts = look(path, q);
    if (!facts) {
      report.problems.push_back(who + "cannot check who may write " + path + ": " + facts.err().message);
      continue;
    }
    if (std::string problem = judge(*facts, r, q); !problem.empty()) {
      report.problems.push_back(std::move(problem));
    } else if (r == role::queue && facts->exists && q.dir_gid && facts->gid == *q.dir_gid &&
               (facts->mode & S_IWGRP) != 0) {
      report.notes.push_back((q.name.empty() ? "" : "queue " + q.name + ": ") + "directory " + path +
                             " is writable by group " + q.dir_group + " (dir_group)");
    }
  }
  return report;
}

bool task_owners::trusted_other(uid_t owner) {
  if (!dir_gid_) return false;
  auto it = known_.find(owner);
  if (it != known_.end()) return it->second;
  const bool member = user_in_group(owner, *dir_gid_);
  known_.emplace(owner, member);
  return member;
}

std::string task_owners::refusal(uid_t owner) const {
  std::string out = "task file owned by uid " + std::to_string(owner);
  if (std::string name = user_name(owner); name != std::to_string(owner)) out += " (" + name + ")";
  const std::string host = "the host's user (" + user_name(host_uid_) + ")";
  if (dir_gid_) {
    out += ", who is neither " + host + (host_uid_ == 0 ? "" : ", root,") + " nor in dir_group " + dir_group_;
  } else {
    out += host_uid_ == 0 ? ", who is not " + host : ", who is neither " + host + " nor root";
    out += ", and the queue has no dir_group";
  }
  return out;
}

}  // namespace spoold
