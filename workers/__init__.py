"""Celery workers: the app factory lives here; tasks never import TensorFlow at import time."""

from __future__ import annotations

from celery import Celery

from shared.messaging import celery_config
from shared.settings import Settings


def create_celery(settings: Settings) -> Celery:
    app = Celery("recog")
    app.config_from_object(celery_config(settings))
    app.recog_settings = settings
    from workers import runtime  # noqa: F401  (connects the per-process signals)
    from workers.tasks import register_tasks

    register_tasks(app, settings)

    return app
