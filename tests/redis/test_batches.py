"""A Redis queue's spoolers take entries in batches sized to about 2 ms of
work: what a batch changes for a crash, a stop and a slow queue. Only the
entry a spooler was inside owes a try when it dies (the master's exit note
names it); the ones handed to it and never started run as they are; a
spooler that stops gives them back; slow tasks are taken one at a time so
that an idle spooler is never left waiting behind a busy one's batch."""
import collections
import os
import signal
import unittest

from redis_support import RedisTestCase, enqueue, redis_toml, wait_until

STREAM = "spoold:rq"


class BatchTest(RedisTestCase):
    # A window of a second: batches of 64 however slow a loaded machine makes
    # the no-op tasks (the default 2ms would take them one at a time then).
    def start(self, processes=1, extra='backoff = "200ms"\nbatch_window = "1s"'):
        options = 'start_file = "%s"' % self.path("start.txt")
        return self.daemon(redis_toml(self.redis.url(), self.path("rec.txt"), processes=processes, extra=extra,
                                      options=options))

    def enqueue_round(self, gate):
        """150 fast tasks, one held at gate, 150 more, in one MULTI: the
        spooler finds the gated task with others behind it in the stream."""
        pipe = self.r.pipeline(transaction=True)
        ids = [enqueue(self.r, STREAM, [("n", str(i))], pipe=pipe) for i in range(150)]
        gated = enqueue(self.r, STREAM, [("wait_for", gate)], pipe=pipe)
        ids += [gated] + [enqueue(self.r, STREAM, [("n", str(i))], pipe=pipe) for i in range(150)]
        pipe.execute()
        return gated, ids

    def started(self, tid):
        return any(r["id"] == tid for r in self.records("start.txt"))

    def held_by(self, consumer):
        for c in self.r.xinfo_consumers(STREAM, "spoold"):
            if c["name"].decode() == consumer:
                return c["pending"]
        return 0

    def consumer_of(self, pid):
        for c in self.r.xinfo_consumers(STREAM, "spoold"):
            if c["name"].decode().endswith(":%d" % pid):
                return c["name"].decode()
        return None

    def hold_a_batch(self, d):
        """Runs fast tasks then a gated one until the spooler is inside the
        gated task with entries of its batch behind it (the gated entry may
        end a batch: then that round is let go and another is tried). Returns
        (gated id, gate path, consumer, entries held, every id enqueued)."""
        ids = []
        for round_ in range(6):
            gate = self.path("gate%d" % round_)
            gated, round_ids = self.enqueue_round(gate)
            ids += round_ids
            wait_until(lambda: self.started(gated), 30, what="the gated task started")
            pid = int([r for r in self.records("start.txt") if r["id"] == gated][0]["pid"])
            consumer = self.consumer_of(pid)
            held = self.held_by(consumer)
            if held > 1:
                return gated, gate, pid, held, ids
            open(gate, "w").close()
        self.fail("in 6 rounds the spooler never held more than the entry it was in: no batches")

    def test_a_spooler_killed_in_a_batch_owes_a_try_for_its_task_alone(self):
        d = self.start()
        gated, gate, pid, held, ids = self.hold_a_batch(d)
        os.kill(pid, signal.SIGKILL)
        open(gate, "w").close()
        recs = self.wait_records(len(ids), daemons=[d], timeout=60)
        runs = collections.Counter(r["id"] for r in recs)
        print("the killed spooler held %d entries of its batch; %d tasks run" % (held, len(recs)))
        self.assertEqual(set(runs), set(ids), "nothing lost")
        self.assertEqual(set(runs.values()), {1}, "nothing run twice")
        attempts = {r["id"]: r["attempt"] for r in recs}
        self.assertEqual(attempts[gated], "1", "the task the spooler died in owes a try")
        self.assertEqual({a for t, a in attempts.items() if t != gated}, {"0"},
                         "the entries of its batch it never started owe none")
        self.assertIn("spooler killed by signal 9 (SIGKILL)", d.log())
        wait_until(lambda: self.r.xlen(STREAM) == 0, 20, what="every entry deleted")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_a_stopped_spooler_gives_back_what_it_had_not_started(self):
        d = self.start()
        gated, gate, pid, held, ids = self.hold_a_batch(d)
        d.signal(signal.SIGTERM)
        open(gate, "w").close()
        self.assertEqual(d.wait(timeout=30), 0)
        done = {r["id"] for r in self.records()}
        self.assertIn(gated, done, "the task in hand finished")
        self.assertEqual(self.r.xpending(STREAM, "spoold")["pending"], 0,
                         "nothing left pending under a consumer that is gone")
        left = [i for i in ids if i not in done]
        self.assertEqual(self.r.xlen(STREAM), len(left), "the unstarted entries are back in the stream")
        print("stopped holding %d entries; %d given back or never taken" % (held, len(left)))
        d2 = self.start()
        recs = self.wait_records(len(ids), daemons=[d2], timeout=60)
        runs = collections.Counter(r["id"] for r in recs)
        self.assertEqual(set(runs), set(ids))
        self.assertEqual(set(runs.values()), {1}, "nothing run twice")
        self.assertEqual({r["attempt"] for r in recs}, {"0"}, "a stop counts no try")
        self.assertEqual(d2.stop(), 0)
        self.assert_no_errors_logged(d2)

    def test_slow_tasks_are_taken_one_at_a_time(self):
        d = self.start(processes=2, extra="")  # the default window: 2ms
        wait_until(lambda: len(d.spooler_pids()) == 2, 20, what="two spoolers")
        ids = [enqueue(self.r, STREAM, [("sleep_ms", "100")]) for _ in range(12)]
        recs = self.wait_records(len(ids), daemons=[d], timeout=60)
        by_pid = collections.Counter(r["pid"] for r in recs)
        print("12 tasks of 100ms by two spoolers: %s" % sorted(by_pid.values()))
        self.assertEqual(len(by_pid), 2, "both spoolers had work")
        self.assertGreaterEqual(min(by_pid.values()), 3, "neither sat idle behind the other's batch")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
