"""The python plugin runs a Redis queue unchanged: the same handler module
(tests/python_plugin/apps/outcomes.py) gets the same dict and its statuses
act as on a directory queue."""
import json
import os
import shutil
import subprocess
import unittest

from redis_support import PLUGIN_DIR, SPOOLD, RedisTestCase, enqueue, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "..", "python_plugin", "apps")
STREAM = "spoold:py"


def python_toml(url, record, extra=""):
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
module = "outcomes"
path = ["apps"]
"env.PP_RECORD" = "%s"
""" % (PLUGIN_DIR, url, extra, record)


@unittest.skipUnless(PLUGIN_DIR and os.path.exists(os.path.join(PLUGIN_DIR, "libpython.so")),
                     "the python plugin was not built")
class PythonPluginOnRedisTest(RedisTestCase):
    def setUp(self):
        super().setUp()
        shutil.copytree(APPS, self.path("apps"))
        self.record = self.path("record.jsonl")

    def py_records(self):
        try:
            with open(self.record) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

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


if __name__ == "__main__":
    unittest.main()
