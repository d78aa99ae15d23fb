#!/usr/bin/python3
"""The Redis queue benchmark (README, Redis Streams; bench/README.md):

1. drain of a backlog of no-op tasks (default 200 k) by one spoold host with
   2 spoolers, and by two hosts with 2 spoolers each, on one stream;
2. redis-benchmark's XADD rate on the same server, the ceiling;
3. idle pickup latency: tasks XADDed one at a time into an idle host, from
   the producer's clock before XADD to the plugin's first instruction;
4. Celery (Redis broker, prefork 2) and RQ (1 worker) draining the same
   number of no-op tasks, when python3-celery / python3-rq are installed
   (otherwise the row says so).

Each run gets its own redis-server on a Unix socket in a temp dir (no
persistence), stopped by pid. Prints one table and the targets (>= 10x
Celery, >= 25% of the XADD ceiling, idle pickup p50 < 1 ms), each met or
missed.

    bench/redis_bench.py --build build [--tasks 200000] [--reps 1]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "client", "python"))

import redis  # noqa: E402  (Debian: python3-redis)
import spoolclient  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Server:
    def __init__(self, root):
        self.dir = os.path.join(root, "redis")
        os.mkdir(self.dir)
        self.sock = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "",
                                      "--appendonly", "no", "--dir", self.dir, "--logfile",
                                      os.path.join(self.dir, "log")], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client().ping()
                break
            except (redis.exceptions.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.02)

    def client(self):
        return redis.Redis(unix_socket_path=self.sock, socket_timeout=60)

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def fill(r, stream, count, args=()):
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        fields = {}
        for k, v in args:
            fields[k] = v
        fields["spoold.id"] = spoolclient.make_task_name()
        fields["spoold.body"] = b""
        pipe.xadd(stream, fields)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def host_config(root, name, server, plugin_dir, plugin, processes, options=""):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "spoold.toml")
    with open(path, "w") as f:
        f.write('[host]\nplugin_dir = "%s"\nlog_level = "warn"\n\n[[queue]]\nname = "bench"\nsource = "redis"\n'
                'url = "unix://%s"\nplugin = "%s"\nprocesses = %d\n%s' % (plugin_dir, server.sock, plugin, processes,
                                                                        options))
    return path


def start_host(spoold, config):
    log_file = open(config + ".log", "w")
    p = subprocess.Popen([spoold, "-c", config], stdout=log_file, stderr=log_file, start_new_session=True)
    return p


def stop_host(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def drained(r, stream):
    return r.xlen(stream) == 0


def drain_once(a, root, hosts, processes):
    server = Server(root)
    try:
        return drain_on(a, root, hosts, processes, server)
    finally:
        server.stop()


def drain_on(a, root, hosts, processes, server):
    r = server.client()
    stream = "spoold:bench"
    fill(r, stream, a.tasks)
    configs = [host_config(root, "host%d" % i, server, a.plugin_dir, "noop", processes) for i in range(hosts)]
    t0 = time.monotonic()
    procs = [start_host(a.spoold, c) for c in configs]
    while not drained(r, stream):
        for p in procs:
            if p.poll() is not None:
                with open(configs[0] + ".log") as f:
                    raise SystemExit("spoold exited with %d:\n%s" % (p.returncode, f.read()[-3000:]))
        time.sleep(0.005)
    took = time.monotonic() - t0
    for p in procs:
        stop_host(p)
    return a.tasks / took, took


def xadd_ceiling(a, root):
    server = Server(root)
    out = subprocess.run(["redis-benchmark", "-s", server.sock, "-n", str(a.tasks), "-c", "50", "-q",
                          "XADD", "ceiling", "*", "spoold.id", "uwsgi_spoolfile_on_x_1_1_1_1_1", "spoold.body", ""],
                         capture_output=True, text=True, timeout=600).stdout
    server.stop()
    shutil.rmtree(server.dir)
    # "XADD ceiling * ...: 123456.79 requests per second, p50=0.2 msec"
    for token in out.replace("\r", "\n").split("\n"):
        if "requests per second" in token:
            return float(token.split(":")[1].split("requests")[0].strip())
    raise SystemExit("cannot read redis-benchmark's output: %r" % out)


def latency(a, root):
    server = Server(root)
    r = server.client()
    record = os.path.join(root, "latency.rec")
    config = host_config(root, "lat", server, a.plugin_dir, "bench_latency", 1,
                         '[queue.options]\nrecord_file = "%s"\n' % record)
    p = start_host(a.spoold, config)
    time.sleep(1.0)  # the host connects and blocks in XREADGROUP: idle
    sent = {}
    for i in range(a.latency_tasks):
        tid = spoolclient.make_task_name()
        sent[tid] = time.time_ns()
        r.xadd("spoold:bench", {"spoold.id": tid, "spoold.body": b""})
        time.sleep(a.latency_interval)
    deadline = time.monotonic() + 30
    got = {}
    while time.monotonic() < deadline and len(got) < len(sent):
        try:
            with open(record) as f:
                got = dict(line.split() for line in f if line.endswith("\n"))
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    stop_host(p)
    server.stop()
    lat = sorted((int(got[t]) - sent[t]) / 1e6 for t in sent if t in got)
    if len(lat) != len(sent):
        raise SystemExit("%d of %d latency tasks never reached the handler" % (len(sent) - len(lat), len(sent)))
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], lat[-1]


CELERY_APP = """
from celery import Celery
app = Celery("bench", broker="redis+socket://%s")
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False


@app.task
def noop():
    pass
"""

RQ_APP = """
def noop():
    pass
"""

RQ_WORKER = """
import sys
sys.path.insert(0, %r)
from redis import Redis
from rq import Queue, Worker
r = Redis(unix_socket_path=%r)
Worker([Queue(connection=r)], connection=r).work(burst=True)
"""


def celery_rate(a, root):
    """Celery 5 with the Redis broker and a prefork pool of 2 draining a pre-filled queue."""
    try:
        import celery  # noqa: F401
    except ImportError:
        return None, "python3-celery is not installed"
    d = os.path.join(root, "celery")
    os.mkdir(d)
    server = Server(d)
    try:
        with open(os.path.join(d, "celery_bench_app.py"), "w") as f:
            f.write(CELERY_APP % server.sock)
        sys.path.insert(0, d)
        import celery_bench_app
        count = min(a.tasks, a.baseline_tasks)
        with celery_bench_app.app.producer_or_acquire() as producer:
            for _ in range(count):
                celery_bench_app.noop.apply_async(producer=producer)
        r = server.client()
        t0 = time.monotonic()
        w = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_bench_app", "worker", "--pool", "prefork",
                              "-c", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                              "--without-heartbeat"], cwd=d, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "worker.log"), "w"))
        while r.llen("celery") > 0 or r.hlen("unacked") > 0:
            if w.poll() is not None:
                raise SystemExit("the celery worker exited: see " + os.path.join(d, "worker.log"))
            time.sleep(0.01)
        took = time.monotonic() - t0
        os.killpg(w.pid, signal.SIGKILL)
        w.wait()
        log("celery: %d tasks in %.2fs (%.0f/s)" % (count, took, count / took))
        return count / took, "%d tasks, from the worker's start" % count
    finally:
        server.stop()


def rq_rate(a, root):
    """RQ with one worker (a fork per job, as RQ does) draining a pre-filled queue in burst mode."""
    try:
        import rq
    except ImportError:
        return None, "python3-rq is not installed"
    d = os.path.join(root, "rq")
    os.mkdir(d)
    server = Server(d)
    try:
        with open(os.path.join(d, "rq_bench_app.py"), "w") as f:
            f.write(RQ_APP)
        sys.path.insert(0, d)
        import rq_bench_app
        r = server.client()
        q = rq.Queue(connection=r)
        count = min(a.tasks, a.rq_tasks)
        for _ in range(count):
            q.enqueue(rq_bench_app.noop)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", RQ_WORKER % (d, server.sock)], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
        took = time.monotonic() - t0
        if len(q) != 0:
            raise SystemExit("RQ left %d jobs" % len(q))
        log("rq: %d tasks in %.2fs (%.0f/s)" % (count, took, count / took))
        return count / took, "%d tasks (a fork per job)" % count
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--baseline-tasks", type=int, default=200_000, help="at most this many tasks for Celery")
    ap.add_argument("--rq-tasks", type=int, default=5_000, help="at most this many tasks for RQ (slow: a fork per job)")
    ap.add_argument("--latency-tasks", type=int, default=1000)
    ap.add_argument("--latency-interval", type=float, default=0.002, help="seconds between latency tasks")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.spoold = os.path.join(a.build, "bin", "spoold")
    a.plugin_dir = os.path.join(a.build, "bench", "plugins")
    for f in (a.spoold, os.path.join(a.plugin_dir, "libnoop.so"), os.path.join(a.plugin_dir, "libbench_latency.so")):
        if not os.path.exists(f):
            raise SystemExit("missing %s: build the project (and its bench/ target) first" % f)
    root = tempfile.mkdtemp(prefix="spoold-redis-bench-")
    rows = []
    try:
        for name, hosts in (("spoold 1 host x 2 spoolers", 1), ("spoold 2 hosts x 2 spoolers", 2)):
            rates = []
            for rep in range(a.reps):
                d = os.path.join(root, "drain-%d-%d" % (hosts, rep))
                os.mkdir(d)
                rate, took = drain_once(a, d, hosts, 2)
                log("%s: %d tasks in %.2fs (%.0f/s)" % (name, a.tasks, took, rate))
                rates.append(rate)
            rows.append((name, statistics.median(rates), ""))
        ceiling = xadd_ceiling(a, root)
        rows.append(("redis-benchmark XADD (ceiling)", ceiling, "-c 50, no pipelining"))
        for name, fn in (("Celery 5, Redis broker, prefork 2", celery_rate), ("RQ, 1 worker", rq_rate)):
            rate, note = fn(a, root)
            rows.append((name, rate, note))
        p50, p99, worst = latency(a, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| drain of %d no-op tasks | tasks/s | note |" % a.tasks)
    print("|---|---:|---|")
    for name, rate, note in rows:
        print("| %s | %s | %s |" % (name, "%.0f" % rate if rate else "-", note))
    print()
    print("idle pickup latency (%d tasks, one every %.1f ms): p50 %.3f ms, p99 %.3f ms, max %.3f ms"
          % (a.latency_tasks, a.latency_interval * 1000, p50, p99, worst))
    best = max(r for n, r, _ in rows if n.startswith("spoold"))
    print()
    print("targets:")
    print("- >= 25%% of the XADD ceiling: %.0f%% (%s)" % (100 * best / ceiling, "met" if best >= 0.25 * ceiling else "missed"))
    print("- idle pickup p50 < 1 ms: %.3f ms (%s)" % (p50, "met" if p50 < 1 else "missed"))
    celery = [r for n, r, _ in rows if n.startswith("Celery")][0]
    print("- >= 10x Celery: %s" % ("%.1fx (%s)" % (best / celery, "met" if best >= 10 * celery else "missed")
                                    if celery else "not measured (see the Celery row)"))


if __name__ == "__main__":
    main()
