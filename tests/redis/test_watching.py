"""Watching a Redis queue: the master's USR1 status line and the metrics
process's gauges show its backlog (waiting, delayed, ignored, failed, in
flight) as its spoolers last read it from Redis (the master and the metrics
process never talk to Redis themselves)."""
import re
import signal
import unittest

from redis_support import RedisTestCase, enqueue, redis_toml, wait_until
from test_metrics import free_port, parse_exposition, scrape, value

STREAM = "spoold:rq"


class WatchingTest(RedisTestCase):
    def test_status_line_and_metrics_show_the_backlog(self):
        port = free_port()
        options = 'start_file = "%s"' % self.path("start.txt")
        d = self.daemon(redis_toml(self.redis.url(), self.path("rec.txt"), processes=2,
                                   extra='backoff = "60s"\nmax_attempts = 5', options=options,
                                   host_extra='metrics = "127.0.0.1:%d"' % port))
        enqueue(self.r, STREAM, [("status", "fail")])
        enqueue(self.r, STREAM, [("status", "ignore")])
        enqueue(self.r, STREAM, [("status", "retry")])
        self.wait_records(3, daemons=[d])
        gate = self.path("gate")
        held = enqueue(self.r, STREAM, [("wait_for", gate)])
        wait_until(lambda: any(r["id"] == held for r in self.records("start.txt")), 20, what="the gated task started")
        want = {"pending": 0, "delayed": 1, "ignored": 1, "failed": 1, "in_flight": 1}

        # The idle spooler reads the backlog once a second; USR1 again until
        # a reading after the gated task began is shown.
        def status_shows_it():
            before = d.log().count("status queue=rq ")
            d.signal(signal.SIGUSR1)
            wait_until(lambda: d.log().count("status queue=rq ") > before, 10, what="a status line")
            line = [l for l in d.log().splitlines() if "status queue=rq " in l][-1]
            got = {k: int(v) for k, v in re.findall(r" (\w+)=(\d+)", line)}
            return all(got.get(k) == v for k, v in want.items()) and line
        line = wait_until(status_shows_it, 20, interval=0.2, what="the backlog in the status line")
        print(line.split("] ", 1)[-1])
        self.assertIn("(Redis stream spoold:rq at ", line)

        def gauges():
            _, samples = parse_exposition(scrape(port))
            return {
                "pending": value(samples, "spoold_queue_pending", queue="rq"),
                "delayed": value(samples, "spoold_queue_delayed", queue="rq"),
                "failed": value(samples, "spoold_queue_failed", queue="rq"),
                "in_flight": value(samples, "spoold_tasks_in_flight", queue="rq"),
                "oldest": value(samples, "spoold_queue_oldest_pending_age_seconds", queue="rq"),
            }
        wait_until(lambda: gauges() == {"pending": 0, "delayed": 1, "failed": 1, "in_flight": 1, "oldest": None},
                   20, interval=0.2, what="the backlog in /metrics")
        open(gate, "w").close()
        self.wait_records(4, daemons=[d])
        wait_until(lambda: gauges()["in_flight"] == 0, 20, interval=0.2, what="nothing in flight once it is done")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
