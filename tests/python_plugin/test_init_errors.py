"""A python queue that cannot start says why, naming the queue and the
cause: in the running host's log (the spooler's init() fails), and from
`spoold --check` (exit 2) once the host's check runs init()."""
import os
import unittest

from pp_support import PythonPluginTestCase, requires_python_plugin, spoold_toml, wait_until, PLUGIN_DIR

# Each queue: (name, options, what the message must say).
CASES = [
    ("missing_module", {"module": "no_such_module"},
     ["importing module 'no_such_module' failed", "ModuleNotFoundError: No module named 'no_such_module'"]),
    ("syntax_error", {"file": "apps/broken.py"},
     ["importing file {root}/apps/broken.py failed", "SyntaxError", "(at {root}/apps/broken.py:3)"]),
    ("no_callable", {"module": "plain_module", "path": ["apps"]},
     ["module 'plain_module' did not assign uwsgi.spooler and the option callable is not set"]),
    ("missing_callable", {"module": "plain_module", "path": ["apps"], "callable": "nope"},
     ["module 'plain_module' has no attribute 'nope'"]),
    ("bad_virtualenv", {"module": "plain_module", "virtualenv": "no/such/venv"},
     ["virtualenv {root}/no/such/venv is not a directory"]),
    ("not_a_virtualenv", {"module": "plain_module", "virtualenv": "apps"},
     ["virtualenv {root}/apps has no pyvenv.cfg: it is not a virtual environment"]),
    ("unknown_option", {"module": "plain_module", "modul": "x"},
     ["unknown option 'modul' for the python plugin; the known options are module, file, callable, path, "
      "virtualenv, django_settings, env.NAME"]),
    ("module_and_file", {"module": "plain_module", "file": "apps/plain_module.py"},
     ["exactly one of the options module", "not both"]),
    ("raises_at_import", {"module": "raises_at_import", "path": ["apps"]},
     ["importing module 'raises_at_import' failed: RuntimeError: no database configured "
      "(at {root}/apps/raises_at_import.py:2)"]),
]


@requires_python_plugin
class InitErrorsTest(PythonPluginTestCase):

    def setUp(self):
        super().setUp()
        with open(self.path("apps", "broken.py"), "w") as f:
            f.write("import uwsgi\n\ndef handler(task) return 1\n")
        with open(self.path("apps", "plain_module.py"), "w") as f:
            f.write("VALUE = 1\n")
        with open(self.path("apps", "raises_at_import.py"), "w") as f:
            f.write("import os\nraise RuntimeError('no database configured')\n")
        self.config_text = spoold_toml(PLUGIN_DIR, [self.py_queue(name, options=o) for name, o, _ in CASES])

    def expected(self, name):
        for n, _, texts in CASES:
            if n == name:
                return [t.format(root=self.root) for t in texts]
        raise KeyError(name)

    def test_the_spooler_log_names_the_queue_and_the_cause(self):
        d = self.daemon(self.config_text)

        def all_reported():
            log = d.log()
            return all(any(all(t in line for t in self.expected(name)) and "queue %s:" % name in line
                           for line in log.splitlines()) for name, _, _ in CASES)
        wait_until(all_reported, 30, what="every queue's init error in the log")
        self.assertIsNone(d.proc.poll(), "the host must live on")
        # A failed init ends the spooler cleanly: no crash while the interpreter is torn down.
        self.assertNotIn("Fatal Python error", d.log())
        self.assertNotIn("killed by signal", d.log())
        self.assertEqual(d.stop(), 0)

    def test_check_exits_2_naming_each_queue_and_cause(self):
        config = self.path("check.toml")
        with open(config, "w") as f:
            f.write(self.config_text)
        status, out = self.check_config(config)
        self.assertEqual(status, 2, out)
        for name, _, _ in CASES:
            line = [l for l in out.splitlines() if all(t in l for t in self.expected(name))]
            self.assertTrue(line, "no line for queue %s with %s in:\n%s" % (name, self.expected(name), out))
            self.assertIn(name, line[0])
