// What --check, a start and a reload verify beyond the file itself, for
// least privilege: who may write each queue (dir_trust) and whether each
// queue's sandbox can be applied on this host (sandbox). One routine, so
// that the three refuse the same things.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace spoold {

struct privilege_review {
  std::vector<std::string> problems;  // refuse: exit 2, or keep the running config
  std::vector<std::string> warnings;  // allowed, but a promise is not kept (no Landlock)
  std::vector<std::string> notes;     // allowed, and the operator should know (dir_group)
};

privilege_review review_privileges(const config& c);

}  // namespace spoold
