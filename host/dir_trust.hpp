// Who may write into a queue (issue 14, least privilege). Whoever can write
// the queue's directory can add tasks, and a task is input to code; whoever
// can write the folder that holds it can swap the whole directory for one
// of their own. So both must be writable only by the host's user and root,
// or, for a queue whose tasks a web app writes, also by the group the
// config names (dir_group). The same rule, applied to task files, says
// whose files are run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.hpp"

namespace spoold {

struct dir_trust_report {
  // One per directory that others may write: its path, mode, owner and
  // group, and the command that fixes it.
  std::vector<std::string> problems;
  // What the operator should know although it is allowed: "queue q:
  // directory /x is writable by group www-data (dir_group)".
  std::vector<std::string> notes;
};

// Checks q.dir and its parent against q.host_user() and q.dir_gid. A directory
// that does not exist yet is judged as spoold would create it (dir_mode,
// owned by the host's user), so --check sees what a start would refuse.
dir_trust_report check_dir_trust(const queue_config& q);

// Whose task files a queue runs: the host's user's, root's, the queue's
// sandbox user's (its spoolers rewrite tasks they retry), and those of the
// members of dir_group. A task file anyone else owns was not written
// by a producer of this queue (a hard link, a chown, a directory that was
// open to others once) and is moved to failed/ instead.
class task_owners {
 public:
  explicit task_owners(const queue_config& q)
      : host_uid_(q.host_user()), sandbox_uid_(q.sandbox.uid), dir_gid_(q.dir_gid), dir_group_(q.dir_group) {}

  // One compare for the host's own files, the hot path; other owners are
  // looked up once per uid and remembered for the life of the process (a
  // change of group membership takes effect when spoolers are replaced, as
  // on a reload).
  bool trusted(uid_t owner) {
    if (owner == host_uid_ || owner == 0) return true;
    if (sandbox_uid_ && owner == *sandbox_uid_) return true;
    return trusted_other(owner);
  }
  // Why a file owner is not trusted ("task file owned by uid 1234 (alice),
  // who is neither ..."), for failed/<name>.error and the log.
  std::string refusal(uid_t owner) const;

 private:
  bool trusted_other(uid_t owner);

  uid_t host_uid_;
  std::optional<std::uint32_t> sandbox_uid_;
  std::optional<gid_t> dir_gid_;
  std::string dir_group_;
  std::unordered_map<uid_t, bool> known_;
};

}  // namespace spoold
