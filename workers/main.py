"""Worker and Flower entry point: `celery -A workers.main worker` / `celery -A workers.main flower`."""

from shared.settings import Settings
from workers import create_celery

app = create_celery(Settings.from_env())
