"""Syscall faults injected into the real spoold's master and spoolers
(SPOOLD_FAULT_INJECT, host/posix.hpp; needs a build with
-DSPOOLD_FAULT_INJECTION=ON, as scripts/test makes): each error is logged with
the syscall, the path and the errno, the task stays where the SPEC says, and
the host keeps running, or exits non-zero with that message and loses nothing.
The walk over every syscall of a task's life is the unit test fault_walk_test.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from support import SPOOLD, Daemon, SpooldTestCase, encode_task, read_records, task_files, wait_until, write_raw  # noqa: E402
from test_core import host_toml, queue_toml  # noqa: E402


def built_with_fault_injection():
    if not SPOOLD:
        return False
    out = subprocess.run([SPOOLD, "--version"], capture_output=True, timeout=10).stdout.decode()
    return "fault injection" in out


class InjectedFaultTest(SpooldTestCase):
    def setUp(self):
        super().setUp()
        if not built_with_fault_injection():
            self.skipTest("spoold was built without SPOOLD_FAULT_INJECTION")

    def start(self, plan, text):
        d = Daemon(self.root, text)
        self.daemons.append(d)
        os.environ["SPOOLD_FAULT_INJECT"] = plan
        try:
            d.start()
        finally:
            del os.environ["SPOOLD_FAULT_INJECT"]
        return d

    def test_a_reschedule_that_fails_leaves_the_task_as_it_was(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        # The 1st rename a spooler makes is the reschedule of the first Retry.
        d = self.start("rename:EIO:1:spooler", host_toml() + queue_toml("q", "fx_record", {"record_file": rec},
                                                                        backoff="50ms", backoff_max="50ms"))
        task = write_raw(q, encode_task({"status": "retry"}))
        wait_until(lambda: "cannot reschedule it" in d.log(), 10, what="the failed rename to be logged")
        line = [l for l in d.log().splitlines() if "cannot reschedule it" in l][0]
        self.assertIn("rename .spoold-tmp-" + task, line)
        self.assertIn("Input/output error (EIO)", line)
        # It stays as it was (attempt 0) and is tried again: the next rename works.
        wait_until(lambda: len([r for r in read_records(rec) if r["id"] == task]) >= 3, 15,
                   what="more tries of the task")
        attempts = [r["attempt"] for r in read_records(rec) if r["id"] == task]
        self.assertEqual(attempts[:3], ["0", "0", "1"], "the try whose rewrite failed was not counted")
        self.assertIsNone(d.proc.poll(), "the host lives")
        self.assertEqual(d.stop(), 0)

    def test_a_delete_that_fails_runs_the_task_again_and_then_deletes_it(self):
        rec = self.path("r.txt")
        q = self.path("spool/q")
        d = self.start("unlink:EIO:1:spooler", host_toml() + queue_toml("q", "fx_record", {"record_file": rec}))
        task = write_raw(q, encode_task({"k": "v"}))
        wait_until(lambda: task_files(q) == [], 15, what="the task to be deleted in the end")
        self.assertIn("unlink " + task + ": Input/output error (EIO)", d.log())
        self.assertEqual(len([r for r in read_records(rec) if r["id"] == task]), 2, "at least once: run twice")
        self.assertEqual(d.stop(), 0)

    def test_a_master_that_cannot_create_its_queue_exits_2_naming_it(self):
        p = subprocess.run([SPOOLD, "-c", self.write_config(host_toml() + queue_toml("q", "fx_record", {"record_file": "r"}))],
                           capture_output=True, timeout=30, cwd=self.root,
                           env=dict(os.environ, SPOOLD_FAULT_INJECT="mkdir:ENOSPC:1:master"))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("queue 'q': cannot create its directory: mkdir", err)
        self.assertIn("No space left on device (ENOSPC)", err)

    def write_config(self, text):
        path = self.path("spoold.toml")
        with open(path, "w") as f:
            f.write(text)
        return path


if __name__ == "__main__":
    import unittest
    unittest.main()
