"""gunicorn entry point: `gunicorn gateway.wsgi:app`."""

import sys

# The gateway uses no numpy, and its image has none; but `make up` runs it from the venv the
# workers share, where the Cassandra driver would load numpy, for a result parser the gateway never
# asks for, into every gunicorn worker (about 20 MB each). Marked missing, it is not loaded.
if "numpy" not in sys.modules:
    sys.modules["numpy"] = None  # type: ignore[assignment]

from gateway import create_app  # noqa: E402

app = create_app()
