"""The Cassandra schema: one table per query, created idempotently by `recog schema`.

CQL here runs on Cassandra 2.1 (local stack) and 5.0 (compose): no date/smallint types, no JSON,
no materialized views.
"""

from __future__ import annotations

from cassandra.cluster import Session

from shared.settings import Settings, replication_options

TABLES = (
    # The job by id: what GET /v1/jobs/<id> reads.
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id uuid PRIMARY KEY,
        status text,
        filename text,
        sha256 text,
        size_bytes int,
        image_format text,
        width int,
        height int,
        model_name text,
        model_version text,
        label text,
        confidence double,
        probabilities list<double>,
        reason text,
        error text,
        worker text,
        created_at timestamp,
        started_at timestamp,
        finished_at timestamp,
        queue_ms double,
        inference_ms double,
        batch_size int,
        batch_id uuid,
        cached boolean,
        tenant text,
        cancel_requested_at timestamp
    )""",
    # Every recognition, by the UTC hour it finished in ('2026-11-21T14'): cqlsh reads one hour
    # without a scan, and a partition holds at most an hour of results.
    """CREATE TABLE IF NOT EXISTS predictions_by_hour (
        hour text,
        finished_at timestamp,
        job_id uuid,
        status text,
        label text,
        confidence double,
        reason text,
        error text,
        model_name text,
        model_version text,
        sha256 text,
        filename text,
        worker text,
        tenant text,
        PRIMARY KEY ((hour), finished_at, job_id)
    ) WITH CLUSTERING ORDER BY (finished_at DESC, job_id ASC)""",
    # An upload's Idempotency-Key (gateway/idempotency.py), kept RECOG_IDEMPOTENCY_HOURS: the
    # seed its ids derive from, when a request last took it up, what was uploaded under it (a
    # fingerprint) and, once it was recorded, the answer it got.
    """CREATE TABLE IF NOT EXISTS upload_keys (
        scope text,
        key text,
        seed uuid,
        claimed_at timestamp,
        fingerprint text,
        answer text,
        PRIMARY KEY ((scope, key))
    )""",
    # A bulk submission's header. counted: its progress is counted in batch_parts (batches made
    # before those existed are counted from their lines). closed: it takes no more files.
    # cancel_requested_at: its cancel was asked for; jobs_cancelled: some of its jobs' were, one by
    # one (their lines say which). source_batch: the batch it re-scores with its model.
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id uuid PRIMARY KEY,
        name text,
        model_name text,
        created_at timestamp,
        counted boolean,
        tenant text,
        closed boolean,
        cancel_requested_at timestamp,
        jobs_cancelled boolean,
        source_batch uuid
    )""",
    # The jobs of one batch, sorted by file name: the CSV reads this partition. It grows with the
    # batch, about 150 bytes a file, up to RECOG_MAX_FILES_PER_BATCH files (100,000: about 15 MB).
    """CREATE TABLE IF NOT EXISTS batch_jobs (
        batch_id uuid,
        filename text,
        job_id uuid,
        status text,
        label text,
        confidence double,
        reason text,
        error text,
        cached boolean,
        finished_at timestamp,
        cancel_requested_at timestamp,
        PRIMARY KEY ((batch_id), filename, job_id)
    )""",
    # A batch's progress in parts of up to 64 files (shared/parts.py): a poll reads
    # a row per part, not a line per file. The gateway writes total; the worker that ends a
    # chunk rewrites the counts whole, counted from the part's lines, so a rerun never adds twice.
    """CREATE TABLE IF NOT EXISTS batch_parts (
        batch_id uuid,
        part_id uuid,
        total int,
        running int,
        done int,
        failed int,
        cached int,
        cancelled int,
        first_finished timestamp,
        last_finished timestamp,
        PRIMARY KEY ((batch_id), part_id)
    )""",
    # Which jobs a part counts (JSON [[job id, file name], ...]): read only to count a part again,
    # so polls of batch_parts never read it.
    """CREATE TABLE IF NOT EXISTS part_members (
        part_id uuid PRIMARY KEY,
        batch_id uuid,
        members text
    )""",
    # What each model version said about an image, by its sha256: the cache for repeated
    # bytes, and the auditor's "every prediction of this image". Only real inferences are
    # written here, so a partition grows with model versions and the tenants that sent the
    # image (each tenant's cache is its own), not with resubmissions.
    """CREATE TABLE IF NOT EXISTS results_by_image (
        sha256 text,
        model_name text,
        model_version text,
        job_id uuid,
        finished_at timestamp,
        label text,
        confidence double,
        probabilities list<double>,
        reason text,
        tenant text,
        PRIMARY KEY ((sha256), model_name, model_version, job_id)
    )""",
)

TABLES += (
    # Every task message (a single job or a chunk) by the UTC minute it was first sent in, with
    # its job messages: Redis loses messages when it is killed, or when a worker dies at the wrong
    # instant, so a sweeper sends again what is neither final, held by a live worker nor still
    # queued. Rows are never deleted: they expire (USING TTL, RECOG_SWEEP_HOURS), so reading a
    # minute meets no tombstones.
    """CREATE TABLE IF NOT EXISTS open_work (
        minute text,
        work_id uuid,
        chunk boolean,
        messages text,
        sent_at timestamp,
        PRIMARY KEY ((minute), work_id)
    )""",
    # Each time a worker began a chunk, or one image alone, by its work id (a job's id when
    # alone): a start that neither finished nor failed knowingly was a dead pool process, so the
    # next run takes the chunk one image at a time, and an image that killed its process twice
    # alone is failed (workers/alone.py). Kept here, not in the task message, because a message
    # Redis hands back after a death is the same message. Rows expire with the open work.
    """CREATE TABLE IF NOT EXISTS work_starts (
        work_id uuid,
        started timeuuid,
        worker text,
        PRIMARY KEY ((work_id), started)
    )""",
    # The minutes whose every job is final, by UTC day: the sweeper reads one day's partition
    # and never reads those minutes again, so its cost follows the open work, not the finished.
    """CREATE TABLE IF NOT EXISTS settled_minutes (
        day text,
        minute text,
        PRIMARY KEY ((day), minute)
    )""",
    # Each running worker's lease, renewed every third of RECOG_LEASE_SECONDS with that TTL: the
    # work it holds (prefetched, gathered, running) and the newest send it has read from each
    # queue. A SIGKILLed worker's lease expires, and with it its claim on that work. Only
    # expiring cells live here, so tombstones may be dropped after an hour.
    """CREATE TABLE IF NOT EXISTS worker_leases (
        instance text PRIMARY KEY,
        held text,
        newest_sent text,
        renewed_at timestamp
    ) WITH gc_grace_seconds = 3600""",
    # Uploaded bytes by their sha256, for RECOG_IMAGE_STORE=cassandra: workers on other hosts
    # then need no shared folder. One row an image; its size is capped by the upload limit.
    """CREATE TABLE IF NOT EXISTS images (
        sha256 text PRIMARY KEY,
        data blob,
        size_bytes int,
        stored_at timestamp
    )""",
    # API keys (shared/keys.py): the hash of each key's secret, never the key; revoked keys stay,
    # with when. A handful of rows, read by key id on each request a gateway has not cached.
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_id text PRIMARY KEY,
        name text,
        tenant text,
        scopes set<text>,
        secret_sha256 text,
        created_at timestamp,
        revoked_at timestamp
    )""",
    # Webhooks still to deliver, by the minute they were registered (shared/callbacks.py): the
    # notifier (workers/notifier.py) reads the minutes of RECOG_CALLBACK_HOURS, and rows expire
    # after that (USING TTL), never deleted, so reading a minute meets no tombstones.
    """CREATE TABLE IF NOT EXISTS callbacks_pending (
        minute text,
        subject uuid,
        kind text,
        url text,
        key_id text,
        PRIMARY KEY ((minute), subject)
    )""",
    # Each delivery try of a job's or batch's callback, and (static) where it stands: the next
    # try, or when it was delivered or given up. The job and batch views show them.
    """CREATE TABLE IF NOT EXISTS callbacks (
        subject uuid,
        attempt int,
        at timestamp,
        status_code int,
        error text,
        ms int,
        first_at timestamp static,
        next_at timestamp static,
        delivered_at timestamp static,
        gave_up_at timestamp static,
        PRIMARY KEY ((subject), attempt)
    )""",
    # A tenant's batches, newest first: GET /v1/batches reads a page of its partition.
    """CREATE TABLE IF NOT EXISTS batches_by_tenant (
        tenant text,
        created_at timestamp,
        batch_id uuid,
        name text,
        model_name text,
        PRIMARY KEY ((tenant), created_at, batch_id)
    ) WITH CLUSTERING ORDER BY (created_at DESC, batch_id ASC)""",
)

# Columns added after a table was first released: CREATE TABLE IF NOT EXISTS leaves an older
# table as it was, so `recog schema` adds what it lacks.
ADDED_COLUMNS = (
    ("jobs", "batch_id", "uuid"),
    ("jobs", "cached", "boolean"),
    ("batches", "counted", "boolean"),
    # The tenant of the key that made a row (shared/keys.py); rows from before keys have none.
    ("jobs", "tenant", "text"),
    ("batches", "tenant", "text"),
    ("batches", "closed", "boolean"),
    ("results_by_image", "tenant", "text"),
    ("predictions_by_hour", "tenant", "text"),
    # Cancels (gateway/jobs.py, gateway/batches.py).
    ("jobs", "cancel_requested_at", "timestamp"),
    ("batches", "cancel_requested_at", "timestamp"),
    ("batches", "jobs_cancelled", "boolean"),
    ("batch_jobs", "cancel_requested_at", "timestamp"),
    # Re-scoring (gateway/rescore.py).
    ("batches", "source_batch", "uuid"),
    ("batch_parts", "cancelled", "int"),
    # Webhooks (shared/callbacks.py): where a job's or batch's callback goes; the key whose
    # webhook secret signs it.
    ("jobs", "callback_url", "text"),
    ("batches", "callback_url", "text"),
    ("api_keys", "webhook_secret", "text"),
)


# Rows kept RECOG_RETENTION_DAYS (and the audit's RECOG_AUDIT_RETENTION_DAYS) after they were last
# written: each table's default TTL, applied to every write that sets none of its own.
RETAINED = (
    "jobs",
    "batches",
    "batch_jobs",
    "batch_parts",
    "part_members",
    "batches_by_tenant",
    "results_by_image",
    "callbacks",
)
AUDITED = ("predictions_by_hour",)


def ttl_seconds(days: float) -> int:
    """0 keeps rows for ever; anything else lasts at least a second."""
    return 0 if days == 0 else max(1, round(days * 86400))


def keyspace_cql(settings: Settings) -> str:
    options = replication_options(settings.cassandra_replication)
    # Identifiers and replication options cannot be bound; both come from validated settings.
    rendered = ", ".join(f"'{k}': '{v}'" for k, v in options.items())
    return f"CREATE KEYSPACE IF NOT EXISTS {settings.cassandra_keyspace} WITH replication = {{{rendered}}}"


def create_schema(session: Session, settings: Settings) -> None:
    session.execute(keyspace_cql(settings), timeout=30)
    session.set_keyspace(settings.cassandra_keyspace)
    for cql in TABLES:
        session.execute(cql, timeout=30)
    cluster = session.cluster
    cluster.refresh_schema_metadata()
    tables = cluster.metadata.keyspaces[settings.cassandra_keyspace].tables
    for table, column, cql_type in ADDED_COLUMNS:
        if column not in tables[table].columns:
            # Identifiers cannot be bound; these are constants of this module.
            session.execute(f"ALTER TABLE {table} ADD {column} {cql_type}", timeout=30)
    keep = {
        **dict.fromkeys(RETAINED, settings.retention_days),
        **dict.fromkeys(AUDITED, settings.audit_retention_days),
    }
    for table, days in keep.items():
        if tables[table].options.get("default_time_to_live") != ttl_seconds(days):
            # Table options cannot be bound: a constant name and a number from validated settings.
            session.execute(
                f"ALTER TABLE {table} WITH default_time_to_live = {ttl_seconds(days)}", timeout=30
            )
