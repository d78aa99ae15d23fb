"""uWSGI -> spoold: task files written by a real uWSGI app with uwsgi.spool()
(uWSGI runs with --spooler-external, so it writes but never consumes) run in
spoold intact; `at` is honoured; priority subdirectories run without any
switch; a uWSGI file that cannot be parsed goes to failed/ with its reason;
and nothing a task file says makes spoold write outside its queue directory.

Run from this folder: python3 -m unittest -v test_uwsgi_to_spoold
"""
import json
import os
import random
import struct
import time
import unittest

from compat_support import (PLUGIN_DIR, CompatTestCase, decode_task, encode_task, fnv1a_64, import_spoolclient,
                            read_bytes, read_fx_records, requires_uwsgi, task_files, wait_until, write_raw)


def args_of(task):
    """The pairs uWSGI writes into the file: everything but b"body", in order."""
    return [(k, v) for k, v in task.items() if k != b"body"]


@requires_uwsgi
class UwsgiToSpooldTest(CompatTestCase):
    def setUp(self):
        super().setUp()
        self.q = self.path("spool", "q")
        self.record = self.path("record.txt")

    def record_queue(self, **settings):
        q = {"name": "q", "dir": self.q, "plugin": "fx_record", "options": {"record_file": self.record}}
        q.update(settings)
        return q

    def test_every_key_value_and_the_binary_body_arrive_intact(self):
        d = self.spoold([self.record_queue(processes=2)])
        producer = self.uwsgi_producer([self.q])
        rnd = random.Random(7)
        big_body = bytes(rnd.getrandbits(8) for _ in range(300_000))  # the body has no 64 KiB limit
        tasks = [
            {b"type": b"a", b"message": b"hello world", b"body_sha": b"1", b"body": bytes(range(256)) * 4},
            {b"k\xff\x00ey": b"\x00\x01\xfe\xff", b"empty": b"", b"sp ace": b"a b\\c=d\n",
             b"utf8": "\u00e9\u2603".encode(), b"body_sha": b"1", b"body": big_body},
            {b"only": b"args"},
            {b"long": bytes(rnd.getrandbits(8) for _ in range(60_000)), b"short": b"x"},
            # A body that starts like a spool header, and the uWSGI `spooler` selector (kept, ignored).
            {b"spooler": os.path.realpath(self.q).encode(), b"body_sha": b"1",
             b"body": b"\x11\x10\x00\x00" + b"\x00" * 100 + b"\xff"},
        ]
        # Written in place while spoold watches (uWSGI creates, locks, writes, closes):
        # a burst of small ones as well, each must run once.
        tasks += [{b"n": str(i).encode(), b"body": b"b%d" % i} for i in range(40)]
        ids = {}
        for task in tasks:
            path = producer.spool(dict(task))
            self.assertEqual(os.path.dirname(path), os.path.realpath(self.q))
            ids[os.path.basename(path)] = task
        self.assertEqual(len(ids), len(tasks))
        wait_until(lambda: len(read_fx_records(self.record)) >= len(tasks), 30, what="%d tasks" % len(tasks))
        wait_until(lambda: task_files(self.q) == [], 30, what="the queue to be empty")
        records = read_fx_records(self.record)
        self.assertEqual(sorted(r["id"] for r in records), sorted(ids), "each uWSGI task ran exactly once")
        for rec in records:
            task = ids[rec["id"]]
            self.assertEqual(rec["result"], "ok")
            self.assertEqual(rec["attempt"], 0)
            self.assertEqual(rec["args"], args_of(task), "args of %s" % rec["id"])
            body = task.get(b"body", b"")
            self.assertEqual(rec["body_len"], len(body), "body of %s" % rec["id"])
            if task.get(b"body_sha") == b"1":
                self.assertEqual(rec["body_fnv1a"], fnv1a_64(body), "body bytes of %s" % rec["id"])
        self.assertFalse(os.path.exists(os.path.join(self.q, "failed")) and os.listdir(os.path.join(self.q, "failed")))
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_at_is_honoured_never_before(self):
        # exec writes "<id> <time the command ran>" for each task.
        runs = self.path("runs.txt")
        d = self.spoold([{"name": "q", "dir": self.q, "plugin": "exec", "processes": 2,
                          "options": {"command": 'echo "$SPOOLD_TASK_ID $(date +%%s.%%N)" >> %s' % runs}}],
                        plugin_dir=PLUGIN_DIR)
        producer = self.uwsgi_producer([self.q])
        at = int(time.time()) + 3
        due = {}  # id -> the earliest instant it may run
        for i in range(4):
            path = producer.spool({b"at": str(at).encode(), b"i": str(i).encode()})
            due[os.path.basename(path)] = at
        # uWSGI stores only the whole seconds (the file's mtime); spoold also reads the key.
        path = producer.spool({b"at": b"%d.5" % at, b"i": b"frac"})
        due[os.path.basename(path)] = at
        path = producer.spool({b"at": str(at).encode(), b"priority": b"2", b"i": b"prio"})
        self.assertIn("/2/", path)
        due[os.path.basename(path)] = at
        self.assertGreater(at, time.time(), "the delayed tasks were spooled before their time")
        past = os.path.basename(producer.spool({b"at": str(int(time.time()) - 100).encode(), b"i": b"past"}))
        spooled = time.time()

        def lines():
            try:
                with open(runs) as f:
                    return [l.split() for l in f.read().splitlines()]
            except FileNotFoundError:
                return []
        wait_until(lambda: len(lines()) == len(due) + 1, at - time.time() + 30, what="every task to run")
        ran = {i: float(t) for i, t in lines()}
        self.assertEqual(set(ran), set(due) | {past})
        late = max(ran[task_id] - when for task_id, when in due.items())
        print("\npast `at`: ran %.2fs after it was spooled; future `at`: at most %.2fs late" % (ran[past] - spooled, late))
        # Never early is the contract. The upper bounds only catch a task that
        # waits for the 30 s rescan instead of its time; they leave 5 s for a
        # loaded machine (exec starts a shell per task).
        self.assertLess(ran[past] - spooled, 5.0, "a task whose `at` is past runs at once")
        for task_id, when in due.items():
            self.assertGreaterEqual(ran[task_id], when, "%s ran %.3fs before its at" % (task_id, when - ran[task_id]))
            self.assertLess(ran[task_id], when + 5.0, "%s ran late" % task_id)
        # The exec plugin's line comes just before the spooler deletes the task.
        wait_until(lambda: task_files(self.q) + task_files(os.path.join(self.q, "2")) == [], 10,
                   what="every task to be deleted after its run")
        self.assertEqual(d.stop(), 0)

    def test_priority_subdirectories_run_without_a_switch(self):
        producer = self.uwsgi_producer([self.q])  # uWSGI creates the queue directory (0750) itself
        for n, prio in (("top", None), ("p5", b"5"), ("p1", b"1"), ("p10", b"10"), ("p0", b"0")):
            task = {b"n": n.encode()}
            if prio is not None:
                task[b"priority"] = prio
            path = producer.spool(task)
            expected_dir = os.path.realpath(self.q) + ("/" + prio.decode() if prio else "")
            self.assertEqual(os.path.dirname(path), expected_dir)
        d = self.spoold([self.record_queue()])  # one spooler: the order is observable
        wait_until(lambda: len(read_fx_records(self.record)) == 5, 30, what="5 tasks")
        records = read_fx_records(self.record)
        self.assertEqual([dict(r["args"])[b"n"] for r in records], [b"p0", b"p1", b"p5", b"p10", b"top"])
        for prio in ("0", "1", "5", "10"):
            self.assertEqual(task_files(os.path.join(self.q, prio)), [])
        self.assertEqual(task_files(self.q), [])
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_unparsable_uwsgi_files_go_to_failed_with_the_reason(self):
        producer = self.uwsgi_producer([self.q])
        paths = [producer.spool({b"type": b"a", b"message": b"m%d" % i, b"x": b"y" * 40, b"body": b"B" * 50})
                 for i in range(5)]
        now = time.time()
        corrupt = {}

        def rewrite(path, data, age):
            with open(path, "r+b") as f:
                f.truncate(0)
                f.write(data)
            os.utime(path, (now - age, now - age))
            corrupt[os.path.basename(path)] = data

        raw = [read_bytes(p) for p in paths]
        size = struct.unpack_from("<H", raw[0], 1)[0]
        # A producer that died mid-write: shorter than its header says, long ago.
        rewrite(paths[0], raw[0][:4 + size // 2], 60)
        # A zero-length key (uWSGI's own parser rejects it).
        rewrite(paths[1], raw[1][:4] + b"\x00\x00" + raw[1][6:], 60)
        # A value length that runs past the args block.
        args_only = raw[2][:4 + size]
        last_value_len_at = 4 + size - len(b"y" * 40) - 2
        self.assertEqual(struct.unpack_from("<H", args_only, last_value_len_at)[0], 40)
        rewrite(paths[2], args_only[:last_value_len_at] + b"\xff\xff" + raw[2][last_value_len_at + 2:], 60)
        # A producer that died between O_CREAT and the first write: empty, long ago.
        rewrite(paths[3], b"", 60)
        # Incomplete but only 1 s old: still being written until the 10 s
        # grace has passed, which leaves 9 s to see the other four fail first.
        rewrite(paths[4], raw[4][:4 + size // 2], 1)
        young = os.path.basename(paths[4])
        young_mtime = os.stat(paths[4]).st_mtime
        failed = os.path.join(self.q, "failed")

        d = self.spoold([self.record_queue()])
        old = [i for i in corrupt if i != young]
        def in_failed(task_id):
            path = os.path.join(failed, task_id)
            return os.path.exists(path) and os.path.exists(path + ".error")
        wait_until(lambda: all(in_failed(i) for i in old), young_mtime + 9 - time.time(),
                   what="the 4 unparsable files in failed/ while the young one is within its grace")
        self.assertFalse(os.path.exists(os.path.join(failed, young)), "a file younger than the grace is not failed")
        self.assertEqual(task_files(self.q), [young])
        wait_until(lambda: in_failed(young), young_mtime + 10 - time.time() + 30,
                   what="the incomplete file in failed/ after the grace")
        self.assertGreaterEqual(time.time(), young_mtime + 10)
        reasons = {}
        for task_id, data in corrupt.items():
            with open(os.path.join(failed, task_id), "rb") as f:
                self.assertEqual(f.read(), data, "%s moved unchanged" % task_id)
            with open(os.path.join(failed, task_id + ".error")) as f:
                reasons[task_id] = f.read().strip()
            self.assertTrue(reasons[task_id], "%s has a reason" % task_id)
        self.assertEqual(task_files(self.q), [])
        self.assertEqual(read_fx_records(self.record), [], "no handler saw an unparsable file")
        for task_id in corrupt:
            self.assertIn(task_id, d.log())
        if os.environ.get("SPOOLD_COMPAT_VERBOSE") == "1":
            print("\n".join("%s: %s" % kv for kv in reasons.items()))
        # The host keeps running: the next uWSGI task runs.
        good = os.path.basename(producer.spool({b"after": b"1"}))
        wait_until(lambda: [r["id"] for r in read_fx_records(self.record)] == [good], 30, what="the next task")
        self.assertEqual(d.stop(), 0)

    def test_nothing_in_a_task_file_makes_spoold_write_outside_its_queue(self):
        spool = self.path("spool")
        a, b = os.path.join(spool, "a"), os.path.join(spool, "b")  # uWSGI's target, spoold's queue
        os.makedirs(a)
        os.makedirs(b, mode=0o700)
        producer = self.uwsgi_producer([a, b])
        written = []
        for prio in (b"../x", b"../../escape", b"..", b"7"):
            for status in (b"ok", b"retry", b"fail"):
                written.append(producer.spool({b"spooler": os.path.realpath(a).encode(), b"priority": prio,
                                               b"status": status, b"body": b"payload"}))
        # uWSGI itself follows `priority` blindly: these files landed outside `a`.
        self.assertTrue(any(not os.path.realpath(p).startswith(os.path.realpath(a) + "/") for p in written), written)
        # An operator moves them into spoold's queue (uWSGI's docs allow moving spool files between dirs).
        for p in written:
            os.rename(p, os.path.join(b, os.path.basename(p)))
        # And hand-made ones naming absolute paths.
        for status in ("ok", "retry", "fail"):
            write_raw(b, encode_task({"spooler": self.path("outside"), "priority": self.path("abs"),
                                      "status": status}, b"payload"))
        ids = task_files(b)
        self.assertEqual(len(ids), 15)

        def outside_b():
            return {k: v for k, v in self.tree(self.root).items()
                    if not (k == "spool/b" or k.startswith("spool/b/")) and not k.endswith((".log", ".txt", ".toml"))}
        before = outside_b()
        d = self.spoold([self.record_queue(dir=b, max_attempts=2, backoff="100ms", backoff_max="200ms")])
        failed = os.path.join(b, "failed")
        wait_until(lambda: task_files(b) == [] and len(task_files(failed)) == 10, 30,
                   what="5 ok tasks deleted, 10 retry/fail tasks in failed/")
        self.assertEqual(outside_b(), before, "spoold wrote outside its queue directory")
        self.assertEqual(sorted(os.listdir(b)), ["failed"], "spoold made no priority directory from a task's key")
        self.assertEqual(sorted(os.listdir(failed)), sorted(task_files(failed)))
        for task_id in task_files(failed):
            args, body = decode_task(read_bytes(os.path.join(failed, task_id)))
            self.assertIn(args[b"status"], (b"retry", b"fail"))
            self.assertIn(b"priority", args)  # kept verbatim
            self.assertEqual(body, b"payload")
        records = read_fx_records(self.record)
        self.assertEqual({r["id"] for r in records}, set(ids))
        self.assertFalse(os.path.exists(self.path("outside")))
        self.assertFalse(os.path.exists(self.path("abs")))
        self.assertEqual(d.stop(), 0)


@requires_uwsgi
class TutorialMigrationTest(CompatTestCase):
    """docs/migration.md's example: the tutorial's views, unchanged (uwsgi.spool) and
    ported (spoolclient.enqueue), feed the log_writer and dispatch plugins."""

    def test_tutorial_views_both_ways_fill_the_log(self):
        spoolclient = import_spoolclient()
        tasks_a, tasks_b = self.path("spool", "tasks_a"), self.path("spool", "tasks_b")
        log_file = self.path("tasks.log")
        d = self.spoold([
            {"name": "tasks_a", "dir": tasks_a, "plugin": "log_writer", "processes": 2,
             "options": {"log_file": log_file}},
            {"name": "tasks_b", "dir": tasks_b, "plugin": "dispatch", "processes": 2,
             "options": {"log_file": log_file, "types": ["a", "b"]}},
        ], plugin_dir=PLUGIN_DIR)
        app = self.uwsgi_producer([tasks_a, tasks_b])
        a_dir, b_dir = os.path.realpath(tasks_a).encode(), os.path.realpath(tasks_b).encode()
        # write_task_a / write_task_b as a uWSGI app has them (the `spooler` key picks the directory).
        app.spool({b"spooler": a_dir, b"type": b"a", b"body": b"message from uwsgi A"})
        app.spool({b"spooler": b_dir, b"type": b"b",
                   b"body": json.dumps({"type": "b", "message": "message from uwsgi B"}).encode()})
        app.spool({b"spooler": b_dir, b"type": b"a", b"message": b"args only from uwsgi"})
        # The same views ported to spoolclient: no uWSGI needed in the web server.
        spoolclient.enqueue(tasks_a, {"type": "a"}, body="message from spoolclient A")
        spoolclient.enqueue(tasks_b, {"type": "b"},
                            body=json.dumps({"type": "b", "message": "message from spoolclient B"}))

        def lines():
            try:
                with open(log_file) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []
        wait_until(lambda: len(lines()) == 5, 30, what="5 log lines")
        tails = sorted(l[len("YYYY-MM-DD HH:MM:SS:"):] for l in lines())
        self.assertEqual(tails, sorted(["message from uwsgi A", "b:message from uwsgi B", "a:args only from uwsgi",
                                        "message from spoolclient A", "b:message from spoolclient B"]))
        for l in lines():
            self.assertRegex(l, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:")
        self.assertEqual(task_files(tasks_a) + task_files(tasks_b), [])
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
