// fx_euid: prints its effective uid. Installed setuid root by the sandbox
// test, it shows whether an exec gained privileges (no_new_privs).
#include <unistd.h>

#include <cstdio>

int main() {
  std::printf("%u\n", static_cast<unsigned>(::geteuid()));
  return 0;
}
