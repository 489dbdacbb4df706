"""The HTTP gateway: accepts uploads, records jobs, enqueues them. Never imports TensorFlow."""

from __future__ import annotations

from flask import Flask

from shared.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from gateway import (
        auth,
        batches,
        errors,
        headers,
        health,
        jobs,
        metrics,
        multipart,
        openapi,
        page,
        rescore,
    )
    from gateway.services import GatewayServices

    settings = settings or Settings.from_env()
    multipart.install()
    app = Flask(__name__)
    # Werkzeug rejects larger bodies with 413 before we read them; the margin is form overhead.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 64 * 1024
    app.json.sort_keys = False
    app.extensions["recog"] = GatewayServices(settings)
    errors.register(app)
    auth.register(app)
    headers.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(rescore.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(page.bp)
    return app
