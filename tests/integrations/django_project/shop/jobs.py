"""The shop app's jobs: found by werk's autodiscovery, registered on the project's App.

The models are imported at the top: werk sets Django up before it imports this module.
"""

import os

from asgiref.sync import sync_to_async
from django.db import connection
from djproject.jobs import app

from shop.counting_sqlite.base import CLOSED, OPENED
from shop.models import Row


def _record(value: str) -> None:
    connection.ensure_connection()
    Row.objects.create(value=value, pid=os.getpid(), opened=OPENED[0], closed=CLOSED[0])


@app.job(jobtype="Record")
def record(value: str) -> None:
    _record(value)


@app.job(jobtype="RecordAsync")
async def record_async(value: str) -> None:
    await sync_to_async(_record)(value)
