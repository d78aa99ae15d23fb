"""The spooler function of the uWSGI consumer in the compatibility tests,
loaded with `--import`. It appends one JSON line per call to the file named
by the environment variable SPOOLD_COMPAT_RECORD:

    {"t": <unix time>, "pid": <pid>, "cwd": "<dir>", "pairs": [[key, value hex], ...]}

where key is the hex of a bytes key (the task's args, as uWSGI passes them on
Python 3) or "str:<name>" for the str keys uWSGI adds itself
(spooler_task_name, body). The line goes out in one write() on an O_APPEND
descriptor, so lines of several spooler processes never interleave. A
`sleep_ms` arg makes it sleep that long after writing the line, so a run is
on record as soon as it starts. Returns uwsgi.SPOOL_OK.
"""
import json
import os
import time

import uwsgi

RECORD = os.environ["SPOOLD_COMPAT_RECORD"]


def _key(k):
    return k.hex() if isinstance(k, (bytes, bytearray)) else "str:" + k


def _value(v):
    return bytes(v).hex() if isinstance(v, (bytes, bytearray)) else str(v).encode().hex()


def spooler(task):
    line = json.dumps({"t": time.time(), "pid": os.getpid(), "cwd": os.getcwd(),
                       "pairs": [[_key(k), _value(v)] for k, v in task.items()]}) + "\n"
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = line.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    if b"sleep_ms" in task:
        time.sleep(int(task[b"sleep_ms"]) / 1000.0)
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler
