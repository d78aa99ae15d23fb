"""A uWSGI spooler and spoold consuming the same directory at once, as during
a migration: every task runs exactly once when nothing crashes. They share
nothing but the files and the lock on them (uWSGI's fcntl(F_SETLK) record
lock and spoold's F_OFD_SETLK lock conflict with each other).

Run from this folder: python3 -m unittest -v test_shared_directory
SPOOLD_COMPAT_SHARED_TASKS=N changes the number of tasks (default 2000).
"""
import collections
import os
import subprocess
import time
import unittest

from compat_support import (SPOOLCTL, CompatTestCase, import_spoolclient, read_fx_records, requires_uwsgi,
                            task_files, wait_until)

TASKS = int(os.environ.get("SPOOLD_COMPAT_SHARED_TASKS", "2000"))
# Every handler call (both sides) sleeps this long, so that both consumers
# hold task locks most of the time and keep running into each other's.
SLEEP_MS = "2"


@requires_uwsgi
class SharedDirectoryTest(CompatTestCase):
    def test_uwsgi_and_spoold_on_one_directory_run_every_task_exactly_once(self):
        spoolclient = import_spoolclient()
        q = self.path("spool", "q")
        spoold_record = self.path("spoold-record.txt")
        uwsgi_record = self.path("uwsgi-record.jsonl")
        producer = self.uwsgi_producer([q])  # a web app's uWSGI: writes with uwsgi.spool(), consumes nothing
        ids = []
        # Half the tasks wait in the directory before either consumer starts,
        # so both start on the same backlog.
        backlog = TASKS // 2
        for i in range(backlog):
            ids.append(spoolclient.enqueue(q, {"i": str(i), "sleep_ms": SLEEP_MS}, body=b"x" * (i % 64), sync=False))
        started = time.monotonic()
        d = self.spoold([{"name": "q", "dir": q, "plugin": "fx_record", "processes": 2,
                          "options": {"record_file": spoold_record}}], start=False)
        u = self.uwsgi_spooler(q, uwsgi_record, processes=2, quiet=True, start=False)
        d.start(wait_ready=False)
        u.launch()
        u.wait_ready()
        wait_until(lambda: "spoold ready" in d.log(), 30, what="spoold to be ready")
        # The other half arrives while both run: written in place by uWSGI
        # (create, lock, write, close), and atomically by spoolclient and spoolctl.
        by = collections.Counter()
        for i in range(backlog, TASKS):
            args = {"i": str(i), "sleep_ms": SLEEP_MS}
            if i % 10 == 0:
                cmd = [SPOOLCTL, "--dir", q, "enqueue", "--create-dir", "--no-sync", "--body", "z"]
                cmd += ["%s=%s" % kv for kv in args.items()]
                ids.append(subprocess.run(cmd, capture_output=True, check=True, timeout=20).stdout.decode().strip())
                by["spoolctl"] += 1
            elif i % 2 == 0:
                path = producer.spool({k.encode(): v.encode() for k, v in args.items()} | {b"body": b"u" * (i % 64)})
                ids.append(os.path.basename(path))
                by["uwsgi.spool"] += 1
            else:
                ids.append(spoolclient.enqueue(q, args, body=b"y" * (i % 64), sync=False))
                by["spoolclient"] += 1
        self.assertEqual(len(set(ids)), TASKS)

        def all_ran():
            return len(read_fx_records(spoold_record)) + len(u.records()) >= TASKS and task_files(q) == []
        wait_until(all_ran, 120, interval=0.1, what="%d tasks to run" % TASKS)
        elapsed = time.monotonic() - started
        # Count only when no run can still be under way: spoold finishes the
        # tasks in hand before it exits (fx_record writes its line at the end
        # of handle()), and uwsgi_handler.py writes its line when a run starts.
        self.assertEqual(d.stop(), 0)
        self.assertEqual(u.stop(), 0)
        in_spoold = [r["id"] for r in read_fx_records(spoold_record)]
        in_uwsgi = [r["id"] for r in u.records()]
        counts = collections.Counter(in_spoold + in_uwsgi)
        duplicates = {i: n for i, n in counts.items() if n > 1}
        print("\n%d tasks on one directory (%d before start, then %s): %d ran in uWSGI (2 spoolers), "
              "%d in spoold (2 spoolers), %d duplicates, %.1fs"
              % (TASKS, backlog, ", ".join("%d by %s" % (n, k) for k, n in sorted(by.items())), len(in_uwsgi),
                 len(in_spoold), len(duplicates), elapsed))
        self.assertEqual(duplicates, {}, "tasks that ran more than once")
        self.assertEqual(set(counts), set(ids), "every task ran")
        self.assertEqual(len(in_spoold) + len(in_uwsgi), TASKS)
        self.assertGreater(len(in_uwsgi), 0, "uWSGI took part")
        self.assertGreater(len(in_spoold), 0, "spoold took part")
        for rec in read_fx_records(spoold_record):
            self.assertEqual((rec["attempt"], rec["result"]), (0, "ok"), rec["id"])
        self.assertEqual(task_files(q), [])
        self.assertFalse(os.path.exists(os.path.join(q, "failed")) and os.listdir(os.path.join(q, "failed")),
                         "nothing failed")
        for bad in ("something horrible", "unlink()", "Traceback"):
            self.assertNotIn(bad, u.log())
        self.assert_no_errors_logged(d)


if __name__ == "__main__":
    unittest.main()
