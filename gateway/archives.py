"""Read the images out of an uploaded zip without trusting it.

Limits on the number of entries and on each entry's and the whole archive's uncompressed bytes
are counted while reading, not taken from the headers (which a zip bomb lies in). Directories,
symbolic links, nested archives and files that are not images by name are skipped and reported.
Entry names are only ever used as text, never as paths.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from gateway.errors import ApiError
from shared.decode import IMAGE_SUFFIXES

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar")


@dataclass
class Entry:
    name: str
    data: bytes | None = None
    skipped: str | None = None


def read_zip(
    stream: IO[bytes], max_entries: int, max_entry_bytes: int, max_total_bytes: int
) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ApiError(422, "bad_archive", f"the archive is not a readable zip file ({exc})") from exc
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise ApiError(
            413, "too_many_entries", f"the zip has {len(infos):,} entries; the limit is {max_entries:,}"
        )
    total = 0
    for info in infos:
        name = info.filename[:255]
        reason = _skip_reason(info)
        if reason:
            yield Entry(name, skipped=reason)
            continue
        data = _read_capped(archive, info, max_entry_bytes)
        total += len(data)
        if total > max_total_bytes:
            raise ApiError(
                413,
                "archive_too_large",
                f"the zip expands to more than {max_total_bytes:,} bytes; split it into smaller ones",
            )
        yield Entry(name, data=data)


def _skip_reason(info: zipfile.ZipInfo) -> str | None:
    if info.is_dir():
        return "a directory"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    lower = info.filename.lower()
    if lower.endswith(ARCHIVE_SUFFIXES):
        return "a nested archive; put its images in the zip itself"
    if not lower.endswith(IMAGE_SUFFIXES):
        return f"not an image by its name; accepted: {', '.join(IMAGE_SUFFIXES)}"
    return None


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    try:
        with archive.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ApiError(422, "bad_archive", f"entry {info.filename!r} cannot be read ({exc})") from exc
    if len(data) > limit:
        raise ApiError(
            413,
            "archive_entry_too_large",
            f"entry {info.filename!r} expands to more than {limit:,} bytes, the limit for one image",
        )
    return data
