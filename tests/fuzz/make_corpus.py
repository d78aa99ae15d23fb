#!/usr/bin/env python3
"""Writes the seed corpus of the spool-file fuzzer: small, real task files
(uWSGI's spool format, SPEC section 2), valid and broken. Deterministic: the
same bytes on every run, so the output is committed beside this script.

    python3 tests/fuzz/make_corpus.py [OUT_DIR]   (default: corpus/spool_file next to this file)
"""
import os
import struct
import sys


def u16(n):
    return struct.pack("<H", n)


def raw(block, body=b""):
    """A spool file around an args block given as bytes: u8 17 | u16 LE len(block) | u8 0 | block | body."""
    assert len(block) <= 0xFFFF
    return struct.pack("<BHB", 17, len(block), 0) + block + body


def record(key, value):
    key = key.encode() if isinstance(key, str) else key
    value = value.encode() if isinstance(value, str) else value
    return u16(len(key)) + key + u16(len(value)) + value


def spool(args, body=b""):
    return raw(b"".join(record(k, v) for k, v in args), body)


def corpus():
    hello = spool([("hello", "world")])
    assert hello == b"\x11\x0e\x00\x00\x05\x00hello\x05\x00world"
    mail = spool([("type", "mail"), ("to", "ops@example.com")], b'{"subject": "hi", "text": "hello\\n"}')
    return {
        # Valid tasks.
        "valid-spec-hello-world": hello,
        "valid-empty-task": spool([]),
        "valid-args-and-body": mail,
        "valid-binary-body": spool([("k", "v")], bytes(range(256))),
        "valid-binary-key-value": spool([(b"\x00k\xff", b"\xfe\x00\x01"), ("empty", "")]),
        "valid-duplicate-keys": spool([("k", "first"), ("k", "last")], b"x"),
        "valid-priority-at-spooler": spool(
            [("priority", "3"), ("at", "1700000000.5"), ("spooler", "/srv/spool/tasks_a")],
            b'{"type": "a", "message": "later"}'),
        "valid-bookkeeping": spool([("type", "a"), ("spoold.attempt", "2"), ("spoold.error", "connection refused"),
                                    ("spoold.failed_at", "1700000000")], b"body"),
        # What uwsgidecorators' @spool writes: the function name and pickled arguments.
        "valid-uwsgidecorators": spool([("ud_spool_func", "send_mail"),
                                        ("args", b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x07to@x.io\x94\x85\x94."),
                                        ("kwargs", b"\x80\x04}\x94.")]),
        "valid-big-value": spool([("blob", "v" * 3000)], b"tail"),
        # Broken: being written (incomplete) or malformed.
        "incomplete-empty": b"",
        "incomplete-2-bytes": hello[:2],
        "incomplete-truncated-args": mail[:20],
        "incomplete-header-65535": b"\x11\xff\xff\x00",
        "malformed-zero-key": raw(record("a", "b") + u16(0) + u16(2) + b"vv"),
        "malformed-key-past-block": raw(u16(10) + b"abc", b"0123456789"),
        "malformed-value-past-block": raw(u16(1) + b"k" + u16(9) + b"v"),
        "malformed-dangling-byte": raw(record("a", "b") + b"x"),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "spool_file")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(corpus().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(corpus())} files to {out}")


if __name__ == "__main__":
    main()
