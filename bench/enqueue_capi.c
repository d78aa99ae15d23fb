/* enqueue_capi: the C API's enqueue rate. Writes N tasks (one arg n=<i>,
 * empty body) into DIR with spoold_enqueue() from libspoold_client, synced
 * (the default) or with --no-sync, and prints "elapsed <s> failed <k>".
 *
 *   enqueue_capi DIR N [--no-sync] */
#define _POSIX_C_SOURCE 200809L
#include <spoold/client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: enqueue_capi DIR N [--no-sync]\n");
    return 2;
  }
  const long long n = atoll(argv[2]);
  const int sync = !(argc > 3 && strcmp(argv[3], "--no-sync") == 0);
  spoold_task_builder *b = spoold_task_builder_new();
  if (b == NULL || spoold_task_builder_set_sync(b, sync) != 0) return 1;
  char id[SPOOLD_CLIENT_ID_MAX];
  char err[256];
  long long failed = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long long i = 0; i < n; ++i) {
    char value[32];
    const int vlen = snprintf(value, sizeof value, "%lld", i);
    spoold_task_builder_free(b);
    b = spoold_task_builder_new();
    if (b == NULL || spoold_task_builder_set_sync(b, sync) != 0 ||
        spoold_task_builder_add_arg(b, "n", 1, value, (size_t)vlen) != 0) {
      return 1;
    }
    if (spoold_enqueue(argv[1], b, id, sizeof id, err, sizeof err) != 0) {
      if (failed++ == 0) fprintf(stderr, "enqueue_capi: %s\n", err);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  spoold_task_builder_free(b);
  printf("elapsed %.6f failed %lld\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, failed);
  return failed == 0 ? 0 : 1;
}
