# The uWSGI baseline's spooler handlers, imported with
#   uwsgi --plugin python3 --spooler DIR ... --import uwsgi_handlers
# SPOOLD_BENCH_MODE picks one:
#   noop     returns SPOOL_OK. With SPOOLD_BENCH_COUNT_FILE set, it also
#            counts the tasks handled in a shared file (one struct.pack_into
#            per task, a fraction of a microsecond) so the benchmark can check
#            that every task was handled exactly once: each spooler process
#            claims a 16-byte slot (pid, count) under flock on its first task.
#   latency  appends "<task id> <CLOCK_REALTIME ns>" to SPOOLD_BENCH_RECORD_FILE,
#            the time taken first thing in the handler, as the spoold
#            bench_latency plugin does.
import os
import struct

import uwsgi

_MODE = os.environ.get("SPOOLD_BENCH_MODE", "noop")
_COUNT_FILE = os.environ.get("SPOOLD_BENCH_COUNT_FILE")
_RECORD_FILE = os.environ.get("SPOOLD_BENCH_RECORD_FILE")
_SLOT_SIZE = 16
_SLOTS = 256


def _claim_slot():
    import fcntl
    import mmap

    fd = os.open(_COUNT_FILE, os.O_RDWR)
    mem = mmap.mmap(fd, _SLOT_SIZE * _SLOTS)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        for i in range(1, _SLOTS):  # slot 0 belongs to spoold's noop plugin
            if struct.unpack_from("<q", mem, i * _SLOT_SIZE)[0] == 0:
                struct.pack_into("<q", mem, i * _SLOT_SIZE, os.getpid())
                return mem, i * _SLOT_SIZE + 8
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise RuntimeError("no free counter slot in " + _COUNT_FILE)


if _MODE == "latency":
    import time

    _fd = None

    def _latency(env):
        now = time.time_ns()
        global _fd
        if _fd is None:
            _fd = os.open(_RECORD_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # uWSGI 2.0 puts the task's file name under a str key, as bytes
        name = env.get("spooler_task_name") or env.get(b"spooler_task_name") or b"?"
        if isinstance(name, str):
            name = name.encode()
        name = os.path.basename(name)
        os.write(_fd, name + b" " + str(now).encode() + b"\n")
        return uwsgi.SPOOL_OK

    uwsgi.spooler = _latency
elif _COUNT_FILE:
    _state = []

    def _noop_counted(env):
        if not _state:
            mem, offset = _claim_slot()
            _state.extend([mem, offset, 0])
        _state[2] += 1
        struct.pack_into("<q", _state[0], _state[1], _state[2])
        return uwsgi.SPOOL_OK

    uwsgi.spooler = _noop_counted
else:

    def _noop(env):
        return uwsgi.SPOOL_OK

    uwsgi.spooler = _noop
