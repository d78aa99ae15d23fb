// Users and groups by name and number, from the passwd and group databases
// (NSS: files, LDAP, ...), for the queue directory trust checks and their
// messages.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace spoold {

// The user's name, or its number when it has none ("1234").
std::string user_name(uid_t uid);
// The group's name, or its number when it has none.
std::string group_name(gid_t gid);
// The group called name; a decimal number is taken as a gid when no group
// has that name. nullopt when there is no such group.
std::optional<gid_t> find_group(const std::string& name);
// The user called name: its uid and primary group; nullopt when there is
// no such user.
struct user_entry {
  uid_t uid;
  gid_t gid;
};
std::optional<user_entry> find_user(const std::string& name);
// The groups of the user called name whose primary group is gid: gid and
// its supplementary groups (getgrouplist); {gid} when they cannot be read.
std::vector<gid_t> groups_of(const std::string& name, gid_t gid);
// Whether the user's primary group or one of its supplementary groups is
// gid. A uid without a passwd entry belongs to no group.
bool user_in_group(uid_t uid, gid_t gid);

}  // namespace spoold
