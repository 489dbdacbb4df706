"""The web page (draw, upload, batches) and the human-readable API docs: plain HTML, CSS and JS.

Everything is served from here, no CDN, so the page works on a machine with no internet.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    settings = current_app.extensions["recog"].settings
    return render_template("index.html", flower_url=settings.flower_url)


@bp.get("/docs")
def docs():
    return render_template("docs.html")
