#include "config_sandbox.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace spoold {

namespace {

// getpwnam_r / getgrnam_r with a buffer that grows: NSS entries have no
// fixed size.
std::optional<passwd> find_user(const std::string& name, std::vector<char>& buf) {
  buf.resize(4096);
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    const int err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0 || found == nullptr) return std::nullopt;
    return pw;
  }
}

std::optional<gid_t> find_group(const std::string& name) {
  std::vector<char> buf(4096);
  for (;;) {
    group gr{};
    group* found = nullptr;
    const int err = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0 || found == nullptr) return std::nullopt;
    return gr.gr_gid;
  }
}

}  // namespace

void read_sandbox(config_reader& r, const toml::table& t, const std::string& owner, const std::string& base,
                  sandbox_config& out) {
  r.reject_unknown(t, "the sandbox table of " + owner,
                   {"user", "group", "read", "write", "memory", "open_files", "cpu", "core", "require"});
  out.enabled = true;
  const std::string s = owner + ": sandbox";
  if (t.get("user") != nullptr) {
    r.read_string(t, "user", s, out.user);
    std::vector<char> buf;
    if (auto pw = find_user(out.user, buf)) {
      out.uid = pw->pw_uid;
      if (out.group.empty()) out.gid = pw->pw_gid;  // a group named anywhere wins
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
