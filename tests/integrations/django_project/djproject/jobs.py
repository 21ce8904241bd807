"""The project's werk App; each Django app declares its jobs in its own jobs.py.

DJANGO_SETTINGS_MODULE=djproject.settings werk worker djproject.jobs
"""

import werk

app = werk.App()
