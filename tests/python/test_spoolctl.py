"""spoolctl end to end: the real binary on real queue directories (SPEC §8).

Run from this folder with SPOOLCTL_BIN set: python3 -m unittest -v test_spoolctl
Failed tasks are made by hand in the spool format, as the host writes them.
"""

import fcntl
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

SPOOLCTL = os.environ.get("SPOOLCTL_BIN")
PREFIX = "uwsgi_spoolfile_on_"


def encode(pairs, body=b""):
    block = b"".join(len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v for k, v in pairs)
    return bytes((17,)) + len(block).to_bytes(2, "little") + b"\x00" + block + body


def parse(data):
    size = int.from_bytes(data[1:3], "little")
    pairs, pos = [], 4
    while pos < 4 + size:
        klen = int.from_bytes(data[pos:pos + 2], "little")
        key = data[pos + 2:pos + 2 + klen]
        pos += 2 + klen
        vlen = int.from_bytes(data[pos:pos + 2], "little")
        pairs.append((key, data[pos + 2:pos + 2 + vlen]))
        pos += 2 + vlen
    return pairs, data[4 + size:]


def write(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def read(path):
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(SPOOLCTL, "SPOOLCTL_BIN is not set")
class SpoolctlTest(unittest.TestCase):
    def setUp(self):
        self.old_umask = os.umask(0o022)
        self.tmp = tempfile.mkdtemp(prefix="spoolctl-test-")
        os.mkdir(os.path.join(self.tmp, "plugins"))
        self.config = os.path.join(self.tmp, "spoold.toml")
        with open(self.config, "w") as f:
            f.write('[host]\nplugin_dir = "plugins"\n\n'
                    '[[queue]]\nname = "mail"\ndir = "spool/mail"\nplugin = "log_writer"\n\n'
                    '[[queue]]\nname = "reports"\ndir = "spool/reports"\nplugin = ["a", "b"]\n'
                    'file_mode = "0640"\ndir_mode = "0750"\n')
        self.mail = os.path.join(self.tmp, "spool", "mail")

    def tearDown(self):
        os.umask(self.old_umask)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_ctl(self, *args, stdin=None):
        return subprocess.run([SPOOLCTL, *args], capture_output=True, input=stdin, timeout=60)

    def ok(self, *args, stdin=None):
        out = self.run_ctl(*args, stdin=stdin)
        self.assertEqual(out.returncode, 0, f"spoolctl {' '.join(args)}: {out.stderr.decode()}")
        return out.stdout.decode()

    def usage_error(self, *args, expect=None):
        out = self.run_ctl(*args)
        self.assertEqual(out.returncode, 2, f"spoolctl {' '.join(args)}: {out.stdout} {out.stderr}")
        if expect:
            self.assertIn(expect, out.stderr.decode())
        return out.stderr.decode()

    def enqueue(self, *args):
        task_id = self.ok("-c", self.config, "enqueue", "mail", *args).strip()
        self.assertTrue(task_id.startswith(PREFIX), task_id)
        return task_id

    def failed_task(self, name, pairs, error="boom: connection refused\nsecond line", attempt=5, body=b"payload"):
        pairs = list(pairs) + [(b"spoold.attempt", str(attempt).encode()), (b"spoold.error", error.encode()),
                               (b"spoold.failed_at", b"1700000000")]
        write(os.path.join(self.mail, "failed", PREFIX + name), encode(pairs, body))
        return PREFIX + name

    def unparsable_failed(self, name, reason="the header announces 500 bytes of args but the file has 3"):
        task = PREFIX + name
        write(os.path.join(self.mail, "failed", task), b"\x11\xf4\x01\x00abc")
        write(os.path.join(self.mail, "failed", task + ".error"), reason.encode() + b"\n")
        return task

    # enqueue

    def test_enqueue_every_option(self):
        before = time.time_ns()
        task_id = self.enqueue("a=1", "b=two=2", "empty=", "--body", "hello", "--priority", "5", "--no-sync",
                               "--delay", "2s")
        after = time.time_ns()
        path = os.path.join(self.mail, "5", task_id)
        st = os.lstat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(self.mail, "5")).st_mode), 0o700)
        self.assertGreaterEqual(st.st_mtime_ns, before + 2 * 10**9)
        self.assertLessEqual(st.st_mtime_ns, after + 2 * 10**9)
        pairs, body = parse(read(path))
        self.assertEqual(pairs, [(b"a", b"1"), (b"b", b"two=2"), (b"empty", b""),
                                 (b"at", str(st.st_mtime_ns // 10**9).encode()), (b"priority", b"5")])
        self.assertEqual(body, b"hello")
        self.assertEqual([n for n in os.listdir(os.path.join(self.mail, "5")) if n.startswith(".")], [])

    def test_enqueue_at_fractional_seconds_is_exact(self):
        task_id = self.enqueue("k=v", "--at", "4102444800.123456789")
        path = os.path.join(self.mail, task_id)
        self.assertEqual(os.lstat(path).st_mtime_ns, 4102444800123456789)
        self.assertEqual(parse(read(path))[0], [(b"k", b"v"), (b"at", b"4102444800")])
        self.assertIn("delayed", self.ok("-c", self.config, "ls", "mail"))

    def test_enqueue_body_file_and_stdin(self):
        body = bytes(range(256)) * 300
        body_file = os.path.join(self.tmp, "body.bin")
        write(body_file, body)
        task_id = self.enqueue("--body-file", body_file)
        self.assertEqual(parse(read(os.path.join(self.mail, task_id)))[1], body)
        task_id = self.ok("--dir", self.mail, "enqueue", "--body-file", "-", stdin=b"from stdin").strip()
        self.assertEqual(parse(read(os.path.join(self.mail, task_id)))[1], b"from stdin")
        missing = self.run_ctl("--dir", self.mail, "enqueue", "--body-file", "/nonexistent/body")
        self.assertEqual(missing.returncode, 1)
        self.assertIn(b"/nonexistent/body", missing.stderr)

    def test_enqueue_uses_the_queue_modes_and_creates_the_dir(self):
        task_id = self.ok("-c", self.config, "enqueue", "reports", "x=1", "--priority", "0").strip()
        queue = os.path.join(self.tmp, "spool", "reports")
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(queue, "0", task_id)).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(queue, "0")).st_mode), 0o750)

    def test_enqueue_with_dir_and_double_dash(self):
        queue = os.path.join(self.tmp, "adhoc")
        task_id = self.ok("--dir", queue, "enqueue", "--create-dir", "--", "-x=1").strip()
        self.assertEqual(stat.S_IMODE(os.lstat(queue).st_mode), 0o700)
        self.assertEqual(parse(read(os.path.join(queue, task_id)))[0], [(b"-x", b"1")])

    def test_enqueue_64k_limit(self):
        ok_value = "v" * (65535 - 4 - 1)
        self.enqueue("k=" + ok_value)
        err = self.usage_error("-c", self.config, "enqueue", "mail", "k=" + ok_value + "v")
        self.assertIn("--body", err)
        self.assertIn("65536", err)

    def test_enqueue_into_an_impossible_dir_is_a_runtime_failure(self):
        out = self.run_ctl("--dir", "/etc/passwd/x", "enqueue", "a=1")
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"/etc/passwd", out.stderr)

    # usage and config errors

    def test_usage_errors_exit_2(self):
        cfg = ("-c", self.config)
        self.usage_error(expect="usage:")
        self.usage_error("frobnicate", "--dir", self.mail, expect="frobnicate")
        self.usage_error(*cfg, "enqueue", "mail", "novalue", expect="novalue")
        self.usage_error(*cfg, "enqueue", "mail", "=v", expect="empty key")
        self.usage_error("--dir", self.mail, "enqueue", "mail", expect="with --dir there is no QUEUE")
        self.usage_error(*cfg, "enqueue", "mail", "--priority", "abc", expect="abc")
        self.usage_error(*cfg, "enqueue", "mail", "--priority", "1234567890", expect="1234567890")
        self.usage_error(*cfg, "enqueue", "mail", "--delay", "5x", expect="5x")
        self.usage_error(*cfg, "enqueue", "mail", "--at", "soon", expect="soon")
        self.usage_error(*cfg, "enqueue", "mail", "--at", "-5", expect="-5")
        self.usage_error(*cfg, "enqueue", "mail", "--at", "1", "--delay", "1s", expect="not both")
        self.usage_error(*cfg, "enqueue", "mail", "--body", "a", "--body-file", "b", expect="not both")
        self.usage_error(*cfg, "enqueue", "mail", "at=1", "--at", "2", expect="twice")
        self.usage_error(*cfg, "enqueue", "mail", "--body", "a", "--body", "b", expect="twice")
        self.usage_error(*cfg, "--dir", self.mail, "ls", expect="not both")
        self.usage_error("ls", expect="-c FILE")
        self.usage_error(*cfg, "ls", expect="QUEUE")
        self.usage_error(*cfg, "ls", "mail", "extra", expect="extra")
        self.usage_error(*cfg, "ls", "mail", "--all", expect="--all")
        self.usage_error(*cfg, "show", "mail", expect="ID")
        self.usage_error(*cfg, "show", "mail", "../etc/passwd", expect="not a task id")
        self.usage_error(*cfg, "show", "mail", PREFIX + "a/b", expect="not a task id")
        self.usage_error(*cfg, "retry", "mail", expect="--all")
        self.usage_error(*cfg, "retry", "mail", PREFIX + "x", "--all", expect="--all")
        self.usage_error(*cfg, "purge", "mail", expect="--failed")
        self.usage_error(*cfg, "purge", "mail", "--failed", "--all", expect="--failed")
        self.usage_error("--bogus", expect="--bogus")
        self.usage_error("-c", expect="needs a value")

    def test_help_goes_to_stdout(self):
        out = self.run_ctl("--help")
        self.assertEqual(out.returncode, 0)
        self.assertIn(b"usage: spoolctl", out.stdout)
        self.assertEqual(out.stderr, b"")

    def test_bad_config_and_unknown_queue_exit_2(self):
        bad = os.path.join(self.tmp, "bad.toml")
        with open(bad, "w") as f:
            f.write('[host]\nplugin_dir = "plugins"\nbogus = 1\n\n[[queue]]\nname = "q"\ndir = "q"\nplugin = "p"\n')
        err = self.usage_error("-c", bad, "ls", "q")
        self.assertIn("bad.toml", err)
        self.assertIn("bogus", err)
        err = self.usage_error("-c", os.path.join(self.tmp, "missing.toml"), "ls", "q")
        self.assertIn("missing.toml", err)
        err = self.usage_error("-c", self.config, "ls", "nosuch")
        self.assertIn("nosuch", err)
        self.assertIn("mail", err)
        self.assertIn("reports", err)
        # Plugins are not checked: the plugin folder is empty and this works.
        self.ok("-c", self.config, "ls", "mail")

    # ls and show

    def make_queue(self):
        now = time.time()
        pending = self.enqueue("kind=pending")
        old = PREFIX + "old_1_1_1_1_1"
        write(os.path.join(self.mail, old), encode([(b"kind", b"old")]), mtime=now - 3600)
        prio = PREFIX + "prio_1_1_1_1_1"
        write(os.path.join(self.mail, "3", prio), encode([(b"priority", b"3")]))
        delayed_mtime = PREFIX + "later_1_1_1_1_1"
        write(os.path.join(self.mail, delayed_mtime), encode([]), mtime=now + 600)
        delayed_at = PREFIX + "atkey_1_1_1_1_1"
        write(os.path.join(self.mail, delayed_at), encode([(b"at", str(int(now) + 900).encode())]))
        failed = self.failed_task("failed_1_1_1_1_1", [(b"priority", b"2"), (b"k", b"v\xff")])
        broken = self.unparsable_failed("broken_1_1_1_1_1")
        # Not tasks: other names, a symlink, a directory, a temporary file.
        write(os.path.join(self.mail, "README"), b"not a task")
        write(os.path.join(self.mail, ".spoold-tmp-" + PREFIX + "x"), b"")
        os.symlink("/etc/passwd", os.path.join(self.mail, PREFIX + "link_1"))
        os.mkdir(os.path.join(self.mail, PREFIX + "dir_1"))
        return dict(pending=pending, old=old, prio=prio, delayed_mtime=delayed_mtime, delayed_at=delayed_at,
                    failed=failed, broken=broken)

    def test_ls(self):
        t = self.make_queue()
        out = self.run_ctl("-c", self.config, "ls", "mail")
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout.decode()
        lines = {}
        for line in text.splitlines():
            m = re.search(r"(" + PREFIX + r"\S+)", line)
            if m:
                lines[m.group(1)] = line
        self.assertEqual(set(lines), {t[k] for k in t})
        for key, state in [("pending", "pending"), ("old", "pending"), ("prio", "pending"),
                           ("delayed_mtime", "delayed"), ("delayed_at", "delayed"), ("failed", "failed"),
                           ("broken", "failed")]:
            self.assertTrue(lines[t[key]].startswith(state), lines[t[key]])
        self.assertRegex(lines[t["prio"]], r"^pending\s+3\s+0\s")
        self.assertRegex(lines[t["failed"]], r"^failed\s+2\s+5\s")
        self.assertIn("boom: connection refused...", lines[t["failed"]])
        self.assertNotIn("second line", text)
        self.assertIn("the header announces 500 bytes", lines[t["broken"]])
        self.assertRegex(lines[t["delayed_at"]], r"in (14m5\ds|15m00s)")
        self.assertIn("3 pending, 2 delayed, 2 failed", text)
        # Pending in the order a host takes them: priority dirs first, then the oldest.
        order = [m for m in re.findall(PREFIX + r"\S+", text)]
        self.assertLess(order.index(t["prio"]), order.index(t["old"]))
        self.assertLess(order.index(t["old"]), order.index(t["pending"]))
        self.assertIn(b"link_1", out.stderr)  # the symlink is reported as skipped, not listed
        self.assertTrue(os.path.islink(os.path.join(self.mail, PREFIX + "link_1")))

    def test_ls_missing_queue_dir(self):
        out = self.run_ctl("-c", self.config, "ls", "mail")
        self.assertEqual(out.returncode, 0)
        self.assertIn(b"0 pending, 0 delayed, 0 failed", out.stdout)
        self.assertIn(b"does not exist yet", out.stderr)

    def test_show(self):
        t = self.make_queue()
        text = self.ok("-c", self.config, "show", "mail", t["failed"])
        self.assertRegex(text, r"state:\s+failed")
        self.assertIn(os.path.join(self.mail, "failed", t["failed"]), text)
        self.assertIn("k = v\\xff", text)
        self.assertRegex(text, r"attempt:\s+5")
        self.assertIn("boom: connection refused", text)
        self.assertIn("second line", text)
        self.assertRegex(text, r"failed_at:.*unix 1700000000")
        self.assertRegex(text, r"body:\s+7 bytes")
        self.assertIn('"payload"', text)

        text = self.ok("-c", self.config, "show", "mail", t["prio"])
        self.assertRegex(text, r"state:\s+pending")
        self.assertRegex(text, r"priority:\s+3")
        self.assertIn(os.path.join(self.mail, "3", t["prio"]), text)

        text = self.ok("-c", self.config, "show", "mail", t["delayed_at"])
        self.assertRegex(text, r"state:\s+delayed")

        text = self.ok("-c", self.config, "show", "mail", t["broken"])
        self.assertIn("unparsable", text)
        self.assertIn("the header announces 500 bytes", text)

        out = self.run_ctl("-c", self.config, "show", "mail", PREFIX + "nosuch")
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"nosuch", out.stderr)
        out = self.run_ctl("-c", self.config, "show", "mail", PREFIX + "link_1")
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"symlink", out.stderr)

    def test_show_escapes_control_bytes(self):
        task_id = self.enqueue("k=\x1b[31mred", "--body", "line1\nline2")
        text = self.ok("-c", self.config, "show", "mail", task_id)
        self.assertNotIn("\x1b", text)
        self.assertIn("k = \\x1b[31mred", text)
        self.assertIn('"line1\\nline2"', text)

    # retry

    def test_retry_one_resets_the_bookkeeping(self):
        task = self.failed_task("r_1_1_1_1_1", [(b"priority", b"2"), (b"k", b"v")], body=b"the body")
        out = self.ok("-c", self.config, "retry", "mail", task)
        self.assertIn("retried 1 task", out)
        self.assertFalse(os.path.exists(os.path.join(self.mail, "failed", task)))
        path = os.path.join(self.mail, "2", task)
        pairs, body = parse(read(path))
        self.assertEqual(pairs, [(b"priority", b"2"), (b"k", b"v")])
        self.assertEqual(body, b"the body")
        st = os.lstat(path)
        self.assertLess(abs(st.st_mtime - time.time()), 30)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertIn("pending", self.ok("-c", self.config, "ls", "mail"))

        out = self.run_ctl("-c", self.config, "retry", "mail", task)
        self.assertEqual(out.returncode, 1)
        self.assertIn(task.encode(), out.stderr)

    def test_retry_unparsable_moves_it_back_unchanged(self):
        task = self.unparsable_failed("u_1_1_1_1_1")
        original = read(os.path.join(self.mail, "failed", task))
        self.ok("-c", self.config, "retry", "mail", task)
        self.assertEqual(read(os.path.join(self.mail, task)), original)
        self.assertEqual(os.listdir(os.path.join(self.mail, "failed")), [])

    def test_retry_all_skips_locked(self):
        a = self.failed_task("a_1_1_1_1_1", [(b"n", b"1")])
        b = self.failed_task("b_1_1_1_1_1", [(b"n", b"2")])
        c = self.unparsable_failed("c_1_1_1_1_1")
        locked = self.failed_task("d_1_1_1_1_1", [(b"n", b"3")])
        write(os.path.join(self.mail, "failed", "notes.txt"), b"left alone")
        fd = os.open(os.path.join(self.mail, "failed", locked), os.O_RDWR)
        try:
            # A POSIX record lock held here conflicts with spoolctl's OFD lock,
            # as a uWSGI spooler's would.
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out = self.run_ctl("-c", self.config, "retry", "mail", "--all")
        finally:
            os.close(fd)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"retried 3 tasks", out.stdout)
        self.assertIn(b"1 locked", out.stdout)
        self.assertIn(locked.encode(), out.stderr)
        for task in (a, b, c):
            self.assertTrue(os.path.isfile(os.path.join(self.mail, task)), task)
        self.assertEqual(sorted(os.listdir(os.path.join(self.mail, "failed"))), sorted([locked, "notes.txt"]))

    def test_retry_single_locked_task_fails(self):
        task = self.failed_task("l_1_1_1_1_1", [])
        fd = os.open(os.path.join(self.mail, "failed", task), os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out = self.run_ctl("-c", self.config, "retry", "mail", task)
        finally:
            os.close(fd)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"locked", out.stderr)
        self.assertTrue(os.path.isfile(os.path.join(self.mail, "failed", task)))

    # purge

    def test_purge_failed_keeps_pending(self):
        t = self.make_queue()
        out = self.ok("-c", self.config, "purge", "mail", "--failed")
        self.assertIn("purged 2 failed tasks", out)
        self.assertEqual(os.listdir(os.path.join(self.mail, "failed")), [])
        self.assertTrue(os.path.isfile(os.path.join(self.mail, t["pending"])))
        self.assertIn("3 pending, 2 delayed, 0 failed", self.ok("-c", self.config, "ls", "mail"))

    def test_purge_all_skips_locked_and_non_tasks(self):
        t = self.make_queue()
        locked_path = os.path.join(self.mail, t["old"])
        fd = os.open(locked_path, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out = self.run_ctl("-c", self.config, "purge", "mail", "--all", "--yes")
        finally:
            os.close(fd)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout.decode()
        self.assertIn("purged 4 pending or delayed tasks and 2 failed tasks", text)
        self.assertIn("skipped 1 locked", text)
        self.assertTrue(os.path.isfile(locked_path))
        self.assertTrue(os.path.isfile(os.path.join(self.mail, "README")))
        self.assertTrue(os.path.islink(os.path.join(self.mail, PREFIX + "link_1")))
        self.assertTrue(os.path.isfile("/etc/passwd"))
        self.assertTrue(os.path.isdir(os.path.join(self.mail, PREFIX + "dir_1")))
        self.assertEqual(os.listdir(os.path.join(self.mail, "3")), [])
        self.assertIn("1 pending, 0 delayed, 0 failed", self.ok("-c", self.config, "ls", "mail"))

    def test_purge_missing_queue_is_fine(self):
        self.assertIn("nothing to purge", self.ok("-c", self.config, "purge", "mail", "--all", "--yes"))

    def test_enqueue_dir_refuses_a_missing_directory_unless_create_dir(self):
        typo = os.path.join(self.tmp, "spool", "mial")
        err = self.usage_error("--dir", typo, "enqueue", "a=1")
        self.assertIn(typo, err)
        self.assertIn("--create-dir", err)
        self.assertFalse(os.path.exists(typo))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "spool")))
        self.usage_error("-c", self.config, "enqueue", "mail", "--create-dir", expect="--create-dir")
        self.assertIn("--create-dir", self.ok("--help"))
        old = os.umask(0o077)
        try:
            task_id = self.ok("--dir", typo, "enqueue", "--create-dir", "a=1").strip()
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.lstat(typo).st_mode), 0o700)
        self.assertEqual(parse(read(os.path.join(typo, task_id)))[0], [(b"a", b"1")])
        self.assertTrue(self.ok("--dir", typo, "enqueue", "a=2").strip().startswith(PREFIX))


if __name__ == "__main__":
    unittest.main()
