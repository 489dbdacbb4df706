"""Security headers on every answer: no type sniffing, no framing, and a Content-Security-Policy
that lets the page run only its own files (it has no inline script or style)."""

from __future__ import annotations

from flask import Flask

POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data: blob:",  # the drawing and image previews
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers older than CSP 2
    "Referrer-Policy": "no-referrer",
}


def register(app: Flask) -> None:
    @app.after_request
    def _secured(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
