"""A Redis queue's handler that spools into its own queue: uwsgi.spool()
without a spooler key, and Debian's @spool. A task's `chain` arg says what
to spool; every call appends {"id", "args", "body", "attempt", "t"} (and
"spooled", the id uwsgi.spool() returned, or "errors", the ValueErrors it
raised) to $PP_RECORD. A task with `hold=NAME` then waits for a datagram on
the Unix socket NAME beside $PP_RECORD (bound before the record line the test
waits for), so the test can look at Redis before anything else runs;
`wait=NAME` waits for it before spooling (the test stops the server first)."""
import json
import os
import socket
import time

import spoold
import uwsgi
import uwsgidecorators

RECORD = os.environ["PP_RECORD"]
HERE = os.path.dirname(RECORD)


def text(b):
    return b.decode("latin-1")


def record(line):
    line["t"] = time.time()
    with open(RECORD, "a") as f:
        f.write(json.dumps(line) + "\n")


def gate(name):
    """A Unix datagram socket at NAME: the handler blocks on it until the
    test sends a byte (test_python_plugin's go()), 30 s at most."""
    path = os.path.join(HERE, name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(30)
    return s


def pass_gate(s):
    try:
        s.recv(1)
    except socket.timeout:
        raise RuntimeError("nothing came on the gate %s within 30 s" % s.getsockname())
    finally:
        s.close()


@uwsgidecorators.spool
def decorated(arguments):
    record({"id": arguments["spooler_task_name"], "fn": "decorated", "greeting": arguments["greeting"]})


def spool_once(task, line):
    chain = task.get(b"chain")
    tid = task["spooler_task_name"]
    if chain == b"1":
        return uwsgi.spool({b"step": b"2", b"parent": tid, b"body": b"\x00second step\xff"})
    if chain == b"prio":
        return uwsgi.spool({"step": "prio", "priority": "3"})
    if chain == b"later":
        line["at"] = int(time.time()) + 3
        return uwsgi.spool(step="later", at=str(line["at"]))
    if chain == b"decorated":
        return decorated.spool(greeting="hi")
    return None


def handler(task):
    if b"ud_spool_func" in task:
        return uwsgidecorators.manage_spool_request(task)
    tid = text(task["spooler_task_name"])
    line = {"id": tid, "attempt": spoold.attempt(),
            "args": {text(k): text(v) for k, v in task.items() if isinstance(k, bytes)},
            "body": text(task.get("body", b"")), "errors": []}
    if b"wait" in task:
        g = gate(text(task[b"wait"]))
        record({"id": tid, "waiting": True})
        pass_gate(g)
    tries = [lambda: spool_once(task, line)]
    if task.get(b"chain") == b"bad":
        tries = [lambda: uwsgi.spool({"spoold.id": "mine"}), lambda: uwsgi.spool(big="x" * 70000),
                 lambda: uwsgi.spool({"k": 1})]
    for attempt in tries:
        try:
            spooled = attempt()
            if spooled is not None:
                line.setdefault("spooled", []).append(spooled.decode())
        except ValueError as e:
            line["errors"].append(str(e))
    held = gate(text(task[b"hold"])) if b"hold" in task else None
    record(line)
    if held is not None:
        pass_gate(held)
    return uwsgi.SPOOL_OK


uwsgi.spooler = handler
