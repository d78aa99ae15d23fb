"""Several spoold hosts on one stream: each task handled once; a host killed
mid-run has its entries taken over by the other after the lease, with the
try counted; a Redis restarted mid-run loses nothing. The hosts are separate
processes with separate configs, as on separate machines."""
import collections
import os
import signal
import time
import unittest

from redis_support import Daemon, RedisTestCase, enqueue, redis_toml, wait_until

STREAM = "spoold:rq"
TASKS = int(os.environ.get("SPOOLD_REDIS_TASKS", "10000"))


class HostsTest(RedisTestCase):
    def host(self, name, processes=2, extra="", host_extra=""):
        root = self.path(name)
        os.mkdir(root)
        d = Daemon(root, redis_toml(self.redis.url(), os.path.join(root, "rec.txt"), processes=processes,
                                    extra=extra, host_extra=host_extra))
        self.daemons.append(d)
        return d

    def enqueue_many(self, count, args=()):
        ids = []
        pipe = self.r.pipeline(transaction=False)
        for i in range(count):
            ids.append(enqueue(self.r, STREAM, list(args) + [("n", str(i))], pipe=pipe))
            if len(pipe) >= 2000:
                pipe.execute()
        pipe.execute()
        return ids

    def runs(self, names):
        out = []
        for n in names:
            out += self.records(os.path.join(n, "rec.txt"))
        return out

    def wait_all(self, names, ids, daemons, timeout):
        want = set(ids)

        def done():
            for d in daemons:
                if d.proc.poll() is not None:
                    raise AssertionError("spoold exited with %d:\n%s" % (d.proc.returncode, d.log()[-4000:]))
            return want <= {r["id"] for r in self.runs(names)}
        wait_until(done, timeout, interval=0.1, what="every one of %d tasks handled" % len(ids))

    def test_two_hosts_share_the_tasks_each_handled_once(self):
        ids = self.enqueue_many(TASKS)
        a = self.host("a").start()
        b = self.host("b").start()
        t0 = time.monotonic()
        self.wait_all(["a", "b"], ids, [a, b], timeout=240)
        took = time.monotonic() - t0
        runs = self.runs(["a", "b"])
        counts = collections.Counter(r["id"] for r in runs)
        per_host = [len(self.records(os.path.join(n, "rec.txt"))) for n in ("a", "b")]
        print("%d tasks by two hosts of 2 spoolers in %.2fs (%.0f/s); host a %d, host b %d"
              % (TASKS, took, TASKS / took, per_host[0], per_host[1]))
        self.assertEqual(len(runs), len(ids), "each task handled exactly once")
        self.assertEqual(set(counts.values()), {1})
        self.assertGreater(min(per_host), 0, "both hosts took tasks")
        wait_until(lambda: self.r.xlen(STREAM) == 0, 20, what="the stream emptied")
        self.assertEqual(self.r.xpending(STREAM, "spoold")["pending"], 0)
        for d in (a, b):
            self.assertEqual(d.stop(), 0)
            self.assert_no_errors_logged(d)

    def test_a_killed_host_has_its_tasks_taken_over_after_the_lease(self):
        count = min(TASKS, 1000)
        extra = 'lease = "2s"\nbackoff = "100ms"'
        ids = self.enqueue_many(count, [("sleep_ms", "2")])
        a = self.host("a", extra=extra).start()
        b = self.host("b", extra=extra).start()
        wait_until(lambda: len(self.runs(["a"])) >= 50, 60, what="host a under way")
        held = [e["consumer"] for e in self.r.xpending_range(STREAM, "spoold", "-", "+", 100)]
        a.proc.send_signal(signal.SIGKILL)  # the master; its spoolers die with it (parent-death signal)
        killed_at = time.time()
        a.proc.wait(timeout=10)
        self.wait_all(["a", "b"], ids, [b], timeout=180)
        runs = self.runs(["a", "b"])
        counts = collections.Counter(r["id"] for r in runs)
        twice = [i for i, n in counts.items() if n > 1]
        print("%d tasks; host a killed after %d, %d run twice (entries held then: %s)"
              % (count, len(self.runs(["a"])), len(twice), held))
        self.assertEqual(set(counts), set(ids))
        self.assertLessEqual(max(counts.values()), 2, "at most one extra run")
        self.assertLessEqual(len(twice), 2, "only what host a's 2 spoolers held runs again")
        taken_over = [r for r in runs if r["attempt"] != "0"]
        print("taken over from host a: %d, first %.2fs after the kill (lease 2s)"
              % (len(taken_over), min((float(r["t"]) for r in taken_over), default=0) - killed_at))
        self.assertGreaterEqual(len(taken_over), 1, "host a held entries when it was killed")
        self.assertLessEqual(len(taken_over), 2)
        for r in taken_over:
            self.assertEqual(r["attempt"], "1", "the dead host's try is counted")
            self.assertGreaterEqual(float(r["t"]), killed_at + 2 - 0.05, "not before the lease")
        self.assertIn("its host stopped", b.log())
        self.assertEqual(b.stop(), 0)
        self.assert_no_errors_logged(b)

    def test_redis_restarted_mid_run_loses_nothing(self):
        self.servers[0].stop()
        self.servers.pop()
        self.redis = self.server(persist=True)
        self.r = self.redis.client()
        count = min(TASKS, 2000)
        ids = self.enqueue_many(count, [("sleep_ms", "1")])
        a = self.host("a", host_extra='log_level = "debug"').start()
        b = self.host("b", host_extra='log_level = "debug"').start()
        wait_until(lambda: len(self.runs(["a", "b"])) >= 200, 60, what="the hosts under way")
        self.redis.stop()
        stopped_with = len(self.runs(["a", "b"]))
        # Redis comes back only once every spooler of both hosts has met the
        # outage (the first of a host logs it, the other says so at debug
        # level), so all of them ride it out.
        for d in (a, b):
            d.wait_log("reconnecting every 100ms", count=1, timeout=20)
            d.wait_log("another spooler of this host logged the outage", count=1, timeout=20)
        self.redis.start()
        self.r = self.redis.client()
        self.wait_all(["a", "b"], ids, [a, b], timeout=180)
        runs = self.runs(["a", "b"])
        counts = collections.Counter(r["id"] for r in runs)
        print("%d tasks; Redis stopped after %d, restarted; %d run twice" %
              (count, stopped_with, sum(1 for n in counts.values() if n > 1)))
        self.assertEqual(set(counts), set(ids), "nothing lost")
        self.assertEqual(set(counts.values()), {1}, "nothing handled twice")
        wait_until(lambda: self.r.xlen(STREAM) == 0, 20, what="every outcome applied")
        for d in (a, b):
            self.assertEqual(d.log().count("answers again"), 1, "once per host")
            self.assertEqual(d.log().count("reconnecting every 100ms"), 1, "once per host per outage")
            self.assertEqual(d.stop(), 0)
            self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
