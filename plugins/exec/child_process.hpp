// Running one command to completion from inside a spooler process: its
// stdin fed from memory, its stderr captured, the child always reaped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace spoold::exec {

// How much of the command's stderr is kept: the end, where the reason for a
// failure usually is.
constexpr std::size_t stderr_tail_limit = 2048;

struct command_result {
  int wait_status;          // as waitpid() reports it
  std::string stderr_tail;  // the last stderr_tail_limit bytes of stderr
};

// Runs argv[0] (searched in PATH when it has no '/') with argv and exactly
// the environment env ("NAME=value" strings). The command reads input on its
// stdin, shares this process's stdout, and writes stderr to a pipe read here.
// Returns when the command has exited and been reaped; stderr that outlives
// it (a background grandchild's) is not waited for. The command is killed if
// this process dies (PR_SET_PDEATHSIG), e.g. when the host kills a spooler
// that ran past its timeout.
// Throws std::runtime_error when the command cannot be started; the child is
// killed and reaped on every exit path. Needs SIGPIPE ignored in the caller.
command_result run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                           std::string_view input);

}  // namespace spoold::exec
