"""Settings of the tutorial project the Django tests serve with gunicorn and
run in spoold. Everything that differs per test run comes from the
environment:

    TUTORIAL_DB       the SQLite file (in the test's temp dir)
    TUTORIAL_LOG      the log worker.py appends to
    TASKS_A_DIR       the tasks_a queue directory (absolute)
    TASKS_B_DIR       the tasks_b queue directory (absolute)
    SPOOLD_SPOOL_DIR  read by client/python/uwsgi.py: where @spool tasks go
"""
import os

from django.core.exceptions import ImproperlyConfigured


def _env(name):
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"set the environment variable {name} (see tutorial/settings.py)")
    return value


SECRET_KEY = "spoold-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = ["tasksapp"]
MIDDLEWARE = []
ROOT_URLCONF = "tutorial.urls"
WSGI_APPLICATION = "tutorial.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _env("TUTORIAL_DB")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"

TASKS_A_DIR = _env("TASKS_A_DIR")
TASKS_B_DIR = _env("TASKS_B_DIR")
