"""The Celery app. Embedded mode runs tasks eagerly in-process; REDIS_URL selects a real broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("suanwang")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
