"""The Cassandra image backend (RECOG_IMAGE_STORE=cassandra) on the real stack: the table itself,
and a worker that shares no folder with the gateway."""

import hashlib
import os
import time
import uuid

import pytest

from shared.image_store import ImageMissing
from shared.jobs import FINAL_STATES
from shared.store.cassandra_images import CassandraImageStore
from tests.images import encode, ink_on_paper
from tests.stack import API, files_under, submit


@pytest.fixture
def images(store):
    return CassandraImageStore(lambda: store.session)


@pytest.mark.parametrize("stack", ["cassandra"], indirect=True)
def test_put_is_content_addressed_and_reports_creation(images):
    data = os.urandom(2000)
    sha, created = images.put(data)
    assert sha == hashlib.sha256(data).hexdigest() and created
    assert images.put(data) == (sha, False)
    assert images.get_many([sha]) == [data]


@pytest.mark.parametrize("stack", ["cassandra"], indirect=True)
def test_get_many_reads_each_and_marks_the_missing(images, settings):
    big = os.urandom(settings.max_upload_bytes)  # the largest upload the gateway accepts
    small = os.urandom(10)
    shas = [images.put(big)[0], "ef" * 32, images.put(small)[0]]
    found = images.get_many(shas)
    assert found[0] == big and found[2] == small
    assert isinstance(found[1], ImageMissing) and "ef" * 32 in str(found[1])


@pytest.mark.parametrize("stack", ["cassandra"], indirect=True)
def test_delete_removes_the_row(images):
    sha, _ = images.put(os.urandom(100))
    images.delete(sha)
    assert isinstance(images.get_many([sha])[0], ImageMissing)


@pytest.mark.parametrize("stack", ["cassandra"], indirect=True)
def test_a_worker_on_another_host_needs_no_shared_folder(stack, settings, store, gateway, tmp_path):
    """worker2 stands for a worker on another host: its own empty image folder, nothing shared with
    the gateway but Redis and Cassandra. It finishes single and bulk jobs, and nobody writes a file."""
    elsewhere = tmp_path / "worker2-images"
    stack.stop_workers()
    stack.start_worker("worker2", settings.replace(image_dir=elsewhere, worker_metrics_port=0), queues="both")
    try:
        stack.wait_worker_ready("worker2")
        # Sizes no other test uses: new bytes, so the worker must read them (no cached answer).
        single = submit(gateway, encode(ink_on_paper(2, 5, size=229)), "two.png", wait=30).json()
        files = [("files", (f"far/{d}.png", encode(ink_on_paper(d, 6, size=231)))) for d in range(10)]
        batch = API.post(f"{gateway}/v1/batches", files=files, timeout=60).json()
        job_ids = [single["id"]]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = API.get(f"{gateway}/v1/batches/{batch['id']}/results?format=json", timeout=30).json()
            if all(r["status"] in FINAL_STATES for r in rows):
                break
            time.sleep(0.5)
        job_ids += [r["job_id"] for r in rows]
        jobs = [store.get_job(uuid.UUID(j)) for j in job_ids]
        assert single["status"] == "done" and single["label"] == "2"
        assert [j["status"] for j in jobs] == ["done"] * 11
        assert {j["worker"].split("@")[0] for j in jobs} == {"worker2"} and not any(j["cached"] for j in jobs)
        assert sorted(r["label"] for r in rows) == [str(d) for d in range(10)]
        assert files_under(elsewhere) == [] and files_under(settings.image_dir) == []
    finally:
        stack.stop("worker2")
        stack.start_workers()
        stack.wait_workers_ready()


@pytest.mark.parametrize("stack", ["cassandra"], indirect=True)
def test_the_driver_turns_nagle_off(store):
    """With Nagle's algorithm on, every request over ~4 KB (an image, a chunk's batch lines)
    waited ~44 ms for a delayed ACK (bench/image_stores.py showed it as 0.24x the volume store)."""
    import socket

    pools = list(store.session._pools.values())
    assert pools
    for pool in pools:
        sock = pool._connection._socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
