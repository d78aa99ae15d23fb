/* The spoold producer library: writes one task file into a queue directory
 * in the uWSGI spool format (SPEC §2), atomically (a temporary name in the
 * same directory, fsync, rename), so a spoold host or a uWSGI spooler never
 * sees a partial task.
 *
 *   spoold_task_builder* b = spoold_task_builder_new();
 *   spoold_task_builder_add_arg(b, "type", 4, "mail", 4);
 *   spoold_task_builder_set_body(b, json, json_len);
 *   char id[SPOOLD_CLIENT_ID_MAX], err[256];
 *   if (spoold_enqueue("/srv/spool/mail", b, id, sizeof id, err, sizeof err) != 0)
 *     fprintf(stderr, "enqueue: %s\n", err);
 *   spoold_task_builder_free(b);
 *
 * Every function is safe to call from C: none throws, and a NULL pointer
 * where an object is expected gives SPOOLD_CLIENT_EINVAL. A builder is not
 * thread-safe; different builders may be used from different threads.
 * Link with -lspoold_client. */
#ifndef SPOOLD_CLIENT_H
#define SPOOLD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#if defined(SPOOLD_CLIENT_BUILDING)
#define SPOOLD_CLIENT_API __attribute__((visibility("default")))
#else
#define SPOOLD_CLIENT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: 0 is success, every failure is negative. */
#define SPOOLD_CLIENT_OK 0
#define SPOOLD_CLIENT_EINVAL (-1) /* a bad argument: NULL, empty key, out-of-range time or priority */
#define SPOOLD_CLIENT_ETOOBIG (-2) /* the args block is over 65535 bytes: put large values in the body */
#define SPOOLD_CLIENT_EIO (-3)     /* the directory or file could not be created, written or renamed */
#define SPOOLD_CLIENT_ENOMEM (-4)  /* out of memory */
#define SPOOLD_CLIENT_ERANGE (-5)  /* id_out is too small for the task id (nothing was written) */

/* A buffer of this size always holds a task id and its terminating NUL. */
#define SPOOLD_CLIENT_ID_MAX 256

/* The largest args block the format allows: the sum of 4 + key length +
 * value length over all arguments, including the `at` and `priority` keys
 * that the builder adds. */
#define SPOOLD_CLIENT_MAX_ARGS_SIZE 65535

typedef struct spoold_task_builder spoold_task_builder;

/* A new, empty task (no args, empty body, due now, no priority, synced
 * writes, file mode 0600, directory mode 0700). NULL when out of memory. */
SPOOLD_CLIENT_API spoold_task_builder* spoold_task_builder_new(void);
/* Frees a builder; NULL is ignored. */
SPOOLD_CLIENT_API void spoold_task_builder_free(spoold_task_builder* builder);

/* Appends a key/value pair; both are arbitrary bytes (a NULL pointer with
 * length 0 is an empty value). The key must not be empty. A key given twice
 * is written twice; readers keep the last value. */
SPOOLD_CLIENT_API int spoold_task_builder_add_arg(spoold_task_builder* builder, const char* key, size_t key_len,
                                                  const char* value, size_t value_len);
/* Sets the body (raw bytes to the end of the file), replacing any earlier one. */
SPOOLD_CLIENT_API int spoold_task_builder_set_body(spoold_task_builder* builder, const void* body, size_t body_len);
/* Runs the task no earlier than unix_seconds (fraction allowed): writes the
 * `at` key (whole seconds, as uWSGI does) and sets the file mtime to the
 * instant. Replaces an earlier set_at or set_delay_ms. */
SPOOLD_CLIENT_API int spoold_task_builder_set_at(spoold_task_builder* builder, double unix_seconds);
/* The same with nanoseconds since the epoch, for exact instants. */
SPOOLD_CLIENT_API int spoold_task_builder_set_at_ns(spoold_task_builder* builder, int64_t unix_ns);
/* Runs the task no earlier than delay_ms after spoold_enqueue() is called. */
SPOOLD_CLIENT_API int spoold_task_builder_set_delay_ms(spoold_task_builder* builder, uint64_t delay_ms);
/* Places the task in <queue_dir>/<priority>/ and writes the `priority` key;
 * lower numbers run first. At most 999999999. */
SPOOLD_CLIENT_API int spoold_task_builder_set_priority(spoold_task_builder* builder, unsigned priority);
/* 0 skips the fsyncs (faster, but a crash may lose the task). Default 1. */
SPOOLD_CLIENT_API int spoold_task_builder_set_sync(spoold_task_builder* builder, int sync);
/* Permission bits of the task file (default 0600) and of directories the
 * call creates (default 0700), before the umask. */
SPOOLD_CLIENT_API int spoold_task_builder_set_modes(spoold_task_builder* builder, unsigned file_mode, unsigned dir_mode);

/* Writes the task into queue_dir, creating the directory if missing.
 * On success returns 0 and copies the task id (the file name) into id_out.
 * On failure returns a negative SPOOLD_CLIENT_* code and, when err_cap > 0,
 * a NUL-terminated message (truncated to err_cap) saying what went wrong and
 * with which path. id_out may be NULL when id_cap is 0; err_out may be NULL
 * when err_cap is 0. The builder is left unchanged and can be enqueued again
 * (each call writes a new task with a new id). */
SPOOLD_CLIENT_API int spoold_enqueue(const char* queue_dir, const spoold_task_builder* builder, char* id_out,
                                     size_t id_cap, char* err_out, size_t err_cap);

/* A static description of a SPOOLD_CLIENT_* code. */
SPOOLD_CLIENT_API const char* spoold_client_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* SPOOLD_CLIENT_H */
