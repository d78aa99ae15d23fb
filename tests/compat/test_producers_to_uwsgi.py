"""spoold producers -> uWSGI: task files written by `spoolctl enqueue`, by
client/python/spoolclient.py and by the C API (libspoold_client.so through
ctypes) are consumed by a real uWSGI spooler
(`uwsgi --plugin python3 --master --spooler DIR --spooler-frequency 1
--spooler-ordered --import uwsgi_handler.py`): args and body intact,
priorities in order, `at` honoured (to uWSGI's whole seconds).

Run from this folder: python3 -m unittest -v test_producers_to_uwsgi
"""
import ctypes
import math
import os
import random
import subprocess
import time
import unittest

from compat_support import (CLIENT_LIB, SPOOLCTL, CompatTestCase, import_spoolclient, read_bytes, read_fx_records,
                            requires_uwsgi, task_files, wait_until)


def spoolctl_enqueue(queue_dir, args, body=None, body_file=None, priority=None, delay=None, at=None):
    """args: list of (bytes, bytes); goes through argv, so no NUL byte. Returns the id."""
    cmd = [SPOOLCTL.encode(), b"--dir", queue_dir.encode(), b"enqueue", b"--create-dir"]
    cmd += [k + b"=" + v for k, v in args]
    if body is not None:
        cmd += [b"--body", body]
    if body_file is not None:
        cmd += [b"--body-file", body_file.encode()]
    if priority is not None:
        cmd += [b"--priority", str(priority).encode()]
    if delay is not None:
        cmd += [b"--delay", delay.encode()]
    if at is not None:
        cmd += [b"--at", str(at).encode()]
    p = subprocess.run(cmd, capture_output=True, timeout=20)
    if p.returncode != 0:
        raise AssertionError("spoolctl enqueue failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout.decode().strip()


class CClient:
    """libspoold_client.so (client/include/spoold/client.h) through ctypes."""

    def __init__(self, path):
        lib = self.lib = ctypes.CDLL(path)
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        lib.spoold_task_builder_new.restype = vp
        lib.spoold_task_builder_new.argtypes = []
        lib.spoold_task_builder_free.argtypes = [vp]
        lib.spoold_task_builder_add_arg.argtypes = [vp, cp, sz, cp, sz]
        lib.spoold_task_builder_set_body.argtypes = [vp, cp, sz]
        lib.spoold_task_builder_set_priority.argtypes = [vp, ctypes.c_uint]
        lib.spoold_task_builder_set_delay_ms.argtypes = [vp, ctypes.c_uint64]
        lib.spoold_task_builder_set_sync.argtypes = [vp, ctypes.c_int]
        lib.spoold_enqueue.argtypes = [cp, vp, cp, sz, cp, sz]
        for f in ("add_arg", "set_body", "set_priority", "set_delay_ms", "set_sync"):
            getattr(lib, "spoold_task_builder_" + f).restype = ctypes.c_int
        lib.spoold_enqueue.restype = ctypes.c_int

    def enqueue(self, queue_dir, args, body=b"", priority=None, delay_ms=None):
        lib = self.lib
        b = lib.spoold_task_builder_new()
        if not b:
            raise MemoryError("spoold_task_builder_new")
        try:
            for k, v in args:
                assert lib.spoold_task_builder_add_arg(b, k, len(k), v, len(v)) == 0
            if body:
                assert lib.spoold_task_builder_set_body(b, body, len(body)) == 0
            if priority is not None:
                assert lib.spoold_task_builder_set_priority(b, priority) == 0
            if delay_ms is not None:
                assert lib.spoold_task_builder_set_delay_ms(b, delay_ms) == 0
            assert lib.spoold_task_builder_set_sync(b, 0) == 0
            out, err = ctypes.create_string_buffer(256), ctypes.create_string_buffer(512)
            rc = lib.spoold_enqueue(queue_dir.encode(), b, out, len(out), err, len(err))
            if rc != 0:
                raise AssertionError("spoold_enqueue returned %d: %s" % (rc, err.value.decode(errors="replace")))
            return out.value.decode()
        finally:
            lib.spoold_task_builder_free(b)


def have_client_lib():
    return bool(CLIENT_LIB) and os.path.exists(CLIENT_LIB)


@requires_uwsgi
class ProducersToUwsgiTest(CompatTestCase):
    def setUp(self):
        super().setUp()
        self.q = self.path("spool", "q")
        self.record = self.path("uwsgi-record.jsonl")
        self.expected = {}  # id -> (args, body, extra keys the producer adds)

    def expect(self, task_id, args, body=b"", extra=()):
        self.assertTrue(task_id.startswith("uwsgi_spoolfile_on_"), task_id)
        self.expected[task_id] = (list(args), body, set(extra))

    def wait_all_run(self, spooler, timeout=30):
        wait_until(lambda: len(spooler.records()) >= len(self.expected), timeout,
                   what="uWSGI to run %d tasks" % len(self.expected))
        records = spooler.records()
        self.assertEqual(sorted(r["id"] for r in records), sorted(self.expected), "each task ran once in uWSGI")
        return {r["id"]: r for r in records}

    def check_intact(self, records):
        for task_id, (args, body, extra) in self.expected.items():
            rec = records[task_id]
            # The producer's pairs first, in order, then only the keys it adds (at, priority).
            self.assertEqual(rec["args"][:len(args)], args, "args of %s" % task_id)
            self.assertEqual({k for k, _ in rec["args"][len(args):]}, extra, "added keys of %s" % task_id)
            self.assertEqual(rec["body"], body or None, "body of %s" % task_id)  # uWSGI omits an empty body
            self.assertEqual(set(rec["str_keys"]) - {"body"}, {"spooler_task_name"})

    def test_spoolctl_tasks_run_in_uwsgi_intact(self):
        spooler = self.uwsgi_spooler(self.q, self.record, ordered=True)
        rnd = random.Random(1)
        body = bytes(range(256)) * 200 + bytes(rnd.getrandbits(8) for _ in range(50_000))
        body_file = self.path("body.bin")
        with open(body_file, "wb") as f:
            f.write(body)
        # argv cannot carry a NUL byte; every other byte can.
        args = [(b"type", b"a"), (b"bin", bytes(range(1, 61)) + b"\xfe\xff"), (b"empty", b""), (b"eq", b"a=b=c"),
                (b"k\xe9y", "\u2603".encode()), (b"dup", b"1"), (b"dup2", b"x" * 3000)]
        self.expect(spoolctl_enqueue(self.q, args, body_file=body_file), args, body)
        args = [(b"message", b"hello")]
        self.expect(spoolctl_enqueue(self.q, args, body="caf\u00e9 \u2603".encode()), args, "caf\u00e9 \u2603".encode())
        self.expect(spoolctl_enqueue(self.q, [(b"only", b"args")]), [(b"only", b"args")])
        tid = spoolctl_enqueue(self.q, [(b"p", b"3")], body=b"prio", priority=3)
        # Where it was written shows in the cwd uWSGI ran it in (below): the
        # file itself may be gone already, taken by the running spooler.
        self.expect(tid, [(b"p", b"3")], b"prio", {b"priority"})
        records = self.wait_all_run(spooler)
        self.check_intact(records)
        self.assertEqual(dict(records[tid]["args"])[b"priority"], b"3")
        self.assertEqual(records[tid]["cwd"], os.path.join(os.path.realpath(self.q), "3"))

    def test_spoolclient_tasks_run_in_uwsgi_intact(self):
        spoolclient = import_spoolclient()
        spooler = self.uwsgi_spooler(self.q, self.record, ordered=True)
        rnd = random.Random(2)
        big = bytes(rnd.getrandbits(8) for _ in range(300_000))
        args = [(b"type", b"b"), (b"nul\x00key", b"\x00\x01\x02\xff"), (b"empty", b""), (b"long", b"v" * 60_000)]
        self.expect(spoolclient.enqueue(self.q, args, body=big, sync=False), args, big)
        # str keys and values are UTF-8; an int value is written with str().
        tid = spoolclient.enqueue(self.q, {"type": "a", "message": "h\u00e9llo", "n": 42}, body="{\"k\": 1}")
        self.expect(tid, [(b"type", b"a"), (b"message", "h\u00e9llo".encode()), (b"n", b"42")], b"{\"k\": 1}")
        tid = spoolclient.enqueue(self.q, {"p": "7"}, priority=7, sync=False)
        self.expect(tid, [(b"p", b"7")], b"", {b"priority"})
        records = self.wait_all_run(spooler)
        self.check_intact(records)

    @unittest.skipUnless(have_client_lib(), "SPOOLD_CLIENT_LIB (libspoold_client.so) is not set or missing")
    def test_c_client_tasks_run_in_uwsgi_intact(self):
        client = CClient(CLIENT_LIB)
        spooler = self.uwsgi_spooler(self.q, self.record, ordered=True)
        body = bytes(range(256)) * 1000
        args = [(b"type", b"c"), (b"nul\x00key", b"\x00v\x00"), (b"empty", b"")]
        self.expect(client.enqueue(self.q, args, body), args, body)
        tid = client.enqueue(self.q, [(b"p", b"4")], b"B", priority=4)
        self.expect(tid, [(b"p", b"4")], b"B", {b"priority"})
        records = self.wait_all_run(spooler)
        self.check_intact(records)

    def test_priorities_run_lowest_first_in_uwsgi_ordered_mode(self):
        spoolclient = import_spoolclient()
        order = []
        order.append(("top-ctl", spoolctl_enqueue(self.q, [(b"n", b"top-ctl")])))
        order.append(("p9", spoolctl_enqueue(self.q, [(b"n", b"p9")], priority=9)))
        order.append(("p2", spoolclient.enqueue(self.q, {"n": "p2"}, priority=2, sync=False)))
        order.append(("p10", spoolclient.enqueue(self.q, {"n": "p10"}, priority=10, sync=False)))
        if have_client_lib():
            order.append(("p0", CClient(CLIENT_LIB).enqueue(self.q, [(b"n", b"p0")], priority=0)))
        order.append(("top-py", spoolclient.enqueue(self.q, {"n": "top-py"}, sync=False)))
        spooler = self.uwsgi_spooler(self.q, self.record, ordered=True)  # one process: the order is observable
        wait_until(lambda: len(spooler.records()) == len(order), 30, what="%d tasks" % len(order))
        ran = [dict(r["args"])[b"n"].decode() for r in spooler.records()]
        numbered = sorted((n for n, _ in order if not n.startswith("top")), key=lambda n: int(n[1:]))
        self.assertEqual(ran[:len(numbered)], numbered)
        self.assertEqual(sorted(ran[len(numbered):]), ["top-ctl", "top-py"])

    def test_a_task_spoold_rescheduled_runs_in_uwsgi_and_failed_ones_never_do(self):
        """What a rollback finds: files spoold rewrote for a retry, and its failed/ folder."""
        record = self.path("spoold-record.txt")
        # A backoff long enough that the rescheduled task is still not due
        # when uWSGI starts, on a loaded machine too.
        d = self.spoold([{"name": "q", "dir": self.q, "plugin": "fx_record", "max_attempts": 3, "backoff": "5s",
                          "options": {"record_file": record}}])
        body = bytes(range(256)) * 10
        retried = spoolctl_enqueue(self.q, [(b"status", b"retry"), (b"k", b"v")], body_file=self._write(body))
        failed = spoolctl_enqueue(self.q, [(b"status", b"fail")])
        failed_path = os.path.join(self.q, "failed", failed)
        wait_until(lambda: os.path.exists(failed_path) and len(read_fx_records(record)) == 2, 30,
                   what="one try of each task")
        self.assertEqual(d.stop(), 0)
        due = os.stat(os.path.join(self.q, retried)).st_mtime
        tried = [r["t"] for r in read_fx_records(record) if r["id"] == retried]
        self.assertEqual(len(tried), 1)
        # Due one backoff after the try (jitter only lengthens it).
        self.assertGreaterEqual(due, tried[0] + 5.0 - 0.01, "the retry is due after the backoff")
        uwsgi_started = time.time()
        failed_bytes = read_bytes(failed_path)
        spooler = self.uwsgi_spooler(self.q, self.record, ordered=True)
        wait_until(lambda: spooler.records(), 30, what="uWSGI to run the rescheduled task")
        rec = spooler.records()[0]
        self.assertEqual(rec["id"], retried)
        print("\nuWSGI started %.1fs before the retry was due; ran it %.2fs after" % (due - uwsgi_started, rec["t"] - due))
        self.assertGreaterEqual(rec["t"], math.floor(due), "uWSGI honours the backoff (the mtime)")
        args = dict(rec["args"])
        self.assertEqual((args[b"status"], args[b"k"], args[b"spoold.attempt"]), (b"retry", b"v", b"1"))
        self.assertIn(b"Retry", args[b"spoold.error"])
        self.assertEqual(rec["body"], body)
        self.assertEqual(task_files(self.q), [])
        # uWSGI never enters failed/ (not a task name, not a number), even in ordered mode.
        self.assertEqual(len(spooler.records()), 1)
        self.assertEqual(read_bytes(failed_path), failed_bytes)

    def _write(self, data):
        path = self.path("body-%d.bin" % len(data))
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_delayed_tasks_wait_for_at_in_uwsgi(self):
        spoolclient = import_spoolclient()
        spooler = self.uwsgi_spooler(self.q, self.record)
        # 4 s: the task due now must clearly run first (uWSGI scans every
        # second here), on a loaded machine too.
        start = time.time()
        due = {}
        tid = spoolctl_enqueue(self.q, [(b"w", b"ctl")], delay="4000ms")
        due[tid] = start + 4.0
        tid = spoolclient.enqueue(self.q, {"w": "py"}, delay=4.0, sync=False)
        due[tid] = start + 4.0
        if have_client_lib():
            tid = CClient(CLIENT_LIB).enqueue(self.q, [(b"w", b"c")], delay_ms=4000)
            due[tid] = start + 4.0
        now_task = spoolclient.enqueue(self.q, {"w": "now"}, sync=False)
        for tid in due:
            st = os.stat(os.path.join(self.q, tid))
            self.assertGreater(st.st_mtime, time.time(), "the producer set the mtime to the due time")
        wait_until(lambda: len(spooler.records()) == len(due) + 1, 30, what="the delayed tasks")
        records = {r["id"]: r for r in spooler.records()}
        print("\nthe task due now ran %.2fs after the enqueues began" % (records[now_task]["t"] - start))
        self.assertLess(records[now_task]["t"], min(records[tid]["t"] for tid in due),
                        "the task due now ran before the delayed ones")
        for tid, when in due.items():
            at_key = int(dict(records[tid]["args"])[b"at"])
            self.assertIn(at_key - math.floor(when), (0, 1), "the at key holds the due second")
            # uWSGI compares whole seconds: never before the `at` second, at most 1 s before the instant.
            self.assertGreaterEqual(records[tid]["t"], at_key, tid)
            self.assertGreater(records[tid]["t"], when - 1.0, tid)


if __name__ == "__main__":
    unittest.main()
