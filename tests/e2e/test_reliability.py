"""Reliability end to end (issue 4): crashing and hanging plugins, spoolers
and the host killed mid-run, hostile files, a full disk, private modes.
Each test causes the fault and checks that no task is lost."""
import os
import random
import signal
import stat
import subprocess
import time
import unittest

from support import (SPOOLCTL, SpooldTestCase, decode_task, encode_task, read_records, task_files, wait_until,
                     write_raw)
from test_core import host_toml, queue_toml


def failed_error(queue_dir, task):
    args, _ = decode_task(open(os.path.join(queue_dir, "failed", task), "rb").read())
    return args.get(b"spoold.error", b"").decode(errors="replace")


class CrashIsolationTest(SpooldTestCase):
    def test_misbehaving_plugins_mixed_with_good_tasks(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        cfg = host_toml() + queue_toml("q", "fx_crash", {"record_file": rec}, processes=2, max_attempts=2,
                                        backoff="50ms", backoff_max="100ms", timeout="1s")
        d = self.daemon(cfg)
        bad = {}
        good = []
        hows = ["segv", "abort", "exit", "hang", "throw", "code"]
        for i in range(300):
            good.append(write_raw(q, encode_task({"how": "ok", "i": str(i)})))
            if i % 50 == 0:
                how = hows[i // 50]
                bad[how] = write_raw(q, encode_task({"how": how}))
        wait_until(lambda: all(os.path.exists(os.path.join(q, "failed", t)) for t in bad.values()), 30,
                   what="every misbehaving task in failed/")
        wait_until(lambda: task_files(q) == [], 10, what="every good task done")
        self.assertIsNone(d.proc.poll(), "the host stays up")
        ran = {r["id"] for r in read_records(rec)}
        self.assertEqual(set(good) - ran, set(), "every good task ran")
        self.assertEqual(sorted(os.listdir(os.path.join(q, "failed"))), sorted(bad.values()), "only the bad ones failed")
        expected = {"segv": "spooler killed by signal 11 (SIGSEGV)", "abort": "spooler killed by signal 6 (SIGABRT)",
                    "exit": "spooler exited with code 3", "hang": "timed out after 1s",
                    "throw": "fixture threw: boom", "code": "returned 7"}
        for how, task in bad.items():
            self.assertIn(expected[how], failed_error(q, task), how)
            tries = [r for r in read_records(rec) if r["id"] == task]
            self.assertEqual(len(tries), 2, "%s: max_attempts = 2 tries" % how)
            self.assertEqual([r["attempt"] for r in tries], ["0", "1"], how)
        self.assertIn("while handling", d.log())
        self.assertEqual(d.stop(), 0)

    def test_spooler_whose_init_crashes_is_respawned_with_a_growing_pause(self):
        rec = self.path("r.txt")
        cfg = host_toml() + queue_toml("bad", "fx_init_crash") + queue_toml("good", "fx_record", {"record_file": rec})
        d = self.daemon(cfg)
        task = write_raw(self.path("spool/good"), encode_task({"k": "v"}))
        wait_until(lambda: task in [r["id"] for r in read_records(rec)], 5, what="the good queue to work")
        time.sleep(2.0)
        starts = d.log().count("(queue bad) started")
        # 100, 200, 400, 800 ms pauses: at most about 5 starts in 2 s, not hundreds.
        self.assertLessEqual(starts, 7, d.log()[-3000:])
        self.assertGreaterEqual(starts, 3)
        self.assertIn("before taking a task", d.log())
        self.assertIn("next start in 400ms", d.log())
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.stop(), 0)

    def test_random_spooler_kills_lose_nothing(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        n = 2000
        ids = [write_raw(q, encode_task({"sleep_ms": "4", "i": str(i)})) for i in range(n)]
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": rec}, processes=2, max_attempts=1000,
                                        backoff="10ms", backoff_max="50ms")
        d = self.daemon(cfg)
        kills = 0
        rng = random.Random(7)
        deadline = time.monotonic() + 120
        while task_files(q) and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = d.spooler_pids()
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        wait_until(lambda: task_files(q) == [], 30, what="the queue to drain")
        records = [r["id"] for r in read_records(rec)]
        ran = set(records)
        lost = set(ids) - ran
        duplicates = len(records) - len(ran)
        print("\n%d tasks, %d spooler kills, %d lost, %d duplicates" % (n, kills, len(lost), duplicates))
        self.assertEqual(lost, set())
        self.assertLessEqual(duplicates, kills)
        self.assertEqual(os.listdir(os.path.join(q, "failed")), [])
        self.assertGreater(kills, 5)
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.stop(), 0)

    def test_host_killed_and_restarted_loses_nothing(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        ids = [write_raw(q, encode_task({"sleep_ms": "2", "i": str(i)})) for i in range(500)]
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": rec}, processes=2)
        d = self.daemon(cfg)
        wait_until(lambda: len(read_records(rec)) >= 100, 20, what="100 tasks")
        spoolers = d.spooler_pids()
        self.assertEqual(len(spoolers), 2)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(5)

        def all_gone():
            return not any(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"
                           for p in spoolers)
        wait_until(all_gone, 5, what="spoolers to die with the host (PR_SET_PDEATHSIG)")
        left = task_files(q)
        self.assertGreater(len(left), 0)
        d.start()
        wait_until(lambda: task_files(q) == [], 30, what="the rest after the restart")
        ran = {r["id"] for r in read_records(rec)}
        self.assertEqual(set(ids) - ran, set(), "nothing lost")
        self.assertEqual([n for n in os.listdir(q) if n.startswith(".spoold-tmp")], [])
        self.assertEqual(d.stop(), 0)


class HostileFilesTest(SpooldTestCase):
    def test_hostile_and_broken_files_are_contained(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        os.makedirs(q, mode=0o700)
        outside = self.path("outside_task")
        with open(outside, "wb") as f:
            f.write(encode_task({"who": "outside"}))
        os.symlink(outside, os.path.join(q, "uwsgi_spoolfile_on_link_1"))
        os.mkfifo(os.path.join(q, "uwsgi_spoolfile_on_fifo_1"))
        os.mkdir(os.path.join(q, "uwsgi_spoolfile_on_dir_1"))
        os.mkdir(os.path.join(q, "high"))
        write_raw(os.path.join(q, "high"), encode_task({"who": "nonnumeric"}), name="uwsgi_spoolfile_on_high_1")
        old = time.time() - 120
        trunc = write_raw(q, encode_task({"who": "trunc", "pad": "x" * 50})[:20], mtime=old)
        garbage = write_raw(q, bytes(random.Random(1).randrange(256) for _ in range(300)), mtime=old)
        empty_old = write_raw(q, b"", mtime=old)
        empty_young = write_raw(q, b"")
        nasty = write_raw(q, encode_task({"who": "nasty", "priority": "../x", "spooler": self.path("elsewhere")}))
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": rec})
        d = self.daemon(cfg)
        good = write_raw(q, encode_task({"who": "good"}))
        wait_until(lambda: {good, nasty} <= {r["id"] for r in read_records(rec)}, 5, what="good tasks to run")
        for t in (trunc, garbage, empty_old):
            wait_until(lambda: os.path.exists(os.path.join(q, "failed", t + ".error")), 5, what="%s in failed/" % t)
            self.assertTrue(os.path.exists(os.path.join(q, "failed", t)))
        self.assertIn("header announces", open(os.path.join(q, "failed", trunc + ".error")).read())
        self.assertIn("empty", open(os.path.join(q, "failed", empty_old + ".error")).read())
        time.sleep(0.3)
        whos = [r.get("who") for r in read_records(rec)]
        self.assertEqual(sorted(whos), ["good", "nasty"], "nothing else ran")
        self.assertTrue(os.path.islink(os.path.join(q, "uwsgi_spoolfile_on_link_1")), "the link is left alone")
        self.assertEqual(open(outside, "rb").read(), encode_task({"who": "outside"}), "its target untouched")
        self.assertTrue(os.path.exists(os.path.join(q, "high", "uwsgi_spoolfile_on_high_1")))
        self.assertFalse(os.path.exists(self.path("spool/x")))
        self.assertFalse(os.path.exists(self.path("elsewhere")))
        self.assertTrue(os.path.exists(os.path.join(q, empty_young)), "a young empty file is being written: kept")
        self.assertFalse(os.path.exists(os.path.join(q, "failed", empty_young)))
        # Its writer finishes: it runs.
        with open(os.path.join(q, empty_young), "wb") as f:
            f.write(encode_task({"who": "late"}))
        wait_until(lambda: "late" in [r.get("who") for r in read_records(rec)], 5, what="the finished file to run")
        self.assertIsNone(d.proc.poll())
        self.assertEqual(d.log().count("uwsgi_spoolfile_on_link_1"), 1, "logged once")
        self.assertEqual(d.stop(), 0)


def mount_small_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path], capture_output=True)
    return proc.returncode == 0


class FullDiskTest(SpooldTestCase):
    def setUp(self):
        super().setUp()
        self.mnt = self.path("small")
        if os.geteuid() != 0 or not mount_small_tmpfs(self.mnt, "64k"):
            self.skipTest("needs root to mount a small tmpfs")

    def tearDown(self):
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        super().tearDown()

    def test_enqueue_on_a_full_disk_fails_cleanly(self):
        q = os.path.join(self.mnt, "q")
        body = self.path("big")
        with open(body, "wb") as f:
            f.write(b"x" * 200_000)
        p = subprocess.run([SPOOLCTL, "--dir", q, "enqueue", "k=v", "--body-file", body], capture_output=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("No space left on device", p.stderr.decode())
        self.assertEqual(os.listdir(q), [], "no partial task and no temp file left")

    def test_reschedule_that_cannot_be_written_keeps_the_original(self):
        q = os.path.join(self.mnt, "q")
        rec = self.path("r.txt")
        task = write_raw(q, encode_task({"status": "retry"}, b"b" * 20_000))
        original = open(os.path.join(q, task), "rb").read()
        # Fill the disk so a rewrite of the task cannot fit.
        fd = os.open(os.path.join(self.mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"f" * 1024) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        cfg = host_toml() + "[[queue]]\nname = \"q\"\ndir = \"%s\"\nplugin = \"fx_record\"\n" % q + \
            "[queue.options]\nrecord_file = \"%s\"\n" % rec
        d = self.daemon(cfg)
        wait_until(lambda: "cannot reschedule" in d.log(), 5, what="the failed rewrite")
        self.assertEqual(open(os.path.join(q, task), "rb").read(), original)
        self.assertEqual([n for n in os.listdir(q) if n.startswith(".spoold-tmp")], [])
        self.assertEqual(d.stop(), 0)


class PrivateModesTest(SpooldTestCase):
    def test_queue_dirs_and_files_are_private_by_default(self):
        rec = self.path("r.txt")
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": rec}, max_attempts=1) + \
            queue_toml("shared", "fx_record", {"record_file": rec}, dir_mode="0750", file_mode="0640", max_attempts=1)
        d = self.daemon(cfg)
        for name, dmode, fmode in (("q", 0o700, 0o600), ("shared", 0o750, 0o640)):
            qd = self.path("spool", name)
            self.assertEqual(stat.S_IMODE(os.stat(qd).st_mode), dmode)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(qd, "failed")).st_mode), dmode)
            task = write_raw(qd, encode_task({"status": "fail"}))
            wait_until(lambda: os.path.exists(os.path.join(qd, "failed", task)), 5)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(qd, "failed", task)).st_mode), fmode)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
