/* make_backlog: writes N valid task files into a directory, fast, for the
 * drain benchmark.
 *
 *   make_backlog DIR N [-j JOBS] [--start I]
 *
 * Each file is a task in the uWSGI spool format (SPEC section 2): the byte
 * 17, the u16 little-endian size of the args block, the byte 0, then the
 * args block holding one pair, n = "<i>", and an empty body. Its name is
 * uwsgi_spoolfile_on_bench_<pid>_<i>_0_0_0. Files are created in place with
 * O_CREAT|O_EXCL and are not fsync'd (nothing consumes the directory while
 * it is written; the driver calls sync() afterwards so every contender
 * starts from the same on-disk state). JOBS processes split the range.
 * Prints the number written; exits 1 if any file could not be written. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool_format.h"

static int write_range(int dirfd, long pid, unsigned long long from, unsigned long long to) {
  char name[128];
  char data[64];
  for (unsigned long long i = from; i < to; ++i) {
    bench_task_name(name, sizeof name, pid, i);
    const size_t len = bench_encode_task(data, sizeof data, i);
    const int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      fprintf(stderr, "make_backlog: create %s: %s\n", name, strerror(errno));
      return 1;
    }
    if (write(fd, data, len) != (ssize_t)len) {
      fprintf(stderr, "make_backlog: write %s: %s\n", name, strerror(errno));
      close(fd);
      return 1;
    }
    close(fd);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: make_backlog DIR N [-j JOBS] [--start I]\n");
    return 2;
  }
  const char *dir = argv[1];
  const unsigned long long n = strtoull(argv[2], NULL, 10);
  unsigned long long start = 0;
  int jobs = 1;
  for (int a = 3; a < argc; ++a) {
    if (strcmp(argv[a], "-j") == 0 && a + 1 < argc) {
      jobs = atoi(argv[++a]);
    } else if (strcmp(argv[a], "--start") == 0 && a + 1 < argc) {
      start = strtoull(argv[++a], NULL, 10);
    } else {
      fprintf(stderr, "make_backlog: unknown argument %s\n", argv[a]);
      return 2;
    }
  }
  if (jobs < 1 || jobs > 64) jobs = 1;
  const int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    fprintf(stderr, "make_backlog: open %s: %s\n", dir, strerror(errno));
    return 1;
  }
  const long pid = (long)getpid();
  int failed = 0;
  const unsigned long long per = (n + (unsigned long long)jobs - 1) / (unsigned long long)jobs;
  for (int j = 0; j < jobs; ++j) {
    unsigned long long from = start + per * (unsigned long long)j;
    unsigned long long to = from + per;
    if (to > start + n) to = start + n;
    if (from >= to) break;
    if (jobs == 1) return write_range(dirfd, pid, from, to) == 0 ? (printf("%llu\n", n), 0) : 1;
    const pid_t child = fork();
    if (child < 0) {
      perror("make_backlog: fork");
      return 1;
    }
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL); /* a stopped benchmark stops writing too */
      if (getppid() != (pid_t)pid) _exit(1);
      _exit(write_range(dirfd, pid, from, to));
    }
  }
  int status = 0;
  while (wait(&status) > 0) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  }
  if (failed) return 1;
  printf("%llu\n", n);
  return 0;
}
