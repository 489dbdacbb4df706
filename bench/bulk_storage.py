"""What bulk's results cost to store, row design by row design: how far from issue 12's bulk
target each promise recog keeps for a batch file puts it, measured before anyone changes one.

The worker's own pipeline, as `recog classify` runs it (model/local_files.py: the files read and
prepared in a pool of one process a core, a chunk of 256 ahead of one model call a chunk), over
`bench/throughput.py`'s 10,000 bulk images, with their rows written to a Cassandra of its own a
worker's chunk of 64 files at a time (RECOG_CHUNK_SIZE), in each of these ways:

- none: no store at all, the floor of any bulk path on this machine;
- today: the rows recog writes for each batch file (at intake its job row and its batch line; at
  the end its job row, audit row, batch line and cache row), 3 of them in partitions of their own
  (the job row twice, the cache row once); a chunk's work, parts and counts, the same whatever
  the rows, are left out;
- no cache rows: the same less the cache row, so batch files are neither answered from nor
  added to the cache of repeated bytes;
- job row at the end: at intake the batch lines alone, the job row written once, with the result
  (as a waited-for single job's is, so without its batch_id column), so a batch file's
  `GET /v1/jobs/<id>` would answer 404 until it ends;
- job row at the end, no cache rows: both, one write a file in a partition of its own;
- per chunk: no row of a file's own at all, only its batch line and audit row (rows a chunk
  shares): no job row for a batch file, no cache;
- job rows by part: per chunk, and each file's job row too, every column of it, in a copy of the
  `jobs` table keyed by the file's part of 64 (`part_jobs`, this benchmark's own), found from its
  job id if the gateway made the id name its part (the part's id with the file's place in its
  last byte): no cache for batch files, and their rows move.

Every way batches alike: intake rows 50 to a request (GROUP_LIMIT) per partition, as
CassandraStore.insert_jobs does, and results JOBS_A_LOGGED_BATCH files to a logged batch, the
requests of a chunk concurrently. So the ways differ in their rows and partitions, not in how they
batch them. (CassandraStore.finish would put fewer files with a whole job row in a logged batch,
6 rather than 8, and a worker stamps such a row's start too: the "job row at the end" ways are a
little flattered.) The ways run in a rotating order, a round at a time. The gateway, Celery,
Redis and the client are left out on purpose: this is what the rows alone allow. Prints images/s
and CPU ms an image (this process with its pool, and Cassandra), medians of the rounds.

    .venv/bin/python bench/bulk_storage.py --json bench/bulk_storage.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import process_cpu  # noqa: E402
from bench.own_cassandra import own_cassandra  # noqa: E402
from bench.throughput import STATE, make_folder  # noqa: E402
from devstack import processes  # noqa: E402
from model.local_files import recognise_files  # noqa: E402
from model.recogniser import Prediction, Recogniser, configure_threads  # noqa: E402
from shared.jobs import QUEUED, NewJob, Outcome, utcnow  # noqa: E402
from shared.parts import PART_FILES  # noqa: E402
from shared.settings import PROJECT_ROOT  # noqa: E402
from shared.store import schema  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import (  # noqa: E402
    JOBS_A_LOGGED_BATCH,
    CassandraStore,
    _job_row,
    finish_statements,
)

WORKER = "bench"
CACHE_ROWS = {cql.REMEMBER_LABELLED, cql.REMEMBER_BLANK}
# A finished job's writes to partitions of its own: its job row and its cache row.
OWN_PARTITIONS = {
    cql.FINISH_LABELLED,
    cql.FINISH_BLANK,
    cql.FINISH_FAILED,
    cql.RECORD_UPLOAD,
    cql.RECORD_UPLOAD_STARTED,
    *CACHE_ROWS,
}
WAYS = (
    "none",
    "today",
    "no cache rows",
    "job row at the end",
    "job row at the end, no cache rows",
    "per chunk",
    "job rows by part",
)
DROPPED = {
    "no cache rows": CACHE_ROWS,
    "job row at the end, no cache rows": CACHE_ROWS,
    "per chunk": OWN_PARTITIONS,
    "job rows by part": OWN_PARTITIONS,
}
JOBS_TABLE = next(t for t in schema.TABLES if "TABLE IF NOT EXISTS jobs (" in t)


def part_jobs_table() -> str:
    """The jobs table with every column it has, keyed by part: a part's files in one partition."""
    table = JOBS_TABLE.replace("jobs (", "part_jobs (part_id uuid,", 1).replace("PRIMARY KEY,", ",", 1)
    return table.rstrip().removesuffix(")") + ", PRIMARY KEY ((part_id), job_id))"


def run(store: CassandraStore, how: str, recogniser: Recogniser, files: list[Path], chunk_size: int) -> int:
    """Recognise every file, storing its rows the named way a chunk at a time; how many read right."""
    batch_id, right, chunk = uuid.uuid4(), 0, []
    for path, result in recognise_files(recogniser, files, 16_000_000):
        chunk.append((path, result))
        if len(chunk) == chunk_size:
            right += _store(store, how, batch_id, recogniser, chunk)
            chunk = []
    if chunk:
        right += _store(store, how, batch_id, recogniser, chunk)
    return right


def _store(store: CassandraStore, how: str, batch_id: uuid.UUID, recogniser: Recogniser, chunk: list) -> int:
    """Record one chunk's files the named way, from intake to their results; how many read right."""
    jobs, outcomes = _records(batch_id, recogniser, chunk)
    right = sum(1 for (path, _), o in zip(chunk, outcomes, strict=True) if o.label == _label(path))
    if how == "none":
        return right
    if how in ("today", "no cache rows"):
        store.insert_jobs(jobs)
    else:
        lines = [(batch_id, (cql.INSERT_BATCH_ROW, (batch_id, j.filename, j.job_id, QUEUED))) for j in jobs]
        if how == "job rows by part":
            lines += [(_part(j.job_id), _in_part(_job_row(j, QUEUED), j.job_id)) for j in jobs]
        store._write([], lines)
    if how.startswith("job row at the end"):
        for job, o in zip(jobs, outcomes, strict=True):
            o.created_at = job.created_at  # the job row's intake columns, written with its result
            o.upload = {k: getattr(job, k) for k in ("size_bytes", "image_format", "width", "height")}
            o.upload["model_name"] = job.model_name
    groups = []
    for start in range(0, len(outcomes), JOBS_A_LOGGED_BATCH):
        group = []
        for o in outcomes[start : start + JOBS_A_LOGGED_BATCH]:
            writes = finish_statements(o)
            if how == "job rows by part":
                group.append(_in_part(writes[0], o.job_id))  # its job row's result, in its part
            group += [w for w in writes if w[0] not in DROPPED.get(how, ())]
        groups.append(group)
    for future in [store.session.execute_async(store.cql_batch(g)) for g in groups]:
        future.result()
    return right


def _records(batch_id: uuid.UUID, recogniser: Recogniser, chunk: list) -> tuple[list[NewJob], list[Outcome]]:
    """Each file's job as the gateway would record it, and its outcome as the worker would."""
    now, info = utcnow(), recogniser.info
    parts = [uuid.UUID(int=uuid.uuid4().int & ~0xFF) for _ in range(0, len(chunk), PART_FILES)]
    jobs, outcomes = [], []
    for n, (path, result) in enumerate(chunk):
        data = path.read_bytes()  # the gateway hashed it at intake; every way records the hash
        kind = "JPEG" if path.suffix == ".jpg" else "PNG"
        job_id = uuid.UUID(int=parts[n // PART_FILES].int | n % PART_FILES)
        sha256 = hashlib.sha256(data).hexdigest()
        job = NewJob(job_id, path.name, sha256, len(data), kind, 0, 0, info.name, now, batch_id)
        jobs.append(job)
        done = Outcome(job_id, sha256, path.name, WORKER, now, batch_id=batch_id)
        if not isinstance(result, Prediction):  # the image could not be read: failed, as the worker fails it
            done.error = str(result)
        else:
            done.model_name, done.model_version = info.name, info.version
            done.label = None if result.label is None else str(result.label)
            done.confidence, done.reason = result.confidence, result.reason
            done.probabilities = list(result.probabilities)
        outcomes.append(done)
    return jobs, outcomes


def _part(job_id: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=job_id.int & ~0xFF)


def _in_part(write: tuple[str, tuple], job_id: uuid.UUID) -> tuple[str, tuple]:
    """A write of a job row (an INSERT with job_id first, or an UPDATE ending WHERE job_id = ?) as
    the same write to part_jobs."""
    text, values = write
    if text.startswith("INSERT INTO jobs ("):
        text = text.replace("INSERT INTO jobs (", "INSERT INTO part_jobs (part_id, ", 1)
        return text.replace("VALUES (", "VALUES (?, ", 1), (_part(job_id), *values)
    text = text.replace("UPDATE jobs ", "UPDATE part_jobs ", 1)
    return text.replace("WHERE job_id = ?", "WHERE part_id = ? AND job_id = ?"), (
        *values[:-1],
        _part(job_id),
        job_id,
    )


def _label(path: Path) -> str:
    return path.stem.rsplit("-", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = STATE / f"folder-{args.images}"
    make_folder(folder, args.images, PROJECT_ROOT / ".recog" / "cache" / "training")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    settings, stack = own_cassandra("bench-bulk-storage", 29152, 27110)
    configure_threads(2)
    recogniser = Recogniser(settings.models_dir, settings.model)
    rates: dict[str, list[float]] = {how: [] for how in WAYS}
    cpu: dict[str, dict[str, list[float]]] = {how: {"pipeline": [], "cassandra": []} for how in WAYS}
    accuracy: dict[str, list[float]] = {how: [] for how in WAYS}
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        store.session.execute(part_jobs_table())
        for how in WAYS:  # Cassandra's first writes of each kind cost more: warm them
            run(store, how, recogniser, files[:500], settings.chunk_size)
        for n in range(args.rounds):
            for how in WAYS[n % len(WAYS) :] + WAYS[: n % len(WAYS)]:  # each way after another each round
                before, mine = process_cpu.snapshot(stack.run_dir), _own_cpu(stack.run_dir)
                started = time.perf_counter()
                right = run(store, how, recogniser, files, settings.chunk_size)
                rates[how].append(len(files) / (time.perf_counter() - started))
                cost = process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), len(files))
                cpu[how]["pipeline"].append(round((_own_cpu(stack.run_dir) - mine) * 1000 / len(files), 3))
                cpu[how]["cassandra"].append(cost.get("cassandra", 0.0))
                accuracy[how].append(round(right / len(files), 4))
        store.close()
    finally:
        stack.down()
    floor = statistics.median(rates["none"])
    heads = ("images/s", "of none", "pipeline CPU ms/img", "Cassandra")
    print(f"\n{'results stored':34s} {heads[0]:>9s} {heads[1]:>8s} {heads[2]:>20s} {heads[3]:>10s}")
    for how in WAYS:
        rate = statistics.median(rates[how])
        pipeline, cassandra = (statistics.median(cpu[how][part]) for part in ("pipeline", "cassandra"))
        print(f"{how:34s} {rate:9.0f} {rate / floor:8.0%} {pipeline:20.2f} {cassandra:10.2f}")
    print(f"accuracy: { {how: min(a) for how, a in accuracy.items()} }")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "images": len(files),
                    "rounds": args.rounds,
                    "chunk": settings.chunk_size,
                    "images_per_second": rates,
                    "cpu_ms_per_image": cpu,
                    "accuracy": accuracy,
                },
                indent=2,
            )
            + "\n"
        )


def _own_cpu(run_dir: Path) -> float:
    """CPU seconds of this process and of its children with theirs (the pool's processes are the
    fork server's children, reaped by it when each run shuts its pool down), Cassandra apart."""
    cassandra = processes.running_pid(run_dir, "cassandra")
    if cassandra is None:
        raise RuntimeError("Cassandra is not running: its CPU could not be told apart")
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime + process_cpu.children_seconds(apart=cassandra)


if __name__ == "__main__":
    main()
