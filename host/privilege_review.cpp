#include "privilege_review.hpp"

#include "dir_trust.hpp"
#include "sandbox.hpp"

namespace spoold {

privilege_review review_privileges(const config& c) {
  privilege_review out;
  for (const auto& q : c.queues) {
    if (q.dir.empty()) continue;  // already a problem of the file
    auto trust = check_dir_trust(q);
    out.problems.insert(out.problems.end(), trust.problems.begin(), trust.problems.end());
    out.notes.insert(out.notes.end(), trust.notes.begin(), trust.notes.end());
  }
  auto sandboxes = review_sandboxes(c);
  out.problems.insert(out.problems.end(), sandboxes.problems.begin(), sandboxes.problems.end());
  out.warnings.insert(out.warnings.end(), sandboxes.warnings.begin(), sandboxes.warnings.end());
  return out;
}

}  // namespace spoold
