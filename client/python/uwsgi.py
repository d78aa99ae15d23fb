"""The `uwsgi` module for producers outside uWSGI (spoold SPEC §10).

A web worker under gunicorn, a ``manage.py`` command or a script that puts
``client/python`` on sys.path can ``import uwsgi`` and call
``uwsgi.spool({...})``, or the ``.spool()`` of Debian's ``uwsgidecorators``
functions, and the task files land in a queue directory for spoold (or for
a uWSGI spooler: the files are the same). Writing is spoolclient.enqueue():
atomic (temporary name, fsync, rename) and private (0600 files, 0700
directories).

Where tasks go:
    - the environment variable SPOOLD_SPOOL_DIR (an absolute path), read at
      each call, or ``uwsgi.set_spool_dir(path)``, which wins over it;
    - a ``spooler`` key in the dict names another directory (absolute), as
      under uWSGI; the key stays in the file, as uWSGI leaves it.
    - a Redis queue by name: the environment variables SPOOLD_REDIS_URL
      (spoold's url forms) and SPOOLD_REDIS_QUEUE (the queue's name; its
      stream is spoold:<name>, or SPOOLD_REDIS_STREAM names another), or
      ``uwsgi.set_spool_redis(url, queue)``; used when no directory is set
      and the dict has no ``spooler`` key. Writing is spoolredis.enqueue()
      (redis-py); the return value is then the task id, as bytes.
With none, spool() raises SpoolError saying to set SPOOLD_SPOOL_DIR.

spool() follows uWSGI 2.0's ``uwsgi.spool()`` (plugins/python/uwsgi_pymodule.c
py_uwsgi_send_spool and core/spooler.c uwsgi_spool_request):
    - one dict argument, or keyword arguments;
    - a ``body`` key whose value is bytes (or str) becomes the body of the
      file and is removed from the caller's dict, as uWSGI does; a body of
      another type stays an ordinary argument, as in uWSGI;
    - ``priority`` puts the file in the numeric subdirectory of that name;
    - ``at`` (unix seconds, "1700000000" or "1700000000.5") sets the file's
      mtime, the instant the task becomes due;
    - every key, the special ones included, is written into the file in the
      dict's order;
    - the return value is the path of the new file, as bytes;
    - every refusal and failure raises SpoolError, a ValueError, like the
      ValueError uWSGI raises.
Where uWSGI refuses or misbehaves, this module is kinder or stricter, never
silently different: str keys and values (UTF-8) and int or float values are
accepted besides bytes (uWSGI 2.0 on Python 3 takes bytes only); a
``priority`` that is not digits, an ``at`` that is not a number, a relative
``spooler`` path, a key given both as str and as bytes, and an args block
over 64 KiB are refused with a message (uWSGI writes a file its spooler never
runs, a due time from the garbage, or truncates the value).

Under a real uWSGI, the embedded ``uwsgi`` module is in sys.modules before
any application code runs, so ``import uwsgi`` returns it and this file is
never loaded; inside spoold's ``python`` plugin, the plugin's module wins
the same way. Only what producers and ``uwsgidecorators`` need is here:
signals, locks, caches, mules and the rest of uWSGI do not exist outside it,
and using them raises AttributeError.
"""

import os
import re

import spoolclient

__all__ = ["SPOOL_OK", "SPOOL_RETRY", "SPOOL_IGNORE", "SpoolError", "spool", "send_to_spooler",
           "set_spool_dir", "spool_dir", "set_spool_redis", "masterpid", "i_am_the_spooler"]

SPOOL_OK = -2
SPOOL_RETRY = -1
SPOOL_IGNORE = 0

ENV_SPOOL_DIR = "SPOOLD_SPOOL_DIR"

# What a uWSGI app assigns as its spooler callable (uwsgidecorators does too).
# A producer never calls it; spoold's python plugin runs it from its own
# `uwsgi` module.
spooler = None

_AT_RE = re.compile(rb"\A[0-9]+(\.[0-9]*)?\Z")
_explicit_dir = None
_explicit_redis = None
ENV_REDIS_URL = "SPOOLD_REDIS_URL"
ENV_REDIS_QUEUE = "SPOOLD_REDIS_QUEUE"
ENV_REDIS_STREAM = "SPOOLD_REDIS_STREAM"


class SpoolError(ValueError):
    """uwsgi.spool() refused the task or could not write it (nothing was written)."""


def _absolute_dir(path, what):
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise SpoolError(f"{what} is empty: give the absolute path of the queue directory")
    if "\0" in text:
        raise SpoolError(f"{what} {text!r} contains a NUL byte")
    if not os.path.isabs(text):
        raise SpoolError(f"{what} {text!r} is not an absolute path: give the queue directory's absolute path "
                         "(it must not depend on the working directory of the web worker)")
    return text


def set_spool_dir(path):
    """Makes path the default queue directory of spool(), over SPOOLD_SPOOL_DIR; None goes back to the variable."""
    global _explicit_dir
    _explicit_dir = None if path is None else _absolute_dir(path, "set_spool_dir()'s path")


def set_spool_redis(url, queue=None, stream=None):
    """Makes spool() write to the Redis queue named queue (stream spoold:<queue>, or stream) at url,
    when no directory is set; None goes back to the environment variables."""
    global _explicit_redis
    if url is None:
        _explicit_redis = None
        return
    if not queue and not stream:
        raise SpoolError("set_spool_redis(): give the queue's name (or its stream)")
    _explicit_redis = (url, stream or "spoold:" + queue)


def _spool_redis():
    """(url, stream) of the Redis queue spool() writes to, or None."""
    if _explicit_redis is not None:
        return _explicit_redis
    url = os.environ.get(ENV_REDIS_URL)
    if not url:
        return None
    stream = os.environ.get(ENV_REDIS_STREAM) or (
        "spoold:" + os.environ[ENV_REDIS_QUEUE] if os.environ.get(ENV_REDIS_QUEUE) else None)
    if not stream:
        raise SpoolError(f"uwsgi.spool(): {ENV_REDIS_URL} is set but not {ENV_REDIS_QUEUE}: name the Redis queue")
    return url, stream


def spool_dir():
    """The default queue directory spool() writes to now (str), or None when none is configured."""
    if _explicit_dir is not None:
        return _explicit_dir
    value = os.environ.get(ENV_SPOOL_DIR)
    if not value:
        return None
    return _absolute_dir(value, f"the environment variable {ENV_SPOOL_DIR}")


def __getattr__(name):
    # uwsgidecorators refuses to decorate unless 'spooler' is in uwsgi.opt.
    # It is always present here so that modules with @spool functions import
    # whether or not a directory is configured yet; spool() then says what
    # is missing. The value is the default directory as bytes (b"" if none).
    if name == "opt":
        current = spool_dir()
        return {"spooler": os.fsencode(current) if current else b""}
    raise AttributeError(f"module 'uwsgi' (spoold's producer module {__file__}) has no attribute {name!r}: "
                         "outside uWSGI only spool(), send_to_spooler(), SPOOL_* and what uwsgidecorators' "
                         "@spool needs exist")


def masterpid():
    """This process's pid: there is no uWSGI master, and uwsgidecorators refuses to load when this is 0."""
    return os.getpid()


def i_am_the_spooler():
    """False: a producer is never a spooler."""
    return False


def _key_bytes(key):
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise SpoolError(f"uwsgi.spool(): key {key!r} is a {type(key).__name__}: keys must be bytes or str")


def _value_bytes(key, value):
    if isinstance(value, bool) or value is None:
        raise SpoolError(f"uwsgi.spool(): the value of {key!r} is {value!r}: pass bytes or str "
                         "(an empty value is b'')")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (int, float)):
        return str(value).encode("ascii")
    raise SpoolError(f"uwsgi.spool(): the value of {key!r} is a {type(value).__name__}: pass bytes, str, int or "
                     "float (pickle or JSON-encode other objects, as uwsgidecorators' pass_arguments does)")


def _task_dict(args, kwargs):
    if args and kwargs:
        raise SpoolError("uwsgi.spool(): give one dict or keyword arguments, not both")
    if len(args) > 1:
        raise SpoolError(f"uwsgi.spool() takes one dict, not {len(args)} arguments")
    if args:
        if not isinstance(args[0], dict):
            raise SpoolError(f"uwsgi.spool(): the argument must be a dictionary, not {type(args[0]).__name__}")
        return args[0]
    return dict(kwargs)


def _take_body(task):
    """Removes the body from the caller's dict, as uWSGI does, and returns it (b"" if none)."""
    body_keys = [k for k in task if k in (b"body", "body")]
    if len(body_keys) > 1:
        raise SpoolError("uwsgi.spool(): 'body' is given both as a str and as a bytes key: give one")
    if not body_keys or not isinstance(task[body_keys[0]], (bytes, str)):
        return b""
    return _value_bytes(body_keys[0], task.pop(body_keys[0]))


def _pairs(task):
    pairs, seen = [], {}
    for key, value in task.items():
        k = _key_bytes(key)
        if not k:
            raise SpoolError("uwsgi.spool(): an empty key: the uWSGI format needs at least one byte")
        if k in seen:
            raise SpoolError(f"uwsgi.spool(): the key {k!r} is given twice ({seen[k]!r} and {key!r}): give one")
        seen[k] = key
        pairs.append((k, _value_bytes(key, value)))
    return pairs


def _check_special(pairs):
    """The target directory, after checking the keys uWSGI acts on."""
    target = None
    for key, value in pairs:
        if key == b"spooler" and value:
            target = _absolute_dir(value, "the 'spooler' key")
        elif key == b"priority" and not (0 < len(value) <= spoolclient.MAX_PRIORITY_DIGITS and value.isdigit()):
            raise SpoolError(f"uwsgi.spool(): priority {value!r} must be digits (at most "
                             f"{spoolclient.MAX_PRIORITY_DIGITS}), such as b'0' or b'10': it names the "
                             "subdirectory the task goes into")
        elif key == b"at":
            if not _AT_RE.match(value):
                raise SpoolError(f"uwsgi.spool(): at {value!r} is not unix seconds (such as b'1700000000' or "
                                 "b'1700000000.5')")
            if int(value.split(b".")[0]) > spoolclient.MAX_AT_SECONDS:
                raise SpoolError(f"uwsgi.spool(): at {value!r} is out of range (after year 2262)")
    return target


def spool(*args, **kwargs):
    """Writes one task file and returns its path (bytes); see the module docstring.

    uwsgi.spool({b"type": b"a", b"body": b"hello"})
    uwsgi.spool({"spooler": "/srv/spool/tasks_b", "at": time.time() + 60, "body": json.dumps(cfg)})
    uwsgi.spool(type="a", body="hello")
    """
    task = _task_dict(args, kwargs)
    pairs = _pairs({k: v for k, v in task.items() if k not in (b"body", "body")
                    or not isinstance(v, (bytes, str))})
    target = _check_special(pairs)
    if target is None:
        target = spool_dir()
        redis_queue = _spool_redis() if target is None else None
        if redis_queue is not None:
            return _spool_to_redis(redis_queue, pairs, _take_body(task))
        if target is None:
            raise SpoolError(f"uwsgi.spool(): no spool directory: set the environment variable {ENV_SPOOL_DIR} "
                             "to the absolute path of the queue directory spoold consumes (or call "
                             "uwsgi.set_spool_dir(path)), or give a 'spooler' key")
    body = _take_body(task)
    try:
        task_id = spoolclient.enqueue(target, pairs, body=body)
    except (TypeError, ValueError) as e:
        raise SpoolError(f"uwsgi.spool(): {e}") from e
    except OSError as e:
        raise SpoolError(f"uwsgi.spool(): cannot write the task into {target}: {e}") from e
    priority = [os.fsdecode(v) for k, v in pairs if k == b"priority"]
    return os.fsencode(os.path.join(target, *priority, task_id))


def _spool_to_redis(queue, pairs, body):
    import spoolredis
    url, stream = queue
    try:
        return spoolredis.enqueue(url, stream, pairs, body=body).encode()
    except (TypeError, ValueError) as e:
        raise SpoolError(f"uwsgi.spool(): {e}") from e
    except spoolredis.SpoolRedisError as e:
        raise SpoolError(f"uwsgi.spool(): {e}") from e


send_to_spooler = spool
