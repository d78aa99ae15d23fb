"""client/python/uwsgi.py: the `uwsgi` module for producers outside uWSGI.

uwsgi.spool() and the .spool() of Debian's uwsgidecorators functions write
the files uWSGI's uwsgi.spool() would write (keys in the dict's order, the
`spooler`, `priority`, `at` and `body` keys acted on as uWSGI does), read
back here by an independent parser, by spoolctl show and by a real uWSGI
spooler running uwsgidecorators.

Run from this folder: python3 -m unittest -v test_uwsgi_module
The uwsgidecorators cases run their producer with /usr/bin/python3 (Debian's
python3-uwsgidecorators lives there), as a gunicorn worker or manage.py
would; SPOOLCTL_BIN and a uWSGI with python3 add the cross-checks.
"""

import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SPOOLD_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CLIENT_DIR = os.path.join(SOURCE_DIR, "client", "python")
sys.path.insert(0, CLIENT_DIR)

import uwsgi  # noqa: E402  (client/python/uwsgi.py)

DEBIAN_PYTHON = "/usr/bin/python3"
SPOOLCTL = os.environ.get("SPOOLCTL_BIN", "")
NAME_RE = re.compile(r"^uwsgi_spoolfile_on_[^_/]+_\d+_\d+_\d+_\d+_\d+$")


def parse(data):
    """An independent reader of the uWSGI spool format: (pairs, body)."""
    if len(data) < 4 or data[0] != 17 or data[3] != 0:
        raise AssertionError(f"bad header {data[:4]!r}")
    size = int.from_bytes(data[1:3], "little")
    if len(data) < 4 + size:
        raise AssertionError("args block cut off")
    pairs, pos = [], 4
    while pos < 4 + size:
        klen = int.from_bytes(data[pos:pos + 2], "little")
        key = data[pos + 2:pos + 2 + klen]
        pos += 2 + klen
        vlen = int.from_bytes(data[pos:pos + 2], "little")
        pairs.append((key, data[pos + 2:pos + 2 + vlen]))
        pos += 2 + vlen
    if pos != 4 + size:
        raise AssertionError("args block does not add up")
    return pairs, data[4 + size:]


def read_task(path):
    with open(path, "rb") as f:
        return parse(f.read())


def debian_python_has(module):
    """Whether Debian's python finds module (found, not imported: uwsgidecorators needs a uwsgi module)."""
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return False
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([DEBIAN_PYTHON, "-c", probe], capture_output=True, timeout=60).returncode == 0


HAS_DECORATORS = debian_python_has("uwsgidecorators")
requires_decorators = unittest.skipUnless(
    HAS_DECORATORS, "/usr/bin/python3 cannot import uwsgidecorators (apt-get install python3-uwsgidecorators)")


class UwsgiModuleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="uwsgi-module-test-")
        self.queue = os.path.join(self.tmp, "queue")
        self.saved_env = os.environ.get(uwsgi.ENV_SPOOL_DIR)
        os.environ[uwsgi.ENV_SPOOL_DIR] = self.queue
        uwsgi.set_spool_dir(None)

    def tearDown(self):
        uwsgi.set_spool_dir(None)
        if self.saved_env is None:
            os.environ.pop(uwsgi.ENV_SPOOL_DIR, None)
        else:
            os.environ[uwsgi.ENV_SPOOL_DIR] = self.saved_env
        shutil.rmtree(self.tmp, ignore_errors=True)

    def all_files(self):
        out = []
        for dirpath, _, names in os.walk(self.tmp):
            out += [os.path.relpath(os.path.join(dirpath, n), self.tmp) for n in names]
        return sorted(out)

    def test_bytes_keys_as_uwsgi_takes_them(self):
        path = uwsgi.spool({b"type": b"a", b"bin": b"\xff\x00\x01", b"empty": b""})
        self.assertIsInstance(path, bytes)
        self.assertEqual(os.path.dirname(path), os.fsencode(self.queue))
        self.assertRegex(os.path.basename(path).decode(), NAME_RE)
        self.assertEqual(read_task(path), ([(b"type", b"a"), (b"bin", b"\xff\x00\x01"), (b"empty", b"")], b""))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(self.all_files(), ["queue/" + os.path.basename(path).decode()])

    def test_str_keys_and_values_and_numbers(self):
        path = uwsgi.spool({"type": "é", b"n": 5, "f": 1.5, "ba": bytearray(b"xy"), "mv": memoryview(b"z")})
        self.assertEqual(read_task(path)[0], [(b"type", "é".encode()), (b"n", b"5"), (b"f", b"1.5"),
                                              (b"ba", b"xy"), (b"mv", b"z")])

    def test_keyword_form_and_send_to_spooler(self):
        path = uwsgi.spool(type="a", body="hello")
        self.assertEqual(read_task(path), ([(b"type", b"a")], b"hello"))
        path = uwsgi.send_to_spooler({b"type": b"b"})
        self.assertEqual(read_task(path), ([(b"type", b"b")], b""))

    def test_body_key_becomes_the_body_and_leaves_the_callers_dict(self):
        task = {b"type": b"a", b"body": b"\x00binary body" * 10000, b"after": b"1"}
        path = uwsgi.spool(task)
        self.assertEqual(read_task(path), ([(b"type", b"a"), (b"after", b"1")], b"\x00binary body" * 10000))
        self.assertEqual(task, {b"type": b"a", b"after": b"1"}, "uWSGI removes b'body' from the caller's dict")
        task = {"body": "text body é"}
        path = uwsgi.spool(task)
        self.assertEqual(read_task(path), ([], "text body é".encode()))
        self.assertEqual(task, {})

    def test_a_body_that_is_not_bytes_or_str_stays_an_argument_as_in_uwsgi(self):
        task = {b"body": bytearray(b"kept as an arg")}
        path = uwsgi.spool(task)
        self.assertEqual(read_task(path), ([(b"body", b"kept as an arg")], b""))
        self.assertIn(b"body", task)

    def test_spooler_key_names_another_directory_and_stays_in_the_file(self):
        other = os.path.join(self.tmp, "other")
        path = uwsgi.spool({b"spooler": os.fsencode(other), b"type": b"x"})
        self.assertEqual(os.path.dirname(path), os.fsencode(other))
        self.assertEqual(read_task(path)[0], [(b"spooler", os.fsencode(other)), (b"type", b"x")])
        self.assertFalse(os.path.exists(self.queue), "nothing goes to the default directory")
        path = uwsgi.spool({"spooler": other})
        self.assertEqual(os.path.dirname(path), os.fsencode(other))
        self.assertEqual(stat.S_IMODE(os.stat(other).st_mode), 0o700)

    def test_an_empty_spooler_key_means_the_default_directory_as_in_uwsgi(self):
        path = uwsgi.spool({b"spooler": b"", b"k": b"v"})
        self.assertEqual(os.path.dirname(path), os.fsencode(self.queue))
        self.assertEqual(read_task(path)[0], [(b"spooler", b""), (b"k", b"v")])

    def test_at_sets_the_mtime_and_stays_in_the_file(self):
        path = uwsgi.spool({b"at": b"2000000000", b"k": b"v"})
        self.assertEqual(os.stat(path).st_mtime_ns, 2000000000 * 10**9)
        self.assertEqual(read_task(path)[0], [(b"at", b"2000000000"), (b"k", b"v")])
        path = uwsgi.spool({"at": "1900000000.25"})
        self.assertEqual(os.stat(path).st_mtime_ns, 1900000000 * 10**9 + 250000000)
        self.assertEqual(read_task(path)[0], [(b"at", b"1900000000.25")])
        soon = time.time() + 3600.5
        path = uwsgi.spool({"at": soon})
        self.assertEqual(read_task(path)[0], [(b"at", repr(soon).encode())])
        self.assertAlmostEqual(os.stat(path).st_mtime, soon, delta=1e-6)

    def test_at_zero_leaves_the_mtime_as_uwsgi_does(self):
        before = time.time_ns()
        path = uwsgi.spool({b"at": b"0"})
        self.assertGreaterEqual(os.stat(path).st_mtime_ns + 10**7, before)

    def test_priority_puts_the_task_in_its_subdirectory(self):
        path = uwsgi.spool({b"priority": b"3", b"k": b"v"})
        self.assertEqual(os.path.dirname(path), os.fsencode(os.path.join(self.queue, "3")))
        self.assertEqual(read_task(path)[0], [(b"priority", b"3"), (b"k", b"v")])
        path = uwsgi.spool({"priority": 12, "spooler": os.path.join(self.tmp, "other")})
        self.assertEqual(os.path.dirname(path), os.fsencode(os.path.join(self.tmp, "other", "12")))

    def test_refusals_name_the_problem_and_write_nothing(self):
        cases = [
            ({b"k": None}, "b'k'"), ({"k": True}, "'k'"), ({b"k": {"a": 1}}, "dict"),
            ({5: b"v"}, "keys must be bytes or str"), ({b"": b"v"}, "empty key"),
            ({b"type": b"a", "type": "b"}, "given twice"), ({b"body": b"x", "body": "y"}, "both"),
            ({b"priority": b"high"}, "digits"), ({b"priority": b"../x"}, "digits"),
            ({b"priority": b"1234567890"}, "digits"), ({b"at": b"soon"}, "unix seconds"),
            ({b"at": b"-5"}, "unix seconds"), ({b"at": b"99999999999999"}, "out of range"),
            ({b"spooler": b"relative/dir"}, "not an absolute path"),
            ({b"big": b"x" * 65529}, "65535"),
        ]
        for task, message in cases:
            with self.subTest(task=repr(task)[:60]):
                copy = dict(task)
                with self.assertRaises(uwsgi.SpoolError) as cm:
                    uwsgi.spool(task)
                self.assertIsInstance(cm.exception, ValueError, "code written for uWSGI catches ValueError")
                self.assertIn(message, str(cm.exception))
                self.assertEqual(task, copy, "a refused task leaves the caller's dict alone")
        for args, kwargs, message in [(("not a dict",), {}, "must be a dictionary"), (({}, {}), {}, "one dict"),
                                      (({b"a": b"b"},), {"c": "d"}, "not both")]:
            with self.assertRaises(uwsgi.SpoolError) as cm:
                uwsgi.spool(*args, **kwargs)
            self.assertIn(message, str(cm.exception))
        self.assertEqual(self.all_files(), [])

    def test_the_largest_args_block_fits(self):
        path = uwsgi.spool({b"big": b"x" * 65528})
        self.assertEqual(os.path.getsize(path), 4 + 65535)

    def test_no_directory_says_to_set_spoold_spool_dir(self):
        del os.environ[uwsgi.ENV_SPOOL_DIR]
        self.assertIsNone(uwsgi.spool_dir())
        with self.assertRaises(uwsgi.SpoolError) as cm:
            uwsgi.spool({b"k": b"v"})
        self.assertIn("set the environment variable SPOOLD_SPOOL_DIR", str(cm.exception))
        self.assertEqual(uwsgi.opt, {"spooler": b""})
        path = uwsgi.spool({b"spooler": os.fsencode(self.queue)})
        self.assertEqual(os.path.dirname(path), os.fsencode(self.queue))

    def test_relative_spoold_spool_dir_is_refused(self):
        os.environ[uwsgi.ENV_SPOOL_DIR] = "spool/tasks_a"
        with self.assertRaises(uwsgi.SpoolError) as cm:
            uwsgi.spool({b"k": b"v"})
        self.assertIn("SPOOLD_SPOOL_DIR 'spool/tasks_a' is not an absolute path", str(cm.exception))
        with self.assertRaises(uwsgi.SpoolError):
            uwsgi.set_spool_dir("relative")

    def test_set_spool_dir_wins_over_the_variable_until_reset(self):
        mine = os.path.join(self.tmp, "mine")
        uwsgi.set_spool_dir(mine)
        self.assertEqual(uwsgi.spool_dir(), mine)
        self.assertEqual(uwsgi.opt["spooler"], os.fsencode(mine))
        self.assertEqual(os.path.dirname(uwsgi.spool({b"k": b"v"})), os.fsencode(mine))
        uwsgi.set_spool_dir(None)
        self.assertEqual(os.path.dirname(uwsgi.spool({b"k": b"v"})), os.fsencode(self.queue))

    def test_a_write_failure_names_the_directory(self):
        blocker = os.path.join(self.tmp, "file")
        with open(blocker, "w"):
            pass
        target = os.path.join(blocker, "queue")
        with self.assertRaises(uwsgi.SpoolError) as cm:
            uwsgi.spool({b"spooler": os.fsencode(target)})
        self.assertIn(target, str(cm.exception))
        self.assertIsInstance(cm.exception.__cause__, OSError)

    def test_what_uwsgidecorators_needs_at_import(self):
        self.assertEqual((uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE), (-2, -1, 0))
        self.assertNotEqual(uwsgi.masterpid(), 0)
        self.assertIn("spooler", uwsgi.opt)
        self.assertFalse(uwsgi.i_am_the_spooler())

    def test_uwsgi_features_that_do_not_exist_outside_it_are_attribute_errors(self):
        for name in ("register_signal", "lock", "cache_get", "mule_msg"):
            with self.assertRaises(AttributeError) as cm:
                getattr(uwsgi, name)
            self.assertIn(name, str(cm.exception))

    @unittest.skipUnless(SPOOLCTL, "SPOOLCTL_BIN is not set")
    def test_spoolctl_show_reads_what_the_module_writes(self):
        path = uwsgi.spool({b"type": b"mail", "to": "ann@example.org", b"bin": b"\xff\x00", b"priority": b"4",
                            b"at": b"1000000000", b"body": b"hello body"})
        task_id = os.path.basename(path).decode()
        out = subprocess.run([SPOOLCTL, "--dir", self.queue, "show", task_id], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        args = re.findall(r"^  (\S+) = (.*)$", out.stdout, re.M)
        self.assertEqual(args, [("type", "mail"), ("to", "ann@example.org"), ("bin", "\\xff\\x00"),
                                ("priority", "4"), ("at", "1000000000")])
        self.assertRegex(out.stdout, r"body:\s+10 bytes")
        self.assertRegex(out.stdout, r"priority:\s+4")
        self.assertRegex(out.stdout, r"state:\s+pending")


PRODUCER_SCRIPT = r"""
import json, sys
import uwsgi
assert uwsgi.__file__.startswith(sys.argv[1]), uwsgi.__file__
import uwsgi_module_tasks as t
paths = {
    "plain": t.plain.spool({"type": "a", "message": "héllo"}),
    "plain_call": t.plain({b"type": b"b"}),
    "raw": t.raw.spool(type="c"),
    "forever": t.forever.spool({"n": "1"}),
    "args": t.add_row.spool(1, "two", [3.0, None], name="row", spooler=sys.argv[2], at="1000000000",
                            priority="7", body=b"the body"),
    "args_plain": t.add_row(),
}
print(json.dumps({k: v.decode() for k, v in paths.items()}))
"""


@requires_decorators
class DecoratorsTest(unittest.TestCase):
    """The producer side of uwsgidecorators, run as a script by Debian's python."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="uwsgi-module-decorators-")
        self.queue = os.path.join(self.tmp, "queue")
        self.other = os.path.join(self.tmp, "other")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_producer(self, script, *argv, spool_dir=None):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([CLIENT_DIR, HERE]), PYTHONDONTWRITEBYTECODE="1")
        env.pop(uwsgi.ENV_SPOOL_DIR, None)
        if spool_dir:
            env[uwsgi.ENV_SPOOL_DIR] = spool_dir
        return subprocess.run([DEBIAN_PYTHON, "-c", script, *argv], capture_output=True, text=True, env=env,
                              timeout=60, cwd=self.tmp)

    def test_spool_functions_write_what_uwsgi_would(self):
        p = self.run_producer(PRODUCER_SCRIPT, CLIENT_DIR, self.other, spool_dir=self.queue)
        self.assertEqual(p.returncode, 0, p.stderr)
        paths = json.loads(p.stdout)

        self.assertEqual(read_task(paths["plain"]), (
            [(b"ud_spool_func", b"plain"), (b"ud_spool_ret", b"-2"), (b"type", b"a"),
             (b"message", "héllo".encode())], b""))
        self.assertEqual(read_task(paths["plain_call"])[0],
                         [(b"ud_spool_func", b"plain"), (b"ud_spool_ret", b"-2"), (b"type", b"b")])
        self.assertEqual(read_task(paths["raw"])[0], [(b"ud_spool_func", b"raw"), (b"type", b"c")])
        self.assertEqual(read_task(paths["forever"])[0],
                         [(b"ud_spool_func", b"forever"), (b"ud_spool_ret", b"-1"), (b"n", b"1")])
        for name in ("plain", "plain_call", "raw", "forever", "args_plain"):
            self.assertEqual(os.path.dirname(paths[name]), self.queue, name)

        # pass_arguments: the special kwargs are lifted out as spooler keys,
        # the rest pickled; the body goes after the args block.
        self.assertEqual(os.path.dirname(paths["args"]), os.path.join(self.other, "7"))
        self.assertEqual(os.stat(paths["args"]).st_mtime_ns, 1000000000 * 10**9)
        pairs, body = read_task(paths["args"])
        self.assertEqual(body, b"the body")
        keys = [k for k, _ in pairs]
        self.assertEqual(keys, [b"ud_spool_func", b"ud_spool_ret", b"spooler", b"priority", b"at", b"args",
                                b"kwargs"])
        values = dict(pairs)
        self.assertEqual(values[b"spooler"], os.fsencode(self.other))
        self.assertEqual(values[b"ud_spool_func"], b"add_row")
        self.assertEqual(pickle.loads(values[b"args"]), (1, "two", [3.0, None]))
        self.assertEqual(pickle.loads(values[b"kwargs"]), {"name": "row"})
        pairs, body = read_task(paths["args_plain"])
        self.assertEqual((pickle.loads(dict(pairs)[b"args"]), pickle.loads(dict(pairs)[b"kwargs"]), body),
                         ((), {}, b""))

    def test_decorated_modules_import_without_a_directory_and_spool_says_what_is_missing(self):
        p = self.run_producer("import uwsgi_module_tasks as t\nt.plain.spool({'a': 'b'})")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("uwsgi.SpoolError: uwsgi.spool(): no spool directory: set the environment variable "
                      "SPOOLD_SPOOL_DIR", p.stderr)
        self.assertFalse(os.path.exists(self.queue))


def uwsgi_runs_python3():
    sys.path.insert(0, os.path.join(HERE, "..", "compat"))
    try:
        import compat_support
    except Exception as e:  # noqa: BLE001  (the harness needs the e2e environment)
        return None, "tests/compat/compat_support.py did not load: %s" % e
    finally:
        sys.path.pop(0)
    return compat_support, compat_support.UWSGI_WHY


_compat, _why = uwsgi_runs_python3()
requires_uwsgi = unittest.skipUnless(_compat is not None and _compat.UWSGI_OK and HAS_DECORATORS,
                                     _why or "uwsgidecorators is missing")
CompatBase = _compat.CompatTestCase if _compat is not None else unittest.TestCase


@requires_uwsgi
class RealUwsgiConsumesTest(CompatBase):
    """Files written by this module, run by a real uWSGI spooler whose app
    imports the same tasks module through uwsgidecorators."""

    def start_spooler(self, spool_dir, record):
        # client/python is on the spooler's path too: its built-in `uwsgi`
        # module must win over the file, or no task would ever run.
        argv = ["--need-plugin", "python3", "--master", "--die-on-term", "--spooler", spool_dir,
                "--spooler-frequency", "1", "--import", "uwsgi_module_tasks"]
        env = {"UWSGI_MODULE_TEST_RECORD": record, "PYTHONPATH": os.pathsep.join([CLIENT_DIR, HERE]),
               "PYTHONDONTWRITEBYTECODE": "1"}
        u = _compat.UwsgiProcess(self.root, "uwsgi-spooler", argv, env=env, spool_dirs=[spool_dir])
        self.uwsgis.append(u)
        u.start()
        u.wait_log("spawned the uWSGI spooler on dir", timeout=30)
        return u

    def test_a_uwsgi_spooler_runs_the_tasks(self):
        queue = self.path("spool", "tasks")
        record = self.path("record.jsonl")
        spooler = self.start_spooler(queue, record)
        script = ("import sys, uwsgi_module_tasks as t\n"
                  "t.add_row.spool(1, 'two', [3.0, None], name='row', at='1000000000', body=b'ignored')\n"
                  "t.plain.spool({'type': 'a', 'message': 'h\\u00e9llo'})\n"
                  "t.raw.spool({b'bin': b'\\xc3\\xa9'})\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([CLIENT_DIR, HERE]), PYTHONDONTWRITEBYTECODE="1",
                   SPOOLD_SPOOL_DIR=os.path.realpath(queue), UWSGI_MODULE_TEST_RECORD=record)
        p = subprocess.run([DEBIAN_PYTHON, "-c", script], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

        def records():
            return [json.loads(line) for line in _compat.complete_lines(record)]
        got = _compat.wait_until(lambda: len(records()) >= 3 and records(), 30,
                                 what="the uWSGI spooler to run 3 tasks")
        by_f = {r["f"]: r for r in got}
        self.assertEqual(by_f["add_row"]["args"], [1, "two", [3.0, None]])
        self.assertEqual(by_f["add_row"]["kwargs"], {"name": "row"})
        self.assertEqual(by_f["plain"]["vars"], {"ud_spool_func": "plain", "ud_spool_ret": "-2", "type": "a",
                                                 "message": "héllo"})
        self.assertEqual(by_f["raw"]["vars"], {"ud_spool_func": "raw", "bin": "é"})
        for r in got:
            self.assertEqual(r["module"], "built-in", "under uWSGI its own uwsgi module wins over the file")
        _compat.wait_until(lambda: _compat.task_files(queue) == [], 20, what="uWSGI to delete the tasks")
        self.assertNotIn("unable to find the spooler function", spooler.log())
        self.assertEqual(len(records()), 3)


if __name__ == "__main__":
    unittest.main()
