"""The image store seam: uploaded bytes by sha256, written by the gateway, read by workers.

Two backends, chosen by RECOG_IMAGE_STORE: `volume` (files on a folder every process shares, the
default) and `cassandra` (a table; workers on other hosts need no shared folder). An object
store would be a third: implement ImageStore and add it to open_image_store.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from shared.settings import Settings


class ImageMissing(FileNotFoundError):
    """The job names bytes the store does not hold (volume not shared, or deleted)."""


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _libc_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) from libc: Python's os module has sync() (every file system) and fsync()
    (one file), not this."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _libc_syncfs()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageStore(Protocol):
    def put(self, data: bytes, durable: bool = True) -> tuple[str, bool]:
        """Store bytes; returns (sha256, created) so a failed submit removes only what it made.
        durable=False: on disk only once make_durable() has been called for it."""

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """Those images put with durable=False survive a crash from now on: a batch's files are
        written first and made durable together, which costs far less than one at a time."""

    def get_many(self, sha256s: Sequence[str]) -> list[bytes | ImageMissing]:
        """Each image's bytes, or ImageMissing in its place: one missing image fails one job."""

    def delete(self, sha256: str) -> None: ...

    def touch(self, images: Sequence[tuple[str, int]]) -> set[str]:
        """Count these images (sha256, size) as uploaded now: new rows name them (a re-score, a
        retry), so the collector must not take them before those rows expire. Returns the
        sha256 of those no longer held."""

    def stored_before(self, cutoff: datetime) -> Iterator[str]:
        """The images last uploaded before cutoff (an upload of bytes held already counts)."""

    def delete_if_stored_before(self, sha256: str, cutoff: datetime) -> bool:
        """Remove the image unless it was uploaded again since cutoff; True if removed."""


class VolumeImageStore:
    """Files at root/ab/cd/<sha256>, written by temp file and atomic rename; a file's mtime is when
    its bytes were last uploaded."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Checked first: a message's sha256 is only text from the queue, and '../..' is text too."""
        if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
            raise ImageMissing(f"{str(sha256)[:80]!r} is not a sha256 (64 lower-case hex digits)")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, durable: bool = True) -> tuple[str, bool]:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        try:
            # A file cut short by a crash before it was made durable has another size: rewritten.
            held = target.stat().st_size == len(data)
        except FileNotFoundError:
            held = False
        if held:
            try:
                os.utime(target)  # uploaded again: the collector counts its age from now
                if durable:  # another upload may have written it, not yet made durable
                    _fsync(target)
                return sha256, False
            except FileNotFoundError:
                pass  # collected a moment ago: written again below
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256, True

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """One syncfs(2) of the store's file system: the files, and their renames, which an fsync
        of each file would not cover. 64 files of 6 kB written then synced this way cost 0.12 ms a
        file here, against 0.36 ms written and fsynced one by one. Where syncfs is missing (not
        Linux), each file is fsynced. A single file is fsynced with the folders above it: a
        syncfs would also wait for whatever else is being written (a bulk upload's files)."""
        shas = list(sha256s)
        if not shas:
            return
        if len(shas) == 1:
            path = self.path(shas[0])
            for synced in (path, path.parent, path.parent.parent, self.root):
                _fsync(synced)
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS is not None and _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
        for sha256 in shas:
            _fsync(self.path(sha256))

    def get(self, sha256: str) -> bytes:
        """The bytes, or ImageMissing."""
        path = self.path(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ImageMissing(f"image {sha256} is not in the image store at {self.root}") from exc

    def get_many(self, sha256s: Sequence[str]) -> list[bytes | ImageMissing]:
        found: list[bytes | ImageMissing] = []
        for sha256 in sha256s:
            try:
                found.append(self.get(sha256))
            except ImageMissing as exc:
                found.append(exc)
        return found

    def touch(self, images: Sequence[tuple[str, int]]) -> set[str]:
        gone = set()
        for sha256, _ in images:
            try:
                os.utime(self.path(sha256))
            except (FileNotFoundError, ImageMissing):
                gone.add(sha256)
        return gone

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def stored_before(self, cutoff: datetime) -> Iterator[str]:
        limit = cutoff.timestamp()
        for path in self.root.glob("??/??/*"):
            if SHA256_HEX.fullmatch(path.name) and _mtime(path) < limit:
                yield path.name

    def delete_if_stored_before(self, sha256: str, cutoff: datetime) -> bool:
        """Looked at again just before: an upload touching it between this look and the unlink
        (microseconds) would lose its bytes, and its job would fail saying the image is missing."""
        path = self.path(sha256)
        if _mtime(path) >= cutoff.timestamp():
            return False
        path.unlink(missing_ok=True)
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return datetime.max.replace(tzinfo=UTC).timestamp()  # gone already: nothing to remove


def open_image_store(settings: Settings, cassandra_session: Callable[[], Session]) -> ImageStore:
    """The configured backend. cassandra_session is called only by the cassandra backend, on first
    use, so the image and result stores share one connection pool per process."""
    if settings.image_store == "cassandra":
        from shared.store.cassandra_images import CassandraImageStore

        return CassandraImageStore(cassandra_session)
    return VolumeImageStore(settings.image_dir)
