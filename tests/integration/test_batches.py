"""Bulk jobs on the real stack: files and zips, broken files, progress, CSV/JSON, cache, a crash."""

import csv
import hashlib
import io
import time
import uuid
import zipfile
from collections import Counter
from datetime import timedelta

import pytest

from devstack.stack import BULK_WORKER
from gateway import create_app
from shared.batch_progress import BATCH_FINAL
from shared.jobs import as_utc, hour_bucket, utcnow
from shared.parts import count_lines
from tests import images
from tests.stack import API, keyed_client, stored_images

# Batches of hundreds of images on two cores: longer than the default per-test limit allows.
pytestmark = pytest.mark.timeout(400)


def post_batch(gateway, files=(), archive=None, name="test", timeout=120):
    parts = [("files", (fname, data)) for fname, data in files]
    if archive is not None:
        parts.append(("archive", ("upload.zip", archive)))
    return API.post(f"{gateway}/v1/batches", files=parts, data={"name": name}, timeout=timeout)


def wait_for_batch(gateway, batch_id, timeout=180):
    """Until the batch is final; a 503 (a store the gateway has yet to reach again) is waited out
    as the CLI does, any other error fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = API.get(f"{gateway}/v1/batches/{batch_id}", timeout=30)
        body = response.json()
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        assert response.status_code == 200, body
        if body["status"] in BATCH_FINAL:
            return body
        time.sleep(0.25)
    pytest.fail(f"batch {batch_id} not finished after {timeout} s: {body}")


def wait_for_done(gateway, batch_id, done: int, timeout: float) -> dict:
    """The batch's progress once at least `done` of its jobs are done (or as it stands at the
    timeout), polled often: a fault test kills a service then, with work still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        status = API.get(f"{gateway}/v1/batches/{batch_id}", timeout=30).json()
        if status["done"] >= done or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def digit_files(n, prefix="d"):
    return [(f"{prefix}/{i:04d}-{i % 10}.png", images.png_digit(i % 10, (i // 10) % 10)) for i in range(n)]


def labels_right(rows):
    return sum(r["label"] == r["file"].split("-")[-1].split(".")[0] for r in rows if r["status"] == "done")


@pytest.fixture(scope="module")
def mixed_batch(gateway):
    """195 good digits and 5 damaged PNGs in one request: 3 cut inside their header, which the
    gateway refuses, and 2 cut in their pixels, which only the worker's decode finds."""
    files = digit_files(195)
    files += [(f"broken/{i}.png", images.png_digit(i)[:20]) for i in range(3)]
    files += [(f"broken/{i}.png", images.truncated(images.png_digit(i))) for i in range(3, 5)]
    response = post_batch(gateway, files)
    assert response.status_code == 202, response.text
    body = response.json()
    return body, wait_for_batch(gateway, body["id"])


def test_batch_with_broken_files_finishes_partially(mixed_batch):
    accepted, status = mixed_batch
    assert accepted["accepted"] == 197 and len(accepted["failed"]) == 3
    assert all("truncated" in f["error"] for f in accepted["failed"])
    assert sorted(f["file"] for f in accepted["failed"]) == [f"broken/{i}.png" for i in range(3)]
    assert status["status"] == "partial"
    assert (status["total"], status["done"], status["failed"], status["queued"], status["running"]) == (
        200,
        195,
        5,
        0,
        0,
    )
    assert status["progress_percent"] == 100.0 and status["eta_seconds"] == 0.0
    assert status["images_per_second"] > 0 and status["finished_at"] >= status["created_at"]


def test_progress_is_summed_from_parts_that_agree_with_the_lines(gateway, store, mixed_batch):
    """197 accepted files are 4 parts of up to 64, and the 3 refused are a part of their own; a
    poll reads those 5 rows, and they count what the 200 lines say."""
    batch_id = uuid.UUID(mixed_batch[0]["id"])
    parts = store.batch_parts(batch_id)
    assert sorted(p.total for p in parts.values()) == [3, 5, 64, 64, 64]
    from_lines = count_lines(store.batch_rows(batch_id))
    summed = [
        sum(getattr(p, f) for p in parts.values()) for f in ("total", "running", "done", "failed", "cached")
    ]
    # Cached: however many of these digits an earlier test module had already sent.
    assert summed == [from_lines.total, 0, from_lines.done, from_lines.failed, from_lines.cached]
    assert summed[:4] == [200, 0, 195, 5]
    assert as_utc(min(p.first_finished for p in parts.values())) == from_lines.first_finished
    assert as_utc(max(p.last_finished for p in parts.values())) == from_lines.last_finished


def test_a_batch_made_before_parts_is_counted_from_its_lines(gateway, store):
    batch_id = uuid.uuid4()
    store.session.execute(
        "INSERT INTO batches (batch_id, name, model_name, created_at) VALUES (%s, 'old', 'digits', %s)",
        (batch_id, utcnow()),
    )
    for n, status in enumerate(["done", "failed", "queued"]):
        store.session.execute(
            "INSERT INTO batch_jobs (batch_id, filename, job_id, status, finished_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (batch_id, f"{n}.png", uuid.uuid4(), status, utcnow() if status != "queued" else None),
        )
    body = API.get(f"{gateway}/v1/batches/{batch_id}", timeout=10).json()
    assert (body["total"], body["done"], body["failed"], body["queued"], body["status"]) == (
        3,
        1,
        1,
        1,
        "running",
    )


def test_a_batch_holds_at_most_its_setting_of_files(settings):
    """RECOG_MAX_FILES_PER_BATCH across a batch's uploads: the upload that would pass it is refused
    whole, a smaller one still fits, and a retry under its key is its first answer, not refused."""
    client = keyed_client(create_app(settings.replace(max_files_per_batch=10)), settings)

    def upload(path, files, key=None):
        parts = {"files": [(io.BytesIO(data), name) for name, data in files], "name": "capped"}
        headers = {"Idempotency-Key": key} if key else {}
        return client.post(path, data=parts, headers=headers, content_type="multipart/form-data")

    assert upload("/v1/batches", digit_files(11, "over")).status_code == 413
    first = upload("/v1/batches", digit_files(6, "first"))
    assert first.status_code == 202, first.json
    more = f"/v1/batches/{first.json['id']}/files"
    refused = upload(more, digit_files(5, "second"))
    assert refused.status_code == 413 and refused.json["error"]["code"] == "batch_full"
    assert (
        "already holds 6" in refused.json["error"]["message"]
        and "RECOG_MAX_FILES_PER_BATCH" in refused.json["error"]["message"]
    )
    key = str(uuid.uuid4())
    fits = upload(more, digit_files(4, "third"), key=key)
    assert fits.status_code == 202 and fits.json["accepted"] == 4
    assert upload(more, digit_files(4, "third"), key=key).json == fits.json
    assert upload(more, digit_files(1, "fourth")).json["error"]["code"] == "batch_full"
    assert client.get(f"/v1/batches/{first.json['id']}").json["total"] == 10


def test_csv_and_json_results_match_the_stored_rows(gateway, store, mixed_batch):
    batch_id = mixed_batch[0]["id"]
    text = API.get(f"{gateway}/v1/batches/{batch_id}/results", params={"format": "csv"}, timeout=60).text
    from_csv = list(csv.DictReader(io.StringIO(text)))
    from_json = API.get(
        f"{gateway}/v1/batches/{batch_id}/results", params={"format": "json"}, timeout=60
    ).json()
    stored = {str(r["job_id"]): r for r in store.batch_rows(uuid.UUID(batch_id))}
    assert len(from_csv) == len(from_json) == len(stored) == 200
    for row, item in zip(from_csv, from_json, strict=True):
        job = store.get_job(uuid.UUID(row["job_id"]))
        assert row["job_id"] == item["job_id"] and row["status"] == item["status"] == job["status"]
        assert (row["label"] or None) == item["label"] == job["label"] == stored[row["job_id"]]["label"]
        assert row["file"] == item["file"] == job["filename"]
    assert labels_right(from_json) >= 193
    broken = [r for r in from_json if r["file"].startswith("broken/")]
    assert len(broken) == 5 and all(r["status"] == "failed" and "truncated" in r["error"] for r in broken)


def test_zip_is_read_like_files_and_reports_what_it_skips(gateway):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in digit_files(20, prefix="zipped"):
            zf.writestr(name, data)
        zf.writestr("notes/readme.txt", "not an image")
        zf.writestr("inner.zip", b"PK\x05\x06" + b"\0" * 18)
        zf.writestr("folder/", b"")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "target.png")
    response = post_batch(gateway, archive=buffer.getvalue())
    body = response.json()
    assert response.status_code == 202 and body["accepted"] == 20, body
    reasons = {s["file"]: s["reason"] for s in body["skipped"]}
    assert set(reasons) == {"notes/readme.txt", "inner.zip", "folder/", "link.png"}
    assert "nested archive" in reasons["inner.zip"] and "symbolic link" in reasons["link.png"]
    status = wait_for_batch(gateway, body["id"])
    assert status["status"] == "done" and status["done"] == 20
    rows = API.get(f"{gateway}{body['links']['results']}", params={"format": "json"}, timeout=60).json()
    assert labels_right(rows) >= 19


def test_zip_bomb_is_refused_and_none_of_it_is_kept(gateway, settings, store):
    """The files before the archive may stay stored (another upload may share their bytes); the
    bomb's bytes never are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.png", b"\0" * (settings.max_upload_bytes * 3))
    assert len(buffer.getvalue()) < 200_000
    images_before = stored_images(settings, store)
    files = digit_files(3, prefix="before")
    response = post_batch(gateway, files=files, archive=buffer.getvalue())
    assert response.status_code == 413 and response.json()["error"]["code"] == "archive_entry_too_large"
    parts = {hashlib.sha256(data).hexdigest() for _, data in files}
    assert stored_images(settings, store) - images_before <= parts


def test_resubmitted_files_are_served_from_cache(gateway, mixed_batch):
    again = post_batch(gateway, digit_files(30)).json()
    status = wait_for_batch(gateway, again["id"])
    assert status["done"] == 30 and status["cached"] == 30
    rows = API.get(
        f"{gateway}/v1/batches/{again['id']}/results", params={"format": "json"}, timeout=60
    ).json()
    assert all(r["cached"] for r in rows) and labels_right(rows) >= 29


def test_files_can_be_added_to_an_open_batch(gateway):
    first = post_batch(gateway, digit_files(5, prefix="part1")).json()
    more = API.post(
        f"{gateway}{first['links']['files']}",
        files=[("files", f) for f in digit_files(7, "part2")],
        timeout=60,
    )
    assert more.status_code == 202 and more.json()["id"] == first["id"] and more.json()["accepted"] == 7
    assert wait_for_batch(gateway, first["id"])["total"] == 12


def test_the_csv_never_hands_a_spreadsheet_a_formula(gateway):
    names = ['=HYPERLINK("http://example.invalid").png', "-3.png", "@4.png", "plain-5.png"]
    files = [(name, images.png_digit(i + 2, 7)) for i, name in enumerate(names)]
    batch = post_batch(gateway, files).json()
    wait_for_batch(gateway, batch["id"])
    results = f"{gateway}{batch['links']['results']}"
    in_csv = [r["file"] for r in csv.DictReader(io.StringIO(API.get(results, timeout=30).text))]
    assert sorted(in_csv) == sorted(["'" + n for n in names[:3]] + ["plain-5.png"])
    in_json = [r["file"] for r in API.get(results, params={"format": "json"}, timeout=30).json()]
    assert sorted(in_json) == sorted(names), "JSON keeps the names as sent"


def test_batch_errors_are_json(gateway, mixed_batch):
    assert (
        API.post(f"{gateway}/v1/batches", data={"name": "x"}, timeout=10).json()["error"]["code"]
        == "missing_files"
    )
    assert API.get(f"{gateway}/v1/batches/{uuid.uuid4()}", timeout=10).status_code == 404
    assert API.get(f"{gateway}/v1/batches/nope", timeout=10).status_code == 400
    bad_format = API.get(f"{gateway}/v1/batches/{mixed_batch[0]['id']}/results?format=xml", timeout=10)
    assert bad_format.status_code == 400 and bad_format.json()["error"]["code"] == "bad_format"
    assert "'xml'" in bad_format.json()["error"]["message"]


def audit_rows_per_job(store, since, job_ids) -> Counter:
    """How often each job appears in the audit table, where a job recognised twice would show
    (its batch line and job row are overwritten in place; predictions_by_hour gains a row)."""
    spanned = int((utcnow() - since).total_seconds() // 3600) + 2
    hours = {hour_bucket(since + timedelta(hours=h)) for h in range(spanned)}
    counts = Counter()
    for hour in hours:
        for row in store.session.execute("SELECT job_id FROM predictions_by_hour WHERE hour = %s", (hour,)):
            if row["job_id"] in job_ids:
                counts[row["job_id"]] += 1
    return counts


def test_batch_survives_a_worker_sigkill_without_double_counting(stack, gateway, store):
    since = utcnow()
    response = post_batch(gateway, digit_files(600, prefix="crash"), timeout=300)
    batch_id = response.json()["id"]
    status = wait_for_done(gateway, batch_id, 64, timeout=120)
    stack.kill(BULK_WORKER)  # the worker that runs a batch's chunks
    assert status["done"] < 600, "the batch finished before the kill; the test proved nothing"
    stack.start_worker(BULK_WORKER)
    restarted = time.monotonic()
    final = wait_for_batch(gateway, batch_id, timeout=240)
    print(f"\nthe batch was all final {time.monotonic() - restarted:.0f} s after the worker restarted")
    assert (final["status"], final["total"], final["done"], final["failed"]) == ("done", 600, 600, 0)
    rows = list(store.batch_rows(uuid.UUID(batch_id)))
    assert len(rows) == 600 and len({r["job_id"] for r in rows}) == 600
    from_lines = count_lines(rows)  # the API counted from parts the kill cut across
    assert (from_lines.total, from_lines.done, from_lines.running) == (final["total"], final["done"], 0)
    audited = audit_rows_per_job(store, since, {r["job_id"] for r in rows})
    assert len(audited) == 600, "a finished job is missing from the audit table"
    twice = {str(job): n for job, n in audited.items() if n > 1}
    assert not twice, f"jobs recognised more than once: {twice}"


def test_results_past_one_page_come_back_whole_and_in_order(gateway):
    """Results are read from Cassandra 1,000 rows a page; 1,010 files cross a page boundary."""
    files = digit_files(1010, prefix="many")
    first = post_batch(gateway, files[:600]).json()
    more = API.post(
        f"{gateway}{first['links']['files']}", files=[("files", f) for f in files[600:]], timeout=120
    )
    assert more.status_code == 202 and more.json()["accepted"] == 410
    status = wait_for_batch(gateway, first["id"], timeout=300)
    assert status["total"] == 1010 and status["done"] == 1010
    results = f"{gateway}{first['links']['results']}"
    csv_rows = list(csv.DictReader(io.StringIO(API.get(results, timeout=60).text)))
    assert [r["file"] for r in csv_rows] == sorted(name for name, _ in files)
    json_rows = API.get(results, params={"format": "json"}, timeout=60).json()
    assert [r["file"] for r in json_rows] == [r["file"] for r in csv_rows]
    assert labels_right(json_rows) >= 1000
