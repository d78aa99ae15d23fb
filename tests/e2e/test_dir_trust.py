"""Queue directory trust (issue 14, least privilege): spoold refuses, at
--check, at start and at a reload, a queue directory (or the folder that
holds it) that users other than its own and root can write, unless the
queue names the group that may (dir_group); a task file someone else owns
goes to failed/ unrun; spoolctl fsck reports both.

The task-owner cases need root (only root can chown a file to another
user); they skip with a message otherwise."""
import grp
import json
import os
import pwd
import signal
import subprocess
import unittest

from support import (SPOOLCTL, SPOOLD, TEST_PLUGIN_DIR, SpooldTestCase, encode_task, read_records, read_text,
                     task_files, wait_until, write_raw)

IS_ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody") if IS_ROOT else None


def config(record=None, dir_group=None, defaults_group=None):
    lines = ["[host]", 'plugin_dir = "%s"' % TEST_PLUGIN_DIR]
    if defaults_group is not None:
        lines += ["[defaults]", 'dir_group = "%s"' % defaults_group]
    lines += ["[[queue]]", 'name = "q"', 'dir = "spool/q"', 'plugin = "fx_record"']
    if dir_group is not None:
        lines.append('dir_group = "%s"' % dir_group)
    lines += ["[queue.options]", 'record_file = "%s"' % (record or "record.txt")]
    return "\n".join(lines) + "\n"


def group_for_tests():
    """A group other users are in: nogroup (nobody's) as root, else this user's own."""
    if IS_ROOT:
        return grp.getgrgid(NOBODY.pw_gid)
    return grp.getgrgid(os.getegid())


class DirTrustTest(SpooldTestCase):
    def setUp(self):
        super().setUp()
        self.spool = self.path("spool")
        self.queue = self.path("spool", "q")
        os.makedirs(self.queue)
        os.chmod(self.spool, 0o755)
        os.chmod(self.queue, 0o700)
        self.record = self.path("record.txt")

    def run_spoold(self, cfg, *extra, timeout=30):
        path = self.path("spoold.toml")
        with open(path, "w") as f:
            f.write(cfg)
        return subprocess.run([SPOOLD, "-c", path, *extra], capture_output=True, timeout=timeout)

    def assert_refused(self, cfg, *expected):
        """--check and a start both exit 2, their messages holding each of expected."""
        for extra in (("--check",), ()):
            p = self.run_spoold(cfg, *extra)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 2, "spoold %s: %s" % (" ".join(extra), err))
            for text in expected:
                self.assertIn(text, err)
        return err

    # --- directories -------------------------------------------------------

    def test_a_queue_directory_every_user_can_write_is_refused_naming_mode_and_fix(self):
        os.chmod(self.queue, 0o777)
        err = self.assert_refused(config(), "queue 'q': directory %s (mode 0777" % self.queue,
                                  "can be written by every user", "chmod go-w %s" % self.queue)
        self.assertNotIn("spoold ready", err)
        self.assertEqual(task_files(self.path("spool", "q", "failed")), [])

    def test_a_group_writable_queue_directory_without_dir_group_is_refused(self):
        os.chmod(self.queue, 0o775)
        group = grp.getgrgid(os.stat(self.queue).st_gid).gr_name
        self.assert_refused(config(), "(mode 0775", "can be written by group %s" % group,
                            "chmod g-w %s" % self.queue, 'set dir_group = "%s"' % group)

    def test_a_world_writable_folder_holding_the_queue_is_refused_unless_sticky(self):
        os.chmod(self.spool, 0o777)
        self.assert_refused(config(), "folder %s (mode 0777" % self.spool, "which holds the queue directory",
                            "chmod go-w %s" % self.spool)
        os.chmod(self.spool, 0o1777)  # as /tmp is: others cannot rename or remove the queue
        p = self.run_spoold(config(), "--check")
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_a_missing_queue_directory_is_judged_by_dir_mode(self):
        os.rmdir(self.queue)
        cfg = config().replace('plugin = "fx_record"', 'plugin = "fx_record"\ndir_mode = "0777"')
        self.assert_refused(cfg, "does not exist yet", "dir_mode 0777", 'set dir_mode = "0700"')

    def test_a_queue_directory_dir_group_may_write_is_accepted_and_logged(self):
        group = group_for_tests()
        os.chown(self.queue, -1, group.gr_gid)
        os.chmod(self.queue, 0o770)
        p = self.run_spoold(config(dir_group=group.gr_name), "--check")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("writable by group %s (dir_group)" % group.gr_name, p.stdout.decode())
        os.chmod(self.queue, 0o2770)
        d = self.daemon(config(dir_group=group.gr_name))
        self.assertIn("queue q: directory %s is writable by group %s (dir_group)" % (self.queue, group.gr_name), d.log())
        self.assertEqual(d.stop(), 0)
        self.assert_no_errors_logged(d)

    def test_dir_group_from_defaults_applies(self):
        group = group_for_tests()
        os.chown(self.queue, -1, group.gr_gid)
        os.chmod(self.queue, 0o770)
        p = self.run_spoold(config(defaults_group=group.gr_name), "--check")
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_a_dir_group_that_is_no_group_names_the_queue_the_key_and_the_value(self):
        self.assert_refused(config(dir_group="no-such-group-spoold"),
                            "queue 'q': dir_group = \"no-such-group-spoold\" is not a group on this host")

    def test_a_reload_onto_an_untrusted_directory_keeps_the_running_config(self):
        d = self.daemon(config())
        os.chmod(self.queue, 0o777)
        d.signal(signal.SIGHUP)
        d.wait_log("the running configuration stays in force")
        self.assertIn("(mode 0777", d.log())
        os.chmod(self.queue, 0o700)
        write_raw(self.queue, encode_task({"k": "after"}))
        wait_until(lambda: len(read_records(self.record)) == 1, 30, what="a task run after the refused reload")
        self.assertEqual(d.stop(), 0)

    def test_fsck_reports_an_untrusted_directory(self):
        os.chmod(self.queue, 0o777)
        cfg = self.path("spoold.toml")
        with open(cfg, "w") as f:
            f.write(config())
        p = subprocess.run([SPOOLCTL, "-c", cfg, "fsck", "q"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr.decode())
        out = p.stdout.decode()
        self.assertIn("(mode 0777", out)
        self.assertIn("chmod go-w %s" % self.queue, out)
        p = subprocess.run([SPOOLCTL, "-c", cfg, "fsck", "q", "--json"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr.decode())
        kinds = [f["kind"] for f in json.loads(p.stdout)["findings"]]
        self.assertIn("untrusted_dir", kinds)
        os.chmod(self.queue, 0o700)
        p = subprocess.run([SPOOLCTL, "-c", cfg, "fsck", "q"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    # --- task files ----------------------------------------------------------

    def write_owned_task(self, uid, gid, args):
        """A task file given to uid:gid before it is renamed into the queue, so
        the host never sees it with another owner."""
        name = "uwsgi_spoolfile_on_test_%d_%s_0_0_0" % (os.getpid(), args["k"])
        tmp = os.path.join(self.queue, ".spoold-tmp-" + name)
        with open(tmp, "wb") as f:
            f.write(encode_task(args))
        os.chown(tmp, uid, gid)
        os.rename(tmp, os.path.join(self.queue, name))
        return name

    def test_a_task_file_another_user_owns_goes_to_failed_unrun(self):
        if not IS_ROOT:
            self.skipTest("needs root: only root can give a task file to another user")
        d = self.daemon(config())
        stranger = self.write_owned_task(NOBODY.pw_uid, NOBODY.pw_gid, {"k": "stranger"})
        failed = os.path.join(self.queue, "failed")
        # The note is written before the task is renamed beside it: wait for both.
        wait_until(lambda: os.path.exists(os.path.join(failed, stranger)) and
                   os.path.exists(os.path.join(failed, stranger + ".error")), 30,
                   what="the stranger's task in failed/")
        note = read_text(os.path.join(failed, stranger + ".error"))
        self.assertIn("task file owned by uid %d (nobody)" % NOBODY.pw_uid, note)
        self.assertIn("not the host's user (root)", note)
        self.assertIn("not run", note)
        d.wait_log("moved to failed/")
        # A task of the host's user after it runs; the stranger's never did.
        write_raw(self.queue, encode_task({"k": "own"}))
        wait_until(lambda: len(read_records(self.record)) == 1, 30, what="the host's own task")
        self.assertEqual([r["k"] for r in read_records(self.record)], ["own"])
        self.assertEqual(task_files(self.queue), [])
        self.assertEqual(d.stop(), 0)

    def test_a_task_file_a_member_of_dir_group_owns_is_run(self):
        if not IS_ROOT:
            self.skipTest("needs root: only root can give a task file to another user")
        group = group_for_tests()
        os.chown(self.queue, -1, group.gr_gid)
        os.chmod(self.queue, 0o2770)
        d = self.daemon(config(dir_group=group.gr_name))
        self.write_owned_task(NOBODY.pw_uid, NOBODY.pw_gid, {"k": "member"})
        wait_until(lambda: len(read_records(self.record)) == 1, 30, what="the member's task")
        self.assertEqual(read_records(self.record)[0]["k"], "member")
        # daemon (uid 1) is not in nogroup.
        outsider = self.write_owned_task(1, 1, {"k": "outsider"})
        note = os.path.join(self.queue, "failed", outsider + ".error")
        wait_until(lambda: os.path.exists(os.path.join(self.queue, "failed", outsider)) and os.path.exists(note), 30,
                   what="the outsider's task in failed/")
        self.assertIn("nor in dir_group %s" % group.gr_name, read_text(note))
        self.assertEqual(len(read_records(self.record)), 1)
        self.assertEqual(d.stop(), 0)

    def test_fsck_lists_a_task_file_another_user_owns_and_repair_moves_it(self):
        if not IS_ROOT:
            self.skipTest("needs root: only root can give a task file to another user")
        stranger = self.write_owned_task(NOBODY.pw_uid, NOBODY.pw_gid, {"k": "stranger"})
        p = subprocess.run([SPOOLCTL, "--dir", self.queue, "fsck", "--json"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr.decode())
        found = [f for f in json.loads(p.stdout)["findings"] if f["kind"] == "untrusted_owner"]
        self.assertEqual(len(found), 1, p.stdout.decode())
        self.assertIn("owned by uid %d (nobody)" % NOBODY.pw_uid, found[0]["problem"])
        p = subprocess.run([SPOOLCTL, "--dir", self.queue, "fsck", "--repair"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertTrue(os.path.exists(os.path.join(self.queue, "failed", stranger)))
        self.assertIn("not run", read_text(os.path.join(self.queue, "failed", stranger + ".error")))


if __name__ == "__main__":
    unittest.main()
