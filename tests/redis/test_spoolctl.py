"""spoolctl on a Redis queue through the config: enqueue (args, body,
priority, delay), ls, show, stats, retry and purge, and the commands that
read a directory refused."""
import json
import os
import subprocess
import unittest

from redis_support import SPOOLCTL, RedisTestCase, redis_toml

STREAM = "spoold:rq"


class SpoolctlTest(RedisTestCase):
    def setUp(self):
        super().setUp()
        self.config = self.path("spoold.toml")
        with open(self.config, "w") as f:
            f.write(redis_toml(self.redis.url(), self.path("rec.txt"), extra='backoff = "100ms"\nmax_attempts = 1'))

    def ctl(self, *args, check=True):
        p = subprocess.run([SPOOLCTL, "-c", self.config, *args], capture_output=True, timeout=30)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p

    def ls(self):
        return [l.split(" ")[:2] for l in self.ctl("ls", "rq").stdout.decode().splitlines()]

    def test_enqueue_ls_show_stats_retry_purge(self):
        fail = self.ctl("enqueue", "rq", "status=fail", "--body", "hello").stdout.decode().strip()
        prio = self.ctl("enqueue", "rq", "n=p", "--priority", "3").stdout.decode().strip()
        later = self.ctl("enqueue", "rq", "n=later", "--delay", "1h").stdout.decode().strip()
        self.assertEqual(self.ls(), [["pending", prio], ["pending", fail], ["delayed", later]])
        d = self.daemon(open(self.config).read(), name="host.toml")
        self.wait_records(2, daemons=[d])
        self.assertEqual(d.stop(), 0)
        self.assertEqual(self.ls(), [["delayed", later], ["failed", fail]])
        shown = self.ctl("show", "rq", fail).stdout.decode()
        self.assertIn("state: failed", shown)
        self.assertIn("body: 5 bytes", shown)
        self.assertIn("error: plugin 'fx_record' returned Fail", shown)
        doc = json.loads(self.ctl("show", "rq", fail, "--json").stdout)
        self.assertEqual(doc["attempt"], 1)
        self.assertIn(["status", "fail"], doc["args"])
        stats = json.loads(self.ctl("stats", "rq", "--json").stdout)["queues"][0]
        self.assertEqual((stats["pending"], stats["delayed"], stats["failed"]), (0, 1, 1))
        self.assertIn("retried 1 task", self.ctl("retry", "rq", fail).stdout.decode())
        self.assertEqual(sorted(self.ls()), [["delayed", later], ["pending", fail]])
        self.assertNotIn("attempt=", self.ctl("ls", "rq").stdout.decode(), "attempts reset")
        self.assertEqual(self.ctl("purge", "rq", "--all", check=False).returncode, 2, "no --yes without a terminal")
        self.assertIn("purged 2 task(s)", self.ctl("purge", "rq", "--all", "--yes").stdout.decode())
        self.assertEqual(self.ls(), [])
        p = self.ctl("why", "rq", fail, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("takes its tasks from Redis", p.stderr.decode())

    def test_purge_all_under_a_running_host(self):
        d = self.daemon(open(self.config).read(), name="host.toml")
        self.ctl("enqueue", "rq", "n=1")
        self.wait_records(1, daemons=[d])
        self.ctl("purge", "rq", "--all", "--yes")
        tid = self.ctl("enqueue", "rq", "n=2").stdout.decode().strip()
        recs = self.wait_records(2, daemons=[d])
        self.assertEqual(recs[1]["id"], tid)
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_enqueue_writes_the_entry_as_the_producers_do(self):
        # A `priority` key works as on a directory (and as spoolredis.py):
        # the level's stream, named by the plain number.
        tid = self.ctl("enqueue", "rq", "priority=03", "n=1", "--body", "B").stdout.decode().strip()
        self.assertEqual([list(e[1].items()) for e in self.r.xrange(STREAM + ":p3")],
                         [[(b"priority", b"03"), (b"n", b"1"), (b"spoold.id", tid.encode()), (b"spoold.body", b"B")]])
        self.assertEqual(self.r.smembers(STREAM + ":priorities"), {b"3"})
        later = self.ctl("enqueue", "rq", "n=2", "--delay", "1h").stdout.decode().strip()
        [(member, score)] = self.r.zrange(STREAM + ":delayed", 0, -1, withscores=True)
        self.assertEqual(member, later.encode())
        fields = self.r.lrange(STREAM + ":task:" + later, 0, -1)
        self.assertEqual(fields[:3] + fields[4:], [b"n", b"2", b"at", b"spoold.id", later.encode(), b"spoold.body", b""])
        self.assertEqual(int(fields[3]), int(score) // 1000)
        # The host's own keys are refused before connecting: a usage error.
        self.redis.stop()
        p = self.ctl("enqueue", "rq", "spoold.id=x", check=False)
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        self.assertIn("those keys are the host's own", p.stderr.decode())

    def test_enqueue_names_an_unreachable_server(self):
        self.redis.stop()
        p = self.ctl("enqueue", "rq", "a=1", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("queue 'rq': Redis at unix:" + self.redis.sock, p.stderr.decode())
        self.assertIn("cannot connect", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
