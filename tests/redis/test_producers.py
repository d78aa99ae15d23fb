"""client/python on a Redis queue: spoolredis.enqueue() (args, body,
priority, delay) and the `uwsgi` producer module pointed at a Redis queue by
name, each run by spoold; an unreachable server is an error naming it."""
import os
import subprocess
import sys
import time
import unittest

from redis_support import SOURCE_DIR, RedisTestCase, redis_toml, wait_until

CLIENT = os.path.join(SOURCE_DIR, "client", "python")
sys.path.insert(0, CLIENT)
import spoolredis  # noqa: E402

STREAM = "spoold:rq"


class ProducersTest(RedisTestCase):
    def test_spoolredis_enqueue_args_body_priority_delay(self):
        url = self.redis.url()
        t0 = time.time()
        late = spoolredis.enqueue(url, STREAM, {"n": "late"}, delay=1.0)
        low = spoolredis.enqueue(url, STREAM, [("n", "low"), ("n", b"\x00x")], body=b"B\x00", priority=7)
        high = spoolredis.enqueue(self.r, STREAM, {"n": "high"}, priority="02")
        plain = spoolredis.enqueue(url, STREAM, {"n": "plain"})
        d = self.daemon(redis_toml(url, self.path("rec.txt")))
        recs = self.wait_records(4, daemons=[d])
        self.assertEqual([r["id"] for r in recs], [high, low, plain, late])
        self.assertEqual(recs[1]["body_len"], "2")
        self.assertEqual(recs[0]["priority"], "2")
        self.assertGreaterEqual(float(recs[3]["t"]), t0 + 1.0 - 0.01)
        line = open(self.path("rec.txt"), encoding="latin-1").read().splitlines()[1]
        self.assertIn("n=low n=\\x00x priority=7 ", line)

    def test_spoolredis_refuses_bad_input_and_names_an_unreachable_server(self):
        with self.assertRaises(ValueError):
            spoolredis.enqueue(self.redis.url(), STREAM, {"spoold.id": "x"})
        with self.assertRaises(ValueError):
            spoolredis.enqueue(self.redis.url(), STREAM, {"k": "v" * 70000})
        missing = "unix://" + self.path("none.sock")
        with self.assertRaises(spoolredis.SpoolRedisError) as e:
            spoolredis.enqueue(missing, STREAM, {"k": "v"})
        self.assertIn("at Redis unix://" + self.path("none.sock"), str(e.exception))
        self.assertEqual(self.r.exists(STREAM), 0)

    def test_the_uwsgi_module_targets_a_redis_queue_by_name(self):
        d = self.daemon(redis_toml(self.redis.url(), self.path("rec.txt")))
        code = ("import uwsgi\n"
                "print(uwsgi.spool({b'n': b'1', b'body': b'xyz'}).decode())\n"
                "print(uwsgi.spool(n='2'))\n")
        env = dict(os.environ, PYTHONPATH=CLIENT, SPOOLD_REDIS_URL=self.redis.url(), SPOOLD_REDIS_QUEUE="rq")
        env.pop("SPOOLD_SPOOL_DIR", None)
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        first = p.stdout.decode().splitlines()[0]
        recs = self.wait_records(2, daemons=[d])
        self.assertEqual(recs[0]["id"], first)
        self.assertEqual(recs[0]["body_len"], "3")
        self.assertEqual(sorted(r["n"] for r in recs), ["1", "2"])
        env["SPOOLD_REDIS_URL"] = "unix://" + self.path("none.sock")
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("SpoolError", p.stderr.decode())
        self.assertIn("none.sock", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
