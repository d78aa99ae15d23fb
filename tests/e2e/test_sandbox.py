"""[queue.sandbox]: a queue's spoolers lose rights after their plugins'
init() and before the first task (issue 14). The fx_sandbox fixture tries
what a sandbox forbids (read or write outside its lists, allocate past its
memory, open past its file limit, exec a setuid-root program) and records
the kernel's answer; every test runs the same tries in a queue without a
sandbox, where they succeed, so that a sandbox that did nothing fails.
"""
import os
import shutil
import subprocess
import unittest

from support import (SPOOLD, TEST_PLUGIN_DIR, SpooldTestCase, decode_task, enqueue, proc_status, read_bytes, read_text,
                     spoolctl, task_files, wait_until)

SANITIZED = os.environ.get("SPOOLD_TEST_SANITIZED") == "1"
IS_ROOT = os.geteuid() == 0


def fault_injection_built():
    out = subprocess.run([SPOOLD, "--version"], capture_output=True, timeout=30).stdout.decode()
    return "fault injection" in out


def read_tries(path):
    """fx_sandbox's records by task id: {"try", "outcome", "euid", "pid", "output"?}."""
    out = {}
    for line in read_text(path).splitlines():
        fields = line.split(" ")
        out[fields[0]] = dict(f.split("=", 1) for f in fields[1:])
    return out


def proc_limit(pid, title):
    """The soft value of one line of /proc/PID/limits ("Max open files")."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith(title):
                return line[len(title):].split()[0]
    return None


def open_objects_of(pid):
    """The sockets, pipes and anonymous inodes a process holds above stdio
    ("socket:[123]", "anon_inode:[eventpoll]", "pipe:[456]"). Paths are left
    out: a spooler opens its queue directory itself, as the master does."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        if int(fd) > 2:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except FileNotFoundError:
                continue
            if not target.startswith("/"):
                out.add(target)
    return out


def toml_list(paths):
    return "[" + ", ".join('"%s"' % p for p in paths) + "]"


class SandboxTestCase(SpooldTestCase):

    def host(self):
        return '[host]\nplugin_dir = "%s"\n' % TEST_PLUGIN_DIR

    def queue(self, name, record, sandbox=None, **settings):
        lines = ["[[queue]]", 'name = "%s"' % name, 'dir = "spool/%s"' % name, 'plugin = "fx_sandbox"',
                 "max_attempts = 1"]
        for k, v in settings.items():
            lines.append("%s = %s" % (k, '"%s"' % v if isinstance(v, str) else v))
        lines += ["[queue.options]", 'record_file = "%s"' % record]
        if sandbox is not None:
            lines.append("[queue.sandbox]")
            lines += sandbox
        return "\n".join(lines) + "\n"

    def run_tries(self, daemon, queue, record, tries):
        """Enqueues each (name, args) of tries through the daemon's config
        (so with the queue's file_mode); returns {name: record}, {name: id}."""
        ids = {}
        for name, args in tries:
            ids[name] = spoolctl("-c", daemon.config, "enqueue", queue, *args, "--no-sync").stdout.decode().strip()
        wait_until(lambda: all(i in read_tries(record) for i in ids.values()), 60,
                   what="every try of queue %s recorded" % queue)
        records = read_tries(record)
        return {name: records[i] for name, i in ids.items()}, ids

    def failed_reason(self, queue, task_id):
        """spoold.error of a task once it is in failed/."""
        path = self.path("spool", queue, "failed", task_id)
        wait_until(lambda: os.path.exists(path), 30, what="task %s in failed/" % task_id)
        args, _ = decode_task(read_bytes(path))
        return args[b"spoold.error"].decode()


class PathAndLimitRulesTest(SandboxTestCase):
    """Landlock read/write rules, memory, open_files, core, no_new_privs."""

    def test_each_rule_stops_its_try_and_the_same_tries_work_without_a_sandbox(self):
        os.makedirs(self.path("allowed"))
        os.makedirs(self.path("out"))
        os.makedirs(self.path("elsewhere"))
        with open(self.path("allowed", "data.txt"), "w") as f:
            f.write("readable\n")
        with open(self.path("secret.txt"), "w") as f:
            f.write("outside every list\n")
        sandbox = ["read = %s" % toml_list([self.path("allowed")]), "write = %s" % toml_list([self.path("out")]),
                   "open_files = 64", "core = false"]
        if not SANITIZED:
            # AddressSanitizer reserves terabytes of address space at start,
            # so RLIMIT_AS cannot be tried in the sanitizer build.
            sandbox.append('memory = "256M"')
        cfg = (self.host() + self.queue("free", self.path("free.rec"))
               + self.queue("boxed", self.path("boxed.rec"), sandbox))
        d = self.daemon(cfg)
        def tries_of(queue):
            out = [("read_outside", ["try=read", "path=" + self.path("secret.txt")]),
                   ("read_inside", ["try=read", "path=" + self.path("allowed", "data.txt")]),
                   ("write_outside", ["try=write", "path=" + self.path("elsewhere", queue + ".txt")]),
                   ("write_inside", ["try=write", "path=" + self.path("out", queue + ".txt")]),
                   ("open_many", ["try=open_many", "count=200"])]
            if not SANITIZED:
                out.append(("alloc", ["try=alloc", "mb=512"]))
            return out
        tries = tries_of("free")
        free, _ = self.run_tries(d, "free", self.path("free.rec"), tries)
        boxed, boxed_ids = self.run_tries(d, "boxed", self.path("boxed.rec"), tries_of("boxed"))
        for name, _ in tries:
            self.assertEqual(free[name]["outcome"], "ok", "without a sandbox, %s works" % name)
        expected = {"read_outside": "EACCES", "read_inside": "ok", "write_outside": "EACCES", "write_inside": "ok",
                    "open_many": "EMFILE", "alloc": "ENOMEM"}
        for name, _ in tries:
            self.assertEqual(boxed[name]["outcome"], expected[name], "in the sandbox, %s" % name)
        # A refused try fails its task with the kernel's error, like any failed call.
        self.assertIn("read %s: EACCES" % self.path("secret.txt"), self.failed_reason("boxed", boxed_ids["read_outside"]))
        self.assertFalse(os.path.exists(self.path("elsewhere", "boxed.txt")))
        self.assertTrue(os.path.exists(self.path("out", "boxed.txt")))
        # The process itself: no_new_privs, no core dumps, the file limit.
        pid = int(boxed["read_inside"]["pid"])
        self.assertEqual(proc_status(pid, "NoNewPrivs"), "1")
        self.assertEqual(proc_limit(pid, "Max core file size"), "0")
        self.assertEqual(proc_limit(pid, "Max open files"), "64")
        if not SANITIZED:
            self.assertEqual(proc_limit(pid, "Max address space"), str(256 << 20))
        free_pid = int(free["read_inside"]["pid"])
        self.assertEqual(proc_status(free_pid, "NoNewPrivs"), "0")
        # None of the master's descriptors (its epoll, inotify, signal pipe,
        # the other spoolers' sockets) is open in a spooler.
        master_fds = open_objects_of(d.proc.pid)
        self.assertIn("anon_inode:[eventpoll]", master_fds)
        for spooler in (pid, free_pid):
            self.assertEqual(open_objects_of(spooler) & master_fds, set(), "the master's descriptors in a spooler")
        # The host lives: its spoolers were not replaced, and new tasks run.
        self.assertIn(pid, d.spooler_pids())
        after, _ = self.run_tries(d, "boxed", self.path("boxed.rec"),
                                  [("after", ["try=read", "path=" + self.path("allowed", "data.txt")])])
        self.assertEqual(after["after"]["outcome"], "ok")
        self.assertEqual(d.stop(), 0)

    def test_a_task_past_its_cpu_budget_is_killed_and_failed(self):
        cfg = self.host() + self.queue("q", self.path("q.rec"), ['cpu = "1s"'])
        d = self.daemon(cfg)
        # The budget is per task: four tasks of 0.6 s of CPU each (2.4 s in
        # all, in one spooler) are each within it.
        # "spoold ready" is logged before the first spooler is forked.
        spoolers = set(wait_until(lambda: d.spooler_pids(), 30, what="the spooler"))
        short, _ = self.run_tries(d, "q", self.path("q.rec"), [("s%d" % i, ["try=spin", "ms=600"]) for i in range(4)])
        self.assertEqual([short["s%d" % i]["outcome"] for i in range(4)], ["ok"] * 4)
        self.assertEqual(set(d.spooler_pids()), spoolers, "no spooler was killed")
        spin = enqueue(self.path("spool/q"), "try=spin", "seconds=30")
        reason = self.failed_reason("q", spin)
        self.assertIn("SIGXCPU", reason)
        quick, _ = self.run_tries(d, "q", self.path("q.rec"), [("quick", ["try=spin", "seconds=0"])])
        self.assertEqual(quick["quick"]["outcome"], "ok")
        self.assertEqual(d.stop(), 0)


@unittest.skipUnless(IS_ROOT, "switching the spoolers' user needs the tests to run as root")
class UserSwitchTest(SandboxTestCase):

    def setUp(self):
        super().setUp()
        # A queue run as nobody:nogroup: the web app's group owns the
        # directory (setgid, so tasks and failed/ keep the group).
        qdir = self.path("spool", "boxed")
        os.makedirs(qdir)
        shutil.chown(qdir, "root", "nogroup")
        os.chmod(qdir, 0o2770)
        with open(self.path("secret.txt"), "w") as f:
            f.write("only root reads this\n")
        os.chmod(self.path("secret.txt"), 0o600)
        os.makedirs(self.path("bin"))
        self.suid = self.path("bin", "fx_euid")
        shutil.copy(os.path.join(TEST_PLUGIN_DIR, "fx_euid"), self.suid)
        os.chown(self.suid, 0, 0)
        os.chmod(self.suid, 0o4755)

    def test_a_spooler_as_nobody_cannot_read_root_files_nor_gain_root_by_exec(self):
        cfg = (self.host() + self.queue("free", self.path("free.rec"))
               + self.queue("boxed", self.path("boxed.rec"), ['user = "nobody"', 'group = "nogroup"'],
                            dir_group="nogroup", file_mode="0660", dir_mode="0770"))
        d = self.daemon(cfg)
        d.wait_log("writable by group nogroup")
        tries = [("read", ["try=read", "path=" + self.path("secret.txt")]),
                 ("exec", ["try=exec", "path=" + self.suid, "as_uid=65534"])]
        free, _ = self.run_tries(d, "free", self.path("free.rec"), tries)
        self.assertEqual(free["read"]["outcome"], "ok")
        # The control: a process of nobody that execs the setuid helper
        # becomes root, so the helper and the filesystem allow it.
        self.assertEqual(free["exec"]["output"], "0")
        boxed, ids = self.run_tries(d, "boxed", self.path("boxed.rec"),
                                    [("read", tries[0][1]), ("exec", ["try=exec", "path=" + self.suid])])
        self.assertEqual(boxed["read"]["euid"], "65534")
        self.assertEqual(boxed["read"]["outcome"], "EACCES")
        self.assertEqual(boxed["exec"]["outcome"], "ok")
        self.assertEqual(boxed["exec"]["output"], "65534", "no_new_privs: the setuid bit gave nothing")
        self.assertIn("EACCES", self.failed_reason("boxed", ids["read"]))
        # The tasks the nobody spooler finished are gone, as for any queue.
        wait_until(lambda: task_files(self.path("spool", "boxed")) == [], 30, what="the boxed queue to drain")
        self.assertEqual(d.stop(), 0)


class RefusedConfigTest(SandboxTestCase):

    def check(self, cfg, name="spoold.toml"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(cfg)
        proc = subprocess.run([SPOOLD, "-c", path, "--check"], capture_output=True, timeout=120)
        start = subprocess.run([SPOOLD, "-c", path], capture_output=True, timeout=120)
        return proc, start

    def test_bad_values_name_the_queue_the_key_and_the_value(self):
        rec = self.path("r.rec")
        cfg = (self.host()
               + self.queue("u", rec, ['user = "no-such-user-x"'])
               + self.queue("g", rec, ['group = "no-such-group-x"'])
               + self.queue("p", rec, ['read = ["%s"]' % self.path("missing-dir")])
               + self.queue("m", rec, ['memory = "lots"'])
               + self.queue("c", rec, ['cpu = "500ms"'])
               + self.queue("k", rec, ['colour = "blue"']))
        check, start = self.check(cfg)
        for proc in (check, start):
            self.assertEqual(proc.returncode, 2, proc.stderr.decode())
            err = proc.stderr.decode()
            self.assertIn("queue 'u': sandbox.user = \"no-such-user-x\": no such user", err)
            self.assertIn("queue 'g': sandbox.group = \"no-such-group-x\": no such group", err)
            self.assertIn("queue 'p': sandbox.read path \"%s\"" % self.path("missing-dir"), err)
            self.assertIn("queue 'm': sandbox.memory = \"lots\" is not a size", err)
            self.assertIn("queue 'c': sandbox.cpu = \"500ms\"", err)
            self.assertIn("unknown key 'colour' in the sandbox table of queue 'k'", err)
        self.assertFalse(os.path.exists(self.path("spool", "u")), "a refused start creates nothing")

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"), "needs root and setpriv to run spoold as another user")
    def test_a_user_switch_is_refused_on_a_host_that_is_not_root(self):
        cfg = self.host() + self.queue("q", self.path("r.rec"), ['user = "nobody"'])
        path = self.path("spoold.toml")
        with open(path, "w") as f:
            f.write(cfg)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SPOOLD, "-c", path,
                               "--check"], capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 2, proc.stderr.decode())
        self.assertIn("queue 'q': sandbox.user = \"nobody\" needs the host to run as root (it runs as uid 65534)",
                      proc.stderr.decode())

    @unittest.skipUnless(fault_injection_built(), "needs the fault injection build to hide Landlock")
    def test_a_kernel_without_landlock_is_refused_with_require_and_logged_without(self):
        env = dict(os.environ, SPOOLD_FAULT_INJECT="landlock:ENOSYS:1")
        os.makedirs(self.path("allowed"))
        with open(self.path("secret.txt"), "w") as f:
            f.write("outside every list\n")
        strict = self.host() + self.queue("q", self.path("r.rec"), ['read = ["%s"]' % self.path("allowed"),
                                                                     "require = true"])
        path = self.path("strict.toml")
        with open(path, "w") as f:
            f.write(strict)
        for args in (["--check"], []):
            proc = subprocess.run([SPOOLD, "-c", path, *args], capture_output=True, timeout=120, env=env)
            self.assertEqual(proc.returncode, 2, proc.stderr.decode())
            self.assertIn("queue 'q': sandbox.require = true, but this kernel has no Landlock", proc.stderr.decode())
        lax = self.host() + self.queue("q", self.path("r.rec"), ['read = ["%s"]' % self.path("allowed")])
        d = self.daemon(lax, start=False)
        proc = subprocess.run([SPOOLD, "-c", d.config, "--check"], capture_output=True, timeout=120, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        self.assertIn("the sandbox's read and write rules are NOT enforced", proc.stderr.decode())
        os.environ["SPOOLD_FAULT_INJECT"] = "landlock:ENOSYS:1"
        try:
            d.start()
        finally:
            del os.environ["SPOOLD_FAULT_INJECT"]
        self.assertEqual(d.log().count("rules are NOT enforced"), 1, "logged once for the queue")
        tries, _ = self.run_tries(d, "q", self.path("r.rec"), [("read", ["try=read", "path=" + self.path("secret.txt")])])
        self.assertEqual(tries["read"]["outcome"], "ok", "not enforced, as the log says")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
