from django.db import models


class Row(models.Model):
    """A row the write_row task adds: who asked for it, and which process wrote it."""
    name = models.CharField(max_length=200)
    value = models.IntegerField()
    source = models.CharField(max_length=50)
    written_by_pid = models.IntegerField()
