"""The seed tutorial's worker, unchanged from uWSGI: one spooler callable
that routes on the task's `type`. spoold's python plugin runs it on tasks_a
and tasks_b (option module = "worker"); TUTORIAL_LOG comes from the queue's
`env` option.
"""
import json
import os
import time

import uwsgi

LOG = os.environ["TUTORIAL_LOG"]


def log(line):
    data = (time.strftime("%Y-%m-%d %H:%M:%S") + ":" + line + "\n").encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one write on O_APPEND: lines of several spoolers never interleave
    finally:
        os.close(fd)


def task_a(task):
    log(task["body"].decode())


def task_b(task):
    data = json.loads(task["body"])
    log(data["type"] + ":" + data["message"])


def worker_dispatcher(task):
    kind = task.get(b"type")
    if kind == b"a":
        task_a(task)
    elif kind == b"b":
        task_b(task)
    else:
        return uwsgi.SPOOL_IGNORE
    return uwsgi.SPOOL_OK


uwsgi.spooler = worker_dispatcher
