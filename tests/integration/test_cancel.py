"""Cancelling jobs and batches on the real stack: kept in Cassandra through a worker's absence,
skipped by the worker that comes back, counted with done and failed, and refused once ended."""

import json
import time
import uuid

import pytest

from tests.integration.test_batches import digit_files, post_batch, wait_for_batch, wait_for_done
from tests.integration.test_cli import recog
from tests.stack import API, check, submit, wait_until_final

pytestmark = pytest.mark.timeout(400)


def cancel(gateway: str, kind: str, some_id: str):
    return API.post(f"{gateway}/v1/{kind}/{some_id}/cancel", timeout=30)


def lines(gateway: str, batch_id: str) -> list[dict]:
    return API.get(f"{gateway}/v1/batches/{batch_id}/results?format=json", timeout=60).json()


def test_cancels_asked_while_no_worker_runs_are_carried_out_by_the_one_that_comes_back(
    stack, gateway, store, settings, spec
):
    """SIGTERM the worker, so nothing runs; queue a batch, a batch two of whose jobs are cancelled
    alone, and a single job; cancel; start a worker: it skips what was cancelled."""
    stack.stop_workers()
    try:
        whole = post_batch(gateway, digit_files(300, prefix="cancel-whole")).json()
        some = post_batch(gateway, digit_files(10, prefix="cancel-some")).json()
        single = submit(gateway, digit_files(1, prefix="cancel-single")[0][1], "single.png")
        assert single.status_code == 202, single.text
        job_id = single.json()["id"]

        view = check(spec, cancel(gateway, "batches", whole["id"]), 200).json()
        assert (view["status"], view["total"], view["cancelled"], view["closed"]) == (
            "cancelling",
            300,
            0,
            True,
        )
        assert view["cancel_requested_at"] is not None and view["eta_seconds"] is None
        again = cancel(gateway, "batches", whole["id"]).json()
        assert again["cancel_requested_at"] == view["cancel_requested_at"], "a second ask replaced the first"
        more = API.post(
            f"{gateway}/v1/batches/{whole['id']}/files",
            files=[("files", ("late.png", digit_files(1)[0][1]))],
            timeout=30,
        )
        assert more.status_code == 409 and more.json()["error"]["code"] == "batch_cancelled", more.text

        two = [line["job_id"] for line in lines(gateway, some["id"])[:2]]
        for one in two:
            assert check(spec, cancel(gateway, "jobs", one), 200).json()["cancel_requested_at"]
        # `recog cancel` takes a job's id as well as a batch's.
        typed = recog(settings, "cancel", job_id)
        assert typed.returncode == 0, typed.stderr
        job = json.loads(typed.stdout)
        assert (job["id"], job["status"], job["label"]) == (job_id, "queued", None) and job[
            "cancel_requested_at"
        ]
    finally:
        started = time.monotonic()
        stack.start_workers()
    stack.wait_workers_ready()

    ended = wait_for_batch(gateway, whole["id"])
    print(f"\n300 cancelled images ended {time.monotonic() - started:.1f} s after the worker's start")
    assert (ended["status"], ended["done"], ended["failed"], ended["cancelled"]) == ("cancelled", 0, 0, 300)
    assert {line["status"] for line in lines(gateway, whole["id"])} == {"cancelled"}
    assert ended["finished_at"] is not None and ended["progress_percent"] == 100.0

    partly = wait_for_batch(gateway, some["id"])
    assert (partly["status"], partly["done"], partly["cancelled"]) == ("partial", 8, 2)
    by_job = {line["job_id"]: line for line in lines(gateway, some["id"])}
    assert {by_job[j]["status"] for j in two} == {"cancelled"} and by_job[two[0]]["label"] is None
    assert sum(line["label"] is not None for line in by_job.values()) == 8

    row = wait_until_final(store, [job_id], timeout=60)[job_id]
    assert (row["status"], row["label"], row["cancel_requested_at"] is not None) == ("cancelled", None, True)
    audited = store.session.execute(
        "SELECT status FROM predictions_by_hour WHERE hour = %s AND finished_at = %s AND job_id = %s",
        (row["finished_at"].strftime("%Y-%m-%dT%H"), row["finished_at"], row["job_id"]),
    ).all()
    assert [r["status"] for r in audited] == ["cancelled"], "the audit table does not show the cancel"

    for kind, some_id in (("batches", whole["id"]), ("batches", some["id"]), ("jobs", job_id)):
        late = check(spec, cancel(gateway, kind, some_id), 409)
        assert late.json()["error"]["code"] == "already_final", late.text
    typed = recog(settings, "cancel", whole["id"])
    assert typed.returncode == 1 and "409 already_final" in typed.stderr, typed.stderr


def test_cancelling_a_running_batch_keeps_every_result_already_made(stack, gateway):
    batch = post_batch(gateway, digit_files(1000, prefix="cancel-running"), timeout=300).json()
    wait_for_done(gateway, batch["id"], 64, timeout=120)
    asked = cancel(gateway, "batches", batch["id"])
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "cancelling", (
        "the batch ended before its cancel; the test proved nothing"
    )
    ended = wait_for_batch(gateway, batch["id"])
    assert ended["status"] == "cancelled" and ended["total"] == 1000
    assert ended["cancelled"] > 0 and ended["done"] >= 64
    assert ended["done"] + ended["failed"] + ended["cancelled"] == 1000
    found = lines(gateway, batch["id"])
    assert sum(line["status"] == "done" for line in found) == ended["done"]
    assert sum(line["status"] == "cancelled" for line in found) == ended["cancelled"]
    assert all(line["label"] is not None for line in found if line["status"] == "done")


def test_cancel_answers_400_for_a_bad_id_and_404_for_an_unknown_one(gateway):
    assert cancel(gateway, "jobs", "not-a-uuid").json()["error"]["code"] == "bad_job_id"
    assert cancel(gateway, "batches", "not-a-uuid").json()["error"]["code"] == "bad_batch_id"
    assert cancel(gateway, "jobs", str(uuid.uuid4())).status_code == 404
    assert cancel(gateway, "batches", str(uuid.uuid4())).status_code == 404
