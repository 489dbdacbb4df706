"""The notifier's passes over a store in memory, with the POST replaced by a recording (the real
POST, its timeouts and the receiver are tested in tests/integration/test_webhooks.py)."""

import http.client
import json
import socket
import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from shared import callbacks
from shared.jobs import minute_bucket, utcnow
from shared.keys import ApiKey
from shared.settings import Settings
from shared.store.callbacks import Delivery, Pending
from workers.notifier import MAX_TRIES_A_PASS, Notifier, post


class Callbacks:
    def __init__(self) -> None:
        self.rows: dict[str, list[Pending]] = {}
        self.tries: dict[uuid.UUID, Delivery] = {}
        self.reads = 0

    def register(self, pending, minute, ttl):
        self.rows.setdefault(minute, []).append(pending)

    def pending(self, minute):
        self.reads += 1
        return list(self.rows.get(minute, []))

    def delivery(self, subject):
        return self.tries.get(subject, Delivery())

    def record(self, subject, attempt, after):
        before = self.tries.get(subject, Delivery())
        self.tries[subject] = replace(after, attempts=(*before.attempts, attempt))


class Keys:
    def get(self, key_id):
        return ApiKey(key_id, "k", "t", frozenset(), "", utcnow(), None, "whsec_test")


class Store:
    def __init__(self) -> None:
        self.callbacks, self.keys, self.jobs = Callbacks(), Keys(), {}

    def get_job(self, job_id):
        return self.jobs.get(job_id)

    def get_batch(self, batch_id):
        return None


def job_row(job_id, status):
    return {"job_id": job_id, "status": status, "label": "4", "probabilities": [0.1], "created_at": utcnow()}


def setup(answers):
    store, posted = Store(), []
    job_id = uuid.uuid4()
    now = utcnow()
    store.callbacks.rows[minute_bucket(now)] = [Pending(job_id, "job", "http://127.0.0.1:9/hook", "key1")]

    def post(target, body, headers, settings):
        posted.append((target, body, headers))
        return answers[min(len(posted), len(answers)) - 1]

    notifier = Notifier(Settings.from_env({}, callback_hours=2), post=post)
    return store, notifier, job_id, now, posted


def test_a_job_still_running_is_not_posted_and_one_that_ended_is_posted_signed():
    store, notifier, job_id, now, posted = setup([204])
    store.jobs[job_id] = job_row(job_id, "running")
    report = notifier.run_pass(store, now)
    assert posted == [] and report.looked_at == 1
    store.jobs[job_id] = job_row(job_id, "done")
    notifier.look_again.clear()  # as if the gap had passed
    report = notifier.run_pass(store, now)
    assert report.delivered == 1
    target, body, headers = posted[0]
    assert (target.address, target.path) == ("127.0.0.1", "/hook")
    sent = json.loads(body)
    assert (sent["type"], sent["id"], sent["status"], sent["label"]) == (
        "job.finished",
        str(job_id),
        "done",
        "4",
    )
    at = int(headers[callbacks.SIGNATURE_HEADER].split(",")[0][2:])
    assert callbacks.verify("whsec_test", body, headers[callbacks.SIGNATURE_HEADER], at)
    delivery = store.callbacks.delivery(job_id)
    assert delivery.delivered_at and [a.status_code for a in delivery.attempts] == [204]


def test_a_failed_try_waits_its_backoff_and_a_delivered_one_is_never_read_again():
    store, notifier, job_id, now, posted = setup([500, 200])
    store.jobs[job_id] = job_row(job_id, "failed")
    assert notifier.run_pass(store, now).failed == 1
    delivery = store.callbacks.delivery(job_id)
    assert delivery.attempts[0].error == "answered 500"
    assert 5 <= (delivery.next_at - delivery.attempts[0].at).total_seconds() <= 5.5
    notifier.look_again.clear()
    notifier.run_pass(store, now)  # the next try is not due yet
    assert len(posted) == 1
    notifier.look_again.clear()
    assert notifier.run_pass(store, now + timedelta(seconds=6)).delivered == 1
    assert len(posted) == 2 and job_id in notifier.ended
    notifier.run_pass(store, now + timedelta(seconds=7))
    assert len(posted) == 2


def test_tries_stop_after_the_retry_hours_and_the_minute_settles():
    store, notifier, job_id, now, posted = setup([503])
    notifier.settings = notifier.settings.replace(callback_retry_hours=1.0)
    store.jobs[job_id] = job_row(job_id, "done")
    notifier.run_pass(store, now)
    notifier.look_again.clear()
    report = notifier.run_pass(store, now + timedelta(minutes=61))
    assert report.gave_up == 1 and store.callbacks.delivery(job_id).gave_up_at
    assert minute_bucket(now) in notifier.settled
    assert minute_bucket(now) not in notifier._minutes(now + timedelta(minutes=62))


def test_a_url_no_longer_allowed_is_a_failed_try_and_nothing_is_posted():
    store, notifier, job_id, now, posted = setup([200])
    notifier.settings = notifier.settings.replace(callback_allow=("public",))
    store.jobs[job_id] = job_row(job_id, "done")
    assert notifier.run_pass(store, now).failed == 1
    assert posted == [] and "may not call" in store.callbacks.delivery(job_id).attempts[0].error


def test_a_callback_registered_twice_is_posted_once_a_pass():
    store, notifier, job_id, now, posted = setup([200])
    earlier = minute_bucket(now - timedelta(minutes=1))  # an upload retried a minute later
    store.callbacks.rows[earlier] = list(store.callbacks.rows[minute_bucket(now)])
    store.jobs[job_id] = job_row(job_id, "done")
    assert notifier.run_pass(store, now).delivered == 1 and len(posted) == 1


def test_a_row_that_cannot_be_read_holds_up_none_of_the_others():
    store, notifier, job_id, now, posted = setup([200])
    broken = uuid.uuid4()
    store.callbacks.rows[minute_bucket(now)].insert(0, Pending(broken, "job", "http://127.0.0.1:9/x", "key1"))
    store.jobs[job_id] = job_row(job_id, "done")
    store.jobs[broken] = {**job_row(broken, "done"), "probabilities": 7}  # not a list
    assert notifier.run_pass(store, now).delivered == 1
    assert [json.loads(body)["id"] for _, body, _ in posted] == [str(job_id)]


def test_a_pass_tries_at_most_its_share_and_says_more_are_due():
    store, notifier, _, now, posted = setup([200])
    many = [Pending(uuid.uuid4(), "job", "http://127.0.0.1:9/x", "key1") for _ in range(MAX_TRIES_A_PASS + 5)]
    store.callbacks.rows[minute_bucket(now)] = many
    for pending in many:
        store.jobs[pending.subject] = job_row(pending.subject, "done")
    first = notifier.run_pass(store, now)
    assert (first.delivered, first.more) == (MAX_TRIES_A_PASS, True)
    second = notifier.run_pass(store, now)
    assert (second.delivered, second.more) == (5, False)


def test_a_callback_whose_job_never_came_is_dropped_after_ten_minutes():
    store, notifier, job_id, now, posted = setup([200])  # no job row: its upload was refused after all
    assert notifier.run_pass(store, now).looked_at == 1 and job_id not in notifier.ended
    notifier.look_again.clear()
    notifier.run_pass(store, now + timedelta(minutes=12))
    assert (minute_bucket(now), job_id) in notifier.dropped and posted == []
    # Registered again by a retry of its upload (an Idempotency-Key), in a later minute: not dropped.
    later = now + timedelta(minutes=20)
    store.callbacks.rows[minute_bucket(later)] = list(store.callbacks.rows[minute_bucket(now)])
    store.jobs[job_id] = job_row(job_id, "done")
    notifier.look_again.clear()
    assert notifier.run_pass(store, later).delivered == 1


def test_a_failed_try_is_registered_again_in_its_minute_so_the_look_back_keeps_it():
    store, notifier, job_id, now, posted = setup([500])
    store.jobs[job_id] = job_row(job_id, "done")
    later = now + timedelta(hours=1)  # the job ended late
    notifier.run_pass(store, later)
    assert [p.subject for p in store.callbacks.rows[minute_bucket(later)]] == [job_id]


def test_whatever_a_post_raises_is_a_failed_try_recorded():
    store, notifier, job_id, now, _ = setup([200])
    store.jobs[job_id] = job_row(job_id, "done")

    def broken(target, body, headers, settings):
        raise UnicodeEncodeError("latin-1", "例", 0, 1, "ordinal not in range")

    notifier.post = broken
    assert notifier.run_pass(store, now).failed == 1
    delivery = store.callbacks.delivery(job_id)
    assert delivery.next_at and delivery.attempts[0].error.startswith("UnicodeEncodeError")


def trickling_post(scheme: str, host: str, answer: bytes, hello: bool) -> float:
    """Seconds until the real POST gave up on a receiver that sends `answer` a byte every half
    second (after reading the ClientHello first, if hello), with a deadline of 2.5 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def trickle():
        conn, _ = server.accept()
        with conn:
            if hello:
                conn.recv(4096)
            for byte in answer:
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.5)

    threading.Thread(target=trickle, daemon=True).start()
    target = callbacks.Target("u", scheme, host, server.getsockname()[1], "/", "127.0.0.1")
    settings = Settings.from_env({}, callback_connect_seconds=0.5, callback_read_seconds=2.0)
    started = time.monotonic()
    try:
        with pytest.raises((OSError, http.client.HTTPException)):
            post(target, b"{}", {}, settings)
        return time.monotonic() - started
    finally:
        server.close()


def test_the_real_post_gives_up_at_its_deadline_however_slowly_a_receiver_answers():
    """A receiver that sends a byte every half second never trips a per-read timeout; the socket
    is shut at connect + read seconds all the same."""
    took = trickling_post("http", "127.0.0.1", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 30, hello=False)
    assert took < 4, "the POST outlived its deadline"


def test_the_real_post_gives_up_at_its_deadline_in_a_tls_handshake_trickled_byte_by_byte():
    """https: a receiver that starts a 16 kB handshake record and sends a byte every half second
    holds the try no longer than its deadline (the TLS socket is the one the timer shuts, once
    there is one; Python's handshake keeps a deadline of its own as well)."""
    # A ServerHello's start, then its random bytes.
    record = bytes([0x16, 0x03, 0x03, 0x40, 0x00, 0x02, 0x00, 0x3F, 0xFC, 0x03, 0x03]) + bytes(100)
    took = trickling_post("https", "localhost", record, hello=True)
    assert took < 4, "the TLS handshake outlived the POST's deadline"
