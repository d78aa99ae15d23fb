"""The core host end to end (issue 2): real spoold and spoolctl processes on
temp dirs, driven through files and signals.

Tests wait for events, never for a guessed time: fx_record's start_file says
when a task is inside handle(), its wait_for arg holds a task there until the
test opens a gate, and the log says what the host did. Deadlines are generous
because they only bound a hang; they hold on a loaded machine."""
import os
import re
import signal
import subprocess
import time
import unittest

from support import (PLUGIN_DIR, SOURCE_DIR, SPOOLD, TEST_PLUGIN_DIR, SpooldTestCase, complete_lines, decode_task,
                     encode_task, enqueue, fnv1a_64, open_gate, read_bytes, read_records, read_text, task_files,
                     wait_until, write_raw)


def queue_toml(name, plugin, options=None, **settings):
    plugin_value = '"%s"' % plugin if isinstance(plugin, str) else "[%s]" % ", ".join('"%s"' % p for p in plugin)
    lines = ["[[queue]]", 'name = "%s"' % name, 'dir = "spool/%s"' % name, "plugin = %s" % plugin_value]
    for k, v in settings.items():
        lines.append("%s = %s" % (k, '"%s"' % v if isinstance(v, str) else v))
    if options:
        lines.append("[queue.options]")
        for k, v in options.items():
            lines.append("%s = %s" % (k, '"%s"' % v if isinstance(v, str) else v))
    return "\n".join(lines) + "\n"


def host_toml(plugin_dir=None, **settings):
    lines = ["[host]", 'plugin_dir = "%s"' % (plugin_dir or TEST_PLUGIN_DIR)]
    for k, v in settings.items():
        lines.append('%s = "%s"' % (k, v))
    return "\n".join(lines) + "\n"


class TutorialTest(SpooldTestCase):
    """The uWSGI spooler tutorial: two queues, four spoolers, a log of time:message lines."""

    def test_tutorial_two_queues_fill_the_log(self):
        log_file = self.path("tasks.log")
        cfg = host_toml(PLUGIN_DIR)
        cfg += queue_toml("tasks_a", "log_writer", {"log_file": log_file}, processes=4)
        cfg += queue_toml("tasks_b", "dispatch", {"log_file": log_file}, processes=4)
        d = self.daemon(cfg)
        wait_until(lambda: len(d.spooler_pids()) == 8, 30, what="8 spoolers")
        for i in range(10):
            enqueue(self.path("spool/tasks_a"), body="message A%d" % i)
            enqueue(self.path("spool/tasks_b"), body='{"type": "b", "message": "message B%d"}' % i)
        wait_until(lambda: len(complete_lines(log_file)) == 20, 30, what="20 log lines")
        lines = complete_lines(log_file)
        for i in range(10):
            self.assertTrue(any(l.endswith(":message A%d" % i) for l in lines), lines)
            self.assertTrue(any(l.endswith("message B%d" % i) for l in lines), lines)
        for l in lines:
            self.assertRegex(l, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:")
        self.assertEqual(task_files(self.path("spool/tasks_a")), [])
        self.assertEqual(task_files(self.path("spool/tasks_b")), [])
        self.assertEqual(d.stop(), 0)
        self.assertIn("status=ok", d.log())
        self.assertIn("(queue tasks_a) exited with code 0", d.log())
        self.assert_no_errors_logged(d)


class ProcessingTest(SpooldTestCase):
    def record_queue(self, name="q", **settings):
        self.record = self.path("record.txt")
        return host_toml() + queue_toml(name, "fx_record", {"record_file": self.record}, **settings)

    def record_queue_with_starts(self, name="q", host=None, **settings):
        """fx_record with a start_file: self.starts has a line per handle() call as it begins.
        The log is at debug level, which says when each spooler is ready."""
        self.record = self.path("record.txt")
        self.starts = self.path("starts.txt")
        return host_toml(log_level="debug", **(host or {})) + queue_toml(
            name, "fx_record", {"record_file": self.record, "start_file": self.starts}, **settings)

    def burst(self, q, tasks):
        """Writes the tasks aside, then renames them into q in one quick loop,
        so the master sees them nearly at once. Returns their ids in order."""
        stage = self.path("stage")
        names = [write_raw(stage, encode_task(t)) for t in tasks]
        for n in names:
            os.rename(os.path.join(stage, n), os.path.join(q, n))
        return names

    def test_parallel_spoolers_share_the_work(self):
        # Every task waits in handle() for a gate the test opens only once
        # four of them are inside handle() at the same time: that is what
        # four spoolers sharing the work means, and no clock is involved.
        gate = self.path("gate")
        d = self.daemon(self.record_queue_with_starts(processes=4))
        d.wait_log("spooler for queue q ready with", 4)
        q = self.path("spool/q")
        started = time.monotonic()
        ids = self.burst(q, [{"wait_for": gate, "i": str(i)} for i in range(8)])
        wait_until(lambda: len(read_records(self.starts)) >= 4, 30, what="4 tasks inside handle() at once")
        in_hand = time.monotonic() - started
        starts = read_records(self.starts)
        self.assertEqual(read_records(self.record), [], "no task can finish before the gate opens")
        self.assertEqual(len(starts), 4, "one task per spooler: a spooler runs one handle() at a time")
        self.assertEqual(len({r["pid"] for r in starts}), 4, "four spoolers, one task each")
        print("\n4 spoolers each inside a task %.3fs after 8 tasks arrived" % in_hand)
        open_gate(gate)
        wait_until(lambda: len(read_records(self.record)) == 8, 30, what="8 tasks done")
        self.assertEqual(sorted(r["id"] for r in read_records(self.record)), sorted(ids))
        self.assertEqual(task_files(q), [])
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_names_queued_behind_a_long_task_go_to_another_spooler(self):
        # Short tasks give each spooler a deep pipeline (up to 64 names). A
        # task that then runs long must not hold up the names queued behind
        # it: after 10 ms the master gives them to the other spooler. The long
        # task waits for a gate that opens only after the 200 short ones are
        # done, so they cannot have waited for it, however slow the machine.
        gate = self.path("gate")
        d = self.daemon(self.record_queue_with_starts(processes=2))
        d.wait_log("spooler for queue q ready with", 2)
        q = self.path("spool/q")

        def done():
            return sum(1 for r in read_records(self.record) if r["result"] == "ok")

        self.burst(q, [{}] * 400)
        wait_until(lambda: done() == 400, 60, what="400 short tasks done")
        start = time.monotonic()
        long_task = self.burst(q, [{"wait_for": gate}] + [{}] * 200)[0]
        wait_until(lambda: done() == 600, 60, what="200 short tasks done while a long task blocks a spooler")
        elapsed = time.monotonic() - start
        print("\n200 short tasks beside a blocked task on 2 spoolers: %.2fs" % elapsed)
        self.assertEqual(task_files(q), [long_task], "only the long task is left")
        self.assertIn(long_task, [r["id"] for r in read_records(self.starts)], "the long task is inside handle()")
        open_gate(gate)
        wait_until(lambda: done() == 601, 30, what="the long task done")
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_binary_body_and_args_arrive_intact(self):
        d = self.daemon(self.record_queue())
        body = bytes(range(256)) * 3 + b"\0\xff\0"
        write_raw(self.path("spool/q"), encode_task({"body_sha": "1", "k\xe9y": "v\x00al"}, body))
        wait_until(lambda: read_records(self.record), 30, what="the task to run")
        rec = read_records(self.record)[0]
        self.assertEqual(rec["body_len"], str(len(body)))
        self.assertEqual(rec["body_fnv1a"], fnv1a_64(body))
        self.assertEqual(d.stop(), 0)

    def test_retry_backs_off_then_fails_after_max_attempts(self):
        d = self.daemon(self.record_queue(max_attempts=3, backoff="300ms", backoff_max="10s"))
        task = enqueue(self.path("spool/q"), "status=retry")
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", task)) and not task_files(self.path("spool/q")),
                   30, what="task in failed/")
        recs = [r for r in read_records(self.record) if r["id"] == task]
        self.assertEqual([r["attempt"] for r in recs], ["0", "1", "2"])
        times = [float(r["t"]) for r in recs]
        gaps = [times[1] - times[0], times[2] - times[1]]
        print("\nbackoff 300ms then 600ms (+0..25%% jitter): tries %.3fs and %.3fs apart" % tuple(gaps))
        # Never early: 300 ms then 600 ms (t is when handle() was called; jitter
        # only lengthens). The upper bounds only tell the doubling apart from
        # backoff_max (10 s); they leave 2 s for a loaded machine.
        self.assertGreaterEqual(gaps[0], 0.29)
        self.assertLess(gaps[0], 0.375 + 2.0)
        self.assertGreaterEqual(gaps[1], 0.59)
        self.assertLess(gaps[1], 0.75 + 2.0)
        args, _ = decode_task(read_bytes(self.path("spool/q/failed", task)))
        self.assertEqual(args[b"spoold.attempt"], b"3")
        self.assertIn(b"returned Retry", args[b"spoold.error"])
        self.assertIn(b"spoold.failed_at", args)
        self.assertEqual(task_files(self.path("spool/q")), [])
        self.assertEqual(d.stop(), 0)

    def test_fail_moves_to_failed_at_once(self):
        d = self.daemon(self.record_queue())
        task = enqueue(self.path("spool/q"), "status=fail", "x=1")
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", task)), 30, what="task in failed/")
        self.assertEqual(len(read_records(self.record)), 1)
        args, _ = decode_task(read_bytes(self.path("spool/q/failed", task)))
        self.assertEqual(args[b"x"], b"1")
        self.assertEqual(args[b"spoold.attempt"], b"1")
        self.assertIn(b"returned Fail", args[b"spoold.error"])
        self.assertEqual(d.stop(), 0)

    def test_unknown_status_and_exception_are_retries_with_reason(self):
        cfg = host_toml() + queue_toml("q", "fx_crash", {"record_file": self.path("r.txt")}, max_attempts=1)
        d = self.daemon(cfg)
        t1 = enqueue(self.path("spool/q"), "how=code")
        t2 = enqueue(self.path("spool/q"), "how=throw")
        for t in (t1, t2):
            wait_until(lambda: os.path.exists(self.path("spool/q/failed", t)), 30, what="task in failed/")
        a1, _ = decode_task(read_bytes(self.path("spool/q/failed", t1)))
        a2, _ = decode_task(read_bytes(self.path("spool/q/failed", t2)))
        self.assertIn(b"returned 7", a1[b"spoold.error"])
        self.assertIn(b"fixture threw: boom", a2[b"spoold.error"])
        self.assertEqual(d.stop(), 0)

    def test_permanent_error_fails_at_once_with_its_reason(self):
        cfg = host_toml() + queue_toml("q", "fx_crash", {"record_file": self.path("r.txt")})
        d = self.daemon(cfg)
        t = enqueue(self.path("spool/q"), "how=permanent")
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", t)), 30, what="task in failed/")
        args, _ = decode_task(read_bytes(self.path("spool/q/failed", t)))
        self.assertIn(b"fixture gave up: permanent", args[b"spoold.error"])
        self.assertEqual(args[b"spoold.attempt"], b"1")
        self.assertEqual(len(read_records(self.path("r.txt"))), 1)
        self.assertEqual(d.stop(), 0)

    def test_json_log_lines_are_valid_json(self):
        import json
        cfg = "[host]\nplugin_dir = \"%s\"\nlog_format = \"json\"\n" % TEST_PLUGIN_DIR
        cfg += queue_toml("q", "fx_crash", {"record_file": self.path("r.txt")}, max_attempts=1)
        d = self.daemon(cfg)
        t = enqueue(self.path("spool/q"), "how=throw")
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", t)), 30, what="task in failed/")
        self.assertEqual(d.stop(), 0)
        lines = [json.loads(l) for l in d.log().splitlines() if l.strip()]
        self.assertTrue(any("fixture threw: boom" in l.get("error", "") and l["level"] == "warning" for l in lines))
        self.assertTrue(all({"time", "level", "pid", "role", "message"} <= set(l) for l in lines))

    def test_ignore_chain_passes_to_the_next_plugin(self):
        rec = self.path("r.txt")
        # fx_record takes only type=a and ignores the rest; fx_crash (how=ok)
        # takes what it is given. Both record every call they get.
        cfg = host_toml() + queue_toml("q", ["fx_record", "fx_crash"], {"record_file": rec, "only_type": "a"})
        d = self.daemon(cfg)
        ta = enqueue(self.path("spool/q"), "type=a")
        tb = enqueue(self.path("spool/q"), "type=b", "how=ok")
        wait_until(lambda: task_files(self.path("spool/q")) == [], 30, what="both tasks done")
        calls = [(r["id"], r.get("result")) for r in read_records(rec)]
        self.assertEqual([c for c in calls if c[0] == ta], [(ta, "ok")], "fx_record took type a; fx_crash never saw it")
        self.assertEqual(len([c for c in calls if c[0] == tb]), 2, "tb went through both plugins")
        self.assertIn((tb, "ignore"), calls)
        self.assertRegex(d.log(), r"task %s .*plugin=fx_crash status=ok" % tb)
        self.assertRegex(d.log(), r"task %s .*plugin=fx_record status=ok" % ta)
        self.assertEqual(d.stop(), 0)

    def test_ignored_by_every_plugin_stays_untouched_and_is_not_offered_again(self):
        # Rescans every 50 ms: each one is a chance to offer the task again.
        rec = self.path("r.txt")
        cfg = host_toml(rescan_interval="50ms") + queue_toml("q", "fx_record", {"record_file": rec})
        d = self.daemon(cfg)
        q = self.path("spool/q")
        task = enqueue(q, "status=ignore")
        before = read_bytes(os.path.join(q, task))
        d.wait_log("status=ignore")
        # Other tasks come and go past it: the host keeps taking work, and the
        # ignored one stays out of it. Each later task is an event that proves
        # the master handed out names after the ignore.
        for i in range(5):
            later = enqueue(q, "n=%d" % i)
            wait_until(lambda: later in [r["id"] for r in read_records(rec)], 30, what="a later task to run")
        # A second offer cannot be waited for (it must not happen): watch for
        # one over 20 rescan periods. A slow machine runs fewer rescans here,
        # which can only let a bug through, never fail a correct host.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.assertEqual([r["id"] for r in read_records(rec)].count(task), 1, "offered once, not again")
            time.sleep(0.02)
        self.assertEqual(read_bytes(os.path.join(q, task)), before)
        # Touching the file changes it: offered again.
        os.utime(os.path.join(q, task))
        with open(os.path.join(q, task), "ab"):
            pass
        wait_until(lambda: [r["id"] for r in read_records(rec)].count(task) == 2, 30,
                   what="a second offer after a change")
        self.assertEqual(d.stop(), 0)

    def test_priorities_run_lowest_number_first(self):
        cfg = self.record_queue()
        d = self.daemon(cfg, start=False)
        q = self.path("spool/q")
        enqueue(q, "n=top")
        enqueue(q, "--priority", "5", "n=p5")
        enqueue(q, "--priority", "1", "n=p1")
        enqueue(q, "--priority", "10", "n=p10")
        d.start()
        wait_until(lambda: len(read_records(self.record)) == 4, 30, what="4 tasks")
        self.assertEqual([r["n"] for r in read_records(self.record)], ["p1", "p5", "p10", "top"])
        self.assertEqual(d.stop(), 0)

    def test_delayed_task_waits_for_its_time(self):
        d = self.daemon(self.record_queue())
        start = time.time()
        enqueue(self.path("spool/q"), "--delay", "700ms", "k=v")
        wait_until(lambda: read_records(self.record), 30, what="the delayed task")
        ran = float(read_records(self.record)[0]["t"])
        print("\na task delayed by 700ms ran %.3fs after the enqueue began" % (ran - start))
        # Never early (the delay starts after `start`, inside spoolctl). The
        # upper bound only catches a task that waits for the 30 s rescan
        # instead of its due time; it leaves 3 s for a loaded machine.
        self.assertGreaterEqual(ran - start, 0.69)
        self.assertLess(ran - start, 0.7 + 3.0)
        self.assertEqual(d.stop(), 0)

    def test_sigterm_finishes_tasks_in_hand_and_exits_0(self):
        gate = self.path("gate")
        d = self.daemon(self.record_queue_with_starts(processes=2))
        q = self.path("spool/q")
        t1 = enqueue(q, "wait_for=" + gate)
        t2 = enqueue(q, "wait_for=" + gate)
        wait_until(lambda: len(read_records(self.starts)) == 2, 30, what="both tasks inside handle()")
        d.signal(signal.SIGTERM)
        # The host waits for them (they cannot end before the gate opens).
        d.wait_log("stopping: letting 2 task(s) in hand finish")
        self.assertIsNone(d.proc.poll(), "spoold waits for the tasks in hand")
        self.assertEqual(read_records(self.record), [])
        open_gate(gate)
        self.assertEqual(d.wait(30), 0)
        self.assertEqual(sorted(r["id"] for r in read_records(self.record)), sorted([t1, t2]))
        self.assertEqual([r["result"] for r in read_records(self.record)], ["ok", "ok"])
        self.assertEqual(task_files(q), [], "both finished and were deleted")
        self.assertIn("spoold stopped", d.log())

    def test_sigterm_grace_kills_and_keeps_the_task_without_a_try(self):
        # The task waits for a gate that never opens: it is still inside
        # handle() when the grace runs out, whatever the machine's speed.
        d = self.daemon(self.record_queue_with_starts(host={"shutdown_grace": "300ms"}))
        q = self.path("spool/q")
        task = enqueue(q, "wait_for=" + self.path("gate-never-opened"))
        wait_until(lambda: [r["id"] for r in read_records(self.starts)] == [task], 30, what="the task inside handle()")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(30), 0)
        self.assertIn("killed after shutdown_grace", d.log())
        self.assertEqual(read_records(self.record), [], "handle() never returned: it was killed")
        self.assertEqual(task_files(q), [task])
        args, _ = decode_task(read_bytes(os.path.join(q, task)))
        self.assertNotIn(b"spoold.attempt", args, "shutdown does not use up a try")
        self.assertNotIn(b"spoold.error", args)

    def test_sighup_picks_up_a_new_queue(self):
        rec = self.path("r.txt")
        cfg = host_toml() + queue_toml("q1", "fx_record", {"record_file": rec})
        d = self.daemon(cfg)
        with open(d.config, "a") as f:
            f.write(queue_toml("q2", "fx_record", {"record_file": rec}))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in d.log(), 30, what="the reload")
        task = enqueue(self.path("spool/q2"), "k=v")
        wait_until(lambda: task in [r["id"] for r in read_records(rec)], 30, what="the new queue's task")
        self.assertEqual(d.stop(), 0)

    def test_sighup_with_a_bad_file_keeps_the_old_config(self):
        rec = self.path("r.txt")
        d = self.daemon(host_toml() + queue_toml("q1", "fx_record", {"record_file": rec}))
        with open(d.config, "a") as f:
            f.write("[bogus_table]\nx = 1\n")
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in d.log(), 30, what="the refusal")
        self.assertIn("bogus_table", d.log())
        task = enqueue(self.path("spool/q1"), "k=v")
        wait_until(lambda: task in [r["id"] for r in read_records(rec)], 30, what="the old queue still runs")
        self.assertEqual(d.stop(), 0)

    def test_max_tasks_recycles_the_spooler(self):
        d = self.daemon(self.record_queue(max_tasks=2))
        for i in range(5):
            enqueue(self.path("spool/q"), "i=%d" % i)
        wait_until(lambda: len(read_records(self.record)) == 5, 30, what="5 tasks")
        self.assertGreaterEqual(len({r["pid"] for r in read_records(self.record)}), 3)
        self.assertEqual(d.stop(), 0)

    def test_max_tasks_one_through_a_backlog_every_exit_is_a_recycle(self):
        # The master names tasks ahead; a spooler leaving after its one task
        # must not be taken for one it cannot talk to (which would be
        # retired, and its exit not counted as a recycle).
        d = self.daemon(self.record_queue(max_tasks=1))
        ids = self.burst(self.path("spool/q"), [{"i": str(i)} for i in range(40)])
        wait_until(lambda: len(read_records(self.record)) == 40, 60, what="40 tasks")
        recs = read_records(self.record)
        self.assertEqual(sorted(r["id"] for r in recs), sorted(ids))
        self.assertEqual(len({r["pid"] for r in recs}), 40, "one spooler per task")
        d.wait_log("(max_tasks): recycling", count=40)
        self.assertNotIn("it is replaced", d.log())
        self.assertEqual(d.stop(), 0)


class ConfigErrorTest(SpooldTestCase):
    def run_spoold(self, cfg, *extra):
        path = self.path("bad.toml")
        with open(path, "w") as f:
            f.write(cfg)
        return subprocess.run([SPOOLD, "-c", path, *extra], capture_output=True, timeout=30)

    def test_unknown_key_names_file_line_and_key(self):
        p = self.run_spoold(host_toml() + queue_toml("q", "fx_record") + "procesess = 3\n")
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr.decode(), r"bad\.toml:\d+:\d+: unknown key 'procesess'")

    def test_missing_plugin_is_exit_2(self):
        p = self.run_spoold(host_toml() + queue_toml("q", "no_such_plugin"), "--check")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no_such_plugin", p.stderr.decode())
        self.assertIn("libno_such_plugin.so", p.stderr.decode())

    def test_wrong_abi_and_missing_entry_refused_naming_the_file(self):
        cfg = host_toml() + queue_toml("a", "fx_wrong_abi") + queue_toml("b", "fx_no_entry") + \
            queue_toml("c", "fx_small_struct")
        p = self.run_spoold(cfg, "--check")
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("libfx_wrong_abi.so) was built for ABI 2, this host speaks ABI 1", err)
        self.assertIn("libfx_no_entry.so) exports no spoold_plugin_entry", err)
        self.assertIn("libfx_small_struct.so) has an entry of", err)

    def test_check_ok(self):
        p = self.run_spoold(host_toml() + queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}), "--check")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("OK", p.stdout.decode())

    def test_every_problem_listed(self):
        cfg = host_toml() + queue_toml("q", "fx_record", processes=0, backoff="soon") + queue_toml("q", "fx_record")
        p = self.run_spoold(cfg, "--check")
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2)
        self.assertIn("processes is 0", err)
        self.assertIn('"soon" is not a duration', err)
        self.assertIn("used twice", err)

    def test_usage_errors(self):
        self.assertEqual(subprocess.run([SPOOLD], capture_output=True).returncode, 2)
        self.assertEqual(subprocess.run([SPOOLD, "--bogus"], capture_output=True).returncode, 2)
        self.assertEqual(subprocess.run([SPOOLD, "-c", self.path("missing.toml")], capture_output=True).returncode, 2)

    def test_unwritable_plugin_refused(self):
        import shutil
        pdir = self.path("plugins")
        os.makedirs(pdir)
        os.chmod(pdir, 0o755)
        shutil.copy(os.path.join(TEST_PLUGIN_DIR, "libfx_record.so"), pdir)
        os.chmod(os.path.join(pdir, "libfx_record.so"), 0o666)
        p = self.run_spoold(host_toml(pdir) + queue_toml("q", "fx_record"), "--check")
        self.assertEqual(p.returncode, 2)
        self.assertIn("lets other users write it", p.stderr.decode())
        os.chmod(os.path.join(pdir, "libfx_record.so"), 0o755)
        os.chmod(pdir, 0o777)
        p = self.run_spoold(host_toml(pdir) + queue_toml("q", "fx_record"), "--check")
        self.assertEqual(p.returncode, 2)
        self.assertIn("plugin folder", p.stderr.decode())


class ShippedConfigsTest(SpooldTestCase):
    def test_example_config_checks_and_has_the_queues_its_header_promises(self):
        # configs/example.toml names installed paths; point them into the
        # build and this test's temp dir, change nothing else, and --check it.
        with open(os.path.join(SOURCE_DIR, "configs", "example.toml")) as f:
            text = f.read()
        self.assertIn('plugin_dir      = "/usr/local/lib/spoold/plugins"', text)
        text = text.replace("/usr/local/lib/spoold/plugins", PLUGIN_DIR)
        text = text.replace("/srv/spool/", self.path("spool") + "/").replace("/var/log/spoold/", self.root + "/")
        path = self.path("example.toml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([SPOOLD, "-c", path, "--check"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("OK (3 queue(s)", p.stdout.decode())
        header = text.split("[host]")[0]
        for promised in ("mail queue", "cleanup queue", "dispatcher chain"):
            self.assertIn(promised, header)
        self.assertEqual(re.findall(r'^name\s*=\s*"([^"]+)"', text, re.M), ["mail", "cleanup", "events"])
        mail = text.split('name         = "mail"')[1].split("[[queue]]")[0]
        self.assertRegex(mail, r"max_attempts\s*=\s*\d+", "the mail queue has its own retries")
        self.assertRegex(mail, r'timeout\s*=\s*"\d+m"', "and its own timeout")


class OutOfTreePluginTest(SpooldTestCase):
    def test_plugin_built_with_only_the_public_header_runs(self):
        pdir = self.path("plugins")
        os.makedirs(pdir)
        src = self.path("hello.cpp")
        with open(src, "w") as f:
            f.write(r'''
#include <spoold/plugin.hpp>
#include <cstdio>
#include <string>
class Hello : public spoold::Plugin {
  std::string out_;
 public:
  void init(const spoold::InitContext& c) override { out_ = std::string(*c.options.get("out")); }
  spoold::Status handle(const spoold::Task& t) override {
    FILE* f = std::fopen(out_.c_str(), "a");
    if (!f) return spoold::Status::Retry;
    std::fprintf(f, "%.*s:%.*s\n", (int)t.queue().size(), t.queue().data(), (int)t.body().size(), t.body().data());
    std::fclose(f);
    return spoold::Status::Ok;
  }
};
SPOOLD_PLUGIN(Hello)
''')
        include = os.path.join(SOURCE_DIR, "plugin_api", "include")
        subprocess.run(["c++", "-std=c++20", "-shared", "-fPIC", "-I", include, src, "-o",
                        os.path.join(pdir, "libhello.so")], check=True, timeout=120)
        out = self.path("hello.txt")
        d = self.daemon(host_toml(pdir) + queue_toml("q", "hello", {"out": out}))
        enqueue(self.path("spool/q"), body="from outside")
        wait_until(lambda: read_text(out) == "q:from outside\n", 30, what="hello output")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
