"""Running spoold in production (issue 12): systemd's notifications and
watchdog, JSON log lines field by field, the per-queue max_rss and nice, and
what `cmake --install` puts in place for a unit.

The notification tests play systemd: a datagram socket in the test's temp
dir is NOTIFY_SOCKET, and every datagram is checked for its sender's pid
(SCM_CREDENTIALS), so a spooler speaking for the service would fail them.
Every wait is for an event (a datagram, a log line, a record) under a
deadline."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import unittest

from support import (BUILD_DIR, PLUGIN_DIR, SPOOLD, TEST_PLUGIN_DIR, Daemon, SpooldTestCase, enqueue, read_bytes,
                     read_records, task_files, wait_until)


def queue_toml(name, plugin, options=None, **settings):
    lines = ["[[queue]]", 'name = "%s"' % name, 'dir = "spool/%s"' % name, 'plugin = "%s"' % plugin]
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


class NotifiedDaemon(Daemon):
    """A spoold started the way systemd starts a Type=notify unit: with
    NOTIFY_SOCKET (and WATCHDOG_USEC) in its environment. WATCHDOG_PID must
    be spoold's own pid, which only exists once it runs: a shell sets it to
    its own pid, then execs spoold in its place."""

    def __init__(self, root, config_text, env):
        super().__init__(root, config_text)
        self.env = env

    def start(self, wait_ready=True, timeout=30):
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ, **self.env)
        self.proc = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', SPOOLD, "-c", self.config],
                                     stdout=self._log_file, stderr=self._log_file, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.root, env=env)
        if wait_ready:
            wait_until(lambda: "spoold ready" in self.log() or self.proc.poll() is not None, timeout,
                       what="spoold to be ready")
            if self.proc.poll() is not None:
                raise AssertionError("spoold exited with %d at start:\n%s" % (self.proc.returncode, self.log()))
        return self


class NotifySocket:
    """systemd's end of NOTIFY_SOCKET: datagrams with their sender's pid."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.received = []  # (monotonic time, sender pid, {key: value})

    def receive(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        msg = (time.monotonic(), pid, fields)
        self.received.append(msg)
        return msg

    def wait_for(self, key, value=None, timeout=30):
        """Reads datagrams until one sets key (to value, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.receive(deadline)
            if msg is None:
                raise AssertionError("no %s=%s within %ss; received %r" % (key, value or "*", timeout,
                                                                         [m[2] for m in self.received]))
            if key in msg[2] and (value is None or msg[2][key] == value):
                return msg

    def close(self):
        self.sock.close()


class SystemdNotifyTest(SpooldTestCase):

    def notify_daemon(self, cfg, **env):
        sock = NotifySocket(self.path("notify.sock"))
        self.addCleanup(sock.close)
        d = NotifiedDaemon(self.root, cfg, dict(env, NOTIFY_SOCKET=sock.path))
        self.daemons.append(d)
        d.start()
        return d, sock

    def test_ready_status_reload_stopping_and_watchdog(self):
        # A queue whose init() takes 1.5 s: READY=1 must wait for it.
        cfg = host_toml(log_level="debug")
        cfg += queue_toml("fast", "fx_record", {"record_file": self.path("r.txt")}, processes=2)
        cfg += queue_toml("slow", "fx_slow_init", {"init_ms": "1500"})
        d, sock = self.notify_daemon(cfg, WATCHDOG_USEC="400000")
        pid = d.proc.pid

        _, sender, ready = sock.wait_for("READY", "1")
        self.assertEqual(sender, pid)
        log = d.log()
        self.assertIn("(queue slow) ready after", log, "READY=1 came before the slow queue's spooler was ready")
        self.assertEqual(log.count("(queue fast) ready after"), 2, log)
        status = [m[2]["STATUS"] for m in sock.received if "STATUS" in m[2]]
        self.assertTrue(status, "no STATUS= before READY=1")
        self.assertIn("2 queue(s), 3/3 spoolers ready, 0 pending", status[-1])

        # The watchdog: pings at half of WATCHDOG_USEC (200 ms), from the master.
        first, sender, _ = sock.wait_for("WATCHDOG", "1", timeout=10)
        self.assertEqual(sender, pid)
        second, sender, _ = sock.wait_for("WATCHDOG", "1", timeout=10)
        self.assertEqual(sender, pid)
        print("watchdog pings %.0f ms apart (WATCHDOG_USEC=400000)" % ((second - first) * 1000))
        self.assertIn("systemd watchdog: WATCHDOG_USEC=400000, pinging every 200ms", d.log())

        # The STATUS= totals follow the queues.
        t = enqueue(self.path("spool/fast"), "sleep_ms=0")
        wait_until(lambda: len(read_records(self.path("r.txt"))) == 1, 30, what="the task handled")

        # A reload: RELOADING=1, then READY=1 once the new spoolers are ready.
        d.signal(signal.SIGHUP)
        _, sender, reloading = sock.wait_for("RELOADING", "1")
        self.assertEqual(sender, pid)
        self.assertRegex(reloading.get("MONOTONIC_USEC", ""), r"^\d+$")
        sock.wait_for("READY", "1", timeout=60)
        self.assertIn("reloaded:", d.log())

        # A reload refused by a broken file: READY=1 again at once.
        with open(d.config) as f:
            text = f.read()
        with open(d.config, "w") as f:
            f.write("bogus_key = 1\n" + text)
        d.signal(signal.SIGHUP)
        sock.wait_for("RELOADING", "1")
        _, _, refused = sock.wait_for("READY", "1")
        self.assertIn("reload refused", refused.get("STATUS", ""), [m[2] for m in sock.received])

        d.signal(signal.SIGTERM)
        _, sender, _ = sock.wait_for("STOPPING", "1")
        self.assertEqual(sender, pid)
        self.assertEqual(d.wait(), 0)
        senders = {m[1] for m in sock.received}
        self.assertEqual(senders, {pid}, "a process other than the master spoke to NOTIFY_SOCKET")
        self.assertNotIn(t, task_files(self.path("spool/fast")))

    def test_no_watchdog_for_another_pid_and_spoolers_do_not_inherit_the_socket(self):
        # WATCHDOG_PID names another process (the shell's would, after a
        # fork): not ours to ping. The spoolers lose NOTIFY_SOCKET.
        cfg = host_toml(PLUGIN_DIR)
        cfg += queue_toml("q", "exec")
        cfg += "[queue.options]\ncommand = '''echo \"$NOTIFY_SOCKET|$WATCHDOG_USEC\" > %s'''\n" % self.path("env.txt")
        sock = NotifySocket(self.path("notify.sock"))
        self.addCleanup(sock.close)
        d = self.daemon(cfg, start=False)
        env = dict(os.environ, NOTIFY_SOCKET=sock.path, WATCHDOG_USEC="400000", WATCHDOG_PID="1")
        d._log_file = open(d.log_path, "ab")
        d.proc = subprocess.Popen([SPOOLD, "-c", d.config], stdout=d._log_file, stderr=d._log_file,
                                  stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root, env=env)
        sock.wait_for("READY", "1")
        enqueue(self.path("spool/q"))
        wait_until(lambda: os.path.exists(self.path("env.txt")) and read_bytes(self.path("env.txt")).endswith(b"\n"),
                   30, what="the exec command's output")
        self.assertEqual(read_bytes(self.path("env.txt")), b"|\n")
        self.assertNotIn("systemd watchdog:", d.log())
        self.assertEqual(d.stop(), 0)
        self.assertFalse(any("WATCHDOG" in m[2] for m in sock.received), sock.received)

    def test_without_notify_socket_nothing_is_sent(self):
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": self.path("r.txt")})
        d = self.daemon(cfg)
        self.assertNotIn("systemd watchdog:", d.log())
        self.assertNotIn("sd_notify", d.log())
        self.assertEqual(d.stop(), 0)


class JsonLogTest(SpooldTestCase):

    def parse_lines(self, daemon):
        raw = read_bytes(daemon.log_path)
        # Strict: a line that is not UTF-8 is not JSON a shipper can read.
        text = raw.decode("utf-8")
        return [json.loads(line) for line in text.split("\n") if line]

    def test_task_lines_field_by_field(self):
        cfg = host_toml(log_format="json")
        cfg += queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}, max_attempts=3, backoff="100ms",
                          backoff_max="100ms")
        # exec's error is the command's stderr: quotes, a newline, a control byte, a byte not UTF-8.
        cfg += "[[queue]]\nname = \"x\"\ndir = \"spool/x\"\nplugin = \"exec\"\nmax_attempts = 1\n"
        cfg += "[queue.options]\ncommand = '''printf 'say \"hi\"\\nline2\\001\\377' >&2; exit 3'''\n"
        # One plugin folder with a fixture and a shipped plugin.
        plugin_dir = self.path("plugins")
        os.mkdir(plugin_dir, 0o755)
        shutil.copy(os.path.join(TEST_PLUGIN_DIR, "libfx_record.so"), plugin_dir)
        shutil.copy(os.path.join(PLUGIN_DIR, "libexec.so"), plugin_dir)
        cfg = cfg.replace('plugin_dir = "%s"' % TEST_PLUGIN_DIR, 'plugin_dir = "%s"' % plugin_dir)
        d = self.daemon(cfg)
        ok = enqueue(self.path("spool/q"), "status=ok")
        retry = enqueue(self.path("spool/q"), "status=retry")
        fail = enqueue(self.path("spool/q"), "status=fail")
        bad = enqueue(self.path("spool/x"))
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", retry)) and
                   os.path.exists(self.path("spool/q/failed", fail)) and
                   os.path.exists(self.path("spool/x/failed", bad)), 60, what="the tasks to end")
        d.signal(signal.SIGUSR1)
        d.wait_log('"message":"status"', count=2)
        self.assertEqual(d.stop(), 0)
        lines = self.parse_lines(d)
        for l in lines:
            self.assertTrue({"time", "level", "pid", "role", "message"} <= set(l), l)
            self.assertRegex(l["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
            self.assertIsInstance(l["pid"], int)

        def task_lines(task):
            return [l for l in lines if l.get("task") == task]

        (ok_line,) = task_lines(ok)
        self.assertEqual((ok_line["level"], ok_line["role"], ok_line["queue"], ok_line["plugin"], ok_line["status"],
                          ok_line["attempt"], ok_line["message"]),
                         ("info", "spooler", "q", "fx_record", "ok", 0, "task ok"))
        self.assertIsInstance(ok_line["duration_ms"], float)
        self.assertGreaterEqual(ok_line["duration_ms"], 0)
        self.assertNotIn("error", ok_line)

        retries = task_lines(retry)
        self.assertEqual([(l["status"], l["attempt"]) for l in retries], [("retry", 0), ("retry", 1), ("retry", 2)])
        for l in retries[:2]:
            self.assertEqual(l["next_try_in"], "100ms")
            self.assertEqual(l["error"], "plugin 'fx_record' returned Retry")
            self.assertEqual(l["level"], "info")
        self.assertEqual((retries[2]["level"], retries[2]["message"]), ("warning", "moved to failed/"))

        (fail_line,) = task_lines(fail)
        self.assertEqual((fail_line["status"], fail_line["attempt"], fail_line["level"], fail_line["message"],
                          fail_line["plugin"]), ("fail", 0, "warning", "moved to failed/", "fx_record"))
        self.assertIn("returned Fail", fail_line["error"])

        (bad_line,) = task_lines(bad)
        self.assertEqual((bad_line["queue"], bad_line["plugin"], bad_line["status"]), ("x", "exec", "retry"))
        self.assertIn('say "hi"\nline2\x01\u00ff', bad_line["error"])

        # The SIGUSR1 status line: the same fields, counts as numbers.
        status = {l["queue"]: l for l in lines if l["message"] == "status"}
        self.assertEqual(set(status), {"q", "x"})
        self.assertEqual((status["q"]["pending"], status["q"]["failed"], status["q"]["spoolers"], status["q"]["ready"],
                          status["q"]["pending_complete"]), (0, 2, 1, 1, True))
        self.assertEqual(status["x"]["failed"], 1)
        self.assertEqual(status["q"]["role"], "master")

        # Every line of a spooler carries its queue, even one that names none.
        started = [l for l in lines if l["role"] == "spooler"]
        self.assertTrue(started and all("queue" in l for l in started))
        self.assertEqual([l for l in lines if l["level"] in ("error", "critical")], [])

    def test_text_stays_the_default_and_unchanged(self):
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}, max_attempts=2,
                                       backoff="100ms", backoff_max="100ms")
        d = self.daemon(cfg)
        ok = enqueue(self.path("spool/q"), "status=ok")
        retry = enqueue(self.path("spool/q"), "status=retry")
        wait_until(lambda: os.path.exists(self.path("spool/q/failed", retry)), 30, what="the retried task failed")
        d.signal(signal.SIGUSR1)
        d.wait_log("status queue=q")
        self.assertEqual(d.stop(), 0)
        log = d.log()
        self.assertRegex(log, r"\[spooler \d+\] task %s queue=q plugin=fx_record status=ok attempt=0 "
                              r"duration=\d+\.\dms\n" % re.escape(ok))
        self.assertRegex(log, r"task %s queue=q plugin=fx_record status=retry attempt=0 duration=\d+\.\dms "
                              r"next_try_in=100ms: plugin 'fx_record' returned Retry\n" % re.escape(retry))
        self.assertRegex(log, r"task %s queue=q plugin=fx_record status=retry attempt=1 duration=\d+\.\dms: "
                              r"moved to failed/: " % re.escape(retry))
        self.assertRegex(log, r"status queue=q pending=\d+\+? delayed=\d+ ignored=0 failed=1 in_flight=\d+ spoolers=1 "
                              r"ready=1 restarts=0\n")
        self.assertNotIn('{"time"', log)


def spooler_pids_of(daemon):
    return set(daemon.spooler_pids())


def nice_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])  # field 19: nice


class SpoolerLimitsTest(SpooldTestCase):

    def test_max_rss_recycles_the_spooler_after_the_task(self):
        rec = self.path("r.txt")
        cfg = host_toml() + queue_toml("q", "fx_record", {"record_file": rec}, max_rss="200M")
        d = self.daemon(cfg)
        wait_until(lambda: len(d.spooler_pids()) == 1, 30, what="the spooler")
        small = enqueue(self.path("spool/q"), "alloc_mb=1")
        wait_until(lambda: len(read_records(rec)) == 1, 30, what="the small task")
        self.assertNotIn("past max_rss", d.log())
        big = enqueue(self.path("spool/q"), "alloc_mb=300")
        d.wait_log("past max_rss 200.0MiB: recycling")
        after = enqueue(self.path("spool/q"), "alloc_mb=0")
        wait_until(lambda: len(read_records(rec)) == 3, 30, what="the task after the recycling")
        records = read_records(rec)
        self.assertEqual([r["id"] for r in records], [small, big, after])
        self.assertEqual(records[0]["pid"], records[1]["pid"])
        self.assertNotEqual(records[1]["pid"], records[2]["pid"], "the spooler past max_rss was not replaced")
        line = [l for l in d.log().splitlines() if "past max_rss" in l][0]
        rss = float(re.search(r"resident set ([\d.]+)MiB after task %s" % re.escape(big), line).group(1))
        print("spooler RSS after allocating 300 MiB: %.1f MiB (max_rss 200M)" % rss)
        self.assertGreater(rss, 300)
        self.assertIn("spooler %s (queue q) exited with code 0" % records[1]["pid"], d.log())
        self.assertEqual(task_files(self.path("spool/q")), [])
        self.assertEqual(task_files(self.path("spool/q/failed")), [])
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_nice_is_set_in_each_spooler(self):
        cfg = host_toml()
        cfg += queue_toml("low", "fx_record", {"record_file": self.path("a.txt")}, processes=2, nice=7)
        cfg += queue_toml("same", "fx_record", {"record_file": self.path("b.txt")})
        d = self.daemon(cfg)
        wait_until(lambda: len(d.spooler_pids()) == 3, 30, what="3 spoolers")
        enqueue(self.path("spool/low"))
        enqueue(self.path("spool/same"))
        wait_until(lambda: read_records(self.path("a.txt")) and read_records(self.path("b.txt")), 30,
                   what="a task in each queue")
        low_pid = int(read_records(self.path("a.txt"))[0]["pid"])
        same_pid = int(read_records(self.path("b.txt"))[0]["pid"])
        self.assertEqual(nice_of(low_pid), 7)
        self.assertEqual(nice_of(same_pid), nice_of(d.proc.pid), "a queue without nice keeps the master's")
        self.assertEqual(sorted(nice_of(p) for p in d.spooler_pids()), sorted([7, 7, nice_of(d.proc.pid)]))
        self.assertEqual(d.stop(), 0)

    def test_bad_values_are_config_errors_with_their_place(self):
        cfg = host_toml() + "[defaults]\nmax_rss = \"12X\"\n"
        cfg += queue_toml("a", "fx_record", {"record_file": "r"}, nice=20)
        cfg += queue_toml("b", "fx_record", {"record_file": "r"}, max_rss=-1, nice="5")
        cfg += queue_toml("c", "fx_record", {"record_file": "r"}, max_rss="99999999999T")
        cfg += queue_toml("d", "fx_record", {"record_file": "r"}, max_rss="1.5G", nice=-21)
        path = self.path("bad.toml")
        with open(path, "w") as f:
            f.write(cfg)
        for args in (["--check"], []):
            proc = subprocess.run([SPOOLD, "-c", path, *args], capture_output=True, timeout=30)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            err = proc.stderr.decode()
            for expected in (r'bad\.toml:4:11: defaults\.max_rss = "12X" is not a size',
                             r"bad\.toml:\d+:8: queue 'a'\.nice is 20, expected -20 \(most favoured\) to 19",
                             r"bad\.toml:\d+:11: queue 'b'\.max_rss = -1 is not a size",
                             r"bad\.toml:\d+:8: queue 'b'\.nice must be an integer from -20 to 19, not a string",
                             r"bad\.toml:\d+:11: queue 'c'\.max_rss = \"99999999999T\" is not a size",
                             r"bad\.toml:\d+:11: queue 'd'\.max_rss = \"1\.5G\" is not a size",
                             r"bad\.toml:\d+:8: queue 'd'\.nice is -21"):
                self.assertRegex(err, expected)

    def test_sizes_that_are_accepted(self):
        for value in ('"0"', "0", '"512M"', '"64k"', '"1G"', '"2T"', "1048576"):
            path = self.path("ok.toml")
            with open(path, "w") as f:
                f.write(host_toml() + "[defaults]\nmax_rss = %s\nnice = 19\n" % value +
                        queue_toml("q", "fx_record", {"record_file": "r"}))
            proc = subprocess.run([SPOOLD, "-c", path, "--check"], capture_output=True, timeout=60)
            self.assertEqual(proc.returncode, 0, (value, proc.stderr))


class InstallTest(SpooldTestCase):

    def test_install_puts_the_unit_and_an_example_config_in_place(self):
        prefix = self.path("prefix")
        # The configs folder alone: the rest of the tree may not be built.
        proc = subprocess.run(["cmake", "--install", os.path.join(BUILD_DIR, "configs"), "--prefix", prefix],
                              capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        unit_path = os.path.join(prefix, "lib/systemd/system/spoold.service")
        with open(unit_path) as f:
            unit = f.read()
        self.assertIn("\nType=notify\n", unit)
        self.assertIn("\nExecStart=%s/bin/spoold -c /etc/spoold/spoold.toml\n" % prefix, unit)
        self.assertIn("\nExecStartPre=%s/bin/spoold -c /etc/spoold/spoold.toml --check\n" % prefix, unit)
        self.assertIn("\nWatchdogSec=", unit)
        self.assertNotIn("/usr/local", "\n".join(l for l in unit.splitlines() if not l.startswith("#")))
        example = os.path.join(prefix, "share/spoold/example.toml")
        with open(example) as f:
            text = f.read()
        self.assertIn('plugin_dir      = "%s/lib/spoold/plugins"' % prefix, text)
        self.assertNotIn("/usr/local/lib", text)
        # The installed example is valid with the installed plugins once its
        # folders exist: here in the temp dir instead of /srv and /var/log.
        proc = subprocess.run(["cmake", "--install", os.path.join(BUILD_DIR, "plugins"), "--prefix", prefix],
                              capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        os.makedirs(self.path("log"))
        local = self.path("example.toml")
        with open(local, "w") as f:
            f.write(text.replace("/srv/spool", self.path("spool")).replace("/var/log/spoold", self.path("log")))
        proc = subprocess.run([SPOOLD, "-c", local, "--check"], capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)


if __name__ == "__main__":
    unittest.main()
