"""Seeded fuzzing on the live stack (the corpus is tests/fuzz.py): thousands of damaged images in
every accepted format, and zips with lying headers. Whatever the gateway or a worker makes of
them, no answer is a 5xx, no worker process dies, and every accepted job ends done or failed."""

import time

import pytest

from devstack import processes
from devstack.stack import BULK_WORKER, SINGLES_WORKER
from tests.fuzz import SEED, lying_zips, mutated_files
from tests.integration.test_batches import wait_for_batch
from tests.stack import API, wait_until_final

pytestmark = pytest.mark.timeout(600)


WORKERS = (SINGLES_WORKER, BULK_WORKER)


def worker_log_tail(stack, name: str, since: int) -> str:
    with stack.log(name).open("rb") as fh:
        fh.seek(since)
        return fh.read().decode(errors="replace")


def test_damaged_images_get_4xx_or_a_final_state_and_no_worker_dies(stack, gateway, store):
    pids = {name: processes.running_pid(stack.run_dir, name) for name in WORKERS}
    log_starts = {name: stack.log(name).stat().st_size for name in WORKERS}
    files = mutated_files(SEED)
    assert len(files) >= 2000
    accepted, refused, batch_id = 0, 0, None
    started = time.monotonic()
    for start in range(0, len(files), 500):
        parts = [("files", f) for f in files[start : start + 500]]
        url = f"{gateway}/v1/batches" + (f"/{batch_id}/files" if batch_id else "")
        response = API.post(url, files=parts, data={"name": "fuzz"}, timeout=300)
        assert response.status_code in (200, 202), response.text[:500]
        body = response.json()
        batch_id = body["id"]
        accepted += body["accepted"]
        refused += len(body["failed"])
        assert all(f["error"] for f in body["failed"])
    assert accepted + refused == len(files)
    singles = []
    for name, data in files[:: len(files) // 200]:  # the single-image endpoint on a sample
        single = API.post(f"{gateway}/v1/jobs", files={"file": (name, data)}, timeout=60)
        assert single.status_code < 500, (name, single.text[:300])
        if single.status_code == 202:
            singles.append(single.json()["id"])
    final = wait_for_batch(gateway, batch_id, timeout=300)
    rows = wait_until_final(store, singles, timeout=120)  # none left to spill into the next test
    assert all(r and r["status"] in ("done", "failed") for r in rows.values())
    took = time.monotonic() - started
    print(f"fuzz: {len(files)} files, {accepted} accepted, {refused} refused by the gateway, {took:.0f} s")
    # Refused files are in the batch too, failed with the gateway's reason.
    assert final["total"] == len(files) and final["done"] + final["failed"] == len(files)
    assert final["failed"] >= refused
    for name in WORKERS:
        assert processes.running_pid(stack.run_dir, name) == pids[name], f"{name} restarted"
        log = worker_log_tail(stack, name, log_starts[name])
        for sign in ("WorkerLostError", "exited with 'signal", "Traceback"):
            assert sign not in log, f"{name}'s log shows {sign!r}:\n{log[log.find(sign) - 2000 :][:4000]}"


def test_zips_with_lying_headers_never_get_a_5xx(gateway):
    statuses = []
    for n, data in enumerate(lying_zips(SEED)):
        archive = {"archive": (f"lying-{n}.zip", data)}
        response = API.post(f"{gateway}/v1/batches", files=archive, data={"name": "fuzz"}, timeout=60)
        assert response.status_code < 500, (n, response.text[:300])
        statuses.append(response.status_code)
    assert 422 in statuses, "no mutation broke a zip: the test proves nothing"
