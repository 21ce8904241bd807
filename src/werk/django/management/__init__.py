"""Django's management package of werk's app: see :mod:`werk.django.management.commands`."""
