/* raw_consumer: the baseline for the drain benchmark. It does only the
 * syscalls any consumer of a spool directory must do per task:
 *
 *   readdir (getdents64, a few hundred names per call), then for each task
 *   name: openat, read (the whole file: one read into a 64 KiB buffer),
 *   unlinkat, close.
 *
 *   raw_consumer DIR [-p PROCS] [--lock]
 *
 * With -p P, P processes share the work without talking to each other:
 * each reads the whole directory and takes the names whose FNV-1a hash
 * modulo P is its own number, so no two ever open the same file (no lock
 * races, no ENOENT; a baseline of the syscalls, not of a coordination
 * scheme). A process repeats its pass until one finds none of its names.
 * --lock adds what a safe consumer also does (spoold and uWSGI do it):
 * open O_RDWR, take a whole-file OFD write lock without waiting, fstat the
 * descriptor (still linked? a regular file? how big?) and, unless the
 * file's ctime is older than the open (nothing renamed it since: spoold's
 * rule on local filesystems), stat the name (still this file, not moved
 * away while we waited?). In a pre-made backlog the name is never stat'ed.
 * Prints "handled <n>" (the total of all processes). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char k_prefix[] = "uwsgi_spoolfile_on_";

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s != '\0'; ++s) {
    h ^= (unsigned char)*s;
    h *= 16777619u;
  }
  return h;
}

static unsigned long long consume(const char *dir, unsigned part, unsigned parts, int lock) {
  static char buf[65536];
  unsigned long long handled = 0;
  for (;;) {
    DIR *d = opendir(dir);
    if (d == NULL) {
      fprintf(stderr, "raw_consumer: opendir %s: %s\n", dir, strerror(errno));
      exit(1);
    }
    const int dfd = dirfd(d);
    unsigned long long this_pass = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strncmp(e->d_name, k_prefix, sizeof k_prefix - 1) != 0) continue;
      if (parts > 1 && fnv1a(e->d_name) % parts != part) continue;
      struct timespec opening = {0, 0};
      if (lock) clock_gettime(CLOCK_REALTIME_COARSE, &opening);
      const int fd = openat(dfd, e->d_name, (lock ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;
      if (lock) {
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        struct stat st;
        struct stat by_name;
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0 || fstat(fd, &st) != 0 || st.st_nlink == 0) {
          close(fd);
          continue;
        }
        const int unchanged = st.st_ctim.tv_sec < opening.tv_sec ||
                              (st.st_ctim.tv_sec == opening.tv_sec && st.st_ctim.tv_nsec < opening.tv_nsec);
        if (!unchanged &&
            (fstatat(dfd, e->d_name, &by_name, AT_SYMLINK_NOFOLLOW) != 0 || by_name.st_ino != st.st_ino)) {
          close(fd);
          continue;
        }
      }
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) == (ssize_t)sizeof buf) {
      }
      if (n >= 0 && unlinkat(dfd, e->d_name, 0) == 0) {
        ++handled;
        ++this_pass;
      }
      close(fd);
    }
    closedir(d);
    if (this_pass == 0) break;
  }
  return handled;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: raw_consumer DIR [-p PROCS] [--lock]\n");
    return 2;
  }
  const char *dir = argv[1];
  unsigned procs = 1;
  int lock = 0;
  for (int a = 2; a < argc; ++a) {
    if (strcmp(argv[a], "-p") == 0 && a + 1 < argc) {
      procs = (unsigned)atoi(argv[++a]);
    } else if (strcmp(argv[a], "--lock") == 0) {
      lock = 1;
    } else {
      fprintf(stderr, "raw_consumer: unknown argument %s\n", argv[a]);
      return 2;
    }
  }
  if (procs < 1 || procs > 64) procs = 1;
  if (procs == 1) {
    printf("handled %llu\n", consume(dir, 0, 1, lock));
    return 0;
  }
  unsigned long long *counts =
      mmap(NULL, sizeof(unsigned long long) * procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (counts == MAP_FAILED) {
    perror("raw_consumer: mmap");
    return 1;
  }
  for (unsigned p = 0; p < procs; ++p) {
    const pid_t child = fork();
    if (child < 0) {
      perror("raw_consumer: fork");
      return 1;
    }
    if (child == 0) {
      counts[p] = consume(dir, p, procs, lock);
      _exit(0);
    }
  }
  int failed = 0;
  int status = 0;
  while (wait(&status) > 0) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  }
  unsigned long long total = 0;
  for (unsigned p = 0; p < procs; ++p) total += counts[p];
  printf("handled %llu\n", total);
  return failed;
}
