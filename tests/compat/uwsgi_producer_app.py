"""A WSGI app run by a real uWSGI (--spooler-external DIR): the producer side
of the compatibility tests, written like a Django view that calls
uwsgi.spool().

    GET  /ping   -> 200 "pong" (readiness)
    POST /spool  -> {"args": [[key hex, value hex], ...]}: builds the dict of
                    bytes (in that order; a b"body" key becomes the raw body,
                    as uWSGI does), calls uwsgi.spool(dict) and answers 200
                    with the path it returned, or 500 with the exception.
"""
import json

import uwsgi


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path != "/spool" or environ.get("REQUEST_METHOD") != "POST":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"POST /spool or GET /ping"]
    size = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(size))
    task = {}
    for key, value in request["args"]:
        task[bytes.fromhex(key)] = bytes.fromhex(value)
    try:
        spool_path = uwsgi.spool(task)
    except Exception as e:  # the test wants the reason, not uWSGI's generic 500
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [("%s: %s" % (type(e).__name__, e)).encode()]
    if isinstance(spool_path, str):
        spool_path = spool_path.encode()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [spool_path]
