"""The differential test's handler, run unchanged by a uWSGI spooler
(--spooler-import) and by spoold's python plugin: it appends repr() of the
dict it receives to $PP_RECORD and returns the code the task's `ret` arg
names (-2 when absent; a non-number is returned as a str, which both read
as Retry)."""
import json
import os

import uwsgi

RECORD = os.environ["PP_RECORD"]


def recorder(task):
    line = json.dumps({"id": task["spooler_task_name"].decode(), "repr": repr(task), "pid": os.getpid()}) + "\n"
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    ret = task.get(b"ret", b"-2")
    try:
        return int(ret)
    except ValueError:
        return ret.decode(errors="replace")


uwsgi.spooler = recorder
