"""Fixtures for the uWSGI compatibility tests: a real uWSGI (Debian's
uwsgi-core + uwsgi-plugin-python3) as a producer (a WSGI app calling
uwsgi.spool() on a --spooler-external directory) and as a consumer (a
--spooler with the Python handler uwsgi_handler.py), next to the real spoold
of tests/e2e/support.py.

Every uWSGI runs in its own process group and is stopped (SIGTERM, then
SIGKILL to the whole group) in tearDown; its log is printed when the test
failed. Every wait has a deadline.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from support import (UnixHTTPConnection as _UnixHTTPConnection, complete_lines, PLUGIN_DIR, SOURCE_DIR, SPOOLCTL, SPOOLD, TEST_PLUGIN_DIR, SpooldTestCase,  # noqa: E402,F401
                     decode_task, encode_task, fnv1a_64, read_fx_records, read_text, task_files, wait_until, write_raw)

UWSGI = shutil.which("uwsgi") or ""
PRODUCER_APP = os.path.join(HERE, "uwsgi_producer_app.py")
HANDLER = os.path.join(HERE, "uwsgi_handler.py")
CLIENT_LIB = os.environ.get("SPOOLD_CLIENT_LIB", "")
SPOOLCLIENT_DIR = os.path.join(SOURCE_DIR or os.path.join(HERE, "..", ".."), "client", "python")


def _probe_uwsgi():
    """(True, "") when uwsgi runs Python 3 code, else (False, why)."""
    if not UWSGI:
        return False, "uwsgi is not installed (Debian: apt-get install uwsgi-core uwsgi-plugin-python3)"
    tmp = tempfile.mkdtemp(prefix="spoold-compat-probe-")
    try:
        script = os.path.join(tmp, "probe.py")
        with open(script, "w") as f:
            f.write("import sys, uwsgi\nprint('SPOOLD-COMPAT-PY', sys.version_info[0])\n")
        try:
            p = subprocess.run([UWSGI, "--need-plugin", "python3", "--pyrun", script], capture_output=True,
                               timeout=30, stdin=subprocess.DEVNULL, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, "uwsgi could not run a Python 3 script: %s" % e
        out = (p.stdout + p.stderr).decode(errors="replace")
        if "SPOOLD-COMPAT-PY 3" not in out:
            last = out.strip().splitlines()[-1] if out.strip() else "no output"
            return False, "uwsgi has no working python3 plugin (Debian: apt-get install uwsgi-plugin-python3): " + last
        return True, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


UWSGI_OK, UWSGI_WHY = _probe_uwsgi()
requires_uwsgi = unittest.skipUnless(UWSGI_OK, UWSGI_WHY or "uwsgi with python3")


# ---------------------------------------------------------------- records

def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_handler_records(path):
    """The lines uwsgi_handler.py wrote: dicts with id, pid, t, cwd, args (list of (bytes, bytes)), body."""
    out = []
    for line in complete_lines(path):
        raw = json.loads(line)
        rec = {"pid": raw["pid"], "t": raw["t"], "cwd": raw["cwd"], "args": [], "body": None, "id": None,
               "str_keys": []}
        for key, value in raw["pairs"]:
            value = bytes.fromhex(value)
            if key.startswith("str:"):
                name = key[4:]
                rec["str_keys"].append(name)
                if name == "body":
                    rec["body"] = value
                elif name == "spooler_task_name":
                    rec["id"] = value.decode()
                else:
                    rec["args"].append((name.encode(), value))
            else:
                rec["args"].append((bytes.fromhex(key), value))
        out.append(rec)
    return out


# ---------------------------------------------------------------- spoold config

def spoold_toml(plugin_dir, queues, **host):
    """queues: list of dicts with name, dir, plugin, optional options {} and settings."""
    lines = ["[host]", 'plugin_dir = "%s"' % plugin_dir]
    lines += ['%s = "%s"' % kv for kv in host.items()]
    for q in queues:
        q = dict(q)
        options = q.pop("options", {})
        lines.append("[[queue]]")
        for k, v in q.items():
            lines.append("%s = %s" % (k, json.dumps(v)))
        if options:
            lines.append("[queue.options]")
            lines += ["%s = %s" % (k, json.dumps(v)) for k, v in options.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- uWSGI processes

class UwsgiProcess:
    """One uWSGI instance (master and its children) in its own process group."""

    def __init__(self, root, name, argv, env=None, spool_dirs=()):
        self.root = root
        self.spool_dirs = list(spool_dirs)
        self.name = name
        self.argv = [UWSGI, *argv]
        self.log_path = os.path.join(root, name + ".log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self._log_file = None

    def start(self):
        self.launch()
        self.wait_ready()
        return self

    def wait_ready(self):
        pass

    def launch(self):
        """Starts the process without waiting for it to be ready."""
        for d in self.spool_dirs:
            os.makedirs(os.path.dirname(d), exist_ok=True)  # uWSGI creates a spool dir, not its parents
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root, env=self.env)
        return self

    def log(self):
        return read_text(self.log_path)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.log()[-4000:]))

    def wait_log(self, text, count=1, timeout=20):
        def seen():
            self.check_alive()
            return self.log().count(text) >= count
        wait_until(seen, timeout, interval=0.02, what="%r x%d in the %s log" % (text, count, self.name))

    def _killpg(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout=10):
        """SIGTERM (uWSGI runs with --die-on-term), then SIGKILL to the group; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._killpg()  # children a dying master left behind, or a master that hung
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode

    def close(self):
        self.stop(timeout=5)
        if self._log_file:
            self._log_file.close()
            self._log_file = None


class UwsgiProducer(UwsgiProcess):
    """A uWSGI app that spools on request: POST / {"args": [[key hex, value hex], ...]} -> uwsgi.spool(dict).

    uWSGI runs with --spooler-external for each directory, so it writes task
    files there but never consumes them. The HTTP socket is a Unix socket in
    the test's private temp dir: nothing listens on the network, and there is
    no free-port race."""

    def __init__(self, root, spool_dirs, name="uwsgi-producer"):
        self.socket_path = os.path.join(root, name + ".sock")
        if len(self.socket_path.encode()) > 107:
            raise AssertionError("the uWSGI socket path %s is longer than a Unix socket allows (107 bytes): "
                                 "configure with a shorter -DSPOOLD_TEST_TMPDIR=" % self.socket_path)
        argv = ["--need-plugin", "python3", "--master", "--die-on-term", "--processes", "1",
                "--http-socket", self.socket_path, "--wsgi-file", PRODUCER_APP, "--chdir", root]
        for d in spool_dirs:
            argv += ["--spooler-external", d]
        super().__init__(root, name, argv, spool_dirs=spool_dirs)

    def _request(self, method, path, body=None):
        conn = _UnixHTTPConnection(self.socket_path, timeout=20)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_ready(self):
        def ready():
            self.check_alive()
            try:
                return self._request("GET", "/ping") == (200, b"pong")
            except OSError:
                return False
        wait_until(ready, 30, interval=0.05, what="the uWSGI producer app to answer")

    def spool(self, args):
        """args: a dict or list of pairs of bytes. Returns the path uwsgi.spool() returned."""
        pairs = list(args.items()) if hasattr(args, "items") else list(args)
        payload = json.dumps({"args": [[k.hex(), v.hex()] for k, v in pairs]}).encode()
        status, out = self._request("POST", "/spool", payload)
        if status != 200:
            raise AssertionError("uwsgi.spool() failed (%d): %s" % (status, out.decode(errors="replace")))
        return out.decode()



class UwsgiSpooler(UwsgiProcess):
    """A uWSGI spooler consuming spool_dir with uwsgi_handler.py, which records every task to record_path."""

    def __init__(self, root, spool_dir, record_path, ordered=False, processes=1, quiet=False, name="uwsgi-spooler"):
        self.processes = processes
        self.record_path = record_path
        argv = ["--need-plugin", "python3", "--master", "--die-on-term", "--spooler", spool_dir,
                "--spooler-frequency", "1", "--spooler-processes", str(processes), "--import", HANDLER]
        if ordered:
            argv.append("--spooler-ordered")
        if quiet:
            argv.append("--spooler-quiet")
        super().__init__(root, name, argv, env={"SPOOLD_COMPAT_RECORD": record_path}, spool_dirs=[spool_dir])

    def wait_ready(self):
        self.wait_log("spawned the uWSGI spooler on dir", count=self.processes, timeout=30)

    def records(self):
        return read_handler_records(self.record_path)


class CompatTestCase(SpooldTestCase):
    """SpooldTestCase plus uWSGI processes, stopped (and their logs shown on failure) in tearDown."""

    def setUp(self):
        super().setUp()
        self.uwsgis = []

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if getattr(outcome, "success", True) is False:
            return True
        result = getattr(outcome, "result", None)
        return result is not None and any(t is self for t, _ in result.failures + result.errors)

    def tearDown(self):
        failed = self._failed()
        for u in self.uwsgis:
            u.close()
            if failed:
                print("---- %s log (%s) ----\n%s" % (u.name, u.log_path, u.log()[-6000:]))
        super().tearDown()

    def uwsgi_producer(self, spool_dirs, **kw):
        u = UwsgiProducer(self.root, spool_dirs, **kw)
        self.uwsgis.append(u)
        return u.start()

    def uwsgi_spooler(self, spool_dir, record_path, start=True, **kw):
        u = UwsgiSpooler(self.root, spool_dir, record_path, **kw)
        self.uwsgis.append(u)
        return u.start() if start else u

    def spoold(self, queues, plugin_dir=None, start=True, **host):
        return self.daemon(spoold_toml(plugin_dir or TEST_PLUGIN_DIR, queues, **host), start=start)

    def tree(self, top):
        """Every path under top (relative), with file sizes: a snapshot to compare."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                out[os.path.relpath(p, top)] = None if os.path.isdir(p) else st.st_size
        return out


def import_spoolclient():
    if SPOOLCLIENT_DIR not in sys.path:
        sys.path.insert(0, SPOOLCLIENT_DIR)
    import spoolclient  # noqa: E402
    return spoolclient
