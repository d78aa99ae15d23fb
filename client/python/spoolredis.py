#!/usr/bin/env python3
"""Enqueue spoold tasks into a Redis queue (README, Redis Streams) with
redis-py (Debian: python3-redis). The arguments are spoolclient.enqueue()'s;
the task is the entry a spoold spooler of the queue reads:

    import spoolredis
    task_id = spoolredis.enqueue("redis://127.0.0.1:6379/0", "spoold:mail",
                                 {"to": "a@example.com"}, body=text)

target    a redis.Redis client, or a URL in spoold's forms
          (redis://[:password@]host[:port][/db] or
          unix:///path.sock[?db=N][&password=P])
stream    the queue's stream (spoold:<queue name> unless the queue sets it)

The fields are the args in order, ``spoold.id`` (a task id in the uWSGI file
name form) and ``spoold.body``. A priority N writes to ``<stream>:p<N>``
and adds N to ``<stream>:priorities``; a due time in the future keeps the
fields in the list ``<stream>:task:<id>`` and the id in the sorted set
``<stream>:delayed``, all in one MULTI. Raises TypeError or ValueError for
bad arguments (nothing written) and SpoolRedisError, naming the server, when
Redis cannot be reached or refuses the task.

Command line: ``python3 spoolredis.py URL STREAM key=value ... [--body TEXT]``
prints the task id.
"""

import argparse
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spoolclient  # noqa: E402

__all__ = ["enqueue", "connect", "SpoolRedisError"]


class SpoolRedisError(OSError):
    """Redis could not be reached or refused the task (nothing was written)."""


def _redis():
    try:
        import redis
    except ImportError as e:
        raise SpoolRedisError("spoolredis needs redis-py: apt-get install python3-redis (or pip install redis)") from e
    return redis


def connect(url, timeout=5.0):
    """A redis.Redis client for a URL in spoold's forms (see the module docstring)."""
    redis = _redis()
    if url.startswith("unix://"):
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parsed.query)
        unknown = set(query) - {"db", "password"}
        if unknown or not parsed.path.startswith("/"):
            raise ValueError(f"{url!r}: expected unix:///absolute/path.sock[?db=N][&password=P]")
        client = redis.Redis(unix_socket_path=urllib.parse.unquote(parsed.path),
                             db=int(query.get("db", ["0"])[0]), password=query.get("password", [None])[0],
                             socket_timeout=timeout, socket_connect_timeout=timeout)
    elif url.startswith("redis://"):
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    else:
        raise ValueError(f"{url!r}: expected redis://[:password@]host[:port][/db] or unix:///path.sock[?db=N]")
    client.spoold_display = url.split("@")[-1].split("?")[0]
    return client


def _server(client):
    display = getattr(client, "spoold_display", None)
    if display:
        return display
    kw = client.connection_pool.connection_kwargs
    return kw.get("path") or "%s:%s/%s" % (kw.get("host"), kw.get("port"), kw.get("db"))


def enqueue(target, stream, args=None, body=None, at=None, priority=None, delay=None):
    """Writes one task into the Redis queue whose stream is stream; returns its id."""
    if not stream:
        raise ValueError("stream is empty: give the queue's stream (spoold:<queue name> by default)")
    pairs = spoolclient._pairs(args)
    if body is not None and not isinstance(body, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
    data_body = b"" if body is None else spoolclient._to_bytes(body, "body")
    keys = {k for k, _ in pairs}
    if any(k.startswith(b"spoold.") for k in keys):
        raise ValueError("keys starting with 'spoold.' are the host's own")
    due_ns = spoolclient._due_ns(pairs, keys, at, delay)
    level = None
    if priority is not None:
        if b"priority" in keys:
            raise ValueError("the priority is given twice, as priority= and as the 'priority' key: give one of them")
        level = str(int(spoolclient._priority_text(priority)))
        pairs.append((b"priority", level.encode("ascii")))
    else:
        given = [v for k, v in pairs if k == b"priority"]
        if given and spoolclient._is_priority_name(given[-1]):
            level = str(int(given[-1]))
    size = sum(4 + len(k) + len(v) for k, v in pairs)
    if size > spoolclient.MAX_ARGS_SIZE:
        raise ValueError(f"the arguments take {size} bytes, over the {spoolclient.MAX_ARGS_SIZE} bytes a task "
                         "allows: put large values in the body")
    task_id = spoolclient.make_task_name()
    fields = []
    for k, v in pairs:
        fields += [k, v]
    fields += [b"spoold.id", task_id.encode(), b"spoold.body", data_body]
    client = connect(target) if isinstance(target, str) else target
    s = stream if level is None else "%s:p%s" % (stream, level)
    redis = _redis()
    try:
        pipe = client.pipeline(transaction=True)
        if level is not None:
            pipe.sadd(stream + ":priorities", level)
        if due_ns is not None and due_ns > time.time_ns():
            key = "%s:task:%s" % (s, task_id)
            pipe.delete(key)
            pipe.rpush(key, *fields)
            pipe.zadd(s + ":delayed", {task_id: due_ns // 10**6})
        else:
            pipe.execute_command("XADD", s, "*", *fields)
        pipe.execute()
    except redis.exceptions.RedisError as e:
        raise SpoolRedisError(f"cannot enqueue into {stream} at Redis {_server(client)}: {e}") from e
    return task_id


def _main(argv=None):
    parser = argparse.ArgumentParser(description="Enqueue one task into a spoold Redis queue; prints its id.")
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("args", nargs="*", metavar="key=value")
    parser.add_argument("--body", default=None)
    parser.add_argument("--priority", default=None)
    parser.add_argument("--delay", type=float, default=None)
    o = parser.parse_args(argv)
    pairs = []
    for a in o.args:
        if "=" not in a:
            parser.error(f"{a!r} is not key=value")
        pairs.append(tuple(a.split("=", 1)))
    try:
        print(enqueue(o.url, o.stream, pairs, body=o.body, priority=o.priority, delay=o.delay))
    except (TypeError, ValueError, SpoolRedisError) as e:
        print(f"spoolredis: {e}", file=sys.stderr)
        return 2 if not isinstance(e, SpoolRedisError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
