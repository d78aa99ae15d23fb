"""Handlers that misbehave on purpose, picked by the task's `case` arg; each
call appends {"id", "case", "attempt", "pid"} to $PP_RECORD first."""
import ctypes
import json
import os

import spoold
import uwsgi

RECORD = os.environ["PP_RECORD"]


def record(task, case):
    line = json.dumps({"id": task["spooler_task_name"].decode(), "case": case, "attempt": spoold.attempt(),
                       "pid": os.getpid()}) + "\n"
    with open(RECORD, "a") as f:
        f.write(line)


def handler(task):
    case = task[b"case"].decode()
    record(task, case)
    if case == "ok":
        return uwsgi.SPOOL_OK
    if case == "raise":
        raise ValueError("boom in task " + task[b"n"].decode())
    if case == "retry_twice":
        return uwsgi.SPOOL_RETRY if spoold.attempt() < 2 else uwsgi.SPOOL_OK
    if case == "garbage":
        return "not a status"
    if case == "permanent":
        raise spoold.PermanentError("the account is closed")
    if case == "fail":
        return spoold.SPOOL_FAIL
    if case == "ignore":
        return uwsgi.SPOOL_IGNORE
    if case == "crash":
        ctypes.string_at(0)
    raise AssertionError("unknown case %r" % case)


uwsgi.spooler = handler
