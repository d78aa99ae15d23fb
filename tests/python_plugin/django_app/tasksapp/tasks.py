"""The app's background task, written for uWSGI's spooler and run by
spoold's python plugin (option django_settings = "tutorial.settings"):
uwsgidecorators makes its manage_spool_request the spooler callable, and
calls write_row with the arguments the producer passed.

Producers (the add_row view, the enqueue_row command) call
write_row.spool(...): under gunicorn and manage.py, `import uwsgi` is
client/python/uwsgi.py and the task goes to SPOOLD_SPOOL_DIR.
"""
import os

from uwsgidecorators import spool

from tasksapp.models import Row


@spool(pass_arguments=True)
def write_row(name, value, source="unknown"):
    Row.objects.create(name=name, value=value, source=source, written_by_pid=os.getpid())
