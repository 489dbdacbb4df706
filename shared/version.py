"""The version the service reports (/healthz, the OpenAPI description): the installed package's."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def service_version() -> str:
    try:
        return version("recog")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
