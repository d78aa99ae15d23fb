from django.core.management.base import BaseCommand

from tasksapp.tasks import write_row


class Command(BaseCommand):
    help = "Enqueue a write_row task (uwsgidecorators' @spool) and print the task file's path."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("value", type=int)

    def handle(self, *args, **options):
        path = write_row.spool(options["name"], options["value"], source="manage.py")
        self.stdout.write(path.decode())
