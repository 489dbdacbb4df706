import hashlib

import pytest

from shared.image_store import ImageMissing, LocalImageStore


def test_put_is_content_addressed_and_reports_creation(tmp_path):
    store = LocalImageStore(tmp_path)
    sha, created = store.put(b"abc")
    assert sha == hashlib.sha256(b"abc").hexdigest() and created
    assert store.put(b"abc") == (sha, False)
    assert store.get(sha) == b"abc"
    assert store.path(sha) == tmp_path / sha[:2] / sha[2:4] / sha


def test_no_temporary_files_are_left(tmp_path):
    store = LocalImageStore(tmp_path)
    sha, _ = store.put(b"x" * 10_000)
    assert [p.name for p in store.path(sha).parent.iterdir()] == [sha]


def test_missing_image_says_where_it_looked(tmp_path):
    with pytest.raises(ImageMissing, match=str(tmp_path)):
        LocalImageStore(tmp_path).get("ab" * 32)


def test_delete_removes_the_file(tmp_path):
    store = LocalImageStore(tmp_path)
    sha, _ = store.put(b"gone")
    store.delete(sha)
    assert not store.path(sha).exists()
