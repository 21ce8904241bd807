"""The Django app of werk (``INSTALLED_APPS += ["werk.django"]``): it adds
``python manage.py werk_worker``; werk needs nothing else from it.

Example::

    INSTALLED_APPS = [..., "werk.django"]
"""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["WerkConfig"]


class WerkConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """werk as an installed app (label ``werk``), for its management command.

    Example::

        INSTALLED_APPS = [..., "werk.django"]   # then: python manage.py werk_worker mysite.jobs
    """

    name = "werk.django"
    label = "werk"
    verbose_name = "werk"
