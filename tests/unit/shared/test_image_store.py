import hashlib
import os
import time

import pytest

from shared.image_store import ImageMissing, VolumeImageStore, open_image_store
from shared.settings import Settings


def test_put_is_content_addressed_and_reports_creation(tmp_path):
    store = VolumeImageStore(tmp_path)
    sha, created = store.put(b"abc")
    assert sha == hashlib.sha256(b"abc").hexdigest() and created
    assert store.put(b"abc") == (sha, False)
    assert store.get(sha) == b"abc"
    assert store.path(sha) == tmp_path / sha[:2] / sha[2:4] / sha


def test_no_temporary_files_are_left(tmp_path):
    store = VolumeImageStore(tmp_path)
    sha, _ = store.put(b"x" * 10_000)
    assert [p.name for p in store.path(sha).parent.iterdir()] == [sha]


def test_missing_image_says_where_it_looked(tmp_path):
    with pytest.raises(ImageMissing, match=str(tmp_path)):
        VolumeImageStore(tmp_path).get("ab" * 32)


def test_get_many_puts_a_missing_image_in_its_own_place(tmp_path):
    store = VolumeImageStore(tmp_path)
    first, _ = store.put(b"one")
    second, _ = store.put(b"two")
    found = store.get_many([first, "cd" * 32, second])
    assert found[0] == b"one" and found[2] == b"two"
    assert isinstance(found[1], ImageMissing) and "cd" * 32 in str(found[1])


def test_delete_removes_the_file(tmp_path):
    store = VolumeImageStore(tmp_path)
    sha, _ = store.put(b"gone")
    store.delete(sha)
    assert not store.path(sha).exists()


def test_the_setting_chooses_the_backend_and_only_cassandra_asks_for_a_session(tmp_path):
    asked = []

    def session():
        asked.append(True)
        raise AssertionError("the volume backend must not connect")

    volume = open_image_store(Settings.from_env({}, image_dir=tmp_path), session)
    assert isinstance(volume, VolumeImageStore) and volume.root == tmp_path
    cassandra = open_image_store(Settings.from_env({}, image_store="cassandra"), session)
    assert type(cassandra).__name__ == "CassandraImageStore" and not asked


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "AB" * 32, "ab" * 31, "ab" * 32 + "/x", "", None])
def test_a_sha256_that_is_not_one_is_missing_and_never_a_path(tmp_path, bad):
    """A task message is text from the queue: a crafted sha256 must not read outside the store."""
    root = tmp_path / "images"
    (tmp_path / "secret").write_bytes(b"not yours")
    store = VolumeImageStore(root)
    (found,) = store.get_many([bad])
    assert isinstance(found, ImageMissing) and "is not a sha256" in str(found)
    with pytest.raises(ImageMissing):
        store.delete(bad)
    assert (tmp_path / "secret").exists()


def test_without_syncfs_each_file_is_fsynced(tmp_path, monkeypatch):
    from shared import image_store

    store = VolumeImageStore(tmp_path)
    shas = [store.put(data, durable=False)[0] for data in (b"one", b"two")]
    synced = []
    fsync = image_store.os.fsync
    monkeypatch.setattr(image_store, "_SYNCFS", None)  # a system without syncfs(2)
    monkeypatch.setattr(image_store.os, "fsync", lambda fd: synced.append(fd) or fsync(fd))
    store.make_durable(shas)
    assert len(synced) == 2 and [store.get(sha) for sha in shas] == [b"one", b"two"]


def test_a_file_a_crash_cut_short_is_written_again_by_the_next_upload_of_its_bytes(tmp_path):
    """What a crash between the write and make_durable() can leave under the final name (the
    crash itself cannot be produced here: the file is cut by hand)."""
    store = VolumeImageStore(tmp_path)
    sha, _ = store.put(b"x" * 10_000, durable=False)
    store.path(sha).write_bytes(b"x" * 10)
    assert store.put(b"x" * 10_000) == (sha, True)
    assert store.get(sha) == b"x" * 10_000


def test_touch_counts_held_images_as_uploaded_now_and_names_those_gone(tmp_path):
    store = VolumeImageStore(tmp_path)
    sha256, _ = store.put(b"some image bytes")
    os.utime(store.path(sha256), (1_000_000_000, 1_000_000_000))  # uploaded in 2001
    missing = "ab" * 32
    assert store.touch([(sha256, 16), (missing, 9)]) == {missing}
    assert store.path(sha256).stat().st_mtime > time.time() - 60
