"""read_zip: limits counted while reading, entries skipped with a reason, names never used as paths."""

import io
import stat
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
