"""A WSGI app run by a real uWSGI with Debian's uwsgidecorators: it writes
the uwsgidecorators task files of the differential test.

    GET  /ping     -> 200 "pong"
    POST /produce  -> calls the decorated functions' spool() with the
                      arguments below; answers the paths uwsgi.spool()
                      returned, one a line.
"""
import uwsgi  # noqa: F401
from uwsgidecorators import spool, spoolraw


@spool(pass_arguments=True)
def pickled(*args, **kwargs):
    pass


@spool
def plain(arguments):
    pass


@spoolraw
def raw(arguments):
    pass


def produce():
    paths = [
        pickled.spool(1, "two", b"\xff\x00", {"k": [1, 2.5, None]}, x=(3,)),
        pickled.spool(*range(20), big="x" * 3000),
        pickled.spool(),
        pickled.spool("prio", priority="2"),
        pickled.spool("past", at="1000000000"),
        pickled.spool("with a body", body=b"\x00body bytes\xff" * 50),
        plain.spool({"a": "b", "empty": ""}),
        plain.spool(greeting="hello", n="42"),
        raw.spool({"ret": "-2", "text": "caf\u00e9"}),
        raw.spool(ret="0"),
    ]
    return [p if isinstance(p, bytes) else p.encode() for p in paths]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/produce" and environ.get("REQUEST_METHOD") == "POST":
        try:
            out = b"\n".join(produce())
        except Exception as e:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [("%s: %s" % (type(e).__name__, e)).encode()]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [out]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"GET /ping or POST /produce"]
