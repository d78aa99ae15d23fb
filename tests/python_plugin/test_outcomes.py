"""What becomes of a task by what its Python callable does: returns, raises,
fails on purpose, crashes the interpreter. Real spoold, real tasks."""
import os

from pp_support import (PythonPluginTestCase, failed_files, requires_python_plugin, show, spoolctl, task_files,
                        wait_failed, wait_until)


@requires_python_plugin
class OutcomesTest(PythonPluginTestCase):

    def start(self, **settings):
        settings.setdefault("max_attempts", 3)
        settings.setdefault("backoff", "50ms")
        settings.setdefault("backoff_max", "100ms")
        q = self.py_queue(options={"module": "outcomes", "path": ["apps"], "env.PP_RECORD": self.record}, **settings)
        self.d = self.py_spoold([q])
        self.qdir = self.path("spool", "py")
        return self.d

    def enqueue(self, case, n="0"):
        return spoolctl("--dir", self.qdir, "enqueue", "case=" + case, "n=" + n, "--no-sync").stdout.decode().strip()

    def attempts(self, task_id):
        return [r["attempt"] for r in self.records() if r["id"] == task_id]

    def wait_failed(self, task_id, timeout=20):
        wait_failed(self.d, self.qdir, task_id, timeout)

    def test_an_exception_is_retried_then_failed_with_the_python_error(self):
        self.start()
        tid = self.enqueue("raise", "7")
        self.wait_failed(tid)
        self.assertEqual(self.attempts(tid), [0, 1, 2])
        info = show(self.d.config, "py", tid)
        self.assertEqual(info["state"], "failed")
        self.assertEqual(info["attempt"], "3")
        self.assertIn("ValueError: boom in task 7", info["error"])
        log = self.d.log()
        # The whole traceback, with the task id, is in the log.
        self.assertIn("task %s attempt=0: the callable raised ValueError: boom in task 7" % tid, log)
        self.assertIn("Traceback (most recent call last):", log)
        self.assertIn('raise ValueError("boom in task " + task[b"n"].decode())', log)
        self.assertEqual(task_files(self.qdir), [])

    def test_retry_twice_then_ok_sees_the_attempt_and_is_deleted(self):
        self.start()
        tid = self.enqueue("retry_twice")
        wait_until(lambda: len(self.attempts(tid)) == 3 and task_files(self.qdir) == [], 20,
                   what="three tries, then the task deleted")
        self.assertEqual(self.attempts(tid), [0, 1, 2])
        self.assertEqual(failed_files(self.qdir), [])
        self.assertEqual(self.d.log().count("task %s queue=py plugin=python status=retry" % tid), 2)

    def test_a_non_int_return_is_a_retry_that_says_what_came_back(self):
        self.start(max_attempts=2)
        tid = self.enqueue("garbage")
        self.wait_failed(tid)
        self.assertEqual(self.attempts(tid), [0, 1])
        error = show(self.d.config, "py", tid)["error"]
        self.assertIn("the callable returned 'not a status' (str)", error)
        self.assertIn("treated as Retry", error)

    def test_permanent_error_and_spool_fail_fail_at_once(self):
        self.start(max_attempts=5)
        permanent = self.enqueue("permanent")
        fail = self.enqueue("fail")
        self.wait_failed(permanent)
        self.wait_failed(fail)
        self.assertEqual(self.attempts(permanent), [0])
        self.assertEqual(self.attempts(fail), [0])
        info = show(self.d.config, "py", permanent)
        self.assertIn("spoold.PermanentError: the account is closed", info["error"])
        self.assertEqual(info["attempt"], "1")
        self.assertIn("returned Fail", show(self.d.config, "py", fail)["error"])

    def test_ignore_leaves_the_task_where_it_is(self):
        self.start()
        tid = self.enqueue("ignore")
        self.wait_records(lambda rs: any(r["id"] == tid for r in rs), "the ignore task to run", daemon=self.d)
        wait_until(lambda: "task %s queue=py plugin=python status=ignore" % tid in self.d.log(), 10,
                   what="the ignore line in the log")
        self.assertEqual(task_files(self.qdir), [tid])
        self.assertEqual(failed_files(self.qdir), [])

    def test_an_interpreter_crash_is_a_try_of_its_task_and_the_host_lives(self):
        self.start(max_attempts=2)
        crash = self.enqueue("crash")
        oks = [self.enqueue("ok", str(i)) for i in range(6)]
        self.wait_failed(crash, timeout=30)
        wait_until(lambda: all(len(self.attempts(t)) == 1 for t in oks) and task_files(self.qdir) == [], 20,
                   what="the ok tasks done by the respawned spoolers")
        self.assertEqual(self.attempts(crash), [0, 1])
        log = self.d.log()
        self.assertRegex(log, r"killed by signal 11 \(SIGSEGV\)|killed by signal 11")
        self.assertIn("while handling " + crash, log)
        # faulthandler names the Python line that crashed.
        self.assertIn("Fatal Python error: Segmentation fault", log)
        self.assertIn("outcomes.py", log)
        self.assertIn("spooler", show(self.d.config, "py", crash)["error"])
        # Nothing lost: every task was deleted after Ok or is in failed/.
        self.assertEqual(failed_files(self.qdir), [crash])
        self.assertEqual(self.d.stop(), 0)
