"""Regression tests for the master's defects found by trying spoold as a new
user would (issue 9). Each test opens with the bug it pins; each failed on
the master before the fix. They run the real spoold and spoolctl.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from support import (SPOOLD, Daemon, SpooldTestCase, encode_task, read_records, spoolctl,  # noqa: E402
                     task_files, wait_until, write_raw)
from test_core import host_toml, queue_toml  # noqa: E402


def log_lines_with(daemon, text):
    return [line for line in daemon.log().splitlines() if text in line]


class StuckAndBlockedWorkTest(SpooldTestCase):
    def test_spooler_stuck_in_init_gets_no_tasks(self):
        # Bug: with processes = 2 and one spooler blocked in init(), the
        # master named tasks to it: 1 of 20 stayed pending while the other
        # spooler sat idle.
        rec = self.path("r.txt")
        q = self.path("spool/q")
        cfg = host_toml() + queue_toml("q", "fx_slow_init", {"record_file": rec, "init_ms": 60000,
                                                              "block_first": self.path("blocked")},
                                        processes=2)
        d = self.daemon(cfg)
        ids = [write_raw(q, encode_task({"i": str(i)})) for i in range(20)]
        # Far less than the 60 s the blocked spooler sleeps (or init_timeout's 30 s).
        wait_until(lambda: set(ids) <= {r["id"] for r in read_records(rec)}, 20, what="all 20 tasks to run")
        pids = {r["pid"] for r in read_records(rec) if "id" in r and r["id"] in ids}
        self.assertEqual(len(pids), 1, "one spooler (the one whose init() returned) ran them all")
        self.assertEqual(task_files(q), [])

    def test_init_timeout_kills_the_spooler_and_throttles_its_restarts(self):
        # Bug: there was no init_timeout: a spooler stuck in init() stayed forever.
        q = self.path("spool/q")
        cfg = host_toml() + queue_toml("q", "fx_slow_init", {"init_ms": 60000}, init_timeout="300ms")
        d = self.daemon(cfg)
        task = write_raw(q, encode_task({"k": "v"}))
        wait_until(lambda: "next start in 200ms" in d.log(), 20, what="restarts to be throttled")
        line = log_lines_with(d, "(init_timeout): killing it")[0]
        self.assertIn("init() of plugin 'fx_slow_init'", line)
        self.assertIn("after 300ms", line)
        self.assertIn("before its plugins were ready", d.log())
        self.assertEqual(task_files(q), [task], "the task waits, untouched, no try counted")
        self.assertNotIn(b"spoold.attempt", open(os.path.join(q, task), "rb").read())
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.stop(), 0)

    def test_reload_check_does_not_stop_other_queues(self):
        # Bug: on SIGHUP the plugin check ran inside the master's loop, so no
        # queue took a task until it finished (an init() of 2 s held every queue).
        rec = self.path("r.txt")
        slow_rec = self.path("slow.txt")
        cfg = (host_toml() + queue_toml("fast", "fx_record", {"record_file": rec})
               + queue_toml("slow", "fx_slow_init", {"record_file": slow_rec, "init_ms": 2000}))
        d = self.daemon(cfg)
        d.signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: re-reading" in d.log(), 10, what="the reload to start")
        task = write_raw(self.path("spool/fast"), encode_task({"k": "v"}))
        wait_until(lambda: task in {r["id"] for r in read_records(rec)}, 10, what="the fast queue's task")
        self.assertNotIn("reloaded", d.log(), "the task ran while the reload was being checked")
        wait_until(lambda: "reloaded" in d.log(), 20, what="the reload to finish")
        self.assertEqual(d.stop(), 0)

    def test_crash_try_is_counted_when_the_file_is_busy(self):
        # Bug: when the master's re-claim of a crashed task found the file
        # locked (or hit an I/O error), the try the crash owed was dropped.
        rec = self.path("r.txt")
        q = self.path("spool/q")
        release = self.path("release")
        cfg = host_toml() + queue_toml("q", "fx_crash", {"record_file": rec}, max_attempts=5, backoff="100ms",
                                        backoff_max="100ms")
        d = self.daemon(cfg)
        task = write_raw(q, encode_task({"how": "segv_locked", "release": release}))
        wait_until(lambda: "another process holds the file's lock" in d.log(), 15,
                   what="the owed try to meet the lock the crashed spooler's child holds")
        with open(release, "w"):
            pass
        wait_until(lambda: len([r for r in read_records(rec) if r["id"] == task]) >= 2, 15,
                   what="the task to run again")
        attempts = [r["attempt"] for r in read_records(rec) if r["id"] == task]
        self.assertEqual(attempts[:2], ["0", "1"], "the crash counted a try")
        self.assertIsNone(d.proc.poll())

    def test_crash_in_every_task_is_throttled(self):
        # Bug: only a death within a second of start, before any task, was
        # throttled; a plugin that crashes on every task was forked at full speed.
        q = self.path("spool/q")
        for i in range(40):
            write_raw(q, encode_task({"how": "segv", "i": str(i)}))
        cfg = host_toml() + queue_toml("q", "fx_crash", max_attempts=1)
        d = self.daemon(cfg)
        wait_until(lambda: "next start in 800ms" in d.log(), 20, what="the pause to grow to 800ms")
        self.assertIn("in a task", log_lines_with(d, "next start in 800ms")[0])
        # 0 + 100 + 200 + 400 ms of pauses at least: far from 40 tasks' worth of forks.
        started = len(log_lines_with(d, "(queue q) started"))
        self.assertLessEqual(started, 8, d.log()[-3000:])
        self.assertGreater(len(task_files(q)), 25, "most tasks wait for the throttled restarts")
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.stop(), 0)


class SignalsAndReloadTest(SpooldTestCase):
    def test_usr1_logs_a_status_line_per_queue_and_keeps_running(self):
        # Bug: SIGUSR1 killed spoold (exit 138, no log line, spoolers gone).
        rec = self.path("r.txt")
        cfg = (host_toml() + queue_toml("a", "fx_record", {"record_file": rec}, processes=2)
               + queue_toml("b", "fx_record", {"record_file": rec}))
        d = self.daemon(cfg)
        write_raw(self.path("spool/a"), encode_task({"status": "fail"}))
        wait_until(lambda: os.listdir(self.path("spool/a/failed")), 10, what="a failed task")
        write_raw(self.path("spool/b"), encode_task({"k": "v"}), mtime=time.time() + 3600)
        wait_until(lambda: len(d.spooler_pids()) == 3, 10, what="three spoolers")

        # The spoolers report outcomes a moment after the files change: ask
        # again until the master has heard them.
        def status_lines():
            seen = len(log_lines_with(d, "status queue="))
            d.signal(signal.SIGUSR1)
            wait_until(lambda: len(log_lines_with(d, "status queue=")) >= seen + 2, 10, what="two status lines")
            lines = log_lines_with(d, "status queue=")[-2:]
            return lines if "failed=1 in_flight=0" in lines[0] and "delayed=1" in lines[1] else None

        a, b = wait_until(status_lines, 10, interval=0.1, what="the failed and the delayed task in the status")
        for field in ("pending=0", "delayed=0", "ignored=0", "failed=1", "in_flight=0", "spoolers=2", "ready=2",
                      "restarts=0"):
            self.assertIn(field, a)
        self.assertIn("queue=b pending=0 delayed=1", b)
        for sig, word in ((signal.SIGUSR2, "SIGUSR2"), (signal.SIGALRM, "SIGALRM")):
            d.signal(sig)
            wait_until(lambda: word + " has no meaning" in d.log(), 10, what=word + " to be logged")
        self.assertIsNone(d.proc.poll(), "the host lives")
        self.assertEqual(len(d.spooler_pids()), 3, "and so do its spoolers")
        self.assertEqual(d.stop(), 0)

    def test_ignored_task_is_shown_and_offered_again_after_reload(self):
        # Bug: a task every plugin ignored was never offered again, even after
        # SIGHUP, and spoolctl listed it as "pending, due 3s ago" forever.
        rec = self.path("r.txt")
        q = self.path("spool/q")
        d = self.daemon(host_toml() + queue_toml("q", "fx_record", {"record_file": rec, "only_type": "x"}))
        task = write_raw(q, encode_task({"type": "y"}))
        wait_until(lambda: [r for r in read_records(rec) if r["id"] == task], 10, what="the task to be offered")
        ls = spoolctl("-c", d.config, "ls", "q").stdout.decode()
        self.assertIn("ignored", ls)
        self.assertIn("0 pending, 0 delayed, 1 ignored, 0 failed", ls)
        show = spoolctl("-c", d.config, "show", "q", task).stdout.decode()
        self.assertIn("state:      ignored", show)
        with open(d.config, "w") as f:
            f.write(host_toml() + queue_toml("q", "fx_record", {"record_file": rec, "only_type": "y"}))
        d.signal(signal.SIGHUP)
        wait_until(lambda: task_files(q) == [], 15, what="the ignored task to be taken after the reload")
        results = [r["result"] for r in read_records(rec) if r["id"] == task]
        self.assertEqual(results, ["ignore", "ok"])
        self.assertEqual(d.stop(), 0)

    def test_sighup_applies_log_level(self):
        # Bug: SIGHUP did not re-apply log_level and log_format in the master.
        rec = self.path("r.txt")
        d = self.daemon(host_toml() + queue_toml("q", "fx_record", {"record_file": rec}))
        with open(d.config, "w") as f:
            f.write(host_toml(log_level="debug", log_format="json") + queue_toml("q", "fx_record", {"record_file": rec}))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in d.log(), 15, what="the reload")
        wait_until(lambda: '"level":"debug","pid":%d,"role":"master"' % d.proc.pid in d.log(), 10,
                   what="a debug line of the master in JSON")
        self.assertEqual(d.stop(), 0)

    def test_second_host_on_the_same_config_is_refused(self):
        # Bug: a second spoold on the same config started beside the first
        # and both consumed the queues.
        rec = self.path("r.txt")
        d = self.daemon(host_toml() + queue_toml("q", "fx_record", {"record_file": rec}))
        link = self.path("link.toml")
        os.symlink(d.config, link)
        for path in (d.config, link):
            p = subprocess.run([SPOOLD, "-c", path], capture_output=True, timeout=20, cwd=self.root)
            self.assertEqual(p.returncode, 2, p.stderr.decode())
            self.assertIn("already running", p.stderr.decode())
            self.assertIn("pid %d" % d.proc.pid, p.stderr.decode())
        # Another config on the same directory is allowed: the locks make it safe.
        os.makedirs(self.path("other"))
        other = Daemon(self.path("other"), host_toml() + queue_toml("q", "fx_record", {"record_file": rec}).replace(
            'dir = "spool/q"', 'dir = "%s"' % self.path("spool/q")))
        self.daemons.append(other)
        other.start()
        self.assertIsNone(other.proc.poll())
        self.assertEqual(other.stop(), 0)
        self.assertEqual(d.stop(), 0)


class CheckTest(SpooldTestCase):
    def run_check(self, text):
        path = self.path("check.toml")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([SPOOLD, "-c", path, "--check"], capture_output=True, timeout=60, cwd=self.root)

    def test_check_runs_init_with_the_real_options_and_lists_every_problem(self):
        # Bug: --check only loaded plugins: options init() refuses passed, and
        # plugin problems were not shown while the TOML had other problems.
        p = self.run_check(host_toml() + queue_toml("q", "fx_record", {"record_fiel": "r.txt"}, procesess=2))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("procesess", err)
        self.assertIn("queue 'q'", err)
        self.assertIn("fx_record needs the option record_file", err)

    def test_check_names_a_plugin_whose_init_hangs(self):
        p = self.run_check(host_toml() + queue_toml("q", "fx_slow_init", {"init_ms": 60000}, init_timeout="500ms"))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("queue 'q': plugin 'fx_slow_init'", err)
        self.assertIn("init() did not finish within 500ms", err)

    def test_check_names_a_plugin_whose_init_crashes(self):
        p = self.run_check(host_toml() + queue_toml("q", "fx_init_crash"))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("plugin 'fx_init_crash'", err)
        self.assertIn("crashed the check process in init(): killed by signal 11 (SIGSEGV)", err)


if __name__ == "__main__":
    import unittest
    unittest.main()
