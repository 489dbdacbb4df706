"""The Cassandra adapter of ResultStore: every read and write of jobs, batches, audit and cache.

Driver exceptions never leave this module: they become StoreUnavailable.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from cassandra.cluster import Cluster, Session
from cassandra.query import BatchStatement, BatchType

from shared.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    BatchHeader,
    JobKey,
    NewJob,
    Outcome,
    hour_bucket,
    minute_bucket,
    seen_status,
    utcnow,
)
from shared.messaging import Work, stored_messages
from shared.parts import Part, PartCount, members_json, read_members, refused_count
from shared.settings import Settings
from shared.store import statements as cql
from shared.store.api_keys import KeyTable
from shared.store.callbacks import CallbackTable
from shared.store.session import Statements, connect, translated

# A job sent before API keys (a message queued by the previous version) has no tenant; it is
# written as "" rather than None, which would write a tombstone (protocol v3).
NO_TENANT = ""

# Open-work rows whose messages one query reads (an IN of their ids): a chunk's row holds up to
# 64 messages, about 8 kB.
WORK_IDS_A_READ = 100
# Job statuses one query reads (an IN of their ids): a chunk's 64 in one request.
STATUS_KEYS = 64
# Statements per unlogged batch: keeps a batch well under Cassandra 5.0's 50 kB refusal threshold.
GROUP_LIMIT = 50
# The group key under which _write sends new job rows, each its own partition, 50 to a request.
JOB_ROWS = "job rows"
# Finished jobs per logged batch, at up to 4 statements a job: about 23 kB as Cassandra counts a
# batch's size (12 jobs made 34.6 kB), and a group closes earlier when long file names or error
# messages would take it past BATCH_BYTES, well under the 50 kB Cassandra refuses from 2.2 on.
JOBS_A_LOGGED_BATCH = 8
BATCH_BYTES = 24_000
# How far before a waited-for job's creation its late 'queued' row is stamped: more than any skew
# between the gateway's clock and a worker's.
RECORDED_BEFORE = timedelta(minutes=1)
JOB_BYTES = 2_900  # a finished job's four rows, its text aside, as Cassandra counts them
UPLOAD_ROW_BYTES = 600  # a waited-for job's upload columns, written by its worker (its name aside)


def _store_errors(method):
    """Driver failures of a store method become StoreUnavailable."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with translated():
            return method(*args, **kwargs)

    return wrapper


class CassandraStore:
    """Statements are prepared once per store and always bound."""

    def __init__(self, cluster: Cluster, session: Session, keep_seconds: int) -> None:
        self.cluster = cluster
        self.session = session
        # How long open work and settled minutes are kept: as far back as the sweeper looks.
        self.keep_seconds = keep_seconds
        self._cql = Statements(lambda: session)
        self.keys = KeyTable(self._cql)
        self.callbacks = CallbackTable(self._cql)

    @classmethod
    def open(cls, settings: Settings) -> CassandraStore:
        with translated():
            return cls(*connect(settings, settings.cassandra_keyspace), settings.sweep_hours * 3600)

    def close(self) -> None:
        self.cluster.shutdown()

    @_store_errors
    def ping(self) -> None:
        self.session.execute("SELECT release_version FROM system.local", timeout=3.0)

    @_store_errors
    def insert_jobs(
        self,
        jobs: Sequence[NewJob],
        work: Sequence[Work] = (),
        refused: Sequence[tuple[NewJob, Outcome]] = (),
        parts: Sequence[Part] = (),
    ) -> None:
        """In steps, each waited for, so a write that fails halfway leaves nothing waiting for
        good:
        1. the work, and every part's members: what finishes a job, and what counts it;
        2. the parts' totals: a total never exists without the work and members that end it;
        3. job rows and a batch's lines, 50 to an unlogged batch (Cassandra's cost is mostly per
           request): a job row never exists without its work, so nothing stays 'queued'. A refused file's
           rows are written failed, with its outcome, in one logged batch: never 'queued' either;
        4. the refused files' parts, counted failed: only once their rows are there.
        A single job's work and row are one logged batch instead: both or neither, in one round
        trip, not two.
        """
        if len(jobs) == 1 and len(work) == 1 and not refused and not parts:
            self.session.execute(
                self.cql_batch([(cql.OPEN_WORK, self._work_values(work[0])), _job_row(jobs[0], QUEUED)])
            )
            return
        members = [(cql.INSERT_PART_MEMBERS, (p.part_id, p.batch_id, members_json(p.members))) for p in parts]
        self._write([(cql.OPEN_WORK, self._work_values(w)) for w in work] + members, [])
        accepted = [p for p in parts if p.refused_at is None]
        self._write([(cql.INSERT_PART, (p.batch_id, p.part_id, len(p.members))) for p in accepted], [])
        # Each job row is a partition of its own: grouped under one key, they share requests.
        rows = [(JOB_ROWS, _job_row(job, QUEUED)) for job in jobs]
        lines = [
            (job.batch_id, (cql.INSERT_BATCH_ROW, (job.batch_id, job.filename, job.job_id, QUEUED)))
            for job in jobs
            if job.batch_id is not None
        ]
        futures = self._write([], rows + lines, wait=False)
        for job, outcome in refused:
            statements = [_job_row(job, FAILED), *finish_statements(outcome)]
            if job.batch_id is not None:
                statements.append((cql.INSERT_BATCH_ROW, (job.batch_id, job.filename, job.job_id, FAILED)))
            futures.append(self.session.execute_async(self.cql_batch(statements)))
        for future in futures:
            future.result()
        refused_parts = [p for p in parts if p.refused_at is not None]
        self._write([_count_statement(p.batch_id, p.part_id, refused_count(p)) for p in refused_parts], [])

    @_store_errors
    def record_waited(self, job: NewJob, work: Work) -> None:
        """A job sent with its row left to the worker (its request waiting for the answer) whose
        wait ran out: its work and 'queued' row, as insert_jobs writes them, both or neither. The
        row is stamped as of a minute before the job was made, so anything its worker wrote
        already, or writes later, wins over it (Cassandra keeps the newest stamp of each column)."""
        before = int((job.created_at - RECORDED_BEFORE).timestamp() * 1_000_000)
        _, values = _job_row(job, QUEUED)  # a single job's: INSERT_JOB's values
        row = (cql.INSERT_JOB_BEFORE, (*values, before))
        self.session.execute(self.cql_batch([(cql.OPEN_WORK, self._work_values(work)), row]))

    def _work_values(self, work: Work, minute: str | None = None) -> tuple:
        return (
            minute or minute_bucket(work.sent_at),
            work.work_id,
            work.chunk,
            work.to_json(),
            work.sent_at,
            self.keep_seconds,
        )

    @_store_errors
    def get_job(self, job_id: uuid.UUID) -> dict | None:
        return self._cql.run(cql.SELECT_JOB, (job_id,)).one()

    @_store_errors
    def job_rows(self, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict]:
        """Whole job rows by id, STATUS_KEYS to a request, the requests at once."""
        wanted = list(dict.fromkeys(job_ids))
        futures = [
            self._cql.run_async(cql.SELECT_JOBS, (wanted[start : start + STATUS_KEYS],))
            for start in range(0, len(wanted), STATUS_KEYS)
        ]
        return {row["job_id"]: row for future in futures for row in future.result()}

    @_store_errors
    def look_up(
        self,
        job_ids: Sequence[uuid.UUID],
        recall_keys: Sequence[tuple[str, str, str, str | None]],
        meanwhile: Callable[[], object] | None = None,
    ):
        """Statuses and earlier results asked for together: one round trip, not two. An open job
        whose cancel was asked for reads CANCEL_ASKED. meanwhile: work for the caller to do while
        Cassandra answers."""
        wanted = list(dict.fromkeys(job_ids))  # once each: Cassandra answers a key as often as asked
        if len(wanted) == 1:  # routed to the job's own replicas, as an IN is not
            status_futures = [self._cql.run_async(cql.SELECT_STATUS, (wanted[0],))]
        else:
            status_futures = [
                self._cql.run_async(cql.SELECT_STATUSES, (wanted[start : start + STATUS_KEYS],))
                for start in range(0, len(wanted), STATUS_KEYS)
            ]
        recall_futures = [self._cql.run_async(cql.RECALL, key[:3]) for key in recall_keys]
        if meanwhile is not None:
            meanwhile()
        statuses = {
            row["job_id"]: seen_status(row["status"], row["cancel_requested_at"])
            for future in status_futures
            for row in future.result()
        }
        recalled = [
            next((row for row in future.result() if row["tenant"] == (key[3] or NO_TENANT)), None)
            for key, future in zip(recall_keys, recall_futures, strict=True)
        ]
        return statuses, recalled

    @_store_errors
    def mark_running(
        self, keys: Sequence[JobKey], worker: str, started_at: datetime, wait: bool = True
    ) -> list:
        """A single job's row shows 'running'; a batch job's line stays 'queued' until it ends, and
        its part counts it running: one write a chunk, not one a job.

        wait=False returns the writes in flight, for finish(after=...) to wait on: the final
        status still wins, its write being issued later (Cassandra keeps the newest write).
        """
        writes = [
            (cql.MARK_RUNNING, (RUNNING, started_at, worker, k.job_id)) for k in keys if k.batch_id is None
        ]
        parts = Counter((k.batch_id, k.part) for k in keys if k.batch_id is not None and k.part is not None)
        writes += [(cql.PART_RUNNING, (n, batch_id, part)) for (batch_id, part), n in parts.items()]
        return self._write(writes, [], wait)

    @_store_errors
    def open_work(self, minute: str) -> list[dict]:
        return list(self._cql.run(cql.SELECT_OPEN_WORK, (minute,)))

    @_store_errors
    def work_messages(self, minute: str, work_ids: Sequence[uuid.UUID]) -> dict:
        """Read WORK_IDS_A_READ rows to a query, the queries concurrently. None for a row whose
        messages cannot be read, so one bad row never hides the others."""
        slices = [
            list(work_ids[start : start + WORK_IDS_A_READ])
            for start in range(0, len(work_ids), WORK_IDS_A_READ)
        ]
        futures = [self._cql.run_async(cql.SELECT_WORK_MESSAGES, (minute, ids)) for ids in slices]
        return {row["work_id"]: stored_messages(row["messages"]) for f in futures for row in f.result()}

    @_store_errors
    def resent(self, minute: str, work: Work) -> None:
        self._cql.run(cql.OPEN_WORK, self._work_values(work, minute))

    @_store_errors
    def start_work(self, work_id: uuid.UUID, worker: str) -> int:
        earlier = self._cql.run(cql.COUNT_STARTS, (work_id,)).one()["count"]
        self._cql.run(cql.START_WORK, (work_id, worker, self.keep_seconds))
        return earlier

    @_store_errors
    def settled_minutes(self, day: str) -> set[str]:
        return {row["minute"] for row in self._cql.run(cql.SELECT_SETTLED, (day,))}

    @_store_errors
    def settle(self, minutes: Sequence[str]) -> None:
        """A day's minutes are one partition: written in batches of GROUP_LIMIT, a write each."""
        ttl = self.keep_seconds + 86_400
        self._write([], [(m[:10], (cql.SETTLE_MINUTE, (m[:10], m, ttl))) for m in minutes])

    @_store_errors
    def renew_lease(self, instance: str, held: Sequence, newest_sent: dict, ttl: int) -> None:
        held_text = json.dumps(sorted(str(work_id) for work_id in held))
        newest = json.dumps({queue: moment.isoformat() for queue, moment in newest_sent.items()})
        self._cql.run(cql.RENEW_LEASE, (instance, held_text, newest, utcnow(), ttl))

    @_store_errors
    def leases(self) -> list[dict]:
        """Live workers' leases: held (a set of work ids) and newest_sent ({queue: datetime})."""
        return [_lease(row) for row in self._cql.run(cql.SELECT_LEASES, ())]

    @_store_errors
    def insert_batch(self, header: BatchHeader) -> None:
        """The header and the tenant's listing row in one logged batch: both or neither, so a
        retry that finds the header finds the batch listed too."""
        self.session.execute(self.cql_batch([(cql.INSERT_BATCH, _header(header)), _listing(header)]))

    @_store_errors
    def insert_rescore(self, header: BatchHeader, source: uuid.UUID) -> None:
        """A re-score's header (gateway/rescore.py), closed, not yet listed: nobody knows its id
        until list_batch, after its jobs are recorded, so a re-score refused on the way (a quota,
        the store down) leaves nothing anyone sees."""
        self._cql.run(cql.INSERT_RESCORE_BATCH, (*_header(header), source))

    @_store_errors
    def list_batch(self, header: BatchHeader) -> None:
        self._cql.run(*_listing(header))

    @_store_errors
    def close_batch(self, batch_id: uuid.UUID) -> None:
        self._cql.run(cql.CLOSE_BATCH, (batch_id,))

    @_store_errors
    def cancel_job(self, job: dict, at: datetime) -> None:
        """Asks for a job's cancel: its row says when; a batch job's line says so too, and then its
        batch's header, which the worker that takes up its chunk reads (the line first, so a
        worker that sees the mark finds it)."""
        self._write([(cql.CANCEL_JOB, (at, job["job_id"]))], [])
        if job.get("batch_id") is not None:
            line = (at, job["batch_id"], job["filename"], job["job_id"])
            self._cql.run(cql.CANCEL_LINE, line)
            self._cql.run(cql.MARK_JOBS_CANCELLED, (job["batch_id"],))

    @_store_errors
    def cancel_batch(self, batch_id: uuid.UUID, at: datetime) -> None:
        """Asks for a batch's cancel, which closes it too: no file added after the cancel escapes it."""
        self._cql.run(cql.CANCEL_BATCH, (at, batch_id))

    @_store_errors
    def cancelled_batch_jobs(self, keys: Sequence[JobKey]) -> set[uuid.UUID]:
        """The batch jobs among keys whose cancel was asked for: the headers of their batches read
        in one request, and only for a batch some of whose jobs were cancelled one by one, these
        jobs' lines (read at once)."""
        by_batch: dict[uuid.UUID, list[JobKey]] = {}
        for key in keys:
            by_batch.setdefault(key.batch_id, []).append(key)
        found: set[uuid.UUID] = set()
        reads = []
        for row in self._cql.run(cql.SELECT_BATCH_CANCELS, (list(by_batch),)):
            mine = by_batch[row["batch_id"]]
            if row["cancel_requested_at"] is not None:
                found.update(k.job_id for k in mine)
            elif row["jobs_cancelled"]:
                reads += [
                    (k, self._cql.run_async(cql.SELECT_LINE_CANCEL, (k.batch_id, k.filename, k.job_id)))
                    for k in mine
                ]
        for key, future in reads:
            line = future.result().one()
            if line is not None and line["cancel_requested_at"] is not None:
                found.add(key.job_id)
        return found

    @_store_errors
    def tenant_batches(self, tenant: str, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[dict]:
        """Up to limit of the tenant's batches, newest first, from just after `after` (the
        created_at and id of the last one a page showed)."""
        if after is None:
            found = self._cql.run_paged(cql.SELECT_TENANT_BATCHES, (tenant,), limit + 8)
        else:
            found = self._cql.run_paged(cql.SELECT_TENANT_BATCHES_FROM, (tenant, after[0]), limit + 8)
        rows = []
        for row in found:
            # Batches of the same millisecond come in id order: skip those up to the last shown.
            if after is not None and row["created_at"] == after[0] and row["batch_id"] <= after[1]:
                continue
            rows.append(row)
            if len(rows) == limit:
                break
        return rows

    @_store_errors
    def claim_upload(
        self, scope: str, key: str, seed: uuid.UUID, claimed_at: datetime, ttl: int
    ) -> dict | None:
        row = self._cql.run(cql.CLAIM_UPLOAD, (scope, key, seed, claimed_at, ttl)).one()
        return None if row["[applied]"] else row

    @_store_errors
    def update_upload(self, scope: str, key: str, was: datetime, row: dict, ttl: int) -> bool:
        values = (ttl, row["seed"], row["claimed_at"], row["fingerprint"], row["answer"], scope, key, was)
        return self._cql.run(cql.UPDATE_UPLOAD, values).one()["[applied]"]

    @_store_errors
    def get_batch(self, batch_id: uuid.UUID) -> dict | None:
        return self._cql.run(cql.SELECT_BATCH, (batch_id,)).one()

    @_store_errors
    def batch_parts(self, batch_id: uuid.UUID) -> dict[uuid.UUID, PartCount]:
        return {row["part_id"]: _part_count(row) for row in self._cql.run(cql.SELECT_PARTS, (batch_id,))}

    @_store_errors
    def part_count(self, batch_id: uuid.UUID, part_id: uuid.UUID) -> PartCount | None:
        row = self._cql.run(cql.SELECT_PART, (batch_id, part_id)).one()
        return None if row is None else _part_count(row)

    @_store_errors
    def part_members(self, batch_id: uuid.UUID, part_id: uuid.UUID) -> tuple[JobKey, ...] | None:
        row = self._cql.run(cql.SELECT_PART_MEMBERS, (part_id,)).one()
        return None if row is None else read_members(row["members"], batch_id, part_id)

    @_store_errors
    def batch_lines(self, keys: Sequence[JobKey]) -> list[dict]:
        """Each key's batch line (status, cached, finished_at), read concurrently; {} where none."""
        futures = [
            self._cql.run_async(cql.SELECT_BATCH_LINE, (k.batch_id, k.filename, k.job_id)) for k in keys
        ]
        return [future.result().one() or {} for future in futures]

    @_store_errors
    def parts_members(self, batch_id: uuid.UUID, part_ids: Sequence[uuid.UUID]) -> dict:
        """{part id: its members} for those parts that have them, read at once."""
        futures = {p: self._cql.run_async(cql.SELECT_PART_MEMBERS, (p,)) for p in part_ids}
        found = {p: future.result().one() for p, future in futures.items()}
        return {p: read_members(row["members"], batch_id, p) for p, row in found.items() if row is not None}

    @_store_errors
    def requeue(self, keys: Sequence[JobKey], work: Sequence[Work]) -> None:
        """Failed batch jobs queued again, in insert_jobs' order: their work first, so the sweeper
        can send it whatever happens next, then their rows and lines back to 'queued'."""
        self._write([(cql.OPEN_WORK, self._work_values(w)) for w in work], [])
        rows = [(JOB_ROWS, (cql.REQUEUE_JOB, (QUEUED, k.job_id))) for k in keys]
        lines = [
            (k.batch_id, (cql.REQUEUE_BATCH_ROW, (QUEUED, k.batch_id, k.filename, k.job_id))) for k in keys
        ]
        self._write([], rows + lines)

    @_store_errors
    def count_part(self, batch_id: uuid.UUID, part_id: uuid.UUID, count: PartCount) -> None:
        self._cql.run(*_count_statement(batch_id, part_id, count))

    def batch_rows(self, batch_id: uuid.UUID, page_size: int = 1000) -> Iterator[dict]:
        """The batch's jobs in file-name order, fetched a page at a time as the caller iterates."""
        with translated():
            statement = self._cql.prepare(cql.SELECT_BATCH_ROWS).bind((batch_id,))
            statement.fetch_size = page_size
            rows = iter(self.session.execute(statement))
        return _translated_rows(rows)

    @_store_errors
    def finish(
        self,
        outcomes: Sequence[Outcome],
        after: Sequence[object] = (),
        pace: Callable[[], bool] | None = None,
    ) -> None:
        """Each job's row, audit row, batch line and cache row land together or not at all.

        One logged batch per JOBS_A_LOGGED_BATCH jobs, written concurrently: all or nothing for
        each group (so for each job), at half of Cassandra's CPU per job of one logged batch a job
        (bench/result_writes.py), whose cost was mostly per request and per batch log entry.
        pace (a chunk's): asked before each batch; True waits for those sent before it first.
        """
        futures = [*after]
        for group in finish_groups(outcomes):
            if pace is not None and pace():
                for future in futures:
                    future.result()
            statements = [statement for o in group for statement in finish_statements(o)]
            futures.append(self.session.execute_async(self.cql_batch(statements)))
        for future in futures:
            future.result()

    def cql_batch(self, statements: Sequence[tuple[str, tuple]], kind=BatchType.LOGGED) -> BatchStatement:
        """(CQL, values) pairs as one batch of prepared statements; logged: all or nothing."""
        batch = BatchStatement(batch_type=kind)
        for text, values in statements:
            batch.add(self._cql.prepare(text), values)
        return batch

    def _write(
        self,
        singles: list[tuple[str, tuple]],
        grouped: list[tuple[object, tuple[str, tuple]]],
        wait: bool = True,
    ) -> list:
        """Run single statements, and grouped ones in unlogged batches of up to GROUP_LIMIT per
        group key (a partition, or JOB_ROWS), concurrently; wait for all, or with wait=False hand
        back the futures."""
        futures = [self._cql.run_async(text, values) for text, values in singles]
        by_partition: dict[object, list[tuple[str, tuple]]] = {}
        for partition, statement in grouped:
            by_partition.setdefault(partition, []).append(statement)
        for statements in by_partition.values():
            for start in range(0, len(statements), GROUP_LIMIT):
                batch = self.cql_batch(statements[start : start + GROUP_LIMIT], BatchType.UNLOGGED)
                futures.append(self.session.execute_async(batch))
        if not wait:
            return futures
        for future in futures:
            future.result()
        return []


def _job_row(job: NewJob, status: str) -> tuple[str, tuple]:
    values = (
        job.job_id,
        status,
        job.filename,
        job.sha256,
        job.size_bytes,
        job.image_format,
        job.width,
        job.height,
        job.model_name,
        job.created_at,
        job.tenant or NO_TENANT,
    )
    if job.batch_id is None:
        return cql.INSERT_JOB, values
    return cql.INSERT_BATCH_JOB, (*values, job.batch_id)


def _count_statement(batch_id: uuid.UUID, part_id: uuid.UUID, c: PartCount) -> tuple[str, tuple]:
    """A part's counts, whole; the finish times only when there are some (None would write a
    tombstone)."""
    counts = (c.total, c.running, c.done, c.failed, c.cached, c.cancelled)
    if c.first_finished is None or c.last_finished is None:
        return cql.COUNT_PART_UNFINISHED, (*counts, batch_id, part_id)
    return cql.COUNT_PART, (*counts, c.first_finished, c.last_finished, batch_id, part_id)


def _part_count(row: dict) -> PartCount:
    """Counts a worker has not written yet are None: nothing of that part has run."""
    return PartCount(
        total=row["total"] or 0,
        running=row["running"] or 0,
        done=row["done"] or 0,
        failed=row["failed"] or 0,
        cached=row["cached"] or 0,
        cancelled=row["cancelled"] or 0,
        first_finished=row["first_finished"],
        last_finished=row["last_finished"],
    )


def _lease(row: dict) -> dict:
    try:
        held = {uuid.UUID(text) for text in json.loads(row["held"] or "[]")}
        newest = {q: datetime.fromisoformat(t) for q, t in json.loads(row["newest_sent"] or "{}").items()}
    except (ValueError, TypeError, AttributeError):  # unreadable: claims nothing
        held, newest = set(), {}
    return {"instance": row["instance"], "held": held, "newest_sent": newest}


def _translated_rows(rows: Iterator[dict]) -> Iterator[dict]:
    """Later pages are fetched while the caller iterates; their failures are translated too."""
    with translated():
        yield from rows


def finish_groups(outcomes: Sequence[Outcome]) -> Iterator[list[Outcome]]:
    """The outcomes in order, in groups of at most JOBS_A_LOGGED_BATCH and about BATCH_BYTES (a
    job bigger than that alone)."""
    group: list[Outcome] = []
    size = 0
    for o in outcomes:
        # The file name is in the audit row and the batch line, an error or reason in three rows.
        text = 2 * len(o.filename.encode()) + 3 * len((o.error or o.reason or "").encode())
        if o.upload is not None:  # the rest of its row: its upload columns, its name once more
            text += UPLOAD_ROW_BYTES + len(o.filename.encode())
        if group and (len(group) == JOBS_A_LOGGED_BATCH or size + JOB_BYTES + text > BATCH_BYTES):
            yield group
            group, size = [], 0
        group.append(o)
        size += JOB_BYTES + text
    if group:
        yield group


def _upload_row(o: Outcome) -> tuple[str, tuple]:
    u = o.upload
    columns = (
        o.filename,
        o.sha256,
        u["size_bytes"],
        u["image_format"],
        u["width"],
        u["height"],
        u["model_name"],
        o.created_at,
        o.tenant or NO_TENANT,
    )
    if u.get("started_at") is None:  # given up on after its attempts: it never started
        return cql.RECORD_UPLOAD, (*columns, o.job_id)
    return cql.RECORD_UPLOAD_STARTED, (*columns, u["started_at"], o.job_id)


def finish_statements(o: Outcome) -> list[tuple[str, tuple]]:
    """The writes that record one finished job: its row, its audit row (every ending, a cancel's
    too), its batch line (batch jobs), its cache row (real inferences only) and the rest of its
    row (jobs whose gateway left the row to the worker)."""
    hour = hour_bucket(o.finished_at)
    tenant = o.tenant or NO_TENANT
    batch_key = (o.batch_id, o.filename, o.job_id)
    model = (o.model_name, o.model_version)
    timing = (o.worker, o.finished_at, o.queue_ms, o.inference_ms, o.batch_size, o.cached, o.job_id)
    if o.cancelled:
        job_row = (cql.FINISH_CANCELLED, (CANCELLED, o.worker, o.finished_at, o.job_id))
        audit = (
            cql.AUDIT_CANCELLED,
            (hour, o.finished_at, o.job_id, CANCELLED, o.sha256, o.filename, o.worker, tenant),
        )
        line = (cql.BATCH_ROW_CANCELLED, (CANCELLED, o.finished_at, *batch_key))
        remember = None
    elif o.error is not None:
        job_row = (cql.FINISH_FAILED, (FAILED, o.error, o.worker, o.finished_at, o.job_id))
        audit = (
            cql.AUDIT_FAILED,
            (
                hour,
                o.finished_at,
                o.job_id,
                FAILED,
                o.error,
                o.sha256,
                o.filename,
                o.worker,
                tenant,
            ),
        )
        line = (cql.BATCH_ROW_FAILED, (FAILED, o.error, o.finished_at, *batch_key))
        remember = None
    elif o.label is None:
        job_row = (cql.FINISH_BLANK, (DONE, o.reason, *model, *timing))
        audit = (
            cql.AUDIT_BLANK,
            (
                hour,
                o.finished_at,
                o.job_id,
                DONE,
                o.reason,
                *model,
                o.sha256,
                o.filename,
                o.worker,
                tenant,
            ),
        )
        line = (cql.BATCH_ROW_BLANK, (DONE, o.reason, o.cached, o.finished_at, *batch_key))
        remember = (
            cql.REMEMBER_BLANK,
            (o.sha256, *model, o.job_id, o.finished_at, o.reason, tenant),
        )
    else:
        job_row = (cql.FINISH_LABELLED, (DONE, o.label, o.confidence, o.probabilities, *model, *timing))
        audit = (
            cql.AUDIT_LABELLED,
            (
                hour,
                o.finished_at,
                o.job_id,
                DONE,
                o.label,
                o.confidence,
                *model,
                o.sha256,
                o.filename,
                o.worker,
                tenant,
            ),
        )
        line = (cql.BATCH_ROW_LABELLED, (DONE, o.label, o.confidence, o.cached, o.finished_at, *batch_key))
        remember = (
            cql.REMEMBER_LABELLED,
            (
                o.sha256,
                *model,
                o.job_id,
                o.finished_at,
                o.label,
                o.confidence,
                o.probabilities,
                tenant,
            ),
        )
    writes = [job_row, audit]
    if o.upload is not None:
        writes.append(_upload_row(o))
    if o.batch_id is not None:
        writes.append(line)
    if not o.cached and remember is not None:
        writes.append(remember)
    return writes


def _header(h: BatchHeader) -> tuple:
    return (h.batch_id, h.name, h.model_name, h.created_at, h.tenant)


def _listing(h: BatchHeader) -> tuple[str, tuple]:
    return cql.INSERT_TENANT_BATCH, (h.tenant, h.created_at, h.batch_id, h.name, h.model_name)
