/* The one task the benchmark tools write: the uWSGI spool format (SPEC
 * section 2) with a single arg n = "<i>" and an empty body. */
#ifndef SPOOLD_BENCH_SPOOL_FORMAT_H
#define SPOOLD_BENCH_SPOOL_FORMAT_H

#include <stdio.h>
#include <string.h>

#define BENCH_TASK_PREFIX "uwsgi_spoolfile_on_"

/* Writes the file's bytes into out (cap >= 64); returns their number. */
static inline size_t bench_encode_task(char *out, size_t cap, unsigned long long i) {
  char value[32];
  const int vlen = snprintf(value, sizeof value, "%llu", i);
  const size_t args = 2 + 1 + 2 + (size_t)vlen; /* [u16 1]["n"][u16 vlen][value] */
  if (vlen <= 0 || 4 + args > cap) return 0;
  out[0] = 17;                    /* modifier1: spooler */
  out[1] = (char)(args & 0xff);   /* u16 LE size of the args block */
  out[2] = (char)(args >> 8);
  out[3] = 0;                     /* modifier2 */
  out[4] = 1;                     /* key length, u16 LE */
  out[5] = 0;
  out[6] = 'n';
  out[7] = (char)(vlen & 0xff);   /* value length, u16 LE */
  out[8] = (char)((unsigned)vlen >> 8);
  memcpy(out + 9, value, (size_t)vlen);
  return 4 + args;
}

/* The task's file name: uwsgi_spoolfile_on_bench_<pid>_<i>_0_0_0. */
static inline int bench_task_name(char *out, size_t cap, long pid, unsigned long long i) {
  return snprintf(out, cap, BENCH_TASK_PREFIX "bench_%ld_%llu_0_0_0", pid, i);
}

#endif
