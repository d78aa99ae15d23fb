"""spoolctl stats, why, fsck, --json and purge's confirmation (issue 12), on
real queue directories in every state, and `why` on the history the real
spoold writes into a task file (tests/plugins/fx_record.cpp, fx_crash.cpp).

Run through ctest (it sets SPOOLD_BIN, SPOOLCTL_BIN and the plugin folders).
"""
import fcntl
import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from support import (SPOOLCTL, TEST_PLUGIN_DIR, SpooldTestCase, decode_task, encode_task, enqueue,  # noqa: E402
                     read_bytes, read_records, task_files, wait_until, write_raw)

PREFIX = "uwsgi_spoolfile_on_"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's faketime


def ctl(*args, stdin=subprocess.DEVNULL):
    return subprocess.run([SPOOLCTL, *args], capture_output=True, timeout=60, stdin=stdin)


def write_task(directory, name, args, body=b"", mtime=None, mode=0o600):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(encode_task(args, body))
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def snapshot(root):
    """Every entry under root with its type, mode, size and mtime: what fsck
    without --repair must leave exactly as it was."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size,
                                             st.st_mtime_ns)
    return out


class Locked:
    """Holds a POSIX record lock on a file, as a uWSGI spooler would; it
    conflicts with spoold's OFD locks."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class OpsTestCase(SpooldTestCase):
    def setUp(self):
        super().setUp()
        self.locks = []
        self.config = self.path("spoold.toml")
        self.mail = self.path("spool", "mail")
        with open(self.config, "w") as f:
            f.write('[host]\nplugin_dir = "%s"\n\n'
                    '[[queue]]\nname = "mail"\ndir = "spool/mail"\nplugin = "fx_record"\n\n'
                    '[[queue]]\nname = "reports"\ndir = "spool/reports"\nplugin = "fx_record"\n' % TEST_PLUGIN_DIR)

    def tearDown(self):
        for lock in self.locks:
            lock.release()
        super().tearDown()

    def lock(self, path):
        lock = Locked(path)
        self.locks.append(lock)
        return lock

    def json_of(self, *args, code=0):
        out = ctl(*args)
        self.assertEqual(out.returncode, code, "spoolctl %s: %s" % (" ".join(args), out.stderr.decode()))
        return json.loads(out.stdout)

    def fails(self, code, *args, expect=None):
        out = ctl(*args)
        self.assertEqual(out.returncode, code, "spoolctl %s: %s %s" % (" ".join(args), out.stdout, out.stderr))
        if expect:
            self.assertIn(expect, out.stderr.decode())
        return out


class StatsTest(OpsTestCase):
    def make_states(self):
        """Two pending (one an hour old), one delayed, one ignored, two failed, one
        locked by a running task."""
        now = time.time()
        t = {}
        t["old"] = os.path.basename(write_task(self.mail, PREFIX + "old_1", {"k": "v"}, mtime=now - 3600))
        t["new"] = os.path.basename(write_task(os.path.join(self.mail, "5"), PREFIX + "prio_1", {"priority": "5"}))
        t["delayed"] = os.path.basename(write_task(self.mail, PREFIX + "later_1", {}, mtime=now + 600))
        ignored = write_task(self.mail, PREFIX + "ign_1", {"type": "nobody"}, mtime=now - 60)
        st = os.lstat(ignored)
        with open(os.path.join(self.mail, ".spoold-ignored"), "w") as f:
            f.write("%s %d %d %d\n" % (os.path.basename(ignored), st.st_ino, st.st_mtime_ns, st.st_size))
        t["ignored"] = os.path.basename(ignored)
        for n in ("f1", "f2"):
            t[n] = os.path.basename(write_task(os.path.join(self.mail, "failed"), PREFIX + n,
                                               {"spoold.attempt": "5", "spoold.error": "boom", "spoold.failed_at": "1700000000"}))
        running = write_task(self.mail, PREFIX + "run_1", {"k": "running"}, mtime=now - 7200)
        t["running"] = os.path.basename(running)
        self.lock(running)
        return t

    def test_stats_json_every_state_field_by_field(self):
        self.make_states()
        before = time.time()
        doc = self.json_of("-c", self.config, "stats", "--json")
        self.assertEqual(list(doc), ["queues"])
        self.assertEqual([q["name"] for q in doc["queues"]], ["mail", "reports"])
        mail, reports = doc["queues"]
        self.assertEqual(mail["dir"], self.mail)
        self.assertEqual((mail["pending"], mail["delayed"], mail["ignored"], mail["failed"], mail["in_flight"]),
                         (2, 1, 1, 2, 1))
        # The locked task is two hours old but in flight: the oldest pending is the one an hour old.
        self.assertGreaterEqual(mail["oldest_pending_age_s"], 3600 - 1)
        self.assertLess(mail["oldest_pending_age_s"], 3600 + (time.time() - before) + 60)
        self.assertEqual(reports["dir"], self.path("spool", "reports"))
        self.assertEqual((reports["pending"], reports["delayed"], reports["ignored"], reports["failed"],
                          reports["in_flight"], reports["oldest_pending_age_s"]), (0, 0, 0, 0, 0, None))
        self.assertTrue(reports["dir_missing"])
        for key in ("name", "dir", "pending", "delayed", "ignored", "failed", "in_flight", "oldest_pending_age_s"):
            self.assertIn(key, mail)

        one = self.json_of("-c", self.config, "stats", "mail", "--json")
        self.assertEqual(len(one["queues"]), 1)
        self.assertEqual(one["queues"][0]["in_flight"], 1)
        by_dir = self.json_of("--dir", self.mail, "stats", "--json")["queues"][0]
        self.assertIsNone(by_dir["name"])
        self.assertEqual((by_dir["pending"], by_dir["in_flight"], by_dir["ignored"]), (2, 1, 1))

        text = ctl("-c", self.config, "stats")
        self.assertEqual(text.returncode, 0, text.stderr)
        line = [l for l in text.stdout.decode().splitlines() if l.startswith("mail ")][0]
        self.assertEqual(line.split()[1:6], ["2", "1", "1", "2", "1"])
        self.assertRegex(line.split()[6], r"^(59m5\ds|1h00m)$")

    def test_released_lock_is_pending_again(self):
        t = self.make_states()
        self.locks[0].release()
        mail = self.json_of("-c", self.config, "stats", "mail", "--json")["queues"][0]
        self.assertEqual((mail["pending"], mail["in_flight"]), (3, 0))
        self.assertGreaterEqual(mail["oldest_pending_age_s"], 7200 - 1)
        doc = self.json_of("-c", self.config, "ls", "mail", "--json")
        self.assertEqual(doc["counts"], {"in_flight": 0, "pending": 3, "delayed": 1, "ignored": 1, "failed": 2})
        self.assertEqual(doc["tasks"][0]["id"], t["new"], "priority directories run first")

    def test_ls_and_show_json(self):
        t = self.make_states()
        doc = self.json_of("-c", self.config, "ls", "mail", "--json")
        self.assertEqual((doc["queue"], doc["dir"], doc["dir_missing"]), ("mail", self.mail, False))
        self.assertEqual(doc["counts"], {"in_flight": 1, "pending": 2, "delayed": 1, "ignored": 1, "failed": 2})
        states = {task["id"]: task["state"] for task in doc["tasks"]}
        self.assertEqual(states, {t["old"]: "pending", t["new"]: "pending", t["delayed"]: "delayed",
                                  t["ignored"]: "ignored", t["f1"]: "failed", t["f2"]: "failed",
                                  t["running"]: "in_flight"})
        f1 = [task for task in doc["tasks"] if task["id"] == t["f1"]][0]
        self.assertEqual((f1["attempt"], f1["error"], f1["failed_at"], f1["due"], f1["priority"]),
                         (5, "boom", 1700000000, None, None))
        new = [task for task in doc["tasks"] if task["id"] == t["new"]][0]
        self.assertEqual(new["priority"], 5)
        text = ctl("-c", self.config, "ls", "mail").stdout.decode()
        self.assertIn("1 in flight, 2 pending, 1 delayed, 1 ignored, 2 failed", text)

        write_task(self.mail, PREFIX + "bytes_1", {b"k\xff": b"v\xfe", "ok": "caf\u00e9"}, body=b"hello")
        show = self.json_of("-c", self.config, "show", "mail", PREFIX + "bytes_1", "--json")
        self.assertEqual(show["id"], PREFIX + "bytes_1")
        self.assertEqual(show["state"], "pending")
        self.assertEqual(show["args"], [{"key": "k\\xff", "value": "v\\xfe"}, {"key": "ok", "value": "caf\u00e9"}])
        self.assertEqual((show["body_size"], show["body_preview"]), (5, "hello"))
        self.assertEqual(show["path"], os.path.join(self.mail, PREFIX + "bytes_1"))

    def test_bad_input_exits_2(self):
        self.fails(2, "-c", self.config, "stats", "nosuch", expect="nosuch")
        self.fails(2, "-c", self.config, "why", "nosuch", PREFIX + "x", expect="nosuch")
        self.fails(2, "-c", self.config, "fsck", "nosuch", expect="nosuch")
        self.fails(2, "-c", self.config, "why", "mail", "../../etc/passwd", expect="not a task id")
        self.fails(2, "-c", self.config, "why", "mail", expect="one task ID")
        self.fails(2, "--dir", self.path("nowhere"), "fsck", expect=self.path("nowhere"))
        self.fails(2, "--dir", self.path("nowhere"), "stats", expect=self.path("nowhere"))
        self.fails(2, "-c", self.config, "fsck", "mail", "--all", expect="--all is not an option of fsck")
        self.fails(2, "-c", self.config, "stats", "--repair", expect="--repair")
        bad = self.path("bad.toml")
        with open(bad, "w") as f:
            f.write('[host]\nplugin_dir = "p"\nbogus = 1\n')
        err = self.fails(2, "-c", bad, "stats").stderr.decode()
        self.assertIn("bad.toml", err)
        self.assertIn("bogus", err)
        os.makedirs(self.mail)
        self.fails(1, "-c", self.config, "why", "mail", PREFIX + "nosuch", expect="no task " + PREFIX + "nosuch")

    def test_options_may_follow_the_command(self):
        # CLI11 parses; the command lines of SPEC §8 keep working in any order.
        self.make_states()
        a = self.json_of("stats", "mail", "--json", "-c", self.config)
        b = self.json_of("-c", self.config, "stats", "--json", "mail")
        self.assertEqual(a["queues"][0]["name"], "mail")
        for doc in (a, b):
            del doc["queues"][0]["oldest_pending_age_s"]
        self.assertEqual(b, a)
        # A queue named like a command stays a queue name.
        with open(self.config, "a") as f:
            f.write('\n[[queue]]\nname = "stats"\ndir = "spool/stats"\nplugin = "fx_record"\n')
        task = ctl("-c", self.config, "enqueue", "stats", "a=1", "--body", "-starts-with-a-dash")
        self.assertEqual(task.returncode, 0, task.stderr)
        doc = self.json_of("-c", self.config, "stats", "stats", "--json")
        self.assertEqual((doc["queues"][0]["name"], doc["queues"][0]["pending"]), ("stats", 1))


class PurgeConfirmationTest(OpsTestCase):
    def setUp(self):
        super().setUp()
        self.ids = [write_task(self.mail, PREFIX + "p_%d" % i, {"n": str(i)}) for i in range(3)]

    def run_on_tty(self, answer):
        """Runs purge --all with a terminal as stdin and stderr; answers the question."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([SPOOLCTL, "-c", self.config, "purge", "mail", "--all"], stdin=slave,
                                stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 30
        try:
            while b"[y/N]" not in seen:
                self.assertLess(time.monotonic(), deadline, "no question on the terminal: %r" % seen)
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    seen += os.read(master, 4096)
            self.assertIn(b"3 pending, delayed or ignored and 0 failed", seen)
            os.write(master, answer + b"\n")
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        return proc.returncode, out

    def test_without_a_terminal_it_refuses_unless_yes(self):
        out = self.fails(2, "-c", self.config, "purge", "mail", "--all", expect="--yes")
        self.assertIn(b"not a terminal", out.stderr)
        self.assertEqual(len(task_files(self.mail)), 3)
        out = ctl("-c", self.config, "purge", "mail", "--all", "--yes")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(task_files(self.mail), [])
        self.fails(2, "-c", self.config, "purge", "mail", "--failed", "--yes", expect="--yes")

    def test_on_a_terminal_it_asks(self):
        code, _ = self.run_on_tty(b"n")
        self.assertEqual(code, 1)
        self.assertEqual(len(task_files(self.mail)), 3)
        code, out = self.run_on_tty(b"y")
        self.assertEqual(code, 0)
        self.assertIn(b"purged 3 pending or delayed tasks", out)
        self.assertEqual(task_files(self.mail), [])


class FsckTest(OpsTestCase):
    def seed(self):
        """One of each kind of debris, plus healthy tasks that must stay as they are."""
        q = self.mail
        old = time.time() - 3600
        d = {}
        d["healthy"] = write_task(q, PREFIX + "ok_1", {"k": "v"})
        d["healthy_failed"] = write_task(os.path.join(q, "failed"), PREFIX + "ok_f", {"spoold.error": "x"})
        with open(os.path.join(q, "failed", PREFIX + "ok_f.error"), "w") as f:
            f.write("a note with its task\n")
        os.chmod(os.path.join(q, "failed", PREFIX + "ok_f.error"), 0o600)
        # Stale temp files: an hour old in the queue and in failed/; a young one is being written.
        for where in (q, os.path.join(q, "failed")):
            path = os.path.join(where, ".spoold-tmp-" + PREFIX + "stale")
            with open(path, "wb") as f:
                f.write(b"partial")
        d["stale"] = os.path.join(q, ".spoold-tmp-" + PREFIX + "stale")
        d["stale_failed"] = os.path.join(q, "failed", ".spoold-tmp-" + PREFIX + "stale")
        d["young_temp"] = os.path.join(q, ".spoold-tmp-" + PREFIX + "young")
        with open(d["young_temp"], "wb") as f:
            f.write(b"being written")
        d["not_a_task"] = os.path.join(q, "README")
        with open(d["not_a_task"], "w") as f:
            f.write("notes\n")
        d["target"] = self.path("outside.txt")
        with open(d["target"], "w") as f:
            f.write("the link's target\n")
        d["symlink"] = os.path.join(q, PREFIX + "link")
        os.symlink(d["target"], d["symlink"])
        d["fifo"] = os.path.join(q, PREFIX + "fifo")
        os.mkfifo(d["fifo"])
        d["orphan_note"] = os.path.join(q, "failed", PREFIX + "gone.error")
        with open(d["orphan_note"], "w") as f:
            f.write("its task was purged\n")
        d["bad_dir"] = os.path.join(q, "high")
        write_task(d["bad_dir"], PREFIX + "lost_1", {})
        d["loose_file"] = write_task(q, PREFIX + "loose_1", {"k": "v"}, mode=0o644)
        d["loose_dir"] = os.path.join(q, "3")
        write_task(d["loose_dir"], PREFIX + "p3", {"priority": "3"})
        os.chmod(d["loose_dir"], 0o755)
        d["unparsable"] = os.path.join(q, PREFIX + "broken")
        with open(d["unparsable"], "wb") as f:
            f.write(b"\x11\xff\x00\x00abc")
        d["young_unparsable"] = os.path.join(q, PREFIX + "writing")
        with open(d["young_unparsable"], "wb") as f:
            f.write(b"")
        os.chmod(d["young_unparsable"], 0o600)
        d["locked_loose"] = write_task(q, PREFIX + "locked_1", {"k": "v"}, mode=0o664)
        for p in (d["stale"], d["stale_failed"], d["unparsable"]):
            os.utime(p, (old, old))
        return d

    def test_fsck_reports_then_repairs_each_kind(self):
        d = self.seed()
        lock = self.lock(d["locked_loose"])
        os.chmod(self.mail, 0o755)
        before = snapshot(self.root)
        out = ctl("-c", self.config, "fsck", "mail")
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(snapshot(self.root), before, "fsck without --repair changed something")
        self.assertIn(b"--repair would", out.stdout)
        doc = self.json_of("-c", self.config, "fsck", "mail", "--json", code=1)
        self.assertEqual(snapshot(self.root), before)
        self.assertEqual((doc["queue"], doc["dir"], doc["repair"], doc["clean"]), ("mail", self.mail, False, False))
        found = {(f["path"], f["kind"]): f for f in doc["findings"]}
        kinds = {path: kind for path, kind in found}
        # Temp files age by ctime, which cannot be set back: these are seconds
        # old, not stale yet (test_stale_temp_files_by_ctime moves the clock).
        self.assertNotIn(d["stale"], kinds)
        self.assertNotIn(d["young_temp"], kinds)
        self.assertNotIn(d["young_unparsable"], kinds)
        self.assertNotIn(d["healthy"], kinds)
        self.assertNotIn(d["healthy_failed"], kinds)
        expected = {
            d["not_a_task"]: "not_a_task",
            d["symlink"]: "symlink",
            d["fifo"]: "special_file",
            d["orphan_note"]: "orphan_note",
            d["bad_dir"]: "bad_priority_dir",
            d["loose_file"]: "loose_mode",
            d["loose_dir"]: "loose_mode",
            self.mail: "loose_mode",
            d["unparsable"]: "unparsable",
            d["locked_loose"]: "loose_mode",
        }
        for path, kind in expected.items():
            self.assertEqual(kinds.get(path), kind, "%s: %s" % (path, doc["findings"]))
        for f in doc["findings"]:
            self.assertIn(f["result"], ("found", "left"))
            self.assertTrue(f["problem"] and f["action"], f)
        self.assertEqual(found[(d["not_a_task"], "not_a_task")]["result"], "left")
        self.assertEqual(found[(d["bad_dir"], "bad_priority_dir")]["result"], "left")
        self.assertIn("1 task file", found[(d["bad_dir"], "bad_priority_dir")]["problem"])
        self.assertEqual(found[(d["loose_file"], "loose_mode")]["result"], "found")

        rep = self.json_of("-c", self.config, "fsck", "mail", "--repair", "--json", code=1)
        result = {f["path"]: f["result"] for f in rep["findings"]}
        for path in (d["symlink"], d["fifo"], d["orphan_note"], d["loose_file"], d["loose_dir"], self.mail,
                     d["unparsable"]):
            self.assertEqual(result[path], "repaired", path)
        for path in (d["not_a_task"], d["bad_dir"], d["locked_loose"]):
            self.assertEqual(result[path], "left", path)
        locked = [f for f in rep["findings"] if f["path"] == d["locked_loose"]][0]
        self.assertIn("locked", locked["error"])
        self.assertEqual(stat.S_IMODE(os.lstat(d["locked_loose"]).st_mode), 0o664, "a locked task is never touched")
        self.assertFalse(os.path.lexists(d["symlink"]))
        self.assertTrue(os.path.isfile(d["target"]), "the link's target is not touched")
        self.assertFalse(os.path.lexists(d["fifo"]))
        self.assertFalse(os.path.lexists(d["orphan_note"]))
        self.assertTrue(os.path.isfile(os.path.join(self.mail, "failed", PREFIX + "ok_f.error")))
        self.assertEqual(stat.S_IMODE(os.lstat(d["loose_file"]).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.lstat(d["loose_dir"]).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.lstat(self.mail).st_mode), 0o700)
        self.assertFalse(os.path.lexists(d["unparsable"]))
        moved = os.path.join(self.mail, "failed", PREFIX + "broken")
        self.assertEqual(read_bytes(moved), b"\x11\xff\x00\x00abc", "moved unchanged")
        self.assertIn(b"announces 255 bytes", read_bytes(moved + ".error"))
        self.assertTrue(os.path.isfile(d["young_temp"]))
        self.assertTrue(os.path.isfile(d["young_unparsable"]))
        self.assertTrue(os.path.isfile(d["not_a_task"]))
        self.assertTrue(os.path.isfile(d["healthy"]))

        # What is left is the operator's: move it, release the lock, and the queue is clean.
        os.rename(d["not_a_task"], self.path("README"))
        os.rename(d["bad_dir"], self.path("high"))
        lock.release()
        out = ctl("-c", self.config, "fsck", "mail", "--repair")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b"1 repaired, 0 left", out.stdout)
        self.assertEqual(stat.S_IMODE(os.lstat(d["locked_loose"]).st_mode), 0o600)
        out = ctl("-c", self.config, "fsck", "mail")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b"clean", out.stdout)

    def test_stale_temp_files_by_ctime(self):
        # A temp file is stale 5 minutes after its last change (ctime, which
        # no call can set back), so spoolctl runs with its clock 10 minutes
        # ahead (libfaketime; file times are left real with NO_FAKE_STAT).
        d = self.seed()
        for p in (d["young_temp"], d["young_unparsable"], d["locked_loose"]):
            os.unlink(p)
        # verify_asan_link_order: under AddressSanitizer the preload comes before its runtime.
        ahead = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME="+600", NO_FAKE_STAT="1",
                     ASAN_OPTIONS="verify_asan_link_order=0")
        late = subprocess.run([SPOOLCTL, "-c", self.config, "fsck", "mail", "--json"], capture_output=True,
                              timeout=60, env=ahead)
        self.assertEqual(late.returncode, 1, late.stderr)
        kinds = {f["path"]: f["kind"] for f in json.loads(late.stdout)["findings"]}
        self.assertEqual(kinds.get(d["stale"]), "stale_temp")
        self.assertEqual(kinds.get(d["stale_failed"]), "stale_temp")
        now = self.json_of("-c", self.config, "fsck", "mail", "--json", code=1)
        self.assertNotIn(d["stale"], {f["path"] for f in now["findings"]}, "not stale yet by the real clock")
        fixed = subprocess.run([SPOOLCTL, "-c", self.config, "fsck", "mail", "--repair"], capture_output=True,
                               timeout=60, env=ahead)
        self.assertEqual(fixed.returncode, 1, "README and high/ are left")
        self.assertFalse(os.path.lexists(d["stale"]))
        self.assertFalse(os.path.lexists(d["stale_failed"]))
        self.assertTrue(os.path.isfile(d["healthy"]))


class HistoryTest(OpsTestCase):
    """`why` on the history the real spoold writes into the task file."""

    def record_config(self, **settings):
        self.record = self.path("record.txt")
        lines = ['[host]', 'plugin_dir = "%s"' % TEST_PLUGIN_DIR, '', '[[queue]]', 'name = "q"',
                 'dir = "spool/q"', 'plugin = "fx_record"']
        lines += ['%s = %s' % (k, '"%s"' % v if isinstance(v, str) else v) for k, v in settings.items()]
        lines += ['[queue.options]', 'record_file = "%s"' % self.record]
        return "\n".join(lines) + "\n"

    def test_why_after_two_retries_and_a_failure(self):
        d = self.daemon(self.record_config(max_attempts=3, backoff="300ms", backoff_max="10s"))
        q = self.path("spool", "q")
        task = enqueue(q, "status=retry")
        wait_until(lambda: os.path.exists(os.path.join(q, "failed", task)) and not task_files(q), 60,
                   what="the task in failed/")
        recs = [r for r in read_records(self.record) if r["id"] == task]
        self.assertEqual(len(recs), 3)
        doc = self.json_of("--dir", q, "why", task, "--json")
        self.assertEqual((doc["id"], doc["queue"], doc["state"], doc["next_due"]), (task, None, "failed", None))
        self.assertEqual(len(doc["tries"]), 3)
        for i, (t, rec) in enumerate(zip(doc["tries"], recs)):
            self.assertEqual(list(t)[:5], ["started_at", "pid", "duration_ms", "status", "error"])
            self.assertEqual(t["pid"], int(rec["pid"]), "the spooler that ran it")
            self.assertEqual(t["status"], "retry")
            self.assertIn("plugin 'fx_record' returned Retry", t["error"])
            self.assertEqual(t["attempt"], i + 1)
            # fx_record stamps the call inside handle(): the try started just before.
            self.assertLessEqual(t["started_at"], float(rec["t"]) + 0.002)
            self.assertGreater(t["started_at"], float(rec["t"]) - 5)
            self.assertGreaterEqual(t["duration_ms"], 0)
            self.assertLess(t["duration_ms"], 5000)
        self.assertIn("gave up after 3 of max_attempts 3", doc["tries"][2]["error"])
        self.assertNotIn("gave up", doc["tries"][0]["error"])
        self.assertLess(doc["tries"][0]["started_at"], doc["tries"][1]["started_at"])
        self.assertEqual(doc["tries_not_kept"], 0)

        text = ctl("-c", d.config, "why", "q", task)
        self.assertEqual(text.returncode, 0, text.stderr)
        lines = text.stdout.decode().splitlines()
        rows = [l for l in lines if l.strip()[:2] in ("1 ", "2 ", "3 ")]
        self.assertEqual(len(rows), 3, lines)
        for row, rec in zip(rows, recs):
            self.assertIn(" %s " % rec["pid"], row)
            self.assertIn("retry", row)
        self.assertTrue(any(l.startswith("next due: never") for l in lines), lines)
        # spoolctl retry resets the attempt count but keeps the history, numbered on.
        self.assertEqual(ctl("--dir", q, "retry", task).returncode, 0)
        doc = self.json_of("--dir", q, "why", task, "--json")
        self.assertIn(doc["state"], ("pending", "in_flight", "delayed"))
        self.assertGreaterEqual(len(doc["tries"]), 3)
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_why_while_waiting_for_the_next_try(self):
        d = self.daemon(self.record_config(max_attempts=5, backoff="1h", backoff_max="2h"))
        q = self.path("spool", "q")
        task = enqueue(q, "status=retry")

        def rescheduled():
            try:
                args, _ = decode_task(read_bytes(os.path.join(q, task)))
            except FileNotFoundError:
                return False
            return args.get(b"spoold.attempt") == b"1"
        wait_until(rescheduled, 60, what="the task rescheduled once")
        doc = self.json_of("--dir", q, "why", task, "--json")
        self.assertEqual(doc["state"], "delayed")
        self.assertEqual(len(doc["tries"]), 1)
        counted = doc["tries"][0]["counted_at"]
        # backoff 1 h with up to 25 % jitter.
        self.assertGreaterEqual(doc["next_due"], counted + 3600 - 1)
        self.assertLessEqual(doc["next_due"], counted + 4500 + 1)
        self.assertEqual(d.stop(), 0)

    def test_why_records_a_crash_and_a_timeout(self):
        # fx_crash dies of SIGSEGV; the try its spooler owes is counted by the
        # next spooler, which knows neither its start nor its pid.
        cfg = ('[host]\nplugin_dir = "%s"\n\n[[queue]]\nname = "c"\ndir = "spool/c"\nplugin = "fx_crash"\n'
               'max_attempts = 2\nbackoff = "250ms"\n\n'
               '[[queue]]\nname = "t"\ndir = "spool/t"\nplugin = "fx_crash"\nmax_attempts = 1\ntimeout = "1s"\n'
               % TEST_PLUGIN_DIR)
        d = self.daemon(cfg)
        crash = enqueue(self.path("spool", "c"), "how=segv")
        hang = enqueue(self.path("spool", "t"), "how=hang")
        wait_until(lambda: os.path.exists(self.path("spool", "c", "failed", crash))
                   and os.path.exists(self.path("spool", "t", "failed", hang)), 90, what="both tasks in failed/")
        doc = self.json_of("-c", d.config, "why", "c", crash, "--json")
        self.assertEqual((doc["queue"], doc["state"]), ("c", "failed"))
        self.assertEqual([t["status"] for t in doc["tries"]], ["crash", "crash"])
        for t in doc["tries"]:
            self.assertEqual((t["started_at"], t["pid"], t["duration_ms"]), (None, None, None))
            self.assertIn("signal 11", t["error"])
            self.assertIsInstance(t["counted_at"], float)
        doc = self.json_of("-c", d.config, "why", "t", hang, "--json")
        self.assertEqual([t["status"] for t in doc["tries"]], ["timeout"])
        self.assertIn("timed out after 1s", doc["tries"][0]["error"])
        text = ctl("-c", d.config, "why", "t", hang).stdout.decode()
        self.assertIn("timeout", text)
        self.assertIn("? (counted", text)
        self.assertEqual(d.stop(), 0)

    def test_history_keeps_the_last_ten_tries(self):
        d = self.daemon(self.record_config(max_attempts=100, backoff="1h", backoff_max="2h"))
        q = self.path("spool", "q")
        args = {"status": "retry", "spoold.attempt": "12"}
        for n in range(1, 13):
            args["spoold.try.%d" % n] = "attempt=%d counted_ms=%d status=retry error=old try %d" % (
                n, 1700000000000 + n, n)
        name = write_raw(os.path.join(q), encode_task(args))

        def rescheduled():
            try:
                got, _ = decode_task(read_bytes(os.path.join(q, name)))
            except FileNotFoundError:
                return None
            return got if got.get(b"spoold.attempt") == b"13" else None
        got = wait_until(rescheduled, 60, what="the task rescheduled")
        kept = sorted(int(k.split(b".")[-1]) for k in got if k.startswith(b"spoold.try."))
        self.assertEqual(kept, list(range(4, 14)))
        doc = self.json_of("--dir", q, "why", name, "--json")
        self.assertEqual([t["number"] for t in doc["tries"]], list(range(4, 14)))
        self.assertEqual(doc["tries_not_kept"], 3)
        self.assertEqual(doc["tries"][-1]["attempt"], 13)
        self.assertEqual(doc["tries"][0]["error"], "old try 4")
        self.assertIn("3 earlier tries not kept", ctl("--dir", q, "why", name).stdout.decode())
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
