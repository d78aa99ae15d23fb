// Wording for how a child process ended, for logs and task errors.
#pragma once

#include <string>

namespace spoold {

// "exited with code 3", "killed by signal 11 (SIGSEGV)".
std::string describe_exit(int wait_status);
// "SIGSEGV" for 11.
std::string signal_name(int sig);

}  // namespace spoold
