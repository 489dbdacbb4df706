"""Read the images out of an uploaded zip without trusting it.

The number of entries and the directory's size are checked from the end records zipfile will
trust, before it parses the directory (at most 1 KiB an allowed entry, so a directory of minimal
records can still hold ~20 times the limit: zipfile's own count then refuses it, after reading
at most that much). Each
entry's and the whole archive's uncompressed bytes are counted while reading, never taken from
the headers (which a zip bomb lies in). Directories,
symbolic links, nested archives and files that are not images by name are skipped and reported.
Entry names are only ever used as text, never as paths.
"""

from __future__ import annotations

import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from gateway.errors import ApiError
from shared.decode import IMAGE_SUFFIXES

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar")
# zipfile reads the whole central directory into memory and parses every record before anyone
# can count them; the end record says how many there are and how large it is, so both are
# checked first. A record is 46 bytes and a name; 1 KiB an entry allows long names and extras.
DIRECTORY_BYTES_PER_ENTRY = 1024
END = struct.Struct("<4s4H2LH")  # end of central directory: signature ... entries, size, offset
END64_LOCATOR = struct.Struct("<4sLQL")  # only its size and signature matter, as to zipfile
END64 = struct.Struct("<4sQ2H2L4Q")


@dataclass
class Entry:
    name: str
    data: bytes | None = None
    skipped: str | None = None


def read_zip(
    stream: IO[bytes], max_entries: int, max_entry_bytes: int, max_total_bytes: int
) -> Iterator[Entry]:
    _check_directory(stream, max_entries)
    try:
        archive = zipfile.ZipFile(stream)
    except Exception as exc:  # BadZipFile, OSError, ValueError, ...: a damaged zip, whatever it raises
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


def _check_directory(stream: IO[bytes], max_entries: int) -> None:
    """Refuse from the end record alone a directory with too many entries or too many bytes.
    No end record, or a broken one, is left for zipfile to report as a bad archive."""
    entries, size = _directory_size(stream)
    stream.seek(0)
    if entries is None:
        return
    if entries > max_entries:
        raise ApiError(
            413, "too_many_entries", f"the zip has {entries:,} entries; the limit is {max_entries:,}"
        )
    if size > max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise ApiError(
            413,
            "too_many_entries",
            f"the zip's directory is {size:,} bytes, more than {max_entries:,} entries can need "
            f"({DIRECTORY_BYTES_PER_ENTRY:,} bytes each); it is damaged or not a zip of images",
        )


def _directory_size(stream: IO[bytes]) -> tuple[int | None, int]:
    """(entries, bytes) of the central directory as the end record states them, or (None, 0).

    Finds the records exactly where zipfile will (its _EndRecData and _EndRecData64): the end
    record in the last 22 bytes, else the last signature within a comment's reach; a Zip64
    record just before its locator, just before the end record. Checking any other record than
    the one zipfile then trusts would let a crafted file past."""
    end = stream.seek(0, 2)
    if end < END.size:
        return None, 0
    stream.seek(end - END.size)
    last = stream.read(END.size)
    if last.startswith(b"PK\x05\x06") and last.endswith(b"\x00\x00"):
        position, record = end - END.size, last
    else:
        tail_start = max(0, end - END.size - 0xFFFF)  # the record, then a comment of up to 64 KiB
        stream.seek(tail_start)
        tail = stream.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < END.size:
            return None, 0
        position, record = tail_start + at, tail[at : at + END.size]
    _, _, _, _, entries, size, _, _ = END.unpack(record)
    if position >= END64_LOCATOR.size + END64.size:
        stream.seek(position - END64_LOCATOR.size - END64.size)
        zip64 = stream.read(END64.size + END64_LOCATOR.size)
        if zip64[END64.size :].startswith(b"PK\x06\x07") and zip64.startswith(b"PK\x06\x06"):
            entries, size = END64.unpack(zip64[: END64.size])[7:9]
    return entries, size


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
    except Exception as exc:  # zlib.error, BadZipFile, EOFError, NotImplementedError, ...
        raise ApiError(422, "bad_archive", f"entry {info.filename!r} cannot be read ({exc})") from exc
    if len(data) > limit:
        raise ApiError(
            413,
            "archive_entry_too_large",
            f"entry {info.filename!r} expands to more than {limit:,} bytes, the limit for one image",
        )
    return data
