"""The python plugin's options: module/file, callable, path, env,
virtualenv, django_settings, seen from inside the interpreter."""
import os
import subprocess
import unittest

from pp_support import PythonPluginTestCase, requires_python_plugin, spoolctl, task_files, wait_until

DEBIAN_PYTHON = "/usr/bin/python3"


def have_django():
    try:
        return subprocess.run([DEBIAN_PYTHON, "-c", "import django"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@requires_python_plugin
class OptionsTest(PythonPluginTestCase):

    def run_one(self, options, **settings):
        options = dict(options)
        options.setdefault("env.PP_RECORD", self.record)
        d = self.py_spoold([self.py_queue(options=options, **settings)])
        qdir = self.path("spool", "py")
        spoolctl("--dir", qdir, "enqueue", "a=1", "--no-sync")
        report = self.wait_records(lambda rs: rs[0] if rs else None, "the task's report", daemon=d)
        wait_until(lambda: task_files(qdir) == [], 10, what="the task deleted")
        self.assert_no_errors_logged(d)
        return d, report

    def test_module_path_env_and_a_dotted_callable(self):
        # The producer-side uwsgi.py an app may ship does not shadow the spooler's module.
        with open(self.path("apps", "uwsgi.py"), "w") as f:
            f.write("raise ImportError('the uwsgi.py on sys.path was imported')\n")
        d, r = self.run_one({"module": "opts_app", "callable": "Handlers.nested", "path": ["apps"],
                             "env.PP_FLAVOUR": "mint"})
        # path entries resolve against the config file's folder and come first.
        self.assertEqual(r["path"][0], self.path("apps"))
        self.assertEqual(r["cwd"], self.root)
        self.assertEqual(r["flavour"], "mint")
        self.assertEqual(r["queue"], "py")
        self.assertEqual(r["queue_dir"], self.path("spool", "py"))
        self.assertEqual(r["opt_spooler"], self.path("spool", "py"))
        self.assertEqual(r["masterpid"], d.proc.pid)
        self.assertEqual(r["worker_id"], 0)
        self.assertIn("(built-in)", r["uwsgi_module"])
        # Debian's interpreter, with its own dist-packages.
        self.assertTrue(os.path.realpath(r["executable"]).startswith("/usr/bin/python3"), r["executable"])
        self.assertEqual(r["prefix"], "/usr")

    def test_threads_of_the_app_run_while_the_spooler_waits(self):
        ticks = self.path("ticks")
        d = self.py_spoold([self.py_queue(options={"module": "ticker", "path": ["apps"],
                                                    "env.PP_RECORD": self.record, "env.PP_TICKS": ticks})])
        qdir = self.path("spool", "py")
        spoolctl("--dir", qdir, "enqueue", "a=1", "--no-sync")
        self.wait_records(lambda rs: rs, "the task", daemon=d)
        wait_until(lambda: task_files(qdir) == [], 10, what="the task deleted")

        def count():
            try:
                with open(ticks) as f:
                    return f.read().count("\n")
            except FileNotFoundError:
                return 0
        after_task = count()
        # The spooler now sits in recv() for the next task; the thread must go on.
        wait_until(lambda: count() >= after_task + 20, 20, what="20 more ticks of the app's thread while idle")
        self.assert_no_errors_logged(d)

    def test_file_option_imports_a_path(self):
        _, r = self.run_one({"file": "apps/opts_app.py", "callable": "handle"})
        self.assertEqual(r["queue"], "py")

    def test_virtualenv_site_packages_replace_the_system_ones(self):
        venv = self.path("venv")
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", venv], check=True, timeout=120,
                       capture_output=True)
        site = os.path.join(venv, "lib", "python3.%s" % self.debian_minor(), "site-packages")
        with open(os.path.join(site, "venv_only.py"), "w") as f:
            f.write("VALUE = 1\n")
        _, r = self.run_one({"module": "opts_app", "callable": "handle", "path": ["apps"], "virtualenv": "venv"})
        self.assertEqual(r["prefix"], venv)
        self.assertEqual(r["base_prefix"], "/usr")
        self.assertIn(site, r["path"])
        self.assertTrue(r["venv_only"])
        # A venv made without --system-site-packages hides Debian's dist-packages.
        self.assertFalse(r["uwsgidecorators"])
        self.assertNotIn("/usr/lib/python3/dist-packages", r["path"])

    @unittest.skipUnless(have_django(), "Debian's python3-django is not installed")
    def test_django_settings_sets_up_django_before_the_import(self):
        _, r = self.run_one({"module": "opts_app", "callable": "handle", "path": ["apps"],
                             "django_settings": "pp_settings"})
        self.assertEqual(r["django_settings"], "pp_settings")
        self.assertIs(r["django_ready"], True)

    def debian_minor(self):
        out = subprocess.run([DEBIAN_PYTHON, "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                             timeout=30, check=True)
        return out.stdout.decode().strip()
