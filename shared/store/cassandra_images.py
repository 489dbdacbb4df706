"""Image bytes in Cassandra (RECOG_IMAGE_STORE=cassandra): workers need only Redis and Cassandra.

One row an image, keyed by sha256. A row is one mutation, and Cassandra refuses a mutation over
half its commit-log segment (32 MiB by default), so the settings refuse to start this backend
with RECOG_MAX_UPLOAD_BYTES above CASSANDRA_IMAGE_LIMIT (shared/settings.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from cassandra.cluster import Session

from shared.image_store import ImageMissing
from shared.jobs import as_utc, utcnow
from shared.store import statements as cql
from shared.store.session import Statements, translated

# Reads in flight per get_many: enough to hide round trips, few enough that large uploads
# (up to the 15 MiB limit each) neither flood the process's memory nor time out together.
READ_CONCURRENCY = 8


class CassandraImageStore:
    """Shares the result store's session: one connection pool a process, made after the fork."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._cql = Statements(session)
        self._seen: dict[str, datetime] = {}

    def put(self, data: bytes, durable: bool = True) -> tuple[str, bool]:
        """Returns (sha256, created). Bytes already held are not written again; their upload time
        is (the collector counts an image's age from it)."""
        sha256 = hashlib.sha256(data).hexdigest()
        with translated():
            held = self._cql.run(cql.IMAGE_EXISTS, (sha256,)).one() is not None
            again = (utcnow(), sha256, len(data))
            if held and self._cql.run(cql.IMAGE_STORED_AGAIN, again).one()["[applied]"]:
                return sha256, False
            # Not held, or collected between the two reads: written whole.
            self._cql.run(cql.INSERT_IMAGE, (sha256, data, len(data), utcnow()))
        return sha256, True

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """Nothing to do: Cassandra acknowledged each write once its commit log was on disk."""

    def get_many(self, sha256s: Sequence[str]) -> list[bytes | ImageMissing]:
        """Read READ_CONCURRENCY at a time: a chunk of 64 images costs a few round trips, not 64,
        and at most READ_CONCURRENCY uploads' worth of bytes is in flight at once."""
        rows = []
        with translated():
            for start in range(0, len(sha256s), READ_CONCURRENCY):
                futures = [
                    self._cql.run_async(cql.SELECT_IMAGE, (sha256,))
                    for sha256 in sha256s[start : start + READ_CONCURRENCY]
                ]
                rows += [future.result().one() for future in futures]
        return [
            bytes(row["data"]) if row is not None else ImageMissing(f"image {sha256} is not in Cassandra")
            for sha256, row in zip(sha256s, rows, strict=True)
        ]

    def touch(self, images: Sequence[tuple[str, int]]) -> set[str]:
        """The conditional update an upload of held bytes makes (IMAGE_STORED_AGAIN), sent
        READ_CONCURRENCY at a time: a row collected meanwhile is not brought back half made."""
        gone: set[str] = set()
        now = utcnow()
        with translated():
            for start in range(0, len(images), READ_CONCURRENCY):
                part = images[start : start + READ_CONCURRENCY]
                sent = [
                    (sha, self._cql.run_async(cql.IMAGE_STORED_AGAIN, (now, sha, size))) for sha, size in part
                ]
                gone |= {sha for sha, future in sent if not future.result().one()["[applied]"]}
        return gone

    def delete(self, sha256: str) -> None:
        with translated():
            self._cql.run(cql.DELETE_IMAGE, (sha256,))

    def stored_before(self, cutoff: datetime) -> Iterator[str]:
        """Every row's upload time, read a page at a time; what it last read, per image, is what
        delete_if_stored_before checks (a lightweight transaction)."""
        naive = as_utc(cutoff).replace(tzinfo=None)
        with translated():
            for row in self._cql.run_paged(cql.IMAGE_AGES, (), 1000):
                if row["stored_at"] is not None and row["stored_at"] < naive:
                    self._seen[row["sha256"]] = row["stored_at"]
                    yield row["sha256"]

    def delete_if_stored_before(self, sha256: str, cutoff: datetime) -> bool:
        """Only if its upload time is still the one the scan read: an upload since keeps it."""
        stored_at = self._seen.pop(sha256, None)
        if stored_at is None:
            return False
        with translated():
            return self._cql.run(cql.DELETE_IMAGE_IF_OLD, (sha256, stored_at)).one()["[applied]"]
