"""Prometheus metrics (issue 12): `[host] metrics` serves /metrics from a
metrics process the master forks.

The endpoint is read with raw sockets (the exposition text parsed line by
line, each family's HELP and TYPE checked), hostile clients are thrown at it
while tasks run (their pickup is measured), bad addresses are refused at
start and by --check, and a real Prometheus (Debian's `prometheus`, started
by the test on loopback with a temp config and storage) scrapes a run and is
asked through its HTTP API how many tasks were handled."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from support import (SPOOLD, TEST_PLUGIN_DIR, SpooldTestCase, encode_task, read_records, task_files, wait_until,
                     write_raw)

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)

FAMILIES = {
    "spoold_up": "gauge",
    "spoold_tasks_total": "counter",
    "spoold_task_duration_seconds": "histogram",
    "spoold_queue_pending": "gauge",
    "spoold_queue_delayed": "gauge",
    "spoold_queue_failed": "gauge",
    "spoold_queue_oldest_pending_age_seconds": "gauge",
    "spoold_tasks_in_flight": "gauge",
    "spoold_spooler_restarts_total": "counter",
}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port, raw, timeout=10.0, closed=None):
    """Sends raw bytes, reads until the server closes; (status, headers, body).
    closed, a list, gets True appended when the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all: read the answer
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                if closed is not None:
                    closed.append(True)
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers, body


def scrape(port):
    status, headers, body = http_request(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 200, (status, body[:200])
    assert headers.get("content-type", "").startswith("text/plain; version=0.0.4"), headers
    return body.decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_exposition(text):
    """The text format 0.0.4, strictly: every sample belongs to a family whose
    HELP and then TYPE came first. Returns ({family: (type, help)}, samples)."""
    helps, types, samples = {}, {}, []
    assert text.endswith("\n"), "the exposition must end with a newline"
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert name not in helps, "two HELP lines for " + name
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name in helps and name not in types, "TYPE of %s without a HELP before it, or twice" % name
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
        else:
            assert not line.startswith("#") and line, "unexpected line %r" % line
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            name, label_text, value = m.groups()
            labels = {}
            if label_text:
                pos = 0
                while pos < len(label_text):
                    lm = LABEL.match(label_text, pos)
                    assert lm, "bad labels in %r" % line
                    labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                    pos = lm.end()
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                    family = name[:-len(suffix)]
            assert family in types, "sample %s before the TYPE of its family" % name
            samples.append((name, labels, float(value)))
    return {n: (types[n], helps[n]) for n in types}, samples


def value(samples, name, **labels):
    found = [v for n, l, v in samples if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]
    return sum(found) if found else None


def queue_toml(name, plugin, options, **settings):
    lines = ["[[queue]]", 'name = "%s"' % name, 'dir = "spool/%s"' % name, 'plugin = "%s"' % plugin]
    for k, v in settings.items():
        lines.append("%s = %s" % (k, '"%s"' % v if isinstance(v, str) else v))
    lines.append("[queue.options]")
    for k, v in options.items():
        lines.append('%s = "%s"' % (k, v))
    return "\n".join(lines) + "\n"


class MetricsTestCase(SpooldTestCase):
    def metrics_daemon(self, queues, port=None, start=True, **host):
        self.port = port or free_port()
        cfg = '[host]\nplugin_dir = "%s"\nmetrics = "127.0.0.1:%d"\n' % (TEST_PLUGIN_DIR, self.port)
        for k, v in host.items():
            cfg += '%s = "%s"\n' % (k, v)
        return self.daemon(cfg + queues, start=start)

    def assert_clean(self, d, metrics_restarts=0):
        """No error lines, no sanitizer report, and the metrics process died
        only as often as the test killed it."""
        self.assert_no_errors_logged(d)
        for bad in ("Sanitizer", "runtime error:"):
            self.assertNotIn(bad, d.log())
        self.assertEqual(len(re.findall(r"metrics process \d+ (?:exited|killed)", d.log())), metrics_restarts, d.log())

    def task(self, queue, **args):
        return write_raw(self.path("spool", queue), encode_task(args))

    def scrape_until(self, predicate, timeout=30, what="metrics"):
        """Scrapes until predicate(samples) holds (snapshots reach the metrics
        process within ~100 ms of a change, directories are read at most once
        a second); returns the last (families, samples)."""
        last = [None]

        def check():
            last[0] = parse_exposition(scrape(self.port))
            return predicate(last[0][1])
        wait_until(check, timeout, interval=0.1, what=what)
        return last[0]


class ExpositionTest(MetricsTestCase):
    def test_every_family_and_outcome_is_counted(self):
        rec = self.path("record.txt")
        crash_rec = self.path("crash.txt")
        d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": rec}, max_attempts=1, backoff="1h",
                                           backoff_max="1h")
                                + queue_toml("c", "fx_crash", {"record_file": crash_rec}, max_attempts=1)
                                + queue_toml("h", "fx_crash", {}, max_attempts=1, timeout="1s")
                                + queue_toml("r", "fx_record", {"record_file": self.path("recycled.txt")}, max_tasks=1)
                                + queue_toml("s", "fx_slow_init", {"init_ms": "60000", "block_first": self.path("first"),
                                                                   "record_file": self.path("slow.txt")},
                                             init_timeout="1s"))
        d.wait_log("metrics: serving http://127.0.0.1:%d/metrics" % self.port)
        families, samples = parse_exposition(scrape(self.port))
        for name, kind in FAMILIES.items():
            self.assertIn(name, families, "no HELP/TYPE for " + name)
            self.assertEqual(families[name][0], kind, name)
            self.assertTrue(families[name][1].strip(), "empty HELP for " + name)
        self.assertEqual(value(samples, "spoold_up"), 1)

        for status in ["ok"] * 3 + ["retry"] * 2 + ["fail", "ignore"]:
            self.task("q", status=status)
        self.task("c", how="segv")
        self.task("h", how="hang")
        self.task("r")
        self.task("r")
        delayed = write_raw(self.path("spool", "q"), encode_task({"status": "ok"}), mtime=time.time() + 3600)
        wait_until(lambda: len(read_records(rec)) == 7, 30, what="7 tries of q")
        wait_until(lambda: task_files(self.path("spool/c/failed")), 30, what="the crashed task in c's failed/")
        wait_until(lambda: task_files(self.path("spool/h/failed")), 30, what="the hung task in h's failed/")

        def settled(s):
            return (value(s, "spoold_tasks_total", queue="q") == 7 and value(s, "spoold_tasks_total", queue="c") == 1
                    and value(s, "spoold_queue_failed", queue="q") == 3
                    and value(s, "spoold_spooler_restarts_total", queue="c", cause="crash") == 1
                    and value(s, "spoold_spooler_restarts_total", queue="h", cause="timeout") == 1
                    and value(s, "spoold_spooler_restarts_total", queue="r", cause="recycle") == 2
                    and value(s, "spoold_spooler_restarts_total", queue="s", cause="init_timeout") == 1)
        families, samples = self.scrape_until(settled, what="the counts of 8 tries")
        for outcome, n in (("ok", 3), ("retry", 2), ("fail", 1), ("ignore", 1), ("crash", 0), ("timeout", 0)):
            self.assertEqual(value(samples, "spoold_tasks_total", queue="q", outcome=outcome), n, outcome)
        self.assertEqual(value(samples, "spoold_tasks_total", queue="c", outcome="crash"), 1)
        self.assertEqual(value(samples, "spoold_tasks_total", queue="h", outcome="timeout"), 1)
        self.assertEqual(value(samples, "spoold_tasks_total", queue="h"), 1)
        self.assertEqual(value(samples, "spoold_spooler_restarts_total", queue="c"), 1)
        self.assertEqual(value(samples, "spoold_spooler_restarts_total", queue="q"), 0)
        self.assertEqual(value(samples, "spoold_spooler_restarts_total", queue="r"), 2)
        self.assertEqual(value(samples, "spoold_spooler_restarts_total", queue="s"), 1)
        self.assertEqual(value(samples, "spoold_tasks_total", queue="r", outcome="ok"), 2)
        # Histogram: cumulative buckets ending in +Inf == _count == tries that ran a plugin.
        buckets = [(l["le"], v) for n, l, v in samples if n == "spoold_task_duration_seconds_bucket" and l["queue"] == "q"]
        self.assertEqual(buckets[-1], ("+Inf", 7))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), "buckets must be cumulative")
        self.assertEqual(value(samples, "spoold_task_duration_seconds_count", queue="q"), 7)
        self.assertGreater(value(samples, "spoold_task_duration_seconds_sum", queue="q"), 0)
        self.assertEqual(value(samples, "spoold_task_duration_seconds_count", queue="c"), 0)
        # Gauges: the delayed task, the ignored one left in place (not pending, not aged).
        self.assertEqual(value(samples, "spoold_queue_delayed", queue="q"), 1)
        self.assertEqual(value(samples, "spoold_queue_pending", queue="q"), 0)
        self.assertEqual(value(samples, "spoold_tasks_in_flight", queue="q"), 0)
        self.assertEqual(value(samples, "spoold_queue_failed", queue="c"), 1)
        self.assertEqual(value(samples, "spoold_queue_oldest_pending_age_seconds", queue="q"), 0)
        self.assertIn(delayed, task_files(self.path("spool/q")))
        # Every counter and gauge sample carries exactly the labels its family has.
        for name, labels, _ in samples:
            if name == "spoold_up":
                self.assertEqual(labels, {})
            elif name == "spoold_tasks_total":
                self.assertEqual(set(labels), {"queue", "outcome"})
            elif name == "spoold_spooler_restarts_total":
                self.assertEqual(set(labels), {"queue", "cause"})
            elif name == "spoold_task_duration_seconds_bucket":
                self.assertEqual(set(labels), {"queue", "le"})
            else:
                self.assertEqual(set(labels), {"queue"}, name)

        status, _, _ = http_request(self.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 404)
        status, headers, _ = http_request(self.port, b"POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual((status, headers.get("allow")), (405, "GET, HEAD"))
        self.assertEqual(d.stop(), 0)
        self.assert_clean(d)

    def test_oldest_pending_age_of_a_backlog(self):
        """Tasks that wait (their queue's only spooler is held in a task) age."""
        rec = self.path("record.txt")
        gate = self.path("gate")
        self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": rec, "start_file": self.path("starts")}))
        self.task("q", wait_for=gate)
        wait_until(lambda: os.path.exists(self.path("starts")), 30, what="the first task inside handle()")
        old = write_raw(self.path("spool", "q"), encode_task({}), mtime=time.time() - 100)
        self.task("q")
        # The spooler's pipeline may hold a waiting name too: 3 between pending and in flight.
        _, samples = self.scrape_until(lambda s: value(s, "spoold_queue_pending", queue="q")
                                       + value(s, "spoold_tasks_in_flight", queue="q") == 3
                                       and value(s, "spoold_tasks_in_flight", queue="q") >= 1
                                       and value(s, "spoold_queue_oldest_pending_age_seconds", queue="q") >= 100,
                                       what="3 tasks pending or in flight, the oldest 100 s old")
        age = value(samples, "spoold_queue_oldest_pending_age_seconds", queue="q")
        self.assertTrue(100 <= age < 200, age)
        open(gate, "w").close()
        wait_until(lambda: len(read_records(rec)) == 3, 30, what="3 tasks handled")
        self.assertNotIn(old, task_files(self.path("spool/q")))
        self.scrape_until(lambda s: value(s, "spoold_queue_oldest_pending_age_seconds", queue="q") == 0
                          and value(s, "spoold_tasks_total", queue="q", outcome="ok") == 3, what="age back to 0")


class LifecycleTest(MetricsTestCase):
    def test_metrics_process_restarts_keeps_totals_and_a_reload_keeps_the_port(self):
        rec = self.path("record.txt")
        d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": rec}))
        for _ in range(2):
            self.task("q")
        wait_until(lambda: len(read_records(rec)) == 2, 30, what="2 tasks handled")
        self.scrape_until(lambda s: value(s, "spoold_tasks_total", queue="q", outcome="ok") == 2)
        pid = int(re.search(r"metrics process (\d+)\)", d.log()).group(1))
        os.kill(pid, signal.SIGKILL)
        d.wait_log("metrics: metrics process ")  # "... started": a new one
        self.assertIn("metrics process %d killed by signal 9" % pid, d.log())
        self.scrape_until(lambda s: value(s, "spoold_tasks_total", queue="q", outcome="ok") == 2,
                          what="the totals from the master in the new metrics process")
        with open(d.config) as f:
            text = f.read()
        other = free_port()
        with open(d.config, "w") as f:
            f.write(text.replace("127.0.0.1:%d" % self.port, "127.0.0.1:%d" % other))
        d.signal(signal.SIGHUP)
        d.wait_log("reloaded: 1 queue(s)")
        self.assertIn('host.metrics changed from "127.0.0.1:%d" to "127.0.0.1:%d"' % (self.port, other), d.log())
        self.task("q")
        wait_until(lambda: len(read_records(rec)) == 3, 30, what="a third task handled")
        self.scrape_until(lambda s: value(s, "spoold_tasks_total", queue="q", outcome="ok") == 3)
        # A TERM to the whole group (systemd, a terminal's ^C) is the master's
        # to act on: the metrics process neither dies of it nor is restarted.
        os.killpg(d.proc.pid, signal.SIGTERM)
        self.assertEqual(d.wait(30), 0)
        self.assertEqual(d.log().count("metrics: metrics process "), 1, "one restart, and none at the stop")
        self.assert_clean(d, metrics_restarts=1)


class HostileClientTest(MetricsTestCase):
    def pickups(self, rec, n):
        """Enqueues n tasks one after another; the seconds from each file's
        rename into the queue to its handle() call."""
        out = []
        for i in range(n):
            before = len(read_records(rec))
            t0 = time.time()
            self.task("q", i=str(i))
            wait_until(lambda: len(read_records(rec)) > before, 30, interval=0.002, what="task %d handled" % i)
            out.append(float(read_records(rec)[-1]["t"]) - t0)
        return out

    def test_slow_idle_and_huge_clients_do_not_delay_tasks(self):
        rec = self.path("record.txt")
        d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": rec}))
        scrape(self.port)
        quiet = self.pickups(rec, 20)

        # A 1 MB header: refused after 8 KiB, the answer read whole.
        huge_closed = []
        huge_started = time.monotonic()
        huge_status, huge_headers, _ = http_request(
            self.port, b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * (1 << 20) + b"\r\n\r\n",
            closed=huge_closed)
        print("a 1 MB header got %s and the connection closed after %.2fs" % (huge_status,
                                                                             time.monotonic() - huge_started))

        stop = threading.Event()
        slow_result = {"sent": 0}

        def slowloris():
            # One byte a second of a request that never ends.
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            started = time.monotonic()
            try:
                for b in b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100:
                    if stop.is_set():
                        break
                    s.sendall(bytes([b]))
                    slow_result["sent"] += 1
                    time.sleep(1.0)  # the slow client's pace, not a wait for an event
            except (BrokenPipeError, ConnectionResetError) as e:
                slow_result["cut"] = (time.monotonic() - started, repr(e))
            finally:
                s.close()
        slow = threading.Thread(target=slowloris)
        slow.start()
        idle = []
        try:
            # The slow client holds a connection (it sent its second byte)
            # before the 1000 idle ones fill the cap.
            wait_until(lambda: slow_result["sent"] >= 2, 30, what="the slow client's second byte")
            idle = [socket.create_connection(("127.0.0.1", self.port), timeout=30) for _ in range(1000)]
            loaded = self.pickups(rec, 20)
            wait_until(lambda: "cut" in slow_result, 60, interval=0.1, what="the slow client to be cut off")
        finally:
            stop.set()
            slow.join(120)
        self.assertFalse(slow.is_alive())
        print("pickup ms, quiet: median %.2f max %.2f; with 1000 idle connections, a one-byte-a-second client and "
              "a 1 MB header: median %.2f max %.2f" % (
                  sorted(quiet)[10] * 1e3, max(quiet) * 1e3, sorted(loaded)[10] * 1e3, max(loaded) * 1e3))
        self.assertIn(huge_status, (431, 400))
        self.assertEqual(huge_headers.get("connection", "").lower(), "close")
        self.assertEqual(huge_closed, [True], "the server did not close the connection after the 1 MB header")
        # The slow client was cut at the request deadline (5 s), long before it finished.
        print("the one-byte-a-second client was cut after %.1fs (%s)" % slow_result["cut"])
        self.assertTrue(4 <= slow_result["cut"][0] < 30, slow_result["cut"])
        # Tasks were not held up: pickup stays far under a second on a loaded machine
        # (the master never serves HTTP; the metrics process only yields to it).
        self.assertLess(max(loaded), 1.0)
        # The idle connections are closed by the server (over the cap at once,
        # the others at the deadline), and the endpoint answers again.
        for s in idle:
            s.settimeout(30)
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
            s.close()
        scrape(self.port)
        self.assertEqual(d.stop(), 0)
        self.assert_clean(d)


class BadAddressTest(MetricsTestCase):
    def check(self, address):
        cfg = self.path("check.toml")
        with open(cfg, "w") as f:
            f.write('[host]\nplugin_dir = "%s"\nmetrics = "%s"\n' % (TEST_PLUGIN_DIR, address)
                    + queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}))
        return subprocess.run([SPOOLD, "-c", cfg, "--check"], capture_output=True, timeout=60)

    def test_unusable_addresses_are_refused_with_their_name(self):
        for address, why in (("localhost:9464", "not a numeric IPv4 address"), ("127.0.0.1:70000", "out of range"),
                             ("127.0.0.1", "no port"), ("::1:9464", "needs brackets"),
                             ("127.0.0.1:http", "is not a number"), ("10.255.255.1:9464", "cannot listen there")):
            proc = self.check(address)
            self.assertEqual(proc.returncode, 2, (address, proc.stdout, proc.stderr))
            self.assertIn('host.metrics = "%s"' % address, proc.stderr.decode())
            self.assertIn(why, proc.stderr.decode())
        self.assertEqual(self.check("127.0.0.1:%d" % free_port()).returncode, 0)

    def test_a_port_in_use_fails_the_start_and_the_check(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        try:
            proc = self.check("127.0.0.1:%d" % port)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn("127.0.0.1:%d" % port, proc.stderr.decode())
            self.assertIn("in use", proc.stderr.decode())
            d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}), port=port,
                                    start=False)
            d.start(wait_ready=False)
            self.assertEqual(d.wait(30), 2, d.log())
            self.assertIn('host.metrics = "127.0.0.1:%d": cannot listen there' % port, d.log())
            self.assertNotIn(") started", d.log(), "no spooler starts")
        finally:
            holder.close()

    def test_check_beside_the_running_host_passes(self):
        """The port of a host running on the same file is its own."""
        d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": self.path("r.txt")}))
        proc = subprocess.run([SPOOLD, "-c", d.config, "--check"], capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(d.stop(), 0)


class PrometheusTest(MetricsTestCase):
    def test_a_real_prometheus_sees_every_task(self):
        if PROMETHEUS is None:
            self.fail("the prometheus binary is not installed: run scripts/install-deps (Debian package prometheus)")
        rec = self.path("record.txt")
        d = self.metrics_daemon(queue_toml("q", "fx_record", {"record_file": rec}, processes=2))
        prom_port = free_port()
        prom_dir = self.path("prometheus")
        os.makedirs(prom_dir)
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: spoold\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.port)
        log = open(os.path.join(prom_dir, "prometheus.log"), "wb")
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(prom_dir, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % prom_port],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)

        def query(expr):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, urllib.parse.urlencode({"query": expr}))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    doc = json.load(r)
            except OSError:
                if prom.poll() is not None:
                    raise AssertionError("prometheus exited with %d" % prom.returncode)
                return None
            result = doc["data"]["result"]
            return float(result[0]["value"][1]) if result else None
        try:
            wait_until(lambda: query('up{job="spoold"}') == 1, 60, interval=0.2, what="prometheus to scrape spoold")
            wait_until(lambda: query('sum(spoold_tasks_total{queue="q"})') is not None, 60, interval=0.2,
                       what="a first sample of spoold_tasks_total")
            before = query('sum(spoold_tasks_total{queue="q"})')
            n = 25
            for i in range(n):
                self.task("q", i=str(i))
            wait_until(lambda: len(read_records(rec)) == n, 60, what="%d tasks handled" % n)
            wait_until(lambda: query('sum(spoold_tasks_total{queue="q"})') == before + n, 60, interval=0.2,
                       what="prometheus to see %d more tasks" % n)
            # Exactly n: no more arrive later.
            self.scrape_until(lambda s: value(s, "spoold_tasks_total", queue="q") == before + n)
            self.assertEqual(query('sum(spoold_tasks_total{queue="q",outcome="ok"})'), before + n)
            self.assertEqual(query('spoold_task_duration_seconds_count{queue="q"}'), before + n)
            self.assertEqual(query("spoold_up"), 1)
        finally:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(prom.pid, signal.SIGKILL)
                prom.wait(timeout=10)
            log.close()
        self.assertEqual(d.stop(), 0)
        self.assert_clean(d)
