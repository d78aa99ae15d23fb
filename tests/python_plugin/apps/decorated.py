"""An app written for uWSGI with Debian's uwsgidecorators, unchanged: every
decorated function appends {"fn", "args", "kwargs", "attempt", "id"} to
$PP_RECORD. The `start` task enqueues the others from inside a handler."""
import json
import os
import time

import spoold
import uwsgi
from uwsgidecorators import spool, spoolforever, spoolraw

RECORD = os.environ["PP_RECORD"]


def record(fn, *args, extra=None, **kwargs):
    line = {"fn": fn, "args": repr(args), "kwargs": repr(kwargs), "attempt": spoold.attempt(), "t": time.time(),
            "extra": extra}
    with open(RECORD, "a") as f:
        f.write(json.dumps(line) + "\n")


@spool
def start(arguments):
    at = int(time.time()) + 2
    paths = [
        plain.spool({"greeting": "hello"}),
        raw.spool(n="1"),
        forever.spool(),
        pickled.spool(1, "two", b"\xff\x00three", {"four": [4.0, None]}, five=(5,), priority="3"),
        pickled.spool("later", at=str(at)),
        pickled.spool("elsewhere", spooler=arguments["other_queue"].encode()),
    ]
    record("start", arguments["other_queue"], extra={"at": at, "paths": [p.decode() for p in paths]})
    return "ignored: @spool returns SPOOL_OK whatever the function returns"


@spool
def plain(arguments):
    record("plain", sorted((k, v) for k, v in arguments.items() if k != "spooler_task_name"))


@spoolraw
def raw(arguments):
    record("raw", arguments["n"])
    return uwsgi.SPOOL_RETRY if spoold.attempt() == 0 else uwsgi.SPOOL_OK


@spoolforever
def forever(arguments):
    record("forever")


@spool(pass_arguments=True)
def pickled(*args, **kwargs):
    record("pickled", *args, **kwargs)
