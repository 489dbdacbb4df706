"""Send again the work whose task message was lost: by Redis dying, or with a SIGKILLed worker.

Every task message (a single job or a chunk) has an open_work row from before it is first sent,
but for a waited-for single job, which gets one only when its wait runs out (gateway/jobs.py).
Once a minute's rows are all final, the minute is settled and never read again, so the sweep costs
what is open, not what has finished. An open row is sent again when it is

- not held: no live worker's lease claims it (workers/leases.py), and
- not waiting: its queue in Redis is empty, or a live worker has already read a send made more
  than one lease after it (queues are first in, first out, so it was passed over: lost), and
- not new: it was last sent more than one lease ago.

Only the jobs of a row that are not yet final are sent again, a chunk as one chunk, to the queue it
came from. Tasks skip final jobs, so a message that surfaces later costs one status read. A chunk
whose jobs are all final has its batch parts checked, and counted again where short.
Only one sweeper acts at a time (a Redis lock); the others skip their turn.

A minute settles only minutes after it ended, and until then every sweep (every 15 s) reads it
again: a row found ended is remembered by the sweeper and not looked into again, and a chunk whose
parts already count every job final is known ended from a row a part, not a status a job. Before,
the 10,000 jobs of a bulk upload were read again by every sweep for 5 minutes, a burst that held
up every other request for a second.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis

from shared.image_collector import collect_images
from shared.image_store import open_image_store
from shared.jobs import FINAL_STATES, as_utc, minute_bucket, utcnow
from shared.messaging import JobMessage, Work, send_work
from shared.store import ResultStore, StoreUnavailable
from workers.counting import count_parts
from workers.store_connection import StoreConnection

log = logging.getLogger(__name__)

# A minute is settled only this long after it ended (and after one lease): a slow or skewed
# sender could still be writing into it before then.
SETTLE_AFTER = timedelta(minutes=5)
# A store failing this many minutes in a row is down: the sweep stops and tries again next time.
GIVE_UP_AFTER = 3
# Job statuses read at once: a burst of thousands queues every other request behind it.
STATUSES_AT_ONCE = 256
# The Redis key that lets one worker sweep at a time.
SWEEP_LOCK = "recog:sweeper"


@dataclass
class SweepReport:
    resent_work: int = 0
    resent_jobs: int = 0
    minutes_read: int = 0
    rows_read: int = 0  # open-work rows looked into: not those an earlier pass found ended
    messages_read: int = 0  # the messages of those rows that were due to be sent again, if lost
    recounted_parts: int = 0
    statuses_read: int = 0
    failed_minutes: list[str] = field(default_factory=list)


def sweep(
    store: ResultStore,
    send: Callable[[Work], None],
    queue_length: Callable[[bool], int],
    lease: timedelta,
    look_back_hours: int,
    now: datetime | None = None,
    ended: dict[str, set[uuid.UUID]] | None = None,
) -> SweepReport:
    """One pass over the unsettled minutes of the look-back; queue_length(chunk) is the length of
    that kind's queue in Redis. ended: the rows of each minute an earlier pass found ended, kept
    by the caller from pass to pass (and updated here)."""
    now = now or utcnow()
    ended = {} if ended is None else ended
    report = SweepReport()
    leases = store.leases()
    held = set().union(*(lease_row["held"] for lease_row in leases))
    newest = _newest_reads(leases)
    lengths: dict[bool, int] = {}

    def waiting(row: dict) -> bool:
        chunk = bool(row["chunk"])
        if chunk not in lengths:
            lengths[chunk] = queue_length(chunk)
        read_up_to = newest.get(chunk)
        return lengths[chunk] > 0 and (read_up_to is None or as_utc(row["sent_at"]) > read_up_to - lease)

    def passed_over(row: dict) -> bool:
        return row["work_id"] not in held and now - as_utc(row["sent_at"]) > lease and not waiting(row)

    failures_in_a_row = 0
    minutes = _minutes(now, look_back_hours, lease, store)
    for gone in ended.keys() - set(minutes):  # settled elsewhere, or past the look-back
        del ended[gone]
    settled: list[str] = []
    try:
        for minute in minutes:
            try:
                report.minutes_read += 1
                known = ended.get(minute, set())
                if _sweep_minute(store, send, minute, passed_over, now, lease, report, known):
                    settled.append(minute)
                if known:
                    ended[minute] = known
                failures_in_a_row = 0
            except StoreUnavailable as exc:
                report.failed_minutes.append(minute)
                failures_in_a_row += 1
                log.warning("could not sweep minute %s, going on with the rest: %s", minute, exc)
                if failures_in_a_row >= GIVE_UP_AFTER:
                    raise
    finally:  # what was found settled is settled, even when the store gave up on later minutes
        _settle(store, settled, ended, report)
    if report.resent_work:
        log.warning(
            "sent %d jobs again in %d task messages (their messages were lost)",
            report.resent_jobs,
            report.resent_work,
        )
    return report


def _settle(store, minutes: list[str], ended: dict[str, set[uuid.UUID]], report: SweepReport) -> None:
    """Together, in batches of one day's partition: a fresh store's first sweep settles a whole
    look-back of empty minutes (1,440), which a write each cost Cassandra 1.2 s of CPU more and the
    sweep 2 s longer (bench/sweep_cost.py). If that fails, the next pass finds them again."""
    if not minutes:
        return
    try:
        store.settle(minutes)
    except StoreUnavailable as exc:
        report.failed_minutes.extend(minutes)
        log.warning("could not settle %d swept minutes, trying again next pass: %s", len(minutes), exc)
        return
    for minute in minutes:
        ended.pop(minute, None)  # settled: never read again


def _newest_reads(leases: list[dict]) -> dict[bool, datetime]:
    """{chunk?: the newest send any live worker has read from that kind's queue}."""
    newest: dict[bool, datetime] = {}
    for lease_row in leases:
        for kind, moment in lease_row["newest_sent"].items():
            chunk = kind == "chunk"
            moment = as_utc(moment)
            if chunk not in newest or moment > newest[chunk]:
                newest[chunk] = moment
    return newest


def _minutes(now: datetime, look_back_hours: int, lease: timedelta, store: ResultStore) -> list[str]:
    """The minutes of the look-back not yet settled, oldest first, up to one lease ago."""
    first, last = now - timedelta(hours=look_back_hours), now - lease
    days = {minute_bucket(first + timedelta(days=n))[:10] for n in range((last - first).days + 1)}
    days.add(minute_bucket(last)[:10])
    settled = set().union(*(store.settled_minutes(day) for day in sorted(days)))
    minutes, moment = [], first.replace(second=0, microsecond=0)
    while moment <= last:
        if minute_bucket(moment) not in settled:
            minutes.append(minute_bucket(moment))
        moment += timedelta(minutes=1)
    return minutes


def _sweep_minute(
    store, send, minute: str, passed_over, now: datetime, lease, report: SweepReport, ended: set[uuid.UUID]
) -> bool:
    """Whether the minute is to be settled: every job of its work is final, and nothing can be
    written into it any more. ended: the rows of this minute found ended before (skipped), to
    which those found ended now are added."""
    rows = [row for row in store.open_work(minute) if row["work_id"] not in ended]
    report.rows_read += len(rows)
    due = [row for row in rows if passed_over(row)]
    # Only the messages of rows that may need sending again are read: a minute of bulk work
    # holds 10,000 messages and more, read every sweep until it settles.
    found = store.work_messages(minute, [row["work_id"] for row in due]) if due else {}
    report.messages_read += sum(len(messages or ()) for messages in found.values())
    for row in due:
        if row["work_id"] in found and found[row["work_id"]] is None:
            log.warning("open work %s in minute %s cannot be read; left alone", row["work_id"], minute)
    candidates = [
        {**row, "messages": found[row["work_id"]]} for row in due if found.get(row["work_id"]) is not None
    ]
    # Rows not due yet are open; a due one is open if it has jobs to send again (one that cannot
    # be read, or expired meanwhile, has none).
    still_open = len(rows) - len(due)
    counted = _counted_chunks(store, candidates)
    job_ids = [m.job_id for row in candidates if row["work_id"] not in counted for m in row["messages"]]
    statuses = _statuses(store, job_ids)
    report.statuses_read += len(job_ids)
    ended_chunks, ended_now = [], set(counted)
    for row in candidates:
        if row["work_id"] in counted:
            continue
        todo = tuple(m for m in row["messages"] if statuses.get(m.job_id) not in FINAL_STATES)
        if not todo:
            if row["chunk"]:
                ended_chunks.append(row["messages"])
            ended_now.add(row["work_id"])
            continue
        still_open += 1
        work = Work(row["work_id"], todo, bool(row["chunk"]), now, resent=True)
        send(work)
        store.resent(minute, work)
        report.resent_work += 1
        report.resent_jobs += len(todo)
    recounted = _count_stale_parts(store, ended_chunks)
    report.recounted_parts += recounted
    # Not settled while it needed counting: a late count from a worker still running could
    # overwrite this one, and a settled minute is never read again. Nor remembered as ended: the
    # next pass checks those parts again.
    still_open += recounted
    if not recounted:
        ended |= ended_now
    minute_start = datetime.strptime(minute, "%Y-%m-%dT%H:%M").replace(tzinfo=now.tzinfo)
    return not still_open and now - (minute_start + timedelta(minutes=1)) > lease + SETTLE_AFTER


def _statuses(store, job_ids: list) -> dict:
    statuses: dict = {}
    for start in range(0, len(job_ids), STATUSES_AT_ONCE):
        statuses.update(store.look_up(job_ids[start : start + STATUSES_AT_ONCE], [])[0])
    return statuses


def _counted_chunks(store, rows: list[dict]) -> set[uuid.UUID]:
    """The chunks among rows whose every job is in a part that counts all its jobs final: ended,
    as a row a part says, without a status read a job. (A worker killed between ending a chunk
    and counting its parts leaves them short: those chunks' statuses are read.)"""
    counts: dict = {}
    counted = set()
    for row in rows:
        parts = {(m.batch_id, m.part) for m in row["messages"]}
        if not row["chunk"] or any(part is None for _, part in parts):
            continue
        for key in parts - counts.keys():
            counts[key] = store.part_count(*key)
        # A part with no total yet (its 'running' mark made the row; the gateway's total never
        # came) says nothing.
        if all(counts[key] is not None and 0 < counts[key].total <= counts[key].final for key in parts):
            counted.add(row["work_id"])
    return counted


def _count_stale_parts(store, chunks: list[tuple[JobMessage, ...]]) -> int:
    """A worker killed between ending a chunk and counting its part leaves the part short of what
    is final: count it here. A part read here is one row; only a short one is counted again."""
    recounted, seen = 0, set()
    for messages in chunks:
        for batch_id, part_id in {(m.batch_id, m.part) for m in messages if m.part is not None}:
            if part_id in seen:
                continue
            seen.add(part_id)
            count = store.part_count(batch_id, part_id)
            if count is None or count.final < count.total:
                recounted += count_parts(store, [m for m in messages if m.part == part_id])
    return recounted


class SweepLock:
    """The Redis lock that lets one worker sweep (or notify: workers/notifier.py) at a time. A
    release that Redis went away under keeps the lock's token, and the next acquire releases it
    first: a Redis restarted from its append-only file still holds the key, and its timeout alone
    would stop every worker's sweeps, and so the recovery of what the restart lost, for two
    minutes."""

    def __init__(self, client: redis.Redis, timeout: float, name: str = SWEEP_LOCK) -> None:
        self._lock = client.lock(name, timeout=timeout)

    def acquire(self) -> bool:
        if self._lock.local.token is not None:  # a release still owed
            self.release()
        return self._lock.acquire(blocking=False)

    def holds(self) -> bool:
        """Whether this holder's lock is still its own in Redis."""
        return self._lock.local.token is not None and self._lock.owned()

    def release(self) -> None:
        """Never raises: a lock Redis could not release keeps its token for the next acquire."""
        token = self._lock.local.token
        try:
            self._lock.release()
        except redis.exceptions.LockError:
            pass  # expired, or taken since: no longer ours
        except redis.RedisError:
            self._lock.local.token = token  # redis-py before 8.2 dropped it before the round trip
            log.info("could not release the lock %s; releasing it on the next turn", self._lock.name)


def start_sweeping(app) -> threading.Thread:
    """A daemon thread in every worker's main process; a Redis lock lets one sweep at a time."""
    settings = app.settings
    lease = timedelta(seconds=settings.lease_seconds)

    def send(work: Work) -> None:
        send_work(app, settings, work)

    def loop() -> None:
        connection = StoreConnection(settings)
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
        images = open_image_store(settings, lambda: connection.get().session)

        def queue_length(chunk: bool) -> int:
            return client.llen(settings.bulk_queue if chunk else settings.queue)

        ended: dict = {}  # what earlier passes found ended, by minute
        lock = SweepLock(client, timeout=max(120, 4 * settings.sweep_seconds))
        while True:
            time.sleep(settings.sweep_seconds)
            try:
                store = connection.get()
                if not lock.acquire():
                    continue
                try:
                    sweep(store, send, queue_length, lease, settings.sweep_hours, ended=ended)
                finally:
                    lock.release()
                every = settings.collect_minutes * 60
                # One worker an interval collects: the first to set the mark, which lasts it.
                if every and client.set("recog:images-collected", "1", nx=True, ex=every):
                    collect_images(images, settings.retention_days, utcnow())
            except StoreUnavailable as exc:
                log.warning("sweeping open work failed, connecting again next time: %s", exc)
                connection.drop()
            except redis.RedisError as exc:
                log.warning("sweeping open work needs Redis, trying again next time: %s", exc)
            except Exception:  # a sweep that fails is tried again next time
                log.exception("sweeping open work failed")

    thread = threading.Thread(target=loop, name="recog-sweeper", daemon=True)
    thread.start()
    return thread
