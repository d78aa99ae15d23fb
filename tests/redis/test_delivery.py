"""A Redis queue's statuses, delays, priorities and malformed entries, each
as a directory queue's (SPEC §4), with the failed stream in place of failed/."""
import os
import signal
import time
import unittest

from redis_support import RedisTestCase, enqueue, redis, redis_toml, wait_until

redis_errors = redis.exceptions

STREAM = "spoold:rq"


class DeliveryTest(RedisTestCase):
    def pending_count(self):
        """Entries taken and not acknowledged; 0 before a spooler made the group."""
        try:
            return self.r.xpending(STREAM, "spoold")["pending"]
        except redis_errors.ResponseError:
            return 0

    def start(self, processes=1, extra=""):
        return self.daemon(redis_toml(self.redis.url(), self.path("rec.txt"), processes=processes, extra=extra))

    def test_ok_is_acknowledged_and_deleted_with_args_and_body(self):
        d = self.start()
        tid = enqueue(self.r, STREAM, [("to", "a@b"), ("to", b"c\x00d")], body=b"hello\x00world")
        recs = self.wait_records(1, daemons=[d])
        self.assertEqual(recs[0]["id"], tid)
        self.assertEqual(recs[0]["result"], "ok")
        self.assertEqual(recs[0]["attempt"], "0")
        self.assertEqual(recs[0]["body_len"], "11")
        full = [l for l in open(self.path("rec.txt"), encoding="latin-1")][0]
        self.assertIn("to=a@b to=c\\x00d ", full)
        wait_until(lambda: self.r.xlen(STREAM) == 0, 10, what="the entry deleted")
        self.assertEqual(self.r.xpending(STREAM, "spoold")["pending"], 0)
        self.assertEqual(self.failed(), [])
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_retry_counts_attempts_with_backoff_then_fails(self):
        d = self.start(extra='max_attempts = 3\nbackoff = "300ms"\nbackoff_max = "2s"')
        tid = enqueue(self.r, STREAM, [("status", "retry")])
        recs = self.wait_records(3, daemons=[d])
        self.assertEqual([r["attempt"] for r in recs], ["0", "1", "2"])
        gaps = [float(recs[i + 1]["t"]) - float(recs[i]["t"]) for i in range(2)]
        print("retry gaps: %.3fs %.3fs (backoff 300ms doubling, jitter up to +25%%)" % tuple(gaps))
        self.assertGreaterEqual(gaps[0], 0.3)
        self.assertGreaterEqual(gaps[1], 0.6)
        self.assertLess(gaps[1], 2.5)
        wait_until(lambda: self.failed(), 10, what="the task in the failed stream")
        f = self.failed()[0]
        self.assertEqual(f["spoold.id"], tid)
        self.assertEqual(f["spoold.attempt"], "3")
        self.assertIn("gave up after 3 of max_attempts 3", f["spoold.error"])
        self.assertEqual(f["status"], "retry")
        self.assertEqual(len(self.records()), 3)
        self.assertEqual(self.r.xlen(STREAM), 0)
        self.assertEqual(self.r.zcard(STREAM + ":delayed"), 0)
        self.assert_no_errors_logged(d)

    def test_fail_goes_to_the_failed_stream_at_once(self):
        d = self.start(extra="max_attempts = 5")
        tid = enqueue(self.r, STREAM, [("status", "fail")], body=b"B")
        wait_until(lambda: self.failed(), 20, what="the failed stream")
        f = self.failed()[0]
        self.assertEqual(f["spoold.id"], tid)
        self.assertEqual(f["spoold.attempt"], "1")
        self.assertEqual(f["spoold.body"], "B")
        self.assertIn("returned Fail", f["spoold.error"])
        self.assertEqual(len(self.records()), 1)
        self.assert_no_errors_logged(d)

    def test_malformed_entries_go_to_the_failed_stream_with_the_reason(self):
        d = self.start()
        self.r.xadd(STREAM, {"no_id": "x"})
        self.r.xadd(STREAM, {"spoold.id": "t1", "spoold.attempt": "many"})
        self.r.xadd(STREAM, {"spoold.id": "t2", "k": "v" * 70000})
        self.r.xadd(STREAM, dict([("spoold.id", "t3")] + [("k%d" % i, "v") for i in range(5000)]))
        wait_until(lambda: len(self.failed()) == 4, 20, what="4 entries in the failed stream")
        errors = sorted(f["spoold.error"] for f in self.failed())
        self.assertIn("no spoold.id field", "".join(errors))
        self.assertIn("5001 fields, more than 2000", "".join(errors))
        self.assertIn("spoold.attempt = \"many\" is not a number", "".join(errors))
        self.assertIn("over the 65535", "".join(errors))
        self.assertEqual(self.records(), [])
        self.assertEqual(self.r.xlen(STREAM), 0)
        self.assertEqual(d.log().count("status=unparsable"), 4)
        self.assert_no_errors_logged(d)

    def test_delay_is_not_run_before_its_time(self):
        d = self.start()
        t0 = time.time()
        late = enqueue(self.r, STREAM, [("n", "late")], delay=1.5)
        # An `at` written straight into the stream is honoured too.
        direct = enqueue(self.r, STREAM, [("at", str(int(t0) + 2))])
        now = enqueue(self.r, STREAM, [("n", "now")])
        recs = self.wait_records(3, daemons=[d])
        by_id = {r["id"]: float(r["t"]) for r in recs}
        self.assertLess(by_id[now] - t0, 1.0)
        self.assertGreaterEqual(by_id[late], t0 + 1.5 - 0.01)
        self.assertGreaterEqual(by_id[direct], int(t0) + 2)
        print("delay 1.5s ran after %.3fs; at=+2s ran after %.3fs" % (by_id[late] - t0, by_id[direct] - t0))
        self.assertEqual(len(recs), 3)
        self.assert_no_errors_logged(d)

    def test_lower_priority_numbers_are_served_first(self):
        ids = []
        for p in (None, 9, 1, 5, None, 1):
            ids.append((p, enqueue(self.r, STREAM, [("status", "ok")], priority=p)))
        d = self.start()
        recs = self.wait_records(6, daemons=[d])
        got = [r["id"] for r in recs]
        want = [tid for p, tid in sorted(ids, key=lambda x: (x[0] is None, x[0] or 0))]
        self.assertEqual(got, want)
        self.assert_no_errors_logged(d)

    def test_ignore_is_left_unacknowledged_and_not_run_again(self):
        d = self.start()
        tid = enqueue(self.r, STREAM, [("status", "ignore")])
        enqueue(self.r, STREAM, [("status", "ok")])
        self.wait_records(2, daemons=[d])
        wait_until(lambda: self.r.sismember(STREAM + ":ignored", self.r.xrange(STREAM)[0][0]) if
                   self.r.xlen(STREAM) == 1 else False, 10, what="the ignored entry listed")
        self.assertEqual(self.r.xrange(STREAM)[0][1][b"spoold.id"].decode(), tid)
        self.assertEqual(self.r.xpending(STREAM, "spoold")["pending"], 1)
        self.assertEqual(len(self.records()), 2)
        self.assert_no_errors_logged(d)

    def test_ignored_is_offered_again_on_reload_and_restart_not_on_respawn(self):
        d = self.start(extra="max_tasks = 1")
        ignored = enqueue(self.r, STREAM, [("status", "ignore")])
        self.wait_records(1, daemons=[d])
        d.wait_log("(max_tasks): recycling", count=1)
        # The respawned spooler takes the next task; had it offered the
        # ignored one again, that would have run first (offers come before
        # the next take).
        ok = enqueue(self.r, STREAM, [("status", "ok")])
        recs = self.wait_records(2, daemons=[d])
        self.assertEqual([r["id"] for r in recs], [ignored, ok], "a respawn offers nothing again")
        d.signal(signal.SIGHUP)
        recs = self.wait_records(3, daemons=[d])
        self.assertEqual(recs[2]["id"], ignored, "offered again after a reload")
        self.assertEqual(recs[2]["attempt"], "0", "an Ignore is not a try")
        d.wait_log("1 task(s) no plugin took are offered again")
        self.assertEqual(d.stop(), 0)
        d2 = self.start()
        recs = self.wait_records(4, daemons=[d2])
        self.assertEqual(recs[3]["id"], ignored, "offered again after a restart")
        wait_until(lambda: self.r.sismember(STREAM + ":ignored", self.r.xrange(STREAM)[0][0]) if
                   self.r.xlen(STREAM) == 1 else False, 10, what="listed as ignored again")
        self.assertEqual(d2.stop(), 0)
        self.assert_no_errors_logged(d)
        self.assert_no_errors_logged(d2)

    def test_max_tasks_recycles_the_spoolers(self):
        d = self.start(extra="max_tasks = 2")
        for i in range(6):
            enqueue(self.r, STREAM, [("n", str(i))])
        recs = self.wait_records(6, daemons=[d])
        self.assertEqual(len({r["pid"] for r in recs}), 3, "one spooler per 2 tasks")
        d.wait_log("(max_tasks): recycling", count=3)
        self.assert_no_errors_logged(d)

    def test_a_reload_replaces_the_spoolers_and_tasks_keep_running(self):
        d = self.start(processes=2)
        enqueue(self.r, STREAM, [("n", "before")])
        self.wait_records(1, daemons=[d])
        before = set(d.spooler_pids())
        d.signal(signal.SIGHUP)
        d.wait_log("reloaded: 1 queue(s)")
        wait_until(lambda: len(d.spooler_pids()) == 2 and not set(d.spooler_pids()) & before, 30,
                   what="2 new spoolers")
        enqueue(self.r, STREAM, [("n", "after")])
        recs = self.wait_records(2, daemons=[d])
        self.assertNotIn(int(recs[1]["pid"]), before)
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_a_spooler_killed_in_a_task_is_known_at_once_and_its_try_counted(self):
        d = self.start(extra='backoff = "200ms"\nlease = "60s"')
        gate = self.path("gate")
        tid = enqueue(self.r, STREAM, [("wait_for", gate)])
        wait_until(lambda: self.pending_count() == 1, 20, what="the entry taken")
        wait_until(lambda: d.spooler_pids(), 10, what="a spooler")
        killed_at = time.time()
        for pid in d.spooler_pids():
            os.kill(pid, signal.SIGKILL)
        open(gate, "w").close()
        recs = self.wait_records(1, daemons=[d])
        self.assertEqual(recs[0]["id"], tid)
        self.assertEqual(recs[0]["attempt"], "1", "the crashed try is counted")
        took = float(recs[0]["t"]) - killed_at
        print("rerun %.3fs after the spooler was killed (lease 60s)" % took)
        self.assertLess(took, 20)
        self.assertIn("status=crash attempt=0 next_try_in=", d.log())
        self.assertIn("spooler killed by signal 9 (SIGKILL)", d.log(), "the master's exit note gives the reason")


if __name__ == "__main__":
    unittest.main()
