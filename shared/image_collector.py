"""Remove stored images no live job refers to: those last uploaded more than RECOG_RETENTION_DAYS
ago. Every job row expires that long after it was written (a Cassandra TTL, shared/store/schema.py)
and an upload of bytes held already counts as uploading them again, so no row left names them.

Run by a worker's sweeper every RECOG_COLLECT_MINUTES, and by `recog collect-images`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.image_store import ImageStore

log = logging.getLogger(__name__)


def collect_images(images: ImageStore, retention_days: float, now: datetime) -> int:
    """How many images were removed (none while retention is 0: kept for ever)."""
    if not retention_days:
        return 0
    cutoff = now - timedelta(days=retention_days)
    removed = sum(
        images.delete_if_stored_before(sha256, cutoff) for sha256 in list(images.stored_before(cutoff))
    )
    if removed:
        log.info("removed %d stored images last uploaded before %s", removed, cutoff.isoformat())
    return removed
