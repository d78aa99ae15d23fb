"""Fixtures for the Redis queue tests: a redis-server of the test's own on a
Unix socket in its temp dir (stopped by pid), a redis-py client, and a
producer that writes entries as spoold's Redis producer does (README, Redis
Streams). Every wait has a deadline."""
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from support import (PLUGIN_DIR, SOURCE_DIR, SPOOLCTL, SPOOLD, TEST_PLUGIN_DIR, Daemon, SpooldTestCase,  # noqa: E402,F401
                     read_records, wait_until)

try:
    import redis  # Debian's python3-redis
except ImportError:  # pragma: no cover
    redis = None

REDIS_SERVER = "/usr/bin/redis-server"
requires_redis = unittest.skipUnless(redis is not None and os.path.exists(REDIS_SERVER),
                                     "redis-server or python3-redis missing (scripts/install-deps installs them)")


class RedisServer:
    """redis-server on <dir>/redis.sock, no TCP port; persistence only when asked."""

    def __init__(self, directory, password=None, persist=False):
        self.dir = directory
        self.sock = os.path.join(directory, "redis.sock")
        self.password = password
        self.persist = persist
        self.proc = None
        self.log_path = os.path.join(directory, "redis-server.log")

    def start(self):
        args = [REDIS_SERVER, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
                "--dir", self.dir, "--save", "", "--logfile", self.log_path]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with %d:\n%s" % (self.proc.returncode, self.log()))
            c = self.client()
            try:
                return c.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.AuthenticationError, FileNotFoundError):
                return False
            except redis.exceptions.ResponseError:
                return True  # answering, wants a password
            finally:
                c.close()
        wait_until(answers, 20, what="redis-server to answer on " + self.sock)
        return self

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def client(self):
        return redis.Redis(unix_socket_path=self.sock, password=self.password, socket_timeout=10)

    def url(self, password=None):
        url = "unix://" + self.sock
        pw = password if password is not None else self.password
        return url + ("?password=" + pw if pw else "")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


_counter = [0]


def task_id():
    """A task id in the uWSGI file name form, as the producers make them."""
    _counter[0] += 1
    now = time.time()
    return "uwsgi_spoolfile_on_%s_%d_%d_%d_%d_%d" % (socket.gethostname(), os.getpid(), _counter[0],
                                                      int.from_bytes(os.urandom(3), "little"), int(now),
                                                      int(now * 1e6) % 1000000)


def enqueue(client, stream, args=(), body=b"", priority=None, delay=None, tid=None, pipe=None):
    """Writes one task as spoold's Redis producer does: args as fields in
    order, spoold.id, spoold.body; a priority goes to <stream>:p<N> (and N
    into <stream>:priorities); a delay (seconds) puts the fields in the list
    <s>:task:<id> and the id in the zset <s>:delayed. Returns the task id."""
    tid = tid or task_id()
    fields = []
    for k, v in args:
        fields += [k, v]
    if priority is not None:
        fields += ["priority", str(priority)]
    s = stream if priority is None else "%s:p%d" % (stream, priority)
    due_ms = None
    if delay is not None:
        due_ms = int((time.time() + delay) * 1000)
        fields += ["at", str(due_ms // 1000)]
    fields += ["spoold.id", tid, "spoold.body", body]
    c = pipe or client.pipeline(transaction=True)
    if priority is not None:
        c.sadd(stream + ":priorities", str(priority))
    if due_ms is None:
        c.execute_command("XADD", s, "*", *fields)
    else:
        c.delete("%s:task:%s" % (s, tid))
        c.rpush("%s:task:%s" % (s, tid), *fields)
        c.zadd(s + ":delayed", {tid: due_ms})
    if pipe is None:
        c.execute()
    return tid


def entry_fields(entry):
    """An XRANGE entry's fields as a dict of text (the last value of a key wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in entry[1].items()}


def redis_toml(url, record, name="rq", processes=1, extra="", options="", plugin="fx_record", plugin_dir=None,
               host_extra=""):
    return """[host]
plugin_dir = "%s"
shutdown_grace = "10s"
%s

[[queue]]
name = "%s"
source = "redis"
url = "%s"
plugin = "%s"
processes = %d
%s
[queue.options]
record_file = "%s"
%s
""" % (plugin_dir or TEST_PLUGIN_DIR, host_extra, name, url, plugin, processes, extra, record, options)


class RedisTestCase(SpooldTestCase):
    """A temp dir with a redis-server of its own (self.redis, self.r)."""

    def setUp(self):
        if redis is None or not os.path.exists(REDIS_SERVER):
            self.skipTest("redis-server or python3-redis missing")
        super().setUp()
        self.servers = []
        self.server_count = 0
        self.redis = self.server()
        self.r = self.redis.client()

    def server(self, **kw):
        d = os.path.join(self.root, "redis%d" % self.server_count)
        self.server_count += 1
        os.mkdir(d, 0o700)
        s = RedisServer(d, **kw).start()
        self.servers.append(s)
        return s

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for s in self.servers:
                s.stop()

    def records(self, name="rec.txt"):
        return read_records(self.path(name))

    def wait_records(self, count, name="rec.txt", timeout=30, daemons=()):
        def enough():
            for d in daemons:
                if d.proc.poll() is not None:
                    raise AssertionError("spoold exited with %d:\n%s" % (d.proc.returncode, d.log()[-4000:]))
            return len(self.records(name)) >= count
        wait_until(enough, timeout, interval=0.02, what="%d records in %s" % (count, name))
        return self.records(name)

    def failed(self, stream="spoold:rq"):
        return [entry_fields(e) for e in self.r.xrange(stream + ":failed")]
