"""Every CQL statement the service runs, prepared once per session; values are always bound.

Each write names only the columns it sets: binding None would write a tombstone (protocol v3).
"""

INSERT_JOB = """INSERT INTO jobs (job_id, status, filename, sha256, size_bytes, image_format, width, height,
    model_name, created_at, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
INSERT_BATCH_JOB = """INSERT INTO jobs (job_id, status, filename, sha256, size_bytes, image_format, width,
    height, model_name, created_at, tenant, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# A waited-for job's row, written by the gateway only when the wait ran out unanswered: stamped
# before anything a worker writes to it (shared/store/cassandra_results.record_waited), so it
# never hides a status or result that landed first.
INSERT_JOB_BEFORE = INSERT_JOB + " USING TIMESTAMP ?"
# A waited-for job's upload columns, written by its worker with the result; with its start when
# it started (one given up on after its attempts did not).
RECORD_UPLOAD = """UPDATE jobs SET filename = ?, sha256 = ?, size_bytes = ?, image_format = ?, width = ?,
    height = ?, model_name = ?, created_at = ?, tenant = ? WHERE job_id = ?"""
RECORD_UPLOAD_STARTED = """UPDATE jobs SET filename = ?, sha256 = ?, size_bytes = ?, image_format = ?,
    width = ?, height = ?, model_name = ?, created_at = ?, tenant = ?, started_at = ? WHERE job_id = ?"""
SELECT_JOB = "SELECT * FROM jobs WHERE job_id = ?"
SELECT_JOBS = "SELECT * FROM jobs WHERE job_id IN ?"
# A failed batch job queued again (gateway/retry.py): its failure's columns cleared, so a result
# written later never shows beside the old error. (Its audit row of the failure stays.)
REQUEUE_JOB = "UPDATE jobs SET status = ?, error = null, worker = null, finished_at = null WHERE job_id = ?"
SELECT_STATUS = "SELECT job_id, status, cancel_requested_at FROM jobs WHERE job_id = ?"
# Many jobs' statuses in one request (a worker's gathered batch, the sweeper's open work, an
# upload's retry). For 16 jobs that cost a single Cassandra node 60 % of the CPU of 16 single-row
# reads sent together, and the client a quarter (bench/status_reads.py).
SELECT_STATUSES = "SELECT job_id, status, cancel_requested_at FROM jobs WHERE job_id IN ?"
MARK_RUNNING = "UPDATE jobs SET status = ?, started_at = ?, worker = ? WHERE job_id = ?"

FINISH_LABELLED = """UPDATE jobs SET status = ?, label = ?, confidence = ?, probabilities = ?, model_name = ?,
    model_version = ?, worker = ?, finished_at = ?, queue_ms = ?, inference_ms = ?, batch_size = ?, cached = ?
    WHERE job_id = ?"""
FINISH_BLANK = """UPDATE jobs SET status = ?, reason = ?, model_name = ?, model_version = ?, worker = ?,
    finished_at = ?, queue_ms = ?, inference_ms = ?, batch_size = ?, cached = ? WHERE job_id = ?"""
FINISH_FAILED = "UPDATE jobs SET status = ?, error = ?, worker = ?, finished_at = ? WHERE job_id = ?"
FINISH_CANCELLED = "UPDATE jobs SET status = ?, worker = ?, finished_at = ? WHERE job_id = ?"

AUDIT_LABELLED = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, label, confidence,
    model_name, model_version, sha256, filename, worker, tenant)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
AUDIT_BLANK = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, reason, model_name,
    model_version, sha256, filename, worker, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
AUDIT_FAILED = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, error, sha256, filename,
    worker, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
AUDIT_CANCELLED = """INSERT INTO predictions_by_hour (hour, finished_at, job_id, status, sha256, filename,
    worker, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

INSERT_BATCH = """INSERT INTO batches (batch_id, name, model_name, created_at, tenant, counted)
    VALUES (?, ?, ?, ?, ?, true)"""
# A re-score's header, closed from the start: its files are its source's.
INSERT_RESCORE_BATCH = """INSERT INTO batches (batch_id, name, model_name, created_at, tenant, counted,
    closed, source_batch) VALUES (?, ?, ?, ?, ?, true, true, ?)"""
INSERT_TENANT_BATCH = """INSERT INTO batches_by_tenant (tenant, created_at, batch_id, name, model_name)
    VALUES (?, ?, ?, ?, ?)"""
SELECT_TENANT_BATCHES = """SELECT batch_id, name, model_name, created_at FROM batches_by_tenant
    WHERE tenant = ?"""
SELECT_TENANT_BATCHES_FROM = """SELECT batch_id, name, model_name, created_at FROM batches_by_tenant
    WHERE tenant = ? AND created_at <= ?"""
CLOSE_BATCH = "UPDATE batches SET closed = true WHERE batch_id = ?"
# Cancels (POST /v1/jobs/<id>/cancel, /v1/batches/<id>/cancel), asked for here and carried out by
# the worker that takes the job up: a single job's on its row; a batch's on its header, which a
# worker reads once for a whole chunk; a batch job's on its line too, with a mark on the header
# that says the chunk's lines are worth reading.
CANCEL_JOB = "UPDATE jobs SET cancel_requested_at = ? WHERE job_id = ?"
CANCEL_BATCH = "UPDATE batches SET cancel_requested_at = ?, closed = true WHERE batch_id = ?"
CANCEL_LINE = """UPDATE batch_jobs SET cancel_requested_at = ? WHERE batch_id = ? AND filename = ?
    AND job_id = ?"""
MARK_JOBS_CANCELLED = "UPDATE batches SET jobs_cancelled = true WHERE batch_id = ?"
SELECT_BATCH_CANCELS = "SELECT batch_id, cancel_requested_at, jobs_cancelled FROM batches WHERE batch_id IN ?"
# One line at a time: Cassandra 2.1 takes no IN on a clustering column followed by another.
SELECT_LINE_CANCEL = """SELECT cancel_requested_at FROM batch_jobs WHERE batch_id = ? AND filename = ?
    AND job_id = ?"""
SELECT_BATCH = "SELECT * FROM batches WHERE batch_id = ?"
INSERT_BATCH_ROW = "INSERT INTO batch_jobs (batch_id, filename, job_id, status) VALUES (?, ?, ?, ?)"
BATCH_ROW_LABELLED = """UPDATE batch_jobs SET status = ?, label = ?, confidence = ?, cached = ?,
    finished_at = ? WHERE batch_id = ? AND filename = ? AND job_id = ?"""
BATCH_ROW_BLANK = """UPDATE batch_jobs SET status = ?, reason = ?, cached = ?, finished_at = ?
    WHERE batch_id = ? AND filename = ? AND job_id = ?"""
BATCH_ROW_FAILED = """UPDATE batch_jobs SET status = ?, error = ?, finished_at = ?
    WHERE batch_id = ? AND filename = ? AND job_id = ?"""
BATCH_ROW_CANCELLED = """UPDATE batch_jobs SET status = ?, finished_at = ?
    WHERE batch_id = ? AND filename = ? AND job_id = ?"""
REQUEUE_BATCH_ROW = """UPDATE batch_jobs SET status = ?, error = null, finished_at = null
    WHERE batch_id = ? AND filename = ? AND job_id = ?"""
SELECT_BATCH_ROWS = """SELECT filename, job_id, status, label, confidence, reason, error, cached, finished_at
    FROM batch_jobs WHERE batch_id = ?"""
SELECT_BATCH_LINE = """SELECT status, cached, finished_at FROM batch_jobs
    WHERE batch_id = ? AND filename = ? AND job_id = ?"""

# A part's total (and members) from the gateway; its counts from the workers, always whole.
INSERT_PART = "INSERT INTO batch_parts (batch_id, part_id, total) VALUES (?, ?, ?)"
INSERT_PART_MEMBERS = "INSERT INTO part_members (part_id, batch_id, members) VALUES (?, ?, ?)"
PART_RUNNING = "UPDATE batch_parts SET running = ? WHERE batch_id = ? AND part_id = ?"
COUNT_PART = """UPDATE batch_parts SET total = ?, running = ?, done = ?, failed = ?, cached = ?,
    cancelled = ?, first_finished = ?, last_finished = ? WHERE batch_id = ? AND part_id = ?"""
COUNT_PART_UNFINISHED = """UPDATE batch_parts SET total = ?, running = ?, done = ?, failed = ?, cached = ?,
    cancelled = ? WHERE batch_id = ? AND part_id = ?"""
SELECT_PARTS = """SELECT part_id, total, running, done, failed, cached, cancelled, first_finished,
    last_finished FROM batch_parts WHERE batch_id = ?"""
SELECT_PART = """SELECT part_id, total, running, done, failed, cached, cancelled, first_finished,
    last_finished FROM batch_parts WHERE batch_id = ? AND part_id = ?"""
SELECT_PART_MEMBERS = "SELECT members FROM part_members WHERE part_id = ?"

REMEMBER_LABELLED = """INSERT INTO results_by_image (sha256, model_name, model_version, job_id, finished_at,
    label, confidence, probabilities, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
REMEMBER_BLANK = """INSERT INTO results_by_image (sha256, model_name, model_version, job_id, finished_at,
    reason, tenant) VALUES (?, ?, ?, ?, ?, ?, ?)"""
# A row per tenant that sent these bytes (and per race of two at once): the caller keeps its own
# tenant's. Past RECALL_ROWS other rows the image is simply recognised again.
RECALL_ROWS = 100
RECALL = f"""SELECT label, confidence, probabilities, reason, tenant FROM results_by_image
    WHERE sha256 = ? AND model_name = ? AND model_version = ? LIMIT {RECALL_ROWS}"""

# Written whole, first send and every send again alike, each time with a fresh TTL.
OPEN_WORK = """INSERT INTO open_work (minute, work_id, chunk, messages, sent_at) VALUES (?, ?, ?, ?, ?)
    USING TTL ?"""
START_WORK = "INSERT INTO work_starts (work_id, started, worker) VALUES (?, now(), ?) USING TTL ?"
COUNT_STARTS = "SELECT COUNT(*) FROM work_starts WHERE work_id = ?"
SELECT_OPEN_WORK = "SELECT work_id, chunk, sent_at FROM open_work WHERE minute = ?"
SELECT_WORK_MESSAGES = "SELECT work_id, messages FROM open_work WHERE minute = ? AND work_id IN ?"
SETTLE_MINUTE = "INSERT INTO settled_minutes (day, minute) VALUES (?, ?) USING TTL ?"
SELECT_SETTLED = "SELECT minute FROM settled_minutes WHERE day = ?"
RENEW_LEASE = """INSERT INTO worker_leases (instance, held, newest_sent, renewed_at) VALUES (?, ?, ?, ?)
    USING TTL ?"""
SELECT_LEASES = "SELECT instance, held, newest_sent, renewed_at FROM worker_leases"

IMAGE_EXISTS = "SELECT sha256 FROM images WHERE sha256 = ?"
# Conditional: a plain update racing the collector's delete would leave a row with no bytes.
# (IF EXISTS on an UPDATE is newer than Cassandra 2.1; a row with its size has its bytes.)
IMAGE_STORED_AGAIN = "UPDATE images SET stored_at = ? WHERE sha256 = ? IF size_bytes = ?"
# Only the collector reads every row (token order, a page at a time), and not their bytes.
IMAGE_AGES = "SELECT sha256, stored_at FROM images"
DELETE_IMAGE_IF_OLD = "DELETE FROM images WHERE sha256 = ? IF stored_at = ?"
INSERT_IMAGE = "INSERT INTO images (sha256, data, size_bytes, stored_at) VALUES (?, ?, ?, ?)"
SELECT_IMAGE = "SELECT data FROM images WHERE sha256 = ?"
DELETE_IMAGE = "DELETE FROM images WHERE sha256 = ?"
# Lightweight transactions: of two requests under one key at once, one takes it up, and only the
# request that holds a key writes to it. Every update rewrites every column with the same TTL, so
# a key's row expires whole (a cell left without a TTL would keep a half row alive for good).
CLAIM_UPLOAD = """INSERT INTO upload_keys (scope, key, seed, claimed_at) VALUES (?, ?, ?, ?)
    IF NOT EXISTS USING TTL ?"""
UPDATE_UPLOAD = """UPDATE upload_keys USING TTL ? SET seed = ?, claimed_at = ?, fingerprint = ?, answer = ?
    WHERE scope = ? AND key = ? IF claimed_at = ?"""
