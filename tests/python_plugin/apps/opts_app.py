"""Reports, for each task, what the interpreter looks like from inside:
sys.prefix and sys.path, the environment, the uwsgi/spoold modules' view,
and whether Django is set up. No uwsgi.spooler: the config names `handle`."""
import importlib.util
import json
import os
import sys

import spoold
import uwsgi


def handle(task):
    django_ready = None
    if "django" in sys.modules:
        from django.apps import apps
        django_ready = apps.ready
    import _json, _pickle, decimal  # noqa: F401  extension modules need libpython's symbols to be global
    report = {
        "prefix": sys.prefix, "base_prefix": sys.base_prefix, "executable": sys.executable, "path": sys.path,
        "cwd": os.getcwd(), "flavour": os.environ.get("PP_FLAVOUR"), "queue": spoold.queue,
        "queue_dir": spoold.queue_dir, "opt_spooler": uwsgi.opt["spooler"].decode(), "masterpid": uwsgi.masterpid(),
        "worker_id": uwsgi.worker_id(), "django_ready": django_ready,
        "django_settings": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "venv_only": importlib.util.find_spec("venv_only") is not None,
        "uwsgidecorators": importlib.util.find_spec("uwsgidecorators") is not None,
        "uwsgi_module": repr(uwsgi),
    }
    with open(os.environ["PP_RECORD"], "a") as f:
        f.write(json.dumps(report) + "\n")
    return uwsgi.SPOOL_OK


class Handlers:
    @staticmethod
    def nested(task):
        return handle(task)
