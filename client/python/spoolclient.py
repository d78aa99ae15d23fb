#!/usr/bin/env python3
"""Enqueue spoold tasks from Python: one file, standard library only, 3.9+.

Writes a task file in the uWSGI spool format (spoold SPEC §2) into a queue
directory, atomically: a temporary ``.spoold-tmp-<id>`` name in the same
directory, fsync, rename, fsync of the directory. A spoold host or a uWSGI
spooler on that directory never sees a partial task.

    import json, spoolclient
    task_id = spoolclient.enqueue("/srv/spool/tasks_a", {"type": "a"},
                                  body=json.dumps(cfg))

Arguments
    args      a mapping, or an iterable of (key, value) pairs (a key may then
              repeat; readers keep the last value). Keys and values are str
              (encoded as UTF-8) or bytes; int and float values are written
              with str(). None and bool values are refused (TypeError): a
              bool would silently become "True"/"False", which a handler
              comparing with "1" or "true" misreads; pass the text you mean.
              Keys must not be empty. The args block (4 + len(key) +
              len(value) bytes per pair, in bytes) is limited to 65535
              bytes by the format: larger data belongs in the body.
    body      str (UTF-8), bytes or None (empty).
    at        when the task becomes due: a datetime (naive means local time)
              or unix seconds (int or float). Writes the ``at`` key (whole
              seconds, as uWSGI does) and sets the file mtime to the exact
              instant, which spoold compares with nanosecond precision.
    delay     instead of at: seconds (int or float) or a datetime.timedelta
              from now.
    priority  a non-negative int or a string of digits (at most 9): the task
              goes into <queue_dir>/<N>/ and gets the ``priority`` key; lower
              numbers run first.
    sync      False skips the fsyncs: faster, but a crash may lose the task.

As with uWSGI's spool(), an ``at`` or numeric ``priority`` key given in args
has the same effect as the keyword (giving both is a ValueError).

Command line: ``python3 spoolclient.py DIR key=value ... [--body TEXT]``
prints the task id.
"""

import argparse
import datetime
import decimal
import itertools
import os
import random
import socket
import sys
import threading
import time

__all__ = ["enqueue", "MAX_ARGS_SIZE", "TASK_PREFIX"]

TASK_PREFIX = "uwsgi_spoolfile_on_"
TEMP_PREFIX = ".spoold-tmp-"
MAX_ARGS_SIZE = 0xFFFF
MODIFIER1_SPOOL = 17
# The last whole second whose instant in nanoseconds fits an int64 (2262),
# the range the native producers and the host share.
MAX_AT_SECONDS = (2**63 - 1) // 10**9 - 1
MAX_PRIORITY_DIGITS = 9

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_random = random.SystemRandom()


def _to_bytes(value, what):
    if isinstance(value, bool):
        raise TypeError(f"{what} is a bool ({value!r}): pass the text you mean, such as '1' or 'true'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (int, float)):
        return str(value).encode("ascii")
    if value is None:
        raise TypeError(f"{what} is None: pass a str or bytes (an empty value is '')")
    raise TypeError(f"{what} must be str, bytes, int or float, not {type(value).__name__}")


def _pairs(args):
    if args is None:
        return []
    items = args.items() if hasattr(args, "items") else args
    out = []
    for index, pair in enumerate(items):
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise TypeError(f"args item {index} is not a (key, value) pair: {pair!r}") from None
        if isinstance(key, (int, float)) and not isinstance(key, bool):
            raise TypeError(f"key {key!r} must be str or bytes")
        k = _to_bytes(key, f"key {key!r}")
        if not k:
            raise ValueError("an argument has an empty key: the uWSGI format needs at least one byte")
        out.append((k, _to_bytes(value, f"the value of key {key!r}")))
    return out


def _seconds_to_ns(seconds, what):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if isinstance(seconds, int):
        return seconds * 10**9
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{what} is {seconds!r}: give a finite number of seconds")
    # repr() is the shortest text that reads back as this float, so
    # 1700000000.123 means 123000000 ns, not the binary neighbour's digits.
    return int(decimal.Decimal(repr(seconds)) * 10**9)


def _timedelta_ns(td):
    return (td.days * 86400 + td.seconds) * 10**9 + td.microseconds * 1000


def _at_ns(at):
    if isinstance(at, datetime.datetime):
        aware = at if at.tzinfo is not None and at.utcoffset() is not None else at.astimezone()
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        ns = _timedelta_ns(aware - epoch)
    elif isinstance(at, datetime.date):
        raise TypeError("at is a date: give a datetime, or unix seconds")
    else:
        ns = _seconds_to_ns(at, "at")
    if ns < 0 or ns // 10**9 > MAX_AT_SECONDS:
        raise ValueError(f"at {at!r} is out of range: give an instant between 1970 and {MAX_AT_SECONDS} unix seconds")
    return ns


def _delay_ns(delay):
    ns = _timedelta_ns(delay) if isinstance(delay, datetime.timedelta) else _seconds_to_ns(delay, "delay")
    if ns < 0:
        raise ValueError(f"delay {delay!r} is negative: give 0 or more seconds")
    return ns


def _priority_text(priority):
    if isinstance(priority, bool):
        raise TypeError("priority is a bool: give a non-negative int such as 0 or 10")
    if isinstance(priority, int):
        if priority < 0:
            raise ValueError(f"priority {priority} is negative: give 0 or more")
        text = str(priority)
    elif isinstance(priority, (str, bytes)):
        text = priority.decode("ascii", "replace") if isinstance(priority, bytes) else priority
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"priority {priority!r} must be digits only, such as '0' or '10'")
    else:
        raise TypeError(f"priority must be an int or a string of digits, not {type(priority).__name__}")
    if len(text) > MAX_PRIORITY_DIGITS:
        raise ValueError(f"priority {priority!r} has more than {MAX_PRIORITY_DIGITS} digits")
    return text


def _is_priority_name(value):
    return 0 < len(value) <= MAX_PRIORITY_DIGITS and all(0x30 <= c <= 0x39 for c in value)


def _at_key_ns(value):
    """The instant an `at` key names, read as the host does; None if it is not a number."""
    whole, _, frac = value.partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    seconds = int(whole)
    if seconds <= 0 or seconds > MAX_AT_SECONDS:
        return None
    return seconds * 10**9 + int((frac[:9] or b"0").ljust(9, b"0"))


def encode(args, body=b""):
    """The bytes of a task file: header, args block, body. Raises ValueError over 64 KiB."""
    size = sum(4 + len(k) + len(v) for k, v in args)
    if size > MAX_ARGS_SIZE:
        raise ValueError(
            f"the arguments take {size} bytes, over the {MAX_ARGS_SIZE} bytes the uWSGI format allows: "
            "put large values in the body"
        )
    parts = [bytes((MODIFIER1_SPOOL, size & 0xFF, size >> 8, 0))]
    for k, v in args:
        parts.append(len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v)
    parts.append(body)
    return b"".join(parts)


def make_task_name():
    """uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>, as uWSGI names its files."""
    host = (socket.gethostname() or "localhost").replace("_", "-").replace("/", "-")
    with _counter_lock:
        n = next(_counter)
    now = time.time_ns()
    sec, usec = divmod(now // 1000, 10**6)
    return f"{TASK_PREFIX}{host}_{os.getpid()}_{n}_{_random.getrandbits(31)}_{sec}_{usec}"


def _open_dir(path, nofollow, dir_fd=None):
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    return os.open(path, flags, dir_fd=dir_fd)


def _write_atomically(dir_fd, dir_path, name, data, mtime_ns, sync):
    temp = TEMP_PREFIX + name
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    except OSError as e:
        raise OSError(e.errno, f"cannot create {temp} in {dir_path}: {e.strerror}") from e
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as e:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OSError(e.errno, f"cannot write the task {name} into {dir_path}: {e.strerror}") from e
        raise
    if sync:
        os.fsync(dir_fd)


def _due_ns(pairs, keys, at, delay):
    """The task's due time in ns (None: now) from at= or delay= (then added
    to pairs as the 'at' key) or from an 'at' key among pairs. Shared with
    spoolredis, so both producers read a due time the same way."""
    if at is not None and delay is not None:
        raise ValueError("give at or delay, not both")
    due_ns = None
    if at is not None:
        due_ns = _at_ns(at)
    elif delay is not None:
        due_ns = time.time_ns() + _delay_ns(delay)
        if due_ns // 10**9 > MAX_AT_SECONDS:
            raise ValueError(f"delay {delay!r} is too far in the future")
    if due_ns is not None:
        if b"at" in keys:
            raise ValueError("the due time is given twice, as at=/delay= and as the 'at' key: give one of them")
        pairs.append((b"at", str(due_ns // 10**9).encode("ascii")))
    else:
        given_at = [v for k, v in pairs if k == b"at"]
        if given_at:
            due_ns = _at_key_ns(given_at[-1])
    return due_ns


def enqueue(queue_dir, args=None, body=None, at=None, priority=None, sync=True, delay=None):
    """Writes one task into queue_dir (created, mode 0700, if missing) and returns its id.

    See the module docstring for the arguments. Raises TypeError or
    ValueError for bad arguments (nothing is written) and OSError, naming
    the directory, when the file cannot be written.
    """
    queue_dir = os.fsdecode(os.fspath(queue_dir))
    if not queue_dir:
        raise ValueError("queue_dir is empty: give the queue's directory")
    pairs = _pairs(args)
    if body is not None and not isinstance(body, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
    data_body = b"" if body is None else _to_bytes(body, "body")
    keys = {k for k, _ in pairs}
    due_ns = _due_ns(pairs, keys, at, delay)
    subdir = None
    if priority is not None:
        if b"priority" in keys:
            raise ValueError("the priority is given twice, as priority= and as the 'priority' key: give one of them")
        subdir = _priority_text(priority)
        pairs.append((b"priority", subdir.encode("ascii")))
    else:
        given = [v for k, v in pairs if k == b"priority"]
        if given and _is_priority_name(given[-1]):
            subdir = given[-1].decode("ascii")
    data = encode(pairs, data_body)

    name = make_task_name()
    os.makedirs(queue_dir, mode=0o700, exist_ok=True)
    queue_fd = _open_dir(queue_dir, nofollow=False)
    try:
        target_path = queue_dir
        target_fd = queue_fd
        if subdir is not None:
            target_path = os.path.join(queue_dir, subdir)
            created = False
            try:
                os.mkdir(subdir, 0o700, dir_fd=queue_fd)
                created = True
            except FileExistsError:
                pass
            try:
                target_fd = _open_dir(subdir, nofollow=True, dir_fd=queue_fd)
            except OSError as e:
                raise OSError(e.errno, f"cannot open the priority directory {target_path} "
                                       f"(it must be a directory, not a symlink): {e.strerror}") from e
            if created and sync:
                os.fsync(queue_fd)
        try:
            _write_atomically(target_fd, target_path, name, data, due_ns, sync)
        finally:
            if target_fd != queue_fd:
                os.close(target_fd)
    finally:
        os.close(queue_fd)
    return name


def _main(argv=None):
    parser = argparse.ArgumentParser(
        prog="spoolclient.py", description="Write one spoold task into a queue directory and print its id.")
    parser.add_argument("dir", help="the queue directory")
    parser.add_argument("args", nargs="*", metavar="key=value", help="task arguments")
    parser.add_argument("--body", help="the body text")
    parser.add_argument("--at", type=float, help="due at these unix seconds")
    parser.add_argument("--delay", type=float, help="due this many seconds from now")
    parser.add_argument("--priority", help="priority subdirectory (digits)")
    parser.add_argument("--no-sync", action="store_true", help="skip fsync")
    ns = parser.parse_args(argv)
    pairs = []
    for item in ns.args:
        key, eq, value = item.partition("=")
        if not eq or not key:
            parser.error(f"argument {item!r} is not key=value with a non-empty key")
        pairs.append((os.fsencode(key), os.fsencode(value)))
    try:
        print(enqueue(ns.dir, pairs, body=ns.body, at=ns.at, delay=ns.delay, priority=ns.priority,
                      sync=not ns.no_sync))
    except (TypeError, ValueError) as e:
        print(f"spoolclient.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"spoolclient.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
