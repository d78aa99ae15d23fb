#include "accounts.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <vector>

namespace spoold {

namespace {

// The _r calls want a buffer whose size only the call knows: start at the
// size sysconf suggests and double on ERANGE.
std::size_t initial_buffer(int which) {
  const long n = ::sysconf(which);
  return n > 0 ? static_cast<std::size_t>(n) : 1024;
}

// getpwuid_r into pw; false when there is no such user (or the lookup failed).
bool lookup_user(uid_t uid, passwd& pw, std::vector<char>& buf) {
  buf.resize(initial_buffer(_SC_GETPW_R_SIZE_MAX));
  for (;;) {
    passwd* found = nullptr;
    const int err = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return err == 0 && found != nullptr;
  }
}

template <class Lookup>
bool lookup_group(Lookup call, std::vector<char>& buf) {
  buf.resize(initial_buffer(_SC_GETGR_R_SIZE_MAX));
  for (;;) {
    group* found = nullptr;
    const int err = call(buf, found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return err == 0 && found != nullptr;
  }
}

}  // namespace

std::string user_name(uid_t uid) {
  passwd pw {};
  std::vector<char> buf;
  if (lookup_user(uid, pw, buf) && pw.pw_name != nullptr) return pw.pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  group gr {};
  std::vector<char> buf;
  const bool found = lookup_group(
      [&](std::vector<char>& b, group*& out) { return ::getgrgid_r(gid, &gr, b.data(), b.size(), &out); }, buf);
  if (found && gr.gr_name != nullptr) return gr.gr_name;
  return std::to_string(gid);
}

std::optional<gid_t> find_group(const std::string& name) {
  if (name.empty()) return std::nullopt;
  group gr {};
  std::vector<char> buf;
  if (lookup_group([&](std::vector<char>& b, group*& out) { return ::getgrnam_r(name.c_str(), &gr, b.data(), b.size(), &out); },
                   buf)) {
    return gr.gr_gid;
  }
  gid_t gid = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), gid);
  if (ec == std::errc() && end == name.data() + name.size()) return gid;
  return std::nullopt;
}

std::optional<user_entry> find_user(const std::string& name) {
  if (name.empty()) return std::nullopt;
  passwd pw {};
  std::vector<char> buf(initial_buffer(_SC_GETPW_R_SIZE_MAX));
  for (;;) {
    passwd* found = nullptr;
    const int err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0 || found == nullptr) return std::nullopt;
    return user_entry{pw.pw_uid, pw.pw_gid};
  }
}

std::vector<gid_t> groups_of(const std::string& name, gid_t gid) {
  std::vector<gid_t> groups(64);
  for (;;) {
    int n = static_cast<int>(groups.size());
    if (::getgrouplist(name.c_str(), gid, groups.data(), &n) >= 0) {
      groups.resize(static_cast<std::size_t>(n));
      return groups;
    }
    // Too small: n now holds the count needed.
    if (n <= static_cast<int>(groups.size()) || n > 65536) return {gid};
    groups.resize(static_cast<std::size_t>(n));
  }
}

bool user_in_group(uid_t uid, gid_t gid) {
  passwd pw {};
  std::vector<char> buf;
  if (!lookup_user(uid, pw, buf)) return false;
  if (pw.pw_gid == gid) return true;
  const auto groups = groups_of(pw.pw_name, pw.pw_gid);
  return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

}  // namespace spoold
