"""Content-addressed image store on a shared folder; the natural next backend is an object store."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ImageMissing(FileNotFoundError):
    """The job names bytes the store does not hold (volume not shared, or deleted)."""


class LocalImageStore:
    """Files at root/ab/cd/<sha256>, written by temp file and atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store bytes; returns (sha256, created) so a failed submit removes only what it made."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.exists():
            return sha256, False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256, True

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise ImageMissing(f"image {sha256} is not in the image store at {self.root}") from exc

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
