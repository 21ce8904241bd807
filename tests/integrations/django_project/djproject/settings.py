"""Settings of the example project: one app (shop) on SQLite."""

import os

SECRET_KEY = "werk-example-project"  # an example, never deployed
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "werk.django", "shop"]
DATABASES = {
    "default": {
        # SQLite that counts its connections opened and closed (see shop/counting_sqlite).
        "ENGINE": "shop.counting_sqlite",
        "NAME": os.environ.get("EXAMPLE_DB", "example.sqlite3"),
        # The test sets it: unset, connections are closed after each job (Django's default);
        # "none" keeps them open for good (persistent connections).
        "CONN_MAX_AGE": None if os.environ.get("EXAMPLE_CONN_MAX_AGE") == "none" else 0,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
