"""The python plugin runs a Redis queue unchanged: the same handler module
(tests/python_plugin/apps/outcomes.py) gets the same dict and its statuses
act as on a directory queue; uwsgi.spool() inside its handler
(tests/python_plugin/apps/redis_spool.py) writes into the queue's own
stream as spoolctl enqueue does."""
import json
import os
import shutil
import socket
import subprocess
import unittest

from redis_support import PLUGIN_DIR, SPOOLD, RedisTestCase, enqueue, redis, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "..", "python_plugin", "apps")
STREAM = "spoold:py"


UWSGIDECORATORS = "/usr/lib/python3/dist-packages/uwsgidecorators.py"


def python_toml(url, record, extra="", module="outcomes"):
    return """[host]
plugin_dir = "%s"

[[queue]]
name = "py"
source = "redis"
url = "%s"
plugin = "python"
backoff = "100ms"
max_attempts = 3
%s
[queue.options]
module = "%s"
path = ["apps"]
"env.PP_RECORD" = "%s"
""" % (PLUGIN_DIR, url, extra, module, record)


@unittest.skipUnless(PLUGIN_DIR and os.path.exists(os.path.join(PLUGIN_DIR, "libpython.so")),
                     "the python plugin was not built")
def json_lines(path):
    """The complete lines of a handler's JSON record file, parsed."""
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.endswith("\n")]
    except FileNotFoundError:
        return []


class PythonPluginOnRedisTest(RedisTestCase):
    def setUp(self):
        super().setUp()
        shutil.copytree(APPS, self.path("apps"))
        self.record = self.path("record.jsonl")

    def py_records(self):
        return json_lines(self.record)

    def test_outcomes_handler_runs_unchanged(self):
        d = self.daemon(python_toml(self.redis.url(), self.record))
        ok = enqueue(self.r, STREAM, [("case", "ok")])
        twice = enqueue(self.r, STREAM, [("case", "retry_twice")])
        raised = enqueue(self.r, STREAM, [("case", "raise"), ("n", "7")])
        permanent = enqueue(self.r, STREAM, [("case", "permanent")])
        wait_until(lambda: len(self.py_records()) >= 1 + 3 + 3 + 1, 60, what="8 handler calls")
        by = {}
        for r in self.py_records():
            by.setdefault(r["id"], []).append(r["attempt"])
        self.assertEqual(by[ok], [0])
        self.assertEqual(by[twice], [0, 1, 2])
        self.assertEqual(by[raised], [0, 1, 2])
        self.assertEqual(by[permanent], [0])
        wait_until(lambda: self.r.xlen(STREAM + ":failed") == 2, 20, what="2 failed")
        errors = {e[1][b"spoold.id"].decode(): e[1][b"spoold.error"].decode()
                  for e in self.r.xrange(STREAM + ":failed")}
        self.assertIn("boom in task 7", errors[raised])
        self.assertIn("the account is closed", errors[permanent])
        wait_until(lambda: self.r.xlen(STREAM) == 0, 10, what="the stream emptied")
        self.assertEqual(d.stop(), 0)

    def test_check_starts_the_python_chain_of_a_redis_queue(self):
        path = self.path("check.toml")
        with open(path, "w") as f:
            f.write(python_toml(self.redis.url(), self.record))
        p = subprocess.run([SPOOLD, "-c", path, "--check"], capture_output=True, timeout=60, cwd=self.root)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


@unittest.skipUnless(PLUGIN_DIR and os.path.exists(os.path.join(PLUGIN_DIR, "libpython.so")),
                     "the python plugin was not built")
@unittest.skipUnless(os.path.exists(UWSGIDECORATORS), "Debian's python3-uwsgidecorators is not installed")
class SpoolIntoRedisTest(RedisTestCase):
    """uwsgi.spool() without a spooler key in a Redis queue's handler."""

    def setUp(self):
        super().setUp()
        shutil.copytree(APPS, self.path("apps"))
        self.record = self.path("record.jsonl")

    def start(self, server, url=None):
        return self.daemon(python_toml(url or server.url(), self.record, module="redis_spool"))

    def py_records(self):
        return json_lines(self.record)

    def wait_record(self, d, what, **match):
        """The first record whose items include match (a call that finished
        unless waiting=True is asked for); fails at once if spoold exits."""
        def found():
            if d.proc.poll() is not None:
                raise AssertionError("spoold exited with %d:\n%s" % (d.proc.returncode, d.log()[-4000:]))
            for r in self.py_records():
                if all(r.get(k) == v for k, v in match.items()) and ("waiting" in r) == ("waiting" in match):
                    return r
            return None
        return wait_until(found, 30, interval=0.02, what=what)

    def go(self, name):
        """Lets a handler held at the gate NAME go on (bound before its record)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"g", self.path(name))

    def spooled(self, d, tid):
        r = self.wait_record(d, "the handler of %s to spool" % tid, id=tid)
        self.assertEqual(r["errors"], [])
        self.assertEqual(len(r["spooled"]), 1)
        return r, r["spooled"][0]

    def test_spool_writes_into_the_own_stream_then_the_host_runs_it(self):
        d = self.start(self.redis)
        # chain=1: an entry of the stream, args in order, then spoold.id and
        # spoold.body; the id uwsgi.spool() returned is its spoold.id.
        parent = enqueue(self.r, STREAM, [("chain", "1"), ("hold", "go1")])
        _, child = self.spooled(d, parent)
        entries = [e for e in self.r.xrange(STREAM) if e[1].get(b"spoold.id") == child.encode()]
        self.assertEqual(len(entries), 1, self.r.xrange(STREAM))
        self.assertEqual(list(entries[0][1].items()),
                         [(b"step", b"2"), (b"parent", parent.encode()), (b"spoold.id", child.encode()),
                          (b"spoold.body", b"\x00second step\xff")])
        self.go("go1")
        run = self.wait_record(d, "the spooled task to run", id=child)
        self.assertEqual(run["args"], {"step": "2", "parent": parent})
        self.assertEqual(run["body"], "\x00second step\xff")
        self.assertEqual(run["attempt"], 0)

        # priority: the stream <stream>:p3, and 3 in <stream>:priorities.
        parent = enqueue(self.r, STREAM, [("chain", "prio"), ("hold", "go2")])
        _, child = self.spooled(d, parent)
        entries = self.r.xrange(STREAM + ":p3")
        self.assertEqual([list(e[1].items()) for e in entries],
                         [[(b"step", b"prio"), (b"priority", b"3"), (b"spoold.id", child.encode()),
                           (b"spoold.body", b"")]])
        self.assertEqual(self.r.smembers(STREAM + ":priorities"), {b"3"})
        self.go("go2")
        self.assertEqual(self.wait_record(d, "the priority task to run", id=child)["args"],
                         {"step": "prio", "priority": "3"})

        # at a few seconds ahead: the list <stream>:task:<id> and the zset
        # <stream>:delayed scored by the due unix ms; run when due.
        parent = enqueue(self.r, STREAM, [("chain", "later"), ("hold", "go3")])
        r, child = self.spooled(d, parent)
        at = r["at"]
        self.assertEqual(self.r.zrange(STREAM + ":delayed", 0, -1, withscores=True), [(child.encode(), at * 1000.0)])
        self.assertEqual(self.r.lrange(STREAM + ":task:" + child, 0, -1),
                         [b"step", b"later", b"at", str(at).encode(), b"spoold.id", child.encode(), b"spoold.body", b""])
        self.assertNotIn(child.encode(), [e[1].get(b"spoold.id") for e in self.r.xrange(STREAM)])
        self.go("go3")
        run = self.wait_record(d, "the delayed task to run", id=child)
        self.assertGreaterEqual(run["t"], at)
        self.assertEqual(run["args"], {"step": "later", "at": str(at)})

        wait_until(lambda: self.r.xlen(STREAM) == 0 and self.r.xlen(STREAM + ":p3") == 0
                   and self.r.zcard(STREAM + ":delayed") == 0, 10, what="the queue emptied")
        self.assertEqual(self.r.xlen(STREAM + ":failed"), 0)
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_uwsgidecorators_spool_and_bad_input(self):
        d = self.start(self.redis)
        parent = enqueue(self.r, STREAM, [("chain", "decorated")])
        _, child = self.spooled(d, parent)
        self.assertEqual(self.wait_record(d, "the decorated function to run", fn="decorated")["id"], child)
        # The directory case's checks, as ValueError; nothing written.
        parent = enqueue(self.r, STREAM, [("chain", "bad")])
        errors = self.wait_record(d, "the bad calls", id=parent)["errors"]
        self.assertEqual(len(errors), 3, errors)
        self.assertIn("unable to spool the task to spoold:py at unix:" + self.redis.sock, errors[0])
        self.assertIn("'spoold.id' starts with 'spoold.': those keys are the host's own", errors[0])
        self.assertIn("over the 65535 bytes", errors[1])
        self.assertIn("values must be bytes or str", errors[2])
        wait_until(lambda: self.r.xlen(STREAM) == 0, 10, what="the stream emptied")
        self.assertEqual(self.r.xlen(STREAM + ":failed"), 0)
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_a_queue_whose_url_has_a_password(self):
        # The url as written reaches the plugin: a %-escape in the password,
        # a database other than 0.
        server = self.server(password="pw:%x")
        r = redis.Redis(unix_socket_path=server.sock, password="pw:%x", db=3, socket_timeout=10)
        d = self.start(server, "unix://%s?password=pw:%%25x&db=3" % server.sock)
        parent = enqueue(r, STREAM, [("chain", "1")])
        _, child = self.spooled(d, parent)
        self.assertEqual(self.wait_record(d, "the spooled task to run", id=child)["args"]["parent"], parent)
        wait_until(lambda: r.xlen(STREAM) == 0, 10, what="the stream emptied")
        self.assertEqual(server.client().exists(STREAM), 0, "nothing in database 0")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_a_restarted_server_then_a_server_gone(self):
        server = self.server(persist=True)
        r = server.client()
        d = self.start(server)
        first = enqueue(r, STREAM, [("chain", "1")])
        self.spooled(d, first)  # the connection is kept from here
        # The server restarts while a handler runs: its kept connection is
        # dead, spool() makes a new one and the task is written.
        parent = enqueue(r, STREAM, [("chain", "1"), ("wait", "go1")])
        self.wait_record(d, "the handler to wait", id=parent, waiting=True)
        server.stop()
        server.start()
        self.go("go1")
        _, child = self.spooled(d, parent)
        self.wait_record(d, "the task spooled after the restart to run", id=child)
        # The server goes away: spool() raises ValueError naming it.
        parent = enqueue(r, STREAM, [("chain", "1"), ("wait", "go2")])
        self.wait_record(d, "the handler to wait", id=parent, waiting=True)
        server.stop()
        self.go("go2")
        errors = self.wait_record(d, "the handler to give up", id=parent)["errors"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("uwsgi.spool(): unable to spool the task to spoold:py at unix:" + server.sock, errors[0])
        self.assertIn("Redis at unix:" + server.sock, errors[0])
        self.assertIn("cannot connect", errors[0])
        server.start()
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
