"""A row per job run: what the job wrote, and its process's connection counts then."""

from django.db import models


class Row(models.Model):
    value = models.CharField(max_length=100)
    pid = models.IntegerField()
    opened = models.IntegerField()  # connections this process had opened, this one included
    closed = models.IntegerField()  # connections this process had closed
