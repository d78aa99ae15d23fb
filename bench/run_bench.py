#!/usr/bin/env python3
"""spoold benchmark driver (issue 5). Standard library only.

Measures, in one run and on the same files, spoold against two baselines
(the uWSGI 2.0 spooler with a no-op Python handler, and raw_consumer, which
does only readdir + open + read + unlink per task) and prints one table:

  (1) drain rate of a pre-made backlog with a no-op plugin, per filesystem
      (tmpfs, ext4), backlog size and number of spooler processes;
  (2) pickup latency of tasks written by another process into an idle host;
  (3) enqueue rate of spoolctl, the C API and spoolclient.py, with and
      without fsync;
  (4) RSS of the host and its spoolers while a large backlog drains, and the
      CPU an idle host uses over 10 s;
  then the ratios to both baselines and the issue's targets, met or not.

A run that left task files behind, put any in failed/, or handled a
different number of tasks than it was given is INVALID: its rate is not
reported and the driver exits 1.

  bench/run_bench.py --build build            # the full run (about 20 minutes)
  bench/run_bench.py --build build --quick    # 10k and 50k only, a smoke test
  bench/run_bench.py --build build --write-readme   # also put the table in bench/README.md

See bench/README.md for the method and the results.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TASK_PREFIX = "uwsgi_spoolfile_on_"
COUNT_FILE_SIZE = 4096

# name -> (kind, processes, log level)
CONTENDERS = {
    "raw-1": ("raw", 1, None),
    "raw-2": ("raw", 2, None),
    "raw-lock-1": ("raw-lock", 1, None),
    "spoold-1": ("spoold", 1, "warn"),
    "spoold-2": ("spoold", 2, "warn"),
    "spoold-1-info": ("spoold", 1, "info"),
    "spoold-1-sandbox": ("spoold", 1, "warn"),
    "spoold-py-1": ("spoold-py", 1, "warn"),
    "spoold-py-2": ("spoold-py", 2, "warn"),
    "uwsgi-1": ("uwsgi", 1, None),
    "uwsgi-2": ("uwsgi", 2, None),
}
CONTENDER_TEXT = {
    "raw-1": "raw syscalls, 1 process",
    "raw-2": "raw syscalls, 2 processes",
    "raw-lock-1": "raw syscalls + O_RDWR, lock, fstat (name stat if changed)",
    "spoold-1": "spoold, 1 spooler",
    "spoold-2": "spoold, 2 spoolers",
    "spoold-1-info": "spoold, 1 spooler, log_level info",
    "spoold-1-sandbox": "spoold, 1 spooler in a [queue.sandbox] (Landlock rules, rlimits, no_new_privs)",
    "spoold-py-1": "spoold python plugin, 1 spooler, uwsgi_handlers.py",
    "spoold-py-2": "spoold python plugin, 2 spoolers, uwsgi_handlers.py",
    "uwsgi-1": "uWSGI spooler, 1 process",
    "uwsgi-2": "uWSGI spooler, 2 processes",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fmt_size(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def fmt_rate(r):
    return f"{r:,.0f}" if r is not None else "-"


def loadavg():
    with open("/proc/loadavg") as f:
        return tuple(float(x) for x in f.read().split()[:3])


def count_dir(path):
    """(task files, other entries) in path, without following anything."""
    tasks = other = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.name.startswith(TASK_PREFIX):
                    tasks += 1
                else:
                    other += 1
    except FileNotFoundError:
        pass
    return tasks, other


# --- process accounting ------------------------------------------------------


def process_tree(pid):
    out = [pid]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ns(pid):
    """CPU time of every thread of pid, from schedstat (nanoseconds)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        pass
    return total


class ForeignCpu:
    """CPU used on the machine by processes other than this driver and its
    children (waited for) between start() and stop(), in cores: /proc/stat's
    busy time minus our own rusage. Other engineers' builds show up here."""

    def __init__(self):
        self.t0 = self.busy0 = self.ours0 = None

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours():
        import resource
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def start(self):
        self.t0, self.busy0, self.ours0 = time.monotonic(), self._busy(), self._ours()

    def stop(self):
        dt = self.dt = time.monotonic() - self.t0
        return max(0.0, (self._busy() - self.busy0) - (self._ours() - self.ours0)) / max(dt, 1e-6)


def ctx_switches(pid):
    n = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if "ctxt_switches" in line:
                    n += int(line.split()[1])
    except OSError:
        pass
    return n


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree every 50 ms; keeps the max."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_kb = 0
        self.per_process_max = {}
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(0.05):
            pids = process_tree(self.pid)
            total = 0
            for p in pids:
                kb = rss_kb(p)
                total += kb
                role = "master" if p == self.pid else "spooler"
                self.per_process_max[role] = max(self.per_process_max.get(role, 0), kb)
            self.max_kb = max(self.max_kb, total)

    def stop(self):
        self._done.set()
        self.join()


# --- the benchmark -----------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.tools = os.path.join(self.build, "bench")
        self.plugin_dir = os.path.join(self.tools, "plugins")
        self.spoold = os.path.join(self.build, "bin", "spoold")
        self.spoolctl = os.path.join(self.build, "bin", "spoolctl")
        self.uwsgi = shutil.which("uwsgi")
        self.roots = {}
        for fs, path in (("tmpfs", args.tmpfs_dir), ("ext4", args.ext4_dir)):
            if fs in args.fs:
                self.roots[fs] = os.path.abspath(path)
        self.seq = 0
        self.live = []  # every process started, stopped by cleanup() if still running
        self.count_files = []  # removed by cleanup()
        self.results = {"drain": [], "latency": [], "enqueue": [], "idle": [], "invalid": []}
        for exe in (self.spoold, os.path.join(self.tools, "bench_tool"), os.path.join(self.tools, "make_backlog"),
                    os.path.join(self.tools, "raw_consumer"), os.path.join(self.plugin_dir, "libnoop.so")):
            if not os.path.exists(exe):
                sys.exit(f"run_bench: {exe} is missing: build first "
                         f"(cmake --build {args.build} --target spoold spoolctl spoold_bench)")

    def tool(self, name):
        return os.path.join(self.tools, name)

    def fresh_dir(self, fs, what):
        self.seq += 1
        path = os.path.join(self.roots[fs], f"{what}-{os.getpid()}-{self.seq}")
        os.makedirs(path)
        return path

    def work_dir(self, fs):
        path = os.path.join(self.roots[fs], f"work-{os.getpid()}")
        os.makedirs(path, exist_ok=True)
        return path

    def new_count_file(self):
        fd, path = tempfile.mkstemp(prefix="spoold-bench-count-", dir="/dev/shm")
        os.write(fd, b"\0" * COUNT_FILE_SIZE)
        os.close(fd)
        self.count_files.append(path)
        return path

    @staticmethod
    def read_count(path):
        with open(path, "rb") as f:
            data = f.read(COUNT_FILE_SIZE)
        total = struct.unpack_from("<Q", data, 0)[0]
        for off in range(16, COUNT_FILE_SIZE, 16):
            pid, n = struct.unpack_from("<qq", data, off)
            if pid:
                total += n
        return total

    # --- starting contenders ---

    def spoold_config(self, fs, queue_dir, processes, level, plugin="noop", options=None, plugin_dir=None,
                      sandbox=False):
        work = self.work_dir(fs)
        self.seq += 1
        path = os.path.join(work, f"spoold-{self.seq}.toml")
        lines = [
            "[host]",
            f'plugin_dir = "{plugin_dir or self.plugin_dir}"',
            f'log_level = "{level}"',
            "",
            "[[queue]]",
            'name = "bench"',
            f'dir = "{queue_dir}"',
            f'plugin = "{plugin}"',
            f"processes = {processes}",
        ]
        if options:
            lines.append("[queue.options]")
            lines += [f'{k} = "{v}"' for k, v in options.items() if v is not None]
        if sandbox:
            # Path rules on (only the queue, the plugins and the system's
            # files), every limit set: what a task's syscalls then cost.
            lines += ["[queue.sandbox]", "read = []", "write = []", 'memory = "1G"', "open_files = 256",
                      'cpu = "60s"', "core = false"]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path, os.path.join(work, f"spoold-{self.seq}.log")

    def start(self, kind, processes, level, fs, queue_dir, count_file=None, mode="noop", record_file=None,
              sandbox=False):
        """Starts a consumer; returns (Popen, log path)."""
        if kind in ("raw", "raw-lock"):
            p = subprocess.Popen([self.tool("raw_consumer"), queue_dir, "-p", str(processes)]
                                 + (["--lock"] if kind == "raw-lock" else []),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.live.append(p)
            return p, None
        if kind == "spoold":
            options = {}
            plugin = "noop"
            if mode == "latency":
                plugin = "bench_latency"
                options["record_file"] = record_file
            elif count_file:
                options["count_file"] = count_file
            conf, logfile = self.spoold_config(fs, queue_dir, processes, level, plugin, options, sandbox=sandbox)
            lf = open(logfile, "w")
            p = subprocess.Popen([self.spoold, "-c", conf], stdout=lf, stderr=lf)
            lf.close()
            self.live.append(p)
            return p, logfile
        if kind == "spoold-py":
            # The uWSGI baseline's handler module, unchanged, in the python plugin.
            options = {"file": os.path.join(HERE, "uwsgi_handlers.py"), "env.SPOOLD_BENCH_MODE": mode,
                       "env.SPOOLD_BENCH_COUNT_FILE": count_file, "env.SPOOLD_BENCH_RECORD_FILE": record_file,
                       "env.PYTHONDONTWRITEBYTECODE": "1"}
            # The shipped plugins' folder, where the python plugin is built.
            conf, logfile = self.spoold_config(fs, queue_dir, processes, level, "python", options,
                                               plugin_dir=os.path.join(self.build, "plugins"))
            lf = open(logfile, "w")
            p = subprocess.Popen([self.spoold, "-c", conf], stdout=lf, stderr=lf)
            lf.close()
            self.live.append(p)
            return p, logfile
        if kind == "uwsgi":
            work = self.work_dir(fs)
            self.seq += 1
            logfile = os.path.join(work, f"uwsgi-{self.seq}.log")
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", SPOOLD_BENCH_MODE=mode)
            if count_file:
                env["SPOOLD_BENCH_COUNT_FILE"] = count_file
            if record_file:
                env["SPOOLD_BENCH_RECORD_FILE"] = record_file
            cmd = [self.uwsgi, "--plugin", "python3", "--master", "--spooler", queue_dir,
                   "--spooler-processes", str(processes), "--spooler-frequency", "1",
                   "--pythonpath", HERE, "--import", "uwsgi_handlers",
                   "--die-on-term", "--disable-logging", "--spooler-quiet"]
            lf = open(logfile, "w")
            p = subprocess.Popen(cmd, stdout=lf, stderr=lf, env=env, cwd=work)
            lf.close()
            self.live.append(p)
            return p, logfile
        raise ValueError(kind)

    def stop(self, p, kind):
        """Stops a consumer; returns (exit code, stdout of raw_consumer)."""
        if p in self.live:
            self.live.remove(p)
        if kind in ("raw", "raw-lock"):
            try:
                out, err = p.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            return p.returncode, out + err
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return p.returncode, ""

    # --- (1) drain ---

    def make_backlog(self, fs, n):
        d = self.fresh_dir(fs, f"drain-{fmt_size(n)}")
        os.mkdir(os.path.join(d, "failed"))
        t0 = time.monotonic()
        r = subprocess.run([self.tool("make_backlog"), d, str(n), "-j", "2"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"run_bench: make_backlog failed: {r.stderr.strip()}")
        made_in = time.monotonic() - t0
        # --inject-bad K: K task files that no consumer can parse (a header
        # that promises more bytes than the file has, a minute old), to show
        # that such a run is refused
        for i in range(self.args.inject_bad):
            path = os.path.join(d, f"{TASK_PREFIX}bench_bad_{i}_0_0_0")
            with open(path, "wb") as f:
                f.write(b"\x11\xff\xff\x00garbage")
            old = time.time() - 60
            os.utime(path, (old, old))
        return d, made_in

    def drain_once(self, fs, n, name, rep):
        kind, procs, level = CONTENDERS[name]
        d, made_in = self.make_backlog(fs, n)
        # every task file in the directory must be handled once: the ones
        # make_backlog wrote and any --inject-bad ones
        n_files = n + self.args.inject_bad
        count_file = self.new_count_file() if kind in ("spoold", "spoold-py", "uwsgi") else None
        load_before = loadavg()[0]
        watcher = subprocess.Popen([self.tool("bench_tool"), "watch", d, str(n_files), "--stall", str(self.args.stall)],
                                   stdout=subprocess.PIPE, text=True)
        self.live.append(watcher)
        ready = watcher.stdout.readline().split()
        if not ready or ready[0] != "ready":
            watcher.wait()
            sys.exit(f"run_bench: the watcher refused {d}: {' '.join(ready)}")
        foreign = ForeignCpu()
        foreign.start()
        t_launch = time.monotonic()
        p, logfile = self.start(kind, procs, level, fs, d, count_file=count_file, sandbox=name.endswith("-sandbox"))
        sampler = RssSampler(p.pid) if kind in ("spoold", "spoold-py", "uwsgi") else None
        if sampler:
            sampler.start()
        first = empty = None
        trouble = None
        samples = []
        for line in watcher.stdout:
            parts = line.split()
            if parts[0] == "first":
                first = (float(parts[1]), int(parts[2]))
            elif parts[0] == "empty":
                empty = float(parts[1])
            elif parts[0] == "sample":
                samples.append((float(parts[1]), int(parts[2])))
            elif parts[0] in ("stalled", "timeout"):
                trouble = f"{parts[0]} with {parts[2]} tasks left"
        watcher.wait()
        self.live.remove(watcher)
        if sampler:
            sampler.stop()
        # uWSGI's master exits without waiting for its spoolers, so their CPU
        # never reaches our rusage: take it from /proc while they still run
        orphans = sum(cpu_ns(x) for x in process_tree(p.pid)[1:]) / 1e9 if kind == "uwsgi" else 0.0
        code, out = self.stop(p, kind)
        foreign.ours0 -= orphans
        foreign_cores = foreign.stop()
        left, other = count_dir(d)
        failed, _ = count_dir(os.path.join(d, "failed"))
        failed_other = len(os.listdir(os.path.join(d, "failed")))
        if kind in ("raw", "raw-lock"):
            handled = int(out.split()[1]) if out.startswith("handled") else -1
        else:
            handled = self.read_count(count_file)
            os.unlink(count_file)
        problems = []
        if trouble:
            problems.append(trouble)
        if left:
            problems.append(f"{left} task files left")
        if failed_other:
            problems.append(f"{failed_other} files in failed/")
        if handled != n_files:
            lost = n_files - handled - left - failed
            problems.append(f"handled {handled} of {n_files} tasks" + (
                " (some twice)" if handled > n_files else f", {lost} lost (gone unhandled)" if lost > 0 else ""))
        if code not in (0, None) and not (kind == "uwsgi" and code in (0, 30)):
            problems.append(f"exit status {code}")
        res = {
            "fs": fs, "n": n, "contender": name, "rep": rep, "made_in_s": round(made_in, 3),
            "load": load_before, "log": logfile, "valid": not problems, "problems": problems,
            "handled": handled, "foreign_cores": round(foreign_cores, 3), "wall_s": round(foreign.dt, 3),
        }
        if first and empty and not problems:
            t_first, left_at_first = first
            span = max(empty - t_first, 1e-6)
            res.update({
                "rate": left_at_first / span,
                "startup_s": t_first - t_launch,
                "total_s": empty - t_launch,
                "overall_rate": n / max(empty - t_launch, 1e-6),
            })
            # rate over the first and the last half of the drain, from the samples
            if len(samples) >= 4:
                mid = [s for s in samples if s[0] >= t_first]
                if len(mid) >= 3:
                    half = len(mid) // 2
                    a, b, c = mid[0], mid[half], mid[-1]
                    if b[0] > a[0] and c[0] > b[0]:
                        res["rate_first_half"] = (a[1] - b[1]) / (b[0] - a[0])
                        res["rate_second_half"] = (b[1] - c[1]) / (c[0] - b[0])
        if sampler:
            res["rss_max_kb"] = sampler.max_kb
            res["rss_per_role_kb"] = sampler.per_process_max
        if problems:
            self.results["invalid"].append(res)
            log(f"  INVALID {fs} {fmt_size(n)} {name} rep {rep}: {'; '.join(problems)}"
                + (f" (dir kept: {d})" if self.args.keep_logs else ""))
        if not problems or not self.args.keep_logs:
            shutil.rmtree(d, ignore_errors=True)
        if fs == "ext4" and not problems:
            os.sync()
        self.results["drain"].append(res)
        if res.get("rate"):
            log(f"  {fs:5} {fmt_size(n):>4} {name:14} rep {rep}: {res['rate']:>9,.0f}/s  startup "
                f"{res['startup_s'] * 1000:5.0f} ms  made in {made_in:5.1f}s  load {load_before:.2f}  "
                f"others {foreign_cores:.2f} cores"
                + (f"  rss {res['rss_max_kb'] / 1024:.1f} MB" if sampler else ""))
        return res

    def drain(self):
        a = self.args
        for fs in self.roots:
            for n in a.sizes:
                names = [c for c in a.contenders if c in CONTENDERS]
                if n >= a.big:
                    big = a.big_contenders if fs == "tmpfs" else a.big_contenders_ext4
                    names = [c for c in names if c in big]
                if not self.uwsgi:
                    names = [c for c in names if not c.startswith("uwsgi")]
                if not names:
                    continue
                reps = a.reps if n < a.big or fs == "tmpfs" else a.big_reps_ext4
                for rep in range(reps):
                    # alternate: every repetition starts with a different contender
                    order = names[rep % len(names):] + names[:rep % len(names)]
                    for name in order:
                        self.drain_once_quiet(fs, n, name, rep + 1)

    def drain_once_quiet(self, fs, n, name, rep):
        """drain_once, again (up to --retries times) when other processes used
        more than --max-foreign cores during it; the disturbed runs are kept in
        the JSON (disturbed = true) but not in the table."""
        for attempt in range(self.args.retries + 1):
            res = self.drain_once(fs, n, name, rep)
            # /proc/stat counts in 10 ms ticks: allow for that on short runs
            allowed = self.args.max_foreign + 0.03 / max(res.get("wall_s", 1), 0.01)
            if res.get("foreign_cores", 0) <= allowed or not res["valid"]:
                return res
            if attempt < self.args.retries:
                res["disturbed"] = True
                log(f"    (other processes used {res['foreign_cores']:.2f} cores: run again)")
        return res

    # --- (2) pickup latency ---

    def latency(self):
        a = self.args
        kinds = ["spoold"] + (["uwsgi"] if self.uwsgi and a.uwsgi_latency else [])
        for fs in self.roots:
            for kind in kinds:
                for rep in range(a.latency_reps):
                    self.latency_once(fs, kind, rep + 1)

    def latency_once(self, fs, kind, rep):
        a = self.args
        d = self.fresh_dir(fs, f"latency-{kind}")
        os.mkdir(os.path.join(d, "failed"))
        work = self.work_dir(fs)
        record = os.path.join(work, f"latency-{kind}-{self.seq}.rec")
        produced = os.path.join(work, f"latency-{kind}-{self.seq}.sent")
        p, logfile = self.start(kind, 1, "warn", fs, d, mode="latency", record_file=record)
        time.sleep(1.5)  # an idle host: started, nothing to do
        cpu0 = sum(cpu_ns(x) for x in process_tree(p.pid))
        r = subprocess.run([self.tool("bench_tool"), "produce", d, str(a.latency_tasks),
                            str(a.latency_interval_us), produced], capture_output=True, text=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and count_dir(d)[0] > 0:
            time.sleep(0.05)
        time.sleep(0.2)
        cpu1 = sum(cpu_ns(x) for x in process_tree(p.pid))
        code, _ = self.stop(p, kind)
        sent = {}
        with open(produced) as f:
            for line in f:
                k, v = line.split()
                sent[k] = int(v)
        got = {}
        dup = 0
        if os.path.exists(record):
            with open(record) as f:
                for line in f:
                    k, v = line.split()
                    if k in got:
                        dup += 1
                    got[k] = int(v)
        lat = sorted((got[k] - sent[k]) / 1e6 for k in sent if k in got)
        left, _ = count_dir(d)
        failed = len(os.listdir(os.path.join(d, "failed")))
        problems = []
        if r.returncode != 0:
            problems.append("producer failed: " + r.stderr.strip())
        if len(lat) != a.latency_tasks:
            problems.append(f"{a.latency_tasks - len(lat)} of {a.latency_tasks} tasks never reached the handler")
        if dup:
            problems.append(f"{dup} tasks handled twice")
        if left or failed:
            problems.append(f"{left} left, {failed} in failed/")
        res = {"fs": fs, "kind": kind, "rep": rep, "valid": not problems, "problems": problems, "log": logfile,
               "load": loadavg()[0]}
        if lat and not problems:
            res.update(latencies_ms=lat, **percentiles(lat))
            res["cpu_ms_per_task"] = (cpu1 - cpu0) / 1e6 / len(lat)
            log(f"  latency {fs:5} {kind:6} rep {rep}: p50 {res['p50']:.3f} ms  p99 {res['p99']:.3f} ms  "
                f"max {res['max']:.3f} ms")
            shutil.rmtree(d, ignore_errors=True)
        else:
            self.results["invalid"].append(res)
            log(f"  INVALID latency {fs} {kind}: {'; '.join(problems)} (dir kept: {d})")
        self.results["latency"].append(res)

    # --- (3) enqueue ---

    def enqueue(self):
        """Every producer in turn, each repetition in a new order, and the
        directories written are removed only at the end: on this machine's
        ext4, creating files right after deleting many is several times
        slower (bench/README.md), which would otherwise hit whichever
        producer runs after another's clean-up."""
        a = self.args
        client_lib_dir = os.path.join(self.build, "lib")
        cases = [(fs, producer, sync) for fs in self.roots for producer in ("spoolctl", "capi", "python")
                 for sync in (True, False)]
        self.enqueue_dirs = []
        try:
            for rep in range(a.enqueue_reps):
                order = cases[rep * 5 % len(cases):] + cases[:rep * 5 % len(cases)]
                for fs, producer, sync in order:
                    n = a.enqueue_n
                    if sync and fs == "ext4":
                        n = a.enqueue_n_sync
                    if producer == "spoolctl":
                        n = max(50, n // 5)
                    self.results["enqueue"].append(self.enqueue_once(fs, producer, sync, n, rep + 1, client_lib_dir))
        finally:
            for d in self.enqueue_dirs:
                shutil.rmtree(d, ignore_errors=True)

    def enqueue_once(self, fs, producer, sync, n, rep, client_lib_dir):
        d = self.fresh_dir(fs, f"enqueue-{producer}")
        no_sync = [] if sync else ["--no-sync"]
        if producer == "spoolctl":
            cmd = [self.tool("bench_tool"), "spawn", str(n), self.spoolctl, "enqueue", "--dir", d, "n=1"] + no_sync
        elif producer == "capi":
            if not os.path.exists(self.tool("enqueue_capi")):
                return {"fs": fs, "producer": producer, "sync": sync, "valid": False, "problems": ["not built"]}
            cmd = [self.tool("enqueue_capi"), d, str(n)] + no_sync
        else:
            code = (
                "import sys, time\n"
                f"sys.path.insert(0, {os.path.join(REPO, 'client', 'python')!r})\n"
                "import spoolclient\n"
                f"d, n, sync = {d!r}, {n}, {sync}\n"
                "t0 = time.monotonic()\n"
                "for i in range(n):\n"
                "    spoolclient.enqueue(d, {'n': str(i)}, sync=sync)\n"
                "print('elapsed %.6f failed 0' % (time.monotonic() - t0))\n"
            )
            cmd = [sys.executable, "-c", code]
        env = dict(os.environ, LD_LIBRARY_PATH=client_lib_dir)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        tasks, other = count_dir(d)
        problems = []
        elapsed = None
        try:
            parts = r.stdout.split()
            elapsed = float(parts[parts.index("elapsed") + 1])
        except (ValueError, IndexError):
            problems.append("no timing: " + (r.stderr.strip() or r.stdout.strip())[:200])
        if r.returncode != 0:
            problems.append(f"exit status {r.returncode}: {r.stderr.strip()[:200]}")
        if tasks != n:
            problems.append(f"{tasks} task files written of {n}")
        if other:
            problems.append(f"{other} other files left (temporary files?)")
        res = {"fs": fs, "producer": producer, "sync": sync, "n": n, "rep": rep, "valid": not problems,
               "problems": problems}
        if elapsed and not problems:
            res["rate"] = n / elapsed
            log(f"  enqueue {fs:5} {producer:8} {'sync' if sync else 'no-sync':7} rep {rep}: {res['rate']:>9,.0f}/s")
            self.enqueue_dirs.append(d)
        else:
            self.results["invalid"].append(res)
            log(f"  INVALID enqueue {fs} {producer}: {'; '.join(problems)}")
        return res

    # --- (4) idle CPU ---

    def idle(self):
        a = self.args
        fs = "tmpfs" if "tmpfs" in self.roots else next(iter(self.roots))
        for kind, procs in (("spoold", 2), ("uwsgi", 1), ("uwsgi", 2)):
            if kind == "uwsgi" and not self.uwsgi:
                continue
            d = self.fresh_dir(fs, f"idle-{kind}")
            os.mkdir(os.path.join(d, "failed"))
            p, logfile = self.start(kind, procs, "warn", fs, d)
            time.sleep(2)
            pids = process_tree(p.pid)
            rss = sum(rss_kb(x) for x in pids)
            c0 = sum(cpu_ns(x) for x in pids)
            s0 = sum(ctx_switches(x) for x in pids)
            time.sleep(a.idle_seconds)
            c1 = sum(cpu_ns(x) for x in pids)
            s1 = sum(ctx_switches(x) for x in pids)
            self.stop(p, kind)
            res = {"kind": kind, "processes": procs, "seconds": a.idle_seconds, "cpu_ms": (c1 - c0) / 1e6,
                   "cpu_percent": (c1 - c0) / 1e9 / a.idle_seconds * 100, "switches": s1 - s0,
                   "rss_kb": rss, "pids": len(pids)}
            self.results["idle"].append(res)
            log(f"  idle {kind}-{procs}: {res['cpu_ms']:.2f} ms CPU in {a.idle_seconds} s "
                f"({res['cpu_percent']:.4f}% of a core), {res['switches']} context switches, RSS {rss / 1024:.1f} MB")
            shutil.rmtree(d, ignore_errors=True)

    def cleanup(self):
        for p in self.live:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for path in self.count_files:
            if os.path.exists(path):
                os.unlink(path)
        for fs, root in self.roots.items():
            w = os.path.join(root, f"work-{os.getpid()}")
            if not self.args.keep_logs:
                shutil.rmtree(w, ignore_errors=True)


def percentiles(values):
    v = sorted(values)

    def pct(p):
        if not v:
            return None
        k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
        return v[k]

    return {"p50": pct(50), "p99": pct(99), "max": v[-1] if v else None, "count": len(v)}


# --- the table -----------------------------------------------------------------


def machine_info(roots):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mounts = {}
    with open("/proc/mounts") as f:
        table = [line.split() for line in f]
    for fs, root in roots.items():
        best = None
        for dev, mnt, typ, opts, *_ in table:
            if root == mnt or root.startswith(mnt.rstrip("/") + "/"):
                if best is None or len(mnt) > len(best[1]):
                    best = (dev, mnt, typ, opts)
        if best:
            mounts[fs] = f"{root} on {best[1]} ({best[2]}, {best[3]})"
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(), "memory_gb": round(mem_gb, 1),
        "filesystems": mounts, "python": platform.python_version(),
    }


def median_or_none(values):
    return statistics.median(values) if values else None


def build_table(bench, started, finished, load_start, load_end, command):
    a = bench.args
    R = bench.results
    out = []
    info = machine_info(bench.roots)
    out.append(f"spoold benchmark, {started:%Y-%m-%d %H:%M} to {finished:%H:%M} "
               f"({(finished - started).total_seconds() / 60:.1f} min)")
    out.append(f"machine: {info['cpus']} x {info['cpu_model']}, {info['memory_gb']} GB RAM, Linux {info['kernel']}")
    for fs, text in info["filesystems"].items():
        out.append(f"{fs}: {text}")
    out.append(f"load average (1 min): {load_start[0]:.2f} at start, {load_end[0]:.2f} at the end; "
               f"highest at the start of a drain run: "
               f"{max([r['load'] for r in R['drain']] or [0]):.2f} (the benchmark's own processes count)")
    fc = sorted(r.get("foreign_cores", 0) for r in R["drain"] if not r.get("disturbed"))
    if fc:
        redone = sum(1 for r in R["drain"] if r.get("disturbed"))
        out.append(f"CPU used by other processes during the reported drain runs: median {statistics.median(fc):.2f} "
                   f"cores, max {fc[-1]:.2f} of {os.cpu_count()}; runs above {a.max_foreign}: "
                   f"{sum(1 for x in fc if x > a.max_foreign)} of {len(fc)}; runs redone because others were busy: "
                   f"{redone}")
    slow = [r for r in R["drain"] if r["fs"] == "ext4" and r.get("made_in_s", 0) > 25]
    if slow:
        out.append(f"ext4 backlogs that took over 25 s to write (part of them written back before the drain, "
                   f"see bench/README.md): {len(slow)} of {sum(1 for r in R['drain'] if r['fs'] == 'ext4')}")
    out.append(f"command: {command}")
    out.append("")

    # (1) drain
    cell = {}
    for r in R["drain"]:
        if r.get("disturbed"):
            continue
        cell.setdefault((r["fs"], r["contender"], r["n"]), []).append(r)
    sizes = sorted({r["n"] for r in R["drain"]})
    fss = [fs for fs in ("tmpfs", "ext4") if any(r["fs"] == fs for r in R["drain"])]
    med = {}
    for key, runs in cell.items():
        if all(r["valid"] for r in runs):
            med[key] = median_or_none([r["rate"] for r in runs if r.get("rate")])
        else:
            med[key] = "INVALID"
    reps_note = f"median of {a.reps} alternating runs"
    if any(n >= a.big for n in sizes):
        reps_note += f" ({a.big_reps_ext4} on ext4 at {fmt_size(a.big)} and above)"
    out.append(f"(1) drain rate, tasks/s: no-op handler, pre-made backlog; time from the first task gone to the "
               f"directory empty; {reps_note}")
    w = 12
    lw = 50
    out.append(f"{'fs':6}{'contender':{lw}}" + "".join(f"{fmt_size(n):>{w}}" for n in sizes))
    for fs in fss:
        for name in CONTENDERS:
            if not any((fs, name, n) in med for n in sizes):
                continue
            row = f"{fs:6}{name + ' (' + CONTENDER_TEXT[name].split(', ', 1)[1].strip() + ')':{lw}}"
            for n in sizes:
                v = med.get((fs, name, n))
                row += f"{(v if isinstance(v, str) else fmt_rate(v)):>{w}}"
            out.append(row)
        ratios = [("spoold-1 / raw-1", "spoold-1", "raw-1"), ("spoold-1 / raw-lock-1", "spoold-1", "raw-lock-1"),
                  ("raw-lock-1 / raw-1", "raw-lock-1", "raw-1"), ("spoold-1 / uwsgi-1", "spoold-1", "uwsgi-1"),
                  ("spoold-2 / spoold-1", "spoold-2", "spoold-1"), ("spoold-2 / raw-2", "spoold-2", "raw-2"),
                  ("spoold-2 / uwsgi-2", "spoold-2", "uwsgi-2"), ("uwsgi-1 / raw-1", "uwsgi-1", "raw-1"),
                  ("spoold-1-info / spoold-1", "spoold-1-info", "spoold-1"),
                  ("spoold-1-sandbox / spoold-1", "spoold-1-sandbox", "spoold-1"),
                  ("spoold-py-1 / uwsgi-1", "spoold-py-1", "uwsgi-1"),
                  ("spoold-py-2 / spoold-py-1", "spoold-py-2", "spoold-py-1"),
                  ("spoold-py-1 / spoold-1", "spoold-py-1", "spoold-1")]
        for label, x, y in ratios:
            vals = [ratio(med.get((fs, x, n)), med.get((fs, y, n))) for n in sizes]
            if all(v is None for v in vals):
                continue
            out.append(f"{fs:6}{'  ratio ' + label:{lw}}" + "".join(f"{(f'{v:.2f}' if v else '-'):>{w}}" for v in vals))
        base = sizes[0]
        for name in ("spoold-1", "spoold-2", "raw-1", "uwsgi-1"):
            vals = [ratio(med.get((fs, name, n)), med.get((fs, name, base))) for n in sizes]
            if any(vals[1:]):
                out.append(f"{fs:6}{'  ratio ' + name + ' / its ' + fmt_size(base):{lw}}"
                           + "".join(f"{(f'{v:.2f}' if v else '-'):>{w}}" for v in vals))
    startups = {}
    for r in R["drain"]:
        if r.get("startup_s") is not None:
            startups.setdefault(r["contender"].split("-", 1)[0], []).append(r["startup_s"])
    if startups:
        out.append("    first task gone after start (median over all runs): " + ", ".join(
            f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in sorted(startups.items())))
    out.append("")

    # (2) latency
    out.append(f"(2) pickup latency, ms: {a.latency_tasks} tasks written by another process, one every "
               f"{a.latency_interval_us / 1000:g} ms (temp file + rename), into an idle host with 1 spooler; "
               f"rename done -> handle() entered; all runs pooled")
    out.append(f"{'fs':6}{'consumer':36}{'p50':>10}{'p99':>10}{'max':>10}{'tasks':>8}  CPU/task")
    for fs in fss or list(bench.roots):
        for kind in ("spoold", "uwsgi"):
            runs = [r for r in R["latency"] if r["fs"] == fs and r["kind"] == kind]
            if not runs:
                continue
            label = "spoold (bench_latency plugin)" if kind == "spoold" else "uWSGI --spooler-frequency 1"
            if not all(r["valid"] for r in runs):
                out.append(f"{fs:6}{label:36}{'INVALID':>10}")
                continue
            pooled = percentiles([x for r in runs for x in r["latencies_ms"]])
            cpu = statistics.median(r["cpu_ms_per_task"] for r in runs)
            out.append(f"{fs:6}{label:36}{pooled['p50']:>10.3f}{pooled['p99']:>10.3f}{pooled['max']:>10.3f}"
                       f"{pooled['count']:>8}  {cpu * 1000:.0f} us")
    out.append("")

    # (3) enqueue
    out.append(f"(3) enqueue rate, tasks/s (median of {a.enqueue_reps}); spoolctl is one process per task")
    cols = [(fs, s) for fs in (fss or list(bench.roots)) for s in (True, False)]
    out.append(f"{'producer':26}" + "".join(f"{fs + (' sync' if s else ' no-sync'):>16}" for fs, s in cols))
    for producer, label in (("spoolctl", "spoolctl (process/task)"), ("capi", "C API (libspoold_client)"),
                            ("python", "spoolclient.py")):
        row = f"{label:26}"
        for fs, s in cols:
            runs = [r for r in R["enqueue"] if r["fs"] == fs and r["producer"] == producer and r["sync"] == s]
            if not runs:
                row += f"{'-':>16}"
            elif not all(r["valid"] for r in runs):
                row += f"{'INVALID':>16}"
            else:
                row += f"{fmt_rate(statistics.median(r['rate'] for r in runs)):>16}"
        out.append(row)
    out.append("")

    # (4) resources
    out.append("(4) resources")
    for fs in fss:
        big = max((n for n in sizes), default=None)
        for name in ("spoold-1", "spoold-2", "uwsgi-1", "uwsgi-2"):
            runs = [r for r in R["drain"] if r["fs"] == fs and r["contender"] == name and r["n"] == big
                    and r.get("rss_max_kb")]
            if runs:
                mx = max(r["rss_max_kb"] for r in runs)
                roles = {}
                for r in runs:
                    for k, v in r.get("rss_per_role_kb", {}).items():
                        roles[k] = max(roles.get(k, 0), v)
                out.append(f"    RSS, host + spoolers, max while a {fmt_size(big)} backlog drains ({fs}), {name}: "
                           f"{mx / 1024:.1f} MB (largest master {roles.get('master', 0) / 1024:.1f} MB, "
                           f"largest spooler {roles.get('spooler', 0) / 1024:.1f} MB)")
    for r in R["idle"]:
        out.append(f"    idle {r['kind']} with {r['processes']} spooler(s), {r['seconds']} s: "
                   f"{r['cpu_ms']:.2f} ms CPU = {r['cpu_percent']:.4f}% of a core, {r['switches']} context switches, "
                   f"RSS {r['rss_kb'] / 1024:.1f} MB ({r['pids']} processes)")
    out.append("")

    # targets
    out.append("targets (issues 5 and 10)")
    checks = []

    def m(fs, name, n):
        v = med.get((fs, name, n))
        return v if isinstance(v, (int, float)) else None

    small = sizes[0] if sizes else None
    if "tmpfs" in fss and small:
        for n in sizes:
            r = ratio(m("tmpfs", "spoold-1", n), m("tmpfs", "raw-1", n))
            if r is not None:
                checks.append((f"tmpfs {fmt_size(n)}: spoold-1 >= 80% of raw-1", r >= 0.8, f"{r * 100:.0f}%"))
        for n in sizes:
            r = ratio(m("tmpfs", "spoold-1", n), m("tmpfs", "uwsgi-1", n))
            if r is not None:
                checks.append((f"tmpfs {fmt_size(n)}: spoold-1 about 1.6x uwsgi-1 (informative)", r >= 1.6, f"{r:.2f}x"))
        for n in sizes:
            r = ratio(m("tmpfs", "spoold-2", n), m("tmpfs", "spoold-1", n))
            if r is not None:
                checks.append((f"tmpfs {fmt_size(n)}: spoold-2 >= 1.6x spoold-1", r >= 1.6, f"{r:.2f}x"))
        # issue 10: the python plugin against uWSGI's spooler with the same no-op handler
        for n in sizes:
            r = ratio(m("tmpfs", "spoold-py-1", n), m("tmpfs", "uwsgi-1", n))
            if r is not None:
                checks.append((f"tmpfs {fmt_size(n)}: spoold-py-1 >= 1.2x uwsgi-1", r >= 1.2, f"{r:.2f}x"))
            r = ratio(m("tmpfs", "spoold-py-2", n), m("tmpfs", "spoold-py-1", n))
            if r is not None:
                checks.append((f"tmpfs {fmt_size(n)}: spoold-py-2 >= 1.6x spoold-py-1", r >= 1.6, f"{r:.2f}x"))
    if "ext4" in fss:
        target_n = 200_000 if 200_000 in sizes else max(sizes)
        r = ratio(m("ext4", "spoold-1", target_n), m("ext4", "uwsgi-1", target_n))
        if r is not None:
            checks.append((f"ext4 {fmt_size(target_n)}: spoold-1 >= 2x uwsgi-1", r >= 2, f"{r:.2f}x"))
    for fs in fss:
        for n in sizes[1:]:
            for name in ("spoold-1", "spoold-2"):
                r = ratio(m(fs, name, n), m(fs, name, small))
                if r is not None:
                    checks.append((f"{fs} {name}: rate at {fmt_size(n)} >= 90% of rate at {fmt_size(small)}", r >= 0.9,
                                   f"{r * 100:.0f}%"))
    for fs in fss:
        runs = [r for r in R["latency"] if r["fs"] == fs and r["kind"] == "spoold" and r["valid"]]
        if runs:
            pooled = percentiles([x for r in runs for x in r["latencies_ms"]])
            ok = pooled["p50"] < 0.2 and pooled["p99"] < 1.0
            checks.append((f"{fs}: pickup p50 < 0.2 ms and p99 < 1 ms" + ("" if fs == "tmpfs" else " (reported beside)"),
                           ok, f"p50 {pooled['p50']:.3f} ms, p99 {pooled['p99']:.3f} ms"))
    big = max(sizes) if sizes else None
    for fs in fss:
        for name in ("spoold-1", "spoold-2"):
            runs = [r for r in R["drain"] if r["fs"] == fs and r["contender"] == name and r["n"] == big
                    and r.get("rss_max_kb")]
            if runs:
                mx = max(r["rss_max_kb"] for r in runs) / 1024
                checks.append((f"{fs} {name}: RSS < 16 MB at a {fmt_size(big)} backlog", mx < 16, f"{mx:.1f} MB"))
    for r in R["idle"]:
        if r["kind"] == "spoold":
            checks.append((f"idle CPU of spoold with {r['processes']} spoolers < 0.1% of a core",
                           r["cpu_percent"] < 0.1, f"{r['cpu_percent']:.4f}%"))
    for label, ok, value in checks:
        out.append(f"    [{'met ' if ok else 'MISS'}] {label}: {value}")
    if R["invalid"]:
        out.append("")
        out.append(f"INVALID runs ({len(R['invalid'])}), not reported as rates:")
        for r in R["invalid"]:
            what = " ".join(str(r.get(k)) for k in ("fs", "n", "contender", "kind", "producer", "rep") if r.get(k))
            out.append(f"    {what}: {'; '.join(r['problems'])}")
    return "\n".join(out), checks


def ratio(x, y):
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y:
        return x / y
    return None


def write_readme(path, table):
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    with open(path) as f:
        text = f.read()
    block = f"{begin}\n```\n{table}\n```\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def parse_sizes(text):
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        mult = 1
        if part.endswith("k"):
            mult, part = 1000, part[:-1]
        elif part.endswith("m"):
            mult, part = 1_000_000, part[:-1]
        out.append(int(float(part) * mult))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="the build directory (default: build)")
    ap.add_argument("--quick", action="store_true", help="10k and 50k only, fewer tasks elsewhere: a smoke test")
    ap.add_argument("--sizes", type=parse_sizes, default=None, help="backlog sizes (default 10k,200k,1M)")
    ap.add_argument("--reps", type=int, default=3, help="runs per contender and size (default 3)")
    ap.add_argument("--big", type=parse_sizes, default=[1_000_000],
                    help="from this size on, only --big-contenders run (default 1M)")
    ap.add_argument("--big-contenders", default="raw-1,raw-lock-1,spoold-1,spoold-2,uwsgi-1", help="on tmpfs")
    ap.add_argument("--big-contenders-ext4", default="raw-1,spoold-1",
                    help="on ext4, where a 1M backlog no longer fits in the dirty page cache and every drain "
                         "is bound by the disk (about 1.5 min per run)")
    ap.add_argument("--inject-bad", type=int, default=0, metavar="K",
                    help="add K unparsable task files to every backlog: a self-test that such runs are refused")
    ap.add_argument("--big-reps-ext4", type=int, default=1, help="runs per contender at the big size on ext4")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--fs", default="tmpfs,ext4", help="which of tmpfs,ext4 to measure")
    ap.add_argument("--tmpfs-dir", default="/dev/shm/spoold-bench")
    ap.add_argument("--ext4-dir", default="/var/tmp/spoold-bench")
    ap.add_argument("--sections", default="drain,latency,enqueue,idle")
    ap.add_argument("--max-foreign", type=float, default=0.25,
                    help="a drain run during which other processes used more CPU than this (in cores) is run again")
    ap.add_argument("--retries", type=int, default=2, help="how many times a disturbed run is run again")
    ap.add_argument("--stall", type=float, default=60, help="a drain with no progress for this long is INVALID")
    ap.add_argument("--latency-tasks", type=int, default=1000)
    ap.add_argument("--latency-interval-us", type=int, default=2000)
    ap.add_argument("--latency-reps", type=int, default=3)
    ap.add_argument("--no-uwsgi-latency", dest="uwsgi_latency", action="store_false")
    ap.add_argument("--enqueue-n", type=int, default=5000)
    ap.add_argument("--enqueue-n-sync", type=int, default=500, help="tasks per synced enqueue run on ext4")
    ap.add_argument("--enqueue-reps", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--json", help="also write every run's numbers here")
    ap.add_argument("--write-readme", action="store_true", help="put the table into bench/README.md")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the host logs and configs (in DIR/work-PID) and the directories of INVALID runs")
    a = ap.parse_args()
    a.big = a.big[0]
    if a.quick:
        a.sizes = a.sizes or [10_000, 50_000]
        a.latency_tasks = min(a.latency_tasks, 500)
        a.latency_reps = 1
        a.enqueue_n = 1000
        a.enqueue_n_sync = 100
        a.enqueue_reps = 1
        a.idle_seconds = 3
    a.sizes = a.sizes or [10_000, 200_000, 1_000_000]
    a.fs = [x for x in a.fs.split(",") if x]
    a.contenders = [x for x in a.contenders.split(",") if x]
    a.big_contenders = [x for x in a.big_contenders.split(",") if x]
    a.big_contenders_ext4 = [x for x in a.big_contenders_ext4.split(",") if x]
    sections = a.sections.split(",")

    bench = Bench(a)
    # a TERM stops the run like Ctrl-C: the hosts it started are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for fs, root in bench.roots.items():
        os.makedirs(root, exist_ok=True)
        if fs == "ext4":
            # Orlov spreads the subdirectories of a TOPDIR directory over
            # block groups, so a new backlog's inodes do not land among the
            # ones the last run deleted (see bench/README.md: this ext4 has
            # no journal, and allocating next to recently deleted inodes is
            # up to 50x slower for minutes).
            subprocess.run(["chattr", "+T", root], capture_output=True)
    if not bench.uwsgi:
        log("run_bench: uwsgi is not installed (apt-get install uwsgi-core uwsgi-plugin-python3): "
            "the uWSGI baseline is skipped")
    started = datetime.datetime.now()
    load_start = loadavg()
    command = "bench/run_bench.py " + " ".join(sys.argv[1:])
    log(f"run_bench: {started:%Y-%m-%d %H:%M:%S}, load {load_start[0]:.2f}; sizes "
        f"{', '.join(fmt_size(n) for n in a.sizes)}; {', '.join(bench.roots.values())}")
    try:
        if "drain" in sections:
            log("(1) drain")
            bench.drain()
        if "latency" in sections:
            log("(2) pickup latency")
            bench.latency()
        if "enqueue" in sections:
            log("(3) enqueue")
            bench.enqueue()
        if "idle" in sections:
            log("(4) idle")
            bench.idle()
    finally:
        bench.cleanup()
        for root in bench.roots.values():
            for name in os.listdir(root):
                if f"-{os.getpid()}-" in name and not a.keep_logs:
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    finished = datetime.datetime.now()
    table, checks = build_table(bench, started, finished, load_start, loadavg(), command)
    print(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": bench.results, "machine": machine_info(bench.roots),
                       "started": started.isoformat(), "finished": finished.isoformat()}, f, indent=1)
    if a.write_readme:
        write_readme(os.path.join(HERE, "README.md"), table)
    if bench.results["invalid"]:
        log(f"run_bench: {len(bench.results['invalid'])} run(s) lost or left tasks: see INVALID above; "
            "their numbers are not reported")
        sys.exit(1)


if __name__ == "__main__":
    main()
