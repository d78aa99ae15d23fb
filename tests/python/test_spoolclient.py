"""client/python/spoolclient.py: the bytes it writes, where and when.

Run from this folder: python3 -m unittest -v test_spoolclient
SPOOLCTL_BIN (spoolctl must read what spoolclient writes) and
SPOOLD_CLIENT_LIB (the C API through ctypes) add the cross-checks.
"""

import ctypes
import datetime
import os
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

import spoolclient  # noqa: E402

NAME_RE = re.compile(r"^uwsgi_spoolfile_on_[^_/]+_\d+_\d+_\d+_\d+_\d+$")


def parse(data):
    """An independent reader of the uWSGI spool format: (pairs, body)."""
    if len(data) < 4 or data[0] != 17 or data[3] != 0:
        raise AssertionError(f"bad header {data[:4]!r}")
    size = int.from_bytes(data[1:3], "little")
    block = data[4:4 + size]
    if len(block) != size:
        raise AssertionError("args block cut off")
    pairs, pos = [], 0
    while pos < size:
        klen = int.from_bytes(block[pos:pos + 2], "little")
        key = block[pos + 2:pos + 2 + klen]
        pos += 2 + klen
        vlen = int.from_bytes(block[pos:pos + 2], "little")
        value = block[pos + 2:pos + 2 + vlen]
        pos += 2 + vlen
        pairs.append((key, value))
    if pos != size:
        raise AssertionError("args block does not add up")
    return pairs, data[4 + size:]


def read(path):
    with open(path, "rb") as f:
        return f.read()


class SpoolClientTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="spoolclient-test-")
        self.queue = os.path.join(self.tmp, "queue")
        self.old_umask = os.umask(0o022)

    def tearDown(self):
        os.umask(self.old_umask)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def files(self, *sub):
        return sorted(os.listdir(os.path.join(self.queue, *sub)))

    def test_format_byte_for_byte(self):
        task_id = spoolclient.enqueue(self.queue, {"hello": "world"})
        expected = bytes.fromhex("11 0e 00 00") + b"\x05\x00hello\x05\x00world"
        self.assertEqual(read(os.path.join(self.queue, task_id)), expected)

    def test_name_is_the_uwsgi_pattern_and_unique(self):
        ids = {spoolclient.enqueue(self.queue, sync=False) for _ in range(50)}
        self.assertEqual(len(ids), 50)
        for task_id in ids:
            self.assertRegex(task_id, NAME_RE)
        self.assertEqual(sorted(ids), self.files())

    def test_str_bytes_int_float_mix(self):
        task_id = spoolclient.enqueue(
            self.queue, {"s": "text", b"b": b"raw", "i": 42, "f": 2.5, "neg": -7, "u": "h\u00e9llo \u2603"},
            body="b\u00f6dy")
        pairs, body = parse(read(os.path.join(self.queue, task_id)))
        self.assertEqual(pairs, [(b"s", b"text"), (b"b", b"raw"), (b"i", b"42"), (b"f", b"2.5"), (b"neg", b"-7"),
                                 (b"u", "h\u00e9llo \u2603".encode())])
        self.assertEqual(body, "b\u00f6dy".encode())

    def test_pairs_keep_order_and_duplicates(self):
        task_id = spoolclient.enqueue(self.queue, [("k", "1"), ("k", "2"), (b"z", bytearray(b"y"))])
        pairs, _ = parse(read(os.path.join(self.queue, task_id)))
        self.assertEqual(pairs, [(b"k", b"1"), (b"k", b"2"), (b"z", b"y")])

    def test_non_utf8_bytes(self):
        key, value, body = b"\xff\xfek", b"\x00\x80\xff", bytes(range(256))
        task_id = spoolclient.enqueue(self.queue, {key: value}, body=body)
        pairs, got_body = parse(read(os.path.join(self.queue, task_id)))
        self.assertEqual(pairs, [(key, value)])
        self.assertEqual(got_body, body)

    def test_empty_body_and_empty_value(self):
        task_id = spoolclient.enqueue(self.queue, {"k": ""})
        data = read(os.path.join(self.queue, task_id))
        self.assertEqual(data, bytes((17, 5, 0, 0)) + b"\x01\x00k\x00\x00")
        task_id = spoolclient.enqueue(self.queue, body=b"")
        self.assertEqual(read(os.path.join(self.queue, task_id)), bytes((17, 0, 0, 0)))

    def test_args_block_of_exactly_65535_bytes(self):
        task_id = spoolclient.enqueue(self.queue, {"k": "v" * (65535 - 4 - 1)})
        data = read(os.path.join(self.queue, task_id))
        self.assertEqual(data[1:3], b"\xff\xff")
        self.assertEqual(len(data), 4 + 65535)
        self.assertEqual(parse(data)[0][0][1], b"v" * 65530)

    def test_one_byte_more_is_refused(self):
        with self.assertRaises(ValueError) as cm:
            spoolclient.enqueue(self.queue, {"k": "v" * (65535 - 4 - 1 + 1)})
        self.assertIn("body", str(cm.exception))
        self.assertIn("65536", str(cm.exception))
        self.assertFalse(os.path.exists(self.queue) and os.listdir(self.queue))

    def test_keys_added_for_at_and_priority_count_toward_the_limit(self):
        with self.assertRaises(ValueError):
            spoolclient.enqueue(self.queue, {"k": "v" * (65535 - 4 - 1)}, priority=1)

    def test_refused_values(self):
        for args, error in [({"k": None}, TypeError), ({"k": True}, TypeError), ({"": "v"}, ValueError),
                            ({b"": "v"}, ValueError), ({"k": object()}, TypeError), ({1: "v"}, TypeError),
                            ([("only-key",)], TypeError)]:
            with self.subTest(args=args):
                with self.assertRaises(error):
                    spoolclient.enqueue(self.queue, args)
        with self.assertRaises(TypeError):
            spoolclient.enqueue(self.queue, body=12)
        for kwargs in [dict(priority=-1), dict(priority="1a"), dict(priority="1234567890"), dict(at=-5),
                       dict(delay=-1), dict(at=1, delay=1), dict(at=float("nan"))]:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError):
                    spoolclient.enqueue(self.queue, **kwargs)
        with self.assertRaises(TypeError):
            spoolclient.enqueue(self.queue, priority=True)
        with self.assertRaises(ValueError):
            spoolclient.enqueue(self.queue, {"at": "1"}, at=2)
        with self.assertRaises(ValueError):
            spoolclient.enqueue(self.queue, {"priority": "1"}, priority=2)
        self.assertFalse(os.path.exists(self.queue) and os.listdir(self.queue))

    def test_at_unix_seconds_sets_exact_mtime_and_at_key(self):
        for at, ns in [(1700000000, 1700000000 * 10**9), (1700000000.123, 1700000000123000000),
                       (4102444800.5, 4102444800500000000)]:
            with self.subTest(at=at):
                task_id = spoolclient.enqueue(self.queue, {"a": "b"}, at=at)
                path = os.path.join(self.queue, task_id)
                self.assertEqual(os.lstat(path).st_mtime_ns, ns)
                pairs, _ = parse(read(path))
                self.assertEqual(pairs[-1], (b"at", str(ns // 10**9).encode()))

    def test_at_datetime_aware_and_naive_local(self):
        aware = datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        expected = int(datetime.datetime(2031, 5, 6, 5, 8, 9, tzinfo=datetime.timezone.utc).timestamp()) * 10**9 \
            + 123456000
        task_id = spoolclient.enqueue(self.queue, at=aware)
        self.assertEqual(os.lstat(os.path.join(self.queue, task_id)).st_mtime_ns, expected)

        naive = datetime.datetime(2031, 5, 6, 7, 8, 9, 250000)
        expected_naive = int(time.mktime(naive.timetuple())) * 10**9 + 250000000
        task_id = spoolclient.enqueue(self.queue, at=naive)
        path = os.path.join(self.queue, task_id)
        self.assertEqual(os.lstat(path).st_mtime_ns, expected_naive)
        self.assertEqual(parse(read(path))[0], [(b"at", str(expected_naive // 10**9).encode())])

    def test_delay_seconds_and_timedelta(self):
        for delay, ns in [(0.5, 500_000_000), (datetime.timedelta(minutes=2, milliseconds=250), 120_250_000_000),
                          (3, 3 * 10**9)]:
            with self.subTest(delay=delay):
                before = time.time_ns()
                task_id = spoolclient.enqueue(self.queue, delay=delay)
                after = time.time_ns()
                path = os.path.join(self.queue, task_id)
                mtime = os.lstat(path).st_mtime_ns
                self.assertGreaterEqual(mtime, before + ns)
                self.assertLessEqual(mtime, after + ns)
                self.assertEqual(parse(read(path))[0], [(b"at", str(mtime // 10**9).encode())])

    def test_at_key_in_args_sets_the_mtime_like_uwsgi(self):
        task_id = spoolclient.enqueue(self.queue, {"at": "4102444800"})
        self.assertEqual(os.lstat(os.path.join(self.queue, task_id)).st_mtime_ns, 4102444800 * 10**9)

    def test_priority_subdirectory(self):
        for priority, sub in [(5, "5"), ("10", "10"), (b"0", "0")]:
            with self.subTest(priority=priority):
                task_id = spoolclient.enqueue(self.queue, {"x": "y"}, priority=priority)
                path = os.path.join(self.queue, sub, task_id)
                self.assertTrue(os.path.isfile(path))
                self.assertEqual(parse(read(path))[0], [(b"x", b"y"), (b"priority", sub.encode())])
                self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(self.queue, sub)).st_mode), 0o700)
        task_id = spoolclient.enqueue(self.queue, {"priority": "7"})
        self.assertTrue(os.path.isfile(os.path.join(self.queue, "7", task_id)))
        # A non-numeric priority key stays a plain key, in the top directory.
        task_id = spoolclient.enqueue(self.queue, {"priority": "high"})
        self.assertTrue(os.path.isfile(os.path.join(self.queue, task_id)))

    def test_priority_symlink_is_not_followed(self):
        os.makedirs(self.queue)
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.mkdir(elsewhere)
        os.symlink(elsewhere, os.path.join(self.queue, "3"))
        with self.assertRaises(OSError) as cm:
            spoolclient.enqueue(self.queue, priority=3)
        self.assertIn(os.path.join(self.queue, "3"), str(cm.exception))
        self.assertEqual(os.listdir(elsewhere), [])

    def test_atomic_write_leaves_no_temp_and_is_private(self):
        for sync in (True, False):
            spoolclient.enqueue(self.queue, {"a": "1"}, body="x" * 100000, sync=sync)
        names = self.files()
        self.assertEqual(len(names), 2)
        for name in names:
            self.assertFalse(name.startswith(".spoold-tmp-"))
            st = os.lstat(os.path.join(self.queue, name))
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_failed_write_removes_its_temp_file(self):
        os.makedirs(self.queue)
        original = os.utime

        def failing_utime(*args, **kwargs):
            raise OSError(28, "No space left on device")

        spoolclient.os.utime = failing_utime
        try:
            with self.assertRaises(OSError) as cm:
                spoolclient.enqueue(self.queue, at=1700000000)
        finally:
            spoolclient.os.utime = original
        self.assertIn(self.queue, str(cm.exception))
        self.assertEqual(self.files(), [])

    def test_missing_directory_is_created_private(self):
        nested = os.path.join(self.queue, "a", "b")
        task_id = spoolclient.enqueue(nested)
        self.assertTrue(os.path.isfile(os.path.join(nested, task_id)))
        self.assertEqual(stat.S_IMODE(os.lstat(nested).st_mode), 0o700)

    def test_unwritable_directory_names_the_path(self):
        with self.assertRaises(OSError) as cm:
            spoolclient.enqueue("/etc/passwd/x")
        self.assertIn("/etc/passwd", str(cm.exception))

    def test_command_line(self):
        out = subprocess.run([sys.executable, os.path.join(CLIENT_DIR, "spoolclient.py"), self.queue, "a=1", "b=",
                              "--body", "hi", "--priority", "2"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        task_id = out.stdout.strip()
        self.assertRegex(task_id, NAME_RE)
        pairs, body = parse(read(os.path.join(self.queue, "2", task_id)))
        self.assertEqual(pairs, [(b"a", b"1"), (b"b", b""), (b"priority", b"2")])
        self.assertEqual(body, b"hi")
        bad = subprocess.run([sys.executable, os.path.join(CLIENT_DIR, "spoolclient.py"), self.queue, "novalue"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("novalue", bad.stderr)

    @unittest.skipUnless(os.environ.get("SPOOLCTL_BIN"), "SPOOLCTL_BIN is not set")
    def test_spoolctl_reads_what_spoolclient_writes(self):
        task_id = spoolclient.enqueue(self.queue, {"type": "mail", b"bin": b"\xff\x00"}, body="hello body",
                                      priority=4)
        out = subprocess.run([os.environ["SPOOLCTL_BIN"], "--dir", self.queue, "show", task_id],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("type = mail", out.stdout)
        self.assertIn("bin = \\xff\\x00", out.stdout)
        self.assertIn("priority = 4", out.stdout)
        self.assertRegex(out.stdout, r"body:\s+10 bytes")
        self.assertRegex(out.stdout, r"state:\s+pending")


@unittest.skipUnless(os.environ.get("SPOOLD_CLIENT_LIB"), "SPOOLD_CLIENT_LIB is not set")
class ClientLibraryTest(unittest.TestCase):
    """The C API of libspoold_client.so, called as a C program would."""

    @classmethod
    def setUpClass(cls):
        lib = ctypes.CDLL(os.environ["SPOOLD_CLIENT_LIB"])
        lib.spoold_task_builder_new.restype = ctypes.c_void_p
        lib.spoold_task_builder_free.argtypes = [ctypes.c_void_p]
        lib.spoold_task_builder_add_arg.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                                    ctypes.c_char_p, ctypes.c_size_t]
        lib.spoold_task_builder_set_body.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.spoold_task_builder_set_at_ns.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.spoold_task_builder_set_priority.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.spoold_enqueue.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.c_char_p, ctypes.c_size_t]
        lib.spoold_client_strerror.restype = ctypes.c_char_p
        cls.lib = lib

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="spoold-clientlib-test-")
        self.builder = self.lib.spoold_task_builder_new()
        self.assertTrue(self.builder)

    def tearDown(self):
        self.lib.spoold_task_builder_free(self.builder)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def enqueue(self, queue):
        id_buf = ctypes.create_string_buffer(256)
        err_buf = ctypes.create_string_buffer(512)
        code = self.lib.spoold_enqueue(queue.encode(), self.builder, id_buf, 256, err_buf, 512)
        return code, id_buf.value.decode(), err_buf.value.decode()

    def test_enqueue_and_parse_back(self):
        key, value, body = b"k\xff", b"v\x00w", b"body\x00bytes"
        self.assertEqual(self.lib.spoold_task_builder_add_arg(self.builder, key, len(key), value, len(value)), 0)
        self.assertEqual(self.lib.spoold_task_builder_set_body(self.builder, body, len(body)), 0)
        at_ns = 4102444800 * 10**9 + 987654321
        self.assertEqual(self.lib.spoold_task_builder_set_at_ns(self.builder, at_ns), 0)
        self.assertEqual(self.lib.spoold_task_builder_set_priority(self.builder, 9), 0)
        code, task_id, err = self.enqueue(self.tmp)
        self.assertEqual(code, 0, err)
        self.assertRegex(task_id, NAME_RE)
        path = os.path.join(self.tmp, "9", task_id)
        pairs, got_body = parse(read(path))
        self.assertEqual(pairs, [(key, value), (b"at", b"4102444800"), (b"priority", b"9")])
        self.assertEqual(got_body, body)
        self.assertEqual(os.lstat(path).st_mtime_ns, at_ns)
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)

    def test_too_big_and_io_errors(self):
        value = b"v" * 65531
        self.assertEqual(self.lib.spoold_task_builder_add_arg(self.builder, b"k", 1, value, len(value)), 0)
        code, _, err = self.enqueue(self.tmp)
        self.assertEqual(code, -2)
        self.assertIn("body", err)
        self.assertEqual(os.listdir(self.tmp), [])
        fresh = self.lib.spoold_task_builder_new()
        try:
            id_buf = ctypes.create_string_buffer(256)
            err_buf = ctypes.create_string_buffer(512)
            code = self.lib.spoold_enqueue(b"/etc/passwd/x", fresh, id_buf, 256, err_buf, 512)
            self.assertEqual(code, -3)
            self.assertIn("/etc/passwd", err_buf.value.decode())
        finally:
            self.lib.spoold_task_builder_free(fresh)
        self.assertIn(b"body", self.lib.spoold_client_strerror(-2))


if __name__ == "__main__":
    unittest.main()
