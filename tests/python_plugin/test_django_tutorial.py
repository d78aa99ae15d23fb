"""The classic spooler tutorial in Python, without uWSGI: a Django 3.2
project (tests/python_plugin/django_app, Debian's python3-django) served by
gunicorn (Debian's python3-gunicorn, /usr/bin/python3 -m gunicorn on a Unix
socket in the test's temp dir) enqueues tasks through client/python/uwsgi.py;
spoold's `python` plugin runs the seed tutorial's worker.py on tasks_a and
tasks_b, and an @spool(pass_arguments=True) function that writes a row with
the Django ORM (SQLite in the temp dir) on a third queue with
django_settings set. The same project would run unchanged under uWSGI.

Run through ctest (it needs SPOOLD_BIN and SPOOLD_PLUGIN_DIR with
libpython.so).
"""
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from support import UnixHTTPConnection as _UnixHTTPConnection, PLUGIN_DIR, SOURCE_DIR, SpooldTestCase, complete_lines, proc_status, read_text, task_files, wait_until  # noqa: E402

DEBIAN_PYTHON = "/usr/bin/python3"
APP_DIR = os.path.join(HERE, "django_app")
CLIENT_DIR = os.path.join(SOURCE_DIR or os.path.join(HERE, "..", ".."), "client", "python")
PYTHON_PLUGIN = os.path.join(PLUGIN_DIR, "libpython.so") if PLUGIN_DIR else ""


def _missing():
    if not PYTHON_PLUGIN or not os.path.exists(PYTHON_PLUGIN):
        return "spoold's python plugin is not built (%s)" % (PYTHON_PLUGIN or "SPOOLD_PLUGIN_DIR is not set")
    probe = ("import importlib.util, sys\n"
             "missing = [m for m in ('django', 'gunicorn', 'uwsgidecorators') if importlib.util.find_spec(m) is None]\n"
             "sys.exit(', '.join(missing) or 0)")
    p = subprocess.run([DEBIAN_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return "Debian's python lacks %s (scripts/install-deps installs them)" % p.stderr.strip()
    return ""


MISSING = _missing()
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:(.*)$")



class Gunicorn:
    """gunicorn serving the tutorial project on a Unix socket, in its own process group."""

    def __init__(self, root, env):
        self.socket_path = os.path.join(root, "gunicorn.sock")
        self.log_path = os.path.join(root, "gunicorn.log")
        self.env = env
        self.proc = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [DEBIAN_PYTHON, "-m", "gunicorn", "--bind", "unix:" + self.socket_path, "--workers", "2",
             "--chdir", APP_DIR, "tutorial.wsgi:application"],
            stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True, env=self.env)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError("gunicorn exited with %d:\n%s" % (self.proc.returncode, self.log()))
            try:
                return self.get("/ping") == (200, b"pong")
            except OSError:
                return False
        wait_until(answers, 60, interval=0.05, what="gunicorn to answer /ping")
        return self

    def get(self, path):
        conn = _UnixHTTPConnection(self.socket_path, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def log(self):
        return read_text(self.log_path)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # workers a dying arbiter left behind
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._log:
            self._log.close()
            self._log = None


def toml_string(value):
    return json.dumps(value)


@unittest.skipUnless(not MISSING, MISSING)
class DjangoTutorialTest(SpooldTestCase):
    def setUp(self):
        super().setUp()
        self.gunicorns = []
        self.dirs = {name: self.path("spool", name) for name in ("tasks_a", "tasks_b", "rows")}
        self.log_file = self.path("tasks.log")
        # In a folder of its own: a sandboxed queue may write there (SQLite
        # writes its journal beside the database) and nowhere else.
        os.makedirs(self.path("data"))
        self.db = self.path("data", "db.sqlite3")
        # What the web workers and manage.py see: client/python on the path,
        # SPOOLD_SPOOL_DIR for @spool tasks, the tutorial's own settings.
        self.app_env = {"TUTORIAL_DB": self.db, "TASKS_A_DIR": self.dirs["tasks_a"],
                        "TASKS_B_DIR": self.dirs["tasks_b"], "TUTORIAL_LOG": self.log_file}
        self.producer_env = dict(os.environ, **self.app_env, PYTHONPATH=CLIENT_DIR, PYTHONDONTWRITEBYTECODE="1",
                                 DJANGO_SETTINGS_MODULE="tutorial.settings", SPOOLD_SPOOL_DIR=self.dirs["rows"])
        self.manage("migrate", "--no-input")

    def tearDown(self):
        failed = False
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is not None:
            failed = any(t is self for t, _ in result.failures + result.errors)
        for g in self.gunicorns:
            g.close()
            if failed:
                print("---- gunicorn log (%s) ----\n%s" % (g.log_path, g.log()[-6000:]))
        super().tearDown()

    def manage(self, *argv):
        p = subprocess.run([DEBIAN_PYTHON, os.path.join(APP_DIR, "manage.py"), *argv], capture_output=True,
                           text=True, env=self.producer_env, cwd=APP_DIR, timeout=120)
        if p.returncode != 0:
            raise AssertionError("manage.py %s failed (%d):\n%s" % (" ".join(argv), p.returncode, p.stderr))
        return p.stdout

    def gunicorn(self):
        g = Gunicorn(self.root, self.producer_env)
        self.gunicorns.append(g)
        return g.start()

    def config(self, sandbox_rows=False):
        env = ", ".join("%s = %s" % (k, toml_string(v)) for k, v in sorted(self.app_env.items()))
        lines = ["[host]", "plugin_dir = %s" % toml_string(PLUGIN_DIR), 'log_level = "info"', "",
                 "[defaults]", 'backoff = "100ms"', "max_attempts = 3"]
        for name in ("tasks_a", "tasks_b"):
            lines += ["", "[[queue]]", "name = %s" % toml_string(name), "dir = %s" % toml_string(self.dirs[name]),
                      'plugin = "python"', "processes = 2", "[queue.options]", 'module = "worker"',
                      "path = [%s]" % toml_string(APP_DIR), "env = { %s }" % env]
        # client/python is on this queue's path as it is in the web app's:
        # the plugin's own uwsgi module must still be the one imported.
        lines += ["", "[[queue]]", 'name = "rows"', "dir = %s" % toml_string(self.dirs["rows"]),
                  'plugin = "python"', "processes = 2", "[queue.options]", 'module = "tasksapp.tasks"',
                  'django_settings = "tutorial.settings"',
                  "path = [%s, %s]" % (toml_string(APP_DIR), toml_string(CLIENT_DIR)), "env = { %s }" % env]
        if sandbox_rows:
            # README "Security": what a Django queue needs. Python and Django
            # are under /usr (always readable); the project and the paths of
            # the queue's options are read; the database's folder written.
            lines += ["[queue.sandbox]", "read = [%s, %s]" % (toml_string(APP_DIR), toml_string(CLIENT_DIR)),
                      "write = [%s]" % toml_string(self.path("data")), "core = false"]
            if os.environ.get("SPOOLD_TEST_SANITIZED") != "1":
                # AddressSanitizer reserves terabytes of address space: no
                # RLIMIT_AS in the sanitizer build.
                lines.append('memory = "1G"')
        return "\n".join(lines) + "\n"

    def log_messages(self):
        out = []
        for line in complete_lines(self.log_file):
            m = LOG_LINE.match(line)
            self.assertIsNotNone(m, "a tasks.log line in another format: %r" % line)
            out.append(m.group(1))
        return out

    def rows(self):
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return sorted(conn.execute("SELECT name, value, source, written_by_pid FROM tasksapp_row"))
        finally:
            conn.close()

    def assert_queues_drained(self, daemon):
        for name, d in self.dirs.items():
            wait_until(lambda: task_files(d) == [] and not any(task_files(os.path.join(d, s))
                                                               for s in os.listdir(d) if s.isdigit()),
                       20, what="queue %s to be empty" % name)
            self.assertFalse(os.path.isdir(os.path.join(d, "failed")) and os.listdir(os.path.join(d, "failed")),
                             "tasks failed in %s" % name)
        self.assert_no_errors_logged(daemon)

    def test_views_under_gunicorn_feed_worker_dispatcher_in_spoold(self):
        daemon = self.daemon(self.config())
        web = self.gunicorn()
        expected = []
        for i in range(5):
            status, path_a = web.get("/write_task_a?message=hello-a-%d" % i)
            self.assertEqual(status, 200, path_a)
            self.assertTrue(path_a.startswith(os.fsencode(self.dirs["tasks_a"]) + b"/uwsgi_spoolfile_on_"), path_a)
            status, path_b = web.get("/write_task_b?message=hello-b-%d" % i)
            self.assertEqual(status, 200, path_b)
            self.assertTrue(path_b.startswith(os.fsencode(self.dirs["tasks_b"]) + b"/uwsgi_spoolfile_on_"), path_b)
            expected += ["hello-a-%d" % i, "b:hello-b-%d" % i]
        wait_until(lambda: len(self.log_messages()) >= len(expected), 60,
                   what="worker_dispatcher to log %d lines" % len(expected))
        self.assertEqual(sorted(self.log_messages()), sorted(expected))
        self.assert_queues_drained(daemon)
        self.assertNotIn("Traceback", web.log())
        self.assertEqual(daemon.stop(), 0)

    def test_orm_task_enqueued_by_a_view_and_by_manage_py_writes_rows(self):
        daemon = self.daemon(self.config())
        web = self.gunicorn()
        status, path = web.get("/add_row?name=from-view&value=7")
        self.assertEqual(status, 200, path)
        self.assertTrue(path.startswith(os.fsencode(self.dirs["rows"]) + b"/uwsgi_spoolfile_on_"), path)
        printed = self.manage("enqueue_row", "from-manage", "11").strip()
        self.assertTrue(printed.startswith(self.dirs["rows"] + "/uwsgi_spoolfile_on_"), printed)

        got = wait_until(lambda: len(self.rows()) >= 2 and self.rows(), 60, what="the two rows")
        self.assertEqual([r[:3] for r in got], [("from-manage", 11, "manage.py"), ("from-view", 7, "view")])
        spoolers = set(daemon.spooler_pids())
        for row in got:
            self.assertIn(row[3], spoolers, "the row was written by one of spoold's spooler processes")
        self.assert_queues_drained(daemon)
        self.assertNotIn("Traceback", web.log())
        self.assertEqual(daemon.stop(), 0)

    def test_orm_task_in_a_sandboxed_queue_writes_rows_and_nothing_else(self):
        daemon = self.daemon(self.config(sandbox_rows=True))
        printed = self.manage("enqueue_row", "boxed", "3").strip()
        got = wait_until(lambda: len(self.rows()) >= 1 and self.rows(), 60, what="the row")
        self.assertEqual([r[:3] for r in got], [("boxed", 3, "manage.py")])
        self.assertIn(got[0][3], daemon.spooler_pids())
        self.assertEqual(proc_status(got[0][3], "NoNewPrivs"), "1", "the row was written inside the sandbox")
        self.assertTrue(printed.startswith(self.dirs["rows"]))
        self.assert_queues_drained(daemon)
        self.assertEqual(daemon.stop(), 0)


if __name__ == "__main__":
    unittest.main()
