"""Shared fixtures for the end-to-end tests: temp dirs, a spoold daemon run
as a real process in its own process group, spoolctl, and raw spool files.

Every wait has a deadline and waits for an event (a log line, a file, a
record a fixture wrote); teardown kills the daemon's whole process group so a
failing test cannot leak processes. SPOOLD_TEST_KEEP=1 keeps temp dirs.

Deadlines are sized for a loaded machine (a sanitizer build with both cores
busy): they bound how long a test may hang, not how fast spoold must be.
Where speed is the point of a test, the test measures it and prints it.
"""
import http.client
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

SPOOLD = os.environ.get("SPOOLD_BIN", "")
SPOOLCTL = os.environ.get("SPOOLCTL_BIN", "")
PLUGIN_DIR = os.environ.get("SPOOLD_PLUGIN_DIR", "")
TEST_PLUGIN_DIR = os.environ.get("SPOOLD_TEST_PLUGIN_DIR", "")
SOURCE_DIR = os.environ.get("SPOOLD_SOURCE_DIR", "")
BUILD_DIR = os.environ.get("SPOOLD_BUILD_DIR", "")


def wait_until(predicate, timeout=10.0, interval=0.01, what="condition"):
    """Polls predicate until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def encode_task(args, body=b""):
    """The uWSGI spool format, written independently of the host's code."""
    block = b""
    for k, v in args.items():
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        block += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return bytes([17]) + struct.pack("<H", len(block)) + b"\0" + block + body


def decode_task(data):
    size = struct.unpack_from("<H", data, 1)[0]
    pos, end, args = 4, 4 + size, {}
    while pos < end:
        kl = struct.unpack_from("<H", data, pos)[0]
        key = data[pos + 2:pos + 2 + kl]
        pos += 2 + kl
        vl = struct.unpack_from("<H", data, pos)[0]
        args[key] = data[pos + 2:pos + 2 + vl]
        pos += 2 + vl
    return args, data[end:]


_counter = [0]


def write_raw(directory, data, name=None, mtime=None):
    """Writes a task file the way a producer would: temp name, then rename."""
    os.makedirs(directory, exist_ok=True)
    if name is None:
        _counter[0] += 1
        name = "uwsgi_spoolfile_on_test_%d_%d_0_%d_0" % (os.getpid(), _counter[0], int(time.time()))
    tmp = os.path.join(directory, ".spoold-tmp-" + name)
    with open(tmp, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.rename(tmp, os.path.join(directory, name))
    return name


def open_gate(path):
    """Creates the file a task's wait_for arg names (tests/plugins/fx_record.cpp):
    the tasks waiting for it in handle() go on."""
    with open(path, "w"):
        pass


def task_files(directory):
    try:
        return sorted(n for n in os.listdir(directory) if n.startswith("uwsgi_spoolfile_on_"))
    except FileNotFoundError:
        return []


def spoolctl(*args, check=True, timeout=20):
    proc = subprocess.run([SPOOLCTL, *args], capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("spoolctl %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.decode()))
    return proc


def enqueue(queue_dir, *args, body=None, sync=False):
    """Enqueues one task with the real spoolctl; returns its id."""
    cmd = ["--dir", queue_dir, "enqueue", "--create-dir", *args]
    if body is not None:
        cmd += ["--body", body]
    if not sync:
        cmd.append("--no-sync")
    return spoolctl(*cmd).stdout.decode().strip()


def complete_lines(path, encoding=None):
    """The lines of a file another process appends to, without a last line
    that has no newline yet (it is still being written); [] if absent."""
    try:
        with open(path, encoding=encoding) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [line for line in text.split("\n")[:-1] if line]


def read_bytes(path):
    """A whole file's bytes (the file must exist)."""
    with open(path, "rb") as f:
        return f.read()


def process_state(pid):
    """The state letter of /proc/<pid>/stat ("R", "S", "Z", ...), or None once
    the process is gone (it may vanish between any two looks)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def proc_status(pid, field):
    """A field of /proc/<pid>/status ("NoNewPrivs" -> "1"), or None."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def read_text(path):
    """A log file as text so far ("" if absent), undecodable bytes replaced."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# The lines the fx_record / fx_crash fixtures write (tests/plugins/record_line.hpp).

def fnv1a_64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def unescape(text):
    """Reverses record_line.hpp's escaping (\\xHH for bytes outside printable ASCII)."""
    out, i, raw = bytearray(), 0, text.encode("latin-1")
    while i < len(raw):
        if raw[i:i + 2] == b"\\x":
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def parse_fx_record(line):
    """One fx_record line (tests/plugins/record_line.hpp):
    <id> attempt=<n> pid=<pid> <key>=<value>... body_len=<n>[ body_fnv1a=<h>] t=<unix time> result=<r>

    Args come back as an ordered list of (bytes, bytes); keys must not hold '='."""
    parts = line.split(" ")
    rec = {"id": unescape(parts[0]).decode(), "attempt": int(parts[1].split("=", 1)[1]),
           "pid": int(parts[2].split("=", 1)[1])}
    tail = parts[3:]
    end = len(tail)
    while end > 0 and tail[end - 1].split("=", 1)[0] in ("result", "t", "body_fnv1a", "body_len"):
        key, value = tail[end - 1].split("=", 1)
        rec[key] = value
        end -= 1
        if key == "body_len":
            break
    rec["args"] = []
    for p in tail[:end]:
        k, v = p.split("=", 1)
        rec["args"].append((unescape(k), unescape(v)))
    rec["body_len"] = int(rec["body_len"])
    if "t" in rec:
        rec["t"] = float(rec["t"])
    return rec


def read_fx_records(path):
    return [parse_fx_record(l) for l in complete_lines(path, encoding="latin-1")]


def read_records(path):
    """The same records as flat dicts of text, for quick checks: id, attempt,
    pid, body_len, body_fnv1a, t, result, and each arg by its key (the fields
    above win over an arg of the same name)."""
    out = []
    for rec in read_fx_records(path):
        flat = {k: v if isinstance(v, str) else str(v) for k, v in rec.items() if k != "args"}
        for key, value in rec["args"]:
            flat.setdefault(key.decode("latin-1"), value.decode("latin-1"))
        out.append(flat)
    return out


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the test apps listen on one in their temp dir, never on TCP)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Daemon:
    """A spoold process on a config in a temp dir."""

    def __init__(self, root, config_text, name="spoold.toml"):
        self.root = root
        self.config = os.path.join(root, name)
        self.log_path = os.path.join(root, "spoold.log")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.proc = None
        self._log_file = None

    def start(self, wait_ready=True, timeout=30):
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SPOOLD, "-c", self.config], stdout=self._log_file, stderr=self._log_file,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        if wait_ready:
            wait_until(lambda: "spoold ready" in self.log() or self.proc.poll() is not None, timeout,
                       what="spoold to be ready")
            if self.proc.poll() is not None:
                raise AssertionError("spoold exited with %d at start:\n%s" % (self.proc.returncode, self.log()))
        return self

    def log(self):
        return read_text(self.log_path)

    def wait_log(self, text, count=1, timeout=30):
        """Waits until text occurs count times in the log; fails at once if spoold exits."""
        def seen():
            if self.proc.poll() is not None:
                raise AssertionError("spoold exited with %d while waiting for %r:\n%s"
                                     % (self.proc.returncode, text, self.log()[-4000:]))
            return self.log().count(text) >= count
        wait_until(seen, timeout, what="%r x%d in the spoold log" % (text, count))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=15):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=15):
        """SIGTERM, then the exit status; kills the group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError("spoold did not stop within %ss after SIGTERM:\n%s" % (timeout, self.log()))

    def kill_group(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def spooler_pids(self):
        """Live children of the daemon (its spooler processes)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                return [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return []

    def close(self):
        self.kill_group()
        if self._log_file:
            self._log_file.close()


class SpooldTestCase(unittest.TestCase):
    """Gives each test a temp dir and cleans up every daemon it started."""

    def setUp(self):
        for name, value in (("SPOOLD_BIN", SPOOLD), ("SPOOLCTL_BIN", SPOOLCTL), ("SPOOLD_PLUGIN_DIR", PLUGIN_DIR)):
            if not value:
                self.fail("%s is not set: run the tests through ctest" % name)
        tmpdir = os.environ.get("TMPDIR")
        if tmpdir and not os.path.isdir(tmpdir):
            # tempfile would quietly use /tmp instead.
            self.fail("TMPDIR %s is not a directory (ctest's test_tmpdir fixture creates it)" % tmpdir)
        self.root = tempfile.mkdtemp(prefix="spoold-e2e-")
        os.chmod(self.root, 0o755)
        self.daemons = []

    def tearDown(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(t is self for t, _ in result.failures + result.errors)
        for d in self.daemons:
            d.close()
            if failed:
                print("---- spoold log (%s) ----\n%s" % (d.log_path, d.log()[-6000:]))
        if os.environ.get("SPOOLD_TEST_KEEP") == "1":
            print("kept", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def daemon(self, config_text, start=True, **kw):
        d = Daemon(self.root, config_text, **kw)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def assert_no_errors_logged(self, daemon):
        bad = [l for l in daemon.log().splitlines() if " error " in l or " critical " in l]
        self.assertEqual(bad, [], "error lines in the log")
