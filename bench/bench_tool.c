/* bench_tool: the small timing helpers of the benchmark driver.
 *
 *   bench_tool watch DIR N [--poll-us U] [--stall S] [--timeout S]
 *       Times the drain of a backlog of N task files in DIR without slowing
 *       the consumer: it polls an O(1) estimate of the number of files left
 *       (tmpfs: the directory's st_size, which tmpfs keeps at 20 bytes per
 *       entry; elsewhere: the filesystem's free inode count, which grows by
 *       one per deleted file) every U microseconds (default 1000), and reads
 *       the directory itself only to confirm that it is empty (or when the
 *       estimate stops moving, since other processes on the filesystem can
 *       create or delete files too). Output, CLOCK_MONOTONIC seconds:
 *         ready <count> <method>          after checking DIR holds N tasks
 *         sample <t> <left>               every 250 ms
 *         first <t> <left>                the first poll that saw files go
 *         empty <t>                       the poll of the last decrease, confirmed by a scan
 *       or "stalled <t> <left>" / "timeout <t> <left>" (exit 4) when no file
 *       went for S seconds (default 60) / the whole drain took over S s.
 *
 *   bench_tool produce DIR N INTERVAL_US OUT
 *       Writes N tasks at a steady rate (one every INTERVAL_US, on an
 *       absolute schedule) as spoold's producers do (a temporary name, then
 *       rename into place; no fsync), and writes "<task id> <CLOCK_REALTIME
 *       ns right after the rename>" lines to OUT.
 *
 *   bench_tool spawn N PROGRAM [ARGS...]
 *       Runs PROGRAM N times, one after the other (posix_spawn + waitpid,
 *       stdout to /dev/null). Prints "elapsed <s> failed <k>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool_format.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

extern char **environ;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Exact: task files in dir, and all entries (for the tmpfs estimate). */
static long long count_tasks(const char *dir, long long *all_entries) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  long long tasks = 0;
  long long all = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    ++all;
    if (strncmp(e->d_name, BENCH_TASK_PREFIX, sizeof BENCH_TASK_PREFIX - 1) == 0) ++tasks;
  }
  closedir(d);
  if (all_entries != NULL) *all_entries = all;
  return tasks;
}

struct estimator {
  const char *dir;
  int tmpfs;
  long long offset; /* tmpfs: entries that are not tasks; else: N + f_ffree at the start */
};

static long long estimate(const struct estimator *est) {
  if (est->tmpfs) {
    struct stat st;
    if (stat(est->dir, &st) != 0) return -1;
    return (long long)(st.st_size / 20) - est->offset;
  }
  struct statvfs vfs;
  if (statvfs(est->dir, &vfs) != 0) return -1;
  return est->offset - (long long)vfs.f_ffree;
}

/* Sets the estimator so that it reads `tasks` now. */
static void calibrate(struct estimator *est, long long tasks) {
  est->offset = 0;
  const long long raw = estimate(est);
  est->offset = est->tmpfs ? raw - tasks : tasks - raw;
}

static int cmd_watch(int argc, char **argv) {
  if (argc < 4) return 2;
  const char *dir = argv[2];
  const long long n = atoll(argv[3]);
  long poll_us = 1000;
  double stall_s = 60;
  double timeout_s = 3600;
  for (int a = 4; a + 1 < argc; a += 2) {
    if (strcmp(argv[a], "--poll-us") == 0) poll_us = atol(argv[a + 1]);
    else if (strcmp(argv[a], "--stall") == 0) stall_s = atof(argv[a + 1]);
    else if (strcmp(argv[a], "--timeout") == 0) timeout_s = atof(argv[a + 1]);
  }
  struct statfs sfs;
  if (statfs(dir, &sfs) != 0) {
    fprintf(stderr, "bench_tool watch: statfs %s: %s\n", dir, strerror(errno));
    return 1;
  }
  struct estimator est = {dir, sfs.f_type == TMPFS_MAGIC, 0};
  const long long have = count_tasks(dir, NULL);
  if (have != n) {
    printf("error %lld tasks in %s, expected %lld\n", have, dir, n);
    return 3;
  }
  calibrate(&est, n);
  printf("ready %lld %s\n", have, est.tmpfs ? "tmpfs-dir-size" : "free-inodes");
  fflush(stdout);
  /* Noise from other processes matters only for the free-inode count. */
  const long long first_threshold = est.tmpfs ? 1 : 32;
  const double start = mono_now();
  double t_last_decrease = start;
  double t_last_change = start;
  double next_sample = start;
  long long last = n;
  int first_seen = 0;
  for (;;) {
    sleep_us(poll_us);
    const double t = mono_now();
    const long long left = estimate(&est);
    if (left != last) {
      if (left < last) t_last_decrease = t;
      t_last_change = t;
      last = left;
      if (!first_seen && left <= n - first_threshold) {
        first_seen = 1;
        printf("first %.6f %lld\n", t, left);
        fflush(stdout);
      }
    }
    if (t >= next_sample) {
      printf("sample %.6f %lld\n", t, left);
      fflush(stdout);
      next_sample = t + 0.25;
    }
    /* Confirm with a scan when the estimate says empty, or when it has not
     * moved for 100 ms near the end (files made or removed elsewhere). */
    const int quiet_near_end = first_seen && t - t_last_change > 0.1 && left < n / 10 + 64;
    if (left <= 0 || quiet_near_end) {
      const long long exact = count_tasks(dir, NULL);
      if (exact == 0) {
        if (!first_seen) printf("first %.6f %lld\n", t_last_decrease, 0LL);
        printf("empty %.6f\n", t_last_decrease);
        return 0;
      }
      calibrate(&est, exact);
      last = exact;
      t_last_change = mono_now();
    }
    if (t - t_last_change > stall_s || t - start > timeout_s) {
      const long long exact = count_tasks(dir, NULL);
      printf("%s %.6f %lld\n", t - start > timeout_s ? "timeout" : "stalled", t, exact);
      return 4;
    }
  }
}

static int cmd_produce(int argc, char **argv) {
  if (argc < 6) return 2;
  const char *dir = argv[2];
  const long long n = atoll(argv[3]);
  const long interval_us = atol(argv[4]);
  const char *out_path = argv[5];
  const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    fprintf(stderr, "bench_tool produce: open %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char (*names)[128] = calloc((size_t)n, sizeof *names);
  long long *stamps = calloc((size_t)n, sizeof *stamps);
  if (names == NULL || stamps == NULL) return 1;
  const long pid = (long)getpid();
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long long i = 0; i < n; ++i) {
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    char tmp[64];
    char data[64];
    snprintf(tmp, sizeof tmp, ".spoold-tmp-bench-%ld-%lld", pid, i);
    bench_task_name(names[i], sizeof names[i], pid, (unsigned long long)i);
    const size_t len = bench_encode_task(data, sizeof data, (unsigned long long)i);
    const int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0 || renameat(dfd, tmp, dfd, names[i]) != 0) {
      fprintf(stderr, "bench_tool produce: task %lld: %s\n", i, strerror(errno));
      return 1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    stamps[i] = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    next.tv_nsec += interval_us * 1000;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec += 1;
    }
  }
  FILE *out = fopen(out_path, "w");
  if (out == NULL) {
    fprintf(stderr, "bench_tool produce: %s: %s\n", out_path, strerror(errno));
    return 1;
  }
  for (long long i = 0; i < n; ++i) fprintf(out, "%s %lld\n", names[i], stamps[i]);
  fclose(out);
  printf("produced %lld\n", n);
  return 0;
}

static int cmd_spawn(int argc, char **argv) {
  if (argc < 4) return 2;
  const long long n = atoll(argv[2]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  long long failed = 0;
  const double start = mono_now();
  for (long long i = 0; i < n; ++i) {
    pid_t pid;
    if (posix_spawn(&pid, argv[3], &actions, NULL, argv + 3, environ) != 0) {
      ++failed;
      continue;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  printf("elapsed %.6f failed %lld\n", mono_now() - start, failed);
  posix_spawn_file_actions_destroy(&actions);
  return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  int rc = 2;
  if (argc >= 2 && strcmp(argv[1], "watch") == 0) rc = cmd_watch(argc, argv);
  else if (argc >= 2 && strcmp(argv[1], "produce") == 0) rc = cmd_produce(argc, argv);
  else if (argc >= 2 && strcmp(argv[1], "spawn") == 0) rc = cmd_spawn(argc, argv);
  if (rc == 2) {
    fprintf(stderr,
            "usage: bench_tool watch DIR N [--poll-us U] [--stall S] [--timeout S]\n"
            "       bench_tool produce DIR N INTERVAL_US OUT\n"
            "       bench_tool spawn N PROGRAM [ARGS...]\n");
  }
  return rc;
}
