#include "config_sandbox.hpp"

#include "accounts.hpp"

namespace spoold {

void read_sandbox(config_reader& r, const toml::table& t, const std::string& owner, const std::string& base,
                  sandbox_config& out) {
  r.reject_unknown(t, "the sandbox table of " + owner,
                   {"user", "group", "read", "write", "memory", "open_files", "cpu", "core", "require"});
  out.enabled = true;
  const std::string s = owner + ": sandbox";
  if (t.get("user") != nullptr) {
    r.read_string(t, "user", s, out.user);
    if (auto pw = find_user(out.user)) {
      out.uid = pw->uid;
      if (out.group.empty()) out.gid = pw->gid;  // a group named anywhere wins
    } else {
      r.problem(t.get("user")->source(), s + ".user = \"" + out.user +
                                             "\": no such user on this machine (create it, or name one from /etc/passwd)");
    }
  }
  if (t.get("group") != nullptr) {
    r.read_string(t, "group", s, out.group);
    if (auto gid = find_group(out.group)) {
      out.gid = *gid;
    } else {
      r.problem(t.get("group")->source(), s + ".group = \"" + out.group +
                                              "\": no such group on this machine (create it, or name one from /etc/group)");
    }
  }
  if (t.get("read") != nullptr || t.get("write") != nullptr) out.path_rules = true;
  r.read_paths(t, "read", s, base, out.read);
  r.read_paths(t, "write", s, base, out.write);
  r.read_size(t, "memory", s, out.memory);
  r.read_unsigned(t, "open_files", s, out.open_files, 16, 1 << 20);
  if (const toml::node* n = t.get("cpu")) {
    r.read_duration(t, "cpu", s, out.cpu);
    if (out.cpu.count() % 1000 != 0) {
      r.problem(n->source(), s + ".cpu = \"" + format_duration(out.cpu) +
                                 "\": the kernel counts CPU time limits in whole seconds: write \"1s\" or more, or \"0s\" for none");
    }
  }
  r.read_bool(t, "core", s, out.core);
  r.read_bool(t, "require", s, out.require);
}

}  // namespace spoold
