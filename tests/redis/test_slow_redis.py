"""A Redis that accepts connections and never answers: the directory queue
of the same host runs its tasks at once, since the master makes no Redis
call; the Redis queue's spoolers time out, log the outage once and retry."""
import os
import socket
import threading
import time
import unittest

from redis_support import RedisTestCase, TEST_PLUGIN_DIR, wait_until

from support import enqueue as enqueue_file  # noqa: E402


class SilentServer:
    """A Unix socket that accepts and reads, and never writes a byte."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


class SlowRedisTest(RedisTestCase):
    def test_a_silent_redis_does_not_delay_the_directory_queue(self):
        silent = SilentServer(self.path("silent.sock"))
        self.addCleanup(silent.close)
        d = self.daemon("""[host]
plugin_dir = "%s"
shutdown_grace = "10s"

[[queue]]
name = "files"
dir = "spool/files"
plugin = "fx_record"
[queue.options]
record_file = "%s"

[[queue]]
name = "slow"
source = "redis"
url = "unix://%s"
plugin = "fx_record"
[queue.options]
record_file = "%s"
""" % (TEST_PLUGIN_DIR, self.path("files.txt"), silent.path, self.path("slow.txt")), start=False)
        d.start(timeout=60)  # the start's probe waits 3 s for an answer, then warns
        self.assertIn("queue 'slow'", d.log())
        t0 = time.monotonic()
        for i in range(20):
            enqueue_file(self.path("spool", "files"), "n=%d" % i)
        wait_until(lambda: len(self.records("files.txt")) == 20, 30, what="20 directory tasks")
        took = time.monotonic() - t0
        print("20 directory tasks in %.3fs beside a Redis that never answers" % took)
        self.assertLess(took, 3.0)
        d.wait_log("no answer in time", timeout=30)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
