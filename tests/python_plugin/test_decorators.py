"""Debian's uwsgidecorators (python3-uwsgidecorators), unchanged, inside
spoold's python plugin: @spool, @spoolraw, @spoolforever and
@spool(pass_arguments=True), enqueued from inside a handler with .spool()."""
import os
import pickle
import unittest

from pp_support import (PythonPluginTestCase, decode_task, failed_files, requires_python_plugin, show, spoolctl,
                        task_files, wait_failed, wait_until, write_raw, encode_task)

UWSGIDECORATORS = "/usr/lib/python3/dist-packages/uwsgidecorators.py"
requires_uwsgidecorators = unittest.skipUnless(os.path.exists(UWSGIDECORATORS),
                                               "Debian's python3-uwsgidecorators is not installed")


@requires_python_plugin
@requires_uwsgidecorators
class DecoratorsTest(PythonPluginTestCase):

    def start(self):
        self.other = self.path("other_queue")
        os.makedirs(self.other)
        q = self.py_queue(options={"module": "decorated", "path": ["apps"], "env.PP_RECORD": self.record},
                          max_attempts=3, backoff="50ms", backoff_max="100ms")
        self.d = self.py_spoold([q])
        self.qdir = self.path("spool", "py")

    def by_fn(self, fn):
        return [r for r in self.records() if r["fn"] == fn]

    def test_every_decorator_runs_unchanged(self):
        self.start()
        # What uwsgidecorators' start.spool(other_queue=...) writes under uWSGI.
        spoolctl("--dir", self.qdir, "enqueue", "ud_spool_func=start", "ud_spool_ret=-2",
                 "other_queue=" + self.other, "--no-sync")

        def settled(records):
            fns = [r["fn"] for r in records]
            return (fns.count("start") == 1 and fns.count("plain") == 1 and fns.count("raw") == 2 and
                    fns.count("forever") == 3 and fns.count("pickled") == 2)
        self.wait_records(settled, "every decorated function to run", daemon=self.d)
        wait_until(lambda: task_files(self.qdir) == [] and task_files(os.path.join(self.qdir, "3")) == []
                   and len(failed_files(self.qdir)) == 1, 10, what="the queue to settle")

        # @spool: once, whatever the function returned; .spool() returned
        # the paths of the files it wrote, as bytes (uWSGI's uwsgi.spool()).
        start = self.by_fn("start")[0]
        self.assertEqual(start["args"], repr((self.other,)))
        paths = start["extra"]["paths"]
        self.assertEqual([os.path.dirname(p) for p in paths],
                         [self.qdir] * 3 + [os.path.join(self.qdir, "3"), self.qdir, self.other])
        # A plain @spool gets the dict of str, with uwsgidecorators' own keys.
        self.assertEqual(self.by_fn("plain")[0]["args"],
                         repr(([("greeting", "hello"), ("ud_spool_func", "plain"), ("ud_spool_ret", "-2")],)))
        # @spoolraw: its return value decides (Retry on the first try, then Ok).
        self.assertEqual([r["attempt"] for r in self.by_fn("raw")], [0, 1])
        # @spoolforever: Retry every time, until spoold's max_attempts.
        self.assertEqual([r["attempt"] for r in self.by_fn("forever")], [0, 1, 2])
        forever = failed_files(self.qdir)[0]
        self.assertEqual(forever, os.path.basename(paths[2]))
        # pass_arguments: pickled args and kwargs arrive as Python objects;
        # at= held one back until its second.
        pickled = {r["args"]: r for r in self.by_fn("pickled")}
        first = repr((1, "two", b"\xff\x00three", {"four": [4.0, None]}))
        self.assertEqual(set(pickled), {first, repr(("later",))})
        self.assertEqual(pickled[first]["kwargs"], repr({"five": (5,)}))
        self.assertGreaterEqual(pickled[repr(("later",))]["t"], start["extra"]["at"])
        # spooler=DIR wrote into that directory, as uWSGI does; the key stays.
        elsewhere = task_files(self.other)
        self.assertEqual(len(elsewhere), 1)
        with open(os.path.join(self.other, elsewhere[0]), "rb") as f:
            args, body = decode_task(f.read())
        self.assertEqual(args[b"spooler"], self.other.encode())
        self.assertEqual(pickle.loads(args[b"args"]), ("elsewhere",))
        self.assertEqual(pickle.loads(args[b"kwargs"]), {})
        self.assertEqual(body, b"")
        self.assert_no_errors_logged(self.d)

    def test_args_that_do_not_unpickle_are_retried_then_failed_and_the_host_lives(self):
        self.start()
        tid = write_raw(self.qdir, encode_task({"ud_spool_func": "pickled", "ud_spool_ret": "-2",
                                                "args": b"\x80\x04not a pickle", "kwargs": pickle.dumps({})}))
        ok = spoolctl("--dir", self.qdir, "enqueue", "ud_spool_func=plain", "ud_spool_ret=-2", "x=1",
                      "--no-sync").stdout.decode().strip()
        wait_failed(self.d, self.qdir, tid)
        self.wait_records(lambda rs: any(r["fn"] == "plain" for r in rs), "the good task", daemon=self.d)
        self.assertNotIn(ok, task_files(self.qdir))
        error = show(self.d.config, "py", tid)["error"]
        self.assertRegex(error, r"UnpicklingError|EOFError|ValueError")
        self.assertIn("gave up after 3", error)
        self.assertIsNone(self.d.proc.poll())
