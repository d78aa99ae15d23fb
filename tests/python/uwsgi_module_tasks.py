"""An app's tasks module with uwsgidecorators functions, for
test_uwsgi_module.py. The same file is imported by the producer (a script
run by /usr/bin/python3 with client/python's `uwsgi` module) and by the
consumer (a real uWSGI spooler, --import, with uWSGI's built-in module), as
a Django app's tasks.py is.

Each function appends one JSON line to the file named by the environment
variable UWSGI_MODULE_TEST_RECORD: {"f": name, "pid": pid, "module":
<where `uwsgi` came from>, "args": [...], "kwargs": {...}} or, for the
functions that take uWSGI's dict, "vars": {key: value}. Values must be JSON
types.
"""
import json
import os

import uwsgi
from uwsgidecorators import spool, spoolforever, spoolraw


def _record(entry):
    entry.update(pid=os.getpid(), module=getattr(uwsgi, "__file__", "built-in"))
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(os.environ["UWSGI_MODULE_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while line:
            line = line[os.write(fd, line):]
    finally:
        os.close(fd)


@spool(pass_arguments=True)
def add_row(*args, **kwargs):
    _record({"f": "add_row", "args": list(args), "kwargs": kwargs})


@spool
def plain(arguments):
    _record({"f": "plain", "vars": {k: v for k, v in arguments.items() if k != "spooler_task_name"}})


@spoolraw
def raw(arguments):
    _record({"f": "raw", "vars": {k: v for k, v in arguments.items() if k != "spooler_task_name"}})
    return uwsgi.SPOOL_OK


@spoolforever
def forever(arguments):
    _record({"f": "forever", "vars": {k: v for k, v in arguments.items() if k != "spooler_task_name"}})
