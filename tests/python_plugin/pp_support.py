"""Fixtures for the python plugin's tests: a spoold config whose queues run
the `python` plugin on the apps in apps/, on top of the e2e and compat
fixtures (real spoold, real uWSGI, deadlines everywhere)."""
import json
import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
sys.path.insert(0, os.path.join(HERE, "..", "compat"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from compat_support import (UWSGI_OK, UWSGI_WHY, CompatTestCase, UwsgiProcess, _UnixHTTPConnection,  # noqa: E402,F401
                            requires_uwsgi, spoold_toml)
from support import (PLUGIN_DIR, SPOOLCTL, SPOOLD, complete_lines, decode_task, encode_task, spoolctl,  # noqa: E402,F401
                     task_files, wait_until, write_raw)

PYTHON_PLUGIN = os.path.join(PLUGIN_DIR, "libpython.so") if PLUGIN_DIR else ""
requires_python_plugin = unittest.skipUnless(
    PYTHON_PLUGIN and os.path.exists(PYTHON_PLUGIN),
    "the python plugin was not built (Debian: apt-get install libpython3-dev, then reconfigure)")


def read_json_lines(path):
    return [json.loads(line) for line in complete_lines(path)]


def failed_files(queue_dir):
    return task_files(os.path.join(queue_dir, "failed"))


def wait_failed(daemon, queue_dir, task_id, timeout=20):
    """Waits until task_id is in failed/ and gone from the pending files (the
    host writes the failed/ copy, then removes the pending one)."""
    def done():
        if daemon.proc.poll() is not None:
            raise AssertionError("spoold exited with %s:\n%s" % (daemon.proc.returncode, daemon.log()[-4000:]))
        return task_id in failed_files(queue_dir) and task_id not in task_files(queue_dir)
    wait_until(done, timeout, what="%s in failed/" % task_id)


def show(config, queue, task_id):
    """`spoolctl show` as a dict of its "name: value" lines (first line of each)."""
    text = spoolctl("-c", config, "show", queue, task_id).stdout.decode()
    out = {}
    for line in text.splitlines():
        if line[:1] not in (" ", "") and ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    out["text"] = text
    return out


class PythonPluginTestCase(CompatTestCase):
    """A temp dir with a copy of apps/ in it and helpers to run python queues."""

    def setUp(self):
        super().setUp()
        shutil.copytree(APPS, self.path("apps"))
        self.record = self.path("record.jsonl")

    def py_queue(self, name="py", options=None, **settings):
        """A queue entry for spoold_toml(): plugin python on spool/<name>."""
        q = {"name": name, "dir": "spool/" + name, "plugin": "python"}
        q.update(settings)
        q["options"] = dict(options or {})
        return q

    def py_spoold(self, queues, start=True, **host):
        return self.spoold(queues, plugin_dir=PLUGIN_DIR, start=start, **host)

    def records(self):
        return read_json_lines(self.record)

    def wait_records(self, predicate, what, timeout=20, daemon=None):
        def check():
            if daemon is not None and daemon.proc.poll() is not None:
                raise AssertionError("spoold exited with %s:\n%s" % (daemon.proc.returncode, daemon.log()[-4000:]))
            return predicate(self.records())
        return wait_until(check, timeout, interval=0.02, what=what)

    def check_config(self, config_path):
        """spoold --check: (exit status, output)."""
        p = subprocess.run([SPOOLD, "-c", config_path, "--check"], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL, cwd=self.root)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")
