#!/usr/bin/python3
"""Memory of a Python spooler process: spoold's `python` plugin against
uWSGI 2.0's spooler, each running the same code, measured after it has
handled tasks.

Contenders (--processes spooler processes each, default 1):
    spoold-worker   spoold, plugin python, module = "worker" (the tutorial's
                    worker.py, no Django)
    uwsgi-worker    uwsgi --master --spooler DIR --import worker
    spoold-django   spoold, plugin python, module = "tasksapp.tasks",
                    django_settings = "tutorial.settings": Django 3.2 set up,
                    an @spool(pass_arguments=True) task writing rows with
                    the ORM (SQLite)
    uwsgi-django    uwsgi --master --spooler DIR --module tutorial.wsgi
                    --spooler-import tasksapp.tasks: the app (and Django)
                    loaded in the master, the spooler forked from it, as
                    uWSGI deployments do

The project is tests/python_plugin/django_app. Each run starts the
consumer, enqueues --tasks tasks through client/python/uwsgi.py (Debian's
python), waits until all have run, then reads /proc/PID/smaps_rollup of the
spooler processes: RSS, PSS (shared pages divided among the processes that
map them), USS (pages no other process maps) and private dirty (the pages
this process wrote: its heap, its Python objects, the copy-on-write copies
of what it inherited), averaged over the spoolers, and the summed PSS of the whole instance (the master and
its spoolers; uWSGI runs no worker here, as it has no socket).

    bench/python_rss.py --build build [--runs 3] [--tasks 200] [--processes 1]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(REPO, "tests", "python_plugin", "django_app")
CLIENT_DIR = os.path.join(REPO, "client", "python")
PYTHON = "/usr/bin/python3"
CONTENDERS = ["spoold-worker", "uwsgi-worker", "spoold-django", "uwsgi-django"]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.02)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def smaps(pid):
    """{'rss', 'pss', 'uss', 'dirty'} in KiB from /proc/PID/smaps_rollup."""
    fields = {}
    for line in read("/proc/%d/smaps_rollup" % pid).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1])
    return {"rss": fields["Rss"], "pss": fields["Pss"], "dirty": fields.get("Private_Dirty", 0),
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def tree(pid):
    out = [pid]
    for child in read("/proc/%d/task/%d/children" % (pid, pid)).split():
        out += tree(int(child))
    return out


def task_files(d):
    out = 0
    for dirpath, _, names in os.walk(d):
        if os.path.basename(dirpath) == "failed":
            continue
        out += sum(1 for n in names if n.startswith("uwsgi_spoolfile_on_"))
    return out


class Run:
    def __init__(self, args, contender):
        self.args = args
        self.contender = contender
        self.django = contender.endswith("django")
        self.root = tempfile.mkdtemp(prefix="spoold-python-rss-")
        self.queue = os.path.join(self.root, "spool", "queue")
        self.log_file = os.path.join(self.root, "tasks.log")
        self.db = os.path.join(self.root, "db.sqlite3")
        self.app_env = {"TUTORIAL_DB": self.db, "TUTORIAL_LOG": self.log_file, "TASKS_A_DIR": self.queue,
                        "TASKS_B_DIR": self.queue}
        self.env = dict(os.environ, **self.app_env, PYTHONDONTWRITEBYTECODE="1")
        self.proc = None
        self.consumer_log = os.path.join(self.root, "consumer.log")

    def producer_env(self):
        return dict(self.env, PYTHONPATH=os.pathsep.join([CLIENT_DIR, APP_DIR]), SPOOLD_SPOOL_DIR=self.queue,
                    DJANGO_SETTINGS_MODULE="tutorial.settings")

    def start(self):
        if self.django:
            subprocess.run([PYTHON, "manage.py", "migrate", "--no-input"], cwd=APP_DIR, env=self.producer_env(),
                           check=True, capture_output=True, timeout=120)
        os.makedirs(os.path.dirname(self.queue), exist_ok=True)
        log = open(self.consumer_log, "ab")
        if self.contender.startswith("spoold"):
            config = os.path.join(self.root, "spoold.toml")
            env = ", ".join('%s = "%s"' % kv for kv in sorted(self.app_env.items()))
            module = 'module = "tasksapp.tasks"\ndjango_settings = "tutorial.settings"' if self.django \
                else 'module = "worker"'
            with open(config, "w") as f:
                f.write('[host]\nplugin_dir = "%s"\n\n[[queue]]\nname = "q"\ndir = "%s"\nplugin = "python"\n'
                        'processes = %d\n[queue.options]\n%s\npath = ["%s"]\nenv = { %s }\n'
                        % (os.path.join(self.args.build, "plugins"), self.queue, self.args.processes, module,
                           APP_DIR, env))
            self.proc = subprocess.Popen([os.path.join(self.args.build, "bin", "spoold"), "-c", config],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=self.root, env=self.env)
            wait_until(lambda: self.alive() and "spoold ready" in read(self.consumer_log), 30, "spoold ready")
        else:
            argv = ["uwsgi", "--need-plugin", "python3", "--master", "--die-on-term", "--processes", "1",
                    "--spooler", self.queue, "--spooler-processes", str(self.args.processes), "--spooler-frequency", "1",
                    "--chdir", APP_DIR, "--pythonpath", APP_DIR]
            if self.django:
                argv += ["--module", "tutorial.wsgi:application", "--spooler-import", "tasksapp.tasks"]
            else:
                argv += ["--import", "worker"]
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=self.root,
                                         env=dict(self.env, DJANGO_SETTINGS_MODULE="tutorial.settings"))
            wait_until(lambda: self.alive() and read(self.consumer_log).count("spawned the uWSGI spooler on dir")
                       >= self.args.processes, 30, "the uWSGI spoolers")

    def alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited with %d:\n%s" % (self.contender, self.proc.returncode,
                                                            read(self.consumer_log)[-3000:]))
        return True

    def spooler_pids(self):
        n = self.args.processes
        if self.contender.startswith("spoold"):
            pids = tree(self.proc.pid)[1:]
        else:
            pids = [int(p) for p in re.findall(r"spawned the uWSGI spooler on dir \S+ with pid (\d+)",
                                               read(self.consumer_log))][-n:]
        if len(pids) != n or not all(p in tree(self.proc.pid) for p in pids):
            raise RuntimeError("%s: spooler processes %s, expected %d" % (self.contender, pids, n))
        return pids

    def enqueue_and_drain(self):
        n = self.args.tasks
        if self.django:
            script = ("import django; django.setup()\nfrom tasksapp.tasks import write_row\n"
                      "for i in range(%d): write_row.spool('row', i, source='bench')\n" % n)
        else:
            script = ("import uwsgi\nfor i in range(%d): uwsgi.spool({b'type': b'a', b'body': b'line %%d' %% i})\n"
                      % n)
        subprocess.run([PYTHON, "-c", script], cwd=self.root, env=self.producer_env(), check=True, timeout=300)
        if self.django:
            def done():
                self.alive()
                out = subprocess.run([PYTHON, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1])"
                                      ".execute('select count(*) from tasksapp_row').fetchone()[0])", self.db],
                                     capture_output=True, text=True, timeout=30)
                return out.returncode == 0 and int(out.stdout) >= n and task_files(self.queue) == 0
        else:
            def done():
                self.alive()
                return read(self.log_file).count("\n") >= n and task_files(self.queue) == 0
        wait_until(done, 300, "%d tasks to run" % n)

    def measure(self):
        each = [smaps(pid) for pid in self.spooler_pids()]
        spooler = {k: statistics.mean(m[k] for m in each) for k in ("rss", "pss", "uss", "dirty")}
        spooler["instance_pss"] = sum(smaps(p)["pss"] for p in tree(self.proc.pid))
        spooler["processes"] = len(tree(self.proc.pid))
        return spooler

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="the build directory (default: build)")
    ap.add_argument("--runs", type=int, default=3, help="runs per contender (default 3)")
    ap.add_argument("--tasks", type=int, default=200, help="tasks each run handles before it is measured")
    ap.add_argument("--processes", type=int, default=1, help="spooler processes per contender (default 1)")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if not os.path.exists(os.path.join(args.build, "plugins", "libpython.so")):
        sys.exit("python_rss.py: %s/plugins/libpython.so is missing: build the target spoold_plugins" % args.build)
    contenders = args.contenders.split(",")
    if not shutil.which("uwsgi"):
        print("uwsgi is not installed (apt-get install uwsgi-core uwsgi-plugin-python3): uWSGI rows skipped")
        contenders = [c for c in contenders if not c.startswith("uwsgi")]

    results = {}
    for contender in contenders:
        for i in range(args.runs):
            run = Run(args, contender)
            try:
                run.start()
                run.enqueue_and_drain()
                m = run.measure()
            finally:
                run.close()
            results.setdefault(contender, []).append(m)
            print("%-14s run %d: spooler RSS %6.0f KiB, PSS %6.0f KiB, USS %6.0f KiB, private dirty %6.0f KiB; "
                  "instance PSS %6d KiB (%d processes)"
                  % (contender, i + 1, m["rss"], m["pss"], m["uss"], m["dirty"], m["instance_pss"], m["processes"]),
                  flush=True)

    print()
    print("| contender | spooler RSS (MiB) | spooler PSS (MiB) | spooler USS (MiB) | spooler private dirty (MiB) "
          "| instance PSS (MiB) | processes |")
    print("|---|---|---|---|---|---|---|")
    for contender, runs in results.items():
        def med(key):
            return statistics.median(r[key] for r in runs) / 1024.0
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %d |" % (contender, med("rss"), med("pss"), med("uss"),
                                                                  med("dirty"), med("instance_pss"),
                                                                  runs[0]["processes"]))
    print("\nmedians of %d runs; %d spooler process(es) each, averaged; %d tasks handled before each measurement"
          % (args.runs, args.processes, args.tasks))


if __name__ == "__main__":
    main()
