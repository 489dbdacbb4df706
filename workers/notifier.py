"""Deliver webhooks: POST a signed JSON body to a job's or batch's callback_url once it has ended.

A thread in every worker's main process, next to the sweeper; a Redis lock lets one notify at a
time. Each pass (every second) reads the minutes of callbacks_pending that are not settled yet and
looks at each callback not known ended:

- its tries so far (table callbacks): delivered or given up, it is ended; a next try not due yet
  waits for it;
- its job or batch: not ended yet (a batch also not closed), it is looked at again after 1, 2, 4 ...
  at most 30 s, so a long batch costs a read of its parts every 30 s, not every pass; still
  missing ORPHAN_AFTER after it was registered (the upload was refused after all), it is dropped;
- ended: it is POSTed, the try recorded with its status or error, and a failed one tried again
  after shared.callbacks.delay, until RECOG_CALLBACK_RETRY_HOURS after the first try (registered
  again in the minute of each failed try, so the look-back still finds it).

A pass tries at most MAX_TRIES_A_PASS callbacks, DELIVERERS at a time, each round waited for at
most a try's longest (a lookup's allowance, and the POST's deadline, at which its socket is shut
however slowly a receiver answers). A try still running then (a lookup that hangs) is applied at
a later pass, and its worker keeps the lock until it is, so no other worker sends it again
meanwhile. Only the pass's thread changes what the notifier remembers; the delivery threads hand
back a Tried. The next pass follows at once when more were due.

A try is recorded after its POST, so a worker killed in between sends it again: delivery is at
least once, and a receiver tells repeats apart by the body's id. The POST goes to the address the
allow-list let through, within the connect and read timeouts of the settings, and follows no
redirect (a 3xx is a failed try).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis

from shared import callbacks
from shared.batch_progress import BATCH_FINAL, batch_counts, batch_progress
from shared.jobs import FINAL_STATES, as_utc, minute_bucket, utcnow
from shared.settings import Settings
from shared.store import StoreUnavailable
from shared.store.callbacks import Attempt, Delivery, Pending
from shared.views import job_view
from workers.store_connection import StoreConnection
from workers.sweeper import SweepLock

log = logging.getLogger(__name__)

NOTIFY_LOCK = "recog:notifier"
PASS_SECONDS = 1.0
# A job or batch still running is looked at again after twice as long as the last time, at most.
MAX_LOOK_GAP = 30.0
# A minute is settled (never read again by this worker) this long after it ended, once every
# callback in it has ended: a gateway could still be writing into it before then.
SETTLE_AFTER = timedelta(minutes=2)
# A callback whose job or batch does not exist this long after it was registered belongs to an
# upload refused after all (a 429 or 503 after the registration): dropped.
ORPHAN_AFTER = timedelta(minutes=10)
DELIVERERS = 8  # POSTs at once: a slow receiver holds up only its own
MAX_TRIES_A_PASS = 64
LOOKUP_SECONDS = 5.0  # what a round allows a host name's lookup, which takes no timeout
ERROR_CHARS = 200
USER_AGENT = "recog-webhooks/1"


def round_seconds(settings: Settings) -> float:
    """The longest one try takes: its lookup, its POST (whose deadline covers connecting and
    reading) and a moment for its record."""
    return LOOKUP_SECONDS + settings.callback_connect_seconds + settings.callback_read_seconds + 2


def lock_seconds(settings: Settings) -> float:
    """The notifier's lock outlasts a pass's every round, so no other worker sends the same."""
    return MAX_TRIES_A_PASS / DELIVERERS * round_seconds(settings) + 60


@dataclass
class NotifyReport:
    minutes_read: int = 0
    looked_at: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    more: bool = False  # more were due than one pass tries: the next pass comes at once


@dataclass(frozen=True)
class Tried:
    """A try's outcome, and in how many seconds to look at its callback again (None: ended)."""

    outcome: str  # "delivered", "failed" or "gave_up"
    look_again: float | None


@dataclass
class Due:
    pending: Pending
    minute: str
    delivery: Delivery
    payload: dict


@dataclass
class Notifier:
    """What one worker knows between passes: settled minutes, ended callbacks, when to look again.
    Forgotten as their minutes leave the look-back."""

    settings: Settings
    post: object = None  # (target, body, headers, settings) -> status; the real POST unless a test's
    settled: set[str] = field(default_factory=set)
    ended: set[uuid.UUID] = field(default_factory=set)
    look_again: dict[uuid.UUID, tuple[float, float]] = field(default_factory=dict)  # (when, gap)
    # Rows of uploads refused after all, by (minute, subject): a retry under the same
    # Idempotency-Key registers the same subject again in another minute, which is not dropped.
    dropped: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    # Tries handed to the delivery threads and not applied yet; only the pass's thread reads or
    # changes this state, the delivery threads hand back a Tried.
    in_flight: dict[uuid.UUID, Future] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None

    def run_pass(self, store, now: datetime | None = None) -> NotifyReport:
        now = now or utcnow()
        began = time.monotonic()
        report = NotifyReport()
        self._apply_finished(report)  # tries that outlived their round, last pass
        due: list[Due] = []
        read: dict[str, list[Pending]] = {}
        for minute in self._minutes(now):
            read[minute] = store.callbacks.pending(minute)
            report.minutes_read += 1
            for pending in read[minute]:
                subject = pending.subject
                # A retried upload may have registered its callback twice: one try a pass.
                if (
                    subject in self.ended
                    or subject in self.in_flight
                    or (minute, subject) in self.dropped
                    or any(d.pending.subject == subject for d in due)
                ):
                    continue
                if len(due) >= MAX_TRIES_A_PASS:
                    report.more = True
                    continue
                found = self._look_safely(store, pending, minute, now)
                report.looked_at += found is not False
                if isinstance(found, Due):
                    due.append(found)
        for start in range(0, len(due), DELIVERERS):
            self._deliver_round(store, due[start : start + DELIVERERS], now, began, report)
        for minute, rows in read.items():
            ended = all(p.subject in self.ended or (minute, p.subject) in self.dropped for p in rows)
            if ended and _minute_end(minute) < now - SETTLE_AFTER:
                self.settled.add(minute)
        self._forget_what_left(read, now)
        return report

    def _deliver_round(
        self, store, due: list[Due], now: datetime, began: float, report: NotifyReport
    ) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DELIVERERS, thread_name_prefix="recog-callback")
        futures = []
        for item in due:
            future = self._pool.submit(self._deliver, store, item, now, began)
            self.in_flight[item.pending.subject] = future
            futures.append(future)
        wait(futures, timeout=round_seconds(self.settings))
        self._apply_finished(report)

    def _apply_finished(self, report: NotifyReport) -> None:
        """What the delivery threads handed back, applied on the pass's thread."""
        for subject, future in list(self.in_flight.items()):
            if not future.done():
                continue
            del self.in_flight[subject]
            tried: Tried = future.result()
            setattr(report, tried.outcome, getattr(report, tried.outcome) + 1)
            if tried.look_again is None:
                self._forget(subject)
            else:
                self.look_again[subject] = (time.monotonic() + tried.look_again, 1.0)

    def _minutes(self, now: datetime) -> list[str]:
        first = now - timedelta(hours=self.settings.callback_hours)
        count = self.settings.callback_hours * 60 + 1
        minutes = (minute_bucket(first + timedelta(minutes=i)) for i in range(count))
        return [m for m in minutes if m not in self.settled]

    def _forget_what_left(self, read: dict[str, list[Pending]], now: datetime) -> None:
        """What this worker remembers of callbacks whose rows it no longer reads."""
        live = {p.subject for rows in read.values() for p in rows}
        self.ended &= live
        self.look_again = {s: v for s, v in self.look_again.items() if s in live}
        first = minute_bucket(now - timedelta(hours=self.settings.callback_hours))
        self.settled = {m for m in self.settled if m >= first}
        self.dropped = {(m, s) for m, s in self.dropped if m >= first}

    def _look_safely(self, store, pending: Pending, minute: str, now: datetime) -> Due | bool | None:
        """A row that cannot be read into a callback (a bug) is looked at again later, and holds
        up none of the others; only the store being down ends the pass."""
        try:
            return self._look(store, pending, minute, now)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("could not look at the callback of %s %s", pending.kind, pending.subject)
            self.look_again[pending.subject] = (time.monotonic() + MAX_LOOK_GAP, MAX_LOOK_GAP)
            return None

    def _look(self, store, pending: Pending, minute: str, now: datetime) -> Due | bool | None:
        """False: not looked at (too soon); None: not due; else what to deliver."""
        when, gap = self.look_again.get(pending.subject, (0.0, PASS_SECONDS / 2))
        if time.monotonic() < when:
            return False
        delivery = store.callbacks.delivery(pending.subject)
        if delivery.ended:
            self._forget(pending.subject)
            return None
        if delivery.next_at is not None and as_utc(delivery.next_at) > now:
            wait_for = (as_utc(delivery.next_at) - now).total_seconds()
            self.look_again[pending.subject] = (time.monotonic() + wait_for, gap)
            return None
        exists, payload = _ended_view(store, pending, now)
        if not exists and _minute_end(minute) < now - ORPHAN_AFTER and not delivery.attempts:
            self.dropped.add((minute, pending.subject))
            return None
        if payload is None:
            gap = min(gap * 2, MAX_LOOK_GAP)
            self.look_again[pending.subject] = (time.monotonic() + gap, gap)
            return None
        return Due(pending, minute, delivery, payload)

    def _forget(self, subject: uuid.UUID) -> None:
        self.ended.add(subject)
        self.look_again.pop(subject, None)

    def _deliver(self, store, due: Due, now: datetime, began: float) -> Tried:
        """In a delivery thread: one try. Whatever goes wrong on the way is a failed try, looked
        at again later: never one tried again every pass."""
        try:
            return self._try(store, due, now, began)
        except Exception:
            log.exception("could not record a try of the callback of %s", due.pending.subject)
            return Tried("failed", MAX_LOOK_GAP)

    def _try(self, store, due: Due, now: datetime, began: float) -> Tried:
        pending, earlier = due.pending, due.delivery
        kind = callbacks.JOB_FINISHED if pending.kind == "job" else callbacks.BATCH_FINISHED
        body = json.dumps({"type": kind, **due.payload}, separators=(",", ":")).encode()
        started = time.monotonic()
        at = now + timedelta(seconds=started - began)  # the pass's clock, moved on
        status, error = None, None
        try:
            key = store.keys.get(pending.key_id)
            if key is None or not key.webhook_secret:
                raise callbacks.CallbackRefused("the key that asked for it has no webhook secret")
            target = callbacks.resolve(pending.url, self.settings.callback_allow)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                callbacks.SIGNATURE_HEADER: callbacks.sign(key.webhook_secret, body, int(time.time())),
            }
            status = (self.post or post)(target, body, headers, self.settings)
            if not 200 <= status < 300:
                error = f"answered {status}"
        except StoreUnavailable:
            raise
        except Exception as exc:  # refused, unreachable, timed out, a broken answer: a failed try
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        attempt = Attempt(
            len(earlier.attempts) + 1, at, status, error, round((time.monotonic() - started) * 1000)
        )
        first = earlier.first_at or at
        if error is None:
            after, outcome = Delivery(first_at=first, delivered_at=at), "delivered"
        elif (at - as_utc(first)).total_seconds() >= self.settings.callback_retry_hours * 3600:
            after, outcome = Delivery(first_at=first, gave_up_at=at), "gave_up"
        else:
            next_at = at + timedelta(seconds=callbacks.delay(attempt.attempt))
            after, outcome = Delivery(first_at=first, next_at=next_at), "failed"
        store.callbacks.record(pending.subject, attempt, after)
        log.info(
            "callback of %s %s, try %d: %s", pending.kind, pending.subject, attempt.attempt, error or status
        )
        if outcome != "failed":
            return Tried(outcome, None)
        # Registered again now, so the look-back still reads it for as long as it is retried
        # (RECOG_CALLBACK_HOURS is at least 2: longer than the longest wait between tries).
        minute = minute_bucket(at)
        if minute != due.minute:
            store.callbacks.register(pending, minute, self.settings.callback_hours * 3600)
        return Tried(outcome, (next_at - at).total_seconds())


def _ended_view(store, pending: Pending, now: datetime) -> tuple[bool, dict | None]:
    """Whether the job or batch exists, and its view once it has ended (a batch: ended and
    closed)."""
    if pending.kind == "job":
        row = store.get_job(pending.subject)
        if row is None or row.get("created_at") is None:
            return False, None
        return True, job_view(row) if row.get("status") in FINAL_STATES else None
    header = store.get_batch(pending.subject)
    if header is None:
        return False, None
    if not header.get("closed"):
        return True, None
    progress = batch_progress(header, batch_counts(store, header).values(), now)
    return True, progress if progress["status"] in BATCH_FINAL else None


def _minute_end(minute: str) -> datetime:
    return as_utc(datetime.strptime(minute, "%Y-%m-%dT%H:%M")) + timedelta(minutes=1)


def post(target: callbacks.Target, body: bytes, headers: dict, settings: Settings) -> int:
    """POST to the address that was checked, under the URL's own host name (Host header, TLS name
    and certificate check), following no redirect; its status.

    Written on http.client over a socket of its own rather than with urllib3 or requests: their read
    timeout is per read, so a receiver that sends a byte every few seconds would hold a try without
    end. Here a timer shuts the socket, the TLS one once there is one, at the connect and read
    timeouts' sum from before connecting, whatever comes."""
    held: list[socket.socket] = []
    timer = threading.Timer(
        settings.callback_connect_seconds + settings.callback_read_seconds, _shut, (held,)
    )
    timer.daemon = True
    timer.start()
    try:
        held.append(
            socket.create_connection((target.address, target.port), timeout=settings.callback_connect_seconds)
        )
        if target.scheme == "https":
            context = ssl.create_default_context()
            held.append(
                context.wrap_socket(
                    held[-1], server_hostname=target.ascii_host, do_handshake_on_connect=False
                )
            )
            held[-1].settimeout(settings.callback_read_seconds)
            held[-1].do_handshake()
        held[-1].settimeout(settings.callback_read_seconds)
        connection = http.client.HTTPConnection(target.address, target.port)
        connection.sock = held[-1]
        connection.request("POST", target.path, body=body, headers={**headers, "Host": target.host_header})
        return connection.getresponse().status
    finally:
        timer.cancel()
        for sock in held:
            sock.close()


def _shut(held: list[socket.socket]) -> None:
    """From the timer's thread: whatever the POST is blocked on (connecting, the TLS handshake, a
    read) returns at once."""
    if held:
        with contextlib.suppress(OSError):  # closed already
            socket.socket.shutdown(held[-1], socket.SHUT_RDWR)


def start_notifying(app) -> threading.Thread:
    settings = app.settings

    def loop() -> None:
        connection = StoreConnection(settings)
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
        lock = SweepLock(client, timeout=lock_seconds(settings), name=NOTIFY_LOCK)
        notifier = Notifier(settings)
        more = False
        while True:
            if not more:
                time.sleep(PASS_SECONDS)
            more = False
            try:
                store = connection.get()
                if not (notifier.in_flight and lock.holds()) and not lock.acquire():
                    continue
                try:
                    more = notifier.run_pass(store).more
                finally:
                    if not notifier.in_flight:  # else kept: no other worker sends those again
                        lock.release()
            except StoreUnavailable as exc:
                log.warning("delivering callbacks failed, connecting again next time: %s", exc)
                connection.drop()
            except redis.RedisError as exc:
                log.warning("delivering callbacks needs Redis, trying again next time: %s", exc)
            except Exception:  # a pass that fails is tried again next time
                log.exception("delivering callbacks failed")

    thread = threading.Thread(target=loop, name="recog-notifier", daemon=True)
    thread.start()
    return thread
