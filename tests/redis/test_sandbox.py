"""A Redis queue in a Landlock sandbox: its spoolers connect before the
sandbox applies, and reconnect under it after Redis restarts (Landlock's
rules do not cover connect() to a Unix socket)."""
import os
import unittest

from redis_support import RedisTestCase, enqueue, redis_toml, wait_until

STREAM = "spoold:rq"


def no_new_privs(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NoNewPrivs:"):
                return line.split()[1]
    return None


class SandboxedRedisQueueTest(RedisTestCase):
    def test_reconnects_under_the_sandbox(self):
        out = self.path("out")
        os.mkdir(out)
        rec = os.path.join(out, "rec.txt")
        d = self.daemon(redis_toml(self.redis.url(), rec, extra="") +
                        '\n[queue.sandbox]\nread = []\nwrite = ["%s"]\n' % out)
        enqueue(self.r, STREAM, [("n", "1")])
        wait_until(lambda: os.path.exists(rec), 20, what="the first task")
        pid = d.spooler_pids()[0]
        self.assertEqual(no_new_privs(pid), "1", "the sandbox applies")
        self.redis.stop()
        d.wait_log("reconnecting every 100ms", timeout=20)
        self.redis.start()
        self.r = self.redis.client()
        enqueue(self.r, STREAM, [("n", "2")])
        wait_until(lambda: len(self.records(rec)) == 2, 30, what="the task after Redis came back")
        self.assertEqual(d.spooler_pids(), [pid], "the same sandboxed spooler reconnected")
        d.wait_log("answers again")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
