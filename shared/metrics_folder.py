"""The folder where prometheus-client's multiprocess mode keeps each process's samples.

Prepared by a server's first process before it forks and before prometheus_client is imported
(it reads the variable on import, and forked children inherit the imported module). Imports
nothing of prometheus_client itself for that reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(prefix: str) -> Path:
    """An empty folder named by the environment (emptied: an earlier run's samples must not count),
    or a new temporary one. One folder per server: two sharing one would empty each other's."""
    given = os.environ.get(ENV)
    if not given:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        os.environ[ENV] = str(folder)
        return folder
    folder = Path(given)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
