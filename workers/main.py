"""Worker and Flower entry point: `celery -A workers.main worker` / `celery -A workers.main flower`."""

from shared.metrics_folder import prepare

prepare("recog-worker-metrics-")  # before the fork and before anything imports prometheus_client

from shared.settings import Settings  # noqa: E402
from workers import create_celery  # noqa: E402

app = create_celery(Settings.from_env())
