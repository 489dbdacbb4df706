"""Image bytes in Cassandra (RECOG_IMAGE_STORE=cassandra): workers need only Redis and Cassandra.

One row an image, keyed by sha256. A row is one mutation, and Cassandra refuses a mutation over
half its commit-log segment (16 MiB by default), so settings cap uploads well below that for
this backend (shared/settings.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from cassandra.cluster import Session

from shared.image_store import ImageMissing
from shared.jobs import utcnow
from shared.store import statements as cql
from shared.store.session import Statements, translated


class CassandraImageStore:
    """Shares the result store's session: one connection pool a process, made after the fork."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._cql = Statements(session)

    def put(self, data: bytes) -> tuple[str, bool]:
        """Returns (sha256, created). Bytes already held are not written again."""
        sha256 = hashlib.sha256(data).hexdigest()
        with translated():
            if self._cql.run(cql.IMAGE_EXISTS, (sha256,)).one() is not None:
                return sha256, False
            self._cql.run(cql.INSERT_IMAGE, (sha256, data, len(data), utcnow()))
        return sha256, True

    def get(self, sha256: str) -> bytes:
        (found,) = self.get_many([sha256])
        if isinstance(found, ImageMissing):
            raise found
        return found

    def get_many(self, sha256s: Sequence[str]) -> list[bytes | ImageMissing]:
        """Read concurrently: a chunk of 64 images costs one round trip, not 64."""
        with translated():
            futures = [self._cql.run_async(cql.SELECT_IMAGE, (sha256,)) for sha256 in sha256s]
            rows = [future.result().one() for future in futures]
        return [
            bytes(row["data"]) if row is not None else ImageMissing(f"image {sha256} is not in Cassandra")
            for sha256, row in zip(sha256s, rows, strict=True)
        ]

    def delete(self, sha256: str) -> None:
        with translated():
            self._cql.run(cql.DELETE_IMAGE, (sha256,))
