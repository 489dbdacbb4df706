"""read_zip: limits counted while reading, entries skipped with a reason, names never used as paths."""

import io
import stat
import struct
import zipfile

import pytest

from gateway.archives import read_zip
from gateway.errors import ApiError


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in entries:
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    buffer.seek(0)
    return buffer


def read(buffer, entries=100, entry_bytes=1000, total_bytes=5000):
    return list(read_zip(buffer, entries, entry_bytes, total_bytes))


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_images_are_read_and_everything_else_is_skipped_with_its_reason():
    entries = read(
        make_zip(
            [
                ("a/1.png", b"one"),
                ("../../etc/2.JPG", b"two"),
                ("notes.txt", b"hi"),
                ("inner.zip", b"PK"),
                ("dir/", b""),
                ("link.png", symlink("link.png")),
            ]
        )
    )
    read_ok = {e.name: e.data for e in entries if e.skipped is None}
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    assert read_ok == {"a/1.png": b"one", "../../etc/2.JPG": b"two"}, "names are kept as text only"
    assert "not an image" in skipped["notes.txt"] and "nested archive" in skipped["inner.zip"]
    assert skipped["dir/"] == "a directory" and skipped["link.png"] == "a symbolic link"


def test_too_many_entries_is_refused_before_reading_any():
    with pytest.raises(ApiError) as caught:
        read(make_zip([(f"{i}.png", b"x") for i in range(4)]), entries=3)
    assert caught.value.status == 413 and caught.value.code == "too_many_entries"


def with_end_record(buffer: io.BytesIO, entries: int | None = None, size: int | None = None) -> io.BytesIO:
    """The same zip with its end-of-central-directory record lying about the directory."""
    data = bytearray(buffer.getvalue())
    at = data.rfind(b"PK\x05\x06")
    if entries is not None:
        struct.pack_into("<HH", data, at + 8, entries, entries)
    if size is not None:
        struct.pack_into("<L", data, at + 12, size)
    return io.BytesIO(bytes(data))


def test_the_end_record_is_checked_before_zipfile_reads_the_directory():
    """zipfile would read and parse a directory of any size; the end record's numbers come first."""
    small = make_zip([("1.png", b"x")])
    with pytest.raises(ApiError) as caught:
        read(with_end_record(small, entries=60_000), entries=100)
    assert caught.value.code == "too_many_entries" and "60,000 entries" in caught.value.message
    with pytest.raises(ApiError) as caught:
        read(with_end_record(make_zip([("1.png", b"x")]), size=400_000_000), entries=100)
    assert caught.value.code == "too_many_entries" and "400,000,000 bytes" in caught.value.message


def test_a_zip64_directory_is_counted_from_its_own_record():
    names = [(f"{i}.png", b"") for i in range(70_000)]  # over 65,535: zipfile writes Zip64 records
    data = bytearray(make_zip(names, compression=zipfile.ZIP_STORED).getvalue())
    at = data.rfind(b"PK\x06\x06")
    assert at > 0
    struct.pack_into("<QQ", data, at + 24, 200_000, 200_000)  # zipfile itself would count 70,000
    with pytest.raises(ApiError) as caught:
        read(io.BytesIO(bytes(data)), entries=10_000)
    assert "200,000 entries" in caught.value.message


def test_a_signature_inside_the_end_record_does_not_hide_it():
    """The end record's own directory offset spelling the signature once made the check look
    inside the record, give up, and leave the directory to zipfile unchecked."""
    data = bytearray(with_end_record(make_zip([("1.png", b"x")]), entries=60_000).getvalue())
    struct.pack_into("<4s", data, len(data) - 6, b"PK\x05\x06")  # the offset field
    with pytest.raises(ApiError) as caught:
        read(io.BytesIO(bytes(data)), entries=100)
    assert caught.value.code == "too_many_entries"


def test_a_zip_without_an_end_record_is_a_bad_archive():
    data = make_zip([("1.png", b"x")]).getvalue()
    with pytest.raises(ApiError) as caught:
        read(io.BytesIO(data[: data.rfind(b"PK\x05\x06")]))
    assert caught.value.status == 422 and caught.value.code == "bad_archive"


def test_a_damaged_deflate_stream_is_a_bad_archive_not_a_500():
    """zlib.error is none of zipfile's own exceptions; it used to escape as a 500."""
    data = bytearray(make_zip([("1.png", bytes(range(256)) * 40)]).getvalue())
    data[40:48] = b"\xff" * 8  # the start of the entry's compressed bytes
    with pytest.raises(ApiError) as caught:
        read(io.BytesIO(bytes(data)), entry_bytes=100_000, total_bytes=10**6)
    assert caught.value.status == 422 and caught.value.code == "bad_archive"


def test_an_entry_over_the_image_limit_is_refused_by_what_it_expands_to():
    buffer = make_zip([("bomb.png", b"\0" * 100_000)])
    assert len(buffer.getvalue()) < 1000, "the header is small; only reading shows the size"
    with pytest.raises(ApiError) as caught:
        read(buffer, entry_bytes=50_000, total_bytes=10**6)
    assert caught.value.code == "archive_entry_too_large"


def test_the_whole_archive_is_capped_while_reading():
    with pytest.raises(ApiError) as caught:
        read(make_zip([(f"{i}.png", b"\1" * 900) for i in range(6)]), entry_bytes=1000, total_bytes=5000)
    assert caught.value.status == 413 and caught.value.code == "archive_too_large"


def test_not_a_zip_is_a_422_that_says_so():
    with pytest.raises(ApiError) as caught:
        read(io.BytesIO(b"this is no zip"))
    assert caught.value.status == 422 and caught.value.code == "bad_archive"
