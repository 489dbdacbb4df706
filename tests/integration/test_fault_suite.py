"""Services SIGKILLed in turn during a 1,000-image `recog submit-folder` with single jobs
arriving beside it, then restarted, all with the production settings (the hour's visibility
timeout, the 30 s lease, the 15 s sweep). Nothing accepted may be lost or recognised twice, and
everything must be final within two minutes of the restart. Prints each fault's recovery time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from devstack.stack import BULK_WORKER, SINGLES_WORKER
from shared.jobs import FINAL_STATES, utcnow
from tests import images
from tests.integration.test_batches import audit_rows_per_job, wait_for_done
from tests.integration.test_metrics import samples, value
from tests.stack import API, wait_for_cassandra_everywhere, wait_until_final, worker_report

RECOG = Path(sys.executable).parent / "recog"
IMAGES = 1000
RECOVERY_LIMIT = 120  # seconds from the restart until every accepted job is final
pytestmark = pytest.mark.timeout(600)


def restart(stack, service: str) -> None:
    if service == "redis":
        stack.start_redis()
    elif service == "cassandra":
        stack.start_cassandra()
    elif service == "workers":
        stack.start_workers()
        stack.wait_workers_ready()
    else:
        stack.start_gateway()
        stack.wait_gateway_ready()


class SingleJobs(threading.Thread):
    """A client sending one image every quarter second, keeping the ids of those accepted."""

    def __init__(self, gateway: str) -> None:
        super().__init__(daemon=True)
        self.gateway, self.stop, self.accepted = gateway, threading.Event(), {}

    def run(self) -> None:
        n = 0
        while not self.stop.wait(0.25):
            label = n % 10
            data = images.fresh_png_digit(label, n % 10)  # recognised, not recalled from the batch's
            try:
                response = API.post(f"{self.gateway}/v1/jobs", files={"file": ("s.png", data)}, timeout=10)
            except requests.RequestException:
                continue  # the gateway is down: not accepted, nothing to account for
            if response.status_code == 202:
                self.accepted[response.json()["id"]] = str(label)
            n += 1


def batch_id_of(out: Path, timeout: float = 60) -> str:
    """The batch the CLI made, from its state file."""
    state = out.with_name(out.name + ".state.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["batch_id"]:
            return json.loads(state.read_text())["batch_id"]
        time.sleep(0.1)
    pytest.fail("the CLI made no batch")


@pytest.mark.parametrize("stack", ["volume"], indirect=True)  # the image store plays no part
@pytest.mark.parametrize("service", ["redis", "cassandra", "workers", "gateway"])
def test_a_killed_service_loses_nothing_and_all_is_final_within_two_minutes(stack, store, service, tmp_path):
    gateway = stack.settings.gateway_url
    folder, out = tmp_path / service, tmp_path / f"{service}.csv"
    for i in range(IMAGES):
        path = folder / f"{i:04d}-{i % 10}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(images.png_digit(i % 10, (i // 10) % 10))
    since = utcnow()
    command = [str(RECOG), "submit-folder", str(folder), "--out", str(out)]
    env = {**os.environ, **stack.settings.to_env()}
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    singles = SingleJobs(gateway)
    singles.start()

    batch_id = batch_id_of(out)
    progress = wait_for_done(gateway, batch_id, 100, timeout=60)
    replayed = value(samples(f"{gateway}/metrics"), "recog_uploads_replayed_total")
    for name in [BULK_WORKER, SINGLES_WORKER] if service == "workers" else [service]:
        stack.kill(name)
    killed = time.monotonic()
    assert progress["total"] < IMAGES or progress["done"] < IMAGES, "the batch ended before the kill"
    time.sleep(5)
    restart(stack, service)
    restarted = time.monotonic()
    if service == "cassandra":  # before this test reads rows with its own session
        wait_for_cassandra_everywhere(store, gateway)

    try:
        # One run to the end, whatever died: an upload whose answer was lost with the gateway is
        # sent again under its Idempotency-Key.
        _, stderr = cli.communicate(timeout=RECOVERY_LIMIT + 60)
    except subprocess.TimeoutExpired as timeout:
        try:
            status = API.get(f"{gateway}/v1/batches/{batch_id}", timeout=30).json()
        except (requests.RequestException, ValueError) as exc:  # the report below matters more
            status = repr(exc)
        tail = (timeout.stderr or b"")[-300:].decode(errors="replace")  # bytes, even with text=True
        pytest.fail(
            f"the CLI had not ended {RECOVERY_LIMIT + 60} s after the restart; the batch then: {status}; "
            f"the CLI's last words: {tail!r}\n{worker_report(stack, name=BULK_WORKER)}"
        )
    finally:
        cli.kill()  # a no-op once it has exited; never left running by a failed test
        singles.stop.set()
    singles.join()
    assert cli.returncode == 0, stderr

    batch_jobs = {row["job_id"]: row for row in store.batch_rows(uuid.UUID(batch_id))}
    single_ids = list(singles.accepted)
    rows = wait_until_final(
        store, single_ids, timeout=max(1, RECOVERY_LIMIT - (time.monotonic() - restarted))
    )
    recovered = time.monotonic() - restarted
    # The gateway's counters start again from zero when it is the one killed.
    after = samples(f"{gateway}/metrics")
    replays = value(after, "recog_uploads_replayed_total") - (0 if service == "gateway" else replayed)
    print(
        f"\n{service} SIGKILLed: down {restarted - killed:.0f} s; batch and {len(single_ids)} single jobs "
        f"all final {recovered:.0f} s after the restart; uploads answered from their key: {replays:.0f}, "
        f"told to wait for their key: {value(after, 'recog_uploads_in_progress_total'):.0f} (since the "
        "gateway started)"
    )
    stuck = {j: (rows.get(j) or {}).get("status") for j in single_ids}
    stuck = {j: status for j, status in stuck.items() if status not in FINAL_STATES}
    assert recovered <= RECOVERY_LIMIT, (
        f"{len(stuck)} single jobs not final, e.g. {list(stuck.items())[:3]}\n{worker_report(stack)}"
    )
    assert len(batch_jobs) == IMAGES, "a file of the batch is missing or counted twice"
    not_done = [r["filename"] for r in batch_jobs.values() if r["status"] != "done"]
    assert not not_done, f"{len(not_done)} batch files not done, e.g. {not_done[:3]}"
    wrong = [r["filename"] for r in batch_jobs.values() if r["label"] != r["filename"].split("-")[-1][0]]
    assert len(wrong) <= IMAGES // 100, f"labels wrong for {wrong[:5]}"
    assert all(
        (rows.get(j) or {}).get("status") == "done" and rows[j]["label"] == label
        for j, label in singles.accepted.items()
    )
    audited = audit_rows_per_job(store, since, set(batch_jobs) | {uuid.UUID(j) for j in single_ids})
    assert len(audited) == IMAGES + len(single_ids), "a finished job is missing from the audit table"
    twice = {str(job): n for job, n in audited.items() if n > 1}
    assert not twice, f"jobs recognised more than once: {twice}"
