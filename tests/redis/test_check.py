"""--check and the start on a Redis queue's server: an unreachable server, a
refused or missing password and a key of another type are problems of that
queue (exit 2); a start only warns of an unreachable server and connects
when it is back."""
import os
import subprocess
import unittest

from redis_support import SPOOLD, Daemon, RedisServer, RedisTestCase, enqueue, redis_toml, wait_until


def check(config):
    return subprocess.run([SPOOLD, "-c", config, "--check"], capture_output=True, timeout=60)


class CheckTest(RedisTestCase):
    def write(self, url, name="spoold.toml", extra=""):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(redis_toml(url, self.path("rec.txt"), name="mailq", extra=extra))
        return path

    def assert_problem(self, config, *texts):
        r = check(config)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        for t in texts:
            self.assertIn(t, err)
        return err

    def test_a_reachable_server_passes(self):
        r = check(self.write(self.redis.url()))
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_an_unreachable_server_names_the_queue(self):
        missing = self.path("nothing.sock")
        err = self.assert_problem(self.write("unix://" + missing), "queue 'mailq': Redis at unix:" + missing,
                                  "cannot connect")
        self.assertIn("is redis-server running", err)
        # A closed TCP port on loopback: refused at once.
        self.assert_problem(self.write("redis://127.0.0.1:1/0"), "queue 'mailq': Redis at 127.0.0.1:1/0: cannot connect")

    def test_a_wrong_or_missing_password_names_the_queue(self):
        locked = self.server(password="s3cret")
        self.assertEqual(check(self.write(locked.url())).returncode, 0)
        self.assert_problem(self.write(locked.url(password="wrong")), "queue 'mailq'", "the password was refused")
        self.assert_problem(self.write("unix://" + locked.sock), "queue 'mailq'", "needs a password")

    def test_a_stream_of_another_type_names_the_queue(self):
        self.r.set("spoold:mailq", "a string")
        self.assert_problem(self.write(self.redis.url()),
                            "queue 'mailq': Redis at unix:%s?db=0: key spoold:mailq is a string, not a stream"
                            % self.redis.sock)
        self.r.delete("spoold:mailq")
        self.r.lpush("spoold:mailq:failed", "x")
        self.assert_problem(self.write(self.redis.url()), "key spoold:mailq:failed is a list, not a stream")

    def test_the_start_refuses_a_wrong_password_and_waits_for_an_unreachable_server(self):
        locked = self.server(password="s3cret")
        d = self.daemon(redis_toml(locked.url(password="wrong"), self.path("rec.txt"), name="mailq"), start=False)
        d.start(wait_ready=False)
        self.assertEqual(d.wait(timeout=30), 2)
        self.assertIn("queue 'mailq'", d.log())
        self.assertIn("the password was refused", d.log())

        later = os.path.join(self.root, "later")
        os.mkdir(later)
        server = RedisServer(later)
        self.servers.append(server)
        d2 = Daemon(later, redis_toml(server.url(), os.path.join(later, "rec.txt"), name="mailq"))
        self.daemons.append(d2)
        d2.start()
        d2.wait_log("its spoolers connect when it answers")
        server.start()
        enqueue(server.client(), "spoold:mailq", [("status", "ok")])
        wait_until(lambda: os.path.exists(os.path.join(later, "rec.txt")), 30, what="the task run once Redis is up")
        d2.wait_log("answers again")
        self.assertEqual(d2.stop(), 0)


if __name__ == "__main__":
    unittest.main()
