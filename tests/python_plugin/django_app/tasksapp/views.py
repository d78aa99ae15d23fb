"""The classic spooler tutorial's views, and one that enqueues an ORM task.

write_task_a and write_task_b call uwsgi.spool() with a `spooler` key, as
the tutorial does under uWSGI; outside uWSGI `import uwsgi` finds
client/python/uwsgi.py, which writes the same files.
"""
import json

import uwsgi
from django.conf import settings
from django.http import HttpResponse

from tasksapp.tasks import write_row


def ping(request):
    return HttpResponse("pong")


def write_task_a(request):
    message = request.GET.get("message", "hello").encode()
    path = uwsgi.spool({b"spooler": settings.TASKS_A_DIR.encode(), b"type": b"a", b"body": message})
    return HttpResponse(path)


def write_task_b(request):
    message = request.GET.get("message", "hello")
    body = json.dumps({"type": "b", "message": message}).encode()
    path = uwsgi.spool({b"spooler": settings.TASKS_B_DIR.encode(), b"type": b"b", b"body": body})
    return HttpResponse(path)


def add_row(request):
    path = write_row.spool(request.GET["name"], int(request.GET["value"]), source="view")
    return HttpResponse(path)
