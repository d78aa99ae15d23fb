"""Differential test: the same 60 task files (binary args, empty values,
repeated keys, large bodies, `at`, priority directories, and files written
by Debian's uwsgidecorators in a real uWSGI) are handled by a real uWSGI
spooler and by spoold's python plugin running one handler module,
apps/recorder.py. The dicts the handler receives are equal (compared by
repr(), key order included), and so are the outcomes: the same files are
deleted and the same files are left."""
import os
import shutil
import struct
import time

from pp_support import (APPS, PLUGIN_DIR, PythonPluginTestCase, UwsgiProcess, _UnixHTTPConnection,
                        decode_task, read_json_lines, requires_python_plugin, requires_uwsgi, spoold_toml, wait_until)

PREFIX = "uwsgi_spoolfile_on_difftest_"
KEPT_RETS = {b"-1", b"0", b"5", b"garbage", b"1"}  # Retry, Ignore, and what both read as Retry


def encode_pairs(pairs, body=b""):
    """The uWSGI format from a list of (key, value) bytes pairs (repeats allowed)."""
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    return bytes([17]) + struct.pack("<H", len(block)) + b"\0" + block + body


def raw_tasks(now):
    """50 tasks: (subdir, name, pairs, body, mtime or None)."""
    every_byte = bytes(range(256))
    tasks = []

    def add(pairs, body=b"", sub="", mtime=None):
        tasks.append((sub, "%s%03d_0_0_%d_0" % (PREFIX, len(tasks), int(now)), pairs, body, mtime))

    add([(b"ret", b"-2"), (b"type", b"a"), (b"message", b"hello")])
    add([(b"ret", b"-2"), (every_byte[1:], every_byte)])
    add([(b"ret", b"-2"), (b"empty", b""), (b"also_empty", b"")])
    add([(b"ret", b"-2"), (b"dup", b"first"), (b"other", b"x"), (b"dup", b"second")])
    add([(b"ret", b"-2"), (b"body", b"an arg named body")], body=b"the real body")
    add([(b"ret", b"-2"), (b"spooler_task_name", b"an arg with that name")])
    add([(b"ret", b"-2")], body=os.urandom(100 * 1024))
    add([(b"ret", b"-2"), (b"k", b"v")], body=bytes(300 * 1024))
    add([], body=b"no args at all, only a body")
    add([(b"ret", b"-2")] + [(b"key%03d" % i, b"value %d" % i) for i in range(200)])
    add([(b"ret", b"-2"), (b"big", b"x" * 65000)])
    add([(b"ret", b"-2"), (b"text", "caf\u00e9 \u2603 \U0001f600".encode())])
    add([(b"ret", b"-2"), (b"\xff\xfe\x00key", b"\x00\x01")])
    add([(b"ret", b"-2"), (b"at", b"%d" % (now - 3600))], mtime=now - 3600)
    add([(b"ret", b"-2"), (b"at", b"%d" % (now + 3))], mtime=now + 3)
    add([(b"ret", b"-2"), (b"at", b"%d.5" % (now - 10))], mtime=now - 10)
    add([(b"ret", b"-2"), (b"priority", b"1")], sub="1")
    add([(b"ret", b"-2"), (b"priority", b"5"), (b"p", b"five")], sub="5")
    add([(b"ret", b"-1"), (b"priority", b"5")], sub="5")
    add([(b"ret", b"-2"), (b"spooler", b"/some/other/dir")])
    add([(b"ret", b"-1"), (b"what", b"retry")])
    add([(b"ret", b"0"), (b"what", b"ignore")])
    add([(b"ret", b"5"), (b"what", b"not a status")])
    add([(b"ret", b"1"), (b"what", b"True is 1")])
    add([(b"ret", b"garbage"), (b"what", b"a str return")])
    add([(b"ret", b"-1")], body=b"retry with a body")
    add([(b"ret", b"0")], body=b"\x00" * 10)
    while len(tasks) < 50:
        i = len(tasks)
        add([(b"ret", b"-2" if i % 5 else b"-1"), (b"n", b"%d" % i), (b"bin", os.urandom(i))],
            body=os.urandom(i * 37) if i % 2 else b"")
    return tasks


class UdProducer(UwsgiProcess):
    """A uWSGI app (apps/ud_producer_app.py) whose uwsgidecorators functions
    write task files into its --spooler directory. --lazy-apps keeps the app
    (and uwsgidecorators' uwsgi.spooler) out of the spooler process, which
    therefore never runs them: the files stay for the test to copy."""

    def __init__(self, root, spool_dir):
        self.socket_path = os.path.join(root, "ud-producer.sock")
        argv = ["--need-plugin", "python3", "--master", "--die-on-term", "--processes", "1", "--lazy-apps",
                "--http-socket", self.socket_path, "--wsgi-file", os.path.join(root, "apps", "ud_producer_app.py"),
                "--spooler", spool_dir, "--spooler-frequency", "3600", "--chdir", root]
        super().__init__(root, "ud-producer", argv, spool_dirs=[spool_dir])

    def request(self, method, path):
        conn = _UnixHTTPConnection(self.socket_path, timeout=20)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_ready(self):
        def ready():
            self.check_alive()
            try:
                return self.request("GET", "/ping") == (200, b"pong")
            except OSError:
                return False
        wait_until(ready, 30, interval=0.05, what="the uwsgidecorators producer to answer")


def task_tree(top):
    """Relative paths of the task files under top, failed/ left out."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != "failed"]
        for n in filenames:
            if n.startswith("uwsgi_spoolfile_on_"):
                out.add(os.path.relpath(os.path.join(dirpath, n), top))
    return out


@requires_python_plugin
@requires_uwsgi
class DifferentialTest(PythonPluginTestCase):

    def produce_decorator_files(self, stage):
        ud_dir = self.path("ud_stage")
        producer = UdProducer(self.root, ud_dir)
        self.uwsgis.append(producer)
        producer.start()
        status, out = producer.request("POST", "/produce")
        self.assertEqual(status, 200, out.decode(errors="replace"))
        paths = [p.decode() for p in out.split(b"\n")]
        self.assertEqual(len(paths), 10)
        producer.stop()
        for p in paths:
            rel = os.path.relpath(p, os.path.realpath(ud_dir))
            os.makedirs(os.path.dirname(os.path.join(stage, rel)), exist_ok=True)
            shutil.copy2(p, os.path.join(stage, rel))
        return paths

    def test_uwsgi_and_spoold_call_the_handler_alike_and_agree_on_outcomes(self):
        now = int(time.time())
        stage = self.path("stage")
        os.makedirs(stage)
        raw = raw_tasks(now)
        for sub, name, pairs, body, mtime in raw:
            d = os.path.join(stage, sub)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(encode_pairs(pairs, body))
            if mtime is not None:
                os.utime(path, (mtime, mtime))
        self.produce_decorator_files(stage)
        all_tasks = task_tree(stage)
        self.assertEqual(len(all_tasks), 60)
        # What both should leave: the tasks whose handler call returns Retry or Ignore.
        expected_kept = set()
        for rel in all_tasks:
            with open(os.path.join(stage, rel), "rb") as f:
                args, _ = decode_task(f.read())
            if args.get(b"ret", b"-2") in KEPT_RETS:
                expected_kept.add(rel)
        self.assertEqual(len(expected_kept), 13)

        spool_u, spool_s = self.path("spool", "uwsgi"), self.path("spool", "py")
        shutil.copytree(stage, spool_u)
        shutil.copytree(stage, spool_s)
        rec_u, rec_s = self.path("record-uwsgi.jsonl"), self.path("record-spoold.jsonl")

        uwsgi = UwsgiProcess(self.root, "uwsgi-spooler",
                             ["--need-plugin", "python3", "--master", "--die-on-term", "--spooler", spool_u,
                              "--spooler-ordered", "--spooler-frequency", "1", "--spooler-processes", "1",
                              "--spooler-import", self.path("apps", "recorder.py")],
                             env={"PP_RECORD": rec_u}, spool_dirs=[spool_u])
        self.uwsgis.append(uwsgi)
        uwsgi.launch()
        q = self.py_queue(options={"file": "apps/recorder.py", "env.PP_RECORD": rec_s},
                          max_attempts=100, backoff="1h", backoff_max="1h")
        d = self.daemon(spoold_toml(PLUGIN_DIR, [q]))

        ids = {os.path.basename(rel) for rel in all_tasks}

        def first_reprs(path):
            out = {}
            for r in read_json_lines(path):
                out.setdefault(r["id"], r["repr"])
            return out

        def all_seen():
            uwsgi.check_alive()
            self.assertIsNone(d.proc.poll(), d.log()[-3000:])
            return set(first_reprs(rec_u)) == ids and set(first_reprs(rec_s)) == ids
        wait_until(all_seen, 60, interval=0.05, what="both spoolers to call the handler for all 60 tasks")

        seen_u, seen_s = first_reprs(rec_u), first_reprs(rec_s)
        differ = sorted(i for i in ids if seen_u[i] != seen_s[i])
        self.assertEqual(differ, [], "dicts differ, first: uWSGI %s\nspoold %s" % (
            seen_u[differ[0]][:600], seen_s[differ[0]][:600]) if differ else "")
        # Every spoold call of a task got the same dict (no spoold.* keys on a retry).
        for r in read_json_lines(rec_s):
            self.assertEqual(r["repr"], seen_s[r["id"]])

        # The shape uWSGI's python plugin builds: str keys for the task name
        # and the body, bytes for every arg, an arg named body kept apart.
        body_task = raw[4][1]
        self.assertEqual(seen_s[body_task], "{'spooler_task_name': %r, b'ret': b'-2', b'body': b'an arg named body', "
                         "'body': b'the real body'}" % body_task.encode())
        wait_until(lambda: task_tree(spool_u) == expected_kept and task_tree(spool_s) == expected_kept, 30,
                   interval=0.05, what="both queues to keep exactly the Retry and Ignore tasks")
        self.assertEqual(os.listdir(os.path.join(spool_s, "failed")) if os.path.isdir(os.path.join(spool_s, "failed"))
                         else [], [])
        self.assertEqual(d.stop(), 0)
