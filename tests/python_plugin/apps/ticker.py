"""Starts a thread at import that appends a tick to $PP_TICKS every 10 ms:
it only runs while the spooler's thread does not hold the GIL."""
import os
import threading
import time

import uwsgi


def _tick():
    while True:
        with open(os.environ["PP_TICKS"], "a") as f:
            f.write("%f\n" % time.time())
        time.sleep(0.01)


threading.Thread(target=_tick, daemon=True).start()


def handler(task):
    with open(os.environ["PP_RECORD"], "a") as f:
        f.write('{"id": "%s"}\n' % task["spooler_task_name"].decode())
    return uwsgi.SPOOL_OK


uwsgi.spooler = handler
